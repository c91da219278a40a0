//! Property tests of the credential format (`ama_core::token`): the parser every agent token,
//! visitor token and internal key meets before any database work.
//!
//! Each property runs `PROPTEST_CASES` cases (proptest's default, 256, when unset). A longer run:
//! `PROPTEST_CASES=100000 cargo test --release -p ama_core --test token_props`.

use ama_core::token::{
    check_format, compose, display_prefix, generate, hash, kind_of, FormatError, TokenKind,
    CHECKSUM_HEX, DISPLAY_HEX, RANDOM_HEX,
};
use proptest::prelude::*;

const KINDS: [TokenKind; 3] = [TokenKind::Agent, TokenKind::Visitor, TokenKind::InternalKey];

/// Bitwise CRC-32 (IEEE, reflected, polynomial 0xEDB88320): an oracle independent of `crc32fast`.
fn crc32_ref(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// The documented checks, in the documented order, written out from the module docs.
fn oracle(kind: TokenKind, s: &str) -> Result<(), FormatError> {
    let Some(rest) = s.strip_prefix(kind.prefix()) else {
        return Err(FormatError::WrongPrefix);
    };
    if rest.len() != RANDOM_HEX + CHECKSUM_HEX {
        return Err(FormatError::WrongLength);
    }
    if !rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(FormatError::BadHex);
    }
    let (body, sum) = rest.split_at(RANDOM_HEX);
    if format!("{:08x}", crc32_ref(body.as_bytes())) == sum {
        Ok(())
    } else {
        Err(FormatError::BadChecksum)
    }
}

fn kind() -> impl Strategy<Value = TokenKind> {
    prop::sample::select(KINDS.to_vec())
}

fn body() -> impl Strategy<Value = String> {
    "[0-9a-f]{64}"
}

/// A valid token of some kind, built from an arbitrary body.
fn valid() -> impl Strategy<Value = (TokenKind, String)> {
    (kind(), body()).prop_map(|(k, b)| (k, compose(k, &b)))
}

/// Strings close to the format: some prefix (right, wrong, truncated or none) and a tail of
/// hex-ish characters around the right length, sometimes with upper case or other characters.
fn near_token() -> impl Strategy<Value = String> {
    let prefix = prop::sample::select(vec![
        "ama_eat_", "ama_vst_", "ama_ik_", "ama_", "ama_eat", "AMA_EAT_", "", "ama_xyz_",
    ]);
    let tail = prop_oneof![
        "[0-9a-f]{60,80}",
        "[0-9a-fA-F]{72}",
        "[0-9a-z_ ]{70,74}",
        "[0-9a-f\\PC]{0,90}",
    ];
    (prefix, tail).prop_map(|(p, t)| format!("{p}{t}"))
}

fn assert_documented(r: Result<(), FormatError>) {
    // Exhaustive match: a new error variant must be documented here too.
    match r {
        Ok(())
        | Err(FormatError::WrongPrefix)
        | Err(FormatError::WrongLength)
        | Err(FormatError::BadHex)
        | Err(FormatError::BadChecksum) => {}
    }
}

proptest! {
    /// Arbitrary Unicode never panics any token function, and `check_format` agrees with the
    /// oracle, error variant included.
    #[test]
    fn arbitrary_strings_match_the_oracle(s in any::<String>(), k in kind()) {
        let got = check_format(k, &s);
        assert_documented(got);
        prop_assert_eq!(got, oracle(k, &s));
        let dp = display_prefix(k, &s);
        prop_assert!(s.starts_with(&dp) || dp == k.prefix());
        let _ = kind_of(&s);
        prop_assert_eq!(hash(&s), hash(&s.clone()));
    }

    /// Strings close to the format exercise every branch; the oracle decides.
    #[test]
    fn near_tokens_match_the_oracle(s in near_token(), k in kind()) {
        let got = check_format(k, &s);
        prop_assert_eq!(got, oracle(k, &s));
        match kind_of(&s) {
            Some(found) => prop_assert!(s.starts_with(found.prefix())),
            None => prop_assert!(KINDS.iter().all(|k| !s.starts_with(k.prefix()))),
        }
        if got.is_ok() {
            prop_assert_eq!(kind_of(&s), Some(k));
        }
    }

    /// Every composed token passes, for its kind only, and its parts are where the docs say.
    #[test]
    fn composed_tokens_pass((k, t) in valid()) {
        prop_assert_eq!(t.len(), k.token_len());
        prop_assert_eq!(check_format(k, &t), Ok(()));
        prop_assert_eq!(kind_of(&t), Some(k));
        for other in KINDS.iter().filter(|o| **o != k) {
            prop_assert_eq!(check_format(*other, &t), Err(FormatError::WrongPrefix));
        }
        let sum = u32::from_str_radix(&t[t.len() - CHECKSUM_HEX..], 16).expect("hex");
        prop_assert_eq!(sum, crc32_ref(&t.as_bytes()[k.prefix().len()..t.len() - CHECKSUM_HEX]));
        prop_assert_eq!(display_prefix(k, &t).len(), k.prefix().len() + DISPLAY_HEX);
    }

    /// Checksum property: replacing any one character of a valid token, by any other
    /// character, is always refused, with the error the position and character call for.
    #[test]
    fn any_single_substitution_fails(
        (k, t) in valid(),
        pos in any::<prop::sample::Index>(),
        c in prop_oneof![
            prop::char::range('0', '9'),
            prop::char::range('a', 'f'),
            prop::char::range('A', 'F'),
            any::<char>(),
        ],
    ) {
        let mut chars: Vec<char> = t.chars().collect();
        let i = pos.index(chars.len());
        // never a no-op: the same character becomes another one
        let c = match (chars[i] == c, c) {
            (false, c) => c,
            (true, '0') => '1',
            (true, _) => '0',
        };
        chars[i] = c;
        let m: String = chars.into_iter().collect();
        let got = check_format(k, &m);
        let want = if i < k.prefix().len() {
            FormatError::WrongPrefix
        } else if c.len_utf8() != 1 {
            FormatError::WrongLength
        } else if !matches!(c, '0'..='9' | 'a'..='f') {
            FormatError::BadHex
        } else {
            FormatError::BadChecksum
        };
        prop_assert_eq!(got, Err(want));
    }

    /// Swapping two different adjacent digits of the random part is a burst of at most 16 bits,
    /// which CRC-32 always detects.
    #[test]
    fn adjacent_transpositions_fail((k, t) in valid(), pos in 0usize..RANDOM_HEX - 1) {
        let p = k.prefix().len();
        let mut b = t.clone().into_bytes();
        // from `pos` on, the first pair of different neighbours (a swap of equal ones is a no-op)
        let Some(start) = (0..RANDOM_HEX - 1)
            .map(|d| p + (pos + d) % (RANDOM_HEX - 1))
            .find(|&s| b[s] != b[s + 1])
        else {
            return Ok(());
        };
        b.swap(start, start + 1);
        let m = String::from_utf8(b).expect("ascii");
        prop_assert_eq!(check_format(k, &m), Err(FormatError::BadChecksum));
    }

    /// Dropping, inserting or appending characters changes the length and is refused as such.
    #[test]
    fn length_changes_fail(
        (k, t) in valid(),
        pos in any::<prop::sample::Index>(),
        extra in "[0-9a-f]{1,8}",
        cut in 1usize..8,
    ) {
        let p = k.prefix().len();
        let at = p + pos.index(t.len() - p + 1);
        let inserted = format!("{}{extra}{}", &t[..at], &t[at..]);
        prop_assert_eq!(check_format(k, &inserted), Err(FormatError::WrongLength));
        let del_at = p + pos.index(t.len() - p - cut + 1);
        let deleted = format!("{}{}", &t[..del_at], &t[del_at + cut..]);
        prop_assert_eq!(check_format(k, &deleted), Err(FormatError::WrongLength));
    }
}

#[test]
fn generated_tokens_pass_many_times() {
    for _ in 0..2_000 {
        for k in KINDS {
            let g = generate(k);
            assert_eq!(check_format(k, &g.raw), Ok(()));
            assert_eq!(oracle(k, &g.raw), Ok(()));
            assert_eq!(kind_of(&g.raw), Some(k));
            assert_eq!(g.hash, hash(&g.raw));
            assert!(g.raw.starts_with(&g.display_prefix));
        }
    }
}

#[test]
fn length_and_prefix_edges() {
    for k in KINDS {
        let p = k.prefix();
        let t = compose(k, &"0".repeat(RANDOM_HEX));
        assert_eq!(check_format(k, p), Err(FormatError::WrongLength));
        assert_eq!(
            check_format(k, &t[..t.len() - 1]),
            Err(FormatError::WrongLength)
        );
        assert_eq!(
            check_format(k, &format!("{t}0")),
            Err(FormatError::WrongLength)
        );
        assert_eq!(check_format(k, &t[1..]), Err(FormatError::WrongPrefix));
        assert_eq!(
            check_format(k, &format!(" {t}")),
            Err(FormatError::WrongPrefix)
        );
        assert_eq!(
            check_format(k, &format!("{t} ")),
            Err(FormatError::WrongLength)
        );
        assert_eq!(
            check_format(k, &t.to_uppercase()),
            Err(FormatError::WrongPrefix)
        );
        let upper_body = format!("{p}{}", t[p.len()..].to_uppercase());
        // all zeros has no letters; the checksum of 64 zeros has some
        assert_eq!(check_format(k, &upper_body), oracle(k, &upper_body));
        assert_eq!(check_format(k, ""), Err(FormatError::WrongPrefix));
        // a multi-byte character that keeps the byte length is still not hex
        let mb = format!("{p}é{}", &t[p.len() + 2..]);
        assert_eq!(mb.len(), t.len());
        assert_eq!(check_format(k, &mb), Err(FormatError::BadHex));
        // display_prefix is a cut of its input, never longer than it
        assert_eq!(display_prefix(k, ""), "");
        assert_eq!(display_prefix(k, &t[..p.len() + 2]), &t[..p.len() + 2]);
        // the cut would split a character: the bare prefix
        assert_eq!(display_prefix(k, &format!("{p}000é")), p);
    }
    // the internal-key prefix is one byte shorter, so its tokens are too
    assert_eq!(
        TokenKind::InternalKey.token_len() + 1,
        TokenKind::Agent.token_len()
    );
    assert_eq!(kind_of("ama_ik"), None);
    assert_eq!(kind_of("ama_ik_"), Some(TokenKind::InternalKey));
}
