//! The current actor's membership of a thread, which the row-level-security policies ask per
//! row (`ama._can_read`, `ama._is_participant`), answered by an index probe and remembered per
//! snapshot (the membership memo).

use pgrx::prelude::*;
use std::cell::RefCell;
use std::collections::HashMap;

use crate::probe::Key;
use crate::v1_function;

/// Capability bits of the current actor in one thread (`PARTICIPANT` set for any participant).
const READ: u8 = 1;
const PARTICIPANT: u8 = 0x80;

fn cap_bits(caps: &[Option<String>]) -> u8 {
    caps.iter()
        .flatten()
        .fold(PARTICIPANT, |bits, c| match c.as_str() {
            "read" => bits | READ,
            _ => bits,
        })
}

/// What the snapshot a membership answer was read under looked like. Two MVCC snapshots with the
/// same xmin, xmax, in-progress counts and command id see exactly the same rows: a transaction
/// that completes in between either leaves the in-progress list (a count drops) or was started
/// after it and moves xmax. (The snapshot's completion counter would say the same more directly,
/// but copies of a snapshot, such as the active one, carry none.) The current subtransaction is
/// part of the key too: rolling back to a savepoint undoes this transaction's own changes without
/// a new command id.
#[derive(PartialEq, Eq, Clone, Copy)]
struct SnapshotKey {
    subxact: u32,
    xmin: u32,
    xmax: u32,
    xcnt: u32,
    subxcnt: i32,
    suboverflowed: bool,
    curcid: u32,
}

/// Membership answers for one actor under one snapshot, thread id -> capability bits.
struct Memo {
    snapshot: SnapshotKey,
    actor: Vec<u8>,
    bits: HashMap<[u8; 16], u8>,
}

/// Bounds the memo when one statement reads many threads.
const MEMO_MAX: usize = 4096;

thread_local! {
    static MEMO: RefCell<Option<Memo>> = const { RefCell::new(None) };
}

fn snapshot_key() -> Option<SnapshotKey> {
    unsafe {
        if !pg_sys::ActiveSnapshotSet() {
            return None;
        }
        let s = pg_sys::GetActiveSnapshot();
        if (*s).snapshot_type != pg_sys::SnapshotType::SNAPSHOT_MVCC {
            return None;
        }
        Some(SnapshotKey {
            subxact: pg_sys::GetCurrentSubTransactionId(),
            xmin: (*s).xmin.into_inner(),
            xmax: (*s).xmax.into_inner(),
            xcnt: (*s).xcnt,
            subxcnt: (*s).subxcnt,
            suboverflowed: (*s).suboverflowed,
            curcid: (*s).curcid,
        })
    }
}

/// The current actor's capability bits in `thread` (0: not a participant), read through the
/// participants primary key and remembered for the rest of the statement's snapshot.
fn my_bits(thread: &pgrx::Uuid) -> u8 {
    let Some(actor) = crate::gucs::actor_id_bytes() else {
        return 0;
    };
    let snapshot = snapshot_key();
    if let Some(snapshot) = snapshot {
        let hit = MEMO.with(|m| {
            m.borrow().as_ref().and_then(|memo| {
                (memo.snapshot == snapshot && memo.actor == actor)
                    .then(|| memo.bits.get(thread.as_bytes()).copied())
                    .flatten()
            })
        });
        if let Some(bits) = hit {
            return bits;
        }
    }
    let Ok(actor_text) = std::str::from_utf8(actor) else {
        return 0;
    };
    let bits = crate::probe::lookup(
        c"participants",
        c"participants_pkey",
        &[Key::Uuid(thread), Key::Text(actor_text)],
        |row| {
            row.text_array(c"capabilities")
                .map(|c| cap_bits(&c))
                .unwrap_or(PARTICIPANT)
        },
    )
    .unwrap_or(0);
    if let Some(snapshot) = snapshot {
        MEMO.with(|m| {
            let mut m = m.borrow_mut();
            let fresh = !matches!(m.as_ref(), Some(memo) if memo.snapshot == snapshot && memo.actor == actor && memo.bits.len() < MEMO_MAX);
            if fresh {
                *m = Some(Memo {
                    snapshot,
                    actor: actor.to_vec(),
                    bits: HashMap::new(),
                });
            }
            if let Some(memo) = m.as_mut() {
                memo.bits.insert(*thread.as_bytes(), bits);
            }
        });
    }
    bits
}

fn thread_arg(fcinfo: pg_sys::FunctionCallInfo) -> Option<pgrx::Uuid> {
    unsafe { pgrx::fcinfo::pg_getarg::<pgrx::Uuid>(fcinfo, 0) }
}

/// `ama._can_read(thread)`: whether the current actor holds `read` in `thread`. The messages read
/// policy calls it per row; rows of one thread cost one index probe per statement.
#[unsafe(no_mangle)]
#[pg_guard]
pub unsafe extern "C-unwind" fn ama_can_read(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    let bits = thread_arg(fcinfo).map_or(0, |t| my_bits(&t));
    pg_sys::Datum::from(bits & READ != 0)
}
v1_function!(pg_finfo_ama_can_read);

/// `ama._is_participant(thread)`: whether the current actor takes part in `thread`.
#[unsafe(no_mangle)]
#[pg_guard]
pub unsafe extern "C-unwind" fn ama_is_participant(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let bits = thread_arg(fcinfo).map_or(0, |t| my_bits(&t));
    pg_sys::Datum::from(bits & PARTICIPANT != 0)
}
v1_function!(pg_finfo_ama_is_participant);

/// Planner support for the membership helpers: a row-level-security filter that, for the
/// threads a query asks about, passes every row. Estimating it at the default 1/3 made the
/// planner expect to read three times the rows for a `LIMIT` and switch from the owner's
/// backward index scan to a bitmap scan and a sort; with selectivity 1 the plan under RLS is
/// the owner's plan plus the filter.
#[unsafe(no_mangle)]
#[pg_guard]
pub unsafe extern "C-unwind" fn ama_membership_support(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    unsafe {
        let req = pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, 0).cast_mut_ptr::<pg_sys::Node>();
        match (*req).type_ {
            pg_sys::NodeTag::T_SupportRequestSelectivity => {
                (*req.cast::<pg_sys::SupportRequestSelectivity>()).selectivity = 1.0;
                pg_sys::Datum::from(req)
            }
            pg_sys::NodeTag::T_SupportRequestCost => {
                // One memo lookup per row; a probe per thread and statement.
                let r = req.cast::<pg_sys::SupportRequestCost>();
                (*r).startup = 0.0;
                (*r).per_tuple = pg_sys::cpu_operator_cost;
                pg_sys::Datum::from(req)
            }
            _ => pg_sys::Datum::from(0usize),
        }
    }
}
v1_function!(pg_finfo_ama_membership_support);
