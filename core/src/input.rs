//! Request fields the API routes read: a UUID and a bounded integer from JSON, with the same
//! acceptance and the same messages the PL/pgSQL versions had (`field: expected a UUID`, ...).

use serde_json::Value;

/// `value` as a UUID: a JSON string in the 8-4-4-4-12 hex form (any case). `Err` carries the
/// message for 22023.
pub fn uuid_field(value: Option<&Value>, field: &str) -> Result<uuid::Uuid, String> {
    let err = || format!("{field}: expected a UUID");
    let Some(Value::String(s)) = value else {
        return Err(err());
    };
    let b = s.as_bytes();
    let shaped = b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        });
    if !shaped {
        return Err(err());
    }
    uuid::Uuid::parse_str(s).map_err(|_| err())
}

/// `value` as an integer within `[min, max]`: a JSON string or number whose text is
/// `-?[0-9]{1,18}`; `None` for SQL NULL or JSON null. `Err` carries the message for 22023.
pub fn int_field(
    value: Option<&Value>,
    field: &str,
    min: i64,
    max: i64,
) -> Result<Option<i64>, String> {
    let text = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err(format!("{field}: expected an integer")),
    };
    let digits = text.strip_prefix('-').unwrap_or(&text);
    if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!("{field}: expected an integer"));
    }
    let n: i64 = text
        .parse()
        .map_err(|_| format!("{field}: expected an integer"))?;
    if n < min || n > max {
        return Err(format!("{field}: must be between {min} and {max}"));
    }
    Ok(Some(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn uuids() {
        let id = "0F0E0D0C-0000-4000-8000-00000000000a";
        assert_eq!(
            uuid_field(Some(&json!(id)), "thread_id").map(|u| u.to_string()),
            Ok(id.to_lowercase())
        );
        for bad in [
            json!(null),
            json!(5),
            json!(["0f0e0d0c-0000-4000-8000-00000000000a"]),
            json!("0f0e0d0c-0000-4000-8000-00000000000"),
            json!("0f0e0d0c00004000800000000000000a"),
            json!("{0f0e0d0c-0000-4000-8000-00000000000a}"),
            json!("0f0e0d0c-0000-4000-8000-00000000000g"),
            json!(" 0f0e0d0c-0000-4000-8000-00000000000a"),
        ] {
            assert_eq!(
                uuid_field(Some(&bad), "thread_id"),
                Err("thread_id: expected a UUID".into()),
                "{bad}"
            );
        }
        assert!(uuid_field(None, "x").is_err());
    }

    #[test]
    fn integers() {
        let f = |v: Value| int_field(Some(&v), "limit", 1, 200);
        assert_eq!(f(json!("50")), Ok(Some(50)));
        assert_eq!(f(json!(50)), Ok(Some(50)));
        assert_eq!(f(json!("0050")), Ok(Some(50)));
        assert_eq!(f(json!(null)), Ok(None));
        assert_eq!(int_field(None, "limit", 1, 200), Ok(None));
        let not_int = Err("limit: expected an integer".to_string());
        for bad in [
            json!("5.0"),
            json!(5.5),
            json!("+5"),
            json!(""),
            json!("-"),
            json!(" 5"),
            json!(true),
            json!({}),
            json!("1234567890123456789"),
        ] {
            assert_eq!(f(bad.clone()), not_int, "{bad}");
        }
        let range = Err("limit: must be between 1 and 200".to_string());
        assert_eq!(f(json!(0)), range);
        assert_eq!(f(json!("201")), range);
        assert_eq!(f(json!("-3")), range);
        assert_eq!(
            int_field(
                Some(&json!("-1")),
                "after_seq",
                0,
                9_223_372_036_854_775_806
            ),
            Err("after_seq: must be between 0 and 9223372036854775806".into())
        );
    }
}
