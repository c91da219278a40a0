//! `ama-shim`: the HTTPS front door of ama_pg. It terminates TLS, verifies user JWTs, recognises
//! the other credential kinds and forwards each API request as one `ama.request(...)` call.
//! It holds no business rules: every authorization and rate-limit decision is the database's.

//!
//! The path of a request through the modules: `server` (accept, TLS, HTTP/1.1 and HTTP/2) →
//! `handler` (one [`context::Ctx`] per request) → `routes` (the one route table) → `credential`
//! and `jwt` (what the request presents) → `request` (id, client IP, body) → `db` (the
//! `ama.request` call) or `stream` (SSE, woken by `listener`) → `response` (envelope to HTTP).

pub mod auth;
pub mod budget;
pub mod config;
pub mod conn_limit;
pub mod conns;
pub mod context;
pub mod credential;
pub mod db;
pub mod errors;
pub mod handler;
pub mod idle;
pub mod jwt;
pub mod limiter;
pub mod listener;
pub mod metrics;
pub mod net;
pub mod request;
pub mod response;
pub mod routes;
pub mod server;
pub mod stream;
pub mod tls;
pub mod webhook;
pub mod ws;

/// The OpenAPI document served at `/api/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// State shared by all connections.
pub struct App {
    pub cfg: config::Config,
    pub db: db::Db,
    pub verifier: jwt::Verifier,
    pub metrics: metrics::Metrics,
    /// The shim's own limits: refused credentials and its own endpoints.
    pub limits: limiter::ShimLimits,
    /// Connections per client address.
    pub conn_limit: std::sync::Arc<conn_limit::ConnLimit>,
    pub notices: tokio::sync::broadcast::Sender<listener::Notice>,
    /// The live streams' shared polls, one per (thread, principal).
    pub fanout: std::sync::Arc<stream::fanout::Fanout>,
    /// The WebSocket streams' socket counts (per principal, per client address).
    pub ws: ws::limits::WsLimits,
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}
