//! Runs the `ama-shim` binary without a database (the pool points at a closed port) and talks
//! to it over real TLS: routing, errors, limits, plain HTTP, h2, 503 on a dead database,
//! graceful shutdown and startup errors. Database-backed tests live in the workspace `tests/`.
//!
//! Requests go through the workspace's one test client (`ama_tests::client`, HTTP/1.1 or HTTP/2),
//! and tokens come from its fixtures: `ama-tests` is a dev-dependency of `ama-shim`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream as StdTcp;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ama_core::token::TokenKind;
use ama_tests::client::{tls_config, Client, Response};
use ama_tests::fixtures::{jwt_with, now_secs, unknown_token};
use serde_json::json;

const SECRET: &str = "integration-secret-0123456789abcdef";
const SUB: &str = "0d1c6f4e-8a43-4a4e-9a53-0c1f2d3e4f50";

struct Shim {
    child: Child,
    addr: String,
    cert_pem: String,
    logs: Arc<Mutex<String>>,
    dir: std::path::PathBuf,
}

impl Drop for Shim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ama-shim-it-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("dir");
    d
}

fn start(tag: &str, extra: &[&str]) -> Shim {
    let dir = temp_dir(tag);
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("cert");
    let cert_pem = ck.cert.pem();
    std::fs::write(dir.join("cert.pem"), &cert_pem).expect("write cert");
    std::fs::write(dir.join("key.pem"), ck.signing_key.serialize_pem()).expect("write key");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ama-shim"));
    cmd.args(["--listen", "127.0.0.1:0"])
        .arg("--tls-cert")
        .arg(dir.join("cert.pem"))
        .arg("--tls-key")
        .arg(dir.join("key.pem"))
        .args([
            "--database-url",
            "postgres://authenticator:db-password-xyz@127.0.0.1:1/ama",
        ])
        .args([
            "--pool-timeout-ms",
            "500",
            "--db-connect-timeout-ms",
            "500",
            "--log-level",
            "debug",
        ])
        .args(extra)
        .env("AMA_JWT_SECRET", SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let logs = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let l2 = logs.clone();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on https://").nth(1) {
                if let Some(t) = tx.take() {
                    let _ = t.send(rest.trim().to_string());
                }
            }
            if let Ok(mut g) = l2.lock() {
                g.push_str(&line);
                g.push('\n');
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("shim did not start");
    Shim {
        child,
        addr,
        cert_pem,
        logs,
        dir,
    }
}

impl Shim {
    /// The value of one unlabelled counter or gauge in `/metrics` (0 when absent).
    async fn metric(&self, name: &str) -> u64 {
        let r = self.send(false, "GET", "/metrics", &[], None).await;
        assert_eq!(r.status, 200);
        let prefix = format!("{name} ");
        String::from_utf8_lossy(&r.body)
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// A new client's `GET /health` is answered 200 promptly (the bound only proves it did not
    /// wait for a slot).
    async fn served_at_once(&self) {
        let started = std::time::Instant::now();
        let r = self.send(false, "GET", "/health", &[], None).await;
        assert_eq!(r.status, 200);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "served after {:?}",
            started.elapsed()
        );
    }

    /// One request on a new TLS connection, over HTTP/2 or HTTP/1.1.
    async fn send(
        &self,
        h2: bool,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Response {
        let client = if h2 {
            Client::new_h2(&self.addr, &self.cert_pem)
        } else {
            Client::new(&self.addr, &self.cert_pem)
        };
        client
            .send(method, path, headers, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }
}

fn jwt() -> String {
    let now = now_secs();
    jwt_with(
        SECRET,
        &json!({"sub": SUB, "aud": "authenticated", "iat": now, "exp": now + 600, "role": "authenticated"}),
    )
}

fn assert_error(r: &Response, status: u16, code: &str) {
    assert_eq!(r.status, status, "{:?}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["code"], code);
    assert!(v["message"].is_string());
    let rid = r.header("x-request-id").expect("x-request-id");
    assert_eq!(v["request_id"], rid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_without_database() {
    let shim = start("main", &[]);

    // health over HTTP/1.1 and HTTP/2
    for h2 in [false, true] {
        let r = shim.send(h2, "GET", "/health", &[], None).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["status"], "ok");
        assert_eq!(r.json()["service"], "ama-shim");
        assert!(r.header("x-request-id").is_some());
    }
    // openapi
    let r = shim
        .send(false, "GET", "/api/v1/openapi.json", &[], None)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["openapi"], "3.1.0");

    // 404 and 405
    let r = shim.send(false, "GET", "/api/v1/nope", &[], None).await;
    assert_error(&r, 404, "NOT_FOUND");
    let r = shim
        .send(true, "DELETE", "/api/v1/chat/threads", &[], None)
        .await;
    assert_error(&r, 405, "METHOD_NOT_ALLOWED");
    assert_eq!(r.header("allow"), Some("GET, POST"));

    // malformed credentials: generic 401 without touching the database
    for auth in [
        "Bearer ama_eat_1234",
        "Bearer not.a.jwt",
        "Basic Zm9vOmJhcg==",
        "Bearer ama_vst_zz",
    ] {
        let r = shim
            .send(
                false,
                "GET",
                "/api/v1/chat/threads",
                &[("authorization", auth)],
                None,
            )
            .await;
        assert_error(&r, 401, "UNAUTHORIZED");
        assert_eq!(r.json()["message"], "invalid or expired credential");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer error=\"invalid_token\"")
        );
    }
    let r = shim
        .send(
            false,
            "PUT",
            "/internal/v1/users/x",
            &[("x-internal-api-key", "ama_ik_bad")],
            None,
        )
        .await;
    assert_error(&r, 401, "UNAUTHORIZED");

    let token = jwt();
    let bearer = format!("Bearer {token}");
    // invalid JSON is refused before the database
    let r = shim
        .send(
            false,
            "POST",
            "/api/v1/chat/threads",
            &[
                ("authorization", &bearer),
                ("content-type", "application/json"),
            ],
            Some(b"{\"target_user_ids\": ["),
        )
        .await;
    assert_error(&r, 400, "BAD_REQUEST");
    assert!(r.json()["message"].as_str().unwrap_or("").contains("body"));
    // body over the limit
    let big = vec![b' '; 70_000];
    let r = shim
        .send(
            true,
            "POST",
            "/api/v1/chat/threads",
            &[("authorization", &bearer)],
            Some(&big),
        )
        .await;
    assert_error(&r, 413, "PAYLOAD_TOO_LARGE");

    // a valid JWT reaches the database step, which is down: 503 within a bounded time
    let t = Instant::now();
    let r = shim
        .send(
            false,
            "POST",
            "/api/v1/chat/threads",
            &[("authorization", &bearer)],
            Some(b"{\"target_user_ids\": []}"),
        )
        .await;
    assert_error(&r, 503, "UNAVAILABLE");
    assert_eq!(
        r.header("retry-after"),
        Some("2"),
        "every 503 says when to retry"
    );
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    assert!(r.header("server-timing").is_some());
    let r = shim.send(false, "GET", "/ready", &[], None).await;
    assert_error(&r, 503, "UNAVAILABLE");
    assert_eq!(r.header("retry-after"), Some("2"));
    // the event stream answers a plain JSON error when its first poll fails
    let r = shim
        .send(
            false,
            "GET",
            "/api/v1/chat/threads/x/events/stream",
            &[("authorization", &bearer)],
            None,
        )
        .await;
    assert_error(&r, 503, "UNAVAILABLE");

    // metrics
    let r = shim.send(false, "GET", "/metrics", &[], None).await;
    let text = String::from_utf8_lossy(&r.body).to_string();
    assert!(
        text.contains("ama_shim_requests_total{route=\"health\",status=\"200\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("ama_shim_auth_total{kind=\"agent\",outcome=\"rejected\"}"),
        "{text}"
    );
    assert!(text.contains("ama_shim_pool_max_size 16"));

    // plain HTTP on the TLS port: short 400, then close
    let addr = shim.addr.clone();
    let plain = tokio::task::spawn_blocking(move || {
        let mut s = StdTcp::connect(&addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("write");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    })
    .await
    .expect("join");
    assert!(plain.starts_with("HTTP/1.1 400 Bad Request"), "{plain}");
    assert!(plain.contains("HTTPS is required"));

    // nothing secret in the logs
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = shim.logs.lock().map(|l| l.clone()).unwrap_or_default();
    assert!(logs.contains("request"));
    for secret in [SECRET, token.as_str(), "db-password-xyz", "ama_eat_1234"] {
        assert!(!logs.contains(secret), "secret leaked into logs");
    }
}

#[test]
fn sigterm_exits_zero() {
    let mut shim = start("term", &[]);
    let pid = shim.child.id().to_string();
    let st = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = shim.child.try_wait() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(Instant::now() < deadline, "shim did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sighup_reloads_certificate() {
    let shim = start("hup", &[]);
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).expect("cert");
    std::fs::write(shim.dir.join("cert.pem"), ck.cert.pem()).expect("cert");
    std::fs::write(shim.dir.join("key.pem"), ck.signing_key.serialize_pem()).expect("key");
    let st = Command::new("kill")
        .args(["-HUP", &shim.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let new_pem = ck.cert.pem();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let ok = rt.block_on(async {
            let tcp = tokio::net::TcpStream::connect(&shim.addr).await.ok()?;
            let name = rustls_pki_types::ServerName::try_from("127.0.0.1").ok()?;
            tokio_rustls::TlsConnector::from(tls_config(&new_pem, &[b"http/1.1"]))
                .connect(name, tcp)
                .await
                .ok()
        });
        if ok.is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "new certificate never served");
    }
}

#[test]
fn startup_errors_are_one_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_ama-shim"))
        .args([
            "--tls-cert",
            "/nonexistent/cert.pem",
            "--tls-key",
            "/nonexistent/key.pem",
        ])
        .args([
            "--database-url",
            "postgres://a:secretpw@127.0.0.1:1/x",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ama-shim: error: cannot read TLS certificate"),
        "{err}"
    );
    assert!(!err.contains("panicked"));
    assert!(!err.contains("secretpw"));
    let out = Command::new(env!("CARGO_BIN_EXE_ama-shim"))
        .arg("--help")
        .output()
        .expect("run");
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--tls-cert",
        "--database-url",
        "--jwks-url",
        "--trusted-proxies",
        "AMA_BODY_LIMIT",
        "--metrics-allow",
        "--auth-failure-limit",
        "--shim-endpoint-limit",
        "--limiter-keys",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}

/// GET `path` as client `ip` (through the trusted proxy 127.0.0.1), with an optional
/// `Authorization` value.
async fn get_as(shim: &Shim, ip: Option<&str>, path: &str, auth: Option<&str>) -> Response {
    let mut headers = Vec::new();
    if let Some(ip) = ip {
        headers.push(("x-forwarded-for", ip));
    }
    if let Some(a) = auth {
        headers.push(("authorization", a));
    }
    shim.send(false, "GET", path, &headers, None).await
}

fn header<'a>(r: &'a Response, name: &str) -> &'a str {
    r.header(name).unwrap_or_else(|| panic!("{name} missing"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_are_limited_per_ip_and_kind() {
    let shim = start(
        "authlimit",
        &[
            "--trusted-proxies",
            "127.0.0.1",
            "--shim-endpoint-limit",
            "10",
        ],
    );
    let a = Some("198.51.100.10");

    // Ten malformed agent tokens from one client: the generic 401 with the limit's headers.
    // (Each failure is worth 6 s of a 10-a-minute allowance; ten requests over loopback take far
    // less, so the eleventh finds none left.)
    for i in 0..10 {
        let r = get_as(
            &shim,
            a,
            "/api/v1/chat/threads",
            Some("Bearer ama_eat_1234"),
        )
        .await;
        assert_error(&r, 401, "UNAUTHORIZED");
        assert_eq!(r.json()["message"], "invalid or expired credential");
        assert_eq!(
            header(&r, "ratelimit-policy"),
            "\"shim_auth_failures\";q=10;w=60"
        );
        assert!(
            header(&r, "ratelimit").starts_with(&format!("\"shim_auth_failures\";r={};t=", 9 - i)),
            "{}",
            header(&r, "ratelimit")
        );
        assert!(r.header("retry-after").is_none());
    }
    // The eleventh: 429 in the error JSON, with Retry-After and the RateLimit headers.
    let r = get_as(
        &shim,
        a,
        "/api/v1/chat/threads",
        Some("Bearer ama_eat_1234"),
    )
    .await;
    assert_error(&r, 429, "RATE_LIMITED");
    let retry: u64 = header(&r, "retry-after").parse().expect("retry-after");
    assert!((1..=6).contains(&retry), "{retry}");
    assert_eq!(
        header(&r, "ratelimit-policy"),
        "\"shim_auth_failures\";q=10;w=60"
    );
    assert!(header(&r, "ratelimit").starts_with("\"shim_auth_failures\";r=0;t="));
    // Other malformed agent-kind credentials from the same client count together.
    let r = get_as(
        &shim,
        a,
        "/api/v1/chat/threads",
        Some("Bearer ama_xyz_0000"),
    )
    .await;
    assert_error(&r, 429, "RATE_LIMITED");

    // A credential that verifies is served from the same address: a valid JWT gets past
    // authentication (to the database, which is down here), and so does a well-formed agent
    // token, which only the database can check.
    let bearer = format!("Bearer {}", jwt());
    let r = get_as(&shim, a, "/api/v1/chat/threads", Some(&bearer)).await;
    assert_error(&r, 503, "UNAVAILABLE");
    let agent = format!("Bearer {}", unknown_token(TokenKind::Agent));
    let r = get_as(&shim, a, "/api/v1/chat/threads", Some(&agent)).await;
    assert_error(&r, 503, "UNAVAILABLE");
    // The event stream authenticates the same way.
    let r = get_as(
        &shim,
        a,
        "/api/v1/chat/threads/x/events/stream",
        Some("Bearer ama_eat_1234"),
    )
    .await;
    assert_error(&r, 429, "RATE_LIMITED");

    // Refused JWTs count apart from agent tokens: the agent flood left them alone.
    let now = now_secs();
    let bad_jwts = [
        "Bearer not.a.jwt".to_string(),
        format!(
            "Bearer {}",
            jwt_with(
                "another-secret-0123456789abcdef",
                &json!({"sub": SUB, "aud": "authenticated", "iat": now, "exp": now + 600}),
            )
        ),
        format!(
            "Bearer {}",
            jwt_with(
                SECRET,
                &json!({"sub": SUB, "aud": "authenticated", "iat": now - 7200, "exp": now - 3600}),
            )
        ),
        format!(
            "Bearer {}",
            jwt_with(
                SECRET,
                &json!({"sub": SUB, "aud": "someone-else", "iat": now, "exp": now + 600}),
            )
        ),
        "Basic Zm9vOmJhcg==".to_string(),
    ];
    for i in 0..10 {
        let r = get_as(&shim, a, "/api/v1/chat/threads", Some(&bad_jwts[i % 5])).await;
        assert_error(&r, 401, "UNAUTHORIZED");
    }
    for bad in &bad_jwts {
        let r = get_as(&shim, a, "/api/v1/chat/threads", Some(bad)).await;
        assert_error(&r, 429, "RATE_LIMITED");
    }
    // ... and still the valid JWT is served.
    let r = get_as(&shim, a, "/api/v1/chat/threads", Some(&bearer)).await;
    assert_error(&r, 503, "UNAVAILABLE");

    // A JWT flood from another client does not touch that client's agent-token count, nor
    // any other client's.
    let c = Some("2001:db8::c");
    for _ in 0..15 {
        get_as(&shim, c, "/api/v1/chat/threads", Some("Bearer not.a.jwt")).await;
    }
    let r = get_as(&shim, c, "/api/v1/chat/threads", Some("Bearer not.a.jwt")).await;
    assert_error(&r, 429, "RATE_LIMITED");
    let r = get_as(
        &shim,
        c,
        "/api/v1/chat/threads",
        Some("Bearer ama_eat_1234"),
    )
    .await;
    assert_error(&r, 401, "UNAUTHORIZED");
    let r = get_as(
        &shim,
        Some("198.51.100.11"),
        "/api/v1/chat/threads",
        Some("Bearer ama_eat_1234"),
    )
    .await;
    assert_error(&r, 401, "UNAUTHORIZED");
    // Internal keys have their own count too.
    let r = shim
        .send(
            false,
            "PUT",
            "/internal/v1/users/x",
            &[
                ("x-forwarded-for", "198.51.100.10"),
                ("x-internal-api-key", "ama_ik_bad"),
            ],
            None,
        )
        .await;
    assert_error(&r, 401, "UNAUTHORIZED");

    // The shim's own endpoints: 10 a minute per client here, then 429.
    let d = Some("203.0.113.40");
    for _ in 0..10 {
        let r = get_as(&shim, d, "/health", None).await;
        assert_eq!(r.status, 200);
        assert_eq!(
            header(&r, "ratelimit-policy"),
            "\"shim_endpoints\";q=10;w=60"
        );
    }
    let r = get_as(&shim, d, "/health", None).await;
    assert_error(&r, 429, "RATE_LIMITED");
    let retry: u64 = header(&r, "retry-after").parse().expect("retry-after");
    assert!((1..=6).contains(&retry), "{retry}");
    assert_eq!(
        header(&r, "ratelimit-policy"),
        "\"shim_endpoints\";q=10;w=60"
    );
    assert!(header(&r, "ratelimit").starts_with("\"shim_endpoints\";r=0;t="));
    for path in ["/ready", "/api/v1/openapi.json"] {
        let r = get_as(&shim, d, path, None).await;
        assert_error(&r, 429, "RATE_LIMITED");
    }
    // Another client still gets its health check.
    let r = get_as(&shim, Some("203.0.113.41"), "/health", None).await;
    assert_eq!(r.status, 200);

    // /metrics: the loopback peer may read it; a client behind the trusted proxy may not, and
    // sees what an unknown path shows (404, also for other methods).
    let unknown = get_as(&shim, a, "/api/v1/nope", None).await;
    for method in ["GET", "POST"] {
        let r = shim
            .send(
                false,
                method,
                "/metrics",
                &[("x-forwarded-for", "198.51.100.10")],
                None,
            )
            .await;
        assert_error(&r, 404, "NOT_FOUND");
        assert_eq!(r.json()["message"], unknown.json()["message"]);
        assert!(r.header("ratelimit").is_none());
    }
    let r = get_as(&shim, None, "/metrics", None).await;
    assert_eq!(r.status, 200);
    let text = String::from_utf8_lossy(&r.body).to_string();
    assert!(
        text.contains("ama_shim_rate_limited_total{policy=\"shim_auth_failures\"}"),
        "{text}"
    );
    assert!(
        text.contains("ama_shim_rate_limited_total{policy=\"shim_endpoints\"} 3"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_allow_list_cannot_be_spoofed() {
    // No trusted proxy: X-Forwarded-For is ignored, so naming an allowed address gets nowhere.
    let shim = start("metricsallow", &["--metrics-allow", "192.0.2.0/24"]);
    for xff in [None, Some("192.0.2.1"), Some("127.0.0.1, 192.0.2.1")] {
        let r = get_as(&shim, xff, "/metrics", None).await;
        assert_error(&r, 404, "NOT_FOUND");
    }
    // Everything else is served as usual.
    let r = get_as(&shim, None, "/health", None).await;
    assert_eq!(r.status, 200);
    // The default allow-list is loopback: the peer here.
    let shim = start("metricsdefault", &[]);
    let r = get_as(&shim, Some("192.0.2.1"), "/metrics", None).await;
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.body).contains("ama_shim_requests_total"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_hold_every_connection() {
    use tokio::io::AsyncReadExt;
    let shim = start("perip", &["--max-connections-per-ip", "2"]);
    // two connections that never send anything hold this address's two slots
    let held1 = tokio::net::TcpStream::connect(&shim.addr)
        .await
        .expect("first");
    let held2 = tokio::net::TcpStream::connect(&shim.addr)
        .await
        .expect("second");
    tokio::time::sleep(Duration::from_millis(200)).await;
    // a third from the same address is closed at once, without waiting for anything
    let mut third = tokio::net::TcpStream::connect(&shim.addr)
        .await
        .expect("third connects (the kernel accepts it)");
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf))
        .await
        .expect("the shim closes the third connection instead of holding it");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "closed, not answered: {read:?}"
    );
    // a held connection is still open: reading from it waits
    let mut held1 = held1;
    assert!(
        tokio::time::timeout(Duration::from_millis(300), held1.read(&mut buf))
            .await
            .is_err(),
        "the first connection is still held open"
    );
    // Closing one gives its slot back. The server frees a slot when it sees
    // the close, a moment after the client's drop, so a connection made in
    // that moment may still be refused: count those refusals too.
    let mut refused = 1;
    drop(held1);
    let health = get_when_a_slot_is_free(&shim, "/health", &mut refused).await;
    assert_eq!(health.status, 200);
    drop(held2);
    let metrics = get_when_a_slot_is_free(&shim, "/metrics", &mut refused).await;
    let text = String::from_utf8_lossy(&metrics.body).to_string();
    assert!(
        text.contains(&format!("ama_shim_connections_refused_total {refused}")),
        "{refused} refusals seen by the client: {text}"
    );
}

/// GET `path` on a new connection, retrying for up to 5 s while the shim
/// refuses the connection; every refusal is added to `refused`.
async fn get_when_a_slot_is_free(shim: &Shim, path: &str, refused: &mut u32) -> Response {
    for _ in 0..50 {
        let client = Client::new(&shim.addr, &shim.cert_pem);
        match client.send("GET", path, &[], None).await {
            Ok(r) => return r,
            Err(_) => *refused += 1,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("GET {path}: the closed connection's slot never came back");
}

/// A TLS connection to the shim with the given ALPN protocols.
async fn tls_connect(
    shim: &Shim,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(&shim.addr)
        .await
        .expect("connect");
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("name");
    tokio_rustls::TlsConnector::from(tls_config(&shim.cert_pem, alpn))
        .connect(name, tcp)
        .await
        .expect("TLS handshake")
}

/// Reads until the server closes the connection; `None` if it is still open after `within`.
async fn closed_within<S: tokio::io::AsyncRead + Unpin>(s: &mut S, within: Duration) -> Option<()> {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_silent_connections_are_closed() {
    use tokio::io::AsyncWriteExt;
    let shim = start(
        "idle",
        &[
            "--idle-timeout-ms",
            "500",
            "--header-read-timeout-ms",
            "1000",
        ],
    );
    // HTTP/2 after the TLS handshake but no preface: closed after the header-read timeout
    let mut h2 = tls_connect(&shim, &[b"h2"]).await;
    assert!(
        closed_within(&mut h2, Duration::from_secs(8))
            .await
            .is_some(),
        "a connection that never sends its HTTP/2 preface is closed"
    );
    // HTTP/1.1 keep-alive: one request, then nothing: closed after the idle timeout
    let mut h1 = tls_connect(&shim, &[b"http/1.1"]).await;
    h1.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .expect("request");
    assert!(
        closed_within(&mut h1, Duration::from_secs(8))
            .await
            .is_some(),
        "an idle keep-alive connection is closed"
    );
    // a client that keeps sending requests is never idle
    let client = Client::new(&shim.addr, &shim.cert_pem);
    for _ in 0..4 {
        let r = client
            .send("GET", "/health", &[], None)
            .await
            .expect("served");
        assert_eq!(r.status, 200);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let metrics = shim.send(false, "GET", "/metrics", &[], None).await;
    let text = String::from_utf8_lossy(&metrics.body).to_string();
    assert!(
        text.contains("ama_shim_idle_connections_closed_total"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_server_sheds_its_longest_idle_connection_for_a_new_client() {
    let shim = start(
        "shed",
        &["--max-connections", "3", "--max-connections-per-ip", "100"],
    );
    // three connections that never send anything take every slot, oldest first
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(
            tokio::net::TcpStream::connect(&shim.addr)
                .await
                .expect("connect"),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // a new client is served at once instead of waiting behind them
    shim.served_at_once().await;
    // the longest-idle one made room: it is closed, the younger ones are not
    assert!(
        closed_within(&mut held[0], Duration::from_secs(2))
            .await
            .is_some(),
        "the oldest idle connection is shed"
    );
    for younger in &mut held[1..] {
        assert!(
            closed_within(younger, Duration::from_millis(200))
                .await
                .is_none(),
            "a younger idle connection stays open"
        );
    }
    assert!(shim.metric("ama_shim_connections_shed_total").await >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_cannot_hold_every_slot() {
    use tokio::io::AsyncWriteExt;
    let shim = start(
        "slowbody",
        &[
            "--max-connections",
            "2",
            "--max-connections-per-ip",
            "100",
            "--header-read-timeout-ms",
            "1000",
        ],
    );
    // two requests whose bodies never finish arriving take both slots
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut s = tls_connect(&shim, &[b"http/1.1"]).await;
        s.write_all(
            b"POST /api/v1/public/agents/nobody/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n\
              Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
        )
        .await
        .expect("head");
        s.flush().await.expect("flush");
        slow.push(s);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // a new client is served at once: the slot of the one waiting longest for its body is its
    shim.served_at_once().await;
    assert!(
        closed_within(&mut slow[0], Duration::from_secs(2))
            .await
            .is_some(),
        "the longest-waiting slow body was shed"
    );
    // a TCP connection that never sends a byte is closed after the header-read timeout, and
    // counted as idle
    let mut silent = tokio::net::TcpStream::connect(&shim.addr)
        .await
        .expect("connect");
    assert!(closed_within(&mut silent, Duration::from_secs(8))
        .await
        .is_some());
    assert!(shim.metric("ama_shim_connections_shed_total").await >= 1);
    assert!(shim.metric("ama_shim_idle_connections_closed_total").await >= 1);
}
