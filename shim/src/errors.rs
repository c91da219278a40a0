//! AMA2 error bodies: `{"code", "message", "request_id"}`.

use serde_json::Value;

use ama_core::envelope::{public_message, ErrorBody, INTERNAL, UNAUTHORIZED, UNAVAILABLE};

/// The `WWW-Authenticate` value sent with every 401.
pub const WWW_AUTHENTICATE: &str = "Bearer error=\"invalid_token\"";

/// An error the shim answers itself, or a database error mapped through the shared table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    /// An error whose code follows from the status (`ama_core::errors::code_for_status`).
    pub fn status(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: ama_core::errors::code_for_status(status),
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::status(400, message)
    }

    pub fn unauthorized() -> Self {
        Self::status(401, UNAUTHORIZED)
    }

    pub fn not_found() -> Self {
        Self::status(404, "no such route")
    }

    pub fn payload_too_large(limit: usize) -> Self {
        ApiError {
            status: 413,
            code: "PAYLOAD_TOO_LARGE",
            message: format!("body: request body exceeds {limit} bytes"),
        }
    }

    pub fn unavailable() -> Self {
        Self::status(503, UNAVAILABLE)
    }

    pub fn internal() -> Self {
        Self::status(500, INTERNAL)
    }

    /// Maps a database error: the SQLSTATE decides status and code through the shared table;
    /// 4xx keep the database's message (written to be safe), 5xx get a generic one.
    pub fn from_sqlstate(sqlstate: &str, db_message: &str) -> Self {
        let m = ama_core::errors::http_for(sqlstate);
        let message = public_message(m.status)
            .unwrap_or(if m.status >= 500 {
                INTERNAL
            } else {
                db_message
            })
            .to_string();
        ApiError {
            status: m.status,
            code: m.code,
            message,
        }
    }

    /// The JSON body.
    pub fn body(&self, request_id: &str) -> Value {
        error_body(self.code, &self.message, request_id)
    }
}

/// The AMA2 error JSON.
pub fn error_body(code: &str, message: &str, request_id: &str) -> Value {
    ErrorBody::new(code, message)
        .with_request_id(request_id)
        .to_json()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_json_has_three_fields() {
        let e = ApiError::bad_request("body: invalid JSON");
        let v = e.body("req-1");
        assert_eq!(v["code"], "BAD_REQUEST");
        assert_eq!(v["message"], "body: invalid JSON");
        assert_eq!(v["request_id"], "req-1");
        assert_eq!(v.as_object().map(|o| o.len()), Some(3));
    }

    #[test]
    fn sqlstates_map_through_shared_table() {
        let e = ApiError::from_sqlstate("22023", "thread_id: invalid UUID");
        assert_eq!(
            (e.status, e.code, e.message.as_str()),
            (400, "BAD_REQUEST", "thread_id: invalid UUID")
        );
        let e = ApiError::from_sqlstate("AM404", "thread not found");
        assert_eq!((e.status, e.code), (404, "NOT_FOUND"));
        // 5xx never leak the database message
        let e = ApiError::from_sqlstate("XX000", "relation ama.secret does not exist");
        assert_eq!(
            (e.status, e.code, e.message.as_str()),
            (500, "INTERNAL_ERROR", INTERNAL)
        );
        let e = ApiError::from_sqlstate("57P01", "terminating connection");
        assert_eq!((e.status, e.code), (503, "UNAVAILABLE"));
        let e = ApiError::from_sqlstate("28000", "token revoked");
        assert_eq!((e.status, e.message.as_str()), (401, UNAUTHORIZED));
    }

    #[test]
    fn shim_statuses() {
        assert_eq!(ApiError::payload_too_large(65536).code, "PAYLOAD_TOO_LARGE");
        assert_eq!(ApiError::status(405, "x").code, "METHOD_NOT_ALLOWED");
        assert_eq!(ApiError::unauthorized().message, UNAUTHORIZED);
    }
}
