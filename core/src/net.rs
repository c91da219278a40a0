//! Client addresses as rate-limit keys.
//!
//! One IPv4 address is one key. An IPv6 client usually holds a whole /64 (and can pick any
//! address in it), so per-address limits would be per-attacker-choice: IPv6 addresses are keyed by
//! their /64 network. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is the IPv4 address.

use std::net::{IpAddr, Ipv6Addr};

/// The address a per-IP limit counts `ip` under.
pub fn limit_scope(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(s: &str) -> String {
        limit_scope(s.parse().unwrap()).to_string()
    }

    #[test]
    fn ipv4_is_itself_and_ipv6_is_its_64() {
        assert_eq!(scope("203.0.113.7"), "203.0.113.7");
        assert_eq!(scope("::ffff:203.0.113.7"), "203.0.113.7");
        assert_eq!(scope("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::");
        assert_eq!(scope("2001:db8:1:2:ffff::1"), scope("2001:db8:1:2::9"));
        assert_ne!(scope("2001:db8:1:2::1"), scope("2001:db8:1:3::1"));
        assert_eq!(scope("::1"), "::");
    }
}
