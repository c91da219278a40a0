//! The request handler: match the route, authenticate, read the body, make the one
//! `ama.request` call (or open a stream, or answer a shim endpoint), shape the response.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use http::{Method, Request, Response};
use serde_json::{json, Value};
use tracing::Instrument;

use crate::auth::authenticate;
use crate::context::Ctx;
use crate::errors::ApiError;
use crate::request::{client_ip, read_body, request_id};
use crate::response::{
    db_error_response, envelope_response, error_response, full, json_response, limited_response,
    server_timing, set_header, set_rate_headers, Body, SERVER_TIMING, X_REQUEST_ID,
};
use crate::routes::{self, RouteMatch, Target};
use crate::App;

/// Entry point for every request.
pub async fn handle<B>(app: Arc<App>, req: Request<B>, peer: SocketAddr) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let rid = request_id(req.headers());
    let ip = client_ip(req.headers(), peer, &app.cfg.trusted_proxies);
    let mut ctx = Ctx::new(app, rid, ip, req.method());
    let span = ctx.span.clone();
    let mut resp = dispatch(&mut ctx, req).instrument(span.clone()).await;
    set_header(&mut resp, X_REQUEST_ID, &ctx.rid);
    let status = resp.status().as_u16();
    ctx.app.metrics.request(ctx.route, status);
    tracing::info!(
        parent: &span,
        status,
        latency_ms = ctx.start.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    resp
}

async fn dispatch<B>(ctx: &mut Ctx, req: Request<B>) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let path = req.uri().path();
    let mut matched = routes::match_route(req.method(), path);
    if metrics_hidden(ctx, &matched, path) {
        matched = RouteMatch::NotFound;
    }
    let (target, params) = match matched {
        RouteMatch::Found { target, params } => (target, params),
        RouteMatch::NotFound => {
            ctx.set_route("not_found");
            return error_response(&ApiError::not_found(), &ctx.rid);
        }
        RouteMatch::MethodNotAllowed { allow } => {
            ctx.set_route("method_not_allowed");
            let mut r = error_response(&ApiError::status(405, "method not allowed"), &ctx.rid);
            set_header(&mut r, ALLOW, &routes::allow_header(&allow));
            return r;
        }
    };
    ctx.set_route(target.name());
    match target {
        Target::Api(name) => api(ctx, req, name, &params).await,
        Target::EventStream => {
            let auth_start = Instant::now();
            let cred = match authenticate(ctx, req.headers()).await {
                Ok(c) => c,
                Err(resp) => return resp,
            };
            let stream = crate::stream::StreamRequest {
                thread_id: params.first().map(|(_, v)| v.clone()).unwrap_or_default(),
                query: routes::parse_query(req.uri().query()),
                last_event_id: req
                    .headers()
                    .get("last-event-id")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
            };
            crate::stream::open(ctx, cred, stream, auth_start.elapsed()).await
        }
        Target::WsUser | Target::WsPublic => crate::ws::open(ctx, req, target, &params).await,
        _ => {
            let verdict = ctx.app.limits.endpoint(ctx.ip);
            if !verdict.allowed() {
                return limited_response(&ctx.app.metrics, &verdict, "too many requests", &ctx.rid);
            }
            let mut r = shim_endpoint(&ctx.app, target, &ctx.rid).await;
            let status = r.status().as_u16();
            set_rate_headers(&mut r, &verdict.rate(), status);
            r
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
                // live delivery degrades to the streams' periodic re-poll while the listener
                // reconnects: reported, not a reason to take the shim out of rotation
                let events = if app.metrics.listener_connected() {
                    "connected"
                } else {
                    "reconnecting"
                };
                json_response(
                    200,
                    &json!({"status": "ready", "events_listener": events}),
                    rid,
                )
            } else {
                error_response(&ApiError::status(503, "database unreachable"), rid)
            }
        }
        Target::Metrics => {
            let mut r = Response::new(full(app.metrics.render(app.db.gauges())));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
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
/// `metrics_allow` list, and hidden for every method (a 405 would give it away). The client IP
/// honours `X-Forwarded-For` from trusted proxies only.
fn metrics_hidden(ctx: &Ctx, matched: &RouteMatch, path: &str) -> bool {
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
    metrics
        && !ctx
            .app
            .cfg
            .metrics_allow
            .iter()
            .any(|n| n.contains(&ctx.ip))
}

/// One API route: authenticate, read the body, one `ama.request` call, shape the response.
async fn api<B>(
    ctx: &Ctx,
    req: Request<B>,
    name: &'static str,
    params: &[(&'static str, String)],
) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let app = &ctx.app;
    let auth_start = Instant::now();
    let cred = match authenticate(ctx, req.headers()).await {
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
        match read_body(req, app.cfg.body_limit, app.cfg.request_timeout).await {
            Ok(b) => b,
            Err(e) => return error_response(&e, &ctx.rid),
        }
    } else {
        Value::Null
    };
    let args = json!({"path": routes::params_json(params), "query": query, "body": body});
    let db_start = Instant::now();
    let result = app
        .db
        .request(name, cred.kind(), cred.raw(), cred.claims(), ctx.ip, &args)
        .await;
    let db = db_start.elapsed();
    let mut resp = match result {
        Ok((env, call)) => {
            app.metrics.db_latency(call);
            ctx.record_auth(&cred, env.status);
            ctx.set_principal(env.principal.as_deref());
            envelope_response(&app.metrics, env, &ctx.rid)
        }
        Err(e) => db_error_response(&app.metrics, &e, &ctx.rid),
    };
    set_header(
        &mut resp,
        SERVER_TIMING,
        &server_timing(auth, db, ctx.start.elapsed()),
    );
    resp
}
