//! Login throttling: after too many failures within a window, for one email or one client
//! address, further attempts are refused with 429 until the oldest failure ages out. Keys that
//! start with `ip:` count against the (larger) per-address allowance, all others against the
//! per-account one.
//!
//! The counters live in this process. Behind a load balancer each replica counts on its own, which
//! multiplies the allowance by the replica count; a shared store would be needed to go further.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys tracked before old, idle entries are swept, bounding memory under a spray of addresses.
const SWEEP_AT: usize = 10_000;

pub struct LoginThrottle {
    max_failures: usize,
    max_failures_per_ip: usize,
    window: Duration,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginThrottle {
    pub fn new(max_failures: u32, max_failures_per_ip: u32, window: Duration) -> Self {
        Self {
            max_failures: max_failures as usize,
            max_failures_per_ip: max_failures_per_ip as usize,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(seconds to wait)` when any of `keys` is over its allowance.
    pub fn check(&self, keys: &[String]) -> Option<u64> {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        keys.iter()
            .filter_map(|key| {
                let entries = map.get_mut(key)?;
                prune(entries, now, self.window);
                let limit = if key.starts_with("ip:") {
                    self.max_failures_per_ip
                } else {
                    self.max_failures
                };
                if entries.len() >= limit {
                    let oldest = *entries.front()?;
                    let wait = self.window.saturating_sub(now.duration_since(oldest));
                    Some(wait.as_secs().max(1))
                } else {
                    None
                }
            })
            .max()
    }

    pub fn record_failure(&self, keys: &[String]) {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= SWEEP_AT {
            let window = self.window;
            map.retain(|_, entries| {
                prune(entries, now, window);
                !entries.is_empty()
            });
        }
        for key in keys {
            let entries = map.entry(key.clone()).or_default();
            prune(entries, now, self.window);
            entries.push_back(now);
        }
    }

    /// A successful login clears the account's failures (not the address's).
    pub fn clear(&self, key: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(key);
    }
}

fn prune(entries: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while entries
        .front()
        .is_some_and(|t| now.duration_since(*t) >= window)
    {
        entries.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_allowance_and_clears() {
        let t = LoginThrottle::new(3, 3, Duration::from_secs(60));
        let keys = vec!["email:a@b.co".to_owned(), "ip:127.0.0.1".to_owned()];
        for _ in 0..3 {
            assert_eq!(t.check(&keys), None);
            t.record_failure(&keys);
        }
        assert!(t.check(&keys).is_some_and(|s| (1..=60).contains(&s)));
        t.clear("email:a@b.co");
        // The address is still over its allowance.
        assert!(t.check(&keys).is_some());
        assert_eq!(t.check(&["email:a@b.co".to_owned()]), None);
    }

    #[test]
    fn addresses_have_their_own_allowance() {
        let t = LoginThrottle::new(2, 4, Duration::from_secs(60));
        let ip = vec!["ip:10.0.0.1".to_owned()];
        for i in 0..4 {
            assert_eq!(t.check(&ip), None, "attempt {i}");
            t.record_failure(&[format!("email:user{i}@b.co"), ip[0].clone()]);
        }
        assert!(t.check(&ip).is_some());
        assert_eq!(t.check(&["email:user0@b.co".to_owned()]), None);
    }
}
