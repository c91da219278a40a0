//! Sealed live-event notifications.
//!
//! A committed message is announced with `NOTIFY ama_events, <payload>`, and PostgreSQL lets any
//! role `LISTEN` to any channel. So the payload is sealed: XChaCha20-Poly1305 under a 32-byte key
//! that only the extension and the shim hold, with a fresh random 24-byte nonce per notification.
//! A listener without the key learns neither thread ids nor how many messages each thread gets
//! (two notifications of one thread look unrelated). The payload is the lower-case hex of
//! `nonce || ciphertext || tag`, where the plaintext is the thread's 16 UUID bytes followed by
//! the message's `thread_seq` as 8 big-endian bytes.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

/// Length of the sealing key in bytes.
pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const PLAIN_LEN: usize = 16 + 8;
const TAG_LEN: usize = 16;
/// Length of a sealed payload in hex characters.
pub const PAYLOAD_HEX_LEN: usize = 2 * (NONCE_LEN + PLAIN_LEN + TAG_LEN);

/// Seals `(thread, seq)` under `key` with a fresh random nonce.
pub fn seal(key: &[u8; KEY_LEN], thread: &[u8; 16], seq: i64) -> String {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    seal_with_nonce(key, thread, seq, &nonce)
}

fn seal_with_nonce(
    key: &[u8; KEY_LEN],
    thread: &[u8; 16],
    seq: i64,
    nonce: &[u8; NONCE_LEN],
) -> String {
    let mut plain = [0u8; PLAIN_LEN];
    plain[..16].copy_from_slice(thread);
    plain[16..].copy_from_slice(&seq.to_be_bytes());
    let cipher = XChaCha20Poly1305::new(key.into());
    let sealed = cipher
        .encrypt(XNonce::from_slice(nonce), plain.as_slice())
        .expect("XChaCha20-Poly1305 encryption of 24 bytes cannot fail");
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(nonce);
    out.extend_from_slice(&sealed);
    hex::encode(out)
}

/// Opens a payload sealed by [`seal`]: `(thread UUID bytes, seq)`, or `None` for anything that is
/// not a payload sealed under `key` (wrong key, tampered, truncated, not hex).
pub fn open(key: &[u8; KEY_LEN], payload: &str) -> Option<([u8; 16], i64)> {
    if payload.len() != PAYLOAD_HEX_LEN {
        return None;
    }
    let bytes = hex::decode(payload).ok()?;
    let (nonce, sealed) = bytes.split_at(NONCE_LEN);
    let cipher = XChaCha20Poly1305::new(key.into());
    let plain = cipher.decrypt(XNonce::from_slice(nonce), sealed).ok()?;
    let thread: [u8; 16] = plain.get(..16)?.try_into().ok()?;
    let seq = i64::from_be_bytes(plain.get(16..PLAIN_LEN)?.try_into().ok()?);
    Some((thread, seq))
}

/// Marks a typing notice's plaintext (a message notice's plaintext is exactly 24 bytes, a typing
/// notice's is longer: the two can never be mistaken for each other).
const TYPING_TAG: u8 = b'T';
/// Longest actor id a typing notice carries.
pub const TYPING_ACTOR_MAX: usize = 120;
/// How far a typing notice's sealed issue time may be from the receiver's clock, either way. Any
/// database login can `NOTIFY ama_events` again with a notice it captured by `LISTEN`; outside
/// this window the copy is refused, so a replay cannot show a stale "typing" or get around the
/// per-socket typing limit for longer than this.
pub const TYPING_MAX_AGE_MS: i64 = 10_000;
/// 'T', started, issued at (8 bytes), thread (16 bytes).
const TYPING_HEAD: usize = 2 + 8 + 16;

/// Seals an ephemeral typing notice `(thread, actor id, started)` issued at `issued_ms` (Unix
/// milliseconds) the same way as [`seal`]: plaintext `'T' || started (0/1) || issued_ms (8 bytes,
/// big-endian) || thread (16 bytes) || actor id (UTF-8)`. `None` for an actor id that is shorter
/// than 7 bytes or longer than [`TYPING_ACTOR_MAX`].
pub fn seal_typing(
    key: &[u8; KEY_LEN],
    thread: &[u8; 16],
    actor: &str,
    started: bool,
    issued_ms: i64,
) -> Option<String> {
    if actor.len() < 7 || actor.len() > TYPING_ACTOR_MAX {
        return None;
    }
    let mut plain = Vec::with_capacity(TYPING_HEAD + actor.len());
    plain.push(TYPING_TAG);
    plain.push(u8::from(started));
    plain.extend_from_slice(&issued_ms.to_be_bytes());
    plain.extend_from_slice(thread);
    plain.extend_from_slice(actor.as_bytes());
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let cipher = XChaCha20Poly1305::new(key.into());
    let sealed = cipher
        .encrypt(XNonce::from_slice(&nonce), plain.as_slice())
        .ok()?;
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Some(hex::encode(out))
}

/// Opens a typing notice sealed by [`seal_typing`]: `(thread, actor id, started)`, or `None`,
/// also when it was issued more than [`TYPING_MAX_AGE_MS`] away from `now_ms` (a replay).
pub fn open_typing(
    key: &[u8; KEY_LEN],
    payload: &str,
    now_ms: i64,
) -> Option<([u8; 16], String, bool)> {
    if payload.len() <= PAYLOAD_HEX_LEN
        || payload.len() > 2 * (NONCE_LEN + TYPING_HEAD + TYPING_ACTOR_MAX + TAG_LEN)
    {
        return None;
    }
    let bytes = hex::decode(payload).ok()?;
    let (nonce, sealed) = bytes.split_at(NONCE_LEN);
    let cipher = XChaCha20Poly1305::new(key.into());
    let plain = cipher.decrypt(XNonce::from_slice(nonce), sealed).ok()?;
    if plain.first() != Some(&TYPING_TAG) || plain.len() < TYPING_HEAD + 7 {
        return None;
    }
    let started = match plain[1] {
        0 => false,
        1 => true,
        _ => return None,
    };
    let issued_ms = i64::from_be_bytes(plain.get(2..10)?.try_into().ok()?);
    if now_ms.abs_diff(issued_ms) > TYPING_MAX_AGE_MS.unsigned_abs() {
        return None;
    }
    let thread: [u8; 16] = plain.get(10..TYPING_HEAD)?.try_into().ok()?;
    let actor = String::from_utf8(plain[TYPING_HEAD..].to_vec()).ok()?;
    Some((thread, actor, started))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; KEY_LEN] = [7; KEY_LEN];
    const THREAD: [u8; 16] = [0xab; 16];

    const NOW: i64 = 1_796_000_000_000;

    #[test]
    fn typing_notices_round_trip_and_never_pass_for_messages() {
        let actor = "user:0d1c6f4e-8a43-4a4e-9a53-0c1f2d3e4f50";
        let p = seal_typing(&KEY, &THREAD, actor, true, NOW).expect("sealed");
        assert_eq!(
            open_typing(&KEY, &p, NOW),
            Some((THREAD, actor.to_string(), true))
        );
        assert_eq!(open(&KEY, &p), None, "a typing notice is no message notice");
        assert!(!p.contains(&hex::encode(actor)));
        let stopped = seal_typing(&KEY, &THREAD, actor, false, NOW).expect("sealed");
        assert_eq!(open_typing(&KEY, &stopped, NOW).map(|t| t.2), Some(false));
        assert_eq!(open_typing(&KEY, &seal(&KEY, &THREAD, 3), NOW), None);
        assert_eq!(open_typing(&[8; KEY_LEN], &p, NOW), None);
        assert_eq!(seal_typing(&KEY, &THREAD, "", true, NOW), None);
        assert_eq!(
            seal_typing(&KEY, &THREAD, &"x".repeat(121), true, NOW),
            None
        );
    }

    #[test]
    fn a_replayed_typing_notice_is_refused_outside_its_window() {
        let actor = "agent:0d1c6f4e";
        let p = seal_typing(&KEY, &THREAD, actor, true, NOW).expect("sealed");
        for (now, opens) in [
            (NOW + TYPING_MAX_AGE_MS, true),
            (NOW - TYPING_MAX_AGE_MS, true),
            (NOW + TYPING_MAX_AGE_MS + 1, false),
            (NOW - TYPING_MAX_AGE_MS - 1, false),
            (NOW + 3_600_000, false),
            (i64::MIN, false),
            (i64::MAX, false),
        ] {
            assert_eq!(open_typing(&KEY, &p, now).is_some(), opens, "now = {now}");
        }
    }

    #[test]
    fn round_trip() {
        let p = seal(&KEY, &THREAD, 42);
        assert_eq!(p.len(), PAYLOAD_HEX_LEN);
        assert_eq!(open(&KEY, &p), Some((THREAD, 42)));
    }

    #[test]
    fn payload_reveals_nothing_and_never_repeats() {
        let a = seal(&KEY, &THREAD, 1);
        let b = seal(&KEY, &THREAD, 1);
        assert_ne!(a, b, "a fresh nonce each time");
        assert!(!a.contains(&hex::encode(THREAD)));
        // A known nonce gives a known output (the format is stable).
        let n = [1u8; NONCE_LEN];
        assert_eq!(
            seal_with_nonce(&KEY, &THREAD, 1, &n),
            seal_with_nonce(&KEY, &THREAD, 1, &n)
        );
    }

    #[test]
    fn wrong_key_tampering_and_garbage_are_refused() {
        let p = seal(&KEY, &THREAD, 9);
        assert_eq!(open(&[8; KEY_LEN], &p), None);
        let mut t = p.clone().into_bytes();
        let last = t.len() - 1;
        t[last] = if t[last] == b'0' { b'1' } else { b'0' };
        assert_eq!(open(&KEY, std::str::from_utf8(&t).unwrap()), None);
        assert_eq!(open(&KEY, &p[..p.len() - 2]), None);
        assert_eq!(open(&KEY, ""), None);
        assert_eq!(open(&KEY, &"zz".repeat(PAYLOAD_HEX_LEN / 2)), None);
        let legacy = "0f0e0d0c-0000-4000-8000-000000000001:5";
        assert_eq!(open(&KEY, legacy), None);
    }
}
