use super::*;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SUB: &str = "0d1c6f4e-8a43-4a4e-9a53-0c1f2d3e4f50";
const NOW: i64 = 1_700_000_000;
const SECRET: &[u8] = b"test-secret-with-at-least-32-bytes!!";

fn rules() -> ClaimRules {
    ClaimRules {
        audience: "authenticated".into(),
        issuer: None,
        max_lifetime_secs: 86_400,
    }
}

fn claims() -> Value {
    json!({"sub": SUB, "aud": "authenticated", "iat": NOW - 60, "exp": NOW + 3600, "role": "authenticated"})
}

fn with(mut c: Value, k: &str, v: Value) -> Value {
    if let Some(o) = c.as_object_mut() {
        if v.is_null() {
            o.remove(k);
        } else {
            o.insert(k.into(), v);
        }
    }
    c
}

#[test]
fn valid_claims_pass() {
    assert_eq!(validate_claims(&claims(), NOW, &rules()), Ok(NOW + 3600));
}

#[test]
fn exp_at_leeway_boundaries() {
    let c = with(claims(), "exp", json!(NOW - (LEEWAY_SECS - 1)));
    assert!(validate_claims(&c, NOW, &rules()).is_ok());
    let c = with(claims(), "exp", json!(NOW - (LEEWAY_SECS + 1)));
    assert_eq!(validate_claims(&c, NOW, &rules()), Err(ClaimError::Expired));
}

#[test]
fn nbf_at_leeway_boundaries() {
    let c = with(claims(), "nbf", json!(NOW + LEEWAY_SECS - 1));
    assert!(validate_claims(&c, NOW, &rules()).is_ok());
    let c = with(claims(), "nbf", json!(NOW + LEEWAY_SECS + 1));
    assert_eq!(
        validate_claims(&c, NOW, &rules()),
        Err(ClaimError::NotYetValid)
    );
}

#[test]
fn iat_at_leeway_boundaries() {
    let c = with(claims(), "iat", json!(NOW + LEEWAY_SECS - 1));
    assert!(validate_claims(&c, NOW, &rules()).is_ok());
    let c = with(claims(), "iat", json!(NOW + LEEWAY_SECS + 1));
    assert_eq!(
        validate_claims(&c, NOW, &rules()),
        Err(ClaimError::IssuedInFuture)
    );
}

#[test]
fn required_claims() {
    let r = rules();
    assert_eq!(
        validate_claims(&with(claims(), "exp", Value::Null), NOW, &r),
        Err(ClaimError::MissingExp)
    );
    assert_eq!(
        validate_claims(&with(claims(), "exp", json!("soon")), NOW, &r),
        Err(ClaimError::MissingExp)
    );
    assert_eq!(
        validate_claims(&with(claims(), "aud", Value::Null), NOW, &r),
        Err(ClaimError::BadAudience)
    );
    assert_eq!(
        validate_claims(&with(claims(), "aud", json!("anon")), NOW, &r),
        Err(ClaimError::BadAudience)
    );
    assert!(validate_claims(
        &with(claims(), "aud", json!(["x", "authenticated"])),
        NOW,
        &r
    )
    .is_ok());
    assert_eq!(
        validate_claims(&with(claims(), "sub", Value::Null), NOW, &r),
        Err(ClaimError::BadSubject)
    );
    assert_eq!(
        validate_claims(&with(claims(), "sub", json!("admin")), NOW, &r),
        Err(ClaimError::BadSubject)
    );
    assert_eq!(
        validate_claims(&json!([1]), NOW, &r),
        Err(ClaimError::NotAnObject)
    );
}

#[test]
fn lifetime_and_issuer() {
    let r = rules();
    let c = with(claims(), "exp", json!(NOW - 60 + 86_400));
    assert!(validate_claims(&c, NOW, &r).is_ok());
    let c = with(claims(), "exp", json!(NOW - 60 + 86_401));
    assert_eq!(
        validate_claims(&c, NOW, &r),
        Err(ClaimError::LifetimeTooLong)
    );
    // without iat the remaining lifetime counts
    let c = with(
        with(claims(), "iat", Value::Null),
        "exp",
        json!(NOW + 90_000),
    );
    assert_eq!(
        validate_claims(&c, NOW, &r),
        Err(ClaimError::LifetimeTooLong)
    );
    let mut r = rules();
    r.issuer = Some("https://issuer.example".into());
    assert_eq!(
        validate_claims(&claims(), NOW, &r),
        Err(ClaimError::BadIssuer)
    );
    assert!(validate_claims(
        &with(claims(), "iss", json!("https://issuer.example")),
        NOW,
        &r
    )
    .is_ok());
}

fn hs_verifier() -> Verifier {
    Verifier::new(
        rules(),
        Some(SECRET),
        JwksSource::default(),
        Duration::from_secs(30),
        10_000,
    )
    .expect("verifier")
}

fn hs_token(c: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        c,
        &EncodingKey::from_secret(SECRET).expect("key"),
    )
    .expect("encode")
}

#[tokio::test]
async fn hs256_roundtrip_and_cache() {
    let v = hs_verifier();
    let t = hs_token(&claims());
    let ok = v.verify_at(&t, NOW).await.expect("valid");
    assert_eq!(ok.claims["sub"], SUB);
    assert_eq!(v.cache_len(), 1);
    assert!(v.verify_at(&t, NOW).await.is_ok());
    assert_eq!(v.cache_len(), 1);
    // the cached token still expires
    assert_eq!(
        v.verify_at(&t, NOW + 3600 + LEEWAY_SECS + 1)
            .await
            .map(|_| ()),
        Err(VerifyError::Claims(ClaimError::Expired))
    );
    // wrong secret
    let bad = encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(b"other-secret-other-secret-other!").expect("key"),
    )
    .expect("encode");
    assert_eq!(
        v.verify_at(&bad, NOW).await.map(|_| ()),
        Err(VerifyError::DecodeFailed)
    );
    // claims failures surface
    let t = hs_token(&with(claims(), "aud", Value::Null));
    assert_eq!(
        v.verify_at(&t, NOW).await.map(|_| ()),
        Err(VerifyError::Claims(ClaimError::BadAudience))
    );
}

#[tokio::test]
async fn garbage_and_alg_none_are_rejected() {
    let v = hs_verifier();
    for t in ["", "abc", "a.b.c", "....", &"x".repeat(MAX_TOKEN_BYTES + 1)] {
        assert!(v.verify_at(t, NOW).await.is_err(), "{t:.20}");
    }
    use base64_like::b64;
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims().to_string().as_bytes())
    );
    assert!(v.verify_at(&none, NOW).await.is_err());
    // HS512 with the right secret: the key (HS256) decides
    let t = encode(
        &Header::new(Algorithm::HS512),
        &claims(),
        &EncodingKey::from_secret(SECRET).expect("key"),
    )
    .expect("encode");
    assert!(v.verify_at(&t, NOW).await.is_err());
}

#[test]
fn cache_is_bounded() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("rt");
    let v = Verifier::new(
        rules(),
        Some(SECRET),
        JwksSource::default(),
        Duration::from_secs(30),
        16,
    )
    .expect("verifier");
    rt.block_on(async {
        for i in 0..100 {
            let t = hs_token(&with(claims(), "n", json!(i)));
            assert!(v.verify_at(&t, NOW).await.is_ok());
        }
    });
    assert!(v.cache_len() <= 16);
}

mod base64_like {
    /// URL-safe base64 without padding (test helper).
    pub fn b64(input: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in input.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            let chars = chunk.len() + 1;
            for i in 0..chars {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}

struct TestKey {
    kid: String,
    alg: Algorithm,
    enc: EncodingKey,
    jwk: Value,
    /// The key pair itself (the attack corpus derives public PEM/DER and certificates from it).
    kp: rcgen::KeyPair,
}

fn gen_key(kid: &str, alg: Algorithm) -> TestKey {
    let kp = match alg {
        Algorithm::ES256 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        _ => rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256),
    }
    .expect("keygen");
    let pem = kp.serialize_pem();
    let enc = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()),
        _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
    }
    .expect("encoding key");
    let mut jwk = Jwk::from_encoding_key(&enc, alg).expect("jwk");
    jwk.common.key_id = Some(kid.to_string());
    TestKey {
        kid: kid.into(),
        alg,
        enc,
        jwk: serde_json::to_value(&jwk).expect("jwk json"),
        kp,
    }
}

fn sign(k: &TestKey, c: &Value) -> String {
    let mut h = Header::new(k.alg);
    h.kid = Some(k.kid.clone());
    encode(&h, c, &k.enc).expect("sign")
}

/// Serves `body` as a JWKS on 127.0.0.1:0 and counts requests.
async fn jwks_server(body: Arc<Mutex<String>>, hits: Arc<AtomicUsize>) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let body = body.lock().map(|b| b.clone()).unwrap_or_default();
            hits.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                    body.len(),
                    body
                );
                let _ = s.write_all(resp.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    format!("http://{addr}/.well-known/jwks.json")
}

fn jwks_of(keys: &[&TestKey]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}).to_string()
}

#[tokio::test]
async fn es256_and_rs256_from_jwks_url_with_rotation() {
    let es1 = gen_key("es-1", Algorithm::ES256);
    let rs1 = gen_key("rs-1", Algorithm::RS256);
    let es2 = gen_key("es-2", Algorithm::ES256);
    let es3 = gen_key("es-3", Algorithm::ES256);
    let body = Arc::new(Mutex::new(jwks_of(&[&es1, &rs1])));
    let hits = Arc::new(AtomicUsize::new(0));
    let url = jwks_server(body.clone(), hits.clone()).await;
    let v = Verifier::new(
        rules(),
        Some(SECRET),
        JwksSource {
            file: None,
            url: Some(url),
        },
        Duration::from_secs(3600),
        100,
    )
    .expect("verifier");
    assert_eq!(v.refresh().await, Ok(2));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert!(v.verify_at(&sign(&es1, &claims()), NOW).await.is_ok());
    assert!(v.verify_at(&sign(&rs1, &claims()), NOW).await.is_ok());

    // rotation: a new kid appears at the URL; the unknown kid triggers one refresh
    if let Ok(mut b) = body.lock() {
        *b = jwks_of(&[&es1, &rs1, &es2]);
    }
    assert!(v.verify_at(&sign(&es2, &claims()), NOW).await.is_ok());
    assert_eq!(hits.load(Ordering::SeqCst), 2);

    // within the cooldown another unknown kid does not refetch
    if let Ok(mut b) = body.lock() {
        *b = jwks_of(&[&es1, &rs1, &es2, &es3]);
    }
    assert_eq!(
        v.verify_at(&sign(&es3, &claims()), NOW).await.map(|_| ()),
        Err(VerifyError::UnknownKey)
    );
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    // the timer refresh picks it up
    assert_eq!(v.refresh().await, Ok(4));
    assert!(v.verify_at(&sign(&es3, &claims()), NOW).await.is_ok());
}

#[tokio::test]
async fn algorithm_confusion_is_rejected() {
    let es = gen_key("es-1", Algorithm::ES256);
    let rs = gen_key("rs-1", Algorithm::RS256);
    let dir = std::env::temp_dir().join(format!("ama-shim-jwks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("jwks.json");
    std::fs::write(&file, jwks_of(&[&es, &rs])).expect("write");
    let v = Verifier::new(
        rules(),
        Some(SECRET),
        JwksSource {
            file: Some(file),
            url: None,
        },
        Duration::from_secs(0),
        100,
    )
    .expect("verifier");
    assert_eq!(v.refresh().await, Ok(2));
    // HS256 signed with the public key's x coordinate, claiming the EC kid
    let x = es.jwk["x"].as_str().unwrap_or_default().to_string();
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("es-1".into());
    let forged = encode(
        &h,
        &claims(),
        &EncodingKey::from_secret(x.as_bytes()).expect("key"),
    )
    .expect("encode");
    assert_eq!(
        v.verify_at(&forged, NOW).await.map(|_| ()),
        Err(VerifyError::DecodeFailed)
    );
    // an HS256 token signed with the real secret but naming an EC kid is still refused
    let forged = encode(
        &h,
        &claims(),
        &EncodingKey::from_secret(SECRET).expect("key"),
    )
    .expect("encode");
    assert_eq!(
        v.verify_at(&forged, NOW).await.map(|_| ()),
        Err(VerifyError::DecodeFailed)
    );
    // ES256 token presented under the RSA kid
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some("rs-1".into());
    let t = encode(&h, &claims(), &es.enc).expect("encode");
    assert_eq!(
        v.verify_at(&t, NOW).await.map(|_| ()),
        Err(VerifyError::DecodeFailed)
    );
    // ES256 without kid: no key chosen
    let t = encode(&Header::new(Algorithm::ES256), &claims(), &es.enc).expect("encode");
    assert_eq!(
        v.verify_at(&t, NOW).await.map(|_| ()),
        Err(VerifyError::UnknownKey)
    );
    // jku / jwk headers are ignored: an attacker's own key is not used
    let attacker = gen_key("evil", Algorithm::ES256);
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some("evil".into());
    h.jku = Some("http://127.0.0.1:1/jwks.json".into());
    h.jwk = serde_json::from_value(attacker.jwk.clone()).ok();
    let t = encode(&h, &claims(), &attacker.enc).expect("encode");
    assert_eq!(
        v.verify_at(&t, NOW).await.map(|_| ()),
        Err(VerifyError::UnknownKey)
    );
    // the same attacker key claiming a known kid fails the signature
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some("es-1".into());
    let t = encode(&h, &claims(), &attacker.enc).expect("encode");
    assert_eq!(
        v.verify_at(&t, NOW).await.map(|_| ()),
        Err(VerifyError::DecodeFailed)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Answers every request on 127.0.0.1:0 with the raw bytes `resp`, and hands back each request
/// head received.
async fn raw_server(resp: Vec<u8>) -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let resp = resp.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tx.send(String::from_utf8_lossy(&got).into_owned());
                let _ = s.write_all(&resp).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (format!("http://{addr}/jwks.json"), rx)
}

fn url_verifier(url: String) -> Verifier {
    Verifier::new(
        rules(),
        None,
        JwksSource {
            file: None,
            url: Some(url),
        },
        Duration::from_secs(0),
        10,
    )
    .expect("verifier")
}

/// The JWKS URL fetch: request headers, no redirects, non-2xx refused, 64 KiB body limit with
/// and without a Content-Length.
#[tokio::test]
async fn jwks_url_fetch_limits() {
    let es = gen_key("es-1", Algorithm::ES256);
    let doc = jwks_of(&[&es]);
    let ok = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{doc}",
        doc.len()
    );
    let (url, mut heads) = raw_server(ok.into_bytes()).await;
    let v = url_verifier(url);
    assert_eq!(v.refresh().await, Ok(1));
    let head = heads.recv().await.expect("request").to_ascii_lowercase();
    assert!(head.starts_with("get /jwks.json http/1.1\r\n"), "{head}");
    assert!(
        head.contains(&format!(
            "user-agent: ama-shim/{}\r\n",
            env!("CARGO_PKG_VERSION")
        )),
        "{head}"
    );
    assert!(head.contains("accept: application/json\r\n"), "{head}");

    let big = "x".repeat(MAX_JWKS_BYTES + 1);
    let chunked_big = {
        let mut r =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
        for _ in 0..(MAX_JWKS_BYTES / 1000 + 1) {
            r.extend_from_slice(format!("3e8\r\n{}\r\n", "x".repeat(1000)).as_bytes());
        }
        r.extend_from_slice(b"0\r\n\r\n");
        r
    };
    for (what, resp) in [
        (
            "redirect",
            format!("HTTP/1.1 302 Found\r\nLocation: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", "http://127.0.0.1:1/jwks.json").into_bytes(),
        ),
        (
            "status",
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
        ),
        (
            "body larger",
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{big}", big.len()).into_bytes(),
        ),
        ("body larger", chunked_big),
    ] {
        let (url, _heads) = raw_server(resp).await;
        let v = url_verifier(url);
        let err = v.refresh().await.expect_err(what);
        assert!(err.contains(what) || (what == "redirect" && err.contains("302")), "{what}: {err}");
        assert_eq!(v.key_count(), 0);
    }
}

#[test]
fn jwks_parsing_skips_unusable_keys() {
    let es = gen_key("es-1", Algorithm::ES256);
    let doc = json!({"keys": [
        es.jwk,
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        {"kty": "EC", "crv": "P-256", "x": "bad", "y": "bad"},
        {"kty": "weird", "kid": "w"},
    ]});
    let keys = parse_jwks(doc.to_string().as_bytes()).expect("parse");
    assert_eq!(keys.len(), 1);
    assert!(keys.contains_key("es-1"));
    assert!(parse_jwks(b"not json").is_err());
    assert!(parse_jwks(b"{}").is_err());
}

/// The RFC 8725 attack corpus, run through the real verifier with the fixtures above.
mod corpus;

/// Property tests of token and claims parsing (proptest).
mod props;
