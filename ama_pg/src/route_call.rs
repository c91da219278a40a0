//! The route call of `ama.request_json()`, through the function manager instead of
//! `EXECUTE format(...)`: no statement is parsed or planned per request, and the route function's
//! own plans stay cached as usual. Also `ama._ts()`, the API's timestamp rendering.
//!
//! `ama._call_route(handler, args)` calls only a plain function of exactly one `jsonb` argument
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
        let mut argtypes: *mut pg_sys::Oid = std::ptr::null_mut();
        let mut nargs: i32 = 0;
        // errors (42883) itself when the function does not exist
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

/// `ama._call_route(handler oid, args jsonb) RETURNS json`.
#[unsafe(no_mangle)]
#[pg_guard]
pub unsafe extern "C-unwind" fn ama_call_route(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe {
        let handler = pgrx::fcinfo::pg_getarg::<pg_sys::Oid>(fcinfo, 0)
            .unwrap_or_else(|| errors::null_input("handler must not be NULL"));
        let args = pgrx::fcinfo::pg_getarg_datum(fcinfo, 1)
            .unwrap_or_else(|| errors::null_input("args must not be NULL"));
        let answer = route_signature(handler);
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
