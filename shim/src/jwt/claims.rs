//! The registered claims of a user JWT, checked by one plain function with one leeway constant.

use serde_json::Value;

use super::LEEWAY_SECS;

/// What the claims must satisfy.
#[derive(Debug, Clone)]
pub struct ClaimRules {
    pub audience: String,
    pub issuer: Option<String>,
    pub max_lifetime_secs: u64,
}

/// Why claims were rejected (for logs and metrics only; clients get one generic message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("claims are not a JSON object")]
    NotAnObject,
    #[error("exp missing or not a number")]
    MissingExp,
    #[error("expired")]
    Expired,
    #[error("not yet valid (nbf)")]
    NotYetValid,
    #[error("issued in the future (iat)")]
    IssuedInFuture,
    #[error("lifetime (exp - iat) too long")]
    LifetimeTooLong,
    #[error("wrong audience")]
    BadAudience,
    #[error("wrong issuer")]
    BadIssuer,
    #[error("sub is not a UUID")]
    BadSubject,
}

fn numeric(v: Option<&Value>) -> Result<Option<i64>, ()> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f.floor() as i64))
            .map(Some)
            .ok_or(()),
        Some(_) => Err(()),
    }
}

/// Checks the registered claims at time `now` (seconds since the epoch). Returns `exp`.
pub fn validate_claims(claims: &Value, now: i64, rules: &ClaimRules) -> Result<i64, ClaimError> {
    let obj = claims.as_object().ok_or(ClaimError::NotAnObject)?;
    let exp = numeric(obj.get("exp"))
        .map_err(|_| ClaimError::MissingExp)?
        .ok_or(ClaimError::MissingExp)?;
    if now > exp.saturating_add(LEEWAY_SECS) {
        return Err(ClaimError::Expired);
    }
    if let Some(nbf) = numeric(obj.get("nbf")).map_err(|_| ClaimError::NotYetValid)? {
        if nbf > now.saturating_add(LEEWAY_SECS) {
            return Err(ClaimError::NotYetValid);
        }
    }
    let iat = numeric(obj.get("iat")).map_err(|_| ClaimError::IssuedInFuture)?;
    if let Some(iat) = iat {
        if iat > now.saturating_add(LEEWAY_SECS) {
            return Err(ClaimError::IssuedInFuture);
        }
    }
    let lifetime = exp.saturating_sub(iat.unwrap_or(now));
    if lifetime > i64::try_from(rules.max_lifetime_secs).unwrap_or(i64::MAX) {
        return Err(ClaimError::LifetimeTooLong);
    }
    let aud_ok = match obj.get("aud") {
        Some(Value::String(s)) => *s == rules.audience,
        Some(Value::Array(a)) => a
            .iter()
            .any(|v| v.as_str() == Some(rules.audience.as_str())),
        _ => false,
    };
    if !aud_ok {
        return Err(ClaimError::BadAudience);
    }
    if let Some(iss) = &rules.issuer {
        if obj.get("iss").and_then(Value::as_str) != Some(iss.as_str()) {
            return Err(ClaimError::BadIssuer);
        }
    }
    let sub_ok = obj
        .get("sub")
        .and_then(Value::as_str)
        .is_some_and(|s| ama_core::claims::user_id(s).is_some());
    if !sub_ok {
        return Err(ClaimError::BadSubject);
    }
    Ok(exp)
}
