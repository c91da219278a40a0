//! SPI statements prepared once per backend and kept (`SPI_keepplan`), so hot lookups are not
//! parsed and planned on every call. PostgreSQL's plan cache revalidates them after DDL.

use pgrx::prelude::*;
use pgrx::spi::{OwnedPreparedStatement, SpiClient};
use pgrx::PgOid;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

thread_local! {
    static STATEMENTS: RefCell<HashMap<&'static str, Rc<OwnedPreparedStatement>>> = RefCell::new(HashMap::new());
}

/// The kept statement for `sql` (prepared with parameter `types` on first use).
pub fn statement(
    client: &SpiClient<'_>,
    sql: &'static str,
    types: &[PgOid],
) -> Rc<OwnedPreparedStatement> {
    if let Some(p) = STATEMENTS.with(|m| m.borrow().get(sql).cloned()) {
        return p;
    }
    let prepared = client
        .prepare(sql, types)
        .unwrap_or_else(|e| {
            crate::errors::internal(&format!("cannot prepare an internal query: {e}"))
        })
        .keep();
    let p = Rc::new(prepared);
    STATEMENTS.with(|m| m.borrow_mut().insert(sql, p.clone()));
    p
}

/// Parameter type of a `text`.
pub const TEXT: PgOid = PgOid::BuiltIn(pg_sys::BuiltinOid::TEXTOID);
/// Parameter type of a `bytea`.
pub const BYTEA: PgOid = PgOid::BuiltIn(pg_sys::BuiltinOid::BYTEAOID);
