//! The one SQLSTATE-to-HTTP table, shared by the extension's documentation tests and the shim.
//!
//! The extension raises chosen SQLSTATEs; the shim maps each to an HTTP status and an AMA2 error
//! code through [`http_for`]. Custom codes live in class `AM` so they cannot clash with
//! PostgreSQL's own.

/// Plan too low for the operation (403 FORBIDDEN; the message names the plan needed).
pub const PLAN_REQUIRED: &str = "AM403";
/// The thread (or other object) does not exist for the caller (404 NOT_FOUND).
pub const NOT_FOUND: &str = "AM404";
/// Idempotency key reused with different content, or another conflict (409 CONFLICT).
pub const CONFLICT: &str = "AM409";
/// Rate limit exceeded (429 RATE_LIMITED).
pub const RATE_LIMITED: &str = "AM429";

/// An HTTP status with its AMA2 error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpError {
    pub status: u16,
    pub code: &'static str,
}

const fn e(status: u16, code: &'static str) -> HttpError {
    HttpError { status, code }
}

/// Exact SQLSTATEs with their mapping. Checked before the class table.
pub const EXACT: &[(&str, HttpError)] = &[
    (PLAN_REQUIRED, e(403, "FORBIDDEN")),
    (NOT_FOUND, e(404, "NOT_FOUND")),
    (CONFLICT, e(409, "CONFLICT")),
    (RATE_LIMITED, e(429, "RATE_LIMITED")),
    ("0A000", e(501, "NOT_IMPLEMENTED")),
    // a limit of the data, such as the 10 active webhook subscriptions of a thread
    ("54000", e(409, "CONFLICT")),
    // a feature the server is not configured for, such as webhooks without ama.webhook_secret_key
    ("55000", e(503, "UNAVAILABLE")),
    ("28000", e(401, "UNAUTHORIZED")),
    ("28P01", e(401, "UNAUTHORIZED")),
    ("42501", e(403, "FORBIDDEN")),
    ("P0002", e(404, "NOT_FOUND")),
    ("23505", e(409, "CONFLICT")),
    ("23503", e(409, "CONFLICT")),
    ("23502", e(400, "BAD_REQUEST")),
    ("23514", e(400, "BAD_REQUEST")),
    ("40001", e(503, "UNAVAILABLE")),
    ("40P01", e(503, "UNAVAILABLE")),
    ("53300", e(503, "UNAVAILABLE")),
    ("57P01", e(503, "UNAVAILABLE")),
    ("57P02", e(503, "UNAVAILABLE")),
    ("57P03", e(503, "UNAVAILABLE")),
    ("57014", e(503, "UNAVAILABLE")),
];

/// SQLSTATE classes (first two characters) with their mapping.
pub const CLASSES: &[(&str, HttpError)] = &[
    ("08", e(503, "UNAVAILABLE")),
    ("22", e(400, "BAD_REQUEST")),
    ("28", e(401, "UNAUTHORIZED")),
];

/// Everything else.
pub const DEFAULT: HttpError = e(500, "INTERNAL_ERROR");

/// Maps a SQLSTATE to its HTTP status and AMA2 error code.
pub fn http_for(sqlstate: &str) -> HttpError {
    if let Some((_, m)) = EXACT.iter().find(|(s, _)| *s == sqlstate) {
        return *m;
    }
    let class = sqlstate.get(..2).unwrap_or("");
    CLASSES
        .iter()
        .find(|(c, _)| *c == class)
        .map(|(_, m)| *m)
        .unwrap_or(DEFAULT)
}

/// The AMA2 error code for an HTTP status the shim produces itself.
pub fn code_for_status(status: u16) -> &'static str {
    match status {
        400 | 413 | 414 | 431 => "BAD_REQUEST",
        401 => "UNAUTHORIZED",
        403 => "FORBIDDEN",
        404 => "NOT_FOUND",
        405 => "METHOD_NOT_ALLOWED",
        501 => "NOT_IMPLEMENTED",
        408 => "REQUEST_TIMEOUT",
        409 => "CONFLICT",
        429 => "RATE_LIMITED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL_ERROR",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_maps_documented_states() {
        assert_eq!(http_for("42501"), e(403, "FORBIDDEN"));
        assert_eq!(http_for(PLAN_REQUIRED), e(403, "FORBIDDEN"));
        assert_eq!(http_for(NOT_FOUND), e(404, "NOT_FOUND"));
        assert_eq!(http_for("22P02"), e(400, "BAD_REQUEST"));
        assert_eq!(http_for("22001"), e(400, "BAD_REQUEST"));
        assert_eq!(http_for("28000"), e(401, "UNAUTHORIZED"));
        assert_eq!(http_for(RATE_LIMITED), e(429, "RATE_LIMITED"));
        assert_eq!(http_for("08006"), e(503, "UNAVAILABLE"));
        assert_eq!(http_for("54000"), e(409, "CONFLICT"));
        assert_eq!(http_for("55000"), e(503, "UNAVAILABLE"));
        assert_eq!(http_for("XX000"), DEFAULT);
        assert_eq!(http_for(""), DEFAULT);
    }

    #[test]
    fn custom_states_are_well_formed_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for (s, _) in EXACT {
            assert_eq!(s.len(), 5, "{s}");
            assert!(s
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()));
            assert!(seen.insert(*s), "duplicate {s}");
        }
    }
}
