//! Raising errors with chosen SQLSTATEs from Rust.
//!
//! Rust raises only standard SQLSTATEs (pgrx's enum); the project's own class-`AM` codes are
//! raised by the PL/pgSQL API functions with `RAISE ... USING ERRCODE`.

use pgrx::prelude::*;

/// Raises 22023 invalid_parameter_value.
pub fn bad_input(message: &str) -> ! {
    ereport!(
        ERROR,
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        message.to_string()
    );
}

/// Raises 55000 object_not_in_prerequisite_state: a server setting the call needs is missing.
pub fn not_configured(message: &str) -> ! {
    ereport!(
        ERROR,
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        message.to_string()
    );
}

/// Raises 22004 null_value_not_allowed.
pub fn null_input(message: &str) -> ! {
    ereport!(
        ERROR,
        PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
        message.to_string()
    );
}

/// Raises XX000 internal_error: the extension's own objects are not as it installed them.
pub fn internal(message: &str) -> ! {
    ereport!(
        ERROR,
        PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
        message.to_string()
    );
}

/// Raises 42883 undefined_function.
pub fn undefined_function(message: &str) -> ! {
    ereport!(
        ERROR,
        PgSqlErrorCode::ERRCODE_UNDEFINED_FUNCTION,
        message.to_string()
    );
}

/// Raises 28000 invalid_authorization_specification with the generic credential message.
pub fn unauthorized() -> ! {
    ereport!(
        ERROR,
        PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
        ama_core::envelope::UNAUTHORIZED
    );
}

/// The SQLSTATE-to-HTTP table the shim uses (`ama_core::errors`), for DBAs and tests: exact
/// SQLSTATEs first, then classes (`22...`), then the default.
#[pg_extern(immutable, parallel_safe, name = "sqlstate_http_map")]
fn sqlstate_http_map() -> TableIterator<
    'static,
    (
        name!(sqlstate, String),
        name!(http_status, i32),
        name!(error_code, String),
    ),
> {
    use ama_core::errors::{CLASSES, DEFAULT, EXACT};
    let rows: Vec<_> = EXACT
        .iter()
        .map(|(s, m)| (s.to_string(), i32::from(m.status), m.code.to_string()))
        .chain(
            CLASSES
                .iter()
                .map(|(c, m)| (format!("{c}..."), i32::from(m.status), m.code.to_string())),
        )
        .chain(std::iter::once((
            "*".to_string(),
            i32::from(DEFAULT.status),
            DEFAULT.code.to_string(),
        )))
        .collect();
    TableIterator::new(rows)
}

/// HTTP status, AMA2 error code and public message for one SQLSTATE (the tables the shim uses:
/// `ama_core::errors` and `ama_core::envelope`). The public message replaces the database's own
/// in the response; it is NULL when the database's message is written to be shown.
#[pg_extern(immutable, parallel_safe, strict, name = "_http_error")]
fn http_error(
    sqlstate: &str,
) -> TableIterator<
    'static,
    (
        name!(http_status, i32),
        name!(error_code, String),
        name!(public_message, Option<String>),
    ),
> {
    let m = ama_core::errors::http_for(sqlstate);
    TableIterator::once((
        i32::from(m.status),
        m.code.to_string(),
        ama_core::envelope::public_message(m.status).map(str::to_string),
    ))
}
