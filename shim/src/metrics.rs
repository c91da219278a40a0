//! Prometheus metrics (`prometheus-client`), exposed in the text format 0.0.4.

use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// The `Content-Type` of [`Metrics::render`]'s output.
pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds (seconds) of the database latency histogram.
pub const DB_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteStatus {
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindOutcome {
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Policy {
    policy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Kind {
    kind: &'static str,
}

/// A family listed (`# HELP`, `# TYPE`) even before its first series, as the exposition always
/// did: the encoder leaves out empty families otherwise.
#[derive(Debug)]
struct Listed<M>(M);

impl<M: EncodeMetric> EncodeMetric for Listed<M> {
    fn encode(&self, encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        self.0.metric_type()
    }
}

/// The shim's metrics; the handles below are registered in `registry` (they share their values).
pub struct Metrics {
    registry: Registry,
    requests: Family<RouteStatus, Counter>,
    auth: Family<KindOutcome, Counter>,
    rate_limited: Family<Policy, Counter>,
    db_errors: Family<Kind, Counter>,
    stream_polls: Family<Kind, Counter>,
    db_seconds: Histogram,
    pool: [Gauge; 4],
    connections: Gauge,
    sse_streams: Gauge,
    listener_connected: Gauge,
    connections_refused: Counter,
    connections_shed: Counter,
    idle_closed: Counter,
    ws_sockets: Gauge,
    ws_closed: Family<Reason, Counter>,
}

/// Pool numbers sampled when rendering.
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolGauges {
    pub max_size: usize,
    pub size: usize,
    pub available: usize,
    pub waiting: usize,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RouteStatus, Counter>::default();
        let auth = Family::<KindOutcome, Counter>::default();
        let rate_limited = Family::<Policy, Counter>::default();
        let db_errors = Family::<Kind, Counter>::default();
        let stream_polls = Family::<Kind, Counter>::default();
        let db_seconds = Histogram::new(DB_BUCKETS.iter().copied());
        let pool: [Gauge; 4] = Default::default();
        let connections = Gauge::default();
        let sse_streams = Gauge::default();
        let listener_connected = Gauge::default();
        let connections_refused = Counter::default();
        let connections_shed = Counter::default();
        let idle_closed = Counter::default();
        let ws_sockets = Gauge::default();
        let ws_closed = Family::<Reason, Counter>::default();
        registry.register(
            "ama_shim_ws_closed",
            "WebSocket streams closed or refused, by reason (\"slow consumer\": its send queue filled, --ws-send-queue; \"user_limit\" and \"ip_limit\": refused at open)",
            Listed(ws_closed.clone()),
        );
        registry.register(
            "ama_shim_ws_sockets",
            "Open WebSocket streams",
            ws_sockets.clone(),
        );
        for (name, help, c) in [
            (
                "ama_shim_idle_connections_closed",
                "Connections closed for idleness (--idle-timeout-ms) or for no first request in time",
                &idle_closed,
            ),
            (
                "ama_shim_connections_refused",
                "Connections closed at accept because their address held --max-connections-per-ip",
                &connections_refused,
            ),
            (
                "ama_shim_connections_shed",
                "Idle connections closed to give their slot to a new one (--max-connections full)",
                &connections_shed,
            ),
        ] {
            registry.register(name, help, c.clone());
        }
        // counters get their `_total` suffix from the encoder
        registry.register(
            "ama_shim_requests",
            "HTTP requests by route and status",
            Listed(requests.clone()),
        );
        registry.register(
            "ama_shim_auth",
            "Authentication outcomes by credential kind",
            Listed(auth.clone()),
        );
        registry.register(
            "ama_shim_rate_limited",
            "Requests answered 429, by policy (shim_auth_failures and shim_endpoints are the shim's own limits, the others the database ledger's)",
            Listed(rate_limited.clone()),
        );
        registry.register(
            "ama_shim_db_errors",
            "Database calls that failed, by kind",
            Listed(db_errors.clone()),
        );
        registry.register(
            "ama_shim_stream_polls",
            "events.poll calls made for live event streams: kind=\"shared\" polls once per notification for every stream of a (thread, principal), kind=\"own\" is one stream catching up or re-checking its access",
            Listed(stream_polls.clone()),
        );
        registry.register(
            "ama_shim_db_seconds",
            "Latency of ama.request calls",
            db_seconds.clone(),
        );
        for (name, help, g) in [
            (
                "ama_shim_pool_max_size",
                "Maximum pooled database connections",
                &pool[0],
            ),
            (
                "ama_shim_pool_size",
                "Open pooled database connections",
                &pool[1],
            ),
            (
                "ama_shim_pool_available",
                "Idle pooled database connections",
                &pool[2],
            ),
            (
                "ama_shim_pool_waiting",
                "Requests waiting for a pooled connection",
                &pool[3],
            ),
            (
                "ama_shim_connections",
                "Open client connections",
                &connections,
            ),
            ("ama_shim_sse_streams", "Open event streams", &sse_streams),
            (
                "ama_shim_listener_connected",
                "1 while the LISTEN connection that wakes the event streams is up",
                &listener_connected,
            ),
        ] {
            registry.register(name, help, g.clone());
        }
        Metrics {
            registry,
            requests,
            auth,
            rate_limited,
            db_errors,
            stream_polls,
            db_seconds,
            pool,
            connections,
            sse_streams,
            listener_connected,
            connections_refused,
            connections_shed,
            idle_closed,
            ws_sockets,
            ws_closed,
        }
    }
}

impl Metrics {
    pub fn request(&self, route: &str, status: u16) {
        self.requests
            .get_or_create(&RouteStatus {
                route: route.to_string(),
                status,
            })
            .inc();
    }

    /// `kind` is the credential kind, `outcome` one of ok / rejected / denied.
    pub fn auth(&self, kind: &'static str, outcome: &'static str) {
        self.auth
            .get_or_create(&KindOutcome { kind, outcome })
            .inc();
    }

    pub fn rate_limited(&self, policy: &str) {
        self.rate_limited
            .get_or_create(&Policy {
                policy: policy.to_string(),
            })
            .inc();
    }

    pub fn db_error(&self, kind: &'static str) {
        self.db_errors.get_or_create(&Kind { kind }).inc();
    }

    /// A poll for live event streams (`shared` or `own`).
    pub fn stream_poll(&self, kind: &'static str) {
        self.stream_polls.get_or_create(&Kind { kind }).inc();
    }

    pub fn db_latency(&self, d: Duration) {
        self.db_seconds.observe(d.as_secs_f64());
    }

    pub fn connection_opened(&self) {
        self.connections.inc();
    }

    pub fn connection_closed(&self) {
        self.connections.dec();
    }

    /// The gauge the event listener sets (1 connected, 0 reconnecting).
    pub fn listener_gauge(&self) -> Gauge {
        self.listener_connected.clone()
    }

    /// Whether the event listener is connected now.
    pub fn listener_connected(&self) -> bool {
        self.listener_connected.get() == 1
    }

    pub fn idle_closed(&self) {
        self.idle_closed.inc();
    }

    pub fn connection_refused(&self) {
        self.connections_refused.inc();
    }

    pub fn connection_shed(&self) {
        self.connections_shed.inc();
    }

    pub fn ws_opened(&self) {
        self.ws_sockets.inc();
    }

    pub fn ws_socket_ended(&self) {
        self.ws_sockets.dec();
    }

    /// A WebSocket closed (or refused at open) for `reason`.
    pub fn ws_closed(&self, reason: &'static str) {
        self.ws_closed.get_or_create(&Reason { reason }).inc();
    }

    pub fn stream_opened(&self) {
        self.sse_streams.inc();
    }

    pub fn stream_closed(&self) {
        self.sse_streams.dec();
    }

    /// The metrics in the Prometheus text format ([`CONTENT_TYPE`]), with `pool` sampled now.
    pub fn render(&self, pool: PoolGauges) -> String {
        let sampled = [pool.max_size, pool.size, pool.available, pool.waiting];
        for (g, v) in self.pool.iter().zip(sampled) {
            g.set(i64::try_from(v).unwrap_or(i64::MAX));
        }
        let mut o = String::with_capacity(4096);
        // writing into a String cannot fail
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut o, &self.registry);
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::default();
        m.request("threads.get", 200);
        m.request("threads.get", 200);
        m.request("threads.get", 404);
        m.request("odd\"route\\\n", 500);
        m.auth("jwt", "ok");
        m.rate_limited("thread_write");
        m.rate_limited(crate::limiter::AUTH_FAILURES);
        m.rate_limited(crate::limiter::AUTH_FAILURES);
        m.db_error("timeout");
        m.db_latency(Duration::from_millis(3));
        m.connection_opened();
        m.connection_opened();
        m.connection_closed();
        m.stream_opened();
        let fresh = Metrics::default().render(PoolGauges::default());
        for name in [
            "ama_shim_requests_total",
            "ama_shim_auth_total",
            "ama_shim_rate_limited_total",
            "ama_shim_db_errors_total",
        ] {
            assert!(
                fresh.contains(&format!("# TYPE {name} counter\n")),
                "{fresh}"
            );
        }
        let t = m.render(PoolGauges {
            max_size: 16,
            size: 2,
            available: 1,
            waiting: 0,
        });
        for line in [
            "# TYPE ama_shim_requests_total counter",
            "ama_shim_requests_total{route=\"threads.get\",status=\"200\"} 2",
            "ama_shim_requests_total{route=\"threads.get\",status=\"404\"} 1",
            "ama_shim_requests_total{route=\"odd\\\"route\\\\\\n\",status=\"500\"} 1",
            "ama_shim_auth_total{kind=\"jwt\",outcome=\"ok\"} 1",
            "ama_shim_rate_limited_total{policy=\"thread_write\"} 1",
            "ama_shim_rate_limited_total{policy=\"shim_auth_failures\"} 2",
            "ama_shim_db_errors_total{kind=\"timeout\"} 1",
            "# TYPE ama_shim_db_seconds histogram",
            "ama_shim_db_seconds_bucket{le=\"0.0025\"} 0",
            "ama_shim_db_seconds_bucket{le=\"0.005\"} 1",
            "ama_shim_db_seconds_bucket{le=\"+Inf\"} 1",
            "ama_shim_db_seconds_count 1",
            "# TYPE ama_shim_pool_max_size gauge",
            "ama_shim_pool_max_size 16",
            "ama_shim_pool_size 2",
            "ama_shim_pool_available 1",
            "ama_shim_pool_waiting 0",
            "ama_shim_connections 1",
            "ama_shim_sse_streams 1",
        ] {
            assert!(t.lines().any(|l| l == line), "missing {line:?} in\n{t}");
        }
        assert!(t
            .lines()
            .any(|l| l.starts_with("ama_shim_db_seconds_sum 0.003")));
        assert!(!t.contains("# EOF"));
    }
}
