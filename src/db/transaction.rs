//! The write transaction, as a value: [`write_transaction`] hands its closure a [`WriteTx`], and
//! whatever must happen inside a write (a stock change, an outbox event, an alert) takes
//! `&mut WriteTx`, so the compiler says where a write may happen.

use super::DbConn;
use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::Connection;
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::ops::{Deref, DerefMut};

/// SQLite lets one connection write at a time; a writer that finds the lock taken sleeps in
/// `busy_timeout`'s steps (up to 100 ms) and does not wake when the lock is released. Writers of
/// this process therefore queue here first, where the next one wakes as soon as the previous
/// commits: measured on the order benchmark, this removes the 50–90 ms tail of waiting writers.
/// It guards every SQLite database of the process (a server opens one; a test binary opens many,
/// whose writes then take turns, which costs little). Other processes writing the same file still
/// meet `busy_timeout`.
static SQLITE_WRITER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A write transaction in progress: the connection it runs on, what is to run once it commits,
/// and what its work may remember for its own length (see [`WriteTx::memo`]).
///
/// It dereferences to the [`DbConn`], so functions that only read or write rows take
/// `&mut DbConn` and are called with it as they are; diesel's query methods, generic over the
/// connection, take [`WriteTx::conn`].
///
/// A stock change outside a write transaction does not compile:
///
/// ```compile_fail
/// # fn outside(conn: &mut bookstore::db::DbConn, m: &bookstore::inventory::stock::Movement<'_>) {
/// bookstore::inventory::stock::apply_movement(conn, m); // expected `&mut WriteTx`
/// # }
/// ```
///
/// ```
/// # fn inside(conn: &mut bookstore::db::DbConn, m: &bookstore::inventory::stock::Movement<'_>) {
/// let _ = bookstore::db::write_transaction(conn, |tx| {
///     bookstore::inventory::stock::apply_movement(tx, m)
/// });
/// # }
/// ```
pub struct WriteTx<'c> {
    conn: &'c mut DbConn,
    on_commit: Vec<fn()>,
    memos: HashMap<TypeId, Box<dyn Any>>,
}

impl WriteTx<'_> {
    /// The connection, for diesel's query methods.
    pub fn conn(&mut self) -> &mut DbConn {
        self.conn
    }

    /// Runs `hook` once this transaction commits, and never if it rolls back: for signals that
    /// must not overtake the data they announce, such as waking the webhook worker, which on
    /// PostgreSQL would otherwise look before the new event is visible and then sleep until its
    /// next poll.
    pub fn after_commit(&mut self, hook: fn()) {
        self.on_commit.push(hook);
    }

    /// What this transaction's work remembered as a `T` (one value per type), for what is read
    /// once per transaction and then reused, such as the webhook endpoints its events go to.
    pub fn memo<T: Any>(&self) -> Option<&T> {
        self.memos
            .get(&TypeId::of::<T>())
            .and_then(|memo| memo.downcast_ref())
    }

    /// Remembers `value` for the rest of this transaction (replacing an earlier `T`).
    pub fn remember<T: Any>(&mut self, value: T) {
        self.memos.insert(TypeId::of::<T>(), Box::new(value));
    }
}

impl Deref for WriteTx<'_> {
    type Target = DbConn;

    fn deref(&self) -> &DbConn {
        self.conn
    }
}

impl DerefMut for WriteTx<'_> {
    fn deref_mut(&mut self) -> &mut DbConn {
        self.conn
    }
}

/// Runs `f` in a write transaction: `BEGIN IMMEDIATE` on SQLite (after taking this process's
/// writer turn, see [`SQLITE_WRITER`]), so that the write lock is taken up front and concurrent
/// writers queue instead of failing when a read upgrades to a write; a plain `BEGIN` on
/// PostgreSQL. Commits on `Ok` (then runs the [`WriteTx::after_commit`] hooks), rolls back on
/// `Err`.
///
/// Nested work inside `f` that may fail on its own can use `tx.conn().transaction(…)` (a
/// savepoint).
pub fn write_transaction<T, E, F>(conn: &mut DbConn, f: F) -> Result<T, E>
where
    F: FnOnce(&mut WriteTx<'_>) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    type Manager = <DbConn as Connection>::TransactionManager;
    let _writer_turn = match conn {
        DbConn::Sqlite(inner) => {
            // A poisoned lock only means another writer panicked; the database rolled it back.
            let turn = SQLITE_WRITER
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE")?;
            Some(turn)
        }
        DbConn::Pg(_) => {
            Manager::begin_transaction(conn)?;
            None
        }
    };
    let mut tx = WriteTx {
        conn,
        on_commit: Vec::new(),
        memos: HashMap::new(),
    };
    let outcome = f(&mut tx);
    let WriteTx {
        conn, on_commit, ..
    } = tx;
    match outcome {
        Ok(value) => match Manager::commit_transaction(conn) {
            Ok(()) => {
                on_commit.into_iter().for_each(|hook| hook());
                Ok(value)
            }
            Err(commit_error) => {
                // The commit failed (e.g. a deferred constraint); the transaction is still open.
                let _ = Manager::rollback_transaction(conn);
                Err(commit_error.into())
            }
        },
        Err(error) => {
            Manager::rollback_transaction(conn)?;
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiError;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static RAN: AtomicUsize = AtomicUsize::new(0);

    fn count() {
        RAN.fetch_add(1, Ordering::SeqCst);
    }

    fn memory() -> DbConn {
        DbConn::Sqlite(diesel::SqliteConnection::establish(":memory:").expect("in-memory database"))
    }

    #[test]
    fn commit_hooks_run_after_a_commit_only() {
        let mut conn = memory();
        let committed: Result<(), ApiError> = write_transaction(&mut conn, |tx| {
            tx.after_commit(count);
            tx.after_commit(count);
            assert_eq!(RAN.load(Ordering::SeqCst), 0, "not before the commit");
            Ok(())
        });
        assert!(committed.is_ok());
        assert_eq!(RAN.load(Ordering::SeqCst), 2);

        let rolled_back: Result<(), ApiError> = write_transaction(&mut conn, |tx| {
            tx.after_commit(count);
            Err(ApiError::internal("roll back"))
        });
        assert!(rolled_back.is_err());
        assert_eq!(RAN.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn memos_last_one_transaction() {
        let mut conn = memory();
        let seen: Result<Option<u32>, ApiError> = write_transaction(&mut conn, |tx| {
            assert!(tx.memo::<u32>().is_none());
            tx.remember(7_u32);
            Ok(tx.memo::<u32>().copied())
        });
        assert_eq!(seen.ok().flatten(), Some(7));
        let next: Result<bool, ApiError> =
            write_transaction(&mut conn, |tx| Ok(tx.memo::<u32>().is_none()));
        assert_eq!(next.ok(), Some(true));
    }
}
