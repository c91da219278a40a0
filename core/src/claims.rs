//! Rules on the claims of a Supabase JWT that the signature does not cover.

use std::fmt;

/// A user id: the `sub` claim, which must be a UUID in its 36-character hyphenated form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserId([u8; 16]);

impl UserId {
    /// The 16 bytes of the UUID.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

/// Formats the canonical lower-case hyphenated text.
impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = hex::encode(self.0);
        write!(
            f,
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }
}

/// The user id a `sub` claim names, or `None` unless it is a 36-character hyphenated UUID (any
/// case). Other UUID spellings (braces, `urn:uuid:`, no hyphens) are refused.
pub fn user_id(sub: &str) -> Option<UserId> {
    let b = sub.as_bytes();
    if b.len() != 36 {
        return None;
    }
    let mut digits = [0u8; 32];
    let mut n = 0;
    for (i, c) in b.iter().enumerate() {
        match i {
            8 | 13 | 18 | 23 if *c == b'-' => {}
            8 | 13 | 18 | 23 => return None,
            _ if c.is_ascii_hexdigit() => {
                digits[n] = *c;
                n += 1;
            }
            _ => return None,
        }
    }
    let mut bytes = [0u8; 16];
    hex::decode_to_slice(digits, &mut bytes).ok()?;
    Some(UserId(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hyphenated_uuids_are_user_ids() {
        let id = user_id("0D1C6F4E-8a43-4a4e-9a53-0c1f2d3e4f50").expect("uuid");
        assert_eq!(id.to_string(), "0d1c6f4e-8a43-4a4e-9a53-0c1f2d3e4f50");
        assert_eq!(id.as_bytes()[0], 0x0d);
        for bad in [
            "",
            "0d1c6f4e8a434a4e9a530c1f2d3e4f50",
            "{0d1c6f4e-8a43-4a4e-9a53-0c1f2d3e4f50}",
            "urn:uuid:0d1c6f4e-8a43-4a4e-9a53-0c1f2d3e4f50",
            "0d1c6f4e-8a43-4a4e-9a53-0c1f2d3e4f5g",
            "0d1c6f4e-8a43-4a4e-9a530-c1f2d3e4f50",
            "0d1c6f4e+8a43-4a4e-9a53-0c1f2d3e4f50",
            "service_role",
        ] {
            assert!(user_id(bad).is_none(), "{bad}");
        }
    }
}
