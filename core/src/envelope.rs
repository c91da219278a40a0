//! What a client sees: the error body `{"code", "message"}` (the shim adds `request_id`), the
//! public messages that stand in for details a client must not see, and the envelope
//! `{status, body, rate, principal}` that `ama.request()` returns to the shim.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The generic message of every 401, whatever check failed.
pub const UNAUTHORIZED: &str = "invalid or expired credential";
/// The message of 5xx errors (details go to the server log, never to the client).
pub const INTERNAL: &str = "internal error";
/// The message of 503 responses.
pub const UNAVAILABLE: &str = "service temporarily unavailable";
/// A route that needs a credential was called without one.
pub const CREDENTIAL_REQUIRED: &str = "this route needs a credential";
/// The client is over a route's rate limit.
pub const RATE_LIMITED: &str = "rate limit exceeded";
/// The client is over its limit of failed authentications.
pub const TOO_MANY_AUTH_FAILURES: &str = "too many failed authentication attempts";
/// An agent whose owner's plan has no agent tokens.
pub const AGENT_PLAN_REQUIRED: &str = "this agent's owner needs the starter plan or higher";

/// The message a client sees for an error of `status` in place of the database's own, or `None`
/// when the database's message is written to be shown (4xx other than 401, and 501).
pub fn public_message(status: u16) -> Option<&'static str> {
    match status {
        401 => Some(UNAUTHORIZED),
        501 => None,
        503 => Some(UNAVAILABLE),
        s if s >= 500 => Some(INTERNAL),
        _ => None,
    }
}

/// The message a route that does not accept a kind of principal answers with (403).
pub fn principal_refused(principal_kind: &str) -> String {
    format!("this route does not accept {principal_kind} credentials")
}

/// An AMA2 error body. The shim sets `request_id`; the database leaves it out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorBody {
            code: code.into(),
            message: message.into(),
            request_id: None,
        }
    }

    /// The same body, answered under `request_id`.
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }

    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The rate-limit part of the envelope (whole seconds, for the `RateLimit` headers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    pub policy: String,
    pub limit: u64,
    pub remaining: u64,
    pub reset: u64,
    pub retry_after: u64,
    pub window: u64,
}

impl Rate {
    /// Parses an envelope's `rate` leniently (fractional seconds round up, a missing number is 0,
    /// no policy is `default`); `None` unless it is an object.
    pub fn parse(r: &Value) -> Option<Rate> {
        r.is_object().then(|| Rate {
            policy: r
                .get("policy")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_string(),
            limit: seconds(r, "limit"),
            remaining: seconds(r, "remaining"),
            reset: seconds(r, "reset"),
            retry_after: seconds(r, "retry_after"),
            window: seconds(r, "window"),
        })
    }
}

/// What `ama.request()` returns: the HTTP status, the body, the rate-limit state of the route's
/// policy and the acting actor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub status: u16,
    pub body: Value,
    pub rate: Option<Rate>,
    pub principal: Option<String>,
}

fn seconds(v: &Value, k: &str) -> u64 {
    v.get(k)
        .and_then(|x| {
            x.as_u64()
                .or_else(|| x.as_f64().map(|f| f.max(0.0).ceil() as u64))
        })
        .unwrap_or(0)
}

impl Envelope {
    /// An error envelope without a principal.
    pub fn error(status: u16, code: &str, message: &str, rate: Option<Rate>) -> Self {
        Envelope {
            status,
            body: ErrorBody::new(code, message).to_json(),
            rate,
            principal: None,
        }
    }

    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Parses an envelope leniently (fractional seconds round up, a missing number is 0, a rate
    /// without a policy is `default`); `None` when it is not one (no status in 200..=599).
    pub fn parse(v: Value) -> Option<Envelope> {
        let Value::Object(mut o) = v else { return None };
        let status = o
            .get("status")
            .and_then(Value::as_u64)
            .filter(|s| (200..=599).contains(s))? as u16;
        let body = o.remove("body").unwrap_or(Value::Null);
        let rate = o.get("rate").and_then(Rate::parse);
        let principal = o
            .get("principal")
            .and_then(Value::as_str)
            .map(str::to_string);
        Some(Envelope {
            status,
            body,
            rate,
            principal,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn error_body_has_two_fields_or_three_with_a_request_id() {
        let b = ErrorBody::new("BAD_REQUEST", "body: invalid JSON");
        assert_eq!(
            b.to_json(),
            json!({"code": "BAD_REQUEST", "message": "body: invalid JSON"})
        );
        let v = b.with_request_id("req-1").to_json();
        assert_eq!(v["request_id"], "req-1");
        assert_eq!(v.as_object().map(|o| o.len()), Some(3));
    }

    #[test]
    fn public_messages_hide_details() {
        assert_eq!(public_message(401), Some(UNAUTHORIZED));
        assert_eq!(public_message(500), Some(INTERNAL));
        assert_eq!(public_message(503), Some(UNAVAILABLE));
        assert_eq!(public_message(501), None);
        assert_eq!(public_message(404), None);
        assert_eq!(public_message(429), None);
    }

    #[test]
    fn error_envelopes_round_trip() {
        let rate = Rate {
            policy: "thread_write".into(),
            limit: 60,
            remaining: 0,
            reset: 7,
            retry_after: 2,
            window: 60,
        };
        let e = Envelope::error(429, "RATE_LIMITED", RATE_LIMITED, Some(rate));
        let v = e.to_json();
        assert_eq!(
            v["body"],
            json!({"code": "RATE_LIMITED", "message": RATE_LIMITED})
        );
        assert_eq!(v["principal"], Value::Null);
        assert_eq!(Envelope::parse(v), Some(e));
        let v = Envelope::error(401, "UNAUTHORIZED", UNAUTHORIZED, None).to_json();
        assert_eq!(v["rate"], Value::Null);
    }

    #[test]
    fn envelope_parsing() {
        let e = Envelope::parse(json!({
            "status": 429,
            "body": {"code": "RATE_LIMITED", "message": "slow down"},
            "rate": {"policy": "thread_write", "limit": 60, "remaining": 0, "reset": 7, "retry_after": 1.2, "window": 60},
            "principal": "agent:0d1c6f4e-8a43-4a4e-9a53-0c1f2d3e4f50"
        }))
        .expect("envelope");
        assert_eq!(e.status, 429);
        assert_eq!(e.body["code"], "RATE_LIMITED");
        let r = e.rate.expect("rate");
        assert_eq!(
            (
                r.policy.as_str(),
                r.limit,
                r.remaining,
                r.reset,
                r.retry_after,
                r.window
            ),
            ("thread_write", 60, 0, 7, 2, 60)
        );
        let e =
            Envelope::parse(json!({"status": 200, "body": [1], "rate": null})).expect("envelope");
        assert_eq!((e.status, e.rate, e.principal), (200, None, None));
        assert!(Envelope::parse(json!({"status": 42})).is_none());
        assert!(Envelope::parse(json!({"status": 101})).is_none());
        assert!(Envelope::parse(json!({"body": 1})).is_none());
        assert!(Envelope::parse(json!("x")).is_none());
    }
}
