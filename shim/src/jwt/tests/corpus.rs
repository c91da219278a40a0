//! The JWT attack corpus: RFC 8725's pitfalls (and RFC 7515/7519 parsing corners) as one table,
//! each row run through the real [`Verifier`] with real HS256, ES256 and RS256 keys (the
//! fixtures of `jwt/tests.rs`). Each row states the exact outcome: accepted with which `sub`, or
//! refused with which [`VerifyError`]. Every refusal becomes the same generic 401 in
//! `http::authenticate` (`ApiError::unauthorized()`, with `WWW-Authenticate`); the row's status is
//! asserted against that mapping.
//!
//! `cargo test -p ama-shim --lib corpus -- --nocapture` prints the table and the totals.

use super::base64_like::b64;
use super::*;
use crate::errors::{ApiError, WWW_AUTHENTICATE};
use std::path::PathBuf;

use ClaimError as C;
use VerifyError::{Claims, DecodeFailed, Malformed, UnknownKey};

/// Upper-case form of [`SUB`]: a valid UUID the shim accepts as is (the database lower-cases).
const SUB_UPPER: &str = "0D1C6F4E-8A43-4A4E-9A53-0C1F2D3E4F50";
const ISSUER: &str = "https://issuer.example/auth/v1";
const HS_HDR: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    /// HS256 secret only.
    Hs,
    /// HS256 secret and a JWKS file (es-1, rs-1, es-2 and some unusable keys).
    Mixed,
    /// The JWKS file only, no shared secret.
    Jwks,
    /// HS256 secret with an issuer configured.
    Iss,
    /// HS256 secret with `max_lifetime_secs` = 3600.
    Short,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// Accepted; the verified claims carry this `sub`.
    Ok(&'static str),
    /// Refused with this reason (always a 401 for the client).
    No(VerifyError),
}
use Want::{No, Ok as Yes};

struct Case {
    name: &'static str,
    setup: Setup,
    token: String,
    want: Want,
}

/// HMAC-SHA256 written out (RFC 2104), so tokens can be signed over any bytes, even an empty key.
fn hmac256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let inner = Sha256::new()
        .chain_update(k.map(|b| b ^ 0x36))
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(k.map(|b| b ^ 0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// `h.p.sig` over already-encoded segments, HMAC-SHA256 with `secret`.
fn hmac_parts(secret: &[u8], h: &str, p: &str) -> String {
    let input = format!("{h}.{p}");
    let sig = b64(&hmac256(secret, input.as_bytes()));
    format!("{input}.{sig}")
}

/// HS256 with the configured secret over a raw header and raw payload bytes.
fn hs_raw(header: &str, payload: &[u8]) -> String {
    hmac_parts(SECRET, &b64(header.as_bytes()), &b64(payload))
}

fn hs(c: &Value) -> String {
    hs_raw(HS_HDR, c.to_string().as_bytes())
}

fn hs_hdr(header: &str, c: &Value) -> String {
    hs_raw(header, c.to_string().as_bytes())
}

/// HMAC-SHA256 with some other secret (the attacker's guess).
fn hmac_with(secret: &[u8], header: &str, c: &Value) -> String {
    hmac_parts(
        secret,
        &b64(header.as_bytes()),
        &b64(c.to_string().as_bytes()),
    )
}

/// Signs a raw header and claims with an asymmetric test key (its own algorithm).
fn asym(k: &TestKey, header: &str, c: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64(header.as_bytes()),
        b64(c.to_string().as_bytes())
    );
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &k.enc, k.alg).expect("sign");
    format!("{input}.{sig}")
}

/// Claims with one change (`Value::Null` removes the claim).
fn w(k: &str, v: Value) -> Value {
    with(claims(), k, v)
}

/// A valid HS256 token of exactly `len` bytes, padded with a claim (and a header field when the
/// base64 length cannot hit `len`).
fn hs_of_len(len: usize) -> String {
    for header in [HS_HDR, r#"{"alg":"HS256","typ":"JWT","x":1}"#] {
        // base64 makes 4 characters of 3 bytes: start a little below the size that fits
        for n in (len * 3 / 4).saturating_sub(400)..len {
            let t = hs_hdr(header, &w("pad", json!("a".repeat(n))));
            if t.len() == len {
                return t;
            }
            if t.len() > len {
                break;
            }
        }
    }
    panic!("no token of {len} bytes");
}

/// Claims text with `depth` nested arrays in an extra claim.
fn nested(depth: usize) -> Vec<u8> {
    let base = claims().to_string();
    format!(
        "{},\"deep\":{}{}}}",
        &base[..base.len() - 1],
        "[".repeat(depth),
        "]".repeat(depth)
    )
    .into_bytes()
}

/// Claims text with one claim written twice (`"k":first` before the rest, `"k":second` after).
fn dup_claim(k: &str, first: Value, second: Value) -> Vec<u8> {
    let mut rest = claims();
    if let Some(o) = rest.as_object_mut() {
        o.remove(k);
    }
    let body = rest.to_string();
    format!(
        "{{\"{k}\":{first},{},\"{k}\":{second}}}",
        &body[1..body.len() - 1]
    )
    .into_bytes()
}

/// Replaces the signature of `t` by `f(signature)`.
fn resign(t: &str, f: impl Fn(&str) -> String) -> String {
    let (input, sig) = t.rsplit_once('.').expect("three parts");
    format!("{input}.{}", f(sig))
}

/// Flips the low bit of the character at `i` of a base64url string (stays in the alphabet).
fn flip(s: &str, i: usize) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut b = s.as_bytes().to_vec();
    let pos = A.iter().position(|c| *c == b[i]).expect("alphabet");
    b[i] = A[pos ^ 1];
    String::from_utf8(b).expect("ascii")
}

/// Sets the unused low bits of the last character of an unpadded base64url segment whose
/// length is not a multiple of 4 (a non-canonical encoding of the same bytes).
fn trailing_bits(s: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    assert!(!s.len().is_multiple_of(4), "segment has no spare bits");
    let mut b = s.as_bytes().to_vec();
    let last = b.len() - 1;
    let pos = A.iter().position(|c| *c == b[last]).expect("alphabet");
    b[last] = A[pos | 1];
    assert_ne!(b[last], s.as_bytes()[last], "already set");
    String::from_utf8(b).expect("ascii")
}

struct Fx {
    es: TestKey,
    rs: TestKey,
    es2: TestKey,
    /// Keys whose JWKS entry is unusable (alg/kty mismatch, `use: enc`): never loaded.
    ec_as_rs: TestKey,
    rs_as_es: TestKey,
    es_enc: TestKey,
    /// Not in any JWKS the shim loads; served at `jku_url`, which must never be fetched.
    evil: TestKey,
    jku_url: String,
    jku_hits: Arc<AtomicUsize>,
    dir: PathBuf,
    hs: Verifier,
    mixed: Verifier,
    jwks: Verifier,
    iss: Verifier,
    short: Verifier,
}

impl Fx {
    async fn new() -> Fx {
        let es = gen_key("es-1", Algorithm::ES256);
        let rs = gen_key("rs-1", Algorithm::RS256);
        let es2 = gen_key("es-2", Algorithm::ES256);
        let ec_as_rs = gen_key("ec-as-rs", Algorithm::ES256);
        let rs_as_es = gen_key("rs-as-es", Algorithm::RS256);
        let es_enc = gen_key("es-enc", Algorithm::ES256);
        let evil = gen_key("evil", Algorithm::ES256);
        let mut odd = vec![
            ec_as_rs.jwk.clone(),
            rs_as_es.jwk.clone(),
            es_enc.jwk.clone(),
        ];
        odd[0]["alg"] = json!("RS256");
        odd[1]["alg"] = json!("ES256");
        odd[2]["use"] = json!("enc");
        let mut keys = vec![es.jwk.clone(), rs.jwk.clone(), es2.jwk.clone()];
        keys.extend(odd);
        // a symmetric key in the JWKS is never used (HS256 only ever uses the configured secret)
        keys.push(json!({"kty": "oct", "kid": "oct-1", "alg": "HS256", "k": b64(b"jwks-oct-secret-0123456789abcdef")}));
        let dir = std::env::temp_dir().join(format!("ama-shim-corpus-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("jwks.json");
        std::fs::write(&file, json!({ "keys": keys }).to_string()).expect("write");
        let src = JwksSource {
            file: Some(file),
            url: None,
        };
        let jku_hits = Arc::new(AtomicUsize::new(0));
        let jku_url = jwks_server(Arc::new(Mutex::new(jwks_of(&[&evil]))), jku_hits.clone()).await;
        let mk = |r: ClaimRules, secret: Option<&[u8]>, src: JwksSource| {
            Verifier::new(r, secret, src, Duration::from_secs(0), 10_000).expect("verifier")
        };
        let mut iss_rules = rules();
        iss_rules.issuer = Some(ISSUER.into());
        let mut short_rules = rules();
        short_rules.max_lifetime_secs = 3600;
        let fx = Fx {
            hs: mk(rules(), Some(SECRET), JwksSource::default()),
            mixed: mk(rules(), Some(SECRET), src.clone()),
            jwks: mk(rules(), None, src),
            iss: mk(iss_rules, Some(SECRET), JwksSource::default()),
            short: mk(short_rules, Some(SECRET), JwksSource::default()),
            es,
            rs,
            es2,
            ec_as_rs,
            rs_as_es,
            es_enc,
            evil,
            jku_url,
            jku_hits,
            dir,
        };
        assert_eq!(fx.mixed.refresh().await, Ok(3), "es-1, rs-1, es-2 only");
        assert_eq!(fx.jwks.refresh().await, Ok(3));
        fx
    }

    fn verifier(&self, s: Setup) -> &Verifier {
        match s {
            Setup::Hs => &self.hs,
            Setup::Mixed => &self.mixed,
            Setup::Jwks => &self.jwks,
            Setup::Iss => &self.iss,
            Setup::Short => &self.short,
        }
    }
}

/// The table: one row per case (name, verifier setup, token, expected outcome).
#[rustfmt::skip]
fn cases(fx: &Fx) -> Vec<Case> {
    use Setup::*;
    let c = claims;
    let mut v: Vec<Case> = Vec::new();
    let mut r = |name: &'static str, setup: Setup, token: String, want: Want| {
        v.push(Case {
            name,
            setup,
            token,
            want,
        })
    };
    let es_hdr = r#"{"alg":"ES256","typ":"JWT","kid":"es-1"}"#;
    let rs_hdr = r#"{"alg":"RS256","typ":"JWT","kid":"rs-1"}"#;
    let good = hs(&c());
    let es_good = sign(&fx.es, &c());
    let es_pem = fx.es.kp.public_key_pem();
    let es_der = rcgen::PublicKeyData::subject_public_key_info(&fx.es.kp);
    let rs_pem = fx.rs.kp.public_key_pem();
    let rs_der = rcgen::PublicKeyData::subject_public_key_info(&fx.rs.kp);
    let es_jwk = fx.es.jwk.to_string();
    let jwks_doc = jwks_of(&[&fx.es, &fx.rs, &fx.es2]);
    let evil_jwk = fx.evil.jwk.to_string();
    let evil_cert = rcgen::CertificateParams::new(vec!["evil.example".into()])
        .expect("params")
        .self_signed(&fx.evil.kp)
        .expect("cert");
    let evil_x5c = {
        // x5c is standard base64 (with padding) of the DER certificate
        let der: &[u8] = evil_cert.der();
        let mut s = b64(der).replace('-', "+").replace('_', "/");
        while !s.len().is_multiple_of(4) {
            s.push('=');
        }
        s
    };

    // --- baselines: what a valid token of each kind looks like
    r("valid HS256", Hs, good.clone(), Yes(SUB));
    r("valid HS256 on the mixed config", Mixed, good.clone(), Yes(SUB));
    r("valid ES256 (es-1)", Mixed, es_good.clone(), Yes(SUB));
    r("valid ES256 (es-1), JWKS only", Jwks, es_good.clone(), Yes(SUB));
    r("valid RS256 (rs-1)", Jwks, sign(&fx.rs, &c()), Yes(SUB));
    r("valid ES256 (es-2)", Jwks, sign(&fx.es2, &c()), Yes(SUB));

    // --- alg none, every casing, with and without a signature segment
    let payload = b64(c().to_string().as_bytes());
    for (alg, n1, n2, n3) in [
        (
            "none",
            "alg none, empty signature",
            "alg none, no signature segment",
            "alg none, HS256 signature",
        ),
        (
            "None",
            "alg None, empty signature",
            "alg None, no signature segment",
            "alg None, HS256 signature",
        ),
        (
            "NONE",
            "alg NONE, empty signature",
            "alg NONE, no signature segment",
            "alg NONE, HS256 signature",
        ),
        (
            "nOnE",
            "alg nOnE, empty signature",
            "alg nOnE, no signature segment",
            "alg nOnE, HS256 signature",
        ),
    ] {
        let h = b64(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#).as_bytes());
        r(n1, Mixed, format!("{h}.{payload}."), No(Malformed));
        r(n2, Mixed, format!("{h}.{payload}"), No(Malformed));
        r(n3, Mixed, hmac_parts(SECRET, &h, &payload), No(Malformed));
    }
    r("alg none with a known kid", Mixed, format!("{}.{payload}.", b64(br#"{"alg":"none","kid":"es-1"}"#)), No(Malformed));
    r("alg missing", Mixed, hs_hdr(r#"{"typ":"JWT"}"#, &c()), No(Malformed));
    r("alg null", Mixed, hs_hdr(r#"{"alg":null}"#, &c()), No(Malformed));
    r("alg empty", Mixed, hs_hdr(r#"{"alg":""}"#, &c()), No(Malformed));
    r("alg lower-case hs256", Mixed, hs_hdr(r#"{"alg":"hs256"}"#, &c()), No(Malformed));
    r("alg with a trailing space", Mixed, hs_hdr(r#"{"alg":"HS256 "}"#, &c()), No(Malformed));

    // --- algorithm confusion: HS256 keyed with the server's public keys
    let h_es1 = r#"{"alg":"HS256","typ":"JWT","kid":"es-1"}"#;
    let h_rs1 = r#"{"alg":"HS256","typ":"JWT","kid":"rs-1"}"#;
    r("HS256 keyed with the EC public PEM, kid es-1", Mixed, hmac_with(es_pem.as_bytes(), h_es1, &c()), No(DecodeFailed));
    r("HS256 keyed with the EC public PEM, no kid", Mixed, hmac_with(es_pem.as_bytes(), HS_HDR, &c()), No(DecodeFailed));
    r("HS256 keyed with the EC public PEM, no kid, JWKS only", Jwks, hmac_with(es_pem.as_bytes(), HS_HDR, &c()), No(UnknownKey));
    r("HS256 keyed with the EC public PEM, kid es-1, JWKS only", Jwks, hmac_with(es_pem.as_bytes(), h_es1, &c()), No(DecodeFailed));
    r("HS256 keyed with the EC public DER, kid es-1", Jwks, hmac_with(&es_der, h_es1, &c()), No(DecodeFailed));
    r("HS256 keyed with the EC public DER, no kid", Mixed, hmac_with(&es_der, HS_HDR, &c()), No(DecodeFailed));
    r("HS256 keyed with the EC JWK JSON, kid es-1", Mixed, hmac_with(es_jwk.as_bytes(), h_es1, &c()), No(DecodeFailed));
    r("HS256 keyed with the RSA public PEM, kid rs-1", Mixed, hmac_with(rs_pem.as_bytes(), h_rs1, &c()), No(DecodeFailed));
    r("HS256 keyed with the RSA public DER, kid rs-1, JWKS only", Jwks, hmac_with(&rs_der, h_rs1, &c()), No(DecodeFailed));
    r("HS256 keyed with the whole JWKS document, no kid", Mixed, hmac_with(jwks_doc.as_bytes(), HS_HDR, &c()), No(DecodeFailed));
    r("HS256 keyed with the JWKS's oct key, kid oct-1", Mixed, hmac_with(b"jwks-oct-secret-0123456789abcdef", r#"{"alg":"HS256","kid":"oct-1"}"#, &c()), No(DecodeFailed));
    r("HS256 keyed with the JWKS's oct key, kid oct-1, JWKS only", Jwks, hmac_with(b"jwks-oct-secret-0123456789abcdef", r#"{"alg":"HS256","kid":"oct-1"}"#, &c()), No(UnknownKey));
    r("HS256 with the real secret but an EC kid", Mixed, hs_hdr(h_es1, &c()), No(DecodeFailed));
    r("HS256 on a JWKS-only config (real secret)", Jwks, good.clone(), No(UnknownKey));
    r("ES256 on an HS256-only config, no kid", Hs, asym(&fx.es, r#"{"alg":"ES256"}"#, &c()), No(UnknownKey));
    r("ES256 on an HS256-only config, kid es-1", Hs, es_good.clone(), No(UnknownKey));
    r("RS256 on an HS256-only config", Hs, sign(&fx.rs, &c()), No(UnknownKey));
    r("RS256 signature under an EC kid", Mixed, asym(&fx.rs, r#"{"alg":"RS256","kid":"es-1"}"#, &c()), No(DecodeFailed));
    r("ES256 signature under an RSA kid", Mixed, asym(&fx.es, r#"{"alg":"ES256","kid":"rs-1"}"#, &c()), No(DecodeFailed));
    r(
        "PS256 (RSA-PSS) under the RSA kid",
        Mixed,
        {
            let input = format!("{}.{payload}", b64(br#"{"alg":"PS256","kid":"rs-1"}"#));
            let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &fx.rs.enc, Algorithm::PS256)
                .expect("ps256");
            format!("{input}.{sig}")
        },
        No(DecodeFailed),
    );
    r("ES384 header over an ES256 signature, kid es-1", Mixed, asym(&fx.es, r#"{"alg":"ES384","kid":"es-1"}"#, &c()), No(DecodeFailed));
    r("EdDSA header, kid es-1", Mixed, asym(&fx.es, r#"{"alg":"EdDSA","kid":"es-1"}"#, &c()), No(DecodeFailed));
    r(
        "HS512 with the real secret, no kid",
        Mixed,
        {
            let input = format!("{}.{payload}", b64(br#"{"alg":"HS512"}"#));
            let sig = jsonwebtoken::crypto::sign(
                input.as_bytes(),
                &EncodingKey::from_secret(SECRET).expect("key"),
                Algorithm::HS512,
            )
            .expect("hs512");
            format!("{input}.{sig}")
        },
        No(UnknownKey),
    );
    r("JWKS entry kty EC labelled alg RS256 (skipped)", Mixed, sign(&fx.ec_as_rs, &c()), No(UnknownKey));
    r("JWKS entry kty RSA labelled alg ES256 (skipped)", Mixed, sign(&fx.rs_as_es, &c()), No(UnknownKey));
    r("JWKS entry with use=enc (skipped)", Jwks, sign(&fx.es_enc, &c()), No(UnknownKey));

    // --- kid tricks
    r("unknown kid", Jwks, asym(&fx.es, r#"{"alg":"ES256","kid":"nope"}"#, &c()), No(UnknownKey));
    r("kid path traversal, ES256", Jwks, asym(&fx.es, r#"{"alg":"ES256","kid":"../../etc/passwd"}"#, &c()), No(UnknownKey));
    r("kid /dev/null, HS256 keyed with the empty string", Mixed, hmac_with(b"", r#"{"alg":"HS256","kid":"/dev/null"}"#, &c()), No(DecodeFailed));
    r("kid path traversal, HS256 with the real secret (kid is only a map key)", Mixed, hs_hdr(r#"{"alg":"HS256","kid":"../../etc/passwd"}"#, &c()), Yes(SUB));
    r("kid with SQL", Jwks, asym(&fx.es, r#"{"alg":"ES256","kid":"es-1' OR '1'='1"}"#, &c()), No(UnknownKey));
    r("kid with SQL, HS256 keyed with the empty string", Mixed, hmac_with(b"", r#"{"alg":"HS256","kid":"x' UNION SELECT ''--"}"#, &c()), No(DecodeFailed));
    r("kid of 8 KiB", Jwks, asym(&fx.es, &format!(r#"{{"alg":"ES256","kid":"{}"}}"#, "k".repeat(8192)), &c()), No(UnknownKey));
    r("kid differs in case (ES-1)", Jwks, asym(&fx.es, r#"{"alg":"ES256","kid":"ES-1"}"#, &c()), No(UnknownKey));
    r("kid with a trailing NUL", Jwks, asym(&fx.es, r#"{"alg":"ES256","kid":"es-1\u0000"}"#, &c()), No(UnknownKey));
    r("kid is a number", Jwks, asym(&fx.es, r#"{"alg":"ES256","kid":1}"#, &c()), No(Malformed));
    r("kid null (no key chosen)", Jwks, asym(&fx.es, r#"{"alg":"ES256","kid":null}"#, &c()), No(UnknownKey));
    r(
        "missing kid while the JWKS has several keys",
        Jwks,
        asym(&fx.es, r#"{"alg":"ES256"}"#, &c()),
        No(UnknownKey),
    );
    r("kid es-2 over an es-1 signature", Jwks, asym(&fx.es, r#"{"alg":"ES256","kid":"es-2"}"#, &c()), No(DecodeFailed));

    // --- key-carrying headers are never followed or trusted
    let jku = |kid: &str| format!(r#"{{"alg":"ES256","kid":"{kid}","jku":"{}"}}"#, fx.jku_url);
    r("jku to the attacker's JWKS, attacker kid", Jwks, asym(&fx.evil, &jku("evil"), &c()), No(UnknownKey));
    r("jku to the attacker's JWKS, kid es-1", Mixed, asym(&fx.evil, &jku("es-1"), &c()), No(DecodeFailed));
    r("x5u to the attacker, attacker kid", Jwks, asym(&fx.evil, &format!(r#"{{"alg":"ES256","kid":"evil","x5u":"{}"}}"#, fx.jku_url), &c()), No(UnknownKey));
    r("embedded jwk, no kid", Mixed, asym(&fx.evil, &format!(r#"{{"alg":"ES256","jwk":{evil_jwk}}}"#), &c()), No(UnknownKey));
    r("embedded jwk, attacker kid", Jwks, asym(&fx.evil, &format!(r#"{{"alg":"ES256","kid":"evil","jwk":{evil_jwk}}}"#), &c()), No(UnknownKey));
    r("embedded jwk, kid es-1", Mixed, asym(&fx.evil, &format!(r#"{{"alg":"ES256","kid":"es-1","jwk":{evil_jwk}}}"#), &c()), No(DecodeFailed));
    r("embedded oct jwk, HS256 keyed with it", Mixed, hmac_with(b"attacker-secret", &format!(r#"{{"alg":"HS256","jwk":{{"kty":"oct","k":"{}"}}}}"#, b64(b"attacker-secret")), &c()), No(DecodeFailed));
    r("x5c with the attacker's certificate, kid es-1", Mixed, asym(&fx.evil, &format!(r#"{{"alg":"ES256","kid":"es-1","x5c":["{evil_x5c}"]}}"#), &c()), No(DecodeFailed));
    r("x5c with the attacker's certificate, no kid", Mixed, asym(&fx.evil, &format!(r#"{{"alg":"ES256","x5c":["{evil_x5c}"]}}"#), &c()), No(UnknownKey));

    // --- crit (RFC 7515 §4.1.11): unknown extensions must be refused
    r("crit with an unknown extension", Hs, hs_hdr(r#"{"alg":"HS256","crit":["http://example.invalid/ext"],"http://example.invalid/ext":true}"#, &c()), No(DecodeFailed));
    r("crit naming a registered claim", Hs, hs_hdr(r#"{"alg":"HS256","crit":["exp"],"exp":1}"#, &c()), No(DecodeFailed));
    r("crit empty", Hs, hs_hdr(r#"{"alg":"HS256","crit":[]}"#, &c()), No(DecodeFailed));
    r("crit null (read as absent: it lists no extension)", Hs, hs_hdr(r#"{"alg":"HS256","crit":null}"#, &c()), Yes(SUB));
    r("crit not an array", Hs, hs_hdr(r#"{"alg":"HS256","crit":"x"}"#, &c()), No(Malformed));
    r("crit b64 listed twice", Hs, hs_hdr(r#"{"alg":"HS256","crit":["b64","b64"],"b64":true}"#, &c()), No(DecodeFailed));
    r("b64 false (unencoded payload, RFC 7797)", Hs, hs_hdr(r#"{"alg":"HS256","crit":["b64"],"b64":false}"#, &c()), No(DecodeFailed));
    r("crit b64 with b64 true (RFC 7797 default, understood)", Hs, hs_hdr(r#"{"alg":"HS256","crit":["b64"],"b64":true}"#, &c()), Yes(SUB));

    // --- duplicate members
    let other = "11111111-2222-4333-8444-555555555555";
    r("two sub claims", Hs, hs_raw(HS_HDR, &dup_claim("sub", json!(other), json!(SUB))), No(DecodeFailed));
    r("two exp claims (expired, then valid)", Hs, hs_raw(HS_HDR, &dup_claim("exp", json!(NOW - 3600), json!(NOW + 3600))), No(DecodeFailed));
    r("two aud claims", Hs, hs_raw(HS_HDR, &dup_claim("aud", json!("anon"), json!("authenticated"))), No(DecodeFailed));
    r("two iat claims (not checked by the library: last wins)", Hs, hs_raw(HS_HDR, &dup_claim("iat", json!(NOW + 999_999), json!(NOW - 60))), Yes(SUB));
    r("two role claims (last wins; role is never read by the shim)", Hs, hs_raw(HS_HDR, &dup_claim("role", json!("service_role"), json!("authenticated"))), Yes(SUB));
    r("two alg header members (none, then HS256)", Hs, hs_raw(r#"{"alg":"none","alg":"HS256"}"#, c().to_string().as_bytes()), No(Malformed));
    r("two kid header members", Jwks, asym(&fx.es, r#"{"alg":"ES256","kid":"evil","kid":"es-1"}"#, &c()), No(Malformed));

    // --- time claims around LEEWAY_SECS
    r("exp = now - leeway + 1", Hs, hs(&w("exp", json!(NOW - LEEWAY_SECS + 1))), Yes(SUB));
    r("exp = now - leeway", Hs, hs(&w("exp", json!(NOW - LEEWAY_SECS))), Yes(SUB));
    r("exp = now - leeway - 1", Hs, hs(&w("exp", json!(NOW - LEEWAY_SECS - 1))), No(Claims(C::Expired)));
    r("nbf = now + leeway - 1", Hs, hs(&w("nbf", json!(NOW + LEEWAY_SECS - 1))), Yes(SUB));
    r("nbf = now + leeway", Hs, hs(&w("nbf", json!(NOW + LEEWAY_SECS))), Yes(SUB));
    r("nbf = now + leeway + 1", Hs, hs(&w("nbf", json!(NOW + LEEWAY_SECS + 1))), No(Claims(C::NotYetValid)));
    r("iat = now + leeway - 1", Hs, hs(&w("iat", json!(NOW + LEEWAY_SECS - 1))), Yes(SUB));
    r("iat = now + leeway", Hs, hs(&w("iat", json!(NOW + LEEWAY_SECS))), Yes(SUB));
    r("iat = now + leeway + 1 (issued in the future)", Hs, hs(&w("iat", json!(NOW + LEEWAY_SECS + 1))), No(Claims(C::IssuedInFuture)));
    r("iat far in the future", Hs, hs(&w("iat", json!(NOW + 86_400))), No(Claims(C::IssuedInFuture)));
    r("exp missing", Hs, hs(&w("exp", Value::Null)), No(Claims(C::MissingExp)));
    r("exp null", Hs, hs_raw(HS_HDR, format!(r#"{{"sub":"{SUB}","aud":"authenticated","exp":null}}"#).as_bytes()), No(Claims(C::MissingExp)));
    r("exp as a string", Hs, hs(&w("exp", json!((NOW + 3600).to_string()))), No(Claims(C::MissingExp)));
    r("exp as a boolean", Hs, hs(&w("exp", json!(true))), No(Claims(C::MissingExp)));
    r("exp as an array (the library's claim reader fails)", Hs, hs(&w("exp", json!([NOW + 3600]))), No(DecodeFailed));
    r("exp as a float (floored)", Hs, hs(&w("exp", json!(NOW as f64 + 3600.9))), Yes(SUB));
    r("exp as a float just past the leeway", Hs, hs(&w("exp", json!((NOW - LEEWAY_SECS) as f64 - 0.5))), No(Claims(C::Expired)));
    r("exp negative", Hs, hs(&w("exp", json!(-1))), No(Claims(C::Expired)));
    r("exp i64::MIN", Hs, hs(&w("exp", json!(i64::MIN))), No(Claims(C::Expired)));
    r("exp i64::MAX", Hs, hs(&w("exp", json!(i64::MAX))), No(Claims(C::LifetimeTooLong)));
    r("exp u64::MAX (> i64)", Hs, hs(&w("exp", json!(u64::MAX))), No(Claims(C::LifetimeTooLong)));
    r("exp 1e30", Hs, hs_raw(HS_HDR, format!(r#"{{"sub":"{SUB}","aud":"authenticated","iat":{},"exp":1e30}}"#, NOW - 60) .as_bytes()), No(Claims(C::LifetimeTooLong)));
    r("exp as a 40-digit integer", Hs, hs_raw(HS_HDR, format!(r#"{{"sub":"{SUB}","aud":"authenticated","iat":{},"exp":1{}}}"#, NOW - 60, "0".repeat(39)) .as_bytes()), No(Claims(C::LifetimeTooLong)));
    r("iat as a string", Hs, hs(&w("iat", json!("yesterday"))), No(Claims(C::IssuedInFuture)));
    r("nbf as a string", Hs, hs(&w("nbf", json!("now"))), No(Claims(C::NotYetValid)));
    r("iat very negative (lifetime overflows)", Hs, hs(&w("iat", json!(i64::MIN))), No(Claims(C::LifetimeTooLong)));
    r("lifetime exp - iat = 24 h - 1", Hs, hs(&w("exp", json!(NOW - 60 + 86_399))), Yes(SUB));
    r("lifetime exp - iat = 24 h", Hs, hs(&w("exp", json!(NOW - 60 + 86_400))), Yes(SUB));
    r("lifetime exp - iat = 24 h + 1", Hs, hs(&w("exp", json!(NOW - 60 + 86_401))), No(Claims(C::LifetimeTooLong)));
    r("no iat, exp = now + 24 h + 1", Hs, hs(&with(w("iat", Value::Null), "exp", json!(NOW + 86_401))), No(Claims(C::LifetimeTooLong)));
    r("no iat, exp = now + 1 h", Hs, hs(&w("iat", Value::Null)), Yes(SUB));
    r("configured max 3600: lifetime 3600", Short, hs(&w("exp", json!(NOW - 60 + 3600))), Yes(SUB));
    r("configured max 3600: lifetime 3601", Short, hs(&w("exp", json!(NOW - 60 + 3601))), No(Claims(C::LifetimeTooLong)));

    // --- audience and issuer
    r("aud anon", Hs, hs(&w("aud", json!("anon"))), No(Claims(C::BadAudience)));
    r("aud array without authenticated", Hs, hs(&w("aud", json!(["anon", "service_role"]))), No(Claims(C::BadAudience)));
    r("aud empty array", Hs, hs(&w("aud", json!([]))), No(Claims(C::BadAudience)));
    r("aud empty string", Hs, hs(&w("aud", json!(""))), No(Claims(C::BadAudience)));
    r("aud missing", Hs, hs(&w("aud", Value::Null)), No(Claims(C::BadAudience)));
    r("aud in another case", Hs, hs(&w("aud", json!("Authenticated"))), No(Claims(C::BadAudience)));
    r("aud a number", Hs, hs(&w("aud", json!(1))), No(Claims(C::BadAudience)));
    r("aud nested array", Hs, hs(&w("aud", json!([["authenticated"]]))), No(Claims(C::BadAudience)));
    r("aud array with authenticated", Hs, hs(&w("aud", json!(["x", "authenticated"]))), Yes(SUB));
    r("iss missing, issuer configured", Iss, hs(&c()), No(Claims(C::BadIssuer)));
    r("iss wrong, issuer configured", Iss, hs(&w("iss", json!("https://evil.example/auth/v1"))), No(Claims(C::BadIssuer)));
    r("iss with a trailing slash", Iss, hs(&w("iss", json!(format!("{ISSUER}/")))), No(Claims(C::BadIssuer)));
    r("iss as an array", Iss, hs(&w("iss", json!([ISSUER]))), No(Claims(C::BadIssuer)));
    r("iss right, issuer configured", Iss, hs(&w("iss", json!(ISSUER))), Yes(SUB));
    r("iss anything, no issuer configured", Hs, hs(&w("iss", json!("https://evil.example"))), Yes(SUB));

    // --- subject
    r("sub not a UUID", Hs, hs(&w("sub", json!("admin"))), No(Claims(C::BadSubject)));
    r("sub upper-case UUID", Hs, hs(&w("sub", json!(SUB_UPPER))), Yes(SUB_UPPER));
    r("sub with a leading space", Hs, hs(&w("sub", json!(format!(" {SUB}")))), No(Claims(C::BadSubject)));
    r("sub with a trailing newline", Hs, hs(&w("sub", json!(format!("{SUB}\n")))), No(Claims(C::BadSubject)));
    r("sub missing", Hs, hs(&w("sub", Value::Null)), No(Claims(C::BadSubject)));
    r("sub a number", Hs, hs(&w("sub", json!(12345))), No(Claims(C::BadSubject)));
    r("sub braced UUID", Hs, hs(&w("sub", json!(format!("{{{SUB}}}")))), No(Claims(C::BadSubject)));
    r("sub UUID without hyphens", Hs, hs(&w("sub", json!(SUB.replace('-', "")))), No(Claims(C::BadSubject)));
    r("sub urn:uuid", Hs, hs(&w("sub", json!(format!("urn:uuid:{SUB}")))), No(Claims(C::BadSubject)));
    r("sub with SQL", Hs, hs(&w("sub", json!("00000000-0000-0000-0000-000000000000' OR 1=1--"))), No(Claims(C::BadSubject)));
    r("sub of 36 non-hex characters", Hs, hs(&w("sub", json!("zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"))), No(Claims(C::BadSubject)));

    // --- size, nesting, encoding
    r("exactly MAX_TOKEN_BYTES (16 KiB)", Hs, hs_of_len(MAX_TOKEN_BYTES), Yes(SUB));
    r("16 KiB + 1", Hs, hs_of_len(MAX_TOKEN_BYTES + 1), No(Malformed));
    r("1 MiB claim (1.4 MB token)", Hs, hs(&w("pad", json!("a".repeat(1 << 20)))), No(Malformed));
    r("claims nested 100 deep", Hs, hs_raw(HS_HDR, &nested(100)), Yes(SUB));
    r("claims nested 1000 deep (parser recursion limit)", Hs, hs_raw(HS_HDR, &nested(1000)), No(DecodeFailed));
    r(
        "header with = padding",
        Hs,
        {
            let mut h = b64(br#"{"alg":"HS256","x":12}"#);
            assert!(!h.len().is_multiple_of(4));
            while !h.len().is_multiple_of(4) {
                h.push('=');
            }
            hmac_parts(SECRET, &h, &payload)
        },
        No(Malformed),
    );
    r(
        "payload with = padding (signed as sent)",
        Hs,
        {
            let mut p = payload.clone();
            assert!(!p.len().is_multiple_of(4));
            while !p.len().is_multiple_of(4) {
                p.push('=');
            }
            hmac_parts(SECRET, &b64(HS_HDR.as_bytes()), &p)
        },
        No(DecodeFailed),
    );
    r(
        "payload in the standard alphabet (+/)",
        Hs,
        {
            let p = b64(w("x", json!("???>>>~~~")).to_string().as_bytes());
            let std = p.replace('-', "+").replace('_', "/");
            assert_ne!(p, std);
            hmac_parts(SECRET, &b64(HS_HDR.as_bytes()), &std)
        },
        No(DecodeFailed),
    );
    r("header with trailing bits set in the last character", Hs, hmac_parts(SECRET, &trailing_bits(&b64(br#"{"alg":"HS256","x":12}"#)), &payload), No(Malformed));
    r(
        "payload with trailing bits set in the last character",
        Hs,
        {
            let mut cl = c();
            // pick a padding length whose encoding has spare bits
            let mut n = 0;
            while b64(with(cl.clone(), "p", json!("a".repeat(n))).to_string().as_bytes())
                .len()
                .is_multiple_of(4)
            {
                n += 1;
            }
            cl = with(cl, "p", json!("a".repeat(n)));
            hmac_parts(
                SECRET,
                &b64(HS_HDR.as_bytes()),
                &trailing_bits(&b64(cl.to_string().as_bytes())),
            )
        },
        No(DecodeFailed),
    );
    r("signature with trailing bits set", Hs, resign(&good, trailing_bits), No(DecodeFailed));
    r(
        "newline inside the payload",
        Hs,
        {
            let (h, rest) = good.split_once('.').expect("dot");
            format!("{h}.{}\n{}", &rest[..10], &rest[10..])
        },
        No(DecodeFailed),
    );
    r("space inside the header", Hs, format!("{} {}", &good[..5], &good[5..]), No(Malformed));
    r("CRLF after the token", Hs, format!("{good}\r\n"), No(DecodeFailed));
    r("leading space", Hs, format!(" {good}"), No(Malformed));
    r("four segments a.b.c.d", Hs, format!("{good}.{}", b64(b"extra")), No(Malformed));
    r("trailing dot a.b.c.", Hs, format!("{good}."), No(Malformed));
    r("empty token", Hs, String::new(), No(Malformed));
    r("only dots ..", Hs, "..".into(), No(Malformed));
    r("empty header segment", Hs, format!(".{}", good.split_once('.').expect("dot").1), No(Malformed));
    r("empty payload segment, signed", Hs, hmac_parts(SECRET, &b64(HS_HDR.as_bytes()), ""), No(DecodeFailed));
    r("empty signature segment", Hs, resign(&good, |_| String::new()), No(DecodeFailed));
    r("two segments only", Hs, good.rsplit_once('.').expect("dot").0.to_string(), No(Malformed));
    r("header not JSON", Hs, hmac_parts(SECRET, &b64(b"alg=HS256"), &payload), No(Malformed));
    r("header a JSON array", Hs, hmac_parts(SECRET, &b64(br#"["HS256"]"#), &payload), No(Malformed));
    r("non-UTF-8 payload, signed", Hs, hs_raw(HS_HDR, b"{\"sub\":\"\xff\xfe\",\"exp\":1}"), No(DecodeFailed));
    r("payload a JSON array, signed", Hs, hs_raw(HS_HDR, format!("[{},{},\"{SUB}\",\"x\",\"authenticated\"]", NOW + 3600, NOW).as_bytes()), No(Claims(C::NotAnObject)));
    r("payload a JSON string, signed", Hs, hs_raw(HS_HDR, br#""authenticated""#), No(DecodeFailed));
    r("payload JSON null, signed", Hs, hs_raw(HS_HDR, b"null"), No(DecodeFailed));
    r("payload an empty object, signed", Hs, hs_raw(HS_HDR, b"{}"), No(Claims(C::MissingExp)));

    // --- signatures
    r("signature of another token", Hs, resign(&good, |_| { hs(&w("n", json!(1))) .rsplit_once('.') .expect("dot") .1 .to_string() }), No(DecodeFailed));
    r(
        "claims swapped under a valid signature",
        Hs,
        {
            let (h, rest) = good.split_once('.').expect("dot");
            let sig = rest.rsplit_once('.').expect("dot").1;
            format!(
                "{h}.{}.{sig}",
                b64(w("sub", json!(other)).to_string().as_bytes())
            )
        },
        No(DecodeFailed),
    );
    r("truncated HS256 signature", Hs, resign(&good, |s| s[..s.len() - 2].to_string()), No(DecodeFailed));
    r("HS256 signature with one bit flipped", Hs, resign(&good, |s| flip(s, 0)), No(DecodeFailed));
    r("HS256 signature doubled", Hs, resign(&good, |s| format!("{s}{s}")), No(DecodeFailed));
    r("truncated ES256 signature", Jwks, resign(&es_good, |s| s[..s.len() - 4].to_string()), No(DecodeFailed));
    r("ES256 signature with one bit flipped", Jwks, resign(&es_good, |s| flip(s, 5)), No(DecodeFailed));
    r("RS256 signature with one bit flipped", Jwks, resign(&sign(&fx.rs, &c()), |s| flip(s, 7)), No(DecodeFailed));
    r(
        "ES256 signature of an RS256 token's input",
        Jwks,
        {
            let t = asym(&fx.rs, rs_hdr, &c());
            let es_sig = asym(&fx.es, es_hdr, &c())
                .rsplit_once('.')
                .expect("dot")
                .1
                .to_string();
            resign(&t, |_| es_sig.clone())
        },
        No(DecodeFailed),
    );
    r("wrong HS256 secret", Hs, hmac_with(b"other-secret-other-secret-other!", HS_HDR, &c()), No(DecodeFailed));

    // --- role claims never elevate (the shim never reads `role`; JWT users run as authenticated)
    r("user token with role service_role", Hs, hs(&w("role", json!("service_role"))), Yes(SUB));
    r("user token with role supabase_admin", Hs, hs(&w("role", json!("supabase_admin"))), Yes(SUB));
    r("Supabase service_role key shape (no sub, 10-year lifetime)", Hs, hs(&json!({"iss": "supabase", "role": "service_role", "iat": NOW - 60, "exp": NOW + 315_360_000})), No(Claims(C::LifetimeTooLong)));
    r("service_role claims without sub, short-lived", Hs, hs(&json!({"aud": "authenticated", "role": "service_role", "iat": NOW - 60, "exp": NOW + 600})), No(Claims(C::BadSubject)));
    r("anon key shape (role anon, aud missing)", Hs, hs(&json!({"role": "anon", "iat": NOW - 60, "exp": NOW + 600})), No(Claims(C::BadAudience)));

    v
}

#[tokio::test]
async fn jwt_attack_corpus() {
    // the hand-written HMAC agrees with the library's
    let t = hs(&claims());
    let (input, sig) = t.rsplit_once('.').expect("dot");
    let key = EncodingKey::from_secret(SECRET).expect("key");
    assert_eq!(
        jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::HS256).expect("sign"),
        sig
    );

    let fx = Fx::new().await;
    let cases = cases(&fx);
    let mut names = std::collections::HashSet::new();
    let (mut accepted, mut refused, mut failures) = (0usize, 0usize, Vec::new());
    for case in &cases {
        assert!(names.insert(case.name), "duplicate case name {}", case.name);
        let v = fx.verifier(case.setup);
        // the second look goes through the cache for accepted tokens: same outcome
        let mut outcomes = Vec::new();
        for _ in 0..2 {
            outcomes.push(match v.verify_at(&case.token, NOW).await {
                Ok(ok) => Ok(ok
                    .claims
                    .get("sub")
                    .and_then(Value::as_str)
                    .map(str::to_string)),
                Err(e) => Err(e),
            });
        }
        let got = outcomes[0].clone();
        // the status http::authenticate answers with
        let status = match got {
            Ok(_) => 200,
            Err(_) => ApiError::unauthorized().status,
        };
        println!(
            "{status:<4} {:<72} {got:?} ({} bytes)",
            case.name,
            case.token.len()
        );
        match (&got, case.want) {
            (Ok(Some(a)), Yes(b)) if a == b => accepted += 1,
            (Err(a), No(b)) if *a == b && status == 401 => refused += 1,
            _ => failures.push(format!("{}: got {got:?}, want {:?}", case.name, case.want)),
        }
        if outcomes[1] != got {
            failures.push(format!("{}: second try {:?}", case.name, outcomes[1]));
        }
    }
    let want_refused = cases.iter().filter(|c| matches!(c.want, No(_))).count();
    println!(
        "{} JWT cases: {refused} refused as expected (of {want_refused}), {accepted} accepted as expected (of {})",
        cases.len(),
        cases.len() - want_refused
    );
    assert!(
        failures.is_empty(),
        "corpus mismatches:\n{}",
        failures.join("\n")
    );
    assert!(cases.len() >= 50);
    assert_eq!(refused + accepted, cases.len());
    // every refusal is the generic 401 with a Bearer challenge
    let e = ApiError::unauthorized();
    assert_eq!((e.status, e.code), (401, "UNAUTHORIZED"));
    assert!(WWW_AUTHENTICATE.starts_with("Bearer "));
    // jku / x5u were never followed
    assert_eq!(
        fx.jku_hits.load(Ordering::SeqCst),
        0,
        "a jku/x5u URL was fetched"
    );
    let _ = std::fs::remove_dir_all(&fx.dir);
}
