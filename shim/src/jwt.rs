//! User JWT verification: HS256 shared secret, ES256/RS256 from a JWKS (file or URL).
//!
//! The key decides the algorithm: a JWKS key is selected by `kid` and carries its own algorithm;
//! the HS256 secret is only used for tokens whose header says HS256. `none`, algorithm
//! confusion and unknown `kid`s are rejected; `jku`, `x5u`, `x5c` and `jwk` headers are ignored.
//!
//! `jsonwebtoken` checks the signature, pins the algorithm to the key's and refuses `crit`
//! headers and claim payloads its reader cannot parse. The registered claims are checked by
//! [`validate_claims`], one plain function with one leeway constant, run at decode and again on
//! every cache hit. `jsonwebtoken::Validation`'s own claim checks stay off, because they differ
//! from these rules on cases the attack corpus (`jwt/tests/corpus.rs`) pins down:
//! - they read the wall clock, so `verify_at(token, now)` could not be tested at a fixed time,
//!   and they cannot re-check a cached token;
//! - `exp`/`nbf` are read as `u64` and floats are rounded: a negative `exp` reads as missing
//!   rather than expired, an `exp` beyond `u64` as missing rather than too long-lived, and an
//!   `exp` half a second past the leeway is rounded back into it (accepted);
//! - `iss` may be an array with one matching element (RFC 7519 makes it a single string), and
//!   `iss`/`aud` pass when absent unless listed as required;
//! - they run inside `decode`, before the lifetime, `iat` and `sub` rules, so a token failing
//!   several rules would report a different reason than [`validate_claims`] does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

mod claims;
mod jwks;

pub use claims::{validate_claims, ClaimError, ClaimRules};
use jwks::{fetch_jwks, jwks_client};
pub use jwks::{jwk_algorithm, parse_jwks, JwksKey, JwksSource};
use sha2::{Digest, Sha256};

/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECS: i64 = 30;
/// Longest token accepted at all.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Time allowed for one JWKS fetch.
pub const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest JWKS document accepted (file or URL).
pub const MAX_JWKS_BYTES: usize = 64 * 1024;

/// Why a token was rejected (for logs and metrics only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Empty, too long, or a header that is not a JWS header with a supported `alg`.
    #[error("malformed token")]
    Malformed,
    #[error("no key for this token")]
    UnknownKey,
    /// `jsonwebtoken::decode` refused it: wrong signature, an algorithm other than the key's, a
    /// `crit` header, or a payload its claim reader cannot parse.
    #[error("signature, algorithm or payload refused by the decoder")]
    DecodeFailed,
    #[error("claims rejected: {0}")]
    Claims(#[from] ClaimError),
}

/// A verified token's claims.
#[derive(Clone, Debug)]
pub struct Verified {
    pub claims: Arc<Value>,
    pub exp: i64,
}

pub struct Verifier {
    rules: ClaimRules,
    hs: Option<DecodingKey>,
    jwks: ArcSwap<HashMap<String, JwksKey>>,
    source: JwksSource,
    /// The JWKS URL's client, when a URL is configured.
    http: Option<reqwest::Client>,
    cooldown: Duration,
    last_unknown_refresh: tokio::sync::Mutex<Option<Instant>>,
    /// Verified claims by SHA-256 of the token; time-based rules are re-checked on each hit.
    cache: quick_cache::sync::Cache<[u8; 32], Arc<Value>>,
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
        let http = match source.url {
            Some(_) => Some(jwks_client()?),
            None => None,
        };
        Ok(Verifier {
            rules,
            hs,
            jwks: ArcSwap::from_pointee(HashMap::new()),
            source,
            http,
            cooldown,
            last_unknown_refresh: tokio::sync::Mutex::new(None),
            cache: quick_cache::sync::Cache::new(cache_size.max(1)),
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
        self.jwks.load().len()
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
            if bytes.len() > MAX_JWKS_BYTES {
                return Err(format!("JWKS file {} is larger than 64 KiB", p.display()));
            }
            keys.extend(parse_jwks(&bytes)?);
        }
        if let (Some(u), Some(client)) = (&self.source.url, &self.http) {
            let bytes = fetch_jwks(client, u)
                .await
                .map_err(|e| format!("cannot fetch JWKS URL: {e}"))?;
            keys.extend(parse_jwks(&bytes)?);
        }
        let n = keys.len();
        self.jwks.store(Arc::new(keys));
        Ok(n)
    }

    fn jwks_key(&self, kid: &str) -> Option<JwksKey> {
        self.jwks.load().get(kid).cloned()
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
        if let Some(claims) = self.cache.get(&digest) {
            // the signature was checked when cached; the time-based rules depend on `now`
            return match validate_claims(&claims, now, &self.rules) {
                Ok(exp) => Ok(Verified { claims, exp }),
                Err(e) => {
                    self.cache.remove(&digest);
                    Err(e.into())
                }
            };
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
        // signature and algorithm only: the claims are `validate_claims`'s (see the module docs)
        let mut validation = Validation::new(alg);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let decoding_key: &DecodingKey = match &key {
            KeyRef::Hs(k) => k,
            KeyRef::Jwks(k) => k,
        };
        let data = jsonwebtoken::decode::<Value>(token, decoding_key, &validation)
            .map_err(|_| VerifyError::DecodeFailed)?;
        let exp = validate_claims(&data.claims, now, &self.rules)?;
        let claims = Arc::new(data.claims);
        self.cache.insert(digest, claims.clone());
        Ok(Verified { claims, exp })
    }

    fn hs_ref(&self) -> Result<KeyRef<'_>, VerifyError> {
        self.hs
            .as_ref()
            .map(KeyRef::Hs)
            .ok_or(VerifyError::UnknownKey)
    }

    pub fn cache_len(&self) -> usize {
        self.cache.len()
    }
}

enum KeyRef<'a> {
    Hs(&'a DecodingKey),
    Jwks(Arc<DecodingKey>),
}

#[cfg(test)]
mod tests;
