//! The route call of `ama.request_json()`, through the function manager instead of
//! `EXECUTE format(...)`: no statement is parsed or planned per request, and the route function's
//! own plans stay cached as usual. Also `ama._ts()`, the API's timestamp rendering.
//!
//! `ama._call_route(role, handler, args)` switches to the request role and calls only a plain
//! function that role may EXECUTE, and only a plain function of exactly one `jsonb` argument
//! that returns `json` or `jsonb` (checked in the catalog before every call, so no other
//! function is ever handed these datums), and answers `json`: a `jsonb` answer is rendered to
//! text once, a `json` answer (a route that shapes its rows with `json_agg`) is passed through
//! untouched. Nobody but the extension's owner may execute it (`ama.request_json` is SECURITY
//! DEFINER); the grants revoke it from PUBLIC.

use pgrx::prelude::*;

use crate::errors;

/// `ama._ts(t)`: a timestamp as the API shows it, RFC 3339 UTC with microseconds (NULL for
/// ±infinity), exactly as `to_char` rendered it, without parsing a format per row.
#[pg_extern(immutable, strict, parallel_safe, name = "_ts")]
fn ts(t: pgrx::datum::TimestampWithTimeZone) -> Option<String> {
    ama_core::time::rfc3339_micros(pg_sys::TimestampTz::from(t))
}

/// What a route function answers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Answer {
    Json,
    Jsonb,
}

/// Checks that `handler` is a route function: one `jsonb` argument, not a set, `json` or
/// `jsonb` out. Anything else is refused with 42883 (undefined function) before it is called.
unsafe fn route_signature(handler: pg_sys::Oid) -> Answer {
    unsafe {
        let exists = pg_sys::SearchSysCacheExists(
            pg_sys::SysCacheIdentifier::PROCOID as std::ffi::c_int,
            pg_sys::Datum::from(handler),
            pg_sys::Datum::from(0usize),
            pg_sys::Datum::from(0usize),
            pg_sys::Datum::from(0usize),
        );
        if !exists {
            errors::undefined_function("the route handler does not exist");
        }
        let mut argtypes: *mut pg_sys::Oid = std::ptr::null_mut();
        let mut nargs: i32 = 0;
        let ret = pg_sys::get_func_signature(handler, &mut argtypes, &mut nargs);
        let one_jsonb = nargs == 1 && *argtypes == pg_sys::JSONBOID;
        pg_sys::pfree(argtypes.cast());
        let answer = match ret {
            pg_sys::JSONOID => Some(Answer::Json),
            pg_sys::JSONBOID => Some(Answer::Jsonb),
            _ => None,
        };
        match answer {
            Some(a) if one_jsonb && !pg_sys::get_func_retset(handler) => a,
            _ => errors::undefined_function(
                "a route handler must take one jsonb argument and return json or jsonb",
            ),
        }
    }
}

/// Switches the current user to a request role until the calling SECURITY DEFINER function
/// (`ama.request_json`) returns: its exit, or the subtransaction's or transaction's abort,
/// restores the caller. `SET ROLE` is refused while switched.
unsafe fn become_role(role: &str) -> pg_sys::Oid {
    if !matches!(role, "anon" | "authenticated" | "service_role") {
        errors::bad_input("request role must be anon, authenticated or service_role");
    }
    let name = std::ffi::CString::new(role).unwrap_or_default();
    unsafe {
        let target = pg_sys::get_role_oid(name.as_ptr(), false);
        let (mut uid, mut ctx) = (pg_sys::InvalidOid, 0);
        pg_sys::GetUserIdAndSecContext(&mut uid, &mut ctx);
        pg_sys::SetUserIdAndSecContext(target, ctx | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32);
        target
    }
}

/// `ama._call_route(role text, handler oid, args jsonb) RETURNS json`: becomes the request role,
/// checks that it may EXECUTE the handler (as `SELECT handler(...)` would), checks the handler's
/// signature, and calls it.
#[unsafe(no_mangle)]
#[pg_guard]
pub unsafe extern "C-unwind" fn ama_call_route(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe {
        let role = pgrx::fcinfo::pg_getarg::<&str>(fcinfo, 0)
            .unwrap_or_else(|| errors::null_input("role must not be NULL"));
        let handler = pgrx::fcinfo::pg_getarg::<pg_sys::Oid>(fcinfo, 1)
            .unwrap_or_else(|| errors::null_input("handler must not be NULL"));
        let args = pgrx::fcinfo::pg_getarg_datum(fcinfo, 2)
            .unwrap_or_else(|| errors::null_input("args must not be NULL"));
        let answer = route_signature(handler);
        let me = become_role(role);
        if pg_sys::pg_proc_aclcheck(handler, me, pg_sys::ACL_EXECUTE as pg_sys::AclMode)
            != pg_sys::AclResult::ACLCHECK_OK
        {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                "permission denied for the route function"
            );
        }
        let mut flinfo = pg_sys::FmgrInfo::default();
        // fmgr_info sets up SECURITY DEFINER and SET clauses of the handler as any call would
        pg_sys::fmgr_info(handler, &mut flinfo);
        let size = std::mem::size_of::<pg_sys::FunctionCallInfoBaseData>()
            + std::mem::size_of::<pg_sys::NullableDatum>();
        let call = pg_sys::palloc0(size).cast::<pg_sys::FunctionCallInfoBaseData>();
        (*call).flinfo = &mut flinfo;
        (*call).fncollation = pg_sys::InvalidOid;
        (*call).nargs = 1;
        let arg: *mut pg_sys::NullableDatum = std::ptr::addr_of_mut!((*call).args).cast();
        *arg = pg_sys::NullableDatum {
            value: args,
            isnull: false,
        };
        let f = flinfo
            .fn_addr
            .unwrap_or_else(|| errors::internal("ama_pg: route handler has no entry point"));
        // Called through its raw entry point, not a guarded pg_sys wrapper: an error the route
        // raises (with its own SQLSTATE, AM404 included) longjmps straight to the exception
        // block of ama.request_json, as it would from SQL. pgrx would turn it into a panic and
        // keep only the SQLSTATEs it knows. No value in this frame needs dropping: the
        // FmgrInfo and the palloc'd call data are plain memory, freed with the subtransaction.
        let result = f(call);
        let isnull = (*call).isnull;
        pg_sys::pfree(call.cast());
        if isnull {
            (*fcinfo).isnull = true;
            return pg_sys::Datum::from(0usize);
        }
        match answer {
            Answer::Json => result,
            Answer::Jsonb => {
                let text =
                    pgrx::fcinfo::direct_function_call_as_datum(pg_sys::jsonb_out, &[Some(result)])
                        .unwrap_or_else(|| errors::internal("ama_pg: jsonb_out returned NULL"));
                pg_sys::Datum::from(pg_sys::cstring_to_text(text.cast_mut_ptr()))
            }
        }
    }
}
crate::v1_function!(pg_finfo_ama_call_route);

/// `ama._uuid(value, field)`: a path or body field as a UUID (22023 `field: expected a UUID`).
#[pg_extern(immutable, parallel_safe, name = "_uuid")]
fn uuid_field(value: Option<pgrx::JsonB>, field: Option<&str>) -> pgrx::Uuid {
    let field = field.unwrap_or("");
    match ama_core::input::uuid_field(value.as_ref().map(|v| &v.0), field) {
        Ok(u) => pgrx::Uuid::from_bytes(*u.as_bytes()),
        Err(message) => errors::bad_input(&message),
    }
}

/// `ama._int(value, field, min, max)`: a query or body field as an integer within bounds, NULL
/// when absent (22023 `field: expected an integer` / `field: must be between min and max`).
#[pg_extern(immutable, parallel_safe, name = "_int")]
fn int_field(
    value: Option<pgrx::JsonB>,
    field: Option<&str>,
    min_value: Option<i64>,
    max_value: Option<i64>,
) -> Option<i64> {
    let field = field.unwrap_or("");
    match ama_core::input::int_field(
        value.as_ref().map(|v| &v.0),
        field,
        min_value.unwrap_or(i64::MIN),
        max_value.unwrap_or(i64::MAX),
    ) {
        Ok(n) => n,
        Err(message) => errors::bad_input(&message),
    }
}
