//! Login throttling that stops password guessing without locking the owner out.
//!
//! Failed logins are counted, within a sliding window, under three keys:
//! - **(email, client address)**: the tight limit. Guessing one account's password from one
//!   address is stopped after a handful of tries, while the owner, from another address, still
//!   gets in with the right password.
//! - **client address**: a looser limit, for one address spraying many accounts (it must stay
//!   above what an office behind one NAT produces).
//! - **email**: a high ceiling that only an attack from many addresses reaches; past it the
//!   account is refused from everywhere until the window moves on.
//!
//! When any key is over its limit the attempt is refused (429 with `Retry-After`) before the
//! password is checked, and not counted. A successful login clears its (email, address) key
//! only: clearing the email's count would hand a distributed attack a fresh allowance each time
//! the owner logs in.
//!
//! Memory is bounded: each key keeps at most its limit of timestamps, and once [`MAX_KEYS`] keys
//! are tracked, expired ones are swept and then the longest idle are evicted, so an attacker
//! rotating emails or addresses cannot grow the table without bound (only push out the coldest
//! entries). The client address comes from [`crate::http::client_addr`], which believes
//! `X-Forwarded-For` only from trusted proxies.
//!
//! The counters live in this process. Behind a load balancer each replica counts on its own,
//! which multiplies the allowances by the replica count; a shared store would be needed to go
//! further.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys tracked at most; past this, expired and then the longest idle entries are dropped.
pub const MAX_KEYS: usize = 100_000;

/// Failures allowed per key kind within `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Per (email, client address).
    pub per_email_and_address: u32,
    /// Per client address, whatever the emails.
    pub per_address: u32,
    /// Per email, whatever the addresses: only a distributed attack reaches it.
    pub per_email: u32,
    pub window: Duration,
}

impl Limits {
    pub fn of(settings: &crate::config::Settings) -> Limits {
        Limits {
            per_email_and_address: settings.login_max_failures,
            per_address: settings.login_max_failures_per_ip,
            per_email: settings.login_max_failures_per_email,
            window: settings.login_window,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    EmailAndAddress(String, IpAddr),
    Address(IpAddr),
    Email(String),
}

/// The address counted when the client's is unknown (requests without a peer).
const UNKNOWN: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

pub struct LoginThrottle {
    limits: Limits,
    max_keys: usize,
    failures: Mutex<HashMap<Key, VecDeque<Instant>>>,
}

impl LoginThrottle {
    pub fn new(limits: Limits) -> Self {
        LoginThrottle::with_max_keys(limits, MAX_KEYS)
    }

    /// As [`LoginThrottle::new`] with another bound on the tracked keys (for tests).
    pub fn with_max_keys(limits: Limits, max_keys: usize) -> Self {
        Self {
            limits,
            max_keys: max_keys.max(1),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The keys of an attempt; `email` must be normalised (trimmed, lower case).
    fn keys(email: &str, addr: Option<IpAddr>) -> [Key; 3] {
        let addr = addr.unwrap_or(UNKNOWN);
        [
            Key::EmailAndAddress(email.to_owned(), addr),
            Key::Address(addr),
            Key::Email(email.to_owned()),
        ]
    }

    fn limit(&self, key: &Key) -> usize {
        let limit = match key {
            Key::EmailAndAddress(..) => self.limits.per_email_and_address,
            Key::Address(_) => self.limits.per_address,
            Key::Email(_) => self.limits.per_email,
        };
        limit.max(1) as usize
    }

    /// `Some(seconds to wait)`, at least 1, when the attempt must be refused.
    pub fn check(&self, email: &str, addr: Option<IpAddr>) -> Option<u64> {
        self.check_at(email, addr, Instant::now())
            .map(|wait| wait.as_secs_f64().ceil().max(1.0) as u64)
    }

    /// How long the attempt must wait at `now`, if it is over a limit.
    pub fn check_at(&self, email: &str, addr: Option<IpAddr>, now: Instant) -> Option<Duration> {
        let window = self.limits.window;
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        Self::keys(email, addr)
            .iter()
            .filter_map(|key| {
                let limit = self.limit(key);
                let entries = map.get_mut(key)?;
                prune(entries, now, window);
                if entries.len() < limit {
                    return None;
                }
                // Allowed again when the failure `limit` places from the newest ages out.
                let pivot = *entries.get(entries.len() - limit)?;
                Some(window.saturating_sub(now.saturating_duration_since(pivot)))
            })
            .max()
    }

    pub fn record_failure(&self, email: &str, addr: Option<IpAddr>) {
        self.record_failure_at(email, addr, Instant::now());
    }

    pub fn record_failure_at(&self, email: &str, addr: Option<IpAddr>, now: Instant) {
        let window = self.limits.window;
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        for key in Self::keys(email, addr) {
            let limit = self.limit(&key);
            if !map.contains_key(&key) && map.len() >= self.max_keys {
                make_room(&mut map, now, window, self.max_keys);
            }
            let entries = map.entry(key).or_default();
            prune(entries, now, window);
            entries.push_back(now);
            // Concurrent attempts may all pass the check; older entries beyond the limit no
            // longer decide anything.
            while entries.len() > limit {
                entries.pop_front();
            }
        }
    }

    /// A successful login forgets the failures of its (email, address) pair; the address's and
    /// the email's counts stay (see the module docs).
    pub fn record_success(&self, email: &str, addr: Option<IpAddr>) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let [pair, _, _] = Self::keys(email, addr);
        map.remove(&pair);
    }

    /// Keys tracked now (for tests and metrics).
    pub fn tracked_keys(&self) -> usize {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

/// Drops expired entries; if the table is still full, the longest idle ones, down to 90% of
/// `max_keys` so that the sort is paid once per many insertions.
fn make_room(
    map: &mut HashMap<Key, VecDeque<Instant>>,
    now: Instant,
    window: Duration,
    max_keys: usize,
) {
    map.retain(|_, entries| {
        prune(entries, now, window);
        !entries.is_empty()
    });
    if map.len() < max_keys {
        return;
    }
    let keep = max_keys - max_keys / 10 - 1;
    let mut by_age: Vec<(Instant, Key)> = map
        .iter()
        .map(|(key, entries)| (entries.back().copied().unwrap_or(now), key.clone()))
        .collect();
    by_age.sort_by_key(|(last, _)| *last);
    let evict = by_age.len().saturating_sub(keep);
    for (_, key) in by_age.into_iter().take(evict) {
        map.remove(&key);
    }
}

fn prune(entries: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while entries
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= window)
    {
        entries.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(900);

    fn limits(pair: u32, address: u32, email: u32) -> Limits {
        Limits {
            per_email_and_address: pair,
            per_address: address,
            per_email: email,
            window: WINDOW,
        }
    }

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    #[test]
    fn one_address_guessing_is_stopped_but_the_owner_elsewhere_is_not() {
        let t = LoginThrottle::new(limits(5, 50, 100));
        let t0 = Instant::now();
        let (attacker, owner) = (ip("203.0.113.7"), ip("198.51.100.2"));
        for i in 0..5 {
            let now = t0 + Duration::from_secs(i);
            assert_eq!(t.check_at("ada@x.io", attacker, now), None, "attempt {i}");
            t.record_failure_at("ada@x.io", attacker, now);
        }
        // Blocked until the first failure (t0) is a window old.
        let now = t0 + Duration::from_secs(10);
        assert_eq!(
            t.check_at("ada@x.io", attacker, now),
            Some(WINDOW - Duration::from_secs(10))
        );
        assert_eq!(t.check_at("ada@x.io", owner, now), None);
        // Other accounts from the attacker's address are still open (per-address limit is 50).
        assert_eq!(t.check_at("bob@x.io", attacker, now), None);
        // The window slides: one failure aged out, one more try.
        let later = t0 + WINDOW;
        assert_eq!(t.check_at("ada@x.io", attacker, later), None);
    }

    #[test]
    fn success_clears_only_its_pair() {
        let t = LoginThrottle::new(limits(2, 3, 100));
        let t0 = Instant::now();
        let a = ip("203.0.113.7");
        t.record_failure_at("ada@x.io", a, t0);
        t.record_failure_at("ada@x.io", a, t0);
        assert!(t.check_at("ada@x.io", a, t0).is_some());
        t.record_success("ada@x.io", a);
        assert_eq!(t.check_at("ada@x.io", a, t0), None);
        // The address's count stayed: one more failure reaches its limit of 3.
        t.record_failure_at("bob@x.io", a, t0);
        assert!(t.check_at("carol@x.io", a, t0).is_some());
    }

    #[test]
    fn an_address_spraying_many_accounts_is_stopped() {
        let t = LoginThrottle::new(limits(5, 4, 100));
        let t0 = Instant::now();
        let a = ip("203.0.113.7");
        for i in 0..4 {
            let email = format!("user{i}@x.io");
            assert_eq!(t.check_at(&email, a, t0), None);
            t.record_failure_at(&email, a, t0);
        }
        assert_eq!(t.check_at("new@x.io", a, t0), Some(WINDOW));
        assert_eq!(t.check_at("new@x.io", ip("198.51.100.2"), t0), None);
    }

    #[test]
    fn the_email_ceiling_stops_a_distributed_attack() {
        let t = LoginThrottle::new(limits(5, 50, 10));
        let t0 = Instant::now();
        for i in 0..10u8 {
            let addr = Some(IpAddr::from([203, 0, 113, i]));
            assert_eq!(t.check_at("ada@x.io", addr, t0), None);
            t.record_failure_at("ada@x.io", addr, t0);
        }
        // Now every address, the owner's too, waits; other accounts are untouched.
        assert!(t.check_at("ada@x.io", ip("198.51.100.2"), t0).is_some());
        assert_eq!(t.check_at("bob@x.io", ip("203.0.113.1"), t0), None);
    }

    #[test]
    fn retry_after_is_whole_seconds_and_at_least_one() {
        let t = LoginThrottle::new(Limits {
            window: Duration::from_millis(1500),
            ..limits(1, 10, 10)
        });
        t.record_failure("ada@x.io", ip("203.0.113.7"));
        assert_eq!(t.check("ada@x.io", ip("203.0.113.7")), Some(2));
        assert_eq!(t.check("ada@x.io", None), None);
    }

    #[test]
    fn rotating_emails_and_addresses_cannot_grow_memory_without_bound() {
        let t = LoginThrottle::with_max_keys(limits(5, 50, 100), 1_000);
        let t0 = Instant::now();
        for i in 0..20_000u32 {
            let addr = Some(IpAddr::from(i.to_be_bytes()));
            t.record_failure_at(&format!("user{i}@x.io"), addr, t0);
            assert!(t.tracked_keys() <= 1_000, "{} keys", t.tracked_keys());
        }
        // A newcomer is still tracked and throttled.
        let later = t0 + Duration::from_secs(1);
        for _ in 0..5 {
            t.record_failure_at("fresh@x.io", ip("198.51.100.2"), later);
        }
        assert!(t
            .check_at("fresh@x.io", ip("198.51.100.2"), later)
            .is_some());
    }

    #[test]
    fn the_most_recent_failures_survive_eviction() {
        let t = LoginThrottle::with_max_keys(limits(2, 1000, 1000), 30);
        let t0 = Instant::now();
        let a = ip("203.0.113.7");
        for i in 0..40u64 {
            t.record_failure_at(&format!("u{i}@x.io"), ip("198.51.100.2"), t0);
        }
        let now = t0 + Duration::from_secs(1);
        t.record_failure_at("ada@x.io", a, now);
        t.record_failure_at("ada@x.io", a, now);
        assert!(t.check_at("ada@x.io", a, now).is_some());
    }
}
