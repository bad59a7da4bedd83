//! Where webhook requests may go: nowhere internal.
//!
//! An admin registers a URL and the server POSTs to it, so without a check an admin token (or a
//! stolen one) would reach the loopback interface, the internal network and the cloud metadata
//! service (169.254.169.254) from inside. Unless `BOOKSTORE_WEBHOOK_ALLOW_PRIVATE=true`:
//! - at registration (create and update), a literal address must be public, and a host name
//!   must resolve, only to public addresses ([`check_destination`]);
//! - at delivery, the name is resolved again by [`GuardedResolver`], which hands the HTTP client
//!   only the addresses that pass, so the connection goes to an address that was checked even if
//!   the name now points inside (DNS rebinding); literal addresses are checked again too
//!   ([`check_literal`]), since a stored URL may predate the rule.
//!
//! [`forbidden`] is the one classification, a pure function.

use crate::error::FieldError;
use crate::webhooks::service::check_url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// Longest wait for a name to resolve at registration.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why `addr` must not be a webhook destination (`None`: it is public).
pub fn forbidden(addr: IpAddr) -> Option<&'static str> {
    match addr {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(addr: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = addr.octets();
    Some(match (a, b, c) {
        (0, _, _) => "unspecified",
        (127, _, _) => "loopback",
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => "private",
        (169, 254, _) => "link-local",
        (100, 64..=127, _) => "shared (carrier-grade NAT)",
        (192, 0, 0) | (198, 18..=19, _) => "reserved",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "reserved",
        _ => return None,
    })
}

fn forbidden_v6(addr: Ipv6Addr) -> Option<&'static str> {
    if addr.is_unspecified() {
        return Some("unspecified");
    }
    if addr.is_loopback() {
        return Some("loopback");
    }
    // IPv4 inside IPv6: mapped (::ffff:a.b.c.d), NAT64 (64:ff9b::a.b.c.d) and 6to4
    // (2002:aabb:ccdd::) reach the embedded IPv4 address, so it decides.
    if let Some(v4) = addr.to_ipv4_mapped() {
        return forbidden_v4(v4);
    }
    let s = addr.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return forbidden_v4(embedded(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return forbidden_v4(embedded(s[1], s[2]));
    }
    Some(match s[0] {
        // IPv4-compatible (::a.b.c.d), deprecated.
        0 if s[1..6] == [0; 5] => "reserved",
        0xfe80..=0xfebf => "link-local",
        // Unique local (fc00::/7) and the deprecated site-local (fec0::/10).
        0xfc00..=0xfdff | 0xfec0..=0xfeff => "private",
        0xff00..=0xffff => "multicast",
        _ => return None,
    })
}

/// The host of a checked URL as an address, when it is a literal one.
fn literal_host(url: &reqwest::Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// Checks a (syntactically valid) URL's literal address at delivery; the error says why it is
/// refused, without the URL (which may carry credentials).
pub fn check_literal(url: &str, allow_private: bool) -> Result<(), String> {
    if allow_private {
        return Ok(());
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("invalid URL: {e}"))?;
    match literal_host(&parsed).and_then(forbidden) {
        Some(why) => Err(format!(
            "refused: the endpoint's address is {why} (set BOOKSTORE_WEBHOOK_ALLOW_PRIVATE to allow)"
        )),
        None => Ok(()),
    }
}

/// Checks a URL to be registered: its syntax ([`check_url`]), then, unless `allow_private`, where
/// it leads: a literal address must be public; a name must resolve, and only to public
/// addresses. Returns the normalised URL. Errors name `url` and never repeat it.
pub async fn check_destination(raw: &str, allow_private: bool) -> Result<String, FieldError> {
    let url = check_url(raw)?;
    if allow_private {
        return Ok(url);
    }
    let refuse = |message: String| FieldError::new("url", message);
    let parsed = reqwest::Url::parse(&url).map_err(|e| refuse(format!("is not valid ({e})")))?;
    if let Some(addr) = literal_host(&parsed) {
        return match forbidden(addr) {
            Some(why) => Err(refuse(format!(
                "must not point at a {why} address; webhooks go to public hosts only"
            ))),
            None => Ok(url),
        };
    }
    let host = parsed.host_str().unwrap_or_default().to_owned();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let resolved = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port)))
        .await
        .ok()
        .and_then(Result::ok)
        .map(Iterator::collect::<Vec<SocketAddr>>)
        .unwrap_or_default();
    if resolved.is_empty() {
        return Err(refuse("names a host that does not resolve".into()));
    }
    if let Some(why) = resolved.iter().find_map(|a| forbidden(a.ip())) {
        return Err(refuse(format!(
            "names a host that resolves to a {why} address; webhooks go to public hosts only"
        )));
    }
    Ok(url)
}

/// The webhook client's resolver: resolves as the system does and keeps only public addresses,
/// so the client can only connect to an address that passed [`forbidden`].
#[derive(Debug, Clone, Copy, Default)]
pub struct GuardedResolver;

/// The addresses of `addrs` a webhook may connect to; an error when none is left.
pub fn keep_public(name: &str, addrs: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, String> {
    if addrs.is_empty() {
        return Err(format!("{name} does not resolve"));
    }
    let mut refused = None;
    let public: Vec<SocketAddr> = addrs
        .into_iter()
        .filter(|a| match forbidden(a.ip()) {
            Some(why) => {
                refused = Some(why);
                false
            }
            None => true,
        })
        .collect();
    match (public.is_empty(), refused) {
        (true, Some(why)) => Err(format!(
            "refused: {name} resolves to a {why} address (set BOOKSTORE_WEBHOOK_ALLOW_PRIVATE to allow)"
        )),
        _ => Ok(public),
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public = keep_public(&host, addrs)?;
            let addrs: Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

/// The HTTP client of webhook deliveries, with the rule it applies.
#[derive(Clone)]
pub struct WebhookClient {
    pub http: reqwest::Client,
    pub allow_private: bool,
}

impl WebhookClient {
    /// No redirects (a 3xx is a failed attempt, and a redirect could lead inside), no proxy from
    /// the environment, and the guarded resolver unless private destinations are allowed.
    pub fn new(timeout: Duration, allow_private: bool) -> Result<WebhookClient, String> {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("bookstore-webhooks/", env!("CARGO_PKG_VERSION")));
        if !allow_private {
            builder = builder.dns_resolver(std::sync::Arc::new(GuardedResolver));
        }
        let http = builder
            .build()
            .map_err(|e| format!("cannot build the webhook HTTP client: {e}"))?;
        Ok(WebhookClient {
            http,
            allow_private,
        })
    }
}

/// `url` without its user name and password, for showing stored URLs that predate the rule
/// against credentials.
pub fn without_credentials(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.into()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_classified() {
        let cases: &[(&str, Option<&str>)] = &[
            ("127.0.0.1", Some("loopback")),
            ("127.255.0.9", Some("loopback")),
            ("0.0.0.0", Some("unspecified")),
            ("10.0.0.1", Some("private")),
            ("172.16.0.1", Some("private")),
            ("172.31.255.255", Some("private")),
            ("192.168.1.1", Some("private")),
            ("169.254.169.254", Some("link-local")),
            ("100.64.0.1", Some("shared (carrier-grade NAT)")),
            ("100.127.255.255", Some("shared (carrier-grade NAT)")),
            ("224.0.0.1", Some("multicast")),
            ("255.255.255.255", Some("reserved")),
            ("172.15.255.255", None),
            ("172.32.0.1", None),
            ("100.63.255.255", None),
            ("100.128.0.1", None),
            ("8.8.8.8", None),
            ("93.184.216.34", None),
            ("::", Some("unspecified")),
            ("::1", Some("loopback")),
            ("fe80::1", Some("link-local")),
            ("febf::1", Some("link-local")),
            ("fc00::1", Some("private")),
            ("fd12:3456::1", Some("private")),
            ("ff02::1", Some("multicast")),
            ("::ffff:127.0.0.1", Some("loopback")),
            ("::ffff:169.254.169.254", Some("link-local")),
            ("::ffff:10.1.2.3", Some("private")),
            ("::ffff:8.8.8.8", None),
            ("::127.0.0.1", Some("reserved")),
            ("64:ff9b::a9fe:a9fe", Some("link-local")),
            ("64:ff9b::808:808", None),
            ("2002:7f00:1::", Some("loopback")),
            ("2001:4860:4860::8888", None),
            ("2606:4700::1111", None),
        ];
        for (addr, want) in cases {
            let ip: IpAddr = addr.parse().unwrap();
            assert_eq!(forbidden(ip), *want, "{addr}");
        }
    }

    #[test]
    fn literal_hosts_are_checked_at_delivery() {
        assert!(check_literal("http://127.0.0.1:9000/x", false).is_err());
        assert!(check_literal("http://[::1]/", false).is_err());
        assert!(check_literal("http://[::ffff:a9fe:a9fe]/", false).is_err());
        assert!(check_literal("http://127.0.0.1:9000/x", true).is_ok());
        assert!(check_literal("http://8.8.8.8/", false).is_ok());
        // Names are the resolver's job.
        assert!(check_literal("http://localhost/", false).is_ok());
        let err = check_literal("http://u:hunter2@10.0.0.1/", false).unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn the_resolver_keeps_only_public_addresses() {
        let sa = |s: &str| -> SocketAddr { s.parse().unwrap() };
        assert_eq!(
            keep_public("h", vec![sa("10.0.0.1:0"), sa("8.8.8.8:0")]),
            Ok(vec![sa("8.8.8.8:0")])
        );
        let err = keep_public("h", vec![sa("127.0.0.1:0"), sa("[::1]:0")]).unwrap_err();
        assert!(err.contains("loopback"), "{err}");
        assert!(keep_public("h", vec![]).is_err());
    }

    #[test]
    fn credentials_are_stripped_for_display() {
        assert_eq!(
            without_credentials("https://u:pw@example.com/x"),
            "https://example.com/x"
        );
        assert_eq!(
            without_credentials("https://example.com/x"),
            "https://example.com/x"
        );
    }

    #[tokio::test]
    async fn registration_refuses_internal_destinations() {
        for url in [
            "http://127.0.0.1:8080/",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://localhost/",
            "http://user:pw@example.com/",
        ] {
            let err = check_destination(url, false).await.unwrap_err();
            assert_eq!(err.field, "url", "{url}");
            assert!(!err.message.contains("pw@"), "{}", err.message);
        }
        assert_eq!(
            check_destination("http://127.0.0.1:8080", true).await,
            Ok("http://127.0.0.1:8080/".to_owned())
        );
        assert_eq!(
            check_destination("http://8.8.8.8/hook", false).await,
            Ok("http://8.8.8.8/hook".to_owned())
        );
    }
}
