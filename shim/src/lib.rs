//! `ama-shim`: the HTTPS front door of ama_pg. It terminates TLS, verifies user JWTs, recognises
//! the other credential kinds and forwards each API request as one `ama.request(...)` call.
//! It holds no business rules: every authorization and rate-limit decision is the database's.

pub mod config;
pub mod db;
pub mod errors;
pub mod http;
pub mod jwt;
pub mod limiter;
pub mod metrics;
pub mod net;
pub mod routes;
pub mod server;
pub mod sse;
pub mod tls;

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
    pub notices: tokio::sync::broadcast::Sender<sse::Notice>,
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}
