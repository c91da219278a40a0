//! Route budgets: one route may hold at most a share of the database pool at once, so a slow
//! route (200 sends queued on one thread's row lock, a burst of event polls) cannot take every
//! pooled connection and starve the others. A request past its route's budget waits for a slot
//! within its own database deadline, then gets 503 with `Retry-After` like a full pool.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Concurrent database calls per route.
pub struct RouteBudgets {
    per_route: usize,
    routes: HashMap<&'static str, Arc<Semaphore>>,
}

/// How many pooled connections one route may hold: `share_percent` of the pool, at least one,
/// and at most the pool itself.
pub fn per_route(pool_size: usize, share_percent: u8) -> usize {
    let share = usize::from(share_percent.min(100));
    (pool_size * share / 100).clamp(1, pool_size.max(1))
}

impl RouteBudgets {
    /// A budget of `per_route` concurrent calls for each of `names`.
    pub fn new(names: impl IntoIterator<Item = &'static str>, per_route: usize) -> RouteBudgets {
        let per_route = per_route.max(1);
        let routes = names
            .into_iter()
            .map(|n| (n, Arc::new(Semaphore::new(per_route))))
            .collect();
        RouteBudgets { per_route, routes }
    }

    pub fn per_route(&self) -> usize {
        self.per_route
    }

    /// Waits for a slot of `route`'s budget. A route the table does not know has no budget of
    /// its own (`None` at once): only the pool bounds it.
    pub async fn enter(&self, route: &str) -> Option<OwnedSemaphorePermit> {
        let sem = self.routes.get(route)?.clone();
        sem.acquire_owned().await.ok()
    }

    /// Calls of `route` in the database now.
    pub fn in_use(&self, route: &str) -> usize {
        self.routes
            .get(route)
            .map_or(0, |s| self.per_route - s.available_permits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_route_gets_its_share_of_the_pool() {
        assert_eq!(per_route(16, 75), 12);
        assert_eq!(per_route(16, 100), 16);
        assert_eq!(per_route(16, 1), 1, "at least one");
        assert_eq!(per_route(1, 75), 1);
        assert_eq!(per_route(4, 250), 4, "never more than the pool");
    }

    #[tokio::test]
    async fn a_full_route_waits_and_another_route_does_not() {
        let b = RouteBudgets::new(["slow", "cheap"], 2);
        let _s1 = b.enter("slow").await.expect("known route");
        let s2 = b.enter("slow").await.expect("known route");
        assert_eq!(b.in_use("slow"), 2);
        // the slow route is full: a third call waits
        assert!(
            tokio::time::timeout(Duration::from_millis(50), b.enter("slow"))
                .await
                .is_err(),
            "a third slow call waits"
        );
        // another route is not affected
        assert!(
            tokio::time::timeout(Duration::from_millis(50), b.enter("cheap"))
                .await
                .is_ok(),
            "the cheap route has its own budget"
        );
        drop(s2);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), b.enter("slow"))
                .await
                .is_ok(),
            "a finished call gives its slot back"
        );
        assert!(b.enter("unknown").await.is_none());
        assert_eq!(b.in_use("unknown"), 0);
    }
}
