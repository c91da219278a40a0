//! What `ama.request_json` answers, read without re-shaping the body: the envelope's `status`,
//! `rate` and `principal` are parsed, its `body` is kept as the JSON text the database made and
//! sent to the client as it is (a 2xx body is never parsed into a tree and serialised again).

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use tokio_postgres::types::{FromSql, Type};

use ama_core::envelope::{Envelope, Rate};

/// One answer of `ama.request_json`.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// The body, as JSON text.
    pub body: Box<RawValue>,
    pub rate: Option<Rate>,
    pub principal: Option<String>,
}

#[derive(Deserialize)]
struct Wire {
    status: Option<Value>,
    body: Option<Box<RawValue>>,
    rate: Option<Value>,
    principal: Option<Value>,
}

impl Reply {
    /// Parses an envelope leniently, as [`Envelope::parse`] does; `None` when it is not one (no
    /// status in 200..=599, or not a JSON object).
    pub fn parse(text: &str) -> Option<Reply> {
        let w: Wire = serde_json::from_str(text).ok()?;
        let status = w
            .status
            .as_ref()
            .and_then(Value::as_u64)
            .filter(|s| (200..=599).contains(s))? as u16;
        let body = match w.body {
            Some(b) => b,
            None => RawValue::from_string("null".into()).ok()?,
        };
        Some(Reply {
            status,
            body,
            rate: w.rate.as_ref().and_then(Rate::parse),
            principal: w.principal.and_then(|p| match p {
                Value::String(s) => Some(s),
                _ => None,
            }),
        })
    }

    /// The body as a JSON tree (for the few places that look inside it).
    pub fn body_value(&self) -> Value {
        serde_json::from_str(self.body.get()).unwrap_or(Value::Null)
    }

    /// The whole envelope as a tree.
    pub fn into_envelope(self) -> Envelope {
        Envelope {
            body: self.body_value(),
            status: self.status,
            rate: self.rate,
            principal: self.principal,
        }
    }
}

/// A `json` or `jsonb` column read as its text, with no parsing.
pub struct JsonText<'a>(pub &'a str);

impl<'a> FromSql<'a> for JsonText<'a> {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        // jsonb's binary form is a version byte (1) and the text
        let text = if *ty == Type::JSONB {
            match raw.split_first() {
                Some((1, rest)) => rest,
                _ => return Err("unsupported jsonb version".into()),
            }
        } else {
            raw
        };
        Ok(JsonText(std::str::from_utf8(text)?))
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::JSON | Type::JSONB)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_body_stays_as_the_database_wrote_it() {
        let text = r#"{"status": 200, "body": {"events": [{"b": 1, "a": "x\u00e9"}], "has_more": false}, "rate": {"policy": "events_read", "limit": 300, "remaining": 299.2, "reset": 1, "retry_after": 0, "window": 60}, "principal": "user:u1"}"#;
        let r = Reply::parse(text).expect("an envelope");
        assert_eq!(r.status, 200);
        assert_eq!(
            r.body.get(),
            r#"{"events": [{"b": 1, "a": "x\u00e9"}], "has_more": false}"#,
            "byte for byte, key order and escapes kept"
        );
        let rate = r.rate.as_ref().expect("rate");
        assert_eq!((rate.policy.as_str(), rate.remaining), ("events_read", 300));
        assert_eq!(r.principal.as_deref(), Some("user:u1"));
        assert_eq!(r.body_value()["events"][0]["a"], "xé");
    }

    #[test]
    fn it_parses_what_envelope_parse_parses() {
        for v in [
            json!({"status": 429, "body": {"code": "RATE_LIMITED", "message": "m"}, "rate": {"limit": 5}, "principal": null}),
            json!({"status": 404, "body": null, "sqlstate": "AM404"}),
            json!({"status": 201}),
            json!({"status": 200, "body": [1, 2], "rate": "nope", "principal": 7}),
        ] {
            let env = Envelope::parse(v.clone()).expect("envelope");
            let r = Reply::parse(&v.to_string()).expect("reply");
            assert_eq!(r.into_envelope(), env, "{v}");
        }
        for bad in [
            json!({"status": 42}),
            json!({"status": "200"}),
            json!([1]),
            json!({"body": {}}),
        ] {
            assert!(Reply::parse(&bad.to_string()).is_none(), "{bad}");
        }
        assert!(Reply::parse("not json").is_none());
    }

    #[test]
    fn json_and_jsonb_columns_read_as_text() {
        let j = JsonText::from_sql(&Type::JSON, br#"{"a": 1}"#).expect("json");
        assert_eq!(j.0, r#"{"a": 1}"#);
        let j = JsonText::from_sql(&Type::JSONB, b"\x01{\"a\": 1}").expect("jsonb");
        assert_eq!(j.0, r#"{"a": 1}"#);
        assert!(JsonText::from_sql(&Type::JSONB, b"\x02{}").is_err());
        assert!(JsonText::from_sql(&Type::JSON, b"\xff").is_err());
        assert!(<JsonText as FromSql>::accepts(&Type::JSON));
        assert!(!<JsonText as FromSql>::accepts(&Type::TEXT));
    }
}
