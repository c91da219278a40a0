//! Raising errors with chosen SQLSTATEs from Rust.
//!
//! Rust raises only standard SQLSTATEs (pgrx's enum); the project's own class-`AM` codes are
//! raised by the PL/pgSQL API functions with `RAISE ... USING ERRCODE`.

use pgrx::prelude::*;

/// Raises 22023 invalid_parameter_value.
pub fn bad_input(message: &str) -> ! {
    ereport!(ERROR, PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, message.to_string());
}

/// Raises 22004 null_value_not_allowed.
pub fn null_input(message: &str) -> ! {
    ereport!(ERROR, PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED, message.to_string());
}

/// Raises 28000 invalid_authorization_specification with the generic credential message.
pub fn unauthorized() -> ! {
    ereport!(
        ERROR,
        PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
        "invalid or expired credential"
    );
}
