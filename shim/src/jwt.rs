//! User JWT verification: HS256 shared secret, ES256/RS256 from a JWKS (file or URL).
//!
//! The key decides the algorithm: a JWKS key is selected by `kid` and carries its own algorithm;
//! the HS256 secret is only used for tokens whose header says HS256. `none`, algorithm
//! confusion and unknown `kid`s are rejected; `jku`, `x5u`, `x5c` and `jwk` headers are ignored.
//! Claims are checked by [`validate_claims`], a plain function with one leeway constant.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECS: i64 = 30;
/// Longest token accepted at all.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Time allowed for one JWKS fetch.
pub const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// What the claims must satisfy.
#[derive(Debug, Clone)]
pub struct ClaimRules {
    pub audience: String,
    pub issuer: Option<String>,
    pub max_lifetime_secs: u64,
}

/// Why claims were rejected (for logs and metrics only; clients get one generic message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimError {
    NotAnObject,
    MissingExp,
    Expired,
    NotYetValid,
    IssuedInFuture,
    LifetimeTooLong,
    BadAudience,
    BadIssuer,
    BadSubject,
}

/// Why a token was rejected (for logs and metrics only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyError {
    Malformed,
    UnknownKey,
    BadSignature,
    Claims(ClaimError),
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyError::Malformed => f.write_str("malformed token"),
            VerifyError::UnknownKey => f.write_str("no key for this token"),
            VerifyError::BadSignature => f.write_str("signature or algorithm check failed"),
            VerifyError::Claims(c) => write!(f, "claims rejected: {c:?}"),
        }
    }
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
        .is_some_and(|s| s.len() == 36 && uuid::Uuid::parse_str(s).is_ok());
    if !sub_ok {
        return Err(ClaimError::BadSubject);
    }
    Ok(exp)
}

/// The algorithm a JWK is used with, or `None` for keys this shim does not accept.
pub fn jwk_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let alg = match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        _ => return None,
    };
    match (jwk.common.key_algorithm, alg) {
        (None, a) => Some(a),
        (Some(KeyAlgorithm::ES256), Algorithm::ES256)
        | (Some(KeyAlgorithm::RS256), Algorithm::RS256) => Some(alg),
        _ => None,
    }
}

/// A usable JWKS key.
#[derive(Clone)]
pub struct JwksKey {
    pub alg: Algorithm,
    pub key: Arc<DecodingKey>,
}

/// Parses a JWKS document; keys without `kid`, of unsupported types or unparsable are skipped.
pub fn parse_jwks(bytes: &[u8]) -> Result<HashMap<String, JwksKey>, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("JWKS is not JSON: {e}"))?;
    let keys = v
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("JWKS has no `keys` array")?;
    let mut out = HashMap::new();
    for k in keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(k.clone()) else {
            continue;
        };
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        let Some(alg) = jwk_algorithm(&jwk) else {
            continue;
        };
        let Ok(key) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        out.insert(
            kid,
            JwksKey {
                alg,
                key: Arc::new(key),
            },
        );
    }
    Ok(out)
}

/// A verified token's claims.
#[derive(Clone, Debug)]
pub struct Verified {
    pub claims: Arc<Value>,
    pub exp: i64,
}

struct CacheEntry {
    claims: Arc<Value>,
}

/// Where JWKS keys come from.
#[derive(Clone, Debug, Default)]
pub struct JwksSource {
    pub file: Option<PathBuf>,
    pub url: Option<String>,
}

impl JwksSource {
    pub fn is_configured(&self) -> bool {
        self.file.is_some() || self.url.is_some()
    }
}

pub struct Verifier {
    rules: ClaimRules,
    hs: Option<DecodingKey>,
    jwks: RwLock<HashMap<String, JwksKey>>,
    source: JwksSource,
    cooldown: Duration,
    last_unknown_refresh: tokio::sync::Mutex<Option<Instant>>,
    cache: Mutex<HashMap<[u8; 32], CacheEntry>>,
    cache_size: usize,
}

/// Seconds since the epoch.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Verifier {
    pub fn new(
        rules: ClaimRules,
        hs_secret: Option<&[u8]>,
        source: JwksSource,
        cooldown: Duration,
        cache_size: usize,
    ) -> Result<Self, String> {
        let hs = match hs_secret {
            Some(s) => Some(
                DecodingKey::from_secret(s)
                    .map_err(|_| "the JWT secret is not usable".to_string())?,
            ),
            None => None,
        };
        Ok(Verifier {
            rules,
            hs,
            jwks: RwLock::new(HashMap::new()),
            source,
            cooldown,
            last_unknown_refresh: tokio::sync::Mutex::new(None),
            cache: Mutex::new(HashMap::new()),
            cache_size: cache_size.max(1),
        })
    }

    pub fn source(&self) -> &JwksSource {
        &self.source
    }

    /// Whether any JWT can be verified at all.
    pub fn is_configured(&self) -> bool {
        self.hs.is_some() || self.source.is_configured()
    }

    pub fn key_count(&self) -> usize {
        self.jwks.read().map(|g| g.len()).unwrap_or(0)
    }

    /// Reloads the JWKS from the file and/or URL. On any failure the old keys stay.
    pub async fn refresh(&self) -> Result<usize, String> {
        if !self.source.is_configured() {
            return Ok(0);
        }
        let mut keys = HashMap::new();
        if let Some(p) = &self.source.file {
            let bytes = tokio::fs::read(p)
                .await
                .map_err(|e| format!("cannot read JWKS file {}: {e}", p.display()))?;
            if bytes.len() > crate::fetch::MAX_JWKS_BYTES {
                return Err(format!("JWKS file {} is larger than 64 KiB", p.display()));
            }
            keys.extend(parse_jwks(&bytes)?);
        }
        if let Some(u) = &self.source.url {
            let bytes = crate::fetch::get(u, crate::fetch::MAX_JWKS_BYTES, JWKS_FETCH_TIMEOUT)
                .await
                .map_err(|e| format!("cannot fetch JWKS URL: {e}"))?;
            keys.extend(parse_jwks(&bytes)?);
        }
        let n = keys.len();
        match self.jwks.write() {
            Ok(mut g) => *g = keys,
            Err(p) => *p.into_inner() = keys,
        }
        Ok(n)
    }

    fn jwks_key(&self, kid: &str) -> Option<JwksKey> {
        self.jwks.read().ok().and_then(|g| g.get(kid).cloned())
    }

    /// Refreshes on an unknown `kid`, at most once per cooldown.
    async fn refresh_for_unknown_kid(&self) {
        if !self.source.is_configured() {
            return;
        }
        let mut last = self.last_unknown_refresh.lock().await;
        if last.is_some_and(|t| t.elapsed() < self.cooldown) {
            return;
        }
        *last = Some(Instant::now());
        if let Err(e) = self.refresh().await {
            tracing::warn!(error = %e, "JWKS refresh on unknown kid failed");
        } else {
            tracing::info!(keys = self.key_count(), "JWKS refreshed on unknown kid");
        }
    }

    /// Verifies `token` at the current time.
    pub async fn verify(&self, token: &str) -> Result<Verified, VerifyError> {
        self.verify_at(token, now_secs()).await
    }

    pub async fn verify_at(&self, token: &str, now: i64) -> Result<Verified, VerifyError> {
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Err(VerifyError::Malformed);
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let cached = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.get(&digest).map(|e| e.claims.clone()));
        if let Some(claims) = cached {
            // time-based checks again; cheap
            let exp = validate_claims(&claims, now, &self.rules).map_err(VerifyError::Claims)?;
            return Ok(Verified { claims, exp });
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
        let (alg, key): (Algorithm, KeyRef<'_>) = match header.kid.as_deref() {
            Some(kid) => match self.jwks_key(kid) {
                Some(k) => (k.alg, KeyRef::Jwks(k.key)),
                None if header.alg == Algorithm::HS256 && self.hs.is_some() => {
                    (Algorithm::HS256, self.hs_ref()?)
                }
                None => {
                    self.refresh_for_unknown_kid().await;
                    let k = self.jwks_key(kid).ok_or(VerifyError::UnknownKey)?;
                    (k.alg, KeyRef::Jwks(k.key))
                }
            },
            None if header.alg == Algorithm::HS256 => (Algorithm::HS256, self.hs_ref()?),
            None => return Err(VerifyError::UnknownKey),
        };
        let mut validation = Validation::new(alg);
        validation.algorithms = vec![alg];
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        let decoding_key: &DecodingKey = match &key {
            KeyRef::Hs(k) => k,
            KeyRef::Jwks(k) => k,
        };
        let data = jsonwebtoken::decode::<Value>(token, decoding_key, &validation)
            .map_err(|_| VerifyError::BadSignature)?;
        let exp = validate_claims(&data.claims, now, &self.rules).map_err(VerifyError::Claims)?;
        let claims = Arc::new(data.claims);
        self.cache_insert(digest, claims.clone(), now);
        Ok(Verified { claims, exp })
    }

    fn hs_ref(&self) -> Result<KeyRef<'_>, VerifyError> {
        self.hs
            .as_ref()
            .map(KeyRef::Hs)
            .ok_or(VerifyError::UnknownKey)
    }

    fn cache_insert(&self, digest: [u8; 32], claims: Arc<Value>, now: i64) {
        let Ok(mut c) = self.cache.lock() else { return };
        if c.len() >= self.cache_size {
            let rules = &self.rules;
            c.retain(|_, e| validate_claims(&e.claims, now, rules).is_ok());
            if c.len() >= self.cache_size {
                let drop_n = (self.cache_size / 8).max(1);
                let victims: Vec<[u8; 32]> = c.keys().take(drop_n).copied().collect();
                for v in victims {
                    c.remove(&v);
                }
            }
        }
        c.insert(digest, CacheEntry { claims });
    }

    pub fn cache_len(&self) -> usize {
        self.cache.lock().map(|c| c.len()).unwrap_or(0)
    }
}

enum KeyRef<'a> {
    Hs(&'a DecodingKey),
    Jwks(Arc<DecodingKey>),
}

#[cfg(test)]
mod tests;
