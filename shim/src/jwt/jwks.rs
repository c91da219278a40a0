//! JWKS keys: parsing a key set, the algorithm each key is used with, and fetching the set
//! from a URL.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use super::{JWKS_FETCH_TIMEOUT, MAX_JWKS_BYTES};

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

/// The client for the JWKS URL: http or https (rustls with aws-lc-rs and the webpki roots), no
/// redirects, no proxy from the environment, one overall timeout.
pub(super) fn jwks_client() -> Result<reqwest::Client, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        })
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(JWKS_FETCH_TIMEOUT)
        .user_agent(concat!("ama-shim/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("JWKS HTTP client: {e}"))
}

/// An error with its sources (reqwest's own message rarely says what went wrong).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

/// GETs the JWKS at `url`: a 2xx answer of at most [`MAX_JWKS_BYTES`].
pub(super) async fn fetch_jwks(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let mut resp = client
        .get(url)
        .header(http::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| error_chain(&e))?;
    if !resp.status().is_success() {
        return Err(format!("HTTP status {}", resp.status()));
    }
    let too_big = || format!("body larger than {MAX_JWKS_BYTES} bytes");
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
    {
        return Err(too_big());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| error_chain(&e))? {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
