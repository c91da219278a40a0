//! The request handler: thin glue between HTTP and one `ama.request` call.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ama_core::token::{check_format, kind_of, TokenKind};
use bytes::Bytes;
use http::header::{
    HeaderName, HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{json, Map, Value};

use crate::db::{DbError, Envelope, Rate};
use crate::errors::{ApiError, WWW_AUTHENTICATE as WWW_AUTH_VALUE};
use crate::jwt::Verified;
use crate::limiter::Verdict;
use crate::routes::{self, RouteMatch, Target};
use crate::App;

pub type Body = BoxBody<Bytes, Infallible>;

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const X_INTERNAL_API_KEY: &str = "x-internal-api-key";
const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// A credential as presented, after the shim's own format checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented<'a> {
    None,
    Jwt(&'a str),
    Token(TokenKind, &'a str),
}

/// Why a presented credential was refused before any lookup (logs and metrics only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub kind: &'static str,
    pub reason: &'static str,
}

pub fn kind_name(k: TokenKind) -> &'static str {
    match k {
        TokenKind::Agent => "agent",
        TokenKind::Visitor => "visitor",
        TokenKind::InternalKey => "internal",
    }
}

fn single<'a>(
    headers: &'a HeaderMap,
    name: &str,
    kind: &'static str,
) -> Result<Option<&'a str>, Refused> {
    let mut it = headers.get_all(name).iter();
    let Some(first) = it.next() else {
        return Ok(None);
    };
    if it.next().is_some() {
        return Err(Refused {
            kind,
            reason: "repeated header",
        });
    }
    first.to_str().map(|s| Some(s.trim())).map_err(|_| Refused {
        kind,
        reason: "non-ASCII header",
    })
}

/// Recognises the credential kind and checks token formats (prefix, length, hex, CRC32).
pub fn classify(headers: &HeaderMap) -> Result<Presented<'_>, Refused> {
    let internal = single(headers, X_INTERNAL_API_KEY, "internal")?;
    let auth = single(headers, "authorization", "jwt")?;
    if let Some(key) = internal {
        if auth.is_some() {
            return Err(Refused {
                kind: "internal",
                reason: "two credentials",
            });
        }
        return match check_format(TokenKind::InternalKey, key) {
            Ok(()) => Ok(Presented::Token(TokenKind::InternalKey, key)),
            Err(_) => Err(Refused {
                kind: "internal",
                reason: "malformed key",
            }),
        };
    }
    let Some(auth) = auth else {
        return Ok(Presented::None);
    };
    let (scheme, value) = auth.split_once(' ').ok_or(Refused {
        kind: "jwt",
        reason: "not a bearer credential",
    })?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Refused {
            kind: "jwt",
            reason: "not a bearer credential",
        });
    }
    let value = value.trim();
    if value.is_empty() || value.contains(char::is_whitespace) {
        return Err(Refused {
            kind: "jwt",
            reason: "empty bearer credential",
        });
    }
    if value.starts_with("ama_") {
        return match kind_of(value) {
            Some(TokenKind::InternalKey) => Err(Refused {
                kind: "internal",
                reason: "internal key as bearer",
            }),
            Some(k) => match check_format(k, value) {
                Ok(()) => Ok(Presented::Token(k, value)),
                Err(_) => Err(Refused {
                    kind: kind_name(k),
                    reason: "malformed token",
                }),
            },
            None => Err(Refused {
                kind: "agent",
                reason: "unknown token prefix",
            }),
        };
    }
    Ok(Presented::Jwt(value))
}

/// A credential ready to forward.
#[derive(Debug, Clone)]
pub enum Credential {
    None,
    Jwt(Verified),
    Token(TokenKind, String),
}

impl Credential {
    pub fn kind(&self) -> &'static str {
        match self {
            Credential::None => "none",
            Credential::Jwt(_) => "jwt",
            Credential::Token(k, _) => kind_name(*k),
        }
    }

    pub fn raw(&self) -> Option<&str> {
        match self {
            Credential::Token(_, t) => Some(t),
            _ => None,
        }
    }

    pub fn claims(&self) -> Option<&Value> {
        match self {
            Credential::Jwt(v) => Some(&v.claims),
            _ => None,
        }
    }
}

/// `Server-Timing` with the auth, database and total phases in milliseconds.
pub fn server_timing(auth: Duration, db: Duration, total: Duration) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "auth;dur={:.3}, db;dur={:.3}, total;dur={:.3}",
        ms(auth),
        ms(db),
        ms(total)
    )
}

/// A policy name safe to put in a quoted structured-field string.
fn policy_name(p: &str) -> String {
    let s: String = p
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/'))
        .take(64)
        .collect();
    if s.is_empty() {
        "default".into()
    } else {
        s
    }
}

/// `RateLimit-Policy`, `RateLimit` and (on 429) `Retry-After` from the envelope's `rate`.
pub fn rate_headers(rate: &Rate, status: u16) -> Vec<(HeaderName, String)> {
    let p = policy_name(&rate.policy);
    let mut h = vec![
        (
            RATELIMIT_POLICY,
            format!("\"{p}\";q={};w={}", rate.limit, rate.window),
        ),
        (
            RATELIMIT,
            format!("\"{p}\";r={};t={}", rate.remaining, rate.reset),
        ),
    ];
    if status == 429 {
        h.push((RETRY_AFTER, rate.retry_after.max(1).to_string()));
    }
    h
}

/// A request id: the caller's `x-request-id` when it is short and plain, else a new UUID.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|s| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Parses a request body: empty means JSON null; anything else must be JSON.
pub fn parse_body(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(bytes).map_err(|_| ApiError::bad_request("body: invalid JSON"))
}

fn set(resp: &mut Response<Body>, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

pub fn json_response(status: u16, body: &Value, request_id: &str) -> Response<Body> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(full(bytes));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    set(&mut resp, X_REQUEST_ID, request_id);
    if status == 401 {
        resp.headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static(WWW_AUTH_VALUE));
    }
    resp
}

pub fn error_response(e: &ApiError, request_id: &str) -> Response<Body> {
    json_response(e.status, &e.body(request_id), request_id)
}

/// What the access log and metrics need about one request.
#[derive(Default)]
struct Outcome {
    route: &'static str,
    kind: &'static str,
    principal: Option<String>,
}

/// Entry point for every request.
pub async fn handle<B>(app: Arc<App>, req: Request<B>, peer: SocketAddr) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let start = Instant::now();
    let rid = request_id(req.headers());
    let method = req.method().clone();
    let mut out = Outcome {
        route: "-",
        kind: "-",
        principal: None,
    };
    let mut resp = route(&app, req, peer, &rid, start, &mut out).await;
    set(&mut resp, X_REQUEST_ID, &rid);
    let status = resp.status().as_u16();
    if status == 429 && !resp.headers().contains_key(RETRY_AFTER) {
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    app.metrics.request(out.route, status);
    tracing::info!(
        request_id = %rid,
        method = %method,
        route = out.route,
        status,
        latency_ms = start.elapsed().as_secs_f64() * 1000.0,
        credential = out.kind,
        principal = out.principal.as_deref().unwrap_or("-"),
        "request"
    );
    resp
}

async fn route<B>(
    app: &Arc<App>,
    req: Request<B>,
    peer: SocketAddr,
    rid: &str,
    start: Instant,
    out: &mut Outcome,
) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let ip = client_ip(app, req.headers(), peer);
    let path = req.uri().path();
    let mut matched = routes::match_route(req.method(), path);
    if metrics_hidden(app, &matched, path, ip) {
        matched = RouteMatch::NotFound;
    }
    let (target, params) = match matched {
        RouteMatch::Found { target, params } => (target, params),
        RouteMatch::NotFound => {
            out.route = "not_found";
            return error_response(&ApiError::not_found(), rid);
        }
        RouteMatch::MethodNotAllowed { allow } => {
            out.route = "method_not_allowed";
            let mut r = error_response(&ApiError::status(405, "method not allowed"), rid);
            set(&mut r, ALLOW, &routes::allow_header(&allow));
            return r;
        }
    };
    match target {
        Target::Health | Target::Ready | Target::Metrics | Target::OpenApi => {
            out.route = match target {
                Target::Health => "health",
                Target::Ready => "ready",
                Target::Metrics => "metrics",
                _ => "openapi",
            };
            let verdict = app.limits.endpoint(ip);
            if !verdict.allowed() {
                return limited_response(app, &verdict, "too many requests", rid);
            }
            let mut r = shim_endpoint(app, target, rid).await;
            let status = r.status().as_u16();
            set_rate_headers(&mut r, &verdict, status);
            r
        }
        Target::EventStream => {
            out.route = "events.stream";
            let auth_start = Instant::now();
            let cred = match authenticate(app, req.headers(), ip, rid, out).await {
                Ok(c) => c,
                Err(resp) => return resp,
            };
            let auth = auth_start.elapsed();
            let query = routes::parse_query(req.uri().query());
            let last_event_id = req
                .headers()
                .get("last-event-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let thread_id = params.first().map(|(_, v)| v.clone()).unwrap_or_default();
            let (resp, principal) = crate::sse::stream(
                app.clone(),
                cred,
                crate::sse::StreamRequest {
                    thread_id,
                    query,
                    last_event_id,
                    ip,
                    request_id: rid.to_string(),
                },
                auth,
                start,
            )
            .await;
            out.principal = principal;
            resp
        }
        Target::Api(name) => {
            out.route = name;
            api(app, req, name, &params, ip, rid, start, out).await
        }
    }
}

/// `/health`, `/ready`, `/metrics` and the OpenAPI document (after their limit).
async fn shim_endpoint(app: &App, target: Target, rid: &str) -> Response<Body> {
    match target {
        Target::Health => json_response(
            200,
            &json!({"status": "ok", "service": "ama-shim", "version": env!("CARGO_PKG_VERSION")}),
            rid,
        ),
        Target::Ready => {
            if app.db.ready(Duration::from_secs(1)).await {
                json_response(200, &json!({"status": "ready"}), rid)
            } else {
                error_response(&ApiError::status(503, "database unreachable"), rid)
            }
        }
        Target::Metrics => {
            let mut r = Response::new(full(app.metrics.render(app.db.gauges())));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        _ => {
            let mut r = Response::new(full(crate::OPENAPI));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
    }
}

/// Whether `/metrics` must look like an unknown path to this client: it is served only to the
/// `metrics_allow` list, and hidden for every method (a 405 would give it away). `ip` is the
/// client IP, which honours `X-Forwarded-For` from trusted proxies only.
fn metrics_hidden(app: &App, matched: &RouteMatch, path: &str, ip: IpAddr) -> bool {
    let is_metrics = |m: &RouteMatch| {
        matches!(
            m,
            RouteMatch::Found {
                target: Target::Metrics,
                ..
            }
        )
    };
    let metrics = match matched {
        RouteMatch::MethodNotAllowed { .. } => is_metrics(&routes::match_route(&Method::GET, path)),
        m => is_metrics(m),
    };
    metrics && !app.cfg.metrics_allow.iter().any(|n| n.contains(&ip))
}

fn set_rate_headers(resp: &mut Response<Body>, verdict: &Verdict, status: u16) {
    for (name, value) in rate_headers(&verdict.rate(), status) {
        set(resp, name, &value);
    }
}

/// 429 from one of the shim's own limits, with `Retry-After` and the RateLimit headers.
fn limited_response(app: &App, verdict: &Verdict, message: &str, rid: &str) -> Response<Body> {
    app.metrics.rate_limited(verdict.policy);
    let mut r = error_response(&ApiError::status(429, message), rid);
    set_rate_headers(&mut r, verdict, 429);
    r
}

/// A credential the shim refused by itself. The failure is counted against (client IP,
/// credential kind), an IPv6 client by its /64, only now, after the check failed, so a credential
/// that verifies never meets this limit: the generic 401 up to the limit, then 429.
fn refused(app: &App, ip: IpAddr, kind: &'static str, rid: &str) -> Response<Body> {
    let verdict = app.limits.auth_failure(ip, kind);
    if !verdict.allowed() {
        return limited_response(
            app,
            &verdict,
            "too many failed authentication attempts",
            rid,
        );
    }
    let mut r = error_response(&ApiError::unauthorized(), rid);
    set_rate_headers(&mut r, &verdict, 401);
    r
}

fn client_ip(app: &App, headers: &HeaderMap, peer: SocketAddr) -> IpAddr {
    let xff = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok());
    crate::net::client_ip(peer.ip(), xff, &app.cfg.trusted_proxies)
}

/// Recognises and, for JWTs, verifies the credential. Failures are the generic 401, or 429 once
/// this client IP has had too many of this kind refused (see [`refused`]).
async fn authenticate(
    app: &App,
    headers: &HeaderMap,
    ip: IpAddr,
    rid: &str,
    out: &mut Outcome,
) -> Result<Credential, Response<Body>> {
    let presented = match classify(headers) {
        Ok(p) => p,
        Err(r) => {
            out.kind = r.kind;
            app.metrics.auth(r.kind, "rejected");
            tracing::debug!(kind = r.kind, reason = r.reason, "credential refused");
            return Err(refused(app, ip, r.kind, rid));
        }
    };
    match presented {
        Presented::None => {
            out.kind = "none";
            Ok(Credential::None)
        }
        Presented::Token(k, t) => {
            out.kind = kind_name(k);
            Ok(Credential::Token(k, t.to_string()))
        }
        Presented::Jwt(t) => {
            out.kind = "jwt";
            match app.verifier.verify(t).await {
                Ok(v) => Ok(Credential::Jwt(v)),
                Err(e) => {
                    app.metrics.auth("jwt", "rejected");
                    tracing::debug!(reason = %e, "JWT refused");
                    Err(refused(app, ip, "jwt", rid))
                }
            }
        }
    }
}

async fn read_body<B>(app: &App, req: Request<B>) -> Result<Value, ApiError>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let limit = app.cfg.body_limit;
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::payload_too_large(limit));
    }
    let collect = Limited::new(req.into_body(), limit).collect();
    match tokio::time::timeout(app.cfg.request_timeout, collect).await {
        Err(_) => Err(ApiError::status(
            408,
            "body: timed out reading the request body",
        )),
        Ok(Err(e)) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(ApiError::payload_too_large(limit))
            } else {
                Err(ApiError::bad_request(
                    "body: could not read the request body",
                ))
            }
        }
        Ok(Ok(c)) => parse_body(&c.to_bytes()),
    }
}

/// Turns a database result into the HTTP response (status, body, rate headers).
pub fn envelope_response(app: &App, env: &Envelope, rid: &str) -> Response<Body> {
    if env.status == 429 {
        if let Some(r) = &env.rate {
            app.metrics.rate_limited(&r.policy);
        }
    }
    let body = if env.status >= 400 {
        match &env.body {
            Value::Object(o) if o.get("code").is_some_and(Value::is_string) => {
                let mut o: Map<String, Value> = o.clone();
                o.insert("request_id".into(), Value::String(rid.to_string()));
                Value::Object(o)
            }
            _ => {
                let e = ApiError::status(
                    env.status,
                    if env.status >= 500 {
                        crate::errors::INTERNAL_MESSAGE
                    } else {
                        "request failed"
                    },
                );
                e.body(rid)
            }
        }
    } else {
        env.body.clone()
    };
    let mut resp = json_response(env.status, &body, rid);
    if let Some(rate) = &env.rate {
        for (name, value) in rate_headers(rate, env.status) {
            set(&mut resp, name, &value);
        }
    }
    resp
}

pub fn db_error_response(app: &App, e: &DbError, rid: &str) -> Response<Body> {
    let api = match e {
        DbError::Unavailable(reason) => {
            app.metrics.db_error("unavailable");
            tracing::warn!(request_id = %rid, error = %reason, "database unavailable");
            ApiError::unavailable()
        }
        DbError::Sql { code, message } => {
            let api = ApiError::from_sqlstate(code, message);
            if api.status >= 500 {
                app.metrics.db_error("sql");
                tracing::error!(request_id = %rid, sqlstate = %code, error = %message, "database error");
            }
            api
        }
        DbError::Protocol(reason) => {
            app.metrics.db_error("protocol");
            tracing::error!(request_id = %rid, error = %reason, "bad answer from ama.request");
            ApiError::internal()
        }
    };
    error_response(&api, rid)
}

#[allow(clippy::too_many_arguments)]
async fn api<B>(
    app: &Arc<App>,
    req: Request<B>,
    name: &'static str,
    params: &[(&'static str, String)],
    ip: IpAddr,
    rid: &str,
    start: Instant,
    out: &mut Outcome,
) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let auth_start = Instant::now();
    let cred = match authenticate(app, req.headers(), ip, rid, out).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let auth = auth_start.elapsed();
    let query = routes::parse_query(req.uri().query());
    let has_body = matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    let body = if has_body {
        match read_body(app, req).await {
            Ok(b) => b,
            Err(e) => return error_response(&e, rid),
        }
    } else {
        Value::Null
    };
    let args = json!({"path": routes::params_json(params), "query": query, "body": body});
    let db_start = Instant::now();
    let result = app
        .db
        .request(name, cred.kind(), cred.raw(), cred.claims(), ip, &args)
        .await;
    let db = db_start.elapsed();
    let mut resp = match result {
        Ok((env, call)) => {
            app.metrics.db_latency(call);
            record_auth(app, &cred, env.status);
            out.principal = env.principal.clone();
            envelope_response(app, &env, rid)
        }
        Err(e) => db_error_response(app, &e, rid),
    };
    set(
        &mut resp,
        SERVER_TIMING,
        &server_timing(auth, db, start.elapsed()),
    );
    resp
}

/// Counts the database's authentication verdict for this credential kind.
pub fn record_auth(app: &App, cred: &Credential, status: u16) {
    app.metrics
        .auth(cred.kind(), if status == 401 { "denied" } else { "ok" });
}

pub fn set_header(resp: &mut Response<Body>, name: HeaderName, value: &str) {
    set(resp, name, value);
}

pub const SERVER_TIMING_HEADER: HeaderName = SERVER_TIMING;

#[cfg(test)]
mod tests {
    use super::*;
    use ama_core::token::generate;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn credential_kinds() {
        assert_eq!(classify(&headers(&[])), Ok(Presented::None));
        assert_eq!(
            classify(&headers(&[("authorization", "Bearer eyJ.a.b")])),
            Ok(Presented::Jwt("eyJ.a.b"))
        );
        assert_eq!(
            classify(&headers(&[("authorization", "bearer  eyJ.a.b ")])),
            Ok(Presented::Jwt("eyJ.a.b"))
        );
        let eat = generate(TokenKind::Agent).raw;
        let auth = format!("Bearer {eat}");
        assert_eq!(
            classify(&headers(&[("authorization", &auth)])),
            Ok(Presented::Token(TokenKind::Agent, &eat))
        );
        let vst = generate(TokenKind::Visitor).raw;
        let auth = format!("Bearer {vst}");
        assert_eq!(
            classify(&headers(&[("authorization", &auth)])),
            Ok(Presented::Token(TokenKind::Visitor, &vst))
        );
        let ik = generate(TokenKind::InternalKey).raw;
        assert_eq!(
            classify(&headers(&[("x-internal-api-key", &ik)])),
            Ok(Presented::Token(TokenKind::InternalKey, &ik))
        );
    }

    #[test]
    fn malformed_credentials_are_refused() {
        let eat = generate(TokenKind::Agent).raw;
        let mut typo: Vec<char> = eat.chars().collect();
        typo[12] = if typo[12] == 'a' { 'b' } else { 'a' };
        let typo: String = typo.into_iter().collect();
        let ik = generate(TokenKind::InternalKey).raw;
        let cases: Vec<Vec<(&str, String)>> = vec![
            vec![("authorization", format!("Bearer {typo}"))],
            vec![("authorization", format!("Bearer {}", &eat[..20]))],
            vec![("authorization", "Bearer ama_xyz_0000".into())],
            vec![("authorization", format!("Bearer {ik}"))],
            vec![("authorization", "Basic dXNlcjpwdw==".into())],
            vec![("authorization", "Bearer".into())],
            vec![("authorization", "Bearer ".into())],
            vec![("authorization", "Bearer a b".into())],
            vec![
                ("authorization", "Bearer x".into()),
                ("authorization", "Bearer y".into()),
            ],
            vec![("x-internal-api-key", "ama_ik_short".into())],
            vec![("x-internal-api-key", eat.clone())],
            vec![
                ("x-internal-api-key", ik.clone()),
                ("authorization", format!("Bearer {eat}")),
            ],
        ];
        for c in cases {
            let pairs: Vec<(&str, &str)> = c.iter().map(|(k, v)| (*k, v.as_str())).collect();
            assert!(classify(&headers(&pairs)).is_err(), "{pairs:?}");
        }
    }

    #[test]
    fn header_formatting() {
        let r = Rate {
            policy: "thread_write".into(),
            limit: 60,
            remaining: 59,
            reset: 1,
            retry_after: 0,
            window: 60,
        };
        let h = rate_headers(&r, 200);
        assert_eq!(h[0].0, RATELIMIT_POLICY);
        assert_eq!(h[0].1, "\"thread_write\";q=60;w=60");
        assert_eq!(h[1].1, "\"thread_write\";r=59;t=1");
        assert_eq!(h.len(), 2);
        let r = Rate {
            retry_after: 7,
            remaining: 0,
            ..r
        };
        let h = rate_headers(&r, 429);
        assert_eq!(h[2], (RETRY_AFTER, "7".to_string()));
        let r = Rate {
            policy: "a\"b\r\nX: y".into(),
            retry_after: 0,
            ..r
        };
        let h = rate_headers(&r, 429);
        assert_eq!(h[0].1, "\"abX:y\";q=60;w=60");
        assert_eq!(h[2].1, "1");
        let st = server_timing(
            Duration::from_micros(120),
            Duration::from_micros(1500),
            Duration::from_millis(2),
        );
        assert_eq!(st, "auth;dur=0.120, db;dur=1.500, total;dur=2.000");
    }

    #[test]
    fn request_ids_and_bodies() {
        assert_eq!(
            request_id(&headers(&[("x-request-id", "abc-123")])),
            "abc-123"
        );
        let generated = request_id(&headers(&[("x-request-id", "evil\" id")]));
        assert_eq!(generated.len(), 36);
        assert_eq!(parse_body(b""), Ok(Value::Null));
        assert_eq!(parse_body(b" \n"), Ok(Value::Null));
        assert_eq!(parse_body(b"{\"a\":1}"), Ok(json!({"a": 1})));
        assert_eq!(parse_body(b"[1,2]"), Ok(json!([1, 2])));
        let e = parse_body(b"{\"a\":").unwrap_err();
        assert_eq!((e.status, e.code), (400, "BAD_REQUEST"));
        assert!(e.message.contains("body"));
    }

    #[test]
    fn responses_carry_request_id_and_www_authenticate() {
        let r = error_response(&ApiError::unauthorized(), "rid-1");
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()[WWW_AUTHENTICATE], WWW_AUTH_VALUE);
        assert_eq!(r.headers()[&X_REQUEST_ID], "rid-1");
        assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
    }
}
