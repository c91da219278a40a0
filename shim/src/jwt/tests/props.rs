//! Property tests of JWT parsing: whatever bytes a client sends as a bearer JWT, the verifier
//! never panics and answers with a documented [`VerifyError`]; signed claim objects get exactly
//! the verdict of [`validate_claims`], which itself agrees with an independent oracle.
//!
//! Each property runs `PROPTEST_CASES` cases (256 when unset). A longer run:
//! `PROPTEST_CASES=100000 cargo test --release -p ama-shim --lib jwt::tests::props`.

use super::base64_like::b64;
use super::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}

/// `h.p.sig` over already-encoded segments with the test secret (the library's own HMAC).
fn hs_parts(h: &str, p: &str) -> String {
    let input = format!("{h}.{p}");
    let key = EncodingKey::from_secret(SECRET).expect("key");
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::HS256).expect("sign");
    format!("{input}.{sig}")
}

fn documented(e: VerifyError) -> bool {
    // Exhaustive: a new variant must be documented (and mapped to 401) before it passes here.
    match e {
        VerifyError::Malformed | VerifyError::UnknownKey | VerifyError::DecodeFailed => true,
        VerifyError::Claims(c) => match c {
            ClaimError::NotAnObject
            | ClaimError::MissingExp
            | ClaimError::Expired
            | ClaimError::NotYetValid
            | ClaimError::IssuedInFuture
            | ClaimError::LifetimeTooLong
            | ClaimError::BadAudience
            | ClaimError::BadIssuer
            | ClaimError::BadSubject => true,
        },
    }
}

/// Base64url-ish text: the alphabet plus the characters of near misses.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_-]{0,60}",
        "[A-Za-z0-9_+/=-]{0,60}",
        "[A-Za-z0-9_ \\n.-]{0,20}",
        any::<String>(),
    ]
}

/// Anything shaped more or less like a JWT.
fn token_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(segment(), 0..6).prop_map(|v| v.join(".")),
        (any::<Vec<u8>>(), any::<Vec<u8>>(), segment()).prop_map(|(h, p, s)| format!(
            "{}.{}.{s}",
            b64(&h),
            b64(&p)
        )),
    ]
}

/// Arbitrary JSON, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(".{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Values a time claim may take: near `NOW` and the leeway edges, extremes, wrong types.
fn time_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (-200_000i64..200_000).prop_map(|d| json!(NOW + d)),
        2 => (-3i64..=3).prop_map(|d| json!(NOW + LEEWAY_SECS + d)),
        2 => (-3i64..=3).prop_map(|d| json!(NOW - LEEWAY_SECS + d)),
        1 => (-200_000.0f64..200_000.0).prop_map(|d| json!(NOW as f64 + d)),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => any::<f64>().prop_map(Value::from),
        1 => json_value(),
    ]
}

fn sub_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => Just(json!(SUB)),
        1 => Just(json!(SUB.to_uppercase())),
        1 => "[0-9a-fA-F-]{30,40}".prop_map(Value::from),
        1 => "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}".prop_map(Value::from),
        1 => json_value(),
    ]
}

fn aud_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => Just(json!("authenticated")),
        1 => Just(json!(["anon", "authenticated"])),
        1 => prop::collection::vec(prop_oneof![Just(json!("authenticated")), json_value()], 0..3)
            .prop_map(Value::from),
        1 => json_value(),
    ]
}

/// Claim objects: each registered claim present or absent, of a likely or an odd value, plus
/// arbitrary extra members.
fn claims_object() -> impl Strategy<Value = Value> {
    (
        prop::option::weighted(0.9, time_value()),
        prop::option::weighted(0.3, time_value()),
        prop::option::weighted(0.8, time_value()),
        prop::option::weighted(0.9, sub_value()),
        prop::option::weighted(0.9, aud_value()),
        prop::option::weighted(
            0.3,
            prop_oneof![Just(json!("https://issuer.example")), json_value()],
        ),
        prop::collection::btree_map("[a-z_]{1,8}", json_value(), 0..3),
    )
        .prop_map(|(exp, nbf, iat, sub, aud, iss, extra)| {
            let mut o: serde_json::Map<String, Value> = extra.into_iter().collect();
            for (k, v) in [
                ("exp", exp),
                ("nbf", nbf),
                ("iat", iat),
                ("sub", sub),
                ("aud", aud),
                ("iss", iss),
            ] {
                match v {
                    Some(v) => o.insert(k.into(), v),
                    None => o.remove(k),
                };
            }
            Value::Object(o)
        })
}

/// A NumericDate as the shim reads it, in i128 so nothing saturates: integers as they are,
/// floats floored and clamped to i64 (what `as i64` does), anything else unreadable.
fn oracle_num(v: Option<&Value>) -> Result<Option<i128>, ()> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Ok(Some(i128::from(i)))
            } else if let Some(u) = n.as_u64() {
                // above i64::MAX: read through f64 and clamped
                let _ = u;
                Ok(Some(i128::from(i64::MAX)))
            } else {
                let f = n.as_f64().ok_or(())?.floor();
                Ok(Some(if f >= i64::MAX as f64 {
                    i128::from(i64::MAX)
                } else if f <= i64::MIN as f64 {
                    i128::from(i64::MIN)
                } else {
                    f as i128
                }))
            }
        }
        Some(_) => Err(()),
    }
}

/// The claim rules as documented (README, contract §2.1, module docs), written independently.
fn oracle(claims: &Value, now: i64, rules: &ClaimRules) -> Result<i64, ClaimError> {
    let o = claims.as_object().ok_or(ClaimError::NotAnObject)?;
    let now = i128::from(now);
    let leeway = i128::from(LEEWAY_SECS);
    let exp = oracle_num(o.get("exp"))
        .ok()
        .flatten()
        .ok_or(ClaimError::MissingExp)?;
    if now > exp + leeway {
        return Err(ClaimError::Expired);
    }
    match oracle_num(o.get("nbf")) {
        Err(()) => return Err(ClaimError::NotYetValid),
        Ok(Some(nbf)) if nbf > now + leeway => return Err(ClaimError::NotYetValid),
        _ => {}
    }
    let iat = oracle_num(o.get("iat")).map_err(|()| ClaimError::IssuedInFuture)?;
    if iat.is_some_and(|iat| iat > now + leeway) {
        return Err(ClaimError::IssuedInFuture);
    }
    if exp - iat.unwrap_or(now) > i128::from(rules.max_lifetime_secs) {
        return Err(ClaimError::LifetimeTooLong);
    }
    let aud_ok = match o.get("aud") {
        Some(Value::String(s)) => *s == rules.audience,
        Some(Value::Array(a)) => a.contains(&Value::String(rules.audience.clone())),
        _ => false,
    };
    if !aud_ok {
        return Err(ClaimError::BadAudience);
    }
    if let Some(iss) = &rules.issuer {
        if o.get("iss") != Some(&Value::String(iss.clone())) {
            return Err(ClaimError::BadIssuer);
        }
    }
    let sub_ok = o.get("sub").and_then(Value::as_str).is_some_and(|s| {
        let b = s.as_bytes();
        b.len() == 36
            && b.iter().enumerate().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => *c == b'-',
                _ => c.is_ascii_hexdigit(),
            })
    });
    if !sub_ok {
        return Err(ClaimError::BadSubject);
    }
    i64::try_from(exp).map_err(|_| ClaimError::MissingExp)
}

fn issuer_rules(with_issuer: bool) -> ClaimRules {
    let mut r = rules();
    if with_issuer {
        r.issuer = Some("https://issuer.example".into());
    }
    r
}

proptest! {
    /// Any bearer text: no panic, never accepted, always a documented error.
    #[test]
    fn arbitrary_tokens_are_refused(t in token_text()) {
        let v = hs_verifier();
        let got = rt().block_on(v.verify_at(&t, NOW));
        match got {
            Ok(_) => return Err(TestCaseError::fail(format!("accepted {t:?}"))),
            Err(e) => prop_assert!(documented(e)),
        }
    }

    /// Arbitrary header and payload bytes under a valid HS256 signature: no panic; accepted only
    /// when the header is a JSON object whose `alg` is exactly HS256 and the payload is a claim
    /// object that passes `validate_claims`.
    #[test]
    fn signed_arbitrary_segments(h in prop_oneof![any::<Vec<u8>>(), json_value().prop_map(|v| v.to_string().into_bytes())],
                                 p in prop_oneof![any::<Vec<u8>>(), json_value().prop_map(|v| v.to_string().into_bytes())]) {
        let v = hs_verifier();
        let t = hs_parts(&b64(&h), &b64(&p));
        let got = rt().block_on(v.verify_at(&t, NOW));
        match got {
            Ok(ok) => {
                let header: Value = serde_json::from_slice(&h).expect("accepted header is JSON");
                prop_assert_eq!(header.get("alg"), Some(&json!("HS256")));
                let claims: Value = serde_json::from_slice(&p).expect("accepted claims are JSON");
                prop_assert_eq!(&*ok.claims, &claims);
                prop_assert!(validate_claims(&claims, NOW, &rules()).is_ok());
            }
            Err(e) => prop_assert!(documented(e)),
        }
    }

    /// Headers built from the members an attacker would try (alg, kid, jku, jwk, x5u, crit, b64,
    /// typ and junk), signed with the real secret: accepted only with `alg` HS256 and no
    /// `crit` other than RFC 7797's `b64: true` (a `null` crit reads as absent).
    #[test]
    fn signed_odd_headers(
        alg in prop_oneof![
            Just(json!("HS256")), Just(json!("none")), Just(json!("None")), Just(json!("HS512")),
            Just(json!("ES256")), Just(json!("RS256")), Just(json!("hs256")), json_value(),
        ],
        kid in prop::option::of(prop_oneof![Just(json!("es-1")), ".{0,20}".prop_map(Value::from), json_value()]),
        extra in prop::collection::btree_map(
            prop::sample::select(vec!["jku", "x5u", "x5c", "jwk", "crit", "b64", "typ", "cty", "zip", "enc", "x"]),
            json_value(),
            0..4,
        ),
    ) {
        let mut hdr = serde_json::Map::new();
        hdr.insert("alg".into(), alg.clone());
        if let Some(k) = kid {
            hdr.insert("kid".into(), k);
        }
        hdr.extend(extra.into_iter().map(|(k, v)| (k.to_string(), v)));
        let h = Value::Object(hdr.clone()).to_string();
        let t = hs_parts(&b64(h.as_bytes()), &b64(claims().to_string().as_bytes()));
        let got = rt().block_on(hs_verifier().verify_at(&t, NOW));
        match got {
            Ok(_) => {
                prop_assert_eq!(alg, json!("HS256"));
                // `crit: null` lists nothing and reads as absent (see the corpus)
                if let Some(crit) = hdr.get("crit").filter(|c| !c.is_null()) {
                    prop_assert_eq!(crit, &json!(["b64"]));
                    prop_assert_eq!(hdr.get("b64"), Some(&json!(true)));
                }
            }
            Err(e) => prop_assert!(documented(e)),
        }
    }

    /// `validate_claims` agrees with the oracle on arbitrary claim objects (with and without an
    /// issuer, at arbitrary times), and a validly signed token of those claims gets the same
    /// verdict from the full verifier.
    #[test]
    fn claims_match_the_oracle(
        c in prop_oneof![4 => claims_object(), 1 => json_value()],
        now in prop_oneof![Just(NOW), any::<i64>()],
        with_issuer in any::<bool>(),
    ) {
        let r = issuer_rules(with_issuer);
        let got = validate_claims(&c, now, &r);
        prop_assert_eq!(got, oracle(&c, now, &r));
        if !with_issuer && now == NOW {
            let t = hs_parts(&b64(br#"{"alg":"HS256","typ":"JWT"}"#), &b64(c.to_string().as_bytes()));
            let full = rt().block_on(hs_verifier().verify_at(&t, NOW));
            match (&full, got) {
                (Ok(ok), Ok(exp)) => {
                    prop_assert_eq!(ok.exp, exp);
                    // what serde_json reads back from the text (floats may move by one ulp:
                    // serde_json's `float_roundtrip` is off)
                    let reread: Value = serde_json::from_str(&c.to_string()).expect("json");
                    prop_assert_eq!(&*ok.claims, &reread);
                }
                (Err(VerifyError::Claims(a)), Err(b)) => prop_assert_eq!(*a, b),
                // the library refuses a signed payload it cannot read as claims (e.g. not an
                // object): a refusal either way
                (Err(VerifyError::DecodeFailed), Err(_)) => {}
                _ => return Err(TestCaseError::fail(format!("verifier {full:?} vs claims {got:?}"))),
            }
        }
    }

    /// Any one-character change to a valid token (substitution, deletion, insertion) is refused.
    #[test]
    fn mutated_valid_tokens_are_refused(
        pos in any::<prop::sample::Index>(),
        op in 0u8..3,
        c in prop_oneof![prop::char::range('A', 'Z'), prop::char::range('a', 'z'), Just('-'), Just('_'), Just('.'), Just('='), any::<char>()],
    ) {
        let v = hs_verifier();
        let good = hs_token(&claims());
        let rt = rt();
        prop_assert!(rt.block_on(v.verify_at(&good, NOW)).is_ok());
        let mut chars: Vec<char> = good.chars().collect();
        let i = pos.index(chars.len());
        match op {
            0 => chars[i] = if chars[i] == c { if c == 'A' { 'B' } else { 'A' } } else { c },
            1 => { chars.remove(i); }
            _ => chars.insert(i, c),
        }
        let m: String = chars.into_iter().collect();
        prop_assert_ne!(&m, &good);
        let got = rt.block_on(v.verify_at(&m, NOW));
        prop_assert!(matches!(got, Err(e) if documented(e)), "accepted mutation {m}");
    }
}

/// Regression: a float `exp` beyond i64 saturates instead of wrapping (no accidental "expired"
/// or "valid" through overflow), and u64 values beyond i64 read as the maximum.
#[test]
fn numeric_extremes() {
    for v in [
        json!(1e300),
        json!(u64::MAX),
        json!(i64::MAX),
        json!(9.3e18),
    ] {
        let c = with(claims(), "exp", v.clone());
        assert_eq!(
            validate_claims(&c, NOW, &rules()),
            Err(ClaimError::LifetimeTooLong),
            "{v}"
        );
        assert_eq!(
            validate_claims(&c, NOW, &rules()),
            oracle(&c, NOW, &rules())
        );
    }
    for v in [json!(-1e300), json!(i64::MIN), json!(-9.3e18)] {
        let c = with(claims(), "exp", v.clone());
        assert_eq!(
            validate_claims(&c, NOW, &rules()),
            Err(ClaimError::Expired),
            "{v}"
        );
    }
}
