//! Webhook secrets and signatures (the Standard Webhooks scheme), and the retry schedule.
//!
//! - A signing secret is `whsec_` + base64 of 32 random bytes from the OS; the receiver gets it
//!   once. The database keeps it sealed with XChaCha20-Poly1305 under the server's
//!   `ama.webhook_secret_key` (64 hex characters), with the subscription id as associated data,
//!   so a sealed secret moved to another subscription does not open.
//! - A delivery is signed `v1,` + base64(HMAC-SHA256(secret bytes, "{id}.{timestamp}.{body}")).
//! - Retries back off exponentially with jitter: attempt n waits between half and all of
//!   `min(cap, base * 2^(n-1))`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;

/// Prefix of a signing secret as the receiver sees it.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a signing secret.
pub const SECRET_BYTES: usize = 32;
/// Length of the sealing key in bytes (64 hex characters in the setting).
pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
/// Consecutive failed deliveries after which a subscription is deactivated.
pub const MAX_CONSECUTIVE_FAILURES: i32 = 10;

/// Why the sealing key cannot be used (never shows the value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    Missing,
    Malformed,
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyError::Missing => "webhooks are not configured on this server (ama.webhook_secret_key is not set)",
            KeyError::Malformed => "webhooks are not configured on this server (ama.webhook_secret_key must be 64 hex characters)",
        })
    }
}

/// Parses the sealing key setting: exactly 64 hex characters (surrounding blanks ignored).
pub fn parse_key(setting: Option<&str>) -> Result<[u8; KEY_LEN], KeyError> {
    let s = setting.map(str::trim).unwrap_or("");
    if s.is_empty() {
        return Err(KeyError::Missing);
    }
    let bytes = hex::decode(s).map_err(|_| KeyError::Malformed)?;
    bytes.try_into().map_err(|_| KeyError::Malformed)
}

/// A fresh signing secret: `(text for the receiver, raw bytes)`.
pub fn new_secret() -> (String, [u8; SECRET_BYTES]) {
    let mut raw = [0u8; SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    (format!("{SECRET_PREFIX}{}", B64.encode(raw)), raw)
}

/// The raw bytes of a `whsec_...` secret (the prefix is optional, as in the reference libraries).
pub fn secret_bytes(secret: &str) -> Option<Vec<u8>> {
    B64.decode(secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret))
        .ok()
}

/// Seals the raw secret under `key`, bound to `aad` (the subscription id): nonce || ciphertext.
pub fn seal(key: &[u8; KEY_LEN], aad: &[u8], secret: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let sealed = XChaCha20Poly1305::new(key.into())
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: secret, aad })
        .expect("XChaCha20-Poly1305 encryption of a short secret cannot fail");
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    out
}

/// Opens a secret sealed by [`seal`]; `None` for another key, another `aad`, or tampering.
pub fn open(key: &[u8; KEY_LEN], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() <= NONCE_LEN {
        return None;
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    XChaCha20Poly1305::new(key.into())
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
        .ok()
}

/// The `webhook-signature` header value for one delivery.
pub fn sign(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<sha2_011::Sha256> as hmac::KeyInit>::new_from_slice(secret)
        .expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

/// The wait in milliseconds before retry number `failures` (1 for the first failure), given a
/// base and a cap in milliseconds and `unit`, a random number in `[0, 1)`: between half and all
/// of `min(cap, base * 2^(failures - 1))`, so waits never shrink as failures add up.
pub fn backoff_ms(failures: i32, base_ms: i64, cap_ms: i64, unit: f64) -> i64 {
    let base = base_ms.max(1);
    let cap = cap_ms.max(base);
    let shift = failures.saturating_sub(1).clamp(0, 62) as u32;
    let full = base.checked_mul(1i64 << shift).unwrap_or(cap).min(cap);
    let half = full / 2;
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let jitter = ((full - half) as f64 * unit) as i64;
    (half + jitter).clamp(half, full).max(1)
}

/// A random number in `[0, 1)` for [`backoff_ms`].
pub fn random_unit() -> f64 {
    (rand::rngs::OsRng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_standard_webhooks_vector() {
        let secret = secret_bytes("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            sign(
                &secret,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        // any change of id, timestamp or body changes the signature
        let base = sign(&secret, "a", 1, b"x");
        assert_ne!(base, sign(&secret, "b", 1, b"x"));
        assert_ne!(base, sign(&secret, "a", 2, b"x"));
        assert_ne!(base, sign(&secret, "a", 1, b"y"));
    }

    #[test]
    fn secrets_are_fresh_and_round_trip() {
        let (text, raw) = new_secret();
        assert!(text.starts_with("whsec_"));
        assert_eq!(secret_bytes(&text).unwrap(), raw);
        assert_eq!(text.len(), 6 + 44);
        assert_ne!(new_secret().1, raw);
        assert_eq!(secret_bytes("whsec_***"), None);
    }

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_subscription() {
        let key = [7u8; KEY_LEN];
        let (_, raw) = new_secret();
        let sealed = seal(&key, b"sub-1", &raw);
        assert_eq!(open(&key, b"sub-1", &sealed).unwrap(), raw);
        assert!(!sealed.windows(raw.len()).any(|w| w == raw));
        assert_eq!(open(&[8u8; KEY_LEN], b"sub-1", &sealed), None);
        assert_eq!(open(&key, b"sub-2", &sealed), None);
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(open(&key, b"sub-1", &bad), None);
        assert_eq!(open(&key, b"sub-1", &sealed[..10]), None);
        assert_ne!(seal(&key, b"sub-1", &raw), sealed, "fresh nonce");
    }

    #[test]
    fn keys_are_64_hex_characters() {
        assert_eq!(parse_key(None), Err(KeyError::Missing));
        assert_eq!(parse_key(Some("  ")), Err(KeyError::Missing));
        assert_eq!(parse_key(Some("abc")), Err(KeyError::Malformed));
        assert_eq!(parse_key(Some(&"zz".repeat(32))), Err(KeyError::Malformed));
        assert_eq!(parse_key(Some(&"ab".repeat(33))), Err(KeyError::Malformed));
        assert_eq!(parse_key(Some(&"0A".repeat(32))), Ok([10u8; 32]));
        // the message never carries the value
        let k = "ab".repeat(31);
        assert!(!KeyError::Malformed.to_string().contains(&k));
    }

    #[test]
    fn backoff_grows_to_its_cap_with_bounded_jitter() {
        assert_eq!(backoff_ms(1, 1000, 60_000, 0.0), 500);
        assert_eq!(backoff_ms(1, 1000, 60_000, 0.999_999), 999);
        assert_eq!(backoff_ms(2, 1000, 60_000, 0.0), 1000);
        assert_eq!(backoff_ms(4, 1000, 60_000, 0.5), 6000);
        assert_eq!(backoff_ms(10, 1000, 60_000, 0.0), 30_000);
        assert_eq!(backoff_ms(10, 1000, 60_000, 1.0), 60_000);
        assert_eq!(
            backoff_ms(1000, 1000, 60_000, 0.3),
            backoff_ms(70, 1000, 60_000, 0.3)
        );
        assert_eq!(backoff_ms(0, 1000, 60_000, 0.0), 500);
        assert_eq!(backoff_ms(3, 0, 0, 0.0), 1, "at least a millisecond");
        assert_eq!(
            backoff_ms(3, 100, 10, f64::NAN),
            50,
            "cap below base: the base"
        );
        // below the cap, the lowest wait after n + 1 failures is the highest after n
        for n in 1..14 {
            assert!(backoff_ms(n + 1, 250, 3_600_000, 0.0) >= backoff_ms(n, 250, 3_600_000, 1.0));
        }
        for _ in 0..100 {
            let u = random_unit();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
