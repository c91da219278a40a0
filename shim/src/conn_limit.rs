//! Connections per client address: one address (an IPv6 client by its /64) may hold at most a
//! configured number at once, so it cannot take every slot of `max_connections`. Peers that are
//! trusted proxies are exempt (every client behind them shares their address).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use ama_core::net::limit_scope;

/// Open connections per address scope.
pub struct ConnLimit {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection; its slot is given back when it drops.
pub struct ConnSlot {
    limit: Arc<ConnLimit>,
    scope: IpAddr,
}

impl ConnLimit {
    pub fn new(max: usize) -> Arc<ConnLimit> {
        Arc::new(ConnLimit {
            max: max.max(1),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for a connection from `peer`, or `None` when its address holds the maximum.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<ConnSlot> {
        let scope = limit_scope(peer);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(scope).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(ConnSlot {
            limit: self.clone(),
            scope,
        })
    }

    /// Connections open from `peer`'s address scope.
    pub fn open(&self, peer: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(&limit_scope(peer)).copied().unwrap_or(0)
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut open = self.limit.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.scope) {
            *n -= 1;
            if *n == 0 {
                // a scope with no connection costs no memory
                open.remove(&self.scope);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_gets_at_most_max_and_slots_come_back() {
        let l = ConnLimit::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let s1 = l.admit(a).expect("first");
        let _s2 = l.admit(a).expect("second");
        assert!(l.admit(a).is_none(), "third from the same address");
        assert!(l.admit(b).is_some(), "another address is not affected");
        drop(s1);
        assert_eq!(l.open(a), 1);
        assert!(
            l.admit(a).is_some(),
            "a closed connection gives its slot back"
        );
    }

    #[test]
    fn an_ipv6_client_counts_by_its_64() {
        let l = ConnLimit::new(1);
        let x: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let y: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let z: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let _s = l.admit(x).expect("first");
        assert!(l.admit(y).is_none(), "same /64");
        assert!(l.admit(z).is_some(), "another /64");
    }

    #[test]
    fn empty_scopes_are_forgotten() {
        let l = ConnLimit::new(3);
        for i in 0..100u8 {
            drop(l.admit(IpAddr::from([198, 51, 100, i])));
        }
        assert!(l.open.lock().unwrap().is_empty());
    }
}
