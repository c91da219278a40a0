//! Generic Cell Rate Algorithm (GCRA) arithmetic for the rate-limit ledger.
//!
//! A policy admits `limit` requests per `period`, plus `burst` extra requests at once. The whole
//! state of one key is a single number, its theoretical arrival time (TAT), so the extension can
//! keep it in shared memory and update it atomically. A TAT at or before `now` is the same as no
//! entry at all: such a slot can be evicted without changing any decision.
//!
//! All times are nanoseconds on one monotonic clock.

/// Nanoseconds per second.
pub const NS_PER_SEC: u64 = 1_000_000_000;

/// A validated rate policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Requests admitted per period (> 0).
    pub limit: u32,
    /// Length of the period in nanoseconds (> 0).
    pub period_ns: u64,
    /// Extra requests admitted at once on top of `limit` (>= 0).
    pub burst: u32,
}

/// Why a policy is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyError {
    NonPositiveLimit,
    NonPositivePeriod,
    NegativeBurst,
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PolicyError::NonPositiveLimit => "limit must be greater than zero",
            PolicyError::NonPositivePeriod => "period must be greater than zero",
            PolicyError::NegativeBurst => "burst must not be negative",
        })
    }
}

impl std::error::Error for PolicyError {}

/// The outcome of one decision, with everything the HTTP headers need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The policy's limit (requests per period).
    pub limit: u32,
    /// Requests that would still be admitted right now, after this one.
    pub remaining: u32,
    /// Nanoseconds until the key is back to its full allowance.
    pub reset_ns: u64,
    /// Nanoseconds until a denied request would be admitted (0 when allowed).
    pub retry_after_ns: u64,
    /// The TAT to store.
    pub tat: u64,
}

impl Policy {
    /// Builds a policy from the integers a DBA stores, rejecting zero or negative values.
    pub fn new(limit: i64, period_ns: i64, burst: i64) -> Result<Self, PolicyError> {
        if limit <= 0 || limit > i64::from(u32::MAX) {
            return Err(PolicyError::NonPositiveLimit);
        }
        if period_ns <= 0 {
            return Err(PolicyError::NonPositivePeriod);
        }
        if burst < 0 || burst > i64::from(u32::MAX) {
            return Err(PolicyError::NegativeBurst);
        }
        Ok(Policy {
            limit: limit as u32,
            period_ns: period_ns as u64,
            burst: burst as u32,
        })
    }

    /// Emission interval: the time one request "costs".
    pub fn interval(&self) -> u64 {
        (self.period_ns / u64::from(self.limit)).max(1)
    }

    /// Requests admitted at once from an idle state.
    pub fn capacity(&self) -> u32 {
        self.limit.saturating_add(self.burst)
    }

    /// Delay variation tolerance: how far ahead of `now` the TAT may run.
    fn tolerance(&self) -> u64 {
        self.interval().saturating_mul(u64::from(self.capacity()))
    }

    /// Decides one request of weight `cost` (0 peeks without consuming) for a key whose stored
    /// TAT is `tat` (0 when the key has no entry).
    pub fn decide(&self, tat: u64, now: u64, cost: u32) -> Decision {
        let t = self.interval();
        let tol = self.tolerance();
        let base = tat.max(now);
        let new_tat = base.saturating_add(t.saturating_mul(u64::from(cost)));
        let allowed = new_tat <= now.saturating_add(tol);
        let stored = if allowed { new_tat } else { base };
        let headroom = now.saturating_add(tol).saturating_sub(stored);
        let remaining = (headroom / t).min(u64::from(self.capacity())) as u32;
        let retry_after_ns = if allowed {
            0
        } else {
            new_tat - now.saturating_add(tol)
        };
        Decision {
            allowed,
            limit: self.limit,
            remaining,
            reset_ns: stored.saturating_sub(now),
            retry_after_ns,
            tat: stored,
        }
    }
}

/// Carries a key's state over to a changed policy: the requests it has used up (its backlog
/// divided by the old interval) now cost the new interval each. Without this, raising a limit
/// would not help a key that already used its old allowance until the old backlog drained.
pub fn rescale(tat: u64, now: u64, old_interval: u64, new_interval: u64) -> u64 {
    if old_interval == 0 || old_interval == new_interval || tat <= now {
        return tat;
    }
    let backlog = u128::from(tat - now) * u128::from(new_interval) / u128::from(old_interval);
    now.saturating_add(u64::try_from(backlog).unwrap_or(u64::MAX))
}

/// Rounds nanoseconds up to whole seconds, as `Retry-After` and `RateLimit` want.
pub fn ceil_secs(ns: u64) -> u64 {
    ns.div_ceil(NS_PER_SEC)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60 * NS_PER_SEC as i64;

    fn run(p: &Policy, now: u64, n: u32) -> (u64, u32) {
        let mut tat = 0;
        let mut allowed = 0;
        for _ in 0..n {
            let d = p.decide(tat, now, 1);
            tat = d.tat;
            allowed += u32::from(d.allowed);
        }
        (tat, allowed)
    }

    #[test]
    fn burst_of_requests_admits_limit_plus_burst() {
        let p = Policy::new(60, MIN, 0).unwrap();
        assert_eq!(run(&p, 1_000, 1000).1, 60);
        let p = Policy::new(60, MIN, 5).unwrap();
        assert_eq!(run(&p, 1_000, 1000).1, 65);
        let p = Policy::new(10, MIN, 0).unwrap();
        assert_eq!(run(&p, 7, 11).1, 10);
    }

    #[test]
    fn allowance_refills_one_interval_at_a_time() {
        let p = Policy::new(60, MIN, 0).unwrap();
        let now = 5 * NS_PER_SEC;
        let (tat, _) = run(&p, now, 60);
        let d = p.decide(tat, now, 1);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0);
        assert_eq!(d.retry_after_ns, NS_PER_SEC);
        assert_eq!(ceil_secs(d.retry_after_ns), 1);
        assert_eq!(d.reset_ns, 60 * NS_PER_SEC);
        // one nanosecond too early
        assert!(!p.decide(tat, now + NS_PER_SEC - 1, 1).allowed);
        let d = p.decide(tat, now + NS_PER_SEC, 1);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
        // a full period later the key is back to full
        let d = p.decide(tat, now + 60 * NS_PER_SEC, 1);
        assert!(d.allowed);
        assert_eq!(d.remaining, 59);
    }

    #[test]
    fn first_request_reports_remaining_and_reset() {
        let p = Policy::new(300, MIN, 0).unwrap();
        let d = p.decide(0, 100, 1);
        assert!(d.allowed);
        assert_eq!(d.limit, 300);
        assert_eq!(d.remaining, 299);
        assert_eq!(d.reset_ns, 200_000_000);
        assert_eq!(d.retry_after_ns, 0);
    }

    #[test]
    fn peek_does_not_consume() {
        let p = Policy::new(2, MIN, 0).unwrap();
        let d = p.decide(0, 10, 0);
        assert!(d.allowed);
        assert_eq!(d.tat, 10);
        assert_eq!(d.remaining, 2);
    }

    #[test]
    fn stale_tat_is_the_same_as_no_entry() {
        let p = Policy::new(5, MIN, 1).unwrap();
        let now = 1_000 * NS_PER_SEC;
        assert_eq!(p.decide(3, now, 1), p.decide(0, now, 1));
    }

    #[test]
    fn rescale_keeps_the_number_of_requests_used() {
        let old = Policy::new(1, MIN, 0).unwrap();
        let new = Policy::new(100, MIN, 0).unwrap();
        let now = 10 * NS_PER_SEC;
        let (tat, n) = run(&old, now, 2);
        assert_eq!(n, 1);
        let tat = rescale(tat, now, old.interval(), new.interval());
        assert_eq!(tat, now + new.interval());
        let d = new.decide(tat, now, 1);
        assert!(d.allowed);
        assert_eq!(d.remaining, 98);
        // lowering the limit makes past requests weigh more
        let (tat, _) = run(&new, now, 50);
        let tat = rescale(tat, now, new.interval(), old.interval());
        assert!(!old.decide(tat, now, 1).allowed);
        // idle keys and unchanged policies are untouched
        assert_eq!(rescale(5, now, 1, 2), 5);
        assert_eq!(rescale(now + 7, now, 3, 3), now + 7);
    }

    #[test]
    fn invalid_policies_are_rejected() {
        assert_eq!(Policy::new(0, MIN, 0), Err(PolicyError::NonPositiveLimit));
        assert_eq!(Policy::new(-1, MIN, 0), Err(PolicyError::NonPositiveLimit));
        assert_eq!(Policy::new(1, 0, 0), Err(PolicyError::NonPositivePeriod));
        assert_eq!(Policy::new(1, -5, 0), Err(PolicyError::NonPositivePeriod));
        assert_eq!(Policy::new(1, 1, -1), Err(PolicyError::NegativeBurst));
    }

    #[test]
    fn extreme_values_saturate_instead_of_overflowing() {
        let p = Policy::new(i64::from(u32::MAX), 1, i64::from(u32::MAX)).unwrap();
        let d = p.decide(u64::MAX - 1, u64::MAX - 10, 1);
        assert!(d.remaining <= p.capacity());
        let p = Policy::new(1, i64::MAX, 0).unwrap();
        assert!(p.decide(0, 0, 1).allowed);
        assert!(!p.decide(p.decide(0, 0, 1).tat, 0, 1).allowed);
    }
}
