//! One request's context: the shared state, the request id, the client IP, the start time and
//! the tracing span that carries the access log's fields.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::credential::Credential;
use crate::App;

/// What every step of a request needs to know about it.
pub struct Ctx {
    pub app: Arc<App>,
    /// The request id (the client's `x-request-id` when acceptable, else a new UUID).
    pub rid: String,
    /// The client IP (`X-Forwarded-For` only from trusted proxies).
    pub ip: IpAddr,
    pub start: Instant,
    /// The route name for metrics and logs; `-` until the request line is matched.
    pub route: &'static str,
    /// The span of this request: `request_id`, `method`, `route`, `credential`, `principal`.
    pub span: tracing::Span,
}

impl Ctx {
    pub fn new(app: Arc<App>, rid: String, ip: IpAddr, method: &http::Method) -> Ctx {
        let span = tracing::info_span!(
            "request",
            request_id = %rid,
            method = %method,
            route = tracing::field::Empty,
            credential = tracing::field::Empty,
            principal = tracing::field::Empty,
        );
        Ctx {
            app,
            rid,
            ip,
            start: Instant::now(),
            route: "-",
            span,
        }
    }

    /// Records the matched route.
    pub fn set_route(&mut self, route: &'static str) {
        self.route = route;
        self.span.record("route", route);
    }

    /// Records the kind of credential presented.
    pub fn set_credential(&self, kind: &'static str) {
        self.span.record("credential", kind);
    }

    /// Records who the database said the caller is.
    pub fn set_principal(&self, principal: Option<&str>) {
        if let Some(p) = principal {
            self.span.record("principal", p);
        }
    }

    /// Counts the database's authentication verdict for this credential kind.
    pub fn record_auth(&self, cred: &Credential, status: u16) {
        self.app
            .metrics
            .auth(cred.kind(), if status == 401 { "denied" } else { "ok" });
    }
}
