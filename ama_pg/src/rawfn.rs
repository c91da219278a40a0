//! Plain version-1 C functions for the hottest SQL entry points (`ama.rate_limit`,
//! `ama.verify_agent_token`, `ama.verify_internal_key`). They return one record instead of a
//! set: pgrx's set-returning protocol (a memory context per call, the tuplestore) and argument
//! marshalling cost as much as the work itself. Each is declared by hand in `sql/`. Their result
//! row types are built once per backend.

use pgrx::prelude::*;
use std::cell::RefCell;
use std::collections::HashMap;

/// Emits the `pg_finfo_<name>` marker that declares the version-1 calling convention.
#[macro_export]
macro_rules! v1_function {
    ($finfo:ident) => {
        /// Version-1 calling convention marker.
        #[unsafe(no_mangle)]
        pub extern "C" fn $finfo() -> &'static pgrx::pg_sys::Pg_finfo_record {
            const V1: pgrx::pg_sys::Pg_finfo_record =
                pgrx::pg_sys::Pg_finfo_record { api_version: 1 };
            &V1
        }
    };
}

/// The most columns a record-returning C function here returns.
const MAX_COLUMNS: usize = 8;

thread_local! {
    /// Blessed result row types by function OID, for the backend's life. A call site's
    /// `fn_extra` does not outlive one execution of a statement, and building the row type from
    /// `pg_proc` costs several times the function's own work. A changed result row means a new
    /// function (and OID): OUT parameters cannot be altered in place.
    static ROW_TYPES: RefCell<HashMap<pg_sys::Oid, usize>> = RefCell::new(HashMap::new());
}

/// Returns `values` (none NULL) as the function's declared result row.
///
/// # Safety
/// `fcinfo` must be the call's own, for a function declared to return a record of exactly
/// `values.len()` columns whose types match the datums.
pub unsafe fn record(
    fcinfo: pg_sys::FunctionCallInfo,
    values: &mut [pg_sys::Datum],
) -> pg_sys::Datum {
    unsafe {
        let flinfo = (*fcinfo).flinfo;
        if (*flinfo).fn_extra.is_null() {
            (*flinfo).fn_extra = row_type(fcinfo, values.len()).cast();
        }
        let desc: pg_sys::TupleDesc = (*flinfo).fn_extra.cast();
        // No value is NULL; heap_form_tuple reads one flag per column (at most MAX_COLUMNS).
        if values.len() > MAX_COLUMNS {
            crate::errors::internal("ama_pg: too many result columns");
        }
        let mut nulls = [false; MAX_COLUMNS];
        let tuple = pg_sys::heap_form_tuple(desc, values.as_mut_ptr(), nulls.as_mut_ptr());
        pg_sys::HeapTupleHeaderGetDatum((*tuple).t_data)
    }
}

/// The function's blessed result row type (kept in `TopMemoryContext`), built on first use.
unsafe fn row_type(fcinfo: pg_sys::FunctionCallInfo, natts: usize) -> pg_sys::TupleDesc {
    unsafe {
        let oid = (*(*fcinfo).flinfo).fn_oid;
        if let Some(desc) = ROW_TYPES.with(|m| m.borrow().get(&oid).copied()) {
            return desc as pg_sys::TupleDesc;
        }
        let mut desc: pg_sys::TupleDesc = std::ptr::null_mut();
        let kind = pg_sys::get_call_result_type(fcinfo, std::ptr::null_mut(), &mut desc);
        if kind != pg_sys::TypeFuncClass::TYPEFUNC_COMPOSITE || (*desc).natts as usize != natts {
            crate::errors::internal("ama_pg: the function's declared result row does not match");
        }
        let old = pg_sys::MemoryContextSwitchTo(pg_sys::TopMemoryContext);
        let kept = pg_sys::BlessTupleDesc(pg_sys::CreateTupleDescCopy(desc));
        pg_sys::MemoryContextSwitchTo(old);
        ROW_TYPES.with(|m| m.borrow_mut().insert(oid, kept as usize));
        kept
    }
}
