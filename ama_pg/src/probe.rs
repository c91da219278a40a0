//! Direct unique-index lookups: one B-tree probe and one heap fetch, without SPI, the parser or
//! the planner. Used on the hottest paths (credential verification, the messages read policy),
//! where a prepared SPI statement still spent most of its time in executor start-up and
//! tear-down.
//!
//! A probe reads the row under the statement's active snapshot, so a committed revocation or
//! membership change is seen by the very next statement, exactly like a query. It does not apply
//! row-level security and checks no table privilege: only the extension's own trusted helpers
//! call it, and each of them decides what the row means for its caller.

use pgrx::prelude::*;
use std::ffi::CStr;

/// A row found by [`lookup`], readable only inside the callback (its values point into a pinned
/// buffer).
pub struct Row {
    slot: *mut pg_sys::TupleTableSlot,
}

impl Row {
    fn datum(&self, column: &CStr) -> Option<pg_sys::Datum> {
        unsafe {
            let desc = (*self.slot).tts_tupleDescriptor;
            let natts = (*desc).natts;
            let attrs = (*desc).attrs.as_slice(natts as usize);
            let i = attrs
                .iter()
                .position(|a| !a.attisdropped && CStr::from_ptr(a.attname.data.as_ptr()) == column)
                .unwrap_or_else(|| {
                    crate::errors::internal(&format!(
                        "ama_pg: column {} is missing",
                        column.to_string_lossy()
                    ))
                });
            if i32::from((*self.slot).tts_nvalid) <= i as i32 {
                pg_sys::slot_getsomeattrs_int(self.slot, i as i32 + 1);
            }
            if *(*self.slot).tts_isnull.add(i) {
                None
            } else {
                Some(*(*self.slot).tts_values.add(i))
            }
        }
    }

    /// A `text` column, copied out.
    pub fn text(&self, column: &CStr) -> Option<String> {
        self.datum(column)
            .and_then(|d| unsafe { String::from_datum(d, false) })
    }

    /// A `bytea` column, copied out.
    pub fn bytes(&self, column: &CStr) -> Option<Vec<u8>> {
        self.datum(column)
            .and_then(|d| unsafe { <Vec<u8>>::from_datum(d, false) })
    }

    /// A `text[]` column, copied out.
    pub fn text_array(&self, column: &CStr) -> Option<Vec<Option<String>>> {
        self.datum(column)
            .and_then(|d| unsafe { <Vec<Option<String>>>::from_datum(d, false) })
    }

    /// A `uuid` column.
    pub fn uuid(&self, column: &CStr) -> Option<pgrx::Uuid> {
        self.datum(column)
            .and_then(|d| unsafe { pgrx::Uuid::from_datum(d, false) })
    }

    /// A `timestamptz` column as PostgreSQL's raw microseconds since 2000-01-01.
    pub fn timestamp(&self, column: &CStr) -> Option<i64> {
        self.datum(column).map(|d| d.value() as i64)
    }
}

/// A key column value, with the equality function the probe compares it with.
#[derive(Clone, Copy)]
pub enum Key<'a> {
    Bytea(&'a [u8]),
    Uuid(&'a pgrx::Uuid),
    Text(&'a str),
}

impl Key<'_> {
    fn datum(self) -> (pg_sys::Datum, u32) {
        let (datum, proc_) = match self {
            Key::Bytea(b) => (b.into_datum(), pg_sys::F_BYTEAEQ),
            Key::Uuid(u) => (u.into_datum(), pg_sys::F_UUID_EQ),
            Key::Text(t) => (t.into_datum(), pg_sys::F_TEXTEQ),
        };
        (
            datum.unwrap_or_else(|| crate::errors::internal("ama_pg: probe key is NULL")),
            proc_,
        )
    }
}

/// The most key columns a probe compares.
const MAX_KEYS: usize = 2;

/// Finds the row of `ama.<table>` whose unique index `ama.<index>` equals `keys` on its leading
/// columns, and passes it to `read`. Returns `None` when no row is visible.
pub fn lookup<R>(
    table: &CStr,
    index: &CStr,
    keys: &[Key<'_>],
    read: impl FnOnce(&Row) -> R,
) -> Option<R> {
    if keys.is_empty() || keys.len() > MAX_KEYS {
        crate::errors::internal("ama_pg: a probe takes one or two key columns");
    }
    unsafe {
        let nsp = pg_sys::get_namespace_oid(c"ama".as_ptr(), false);
        let heap_oid = pg_sys::get_relname_relid(table.as_ptr(), nsp);
        let index_oid = pg_sys::get_relname_relid(index.as_ptr(), nsp);
        if heap_oid == pg_sys::InvalidOid || index_oid == pg_sys::InvalidOid {
            crate::errors::internal(&format!(
                "ama_pg: relation ama.{} or its index is missing",
                table.to_string_lossy()
            ));
        }
        let lock = pg_sys::AccessShareLock as pg_sys::LOCKMODE;
        let heap = pg_sys::table_open(heap_oid, lock);
        let index = pg_sys::index_open(index_oid, lock);
        let snapshot = if pg_sys::ActiveSnapshotSet() {
            pg_sys::GetActiveSnapshot()
        } else {
            pg_sys::GetTransactionSnapshot()
        };
        let mut scankeys = [pg_sys::ScanKeyData::default(); MAX_KEYS];
        for (i, key) in keys.iter().enumerate() {
            let (datum, proc_) = key.datum();
            pg_sys::ScanKeyInit(
                &mut scankeys[i],
                (i + 1) as pg_sys::AttrNumber,
                pg_sys::BTEqualStrategyNumber as pg_sys::StrategyNumber,
                pg_sys::RegProcedure::from(proc_),
                datum,
            );
            // Compare as the index is sorted (ScanKeyInit assumes the C collation).
            scankeys[i].sk_collation = *(*index).rd_indcollation.add(i);
        }
        let n = keys.len() as i32;
        let slot = pg_sys::table_slot_create(heap, std::ptr::null_mut());
        let scan = pg_sys::index_beginscan(heap, index, snapshot, n, 0);
        pg_sys::index_rescan(scan, scankeys.as_mut_ptr(), n, std::ptr::null_mut(), 0);
        let found =
            pg_sys::index_getnext_slot(scan, pg_sys::ScanDirection::ForwardScanDirection, slot);
        let result = found.then(|| read(&Row { slot }));
        pg_sys::index_endscan(scan);
        pg_sys::ExecDropSingleTupleTableSlot(slot);
        // Locks are kept to the end of the transaction, as the executor does.
        pg_sys::index_close(index, pg_sys::NoLock as pg_sys::LOCKMODE);
        pg_sys::table_close(heap, pg_sys::NoLock as pg_sys::LOCKMODE);
        result
    }
}
