//! Credential formats: external agent tokens (`ama_eat_`), visitor tokens (`ama_vst_`) and
//! internal API keys (`ama_ik_`).
//!
//! A token is `<prefix><hex>`: 32 random bytes (256 bits from the OS CSPRNG) as 64 hex digits,
//! followed by 8 hex digits holding the CRC32 of the random hex. The checksum lets the shim and
//! the extension reject a mistyped or forged token before any database work, and lets secret
//! scanners recognise real tokens. Only the SHA-256 of the whole token string is ever stored.

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Number of random bytes in a token (256 bits; the contract asks for at least 128).
pub const RANDOM_BYTES: usize = 32;
/// Hex digits of the random part.
pub const RANDOM_HEX: usize = RANDOM_BYTES * 2;
/// Hex digits of the CRC32 checksum.
pub const CHECKSUM_HEX: usize = 8;
/// Hex digits kept after the prefix in the display prefix (`ama_eat_a1b2`).
pub const DISPLAY_HEX: usize = 4;

/// The kinds of secret this project issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// External agent token, `Authorization: Bearer ama_eat_...`.
    Agent,
    /// Visitor token for one public thread, `Authorization: Bearer ama_vst_...`.
    Visitor,
    /// Internal API key, `X-Internal-API-Key: ama_ik_...`.
    InternalKey,
}

impl TokenKind {
    /// Every kind, in the order prefixes are tried.
    pub const ALL: [TokenKind; 3] = [TokenKind::Agent, TokenKind::Visitor, TokenKind::InternalKey];

    /// The kind's name where a credential kind is written down: the shim's call of
    /// `ama.request()`, logs, metrics and `ama._token_new()`.
    pub const fn name(self) -> &'static str {
        match self {
            TokenKind::Agent => "agent",
            TokenKind::Visitor => "visitor",
            TokenKind::InternalKey => "internal",
        }
    }

    /// The kind with this name (`agent`, `visitor`, `internal`).
    pub fn from_name(name: &str) -> Option<TokenKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The kind of principal a verified token of this kind acts as (`ama.principal_kind()`).
    pub const fn principal_kind(self) -> &'static str {
        match self {
            TokenKind::Agent => "agent",
            TokenKind::Visitor => "visitor",
            TokenKind::InternalKey => "service",
        }
    }

    /// The literal prefix of this kind.
    pub const fn prefix(self) -> &'static str {
        match self {
            TokenKind::Agent => "ama_eat_",
            TokenKind::Visitor => "ama_vst_",
            TokenKind::InternalKey => "ama_ik_",
        }
    }

    /// Total length of a well-formed token of this kind.
    pub const fn token_len(self) -> usize {
        self.prefix().len() + RANDOM_HEX + CHECKSUM_HEX
    }
}

/// Why a presented token is malformed. Messages never echo the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatError {
    /// The token does not start with the expected prefix.
    WrongPrefix,
    /// The token is not the expected length.
    WrongLength,
    /// The body holds a character that is not lower-case hex.
    BadHex,
    /// The trailing CRC32 does not match the body.
    BadChecksum,
}

impl std::fmt::Display for TokenKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for TokenKind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TokenKind::from_name(s).ok_or(UnknownKind)
    }
}

/// A credential kind name that is not `agent`, `visitor` or `internal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownKind;

impl std::fmt::Display for UnknownKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("token kind must be one of agent, visitor, internal")
    }
}

impl std::error::Error for UnknownKind {}

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FormatError::WrongPrefix => "token has the wrong prefix",
            FormatError::WrongLength => "token has the wrong length",
            FormatError::BadHex => "token body is not lower-case hex",
            FormatError::BadChecksum => "token checksum does not match",
        })
    }
}

impl std::error::Error for FormatError {}

/// A freshly generated token: the raw secret (shown once) and what is stored.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The raw token, returned to the caller exactly once.
    pub raw: String,
    /// SHA-256 of `raw`, the only form stored.
    pub hash: [u8; 32],
    /// Display prefix, e.g. `ama_eat_a1b2`.
    pub display_prefix: String,
}

fn checksum_hex(body: &str) -> String {
    format!("{:08x}", crc32fast::hash(body.as_bytes()))
}

/// A token of `kind` around `body` (hex): the prefix, the body and the body's CRC32.
pub fn compose(kind: TokenKind, body: &str) -> String {
    format!("{}{}{}", kind.prefix(), body, checksum_hex(body))
}

/// Generates a new token of `kind` from the operating system's CSPRNG.
pub fn generate(kind: TokenKind) -> Issued {
    let mut bytes = [0u8; RANDOM_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let raw = compose(kind, &hex::encode(bytes));
    let display_prefix = display_prefix(kind, &raw);
    Issued {
        hash: hash(&raw),
        raw,
        display_prefix,
    }
}

/// The display prefix of a token: the kind prefix plus its first four hex digits.
pub fn display_prefix(kind: TokenKind, raw: &str) -> String {
    let end = (kind.prefix().len() + DISPLAY_HEX).min(raw.len());
    raw.get(..end).unwrap_or(kind.prefix()).to_string()
}

/// Checks prefix, length, hex alphabet and checksum, in that order, without any lookup.
pub fn check_format(kind: TokenKind, raw: &str) -> Result<(), FormatError> {
    let rest = raw
        .strip_prefix(kind.prefix())
        .ok_or(FormatError::WrongPrefix)?;
    if rest.len() != RANDOM_HEX + CHECKSUM_HEX {
        return Err(FormatError::WrongLength);
    }
    if !rest
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(FormatError::BadHex);
    }
    let (body, sum) = rest.split_at(RANDOM_HEX);
    if checksum_hex(body).as_bytes().ct_eq(sum.as_bytes()).into() {
        Ok(())
    } else {
        Err(FormatError::BadChecksum)
    }
}

/// Which kind a presented token claims to be, by prefix alone.
pub fn kind_of(raw: &str) -> Option<TokenKind> {
    TokenKind::ALL
        .into_iter()
        .find(|k| raw.starts_with(k.prefix()))
}

/// SHA-256 of a raw token, the form that is stored and looked up.
pub fn hash(raw: &str) -> [u8; 32] {
    Sha256::digest(raw.as_bytes()).into()
}

/// Constant-time equality of two stored hashes.
pub fn hashes_equal(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_well_formed_and_distinct() {
        for kind in [TokenKind::Agent, TokenKind::Visitor, TokenKind::InternalKey] {
            let a = generate(kind);
            let b = generate(kind);
            assert_ne!(a.raw, b.raw);
            assert_eq!(a.raw.len(), kind.token_len());
            assert_eq!(check_format(kind, &a.raw), Ok(()));
            assert_eq!(a.hash, hash(&a.raw));
            assert_eq!(a.display_prefix.len(), kind.prefix().len() + DISPLAY_HEX);
            assert!(a.raw.starts_with(&a.display_prefix));
            assert_eq!(kind_of(&a.raw), Some(kind));
        }
    }

    #[test]
    fn kinds_have_one_name_each() {
        for kind in TokenKind::ALL {
            assert_eq!(TokenKind::from_name(kind.name()), Some(kind));
            assert_eq!(kind.to_string().parse::<TokenKind>(), Ok(kind));
        }
        assert_eq!(TokenKind::InternalKey.name(), "internal");
        assert_eq!(TokenKind::InternalKey.principal_kind(), "service");
        assert_eq!(TokenKind::from_name("jwt"), None);
        assert_eq!("Agent".parse::<TokenKind>(), Err(UnknownKind));
    }

    #[test]
    fn format_errors_are_detected_in_order() {
        let t = generate(TokenKind::Agent).raw;
        assert_eq!(
            check_format(TokenKind::Visitor, &t),
            Err(FormatError::WrongPrefix)
        );
        assert_eq!(
            check_format(TokenKind::Agent, &t[..t.len() - 1]),
            Err(FormatError::WrongLength)
        );
        let upper = format!("ama_eat_{}", t[8..].to_uppercase());
        assert_eq!(
            check_format(TokenKind::Agent, &upper),
            Err(FormatError::BadHex)
        );
        // flip one hex digit of the random part: checksum must catch it
        let mut chars: Vec<char> = t.chars().collect();
        chars[10] = if chars[10] == '0' { '1' } else { '0' };
        let typo: String = chars.into_iter().collect();
        assert_eq!(
            check_format(TokenKind::Agent, &typo),
            Err(FormatError::BadChecksum)
        );
        assert_eq!(
            check_format(TokenKind::Agent, ""),
            Err(FormatError::WrongPrefix)
        );
    }

    #[test]
    fn known_checksum_vector() {
        // CRC32 (IEEE) of 64 zeros.
        let body = "0".repeat(RANDOM_HEX);
        let raw = format!("ama_eat_{body}{}", checksum_hex(&body));
        assert_eq!(check_format(TokenKind::Agent, &raw), Ok(()));
        assert_eq!(crc32fast::hash(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn hash_comparison() {
        let h = hash("ama_eat_x");
        assert!(hashes_equal(&h, &hash("ama_eat_x")));
        assert!(!hashes_equal(&h, &hash("ama_eat_y")));
        assert!(!hashes_equal(&h, &h[..31]));
    }

    #[test]
    fn error_messages_never_echo_input() {
        let t = generate(TokenKind::Agent).raw;
        let err = check_format(TokenKind::Agent, &format!("{t}x")).unwrap_err();
        assert!(!err.to_string().contains(&t[8..20]));
    }
}
