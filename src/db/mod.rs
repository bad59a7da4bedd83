//! Database access for both backends: one connection enum, its pool, the embedded migrations and
//! the transaction helper that every write goes through.

pub mod schema;
mod transaction;

pub use transaction::{write_transaction, WriteTx};

use crate::config::{sqlite_path, Backend};
use crate::error::ApiError;
use diesel::connection::{Instrumentation, InstrumentationEvent, SimpleConnection};
use diesel::prelude::*;
use diesel::r2d2;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A connection to either backend; queries written once against it run on both.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Pg(diesel::PgConnection),
    // diesel requires SQLite to be the last variant.
    Sqlite(diesel::SqliteConnection),
}

impl DbConn {
    pub fn backend(&self) -> Backend {
        match self {
            DbConn::Pg(_) => Backend::Postgres,
            DbConn::Sqlite(_) => Backend::Sqlite,
        }
    }
}

/// Runs the same query text against the inner connection of whichever backend is in use, for the
/// few statements diesel cannot express on the multi-backend (upserts, multi-row inserts, FTS).
#[macro_export]
macro_rules! per_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConn::Pg($c) => $body,
            $crate::db::DbConn::Sqlite($c) => $body,
        }
    };
}

pub type Pool = r2d2::Pool<ConnectionManager>;
pub type PooledConn = r2d2::PooledConnection<ConnectionManager>;

/// Opens connections itself (rather than through diesel's URL dispatch) so the driver's real
/// error, such as a wrong password, reaches the log; and keeps the pool free of PostgreSQL
/// connections the server has dropped (see [`Liveness`]).
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    url: String,
    /// Bumped whenever a connection of this pool is found dead, so that every other one is
    /// checked before its next use: when the server restarts, all of them died together.
    losses: Arc<AtomicU64>,
}

impl ConnectionManager {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            losses: Arc::new(AtomicU64::new(0)),
        }
    }
}

/// Set on every SQLite connection: concurrent writers wait instead of failing, and foreign keys
/// are enforced. (A memory map was tried for reads: faster, but every connection maps the whole
/// file, so the process's RSS grows by the database size per connection.)
const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
     PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;";

/// How long a request waits for a pooled connection before it is answered 503. Also bounds how
/// long the pool waits between attempts to reconnect to a database that is down (half of it), so
/// that service is back within about that long once the database is.
pub const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(2);

/// A connection that sat unused longer than this is pinged before it is handed out: after a
/// quiet spell, the server may have restarted without any query noticing.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

/// What the pool knows of one PostgreSQL connection's health, kept as the connection's diesel
/// instrumentation so that it sees the outcome of every query without any caller's help.
///
/// libpq reports a connection the server dropped (a restart, a failover,
/// `pg_terminate_backend`) only when it is next used; diesel's own check for the pool looks at the
/// transaction state alone. Without this, dead connections went back to the pool and every request
/// that drew one answered an error until the idle timeout evicted them.
#[derive(Debug)]
struct Liveness {
    /// A query failed in a way that means the connection is gone: never reuse it.
    lost: bool,
    /// The pool's loss count when this connection was last known to be alive.
    checked_at_losses: u64,
    /// When it went back to the pool.
    idle_since: Option<Instant>,
    losses: Arc<AtomicU64>,
}

impl Instrumentation for Liveness {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::FinishQuery {
            error: Some(error), ..
        } = event
        {
            if !self.lost && is_connection_lost(error) {
                self.lost = true;
                self.losses.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Whether a database error means the connection itself is unusable (rather than the query).
pub fn is_connection_lost(error: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind as Kind, Error};
    match error {
        Error::DatabaseError(Kind::ClosedConnection | Kind::UnableToSendCommand, _) => true,
        // What the server sends as it drops a connection (SQLSTATE 57P01..57P03); libpq may not
        // have noticed the closed socket yet when the message is read.
        Error::DatabaseError(_, info) => {
            let message = info.message();
            message.contains("terminating connection")
                || message.contains("server closed the connection")
                || message.contains("no connection to the server")
        }
        _ => false,
    }
}

fn liveness(conn: &mut DbConn) -> Option<&mut Liveness> {
    conn.instrumentation().downcast_mut::<Liveness>()
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = DbConn;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConn, r2d2::Error> {
        match Backend::of_url(&self.url) {
            Backend::Postgres => {
                let mut conn = diesel::PgConnection::establish(&self.url)
                    .map_err(r2d2::Error::ConnectionError)?;
                conn.set_instrumentation(Liveness {
                    lost: false,
                    checked_at_losses: self.losses.load(Ordering::Relaxed),
                    idle_since: None,
                    losses: self.losses.clone(),
                });
                Ok(DbConn::Pg(conn))
            }
            Backend::Sqlite => {
                let mut conn = diesel::SqliteConnection::establish(sqlite_path(&self.url))
                    .map_err(r2d2::Error::ConnectionError)?;
                conn.batch_execute(SQLITE_PRAGMAS)
                    .map_err(r2d2::Error::QueryError)?;
                Ok(DbConn::Sqlite(conn))
            }
        }
    }

    /// Run on every checkout, and nearly free: a PostgreSQL connection is pinged only when
    /// another connection of the pool was found dead since it was last checked, or when it has
    /// been idle for a while. A failed ping makes the pool drop it and try the next one, so a
    /// request after a database restart gets a live connection instead of an error.
    fn is_valid(&self, conn: &mut DbConn) -> Result<(), r2d2::Error> {
        let losses = self.losses.load(Ordering::Relaxed);
        let Some(health) = liveness(conn) else {
            return Ok(());
        };
        if health.lost {
            return Err(r2d2::Error::QueryError(
                diesel::result::Error::BrokenTransactionManager,
            ));
        }
        let stale = health.checked_at_losses != losses
            || health
                .idle_since
                .is_some_and(|since| since.elapsed() >= IDLE_BEFORE_PING);
        if stale {
            conn.batch_execute("SELECT 1")
                .map_err(r2d2::Error::QueryError)?;
        }
        if let Some(health) = liveness(conn) {
            health.checked_at_losses = losses;
            health.idle_since = None;
        }
        Ok(())
    }

    /// Run as a connection goes back to the pool: one that lost its server, or that is left with
    /// an open or failed transaction, is dropped instead.
    fn has_broken(&self, conn: &mut DbConn) -> bool {
        use diesel::r2d2::R2D2Connection;
        if let Some(health) = liveness(conn) {
            if health.lost {
                return true;
            }
            health.idle_since = Some(Instant::now());
        }
        conn.is_broken()
    }
}

/// Builds the pool; fails at once when the database cannot be reached.
pub fn build_pool(url: &str, max_size: u32) -> Result<Pool, String> {
    r2d2::Pool::builder()
        .max_size(max_size)
        // Keep a few connections warm; the rest close after a quiet spell, returning their caches.
        .min_idle(Some(max_size.min(2)))
        .idle_timeout(Some(Duration::from_secs(120)))
        .connection_timeout(CHECKOUT_TIMEOUT)
        // `is_valid` is cheap (see there), so every checkout may call it.
        .test_on_check_out(true)
        .build(ConnectionManager::new(url))
        .map_err(|e| format!("cannot connect to {}: {e}", crate::config::redact_url(url)))
}

pub const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// An arbitrary constant naming the advisory lock that serialises migrations across replicas.
const MIGRATION_LOCK_KEY: i64 = 0x626f_6f6b_7374;

/// Applies pending migrations; returns the versions applied.
pub fn run_migrations(conn: &mut DbConn) -> Result<Vec<String>, String> {
    let run = |conn: &mut DbConn, migrations| {
        conn.run_pending_migrations(migrations)
            .map(|done| done.iter().map(|v| v.to_string()).collect::<Vec<_>>())
            .map_err(|e| format!("migration failed: {e}"))
    };
    match conn.backend() {
        Backend::Sqlite => run(conn, SQLITE_MIGRATIONS),
        Backend::Postgres => {
            let lock = format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})");
            conn.batch_execute(&lock).map_err(|e| e.to_string())?;
            let result = run(conn, PG_MIGRATIONS);
            let unlock = format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})");
            conn.batch_execute(&unlock).map_err(|e| e.to_string())?;
            result
        }
    }
}

/// Runs blocking database work on actix's blocking pool with a pooled connection.
pub async fn run<T, F>(pool: &Pool, f: F) -> Result<T, ApiError>
where
    F: FnOnce(&mut DbConn) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let pool = pool.clone();
    actix_web::web::block(move || {
        let mut conn = pool.get()?;
        f(&mut conn)
    })
    .await?
}

/// Numbers the bind parameters of a hand-written statement: `$1, $2, …` on PostgreSQL, `?` on
/// SQLite (which resolves every `$n` by a linear search among the names seen so far, so that
/// preparing a statement with thousands of them takes a quadratic hundred milliseconds).
#[derive(Debug)]
pub struct Placeholders {
    numbered: bool,
    count: usize,
}

impl Placeholders {
    pub fn new(conn: &DbConn) -> Self {
        Placeholders {
            numbered: matches!(conn, DbConn::Pg(_)),
            count: 0,
        }
    }

    /// The next parameter.
    pub fn one(&mut self) -> String {
        self.count += 1;
        if self.numbered {
            format!("${}", self.count)
        } else {
            "?".to_owned()
        }
    }

    /// The next `width` parameters as a row of a `VALUES` list: `($1, $2, $3)`.
    pub fn row(&mut self, width: usize) -> String {
        let binds: Vec<String> = (0..width).map(|_| self.one()).collect();
        format!("({})", binds.join(", "))
    }
}

/// Current UTC time without offset, the form every timestamp column stores.
pub fn now() -> chrono::NaiveDateTime {
    chrono::Utc::now().naive_utc()
}
