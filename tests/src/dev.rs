//! Development credentials: a self-signed TLS certificate for 127.0.0.1/localhost, an HS256
//! secret, and user JWTs minted with it. Used by the run command and the end-to-end tests.

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use rand::RngCore;
use serde_json::json;
use std::path::Path;

/// PEM certificate and key for `localhost` and `127.0.0.1` (an end-entity certificate, not a CA).
pub fn tls_cert() -> (String, String) {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let key = rcgen::KeyPair::generate().expect("key generation");
    let params = rcgen::CertificateParams::new(names).expect("certificate parameters");
    let cert = params.self_signed(&key).expect("self-signed certificate");
    (cert.pem(), key.serialize_pem())
}

/// A random 256-bit HS256 secret, hex encoded.
pub fn hs256_secret() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// A user JWT signed with `secret`, valid for `ttl_secs`.
pub fn user_jwt(secret: &str, sub: &str, email: &str, ttl_secs: i64) -> String {
    let now = now();
    let claims = json!({
        "sub": sub, "aud": "authenticated", "role": "authenticated", "email": email,
        "iat": now, "exp": now + ttl_secs,
    });
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()).expect("HS256 key"),
    )
    .expect("HS256 signing")
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Writes `content` to `path` with mode 0600 (secrets) unless it exists; returns the content now there.
pub fn write_once(path: &Path, content: impl FnOnce() -> String) -> std::io::Result<String> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        return Ok(existing);
    }
    let c = content();
    std::fs::write(path, &c)?;
    let mut perms = std::fs::metadata(path)?.permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
    std::fs::set_permissions(path, perms)?;
    Ok(c)
}
