//! The database failing under a running server: PostgreSQL dropping every connection (what a
//! restart or a failover does), refusing new ones for a while, and SQLite held locked by another
//! process. Requests meet these faults with 503 problem+json and `Retry-After`, never a 500, and
//! service comes back within 2 s of the database; the webhook worker and the maintenance sweep
//! keep going through the outage.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

mod catalog_support;

mod orders_support;
use orders_support::*;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use std::time::{Duration, Instant};

/// An administrator's connection to the PostgreSQL server of a test (`None` on SQLite).
struct PgAdmin {
    conn: PgConnection,
    database: String,
}

impl PgAdmin {
    fn of(app: &TestApp) -> Option<PgAdmin> {
        let admin_url = std::env::var("TEST_DATABASE_URL")
            .ok()
            .filter(|url| url.starts_with("postgres"))?;
        let database = app
            .state
            .settings
            .database_url
            .rsplit('/')
            .next()
            .and_then(|tail| tail.split('?').next())
            .expect("a database name")
            .to_owned();
        let conn = PgConnection::establish(&admin_url).expect("admin connection");
        Some(PgAdmin { conn, database })
    }

    /// What `pg_terminate_backend` on every session does: each connection of the server dies.
    fn terminate_connections(&mut self) {
        self.conn
            .batch_execute(&format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{}' AND pid <> pg_backend_pid()",
                self.database
            ))
            .expect("terminate");
    }

    /// Makes the database refuse (or accept again) new connections, as a server that is down or
    /// starting up does.
    fn allow_connections(&mut self, allow: bool) {
        self.conn
            .batch_execute(&format!(
                "ALTER DATABASE {} WITH ALLOW_CONNECTIONS {allow}",
                self.database
            ))
            .expect("alter database");
    }
}

/// Asserts that a response during an outage is the documented 503, not a 500.
#[track_caller]
fn assert_unavailable(res: &Res) {
    res.problem(503);
    assert!(
        res.header("retry-after").is_some(),
        "a 503 says when to retry"
    );
    assert!(
        !res.text.contains("terminating") && !res.text.contains("connection"),
        "the cause stays in the log: {}",
        res.text
    );
}

/// Sends `request` until it answers `status`, for at most `within`; every other answer on the way
/// must be a 503 (never a 500). Returns how long it took.
async fn recovers<F, Fut>(what: &str, within: Duration, status: u16, request: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Res>,
{
    let start = Instant::now();
    loop {
        let res = request().await;
        if res.status.as_u16() == status {
            return start.elapsed();
        }
        assert_unavailable(&res);
        assert!(
            start.elapsed() < within,
            "{what} still answers 503 after {:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A stocked book and a staff token.
async fn shop(app: &TestApp) -> (String, i64) {
    let staff = app.staff();
    let book = book(app, &staff, 1, "Outage", 1200).await;
    receive(app, &staff, &[(book, 1000)]).await;
    (staff, book)
}

/// Keeps every pooled connection busy at once, so that the pool holds as many as it can.
async fn warm_the_pool(app: &TestApp, token: &str, book: i64) {
    let path = format!("/api/v1/books/{book}");
    let all = (0..16).map(|_| app.get(&path, Some(token)));
    for res in futures_util::future::join_all(all).await {
        res.expect(200);
    }
}

#[tokio::test]
async fn dropped_connections_are_replaced_and_no_request_answers_500() {
    let app = TestApp::spawn().await;
    let Some(mut admin) = PgAdmin::of(&app) else {
        return; // PostgreSQL only: SQLite has no connections to drop (see the lock test below).
    };
    let (staff, book) = shop(&app).await;
    let book_path = format!("/api/v1/books/{book}");
    warm_the_pool(&app, &staff, book).await;

    admin.terminate_connections();

    // Reads and writes right after: each succeeds, or (if it drew a connection that died under
    // it) answers 503; within 2 s they all succeed again, the very next ones included.
    let took = recovers("a book read", Duration::from_secs(2), 200, || {
        app.get(&book_path, Some(&staff))
    })
    .await;
    assert!(took < Duration::from_secs(2));
    for _ in 0..20 {
        app.get(&format!("/api/v1/books/{book}"), Some(&staff))
            .await
            .expect(200);
    }
    let order = place(&app, &staff, &[(book, 2)]).await;
    card(&app, &staff, order, "tok_visa").await.expect(201);
    app.get("/readyz", None).await.expect(200);

    // Drop them again while requests are in flight: none of those may answer 500.
    let path = format!("/api/v1/books/{book}");
    let burst = (0..32).map(|_| app.get(&path, Some(&staff)));
    let terminate = async {
        tokio::task::yield_now().await;
        admin.terminate_connections();
    };
    let (answers, ()) = tokio::join!(futures_util::future::join_all(burst), terminate);
    for res in &answers {
        if res.status.as_u16() != 200 {
            assert_unavailable(res);
        }
    }
    recovers("a book read", Duration::from_secs(2), 200, || {
        app.get(&book_path, Some(&staff))
    })
    .await;
    assert_eq!(
        level(&app, book),
        (1000, 2),
        "the paid order holds its two copies, once"
    );
}

#[tokio::test]
async fn an_unreachable_database_answers_503_and_service_returns_within_2_s() {
    let app = TestApp::spawn().await;
    let Some(mut admin) = PgAdmin::of(&app) else {
        return; // PostgreSQL only; SQLite is a file in the process (see the lock test below).
    };
    let (staff, book) = shop(&app).await;
    let book_path = format!("/api/v1/books/{book}");

    admin.allow_connections(false);
    admin.terminate_connections();

    assert_unavailable(&app.get("/readyz", None).await);
    assert_unavailable(
        &app.get(&format!("/api/v1/books/{book}"), Some(&staff))
            .await,
    );
    let order = app
        .post(
            "/api/v1/orders",
            Some(&staff),
            json!({"lines": [{"book_id": book, "quantity": 1}]}),
        )
        .await;
    assert_unavailable(&order);
    let login = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "nobody@example.com", "password": PASSWORD}),
        )
        .await;
    assert_unavailable(&login);

    admin.allow_connections(true);
    recovers("/readyz", Duration::from_secs(2), 200, || {
        app.get("/readyz", None)
    })
    .await;
    recovers("a book read", Duration::from_secs(2), 200, || {
        app.get(&book_path, Some(&staff))
    })
    .await;
    place(&app, &staff, &[(book, 1)]).await;
    assert_eq!(
        level(&app, book),
        (1000, 1),
        "nothing was written during the outage"
    );
}

#[tokio::test]
async fn the_webhook_worker_and_the_sweep_outlive_an_outage() {
    let receiver = Receiver::start();
    let app = TestApp::spawn_with(|s| {
        s.webhook_poll_interval = Duration::from_millis(50);
        s.sweep_interval = Duration::from_secs(1);
        s.order_ttl = Duration::from_secs(1);
    })
    .await;
    let Some(mut admin) = PgAdmin::of(&app) else {
        return; // PostgreSQL only.
    };
    let (staff, book) = shop(&app).await;
    let admin_token = app.admin();
    app.post(
        "/api/v1/webhooks",
        Some(&admin_token),
        json!({"url": receiver.url("/hook"), "event_types": ["order.created", "order.cancelled"]}),
    )
    .await
    .expect(201);

    // The outage: both background loops meet errors on every tick for a while.
    admin.allow_connections(false);
    admin.terminate_connections();
    let outage = Instant::now();
    while outage.elapsed() < Duration::from_millis(2500) {
        assert_unavailable(&app.get("/readyz", None).await);
    }
    admin.allow_connections(true);
    recovers("/readyz", Duration::from_secs(2), 200, || {
        app.get("/readyz", None)
    })
    .await;

    // Both still run: an order placed now is announced by the worker, and expired by the sweep
    // (whose cancellation is announced too).
    let order = place(&app, &staff, &[(book, 3)]).await;
    let deadline = Deadline::new(Duration::from_secs(10));
    while status_of(&app, &staff, order).await != "cancelled" {
        deadline.tick("the sweep to expire the order").await;
    }
    let seen = receiver
        .wait_for("order.created and order.cancelled", |requests| {
            let types: Vec<&str> = requests
                .iter()
                .filter_map(|r| r.header("bookstore-event-type"))
                .collect();
            types.contains(&"order.created") && types.contains(&"order.cancelled")
        })
        .await;
    assert!(seen.iter().all(|r| r.status == 200));
    assert_eq!(
        level(&app, book),
        (1000, 0),
        "the expiry released the stock"
    );
}

#[tokio::test]
async fn a_sqlite_database_locked_by_another_process_answers_503_then_serves_again() {
    let app = TestApp::spawn().await;
    if PgAdmin::of(&app).is_some() {
        return; // SQLite only: the PostgreSQL faults are above.
    }
    let (staff, book) = shop(&app).await;

    // Another process (here: a connection outside the pool) holds the write lock for longer than
    // the busy timeout.
    let mut other =
        SqliteConnection::establish(&app.state.settings.database_url).expect("second connection");
    other.batch_execute("BEGIN EXCLUSIVE").expect("lock");
    let order = app
        .post(
            "/api/v1/orders",
            Some(&staff),
            json!({"lines": [{"book_id": book, "quantity": 1}]}),
        )
        .await;
    assert_unavailable(&order);
    // Reads go on meanwhile (WAL).
    app.get(&format!("/api/v1/books/{book}"), Some(&staff))
        .await
        .expect(200);
    other.batch_execute("ROLLBACK").expect("unlock");

    place(&app, &staff, &[(book, 1)]).await;
    assert_eq!(
        level(&app, book),
        (1000, 1),
        "the refused order wrote nothing"
    );
}
