//! Client address and plain-HTTP detection.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// First byte of a TLS record carrying a handshake.
pub const TLS_HANDSHAKE: u8 = 0x16;

/// What a client speaking plain HTTP to the TLS port gets before the connection closes.
pub const PLAIN_HTTP_RESPONSE: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
Content-Type: application/json\r\n\
Content-Length: 66\r\n\
Connection: close\r\n\
\r\n\
{\"code\":\"BAD_REQUEST\",\"message\":\"HTTPS is required on this port\"}\n";

/// Whether the first byte read from a new connection starts a TLS handshake.
pub fn is_tls_handshake(first: &[u8]) -> bool {
    first.first() == Some(&TLS_HANDSHAKE)
}

fn trusted(ip: IpAddr, proxies: &[IpNet]) -> bool {
    let ip = canonical(ip);
    proxies.iter().any(|n| n.contains(&ip))
}

/// IPv4-mapped IPv6 addresses are compared as IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

fn parse_hop(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            s.strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|r| r.parse().ok())
        })
}

/// The client IP: the socket peer, unless the peer is a trusted proxy, in which case the
/// right-most address of `X-Forwarded-For` that is not itself a trusted proxy. A malformed hop
/// stops the walk at the last address known to be good.
pub fn client_ip<'a>(
    peer: IpAddr,
    xff_headers: impl Iterator<Item = &'a str>,
    proxies: &[IpNet],
) -> IpAddr {
    let mut current = canonical(peer);
    if proxies.is_empty() || !trusted(current, proxies) {
        return current;
    }
    let hops: Vec<&str> = xff_headers.flat_map(|h| h.split(',')).collect();
    for hop in hops.iter().rev() {
        if !trusted(current, proxies) {
            return current;
        }
        match parse_hop(hop) {
            Some(ip) => current = canonical(ip),
            None => return current,
        }
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(v: &[&str]) -> Vec<IpNet> {
        v.iter()
            .map(|s| crate::config::parse_net(s).expect("net"))
            .collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn untrusted_peer_ignores_xff() {
        let p = nets(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(ip("203.0.113.9"), ["1.2.3.4"].into_iter(), &p),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), ["1.2.3.4"].into_iter(), &[]),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn trusted_peer_uses_rightmost_untrusted() {
        let p = nets(&["10.0.0.0/8", "192.168.1.1"]);
        // client spoofs a left entry; the right-most untrusted one wins
        let got = client_ip(
            ip("10.0.0.1"),
            ["6.6.6.6, 198.51.100.7, 192.168.1.1"].into_iter(),
            &p,
        );
        assert_eq!(got, ip("198.51.100.7"));
        // several headers are one list
        let got = client_ip(ip("10.0.0.1"), ["6.6.6.6", "198.51.100.8"].into_iter(), &p);
        assert_eq!(got, ip("198.51.100.8"));
        // no header: the proxy itself
        assert_eq!(
            client_ip(ip("10.0.0.1"), std::iter::empty(), &p),
            ip("10.0.0.1")
        );
        // all trusted: the left-most
        assert_eq!(
            client_ip(ip("10.0.0.1"), ["10.1.1.1, 10.2.2.2"].into_iter(), &p),
            ip("10.1.1.1")
        );
    }

    #[test]
    fn malformed_hops_and_formats() {
        let p = nets(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(ip("10.0.0.1"), ["1.1.1.1, garbage"].into_iter(), &p),
            ip("10.0.0.1")
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), ["[2001:db8::1]:443"].into_iter(), &p),
            ip("2001:db8::1")
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), ["1.2.3.4:80"].into_iter(), &p),
            ip("1.2.3.4")
        );
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.1"), ["1.2.3.4"].into_iter(), &p),
            ip("1.2.3.4")
        );
    }

    #[test]
    fn plain_http_detection() {
        assert!(is_tls_handshake(&[0x16, 0x03, 0x01]));
        assert!(!is_tls_handshake(b"GET / HTTP/1.1"));
        assert!(!is_tls_handshake(b""));
        let text = std::str::from_utf8(PLAIN_HTTP_RESPONSE).expect("utf8");
        let (head, body) = text.split_once("\r\n\r\n").expect("head");
        assert!(head.starts_with("HTTP/1.1 400 "));
        assert!(head.contains("Connection: close"));
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|v| v.parse().ok())
            .expect("len");
        assert_eq!(len, body.len());
        let v: serde_json::Value = serde_json::from_str(body.trim_end()).expect("json");
        assert_eq!(v["code"], "BAD_REQUEST");
    }
}
