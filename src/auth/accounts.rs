//! What each request needs to know of its caller's account (role, active flag, customer record),
//! remembered for at most [`FRESH_FOR`] so that a burst of requests from one user reads it once.
//!
//! Reading it on every request cost about a tenth of the order path's throughput on SQLite (one
//! more trip to the blocking pool and the database per request). The bound keeps the rule that a
//! deactivation or a role change takes effect at once on the replica that made it (it forgets
//! the account, [`AccountCache::forget`]) and within [`FRESH_FOR`] on every other replica.

use crate::auth::Role;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a read account is trusted before it is read again.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// Beyond this many remembered accounts, the stale ones are dropped (a bound on memory under a
/// flood of distinct valid tokens).
const MAX_ENTRIES: usize = 10_000;

/// An account as authorization sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Account {
    pub role: Role,
    pub active: bool,
    pub customer_id: Option<i64>,
}

/// Recently read accounts of this replica, by user id.
#[derive(Debug, Default)]
pub struct AccountCache {
    entries: Mutex<HashMap<i64, (Account, Instant)>>,
}

impl AccountCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The account of `user_id` if it was read less than [`FRESH_FOR`] ago.
    pub fn get(&self, user_id: i64) -> Option<Account> {
        let entries = self.lock();
        entries
            .get(&user_id)
            .filter(|(_, read_at)| read_at.elapsed() < FRESH_FOR)
            .map(|(account, _)| *account)
    }

    /// Remembers `account` as just read from the database.
    pub fn put(&self, user_id: i64, account: Account) {
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (_, read_at)| read_at.elapsed() < FRESH_FOR);
        }
        entries.insert(user_id, (account, Instant::now()));
    }

    /// Forgets `user_id`'s account: called when this replica changes its role or active flag,
    /// so that the change applies to the very next request.
    pub fn forget(&self, user_id: i64) {
        self.lock().remove(&user_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, (Account, Instant)>> {
        // A poisoned map only means a panic mid-insert; its entries are still whole.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAFF: Account = Account {
        role: Role::Staff,
        active: true,
        customer_id: None,
    };

    #[test]
    fn an_account_is_remembered_until_forgotten() {
        let cache = AccountCache::new();
        assert_eq!(cache.get(1), None);
        cache.put(1, STAFF);
        assert_eq!(cache.get(1), Some(STAFF));
        assert_eq!(cache.get(2), None);
        cache.forget(1);
        assert_eq!(cache.get(1), None);
    }

    #[test]
    fn a_stale_account_is_not_served() {
        let cache = AccountCache::new();
        let long_ago = Instant::now()
            .checked_sub(FRESH_FOR)
            .expect("a monotonic clock this old");
        cache.lock().insert(1, (STAFF, long_ago));
        assert_eq!(cache.get(1), None);
    }
}
