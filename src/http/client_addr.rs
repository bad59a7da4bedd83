//! The address of the client behind a request, for throttles and logs.
//!
//! The TCP peer is the client unless it is one of the operator's trusted proxies
//! (`BOOKSTORE_TRUSTED_PROXIES`). Only then is `X-Forwarded-For` read, from the right: each proxy
//! appends the address it received the request from, so the right-most entry that is not itself
//! a trusted proxy is the first one no trusted party vouches for, and the client. Entries further
//! left were written by that client and may be anything. A peer that is not a trusted proxy
//! cannot move its address by sending the header, so it cannot dodge a per-address throttle.

use actix_web::http::header::HeaderMap;
use actix_web::HttpRequest;
use ipnet::IpNet;
use std::net::IpAddr;

/// The proxies whose `X-Forwarded-For` is believed: addresses and CIDR blocks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> TrustedProxies {
        TrustedProxies(nets)
    }

    /// Parses a comma-separated list of addresses (`10.0.0.5`, `::1`) and blocks (`10.0.0.0/8`);
    /// the error names the first entry that is neither.
    pub fn parse(list: &str) -> Result<TrustedProxies, String> {
        list.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| entry.to_owned())
            })
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        self.0.iter().any(|net| net.contains(&addr))
    }
}

/// An IPv4 address seen through an IPv6 socket (`::ffff:a.b.c.d`) as the IPv4 address, so that
/// one client has one address whichever way it connected.
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The client address given the TCP peer and the `X-Forwarded-For` header values in the order
/// they arrived (pure, for tests). `None` only when the peer is unknown.
pub fn resolve(
    peer: Option<IpAddr>,
    forwarded_for: &[&str],
    trusted: &TrustedProxies,
) -> Option<IpAddr> {
    let mut client = canonical(peer?);
    if !trusted.contains(client) {
        return Some(client);
    }
    let hops = forwarded_for
        .iter()
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .rev();
    for hop in hops {
        // An entry that is not an address ends the walk: the hop that wrote it is the client
        // as far as anyone trusted can tell.
        let Some(addr) = parse_hop(hop) else {
            break;
        };
        client = canonical(addr);
        if !trusted.contains(client) {
            break;
        }
    }
    Some(client)
}

/// An `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(addr) = hop.parse::<IpAddr>() {
        return Some(addr);
    }
    hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip())
}

/// The client address of `req` (see the module docs); `None` when the peer is unknown (as in
/// requests built without a connection).
pub fn client_addr(req: &HttpRequest, trusted: &TrustedProxies) -> Option<IpAddr> {
    let peer = req.peer_addr().map(|addr| addr.ip());
    let values = forwarded_for(req.headers());
    resolve(peer, &values, trusted)
}

fn forwarded_for(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all("x-forwarded-for")
        .filter_map(|value| value.to_str().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn trusted(list: &str) -> TrustedProxies {
        TrustedProxies::parse(list).unwrap()
    }

    #[test]
    fn parses_addresses_and_blocks() {
        let t = trusted(" 10.0.0.0/8, 192.168.1.7 ,::1,");
        assert!(t.contains(ip("10.200.3.4")));
        assert!(t.contains(ip("192.168.1.7")));
        assert!(!t.contains(ip("192.168.1.8")));
        assert!(t.contains(ip("::1")));
        assert!(t.contains(ip("::ffff:10.1.1.1")));
        assert!(trusted("").is_empty());
        assert_eq!(
            TrustedProxies::parse("10.0.0.1, proxy.local"),
            Err("proxy.local".to_owned())
        );
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
    }

    #[test]
    fn the_header_is_ignored_unless_the_peer_is_trusted() {
        let none = TrustedProxies::default();
        assert_eq!(
            resolve(Some(ip("203.0.113.9")), &["1.2.3.4"], &none),
            Some(ip("203.0.113.9"))
        );
        let t = trusted("10.0.0.1");
        assert_eq!(
            resolve(Some(ip("203.0.113.9")), &["1.2.3.4"], &t),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(resolve(None, &["1.2.3.4"], &t), None);
        assert_eq!(
            resolve(Some(ip("::ffff:203.0.113.9")), &[], &none),
            Some(ip("203.0.113.9"))
        );
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_hop_is_the_client() {
        let t = trusted("10.0.0.0/8");
        // The client spoofs a left entry; the proxy appends the real one.
        assert_eq!(
            resolve(Some(ip("10.0.0.1")), &["6.6.6.6, 198.51.100.4"], &t),
            Some(ip("198.51.100.4"))
        );
        // Two trusted hops, across two header lines.
        assert_eq!(
            resolve(
                Some(ip("10.0.0.1")),
                &["6.6.6.6, 198.51.100.4", "10.0.0.2"],
                &t
            ),
            Some(ip("198.51.100.4"))
        );
        // Ports and IPv6.
        assert_eq!(
            resolve(Some(ip("10.0.0.1")), &["[2001:db8::1]:443"], &t),
            Some(ip("2001:db8::1"))
        );
        // No header: the proxy itself.
        assert_eq!(resolve(Some(ip("10.0.0.1")), &[], &t), Some(ip("10.0.0.1")));
        // Garbage stops the walk at the hop that wrote it.
        assert_eq!(
            resolve(Some(ip("10.0.0.1")), &["1.1.1.1, junk, 10.0.0.3"], &t),
            Some(ip("10.0.0.3"))
        );
        // Every hop trusted: the left-most.
        assert_eq!(
            resolve(Some(ip("10.0.0.1")), &["10.0.0.9"], &t),
            Some(ip("10.0.0.9"))
        );
    }
}
