//! A short-lived cache of search results (the ids of a page and the total), so that popular
//! searches are not ranked again for every request. The books themselves are always read fresh;
//! only which books a search finds, and in what order, can be briefly stale.
//!
//! Staleness is bounded two ways: any catalog write in this process invalidates every entry at
//! once (a generation counter, bumped after the write commits); writes made by other replicas are
//! seen after the time-to-live at the latest.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Entries kept at most; past that the cache starts afresh, which bounds memory.
const MAX_ENTRIES: usize = 10_000;

pub struct SearchCache {
    ttl: Duration,
    generation: AtomicU64,
    entries: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    stored: Instant,
    generation: u64,
    page: Arc<(Vec<i64>, i64)>,
}

/// The cache generation seen when a search began: its result is stored under it, so a result
/// computed while a write committed is never served after that write.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

impl SearchCache {
    /// A zero `ttl` turns the cache off.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            generation: AtomicU64::new(0),
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    pub fn ticket(&self) -> Ticket {
        Ticket(self.generation.load(Ordering::Acquire))
    }

    /// A fresh page of ids and the total for `key`, if one is cached.
    pub fn get(&self, key: &str) -> Option<Arc<(Vec<i64>, i64)>> {
        if !self.enabled() {
            return None;
        }
        let current = self.generation.load(Ordering::Acquire);
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .filter(|e| e.generation == current && e.stored.elapsed() < self.ttl)
            .map(|e| e.page.clone())
    }

    pub fn put(&self, key: String, ticket: Ticket, ids: Vec<i64>, total: i64) {
        if !self.enabled() || ticket.0 != self.generation.load(Ordering::Acquire) {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(
            key,
            Entry {
                stored: Instant::now(),
                generation: ticket.0,
                page: Arc::new((ids, total)),
            },
        );
    }

    /// Forgets every entry; call after a catalog write has committed.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if self.enabled() {
            self.entries
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_until_invalidated() {
        let cache = SearchCache::new(Duration::from_secs(60));
        let t = cache.ticket();
        cache.put("q".into(), t, vec![1, 2], 2);
        assert_eq!(cache.get("q").map(|p| p.1), Some(2));
        cache.invalidate();
        assert!(cache.get("q").is_none());
    }

    #[test]
    fn a_result_computed_across_a_write_is_not_stored() {
        let cache = SearchCache::new(Duration::from_secs(60));
        let before_write = cache.ticket();
        cache.invalidate();
        cache.put("q".into(), before_write, vec![1], 1);
        assert!(cache.get("q").is_none());
    }

    #[test]
    fn expires_and_can_be_off() {
        let cache = SearchCache::new(Duration::from_millis(1));
        cache.put("q".into(), cache.ticket(), vec![1], 1);
        std::thread::sleep(Duration::from_millis(5));
        assert!(cache.get("q").is_none());
        let off = SearchCache::new(Duration::ZERO);
        off.put("q".into(), off.ticket(), vec![1], 1);
        assert!(off.get("q").is_none());
    }
}
