//! The WebSocket streams' limits: sockets per principal and per client address, typing
//! messages and refused messages per socket, and the bounded send queue.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::limiter::{Limiter, Verdict};

/// Open sockets per key, at most `max` each.
pub struct Slots<K: Hash + Eq + Clone> {
    max: usize,
    open: Mutex<HashMap<K, usize>>,
}

/// One socket's place under a [`Slots`] limit; given back on drop.
pub struct Slot<K: Hash + Eq + Clone> {
    slots: Arc<Slots<K>>,
    key: K,
}

impl<K: Hash + Eq + Clone> Slots<K> {
    pub fn new(max: usize) -> Arc<Slots<K>> {
        Arc::new(Slots {
            max: max.max(1),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for `key`, or `None` when it holds the maximum.
    pub fn take(self: &Arc<Self>, key: K) -> Option<Slot<K>> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(key.clone()).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Slot {
            slots: self.clone(),
            key,
        })
    }

    /// Sockets open for `key`.
    pub fn open(&self, key: &K) -> usize {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(key).copied().unwrap_or(0)
    }
}

impl<K: Hash + Eq + Clone> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// The shim-wide WebSocket state: the socket counts.
pub struct WsLimits {
    /// Per principal (`user:…`, `agent:…`, `visitor:…`).
    pub per_user: Arc<Slots<String>>,
    /// Per client address scope (an IPv6 client by its /64).
    pub per_ip: Arc<Slots<IpAddr>>,
}

impl WsLimits {
    pub fn new(per_user: usize, per_ip: usize) -> WsLimits {
        WsLimits {
            per_user: Slots::new(per_user),
            per_ip: Slots::new(per_ip),
        }
    }

    /// A slot for a socket from `ip` (counted by its scope).
    pub fn admit_ip(&self, ip: IpAddr) -> Option<Slot<IpAddr>> {
        self.per_ip.take(ama_core::net::limit_scope(ip))
    }
}

/// One socket's message budgets: typing messages per second, and refused messages per minute
/// before the socket is closed for abuse.
pub struct Budgets {
    typing: Limiter<()>,
    strikes: Limiter<()>,
}

/// Refused messages a socket may send per minute; one more closes it with 1008.
pub const STRIKES_PER_MIN: u32 = 10;

impl Budgets {
    pub fn new(typing_per_sec: u32) -> Budgets {
        Budgets {
            typing: Limiter::new(
                "ws_typing",
                typing_per_sec.max(1),
                ama_core::gcra::NS_PER_SEC,
                1,
            ),
            strikes: Limiter::per_minute("ws_strikes", STRIKES_PER_MIN, 1),
        }
    }

    /// Counts a typing message; false when over the per-second budget.
    pub fn typing(&self) -> bool {
        self.typing.hit(&()).allowed()
    }

    /// Counts a refused message; false when the socket must be closed for abuse.
    pub fn strike(&self) -> bool {
        let v: Verdict = self.strikes.hit(&());
        v.allowed()
    }
}

/// Why a frame could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// The client does not read fast enough: the queue is full.
    SlowConsumer,
    /// The socket's writer has ended.
    Closed,
}

/// The bounded queue of frames to one client; never waits.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Message>,
}

impl Outbox {
    /// A queue of at most `cap` frames, with its receiving end for the writer.
    pub fn new(cap: usize) -> (Outbox, mpsc::Receiver<Message>) {
        let (tx, rx) = mpsc::channel(cap.max(1));
        (Outbox { tx }, rx)
    }

    /// Queues a text frame.
    pub fn text(&self, s: String) -> Result<(), Full> {
        self.frame(Message::text(s))
    }

    /// Queues a frame.
    pub fn frame(&self, m: Message) -> Result<(), Full> {
        self.tx.try_send(m).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Full::SlowConsumer,
            mpsc::error::TrySendError::Closed(_) => Full::Closed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_count_per_key_and_come_back() {
        let s: Arc<Slots<String>> = Slots::new(2);
        let a = s.take("u".into()).expect("1");
        let _b = s.take("u".into()).expect("2");
        assert!(s.take("u".into()).is_none(), "a third is refused");
        assert!(s.take("v".into()).is_some(), "another key has its own");
        drop(a);
        assert_eq!(s.open(&"u".to_string()), 1);
        assert!(s.take("u".into()).is_some());
    }

    #[test]
    fn ip_slots_count_an_ipv6_client_by_its_64() {
        let l = WsLimits::new(1, 1);
        let _a = l.admit_ip("2001:db8::1".parse().unwrap()).expect("first");
        assert!(l.admit_ip("2001:db8::2".parse().unwrap()).is_none());
        assert!(l.admit_ip("192.0.2.1".parse().unwrap()).is_some());
    }

    #[test]
    fn typing_and_strikes_have_budgets() {
        let b = Budgets::new(2);
        assert!(b.typing() && b.typing());
        assert!(
            !b.typing(),
            "a third typing message in the same second is refused"
        );
        let n = (0..100).take_while(|_| b.strike()).count();
        assert_eq!(n, STRIKES_PER_MIN as usize);
    }

    #[test]
    fn a_full_queue_is_a_slow_consumer() {
        let (o, mut rx) = Outbox::new(2);
        assert_eq!(o.text("a".into()), Ok(()));
        assert_eq!(o.text("b".into()), Ok(()));
        assert_eq!(o.text("c".into()), Err(Full::SlowConsumer));
        assert!(rx.try_recv().is_ok());
        assert_eq!(o.text("d".into()), Ok(()));
        drop(rx);
        assert_eq!(o.text("e".into()), Err(Full::Closed));
    }
}
