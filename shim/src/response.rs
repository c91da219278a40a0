//! Building responses: JSON bodies, the AMA2 error body, the database envelope turned into a
//! response, the RateLimit headers and `Server-Timing`.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use serde_json::Value;

use crate::db::{DbError, Reply};
use crate::errors::{ApiError, WWW_AUTHENTICATE as WWW_AUTH_VALUE};
use crate::limiter::Verdict;
use crate::metrics::Metrics;
use ama_core::envelope::Rate;

/// `Retry-After` (seconds) on every 503: the database is down or slow, the pool is exhausted.
pub const UNAVAILABLE_RETRY_AFTER: &str = "2";

/// The body type of every response.
pub type Body = BoxBody<Bytes, Infallible>;

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// A complete body.
pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// Sets a header; a value that is not a valid header value is left out.
pub fn set_header(resp: &mut Response<Body>, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

/// `Server-Timing` with the auth, database and total phases in milliseconds.
pub fn server_timing(auth: Duration, db: Duration, total: Duration) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "auth;dur={:.3}, db;dur={:.3}, total;dur={:.3}",
        ms(auth),
        ms(db),
        ms(total)
    )
}

/// A policy name safe to put in a quoted structured-field string.
fn policy_name(p: &str) -> String {
    let s: String = p
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/'))
        .take(64)
        .collect();
    if s.is_empty() {
        "default".into()
    } else {
        s
    }
}

/// `RateLimit-Policy`, `RateLimit` and (on 429) `Retry-After` from the envelope's `rate`.
pub fn rate_headers(rate: &Rate, status: u16) -> Vec<(HeaderName, String)> {
    let p = policy_name(&rate.policy);
    let mut h = vec![
        (
            RATELIMIT_POLICY,
            format!("\"{p}\";q={};w={}", rate.limit, rate.window),
        ),
        (
            RATELIMIT,
            format!("\"{p}\";r={};t={}", rate.remaining, rate.reset),
        ),
    ];
    if status == 429 {
        h.push((RETRY_AFTER, rate.retry_after.max(1).to_string()));
    }
    h
}

/// Adds the RateLimit headers of `rate` to a response with `status`.
pub fn set_rate_headers(resp: &mut Response<Body>, rate: &Rate, status: u16) {
    for (name, value) in rate_headers(rate, status) {
        set_header(resp, name, &value);
    }
}

/// A JSON response with the request id (and `WWW-Authenticate` on 401).
pub fn json_response(status: u16, body: &Value, request_id: &str) -> Response<Body> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    json_bytes_response(status, Bytes::from(bytes), request_id)
}

/// [`json_response`] with a body that is JSON text already.
pub fn json_bytes_response(status: u16, bytes: Bytes, request_id: &str) -> Response<Body> {
    let mut resp = Response::new(full(bytes));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    set_header(&mut resp, X_REQUEST_ID, request_id);
    if status == 401 {
        resp.headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static(WWW_AUTH_VALUE));
    }
    // every 429 and 503 says when to retry; a rate decision's own value replaces this default
    // (set_rate_headers)
    let retry_after = match status {
        429 => Some("1"),
        503 => Some(UNAVAILABLE_RETRY_AFTER),
        _ => None,
    };
    if let Some(v) = retry_after {
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static(v));
    }
    resp
}

/// The AMA2 error response for `e`.
pub fn error_response(e: &ApiError, request_id: &str) -> Response<Body> {
    json_response(e.status, &e.body(request_id), request_id)
}

/// 429 from one of the shim's own limits, with `Retry-After` and the RateLimit headers.
pub fn limited_response(
    metrics: &Metrics,
    verdict: &Verdict,
    message: &str,
    rid: &str,
) -> Response<Body> {
    metrics.rate_limited(verdict.policy);
    let mut r = error_response(&ApiError::status(429, message), rid);
    set_rate_headers(&mut r, &verdict.rate(), 429);
    r
}

/// Turns a database result into the HTTP response (status, body, rate headers). An error body
/// gets the request id; a 4xx/5xx without a proper error body gets a generic one.
pub fn envelope_response(metrics: &Metrics, reply: Reply, rid: &str) -> Response<Body> {
    if reply.status == 429 {
        if let Some(r) = &reply.rate {
            metrics.rate_limited(&r.policy);
        }
    }
    let mut resp = if reply.status >= 400 {
        let body = match reply.body_value() {
            Value::Object(mut o) if o.get("code").is_some_and(Value::is_string) => {
                o.insert("request_id".into(), Value::String(rid.to_string()));
                Value::Object(o)
            }
            _ => {
                let e = ApiError::status(
                    reply.status,
                    if reply.status >= 500 {
                        ama_core::envelope::INTERNAL
                    } else {
                        "request failed"
                    },
                );
                e.body(rid)
            }
        };
        json_response(reply.status, &body, rid)
    } else {
        // the body as the database wrote it: no parse, no second serialisation
        let text: Box<str> = reply.body.into();
        json_bytes_response(reply.status, Bytes::from(text.into_string()), rid)
    };
    if let Some(rate) = &reply.rate {
        set_rate_headers(&mut resp, rate, reply.status);
    }
    resp
}

/// A failed database call: 503 when the database cannot be reached, the mapped SQLSTATE
/// otherwise; details go to the log, never to the client.
pub fn db_error_response(metrics: &Metrics, e: &DbError, rid: &str) -> Response<Body> {
    let api = match e {
        DbError::Unavailable(reason) => {
            metrics.db_error("unavailable");
            tracing::warn!(error = %reason, "database unavailable");
            ApiError::unavailable()
        }
        DbError::Sql { code, message } => {
            let api = ApiError::from_sqlstate(code, message);
            if api.status == 503 {
                // expected while the database restarts or sheds load (57P01, 57014, 40001, ...)
                metrics.db_error("sql");
                tracing::warn!(sqlstate = %code, error = %message, "database temporarily unavailable");
            } else if api.status >= 500 {
                metrics.db_error("sql");
                tracing::error!(sqlstate = %code, error = %message, "database error");
            }
            api
        }
        DbError::Protocol(reason) => {
            metrics.db_error("protocol");
            tracing::error!(error = %reason, "bad answer from ama.request");
            ApiError::internal()
        }
    };
    error_response(&api, rid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_formatting() {
        let r = Rate {
            policy: "thread_write".into(),
            limit: 60,
            remaining: 59,
            reset: 1,
            retry_after: 0,
            window: 60,
        };
        let h = rate_headers(&r, 200);
        assert_eq!(h[0].0, RATELIMIT_POLICY);
        assert_eq!(h[0].1, "\"thread_write\";q=60;w=60");
        assert_eq!(h[1].1, "\"thread_write\";r=59;t=1");
        assert_eq!(h.len(), 2);
        let r = Rate {
            retry_after: 7,
            remaining: 0,
            ..r
        };
        let h = rate_headers(&r, 429);
        assert_eq!(h[2], (RETRY_AFTER, "7".to_string()));
        let r = Rate {
            policy: "a\"b\r\nX: y".into(),
            retry_after: 0,
            ..r
        };
        let h = rate_headers(&r, 429);
        assert_eq!(h[0].1, "\"abX:y\";q=60;w=60");
        assert_eq!(h[2].1, "1");
        let st = server_timing(
            Duration::from_micros(120),
            Duration::from_micros(1500),
            Duration::from_millis(2),
        );
        assert_eq!(st, "auth;dur=0.120, db;dur=1.500, total;dur=2.000");
    }

    #[test]
    fn responses_carry_request_id_and_www_authenticate() {
        let r = error_response(&ApiError::unauthorized(), "rid-1");
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()[WWW_AUTHENTICATE], WWW_AUTH_VALUE);
        assert_eq!(r.headers()[&X_REQUEST_ID], "rid-1");
        assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
        assert!(!r.headers().contains_key(RETRY_AFTER));
        let r = error_response(&ApiError::status(429, "slow down"), "rid-5");
        assert_eq!(
            r.headers()[RETRY_AFTER],
            "1",
            "a 429 without a rate decision"
        );
        let r = error_response(&ApiError::unavailable(), "rid-3");
        assert_eq!(r.headers()[RETRY_AFTER], UNAVAILABLE_RETRY_AFTER);
        let m = Metrics::default();
        let down = DbError::Sql {
            code: "57P01".into(),
            message: "terminating connection".into(),
        };
        let r = db_error_response(&m, &down, "rid-4");
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[RETRY_AFTER], UNAVAILABLE_RETRY_AFTER);
    }

    #[test]
    fn error_envelopes_get_the_request_id_and_5xx_stay_generic() {
        let m = Metrics::default();
        let reply = Reply::parse(r#"{"status": 500, "body": {"detail": "relation ama.secret"}}"#)
            .expect("reply");
        let r = envelope_response(&m, reply, "rid-2");
        assert_eq!(r.status(), 500);
        assert_eq!(r.headers()[&X_REQUEST_ID], "rid-2");
    }
}
