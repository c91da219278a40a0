//! Hand-rolled Prometheus text metrics.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the database latency histogram.
pub const DB_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    auth: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    rate_limited: Mutex<BTreeMap<String, u64>>,
    db_buckets: [AtomicU64; 13],
    db_count: AtomicU64,
    db_sum_us: AtomicU64,
    db_errors: Mutex<BTreeMap<&'static str, u64>>,
    pub connections: AtomicU64,
    pub sse_streams: AtomicU64,
}

/// Pool numbers sampled when rendering.
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolGauges {
    pub max_size: usize,
    pub size: usize,
    pub available: usize,
    pub waiting: usize,
}

fn bump<K: Ord>(m: &Mutex<BTreeMap<K, u64>>, k: K) {
    if let Ok(mut g) = m.lock() {
        *g.entry(k).or_insert(0) += 1;
    }
}

/// Escapes a Prometheus label value.
pub fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    pub fn request(&self, route: &str, status: u16) {
        bump(&self.requests, (route.to_string(), status));
    }

    /// `kind` is the credential kind, `outcome` one of ok / rejected / denied.
    pub fn auth(&self, kind: &'static str, outcome: &'static str) {
        bump(&self.auth, (kind, outcome));
    }

    pub fn rate_limited(&self, policy: &str) {
        bump(&self.rate_limited, policy.to_string());
    }

    pub fn db_error(&self, kind: &'static str) {
        bump(&self.db_errors, kind);
    }

    pub fn db_latency(&self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, b) in DB_BUCKETS.iter().enumerate() {
            if s <= *b {
                self.db_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.db_count.fetch_add(1, Ordering::Relaxed);
        self.db_sum_us.fetch_add(
            d.as_micros().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
    }

    pub fn render(&self, pool: PoolGauges) -> String {
        let mut o = String::with_capacity(4096);
        let _ = writeln!(
            o,
            "# HELP ama_shim_requests_total HTTP requests by route and status."
        );
        let _ = writeln!(o, "# TYPE ama_shim_requests_total counter");
        if let Ok(g) = self.requests.lock() {
            for ((route, status), n) in g.iter() {
                let _ = writeln!(
                    o,
                    "ama_shim_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                    escape_label(route)
                );
            }
        }
        let _ = writeln!(
            o,
            "# HELP ama_shim_auth_total Authentication outcomes by credential kind."
        );
        let _ = writeln!(o, "# TYPE ama_shim_auth_total counter");
        if let Ok(g) = self.auth.lock() {
            for ((kind, outcome), n) in g.iter() {
                let _ = writeln!(
                    o,
                    "ama_shim_auth_total{{kind=\"{kind}\",outcome=\"{outcome}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            o,
            "# HELP ama_shim_rate_limited_total Requests answered 429, by policy (shim_auth_failures and shim_endpoints are the shim's own limits, the others the database ledger's)."
        );
        let _ = writeln!(o, "# TYPE ama_shim_rate_limited_total counter");
        if let Ok(g) = self.rate_limited.lock() {
            for (policy, n) in g.iter() {
                let _ = writeln!(
                    o,
                    "ama_shim_rate_limited_total{{policy=\"{}\"}} {n}",
                    escape_label(policy)
                );
            }
        }
        let _ = writeln!(
            o,
            "# HELP ama_shim_db_errors_total Database calls that failed, by kind."
        );
        let _ = writeln!(o, "# TYPE ama_shim_db_errors_total counter");
        if let Ok(g) = self.db_errors.lock() {
            for (kind, n) in g.iter() {
                let _ = writeln!(o, "ama_shim_db_errors_total{{kind=\"{kind}\"}} {n}");
            }
        }
        let _ = writeln!(
            o,
            "# HELP ama_shim_db_seconds Latency of ama.request calls."
        );
        let _ = writeln!(o, "# TYPE ama_shim_db_seconds histogram");
        for (i, b) in DB_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                o,
                "ama_shim_db_seconds_bucket{{le=\"{b}\"}} {}",
                self.db_buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.db_count.load(Ordering::Relaxed);
        let _ = writeln!(o, "ama_shim_db_seconds_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.db_sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(o, "ama_shim_db_seconds_sum {sum}");
        let _ = writeln!(o, "ama_shim_db_seconds_count {count}");
        for (name, help, v) in [
            (
                "ama_shim_pool_max_size",
                "Maximum pooled database connections.",
                pool.max_size,
            ),
            (
                "ama_shim_pool_size",
                "Open pooled database connections.",
                pool.size,
            ),
            (
                "ama_shim_pool_available",
                "Idle pooled database connections.",
                pool.available,
            ),
            (
                "ama_shim_pool_waiting",
                "Requests waiting for a pooled connection.",
                pool.waiting,
            ),
        ] {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        let _ = writeln!(
            o,
            "# HELP ama_shim_connections Open client connections.\n# TYPE ama_shim_connections gauge\nama_shim_connections {}",
            self.connections.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP ama_shim_sse_streams Open event streams.\n# TYPE ama_shim_sse_streams gauge\nama_shim_sse_streams {}",
            self.sse_streams.load(Ordering::Relaxed)
        );
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
        m.auth("jwt", "ok");
        m.rate_limited("thread_write");
        m.rate_limited(crate::limiter::AUTH_FAILURES);
        m.rate_limited(crate::limiter::AUTH_FAILURES);
        m.db_latency(Duration::from_millis(3));
        let t = m.render(PoolGauges {
            max_size: 16,
            size: 2,
            available: 1,
            waiting: 0,
        });
        assert!(t.contains("ama_shim_requests_total{route=\"threads.get\",status=\"200\"} 2"));
        assert!(t.contains("ama_shim_requests_total{route=\"threads.get\",status=\"404\"} 1"));
        assert!(t.contains("ama_shim_auth_total{kind=\"jwt\",outcome=\"ok\"} 1"));
        assert!(t.contains("ama_shim_rate_limited_total{policy=\"thread_write\"} 1"));
        assert!(t.contains("ama_shim_rate_limited_total{policy=\"shim_auth_failures\"} 2"));
        assert!(t.contains("ama_shim_db_seconds_bucket{le=\"0.0025\"} 0"));
        assert!(t.contains("ama_shim_db_seconds_bucket{le=\"0.005\"} 1"));
        assert!(t.contains("ama_shim_db_seconds_count 1"));
        assert!(t.contains("ama_shim_pool_max_size 16"));
        assert_eq!(escape_label("a\"b"), "a\\\"b");
    }
}
