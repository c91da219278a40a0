//! The open connections, at most `--max-connections`. When every slot is taken, the accept loop
//! does not leave new clients in the kernel's backlog behind idle ones: it sheds the connection
//! that has been idle longest (no request in flight; one still in its TLS handshake or before its
//! first request counts as idle since it opened) and gives its slot to the new one; failing that,
//! the one waiting longest for request bodies (a slow-body client: nothing of its requests has
//! reached the database). Only when every connection has a request at work does a new one wait.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::idle::Activity;

/// The table of open connections.
pub struct Conns {
    max: usize,
    inner: Mutex<Inner>,
    /// Woken when a slot may have come free.
    freed: Notify,
}

struct Inner {
    next_id: u64,
    open: HashMap<u64, Entry>,
}

struct Entry {
    activity: Arc<Activity>,
    shed: Arc<Notify>,
}

/// One open connection's slot; dropping it frees the slot.
pub struct Conn {
    table: Arc<Conns>,
    id: u64,
    /// What the connection is doing (requests in flight, last activity).
    pub activity: Arc<Activity>,
    /// Notified when the connection is shed for a new one: it must close.
    pub shed: Arc<Notify>,
}

/// How a slot was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// A slot was free.
    Free,
    /// The longest-idle connection was shed for this one.
    Shed,
}

impl Conns {
    pub fn new(max: usize) -> Arc<Conns> {
        Arc::new(Conns {
            max: max.max(1),
            inner: Mutex::new(Inner {
                next_id: 0,
                open: HashMap::new(),
            }),
            freed: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Connections holding a slot.
    pub fn open(&self) -> usize {
        self.lock().open.len()
    }

    /// A slot now: a free one, or the longest-idle connection's (which is told to close and
    /// loses its slot at once). `None` when every connection has a request in flight.
    pub fn try_admit(self: &Arc<Self>) -> Option<(Conn, Admission)> {
        let mut inner = self.lock();
        let admission = if inner.open.len() < self.max {
            Admission::Free
        } else {
            // the longest idle first; failing that, the one waiting longest for request bodies
            let (id, _) = inner
                .open
                .iter()
                .filter_map(|(id, e)| {
                    let a = &e.activity;
                    a.idle_since()
                        .map(|t| (0, t))
                        .or_else(|| a.receiving_since().map(|t| (1, t)))
                        .map(|k| (*id, k))
                })
                .min_by_key(|(_, k)| *k)?;
            if let Some(victim) = inner.open.remove(&id) {
                victim.shed.notify_one();
            }
            Admission::Shed
        };
        let id = inner.next_id;
        inner.next_id += 1;
        let conn = Conn {
            table: self.clone(),
            id,
            activity: Activity::new(),
            shed: Arc::new(Notify::new()),
        };
        inner.open.insert(
            id,
            Entry {
                activity: conn.activity.clone(),
                shed: conn.shed.clone(),
            },
        );
        Some((conn, admission))
    }

    /// Waits for a slot (see [`Conns::try_admit`]); while every connection is busy it retries
    /// when one closes, and at least every `poll` (a request ending makes its connection
    /// sheddable without waking anyone).
    pub async fn admit(self: &Arc<Self>, poll: Duration) -> (Conn, Admission) {
        loop {
            let freed = self.freed.notified();
            if let Some(x) = self.try_admit() {
                return x;
            }
            let _ = tokio::time::timeout(poll, freed).await;
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // absent when the connection was shed: its slot was handed over already
        let removed = self.table.lock().open.remove(&self.id).is_some();
        if removed {
            self.table.freed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_table_sheds_the_longest_idle_connection() {
        let t = Conns::new(3);
        let (oldest, a) = t.try_admit().expect("free");
        assert_eq!(a, Admission::Free);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let (busy, _) = t.try_admit().expect("free");
        let _request = busy.activity.begin();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let (newer, _) = t.try_admit().expect("free");
        assert_eq!(t.open(), 3);

        // full: the longest-idle one (not the busy one, which is older than `newer`) is shed
        let (fourth, a) = t.try_admit().expect("shed one");
        assert_eq!(a, Admission::Shed);
        assert_eq!(
            t.open(),
            3,
            "the shed connection's slot went to the new one"
        );
        assert!(
            tokio::time::timeout(Duration::from_millis(50), oldest.shed.notified())
                .await
                .is_ok(),
            "the oldest idle connection is told to close"
        );
        // dropping the shed connection does not free a second slot
        drop(oldest);
        assert_eq!(t.open(), 3);

        // next is `newer` (the busy one is never shed), then `fourth`
        let (_fifth, _) = t.try_admit().expect("shed one");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), newer.shed.notified())
                .await
                .is_ok()
        );
        let (_sixth, _) = t.try_admit().expect("shed one");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), fourth.shed.notified())
                .await
                .is_ok()
        );
        drop((newer, fourth));
        assert_eq!(t.open(), 3);
    }

    #[tokio::test]
    async fn when_every_connection_is_busy_a_new_one_waits_for_a_slot() {
        let t = Conns::new(1);
        let (only, _) = t.try_admit().expect("free");
        let request = only.activity.begin();
        assert!(t.try_admit().is_none(), "nothing idle to shed");
        let waiter = {
            let t = t.clone();
            tokio::spawn(async move { t.admit(Duration::from_millis(10)).await.1 })
        };
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(
            !waiter.is_finished(),
            "waits while the only connection is busy"
        );
        // the request ends: the connection is idle, and the waiting one takes its slot
        drop(request);
        let a = tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("admitted")
            .expect("task");
        assert_eq!(a, Admission::Shed);

        // a closing connection wakes a waiter at once
        let t = Conns::new(1);
        let (only, _) = t.try_admit().expect("free");
        let request = only.activity.begin();
        let waiter = {
            let t = t.clone();
            tokio::spawn(async move { t.admit(Duration::from_secs(60)).await.1 })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(request);
        drop(only);
        let a = tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("woken by the close")
            .expect("task");
        assert_eq!(a, Admission::Free);
    }
}
