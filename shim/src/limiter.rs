//! In-process rate limits for what the shim answers by itself, with no database round trip:
//! credentials it refuses (counted per client IP and credential kind) and its own endpoints
//! (`/health`, `/ready`, `/metrics`, the OpenAPI document; per client IP).
//!
//! The arithmetic is the ledger's, `ama_core::gcra`: one theoretical arrival time (TAT) per key.
//! Keys live in a bounded concurrent map (`quick_cache`, S3-FIFO eviction): it never holds more
//! than about the configured number of keys, and a flood of new keys that are each seen once
//! evicts its own kind before keys that keep coming back. Losing a key only gives it a fresh
//! allowance, which is also all a key whose TAT has passed is worth.
//!
//! Client addresses are counted under [`ama_core::net::limit_scope`], as in the database: an IPv6
//! client is its /64 (it can pick any address in it), an IPv4-mapped address is the IPv4 one.

use std::hash::Hash;
use std::net::IpAddr;
use std::time::Instant;

use ama_core::gcra::{ceil_secs, Decision, Policy, NS_PER_SEC};
use ama_core::net::limit_scope;
use quick_cache::sync::{Cache, EntryAction, EntryResult};

use ama_core::envelope::Rate;

/// One minute in nanoseconds: the period of every shim-side policy.
pub const MINUTE_NS: u64 = 60 * NS_PER_SEC;

/// Policy name of the refused-credential limit (headers and metrics).
pub const AUTH_FAILURES: &str = "shim_auth_failures";
/// Policy name of the shim's own endpoints (headers and metrics).
pub const SHIM_ENDPOINTS: &str = "shim_endpoints";

/// A GCRA limiter over a bounded set of keys.
pub struct Limiter<K> {
    name: &'static str,
    policy: Policy,
    keys: Cache<K, u64>,
    epoch: Instant,
}

/// The outcome of one counted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub policy: &'static str,
    pub window_secs: u64,
    pub decision: Decision,
}

impl Verdict {
    pub fn allowed(&self) -> bool {
        self.decision.allowed
    }

    /// The numbers the `RateLimit-Policy`, `RateLimit` and `Retry-After` headers carry.
    pub fn rate(&self) -> Rate {
        let d = &self.decision;
        Rate {
            policy: self.policy.to_string(),
            limit: u64::from(d.limit),
            remaining: u64::from(d.remaining),
            reset: ceil_secs(d.reset_ns),
            retry_after: ceil_secs(d.retry_after_ns),
            window: self.window_secs,
        }
    }
}

impl<K: Eq + Hash + Clone> Limiter<K> {
    /// `limit` requests per `period_ns` (no burst), remembering at most about `max_keys` keys.
    pub fn new(name: &'static str, limit: u32, period_ns: u64, max_keys: usize) -> Self {
        let policy = Policy {
            limit: limit.max(1),
            period_ns: period_ns.max(1),
            burst: 0,
        };
        Limiter {
            name,
            policy,
            keys: Cache::new(max_keys.max(1)),
            epoch: Instant::now(),
        }
    }

    /// `limit` requests per minute.
    pub fn per_minute(name: &'static str, limit: u32, max_keys: usize) -> Self {
        Self::new(name, limit, MINUTE_NS, max_keys)
    }

    /// Nanoseconds on this limiter's monotonic clock.
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Counts one request of `key` now.
    pub fn hit(&self, key: &K) -> Verdict {
        self.hit_at(key, self.now_ns())
    }

    /// Counts one request of `key` at `now` (nanoseconds on the limiter's clock; tests pass
    /// their own). Exact under concurrency: the decision runs under the key's shard lock.
    pub fn hit_at(&self, key: &K, now: u64) -> Verdict {
        let policy = self.policy;
        let decided = self.keys.entry(key, None, |_, tat| {
            let d = policy.decide(*tat, now, 1);
            *tat = d.tat;
            EntryAction::Retain(d)
        });
        let decision = match decided {
            EntryResult::Retained(d) => d,
            EntryResult::Vacant(slot) => {
                let d = policy.decide(0, now, 1);
                // Err only when the placeholder was removed meanwhile: the key starts afresh.
                let _ = slot.insert(d.tat);
                d
            }
            // Not produced by `Retain` with no timeout; deciding as a new key is always safe.
            EntryResult::Removed(..) | EntryResult::Replaced(..) | EntryResult::Timeout => {
                policy.decide(0, now, 1)
            }
        };
        Verdict {
            policy: self.name,
            window_secs: ceil_secs(policy.period_ns),
            decision,
        }
    }

    /// Keys currently remembered.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The most keys this limiter holds at once.
    pub fn max_keys(&self) -> u64 {
        self.keys.capacity()
    }

    /// Bytes the map itself uses (keys, values and index; the keys own no heap memory).
    pub fn memory_used(&self) -> usize {
        let m = self.keys.memory_used();
        m.entries + m.map
    }

    pub fn limit(&self) -> u32 {
        self.policy.limit
    }
}

/// Key of a refused credential: the client's limit scope (see [`limit_scope`]) and the
/// credential kind (`jwt`, `agent`, `visitor` or `internal`).
pub type FailureKey = (IpAddr, &'static str);

/// The shim's two in-process limiters. They are reached only through [`ShimLimits::endpoint`] and
/// [`ShimLimits::auth_failure`], which take the raw client IP and count it under its
/// [`limit_scope`]; callers keep the raw IP for their logs.
pub struct ShimLimits {
    /// Credentials the shim refused itself, per (client scope, credential kind).
    auth_failures: Limiter<FailureKey>,
    /// `/health`, `/ready`, `/metrics` and the OpenAPI document, per client scope.
    endpoints: Limiter<IpAddr>,
}

impl ShimLimits {
    pub fn new(auth_failures_per_min: u32, endpoint_per_min: u32, max_keys: usize) -> Self {
        ShimLimits {
            auth_failures: Limiter::per_minute(AUTH_FAILURES, auth_failures_per_min, max_keys),
            endpoints: Limiter::per_minute(SHIM_ENDPOINTS, endpoint_per_min, max_keys),
        }
    }

    /// Counts one request of client `ip` to the shim's own endpoints.
    pub fn endpoint(&self, ip: IpAddr) -> Verdict {
        self.endpoints.hit(&limit_scope(ip))
    }

    /// Counts one credential of `kind` that the shim refused from client `ip`.
    pub fn auth_failure(&self, ip: IpAddr, kind: &'static str) -> Verdict {
        self.auth_failures.hit(&(limit_scope(ip), kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    /// A time well after the clock's start, so "a minute earlier" exists.
    const T0: u64 = 1_000 * NS_PER_SEC;

    #[test]
    fn exactly_the_limit_then_denied_with_headers() {
        let l = Limiter::per_minute(AUTH_FAILURES, 10, 1024);
        let k = (ip("203.0.113.7"), "agent");
        for i in 0..10 {
            let v = l.hit_at(&k, T0);
            assert!(v.allowed(), "request {i}");
            assert_eq!(v.rate().remaining, 9 - i);
        }
        let v = l.hit_at(&k, T0);
        assert!(!v.allowed());
        let r = v.rate();
        assert_eq!(r.policy, AUTH_FAILURES);
        assert_eq!((r.limit, r.remaining, r.window), (10, 0, 60));
        // one failure is worth 6 s: that is when the next one is admitted
        assert_eq!(r.retry_after, 6);
        assert_eq!(r.reset, 60);
        // denied requests do not push the key further out
        for _ in 0..100 {
            assert!(!l.hit_at(&k, T0).allowed());
        }
        assert_eq!(l.hit_at(&k, T0).rate().retry_after, 6);
    }

    #[test]
    fn kinds_and_addresses_are_counted_apart() {
        let l = Limiter::per_minute(AUTH_FAILURES, 10, 1024);
        let a = ip("198.51.100.1");
        for _ in 0..50 {
            l.hit_at(&(a, "agent"), T0);
        }
        assert!(!l.hit_at(&(a, "agent"), T0).allowed());
        for kind in ["jwt", "visitor", "internal"] {
            for i in 0..10 {
                assert!(l.hit_at(&(a, kind), T0).allowed(), "{kind} {i}");
            }
            assert!(!l.hit_at(&(a, kind), T0).allowed(), "{kind}");
        }
        for other in ["198.51.100.2", "2001:db8::1"] {
            assert!(l.hit_at(&(ip(other), "agent"), T0).allowed(), "{other}");
        }
        let e = Limiter::per_minute(SHIM_ENDPOINTS, 3, 1024);
        for _ in 0..3 {
            assert!(e.hit_at(&a, T0).allowed());
        }
        assert!(!e.hit_at(&a, T0).allowed());
        assert!(e.hit_at(&ip("198.51.100.2"), T0).allowed());
    }

    #[test]
    fn allowance_comes_back_with_time() {
        let l = Limiter::per_minute(AUTH_FAILURES, 10, 1024);
        let k = (ip("192.0.2.1"), "jwt");
        for _ in 0..10 {
            assert!(l.hit_at(&k, T0).allowed());
        }
        assert!(!l.hit_at(&k, T0).allowed());
        // one emission interval (6 s) later exactly one more is admitted
        assert!(!l.hit_at(&k, T0 + 6 * NS_PER_SEC - 1).allowed());
        assert!(l.hit_at(&k, T0 + 6 * NS_PER_SEC).allowed());
        assert!(!l.hit_at(&k, T0 + 6 * NS_PER_SEC).allowed());
        // a full period after the last admitted one the whole allowance is back
        let later = T0 + 66 * NS_PER_SEC;
        for i in 0..10 {
            assert!(l.hit_at(&k, later).allowed(), "after the period: {i}");
        }
        assert!(!l.hit_at(&k, later).allowed());
    }

    #[test]
    fn memory_is_bounded_under_a_flood_of_new_keys() {
        let max = 1024;
        let l = Limiter::per_minute(AUTH_FAILURES, 10, max);
        let cap = l.max_keys();
        assert!(cap >= max as u64 && cap < 2 * max as u64, "{cap}");
        // a key that keeps failing is remembered through the flood
        let attacker = (ip("203.0.113.66"), "agent");
        for _ in 0..10 {
            l.hit_at(&attacker, T0);
        }
        for i in 0..100_000u32 {
            let [a, b, c, d] = i.to_be_bytes();
            let k = (IpAddr::from([10, a | b, c, d]), "agent");
            assert!(l.hit_at(&k, T0).allowed());
            if i % 64 == 0 {
                assert!(!l.hit_at(&attacker, T0).allowed(), "forgotten after {i}");
            }
        }
        assert!(l.len() as u64 <= cap, "{} > {cap}", l.len());
        let m = l.memory_used();
        assert!(m <= 256 * cap as usize, "{m} bytes for {cap} keys");
        assert!(!l.hit_at(&attacker, T0).allowed());
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let limits = ShimLimits::new(2, 3, 1024);
        // two addresses of one /64 share one endpoint budget
        let (a, b) = (
            ip("2001:db8:1:2::1"),
            ip("2001:db8:1:2:ffff:ffff:ffff:fffe"),
        );
        assert!(limits.endpoint(a).allowed());
        assert!(limits.endpoint(b).allowed());
        assert!(limits.endpoint(a).allowed());
        assert!(!limits.endpoint(b).allowed());
        assert!(!limits.endpoint(ip("2001:db8:1:2::77")).allowed());
        // the neighbouring /64 has its own
        let c = ip("2001:db8:1:3::1");
        for i in 0..3 {
            assert!(limits.endpoint(c).allowed(), "other /64: {i}");
        }
        assert!(!limits.endpoint(c).allowed());
        // an IPv4-mapped address is its IPv4 address
        for _ in 0..3 {
            assert!(limits.endpoint(ip("192.0.2.9")).allowed());
        }
        assert!(!limits.endpoint(ip("::ffff:192.0.2.9")).allowed());
        // refused credentials: per (/64, kind)
        assert!(limits.auth_failure(a, "agent").allowed());
        assert!(limits.auth_failure(b, "agent").allowed());
        assert!(!limits
            .auth_failure(ip("2001:db8:1:2::5"), "agent")
            .allowed());
        assert!(limits.auth_failure(a, "jwt").allowed());
        assert!(limits.auth_failure(c, "agent").allowed());
        assert!(limits
            .auth_failure(ip("2001:db8:1:3::2"), "agent")
            .allowed());
        assert!(!limits.auth_failure(c, "agent").allowed());
    }

    #[test]
    fn clock_and_concurrency() {
        let l = std::sync::Arc::new(Limiter::per_minute(SHIM_ENDPOINTS, 600, 1024));
        let a = l.now_ns();
        assert!(l.now_ns() >= a);
        // 8 threads x 100 hits on one key: exactly 600 admitted
        let admitted: u32 = (0..8)
            .map(|_| {
                let l = l.clone();
                std::thread::spawn(move || {
                    (0..100)
                        .filter(|_| l.hit_at(&ip("127.0.0.1"), T0).allowed())
                        .count() as u32
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .sum();
        assert_eq!(admitted, 600);
        assert_eq!(l.limit(), 600);
        assert!(l.hit(&ip("127.0.0.2")).allowed());
    }
}
