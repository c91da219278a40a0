//! Webhook callback URLs and the addresses a deliverer may connect to (the SSRF guard).
//!
//! Registration checks the URL's form ([`check_callback_url`]); delivery checks every address
//! the host resolves to ([`is_blocked`]) and connects only to an allowed one. Blocked: loopback,
//! private, link-local (169.254.169.254, the cloud metadata address, included), carrier-grade
//! NAT, unique-local, multicast, unspecified, benchmarking, documentation and reserved ranges,
//! and IPv6 forms that carry an IPv4 address (IPv4-mapped, IPv4-compatible, IPv4-translated,
//! NAT64, 6to4) when that address is blocked. Teredo is blocked outright (its embedded address is
//! the client's, obfuscated).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Longest callback URL in bytes.
pub const MAX_URL_BYTES: usize = 2048;

/// Why a callback URL was refused (the message names the field, as the API's 22023 errors do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlError {
    TooLong,
    Malformed,
    NotHttps,
    Credentials,
    NoHost,
    BlockedAddress,
}

impl std::fmt::Display for UrlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UrlError::TooLong => "callback_url: at most 2048 bytes",
            UrlError::Malformed => "callback_url: not a valid absolute URL",
            UrlError::NotHttps => "callback_url: must use https",
            UrlError::Credentials => "callback_url: must not carry a user name or password",
            UrlError::NoHost => "callback_url: must name a host",
            UrlError::BlockedAddress => {
                "callback_url: the host is an address in a blocked range (loopback, private, link-local, multicast, reserved)"
            }
        })
    }
}

impl std::error::Error for UrlError {}

/// Checks a callback URL and returns it in normalised form (as the `url` crate serialises it):
/// `https`, no user name or password, at most [`MAX_URL_BYTES`], a host that is a name or an IP
/// literal outside the blocked ranges. A name is checked again, address by address, at delivery.
pub fn check_callback_url(raw: &str) -> Result<String, UrlError> {
    if raw.len() > MAX_URL_BYTES {
        return Err(UrlError::TooLong);
    }
    let u = url::Url::parse(raw).map_err(|_| UrlError::Malformed)?;
    if u.scheme() != "https" {
        return Err(UrlError::NotHttps);
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(UrlError::Credentials);
    }
    match u.host() {
        None => return Err(UrlError::NoHost),
        Some(url::Host::Domain("")) => return Err(UrlError::NoHost),
        Some(url::Host::Ipv4(ip)) if is_blocked(IpAddr::V4(ip)) => {
            return Err(UrlError::BlockedAddress)
        }
        Some(url::Host::Ipv6(ip)) if is_blocked(IpAddr::V6(ip)) => {
            return Err(UrlError::BlockedAddress)
        }
        Some(_) => {}
    }
    let out = u.to_string();
    if out.len() > MAX_URL_BYTES {
        return Err(UrlError::TooLong);
    }
    Ok(out)
}

/// The IP literal a URL's host is, if it is one (`None` for a name).
pub fn host_ip(u: &url::Url) -> Option<IpAddr> {
    match u.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

fn in_v6(ip: Ipv6Addr, net: [u16; 8], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    (u128::from(ip) & mask) == (u128::from(Ipv6Addr::from(net)) & mask)
}

/// IPv4 ranges a webhook may never reach.
const BLOCKED_V4: &[([u8; 4], u32)] = &[
    ([0, 0, 0, 0], 8),       // "this network", unspecified
    ([10, 0, 0, 0], 8),      // private
    ([100, 64, 0, 0], 10),   // carrier-grade NAT
    ([127, 0, 0, 0], 8),     // loopback
    ([169, 254, 0, 0], 16),  // link-local, cloud metadata (169.254.169.254)
    ([172, 16, 0, 0], 12),   // private
    ([192, 0, 0, 0], 24),    // IETF protocol assignments
    ([192, 0, 2, 0], 24),    // documentation
    ([192, 88, 99, 0], 24),  // 6to4 relay anycast
    ([192, 168, 0, 0], 16),  // private
    ([198, 18, 0, 0], 15),   // benchmarking
    ([198, 51, 100, 0], 24), // documentation
    ([203, 0, 113, 0], 24),  // documentation
    ([224, 0, 0, 0], 4),     // multicast
    ([240, 0, 0, 0], 4),     // reserved, broadcast
];

/// IPv6 ranges a webhook may never reach (forms that embed an IPv4 address are handled apart).
const BLOCKED_V6: &[([u16; 8], u32)] = &[
    ([0, 0, 0, 0, 0, 0, 0, 0], 128),         // unspecified
    ([0, 0, 0, 0, 0, 0, 0, 1], 128),         // loopback
    ([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48),  // NAT64 local use
    ([0x100, 0, 0, 0, 0, 0, 0, 0], 64),      // discard
    ([0x2001, 0, 0, 0, 0, 0, 0, 0], 32),     // Teredo
    ([0x2001, 0x2, 0, 0, 0, 0, 0, 0], 48),   // benchmarking
    ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), // documentation
    ([0x2001, 0x10, 0, 0, 0, 0, 0, 0], 28),  // ORCHID
    ([0x2001, 0x20, 0, 0, 0, 0, 0, 0], 28),  // ORCHIDv2
    ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20),     // documentation
    ([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16),     // segment routing
    ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),      // unique-local
    ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),     // link-local
    ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10),     // site-local (deprecated)
    ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8),      // multicast
];

/// The IPv4 address an IPv6 address carries, for the forms that carry one: IPv4-mapped
/// (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), IPv4-translated (`::ffff:0:a.b.c.d`),
/// NAT64 (`64:ff9b::a.b.c.d`) and 6to4 (`2002:AABB:CCDD::/48`).
pub fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if in_v6(ip, [0, 0, 0, 0, 0, 0xffff, 0, 0], 96)
        || in_v6(ip, [0, 0, 0, 0, 0, 0, 0, 0], 96)
        || in_v6(ip, [0, 0, 0, 0, 0xffff, 0, 0, 0], 96)
        || in_v6(ip, [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96)
    {
        return Some(low);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

/// Whether a webhook delivery must never connect to `ip`.
pub fn is_blocked(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => BLOCKED_V4.iter().any(|(n, p)| in_v4(v4, *n, *p)),
        IpAddr::V6(v6) => {
            if BLOCKED_V6.iter().any(|(n, p)| in_v6(v6, *n, *p)) {
                return true;
            }
            match embedded_v4(v6) {
                Some(v4) => is_blocked(IpAddr::V4(v4)),
                None => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(s: &str) -> bool {
        is_blocked(s.parse().unwrap())
    }

    #[test]
    fn one_case_per_blocked_range() {
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.255.255.255",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "::ffff:0:192.168.0.1",
            "64:ff9b::10.0.0.1",
            "64:ff9b:1::1",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::1",
            "2001::1",
            "2001:db8::1",
            "100::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "ff0e::1",
        ] {
            assert!(blocked(ip), "{ip} should be blocked");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "169.253.255.255",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "2002:0808:0808::1",
        ] {
            assert!(!blocked(ip), "{ip} should pass");
        }
    }

    #[test]
    fn embedded_forms() {
        let v6 = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        let v4 = |s: &str| Some(s.parse::<Ipv4Addr>().unwrap());
        assert_eq!(embedded_v4(v6("::ffff:1.2.3.4")), v4("1.2.3.4"));
        assert_eq!(embedded_v4(v6("::ffff:0:1.2.3.4")), v4("1.2.3.4"));
        assert_eq!(embedded_v4(v6("64:ff9b::1.2.3.4")), v4("1.2.3.4"));
        assert_eq!(embedded_v4(v6("2002:102:304::")), v4("1.2.3.4"));
        assert_eq!(embedded_v4(v6("2606:4700::1")), None);
    }

    #[test]
    fn callback_urls() {
        let ok = |s: &str| check_callback_url(s);
        assert_eq!(
            ok("https://hooks.example.com/a?b=c").as_deref(),
            Ok("https://hooks.example.com/a?b=c")
        );
        assert_eq!(
            ok("HTTPS://Hooks.Example.COM:8443").as_deref(),
            Ok("https://hooks.example.com:8443/")
        );
        assert!(
            ok("https://localhost:9/x").is_ok(),
            "names are checked at delivery"
        );
        assert!(ok("https://8.8.8.8/").is_ok());
        assert!(ok("https://[2606:4700:4700::1111]/").is_ok());
        assert_eq!(ok("http://example.com/"), Err(UrlError::NotHttps));
        assert_eq!(ok("ftp://example.com/"), Err(UrlError::NotHttps));
        assert_eq!(ok("example.com/hook"), Err(UrlError::Malformed));
        assert_eq!(ok(""), Err(UrlError::Malformed));
        assert_eq!(ok("https://"), Err(UrlError::Malformed));
        assert_eq!(ok("https://user@example.com/"), Err(UrlError::Credentials));
        assert_eq!(ok("https://u:p@example.com/"), Err(UrlError::Credentials));
        assert_eq!(ok("https://:p@example.com/"), Err(UrlError::Credentials));
        let long = format!("https://example.com/{}", "a".repeat(2049));
        assert_eq!(ok(&long), Err(UrlError::TooLong));
        let edge = format!("https://example.com/{}", "a".repeat(2048 - 20));
        assert_eq!(edge.len(), 2048);
        assert!(ok(&edge).is_ok());
        for bad in [
            "https://127.0.0.1/",
            "https://127.1/",
            "https://2130706433/",
            "https://0x7f.0.0.1/",
            "https://0/",
            "https://10.0.0.1/",
            "https://100.64.1.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://172.16.5.4/",
            "https://192.168.0.1/",
            "https://198.18.0.1/",
            "https://224.0.0.1/",
            "https://240.0.0.1/",
            "https://[::1]/",
            "https://[::]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:a9fe:a9fe]/",
            "https://[64:ff9b::7f00:1]/",
            "https://[2002:7f00:1::]/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://[ff02::1]/",
        ] {
            assert_eq!(ok(bad), Err(UrlError::BlockedAddress), "{bad}");
        }
        assert!(UrlError::BlockedAddress
            .to_string()
            .starts_with("callback_url: "));
    }

    /// Red-team probes: odd IPv4 notations, IPv6 forms carrying a blocked IPv4 address, a
    /// trailing dot, whitespace and control characters, userinfo and fragment tricks.
    #[test]
    fn odd_notations_of_blocked_hosts_are_refused() {
        for bad in [
            "https://0x7f.1/",
            "https://0177.0.0.1/",
            "https://0x7f000001/",
            "https://127.0.0.1./",
            "https://0.0.0.0/",
            "https://%31%32%37.0.0.1/",
            "https://\t127.0.0.1/",
            " https://127.0.0.1/ ",
            "https://127.0.0\n.1/",
            "https://[::ffff:7f00:1]/",
            "https://[::7f00:1]/",
            "https://[0:0:0:0:0:ffff:127.0.0.1]/",
            "https://[::ffff:0:7f00:1]/",
            "https://[64:ff9b::127.0.0.1]/",
            "https://[2002:a9fe:a9fe::]/",
            "https://[::ffff:100.100.100.200]/",
            "https://[fd00:ec2::254]/",
            "https://[::]:443/",
            "https://169.254.169.254:443/",
            "https://0251.0376.0251.0376/",
            "https://１２７.０.０.１/",
            "https://127。0。0。1/",
        ] {
            assert_eq!(
                check_callback_url(bad),
                Err(UrlError::BlockedAddress),
                "{bad:?}"
            );
        }
        for creds in [
            "https://a@b.example/",
            "https://evil.example%40127.0.0.1@x.example/",
        ] {
            assert_eq!(
                check_callback_url(creds),
                Err(UrlError::Credentials),
                "{creds}"
            );
        }
        // the fragment is not the host: this one goes to evil.example (a name, checked at delivery)
        let u = check_callback_url("https://evil.example#@127.0.0.1/").unwrap();
        assert_eq!(
            url::Url::parse(&u).unwrap().host_str(),
            Some("evil.example")
        );
        assert_eq!(
            check_callback_url("https://exa mple.com/"),
            Err(UrlError::Malformed)
        );
    }
}
