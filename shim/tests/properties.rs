//! Property tests of every shim parser that sees client bytes (besides JWTs, which are in
//! `src/jwt/tests/props.rs`): route paths and percent-decoding, query strings, JSON bodies,
//! credential headers, request ids, `Last-Event-ID`, `X-Forwarded-For`, and the configuration
//! (TOML file and flags; the environment is in `config_env_props.rs`).
//!
//! Each property runs `PROPTEST_CASES` cases (256 when unset). A longer run:
//! `PROPTEST_CASES=100000 cargo test --release -p ama-shim --test properties`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ama_core::token::{check_format, compose, TokenKind};
use ama_shim::config::{parse_net, Config, ConfigError, Options};
use ama_shim::credential::{classify, Presented};
use ama_shim::net::{canonical, client_ip};
use ama_shim::request::{parse_body, request_id};
use ama_shim::routes::{match_route, parse_query, percent_decode, RouteMatch, ROUTES};
use ama_shim::stream::start_after;
use http::{HeaderMap, HeaderValue, Method};
use ipnet::IpNet;
use proptest::prelude::*;
use secrecy::ExposeSecret;
use serde_json::{Map, Value};

// ---------------------------------------------------------------------------------------------
// Routes, paths, percent-decoding, query strings

const UNRESERVED: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";

/// Percent-encodes every byte outside the unreserved set (RFC 3986), `%XX` in either case.
fn pct(s: &str, upper: bool, plus_for_space: bool) -> String {
    let mut out = String::new();
    for &b in s.as_bytes() {
        if UNRESERVED.contains(&b) {
            out.push(b as char);
        } else if plus_for_space && b == b' ' {
            out.push('+');
        } else if upper {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::GET),
        Just(Method::POST),
        Just(Method::PUT),
        Just(Method::DELETE),
        Just(Method::HEAD),
        Just(Method::PATCH),
        Just(Method::OPTIONS),
        "[A-Z]{1,10}".prop_map(|m| Method::from_bytes(m.as_bytes()).expect("token")),
    ]
}

fn uuid() -> impl Strategy<Value = String> {
    any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string())
}

/// Paths a scanner would send: real prefixes with odd tails, dot segments, encodings, junk.
fn path() -> impl Strategy<Value = String> {
    let seg = prop_oneof![
        Just("api".to_string()),
        Just("v1".to_string()),
        Just("chat".to_string()),
        Just("threads".to_string()),
        Just("events".to_string()),
        Just("stream".to_string()),
        Just("..".to_string()),
        Just("%2e%2e".to_string()),
        Just("%2F".to_string()),
        Just(String::new()),
        uuid(),
        "[^/]{0,12}",
        any::<String>(),
    ];
    prop_oneof![
        any::<String>(),
        prop::collection::vec(seg, 0..8).prop_map(|v| format!("/{}", v.join("/"))),
    ]
}

/// A route pattern with its parameters replaced by `fill(name)`.
fn fill_pattern(pattern: &str, mut fill: impl FnMut(&str) -> String) -> String {
    pattern
        .split('/')
        .map(
            |s| match s.strip_prefix('{').and_then(|n| n.strip_suffix('}')) {
                Some(name) => fill(name),
                None => s.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

fn check_match(m: &Method, p: &str, got: &RouteMatch) -> Result<(), TestCaseError> {
    match got {
        RouteMatch::Found { target, params } => {
            // the route exists with this method (or HEAD on a non-API GET route)
            prop_assert!(ROUTES.iter().any(|r| r.target == *target
                && (r.method == *m || (*m == Method::HEAD && r.method == Method::GET))));
            // a parameter is one non-empty segment, and decodes to something non-empty
            for (_, v) in params {
                prop_assert!(!v.is_empty(), "empty parameter from {p:?}");
            }
        }
        RouteMatch::MethodNotAllowed { allow } => {
            prop_assert!(!allow.is_empty());
            prop_assert!(!allow.contains(m));
            let mut sorted = allow.clone();
            sorted.sort_by(|a, b| a.as_str().cmp(b.as_str()));
            sorted.dedup();
            prop_assert_eq!(&sorted, allow);
        }
        RouteMatch::NotFound => {}
    }
    Ok(())
}

proptest! {
    /// Arbitrary methods and paths: no panic, and every answer is consistent with the table.
    #[test]
    fn arbitrary_paths(m in method(), p in path()) {
        let got = match_route(&m, &p);
        check_match(&m, &p, &got)?;
    }

    /// Every route with arbitrary UUID parameters matches its own target, with the parameters
    /// returned as given.
    #[test]
    fn known_routes_with_uuid_params(i in any::<prop::sample::Index>(), ids in prop::collection::vec(uuid(), 2)) {
        let r = &ROUTES[i.index(ROUTES.len())];
        let (m, pattern, target) = (&r.method, r.path, &r.target);
        let mut it = ids.iter();
        let path = fill_pattern(pattern, |_| it.next().cloned().unwrap_or_default());
        match match_route(m, &path) {
            RouteMatch::Found { target: t, params } => {
                prop_assert_eq!(t, *target);
                let want: Vec<String> = ids.iter().take(params.len()).cloned().collect();
                prop_assert_eq!(params.into_iter().map(|(_, v)| v).collect::<Vec<_>>(), want);
            }
            other => return Err(TestCaseError::fail(format!("{m} {path}: {other:?}"))),
        }
    }

    /// Parameters are not validated by the shim (the database answers 22023 for a bad UUID):
    /// any non-empty segment matches, percent-encoded in any way, and decodes back to the
    /// original text.
    #[test]
    fn params_round_trip(i in any::<prop::sample::Index>(), raw in prop::collection::vec(".{1,16}", 2), upper in any::<bool>()) {
        let with_params: Vec<_> = ROUTES.iter().filter(|r| r.path.contains('{')).collect();
        let r = with_params[i.index(with_params.len())];
        let (m, pattern, target) = (&r.method, r.path, &r.target);
        let mut it = raw.iter();
        let path = fill_pattern(pattern, |_| pct(it.next().map(String::as_str).unwrap_or("x"), upper, false));
        match match_route(m, &path) {
            RouteMatch::Found { target: t, params } => {
                prop_assert_eq!(t, *target);
                for ((_, got), want) in params.iter().zip(&raw) {
                    prop_assert_eq!(got, want);
                }
            }
            other => return Err(TestCaseError::fail(format!("{m} {path}: {other:?}"))),
        }
    }

    /// percent_decode: no panic on anything; inverse of full percent-encoding; the identity on
    /// text without `%`; invalid UTF-8 becomes U+FFFD rather than an error.
    #[test]
    fn percent_decoding(s in any::<String>(), junk in any::<Vec<u8>>()) {
        prop_assert_eq!(percent_decode(&pct(&s, false, false)), s.clone());
        prop_assert_eq!(percent_decode(&pct(&s, true, false)), s.clone());
        if !s.contains('%') {
            prop_assert_eq!(percent_decode(&s), s.clone());
        }
        let enc: String = junk.iter().map(|b| format!("%{b:02x}")).collect();
        prop_assert_eq!(percent_decode(&enc), String::from_utf8_lossy(&junk).into_owned());
    }

    /// parse_query: no panic on any query text; form-encoded pairs come back decoded, a repeated
    /// key keeps its last value, empty keys are dropped.
    #[test]
    fn query_strings(q in prop::option::of(any::<String>()),
                     pairs in prop::collection::vec((".{0,8}", ".{0,12}"), 0..8)) {
        let m = parse_query(q.as_deref());
        prop_assert!(m.keys().all(|k| !k.is_empty()));
        prop_assert!(m.values().all(Value::is_string));

        let text = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", pct(k, false, true), pct(v, true, true)))
            .collect::<Vec<_>>()
            .join("&");
        let mut want: Map<String, Value> = Map::new();
        for (k, v) in &pairs {
            if !k.is_empty() {
                want.insert(k.clone(), Value::String(v.clone()));
            }
        }
        prop_assert_eq!(parse_query(Some(&text)), want);
    }
}

// ---------------------------------------------------------------------------------------------
// JSON bodies

proptest! {
    /// parse_body: no panic on any bytes; empty or blank is JSON null; anything else is exactly
    /// what serde_json reads, or the one documented 400.
    #[test]
    fn bodies(b in prop_oneof![
        any::<Vec<u8>>(),
        "[ \\t\\r\\n]{0,8}".prop_map(String::into_bytes),
        "[\\[\\]{}\":,0-9a-z \\\\]{0,64}".prop_map(String::into_bytes),
    ]) {
        match parse_body(&b) {
            Ok(Value::Null) if b.iter().all(u8::is_ascii_whitespace) => {}
            Ok(v) => prop_assert_eq!(Some(v), serde_json::from_slice::<Value>(&b).ok()),
            Err(e) => {
                prop_assert_eq!((e.status, e.code, e.message.as_str()), (400, "BAD_REQUEST", "body: invalid JSON"));
                prop_assert!(serde_json::from_slice::<Value>(&b).is_err());
            }
        }
    }

    /// Any JSON value round-trips; nesting past the parser's limit is a 400, never a crash.
    #[test]
    fn json_values_and_nesting(depth in 0usize..4000, obj in any::<bool>(), n in any::<i64>(), s in ".{0,20}") {
        let v = serde_json::json!({"n": n, "s": s, "a": [n, s, null, true]});
        prop_assert_eq!(parse_body(v.to_string().as_bytes()), Ok(v));
        let (open, close) = if obj { ("{\"a\":", "}") } else { ("[", "]") };
        let deep = format!("{}1{}", open.repeat(depth), close.repeat(depth));
        match parse_body(deep.as_bytes()) {
            Ok(_) => prop_assert!(depth <= 128),
            Err(e) => {
                prop_assert_eq!(e.status, 400);
                prop_assert!(depth > 100);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Credential headers, request ids, Last-Event-ID

fn header_text() -> impl Strategy<Value = Vec<u8>> {
    let agent = "[0-9a-f]{64}".prop_map(|b| compose(TokenKind::Agent, &b));
    let visitor = "[0-9a-f]{64}".prop_map(|b| compose(TokenKind::Visitor, &b));
    let key = "[0-9a-f]{64}".prop_map(|b| compose(TokenKind::InternalKey, &b));
    prop_oneof![
        any::<Vec<u8>>(),
        any::<String>().prop_map(String::into_bytes),
        (
            prop::sample::select(vec![
                "Bearer ", "bearer ", "BEARER  ", "Basic ", "Bearer", ""
            ]),
            prop_oneof![
                agent.clone(),
                visitor,
                key.clone(),
                "ama_[a-z_0-9]{0,80}",
                "[ -~]{0,40}"
            ]
        )
            .prop_map(|(s, t)| format!("{s}{t}").into_bytes()),
        agent.prop_map(String::into_bytes),
        key.prop_map(String::into_bytes),
    ]
}

proptest! {
    /// classify: no panic on any header bytes; a token is only ever passed on after its format
    /// and checksum check; a JWT is never an `ama_` value and never holds whitespace.
    #[test]
    fn credential_headers(auth in prop::option::of(header_text()), internal in prop::option::of(header_text()),
                          repeat_auth in any::<bool>()) {
        let mut h = HeaderMap::new();
        let mut present = false;
        if let Some(v) = auth.as_ref().and_then(|a| HeaderValue::from_bytes(a).ok()) {
            h.append("authorization", v.clone());
            if repeat_auth {
                h.append("authorization", v);
            }
            present = true;
        }
        if let Some(v) = internal.as_ref().and_then(|a| HeaderValue::from_bytes(a).ok()) {
            h.append("x-internal-api-key", v);
            present = true;
        }
        match classify(&h) {
            Ok(Presented::None) => prop_assert!(!present),
            Ok(Presented::Token(k, t)) => {
                prop_assert_eq!(check_format(k, t), Ok(()));
                prop_assert_eq!(k == TokenKind::InternalKey, h.contains_key("x-internal-api-key"));
                if k != TokenKind::InternalKey {
                    prop_assert_eq!(h.get_all("authorization").iter().count(), 1);
                }
            }
            Ok(Presented::Jwt(t)) => {
                prop_assert!(!t.starts_with("ama_"));
                prop_assert!(!t.is_empty() && !t.contains(char::is_whitespace));
                prop_assert!(!h.contains_key("x-internal-api-key"));
                prop_assert_eq!(h.get_all("authorization").iter().count(), 1);
            }
            Err(r) => {
                prop_assert!(present);
                prop_assert!(["jwt", "agent", "visitor", "internal"].contains(&r.kind), "{r:?}");
            }
        }
    }

    /// request_id: a caller's id is kept only when short and plain; anything else gets a UUID.
    #[test]
    fn request_ids(id in prop_oneof![any::<Vec<u8>>(), "[A-Za-z0-9._-]{0,80}".prop_map(String::into_bytes)]) {
        let mut h = HeaderMap::new();
        let value = HeaderValue::from_bytes(&id).ok();
        if let Some(v) = &value {
            h.insert("x-request-id", v.clone());
        }
        let got = request_id(&h);
        let plain = !id.is_empty() && id.len() <= 64
            && id.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if plain && value.is_some() {
            prop_assert_eq!(got.as_bytes(), &id[..]);
        } else {
            prop_assert!(uuid::Uuid::parse_str(&got).is_ok(), "{got}");
        }
    }

    /// Last-Event-ID wins only when it is a plain unsigned integer; otherwise the query decides.
    #[test]
    fn last_event_ids(last in prop::option::of(any::<String>()), after in prop::option::of(any::<String>()),
                      n in any::<u64>()) {
        let mut q = Map::new();
        if let Some(a) = &after {
            q.insert("after_seq".into(), Value::String(a.clone()));
        }
        let got = start_after(&q, last.as_deref());
        match last.as_deref().map(str::trim).filter(|s| s.parse::<u64>().is_ok()) {
            Some(id) => prop_assert_eq!(got.as_deref(), Some(id)),
            None => prop_assert_eq!(got, after),
        }
        let s = n.to_string();
        prop_assert_eq!(start_after(&Map::new(), Some(&format!(" {s} "))), Some(s));
    }
}

// ---------------------------------------------------------------------------------------------
// X-Forwarded-For

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        prop::sample::select(vec![
            "10.0.0.1",
            "10.9.8.7",
            "192.168.1.1",
            "203.0.113.9",
            "198.51.100.7",
            "::1",
            "2001:db8::1",
            "::ffff:10.0.0.1",
            "::ffff:203.0.113.9",
            "fe80::1",
        ])
        .prop_map(|s| s.parse::<IpAddr>().expect("ip")),
        any::<u32>().prop_map(|n| IpAddr::V4(Ipv4Addr::from(n))),
        any::<u128>().prop_map(|n| IpAddr::V6(Ipv6Addr::from(n))),
    ]
}

fn hop() -> impl Strategy<Value = String> {
    prop_oneof![
        ip().prop_map(|a| a.to_string()),
        ip().prop_map(|a| match a {
            IpAddr::V4(v) => format!("{v}:443"),
            IpAddr::V6(v) => format!("[{v}]:443"),
        }),
        ip().prop_map(|a| format!("  [{a}]  ")),
        Just("unknown".to_string()),
        Just(String::new()),
        "[0-9a-f.:\\[\\] ]{0,20}",
        any::<String>(),
    ]
}

fn proxies() -> impl Strategy<Value = Vec<IpNet>> {
    prop::collection::vec(
        prop::sample::select(vec![
            "10.0.0.0/8",
            "192.168.1.1",
            "::1",
            "2001:db8::/32",
            "0.0.0.0/0",
            "203.0.113.0/24",
        ])
        .prop_map(|s| parse_net(s).expect("net")),
        0..3,
    )
}

fn trusted(ip: IpAddr, p: &[IpNet]) -> bool {
    let ip = canonical(ip);
    p.iter().any(|n| n.contains(&ip))
}

/// The documented rule: the socket peer, unless trusted; then walk the hops from the right,
/// stopping at the first address that is not a trusted proxy, or at a malformed hop.
fn xff_oracle(peer: IpAddr, headers: &[String], p: &[IpNet]) -> IpAddr {
    let mut cur = canonical(peer);
    if !trusted(cur, p) {
        return cur;
    }
    let hops: Vec<&str> = headers.iter().flat_map(|h| h.split(',')).collect();
    for h in hops.iter().rev() {
        if !trusted(cur, p) {
            return cur;
        }
        let h = h.trim();
        let parsed = h
            .parse::<IpAddr>()
            .ok()
            .or_else(|| h.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
            .or_else(|| {
                h.strip_prefix('[')
                    .and_then(|r| r.strip_suffix(']'))
                    .and_then(|r| r.parse().ok())
            });
        match parsed {
            Some(ip) => cur = canonical(ip),
            None => return cur,
        }
    }
    cur
}

proptest! {
    /// client_ip: no panic on any header; an untrusted peer always gets its own address (it can
    /// never choose one); a trusted peer's answer is the peer or an address from the header,
    /// exactly as the documented walk says.
    #[test]
    fn forwarded_for(peer in ip(), p in proxies(),
                     headers in prop::collection::vec(prop::collection::vec(hop(), 0..5).prop_map(|v| v.join(",")), 0..3)) {
        let got = client_ip(peer, headers.iter().map(String::as_str), &p);
        if !trusted(peer, &p) {
            prop_assert_eq!(got, canonical(peer));
        } else if got != canonical(peer) {
            let from_header = headers.iter().flat_map(|h| h.split(',')).any(|h| {
                let h = h.trim();
                [h.to_string(), h.trim_start_matches('[').trim_end_matches(']').to_string()]
                    .iter()
                    .any(|s| s.parse::<IpAddr>().map(canonical) == Ok(got))
                    || h.parse::<std::net::SocketAddr>().map(|a| canonical(a.ip())) == Ok(got)
            });
            prop_assert!(from_header, "{got} is neither the peer nor in the header");
        }
        prop_assert_eq!(got, xff_oracle(peer, &headers, &p));
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration: TOML file and flags

/// The TOML keys and flags to generate, read from the flag definitions themselves (so a new
/// option is covered without touching this file), plus one unknown key. Not `config` (not a
/// file key) nor `jwt_secret_file`, which names a file that is read at once (random paths could
/// name a device); `secret_files_are_read_and_checked` covers it.
fn keys() -> Vec<String> {
    use clap::CommandFactory;
    let mut k: Vec<String> = Options::command()
        .get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|l| !matches!(*l, "config" | "jwt-secret-file" | "help" | "version"))
        .map(|l| l.replace('-', "_"))
        .collect();
    assert!(k.len() >= 30, "flags: {k:?}");
    k.push("unknown_key".into());
    k
}

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(keys())
}

/// A TOML value literal of some type, often of the right one.
fn toml_value() -> impl Strategy<Value = String> {
    let s = prop_oneof![
        Just("127.0.0.1:0".to_string()),
        Just("[::1]:8443".to_string()),
        Just("json".to_string()),
        Just("text".to_string()),
        Just("http://127.0.0.1:1/jwks".to_string()),
        Just("ftp://x".to_string()),
        Just("10.0.0.0/8".to_string()),
        Just(String::new()),
        ".{0,16}",
    ]
    .prop_map(|s| toml::Value::String(s).to_string());
    prop_oneof![
        s.clone(),
        any::<i64>().prop_map(|n| n.to_string()),
        (0u64..100_000).prop_map(|n| n.to_string()),
        Just("0".to_string()),
        Just("18446744073709551615".to_string()),
        Just("-1".to_string()),
        any::<f64>().prop_map(|f| toml::Value::Float(f).to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        prop::collection::vec(s, 0..3).prop_map(|v| format!("[{}]", v.join(", "))),
        Just("{ a = 1 }".to_string()),
        Just("1979-05-27T07:32:00Z".to_string()),
    ]
}

const BASE_ARGS: [&str; 7] = [
    "ama-shim",
    "--tls-cert",
    "c.pem",
    "--tls-key",
    "k.pem",
    "--database-url",
    "host=x password=hunter2",
];

/// The configuration from `args` over the file `file`.
fn merge(args: &[&str], file: Options) -> Result<Config, ConfigError> {
    Config::try_from(file.with_args(args)?)
}

/// Invariants of any configuration that loads.
fn check_config(c: &Config) -> Result<(), TestCaseError> {
    prop_assert!(c.pool_size >= 1);
    prop_assert!((1..=1_000_000).contains(&c.max_connections));
    prop_assert!(c.max_header_bytes >= 8192);
    prop_assert!(c.max_headers >= 1);
    prop_assert!(c.auth_failure_limit >= 1 && c.shim_endpoint_limit >= 1 && c.limiter_keys >= 1);
    prop_assert!(c.jwks_refresh.as_secs() >= 1);
    prop_assert!(c.sse_heartbeat.as_secs() >= 1 && c.sse_recheck.as_secs() >= 1);
    prop_assert!(c
        .jwt_secret
        .as_ref()
        .is_none_or(|s| !s.expose_secret().is_empty()));
    prop_assert!(c
        .jwks_url
        .as_deref()
        .is_none_or(|u| u.starts_with("https://") || u.starts_with("http://")));
    let d = format!("{c:?}");
    prop_assert!(!d.contains("hunter2"));
    if let Some(s) = &c.jwt_secret {
        let s = s.expose_secret();
        prop_assert!(s.len() < 4 || !d.contains(s), "secret in Debug output");
    }
    Ok(())
}

proptest! {
    /// Arbitrary text as the TOML file: no panic, a parse error or a file config.
    #[test]
    fn arbitrary_toml_text(text in any::<String>()) {
        if let Ok(file) = toml::from_str::<Options>(&text) {
            if let Ok(c) = merge(&BASE_ARGS, file) {
                check_config(&c)?;
            }
        }
    }

    /// Documents built from the real keys (and an unknown one) with values of any type: no
    /// panic; unknown keys and wrong types are errors; what loads satisfies the invariants.
    #[test]
    fn toml_documents(entries in prop::collection::btree_map(key(), toml_value(), 0..8),
                      with_required in any::<bool>()) {
        let text: String = entries.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
        let parsed = toml::from_str::<Options>(&text);
        if entries.contains_key("unknown_key") {
            prop_assert!(parsed.is_err());
        }
        if let Ok(file) = parsed {
            let args: &[&str] = if with_required { &BASE_ARGS } else { &["ama-shim"] };
            match merge(args, file) {
                Ok(c) => check_config(&c)?,
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }
    }

    /// Flags with values of any kind: no panic; clap refuses or the merge decides.
    #[test]
    fn flags(args in prop::collection::vec(
        (key(), prop_oneof![toml_value(), ".{0,12}"]),
        0..6,
    )) {
        let mut argv = vec!["ama-shim".to_string()];
        for (k, v) in &args {
            argv.push(format!("--{}", k.replace('_', "-")));
            argv.push(v.trim_matches('"').to_string());
        }
        match Config::from_args(&argv) {
            Ok(c) => check_config(&c)?,
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}

#[test]
fn secret_files_are_read_and_checked() {
    let dir = std::env::temp_dir().join(format!("ama-shim-props-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let good = dir.join("secret");
    std::fs::write(&good, "  s3cret-value-0123456789  \n").expect("write");
    let blank = dir.join("blank");
    std::fs::write(&blank, " \n").expect("write");
    let text = |p: &std::path::Path| {
        format!(
            "jwt_secret_file = {}\n",
            toml::Value::String(p.display().to_string())
        )
    };
    let load = |p: &std::path::Path| {
        merge(
            &BASE_ARGS,
            toml::from_str::<Options>(&text(p)).expect("toml"),
        )
    };
    let c = load(&good).expect("config");
    assert_eq!(
        c.jwt_secret.as_ref().map(|s| s.expose_secret()),
        Some("s3cret-value-0123456789")
    );
    assert!(!format!("{c:?}").contains("s3cret"));
    assert!(load(&blank).is_err());
    assert!(load(&dir.join("missing")).is_err());
    assert!(load(&dir).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}
