//! The test harness: each test gets the real application, served over HTTP on a free port of
//! 127.0.0.1, with a database of its own on the backend named by `TEST_DATABASE_URL` (a fresh
//! SQLite file when unset; with a `postgres://` URL, a database cloned from a template migrated
//! once).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use bookstore::auth::Role;
use bookstore::db::{self, DbConn, PooledConn};
use bookstore::orders::payments::{PaymentProvider, TestProvider};
use bookstore::{AppState, Settings};
use diesel::prelude::*;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::net::TcpListener;
use std::sync::OnceLock;

pub use serde_json::json;

/// A password that passes the policy.
pub const PASSWORD: &str = "plum-orchard-41-lantern";

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub state: actix_web::web::Data<AppState>,
    server: Option<actix_web::dev::ServerHandle>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Shared with the servers started on the same database ([`TestApp::sibling_with`]); the
    /// database is removed when the last of them is dropped.
    db: std::sync::Arc<TestDb>,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Res {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Res {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status, showing the body on failure.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text
        );
        self
    }

    /// Asserts a problem+json error with this status; returns the body.
    #[track_caller]
    pub fn problem(&self, status: u16) -> &Value {
        self.expect(status);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "errors are problem+json; body: {}",
            self.text
        );
        assert_eq!(self.body["status"], status);
        assert!(self.body["title"].is_string() && self.body["detail"].is_string());
        &self.body
    }

    /// Asserts a 422 whose `errors` name `field`.
    #[track_caller]
    pub fn invalid_field(&self, field: &str) -> &Value {
        let body = self.problem(422);
        let fields: Vec<&str> = body["errors"]
            .as_array()
            .map(|a| a.iter().filter_map(|e| e["field"].as_str()).collect())
            .unwrap_or_default();
        assert!(
            fields.contains(&field),
            "expected an error on {field}, got {fields:?}"
        );
        body
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// Spawns with settings adjusted by `tune` (e.g. a lower login allowance).
    pub async fn spawn_with(tune: impl FnOnce(&mut Settings)) -> TestApp {
        Self::spawn_with_provider(tune, std::sync::Arc::new(TestProvider::new())).await
    }

    /// Spawns with adjusted settings and another payment provider.
    pub async fn spawn_with_provider(
        tune: impl FnOnce(&mut Settings),
        provider: std::sync::Arc<dyn PaymentProvider>,
    ) -> TestApp {
        Self::spawn_on(std::sync::Arc::new(TestDb::create()), tune, provider).await
    }

    /// Spawns a server on an existing test database.
    async fn spawn_on(
        db: std::sync::Arc<TestDb>,
        tune: impl FnOnce(&mut Settings),
        provider: std::sync::Arc<dyn PaymentProvider>,
    ) -> TestApp {
        let mut settings = Settings::for_database(&db.url);
        settings.pool_size = 4;
        settings.workers = Some(2);
        // Tests run the maintenance sweep themselves when they need it.
        settings.sweep_interval = std::time::Duration::ZERO;
        // The webhook worker runs only in the tests that enable it.
        settings.webhook_poll_interval = std::time::Duration::ZERO;
        // Tests deliver to a receiver on 127.0.0.1; the tests of the address rule turn it off.
        settings.webhook_allow_private = true;
        tune(&mut settings);
        let state = AppState::init_with_provider(settings, provider).expect("app state");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = std::sync::mpsc::channel();
        let server_state = state.clone();
        let thread = std::thread::spawn(move || {
            let system = actix_web::rt::System::new();
            system.block_on(async move {
                let server = bookstore::start(listener, server_state).expect("server");
                tx.send(server.handle()).expect("send handle");
                let _ = server.await;
            });
        });
        let server = rx.recv().expect("server handle");
        TestApp {
            base,
            client: reqwest::Client::new(),
            state,
            server: Some(server),
            thread: Some(thread),
            db,
        }
    }

    /// Starts another server (its own state, pool and background workers) on this test's
    /// database, as a second replica would run; settings as [`TestApp::spawn_with`].
    /// It shares this server's payment provider, which stands for a service outside both.
    pub async fn sibling_with(&self, tune: impl FnOnce(&mut Settings)) -> TestApp {
        let provider = self.state.payment_provider.clone();
        Self::spawn_on(self.db.clone(), tune, provider).await
    }

    /// Stops this server (its background workers die with it) and starts a new one on the same
    /// database, as a restart or a crash followed by a restart would.
    /// The payment provider, a service outside the server, remembers what it did across it.
    pub async fn restart_with(self, tune: impl FnOnce(&mut Settings)) -> TestApp {
        let provider = self.state.payment_provider.clone();
        self.restart_with_provider(tune, provider).await
    }

    /// As [`TestApp::restart_with`], with another payment provider.
    pub async fn restart_with_provider(
        self,
        tune: impl FnOnce(&mut Settings),
        provider: std::sync::Arc<dyn PaymentProvider>,
    ) -> TestApp {
        let db = self.db.clone();
        drop(self);
        Self::spawn_on(db, tune, provider).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A pooled connection to this test's database, for checking what requests left behind.
    pub fn conn(&self) -> PooledConn {
        self.state.pool.get().expect("connection")
    }

    /// Creates an active user with `role` directly through the service; returns (user id, token).
    pub fn user(&self, role: Role) -> (i64, String) {
        let email = format!(
            "{}-{}@example.com",
            role.as_str(),
            uuid::Uuid::new_v4().simple()
        );
        let mut conn = self.conn();
        let id = bookstore::auth::service::create_user(
            &mut conn,
            &email,
            PASSWORD,
            role,
            Some("Test User"),
        )
        .expect("create user");
        (id, self.state.tokens.issue(id, role).expect("token"))
    }

    pub fn admin(&self) -> String {
        self.user(Role::Admin).1
    }

    pub fn staff(&self) -> String {
        self.user(Role::Staff).1
    }

    pub fn customer(&self) -> String {
        self.user(Role::Customer).1
    }

    /// Sends a request with an optional bearer token and JSON body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Res {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Self::read(req).await
    }

    pub async fn read(req: reqwest::RequestBuilder) -> Res {
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Res {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Res {
        self.send(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Res {
        self.send(Method::POST, path, token, Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Res {
        self.send(Method::PATCH, path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Res {
        self.send(Method::DELETE, path, token, None).await
    }

    /// Counts the rows of a table in this test's database.
    pub fn count(&self, table: &str) -> i64 {
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = self.conn();
        diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
            .get_result::<Count>(&mut *conn as &mut DbConn)
            .expect("count")
            .n
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            // `stop` sends its command at once; the returned future only reports completion.
            drop(server.stop(false));
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The database of one test, removed when the test ends.
pub struct TestDb {
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    SqliteFile(std::path::PathBuf),
    PgDatabase { admin_url: String, name: String },
}

impl TestDb {
    pub fn create() -> TestDb {
        match std::env::var("TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
        {
            Some(admin_url) if admin_url.starts_with("postgres") => {
                let template = pg_template(&admin_url);
                let name = format!("bookstore_t_{}", uuid::Uuid::new_v4().simple());
                let mut admin =
                    PgConnection::establish(&admin_url).expect("connect to TEST_DATABASE_URL");
                diesel::sql_query(format!("CREATE DATABASE {name} TEMPLATE {template}"))
                    .execute(&mut admin)
                    .expect("create test database");
                TestDb {
                    url: replace_db_name(&admin_url, &name),
                    cleanup: Cleanup::PgDatabase { admin_url, name },
                }
            }
            _ => {
                let dir = std::env::temp_dir().join("bookstore-tests");
                std::fs::create_dir_all(&dir).expect("temp dir");
                let path = dir.join(format!("{}.db", uuid::Uuid::new_v4().simple()));
                TestDb {
                    url: path.to_string_lossy().into_owned(),
                    cleanup: Cleanup::SqliteFile(path),
                }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::SqliteFile(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Cleanup::PgDatabase { admin_url, name } => {
                if let Ok(mut admin) = PgConnection::establish(admin_url) {
                    let _ =
                        diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .execute(&mut admin);
                }
            }
        }
    }
}

fn replace_db_name(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let prefix = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{prefix}/{name}?{q}"),
        None => format!("{prefix}/{name}"),
    }
}

/// The migrated template every PostgreSQL test database is cloned from. Its name carries a hash of
/// the migrations, so a changed migration builds a new template; an advisory lock makes
/// concurrent test processes build it once.
fn pg_template(admin_url: &str) -> String {
    static TEMPLATE: OnceLock<String> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| {
            let name = format!("bookstore_tpl_{:016x}", migrations_hash());
            let mut admin =
                PgConnection::establish(admin_url).expect("connect to TEST_DATABASE_URL");
            diesel::sql_query("SELECT pg_advisory_lock(7358127)")
                .execute(&mut admin)
                .expect("lock");
            #[derive(QueryableByName)]
            struct Exists {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            let exists = diesel::sql_query(format!(
                "SELECT COUNT(*) AS n FROM pg_database WHERE datname = '{name}'"
            ))
            .get_result::<Exists>(&mut admin)
            .expect("query")
            .n > 0;
            if !exists {
                let building = format!("{name}_building");
                let _ =
                    diesel::sql_query(format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
                        .execute(&mut admin);
                diesel::sql_query(format!("CREATE DATABASE {building}"))
                    .execute(&mut admin)
                    .expect("create template");
                {
                    let pool =
                        db::build_pool(&replace_db_name(admin_url, &building), 1).expect("pool");
                    let mut conn = pool.get().expect("conn");
                    db::run_migrations(&mut conn).expect("migrate template");
                }
                diesel::sql_query(format!("ALTER DATABASE {building} RENAME TO {name}"))
                    .execute(&mut admin)
                    .expect("rename template");
            }
            diesel::sql_query("SELECT pg_advisory_unlock(7358127)")
                .execute(&mut admin)
                .expect("unlock");
            name
        })
        .clone()
}

fn migrations_hash() -> u64 {
    use std::hash::{Hash, Hasher};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
    let mut files: Vec<_> = walk(&dir);
    files.sort();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for f in files {
        f.hash(&mut hasher);
        std::fs::read(&f).unwrap_or_default().hash(&mut hasher);
    }
    hasher.finish()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A request a [`Receiver`] got.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: std::collections::HashMap<String, String>,
    pub body: String,
    /// The status it was answered with.
    pub status: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct ReceiverState {
    requests: std::sync::Mutex<Vec<Received>>,
    /// Requests still to be answered 500 before answering 200 again.
    failures_left: std::sync::atomic::AtomicUsize,
    /// While set, requests wait (unanswered) until [`Receiver::release`].
    holding: std::sync::atomic::AtomicBool,
    /// Requests that arrived while holding.
    held: std::sync::atomic::AtomicUsize,
    released: tokio::sync::Notify,
}

/// A small HTTP server on 127.0.0.1 (its own thread, like [`TestApp`]) that records every request
/// (any method, any path) and answers 200, or 500 while told to fail.
pub struct Receiver {
    pub base: String,
    state: std::sync::Arc<ReceiverState>,
    server: Option<actix_web::dev::ServerHandle>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    pub fn start() -> Receiver {
        use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
        let state = std::sync::Arc::new(ReceiverState::default());
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = std::sync::mpsc::channel();
        let server_state = state.clone();
        let thread = std::thread::spawn(move || {
            let system = actix_web::rt::System::new();
            system.block_on(async move {
                let shared = web::Data::from(server_state);
                let server = HttpServer::new(move || {
                    App::new().app_data(shared.clone()).default_service(web::to(
                        |req: HttpRequest, body: web::Bytes, st: web::Data<ReceiverState>| async move {
                            use std::sync::atomic::Ordering;
                            if st.holding.load(Ordering::SeqCst) {
                                st.held.fetch_add(1, Ordering::SeqCst);
                                loop {
                                    let released = st.released.notified();
                                    if !st.holding.load(Ordering::SeqCst) {
                                        break;
                                    }
                                    released.await;
                                }
                            }
                            let fail = st
                                .failures_left
                                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                                .is_ok();
                            let status = if fail { 500 } else { 200 };
                            st.requests.lock().unwrap().push(Received {
                                method: req.method().to_string(),
                                path: req.path().to_owned(),
                                headers: req
                                    .headers()
                                    .iter()
                                    .map(|(k, v)| {
                                        (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())
                                    })
                                    .collect(),
                                body: String::from_utf8_lossy(&body).into_owned(),
                                status,
                            });
                            if fail {
                                HttpResponse::InternalServerError().body("receiver told to fail")
                            } else {
                                HttpResponse::Ok().body("ok")
                            }
                        },
                    ))
                })
                .workers(1)
                .listen(listener)
                .expect("listen")
                .run();
                tx.send(server.handle()).expect("send handle");
                let _ = server.await;
            });
        });
        let server = rx.recv().expect("receiver handle");
        Receiver {
            base,
            state,
            server: Some(server),
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Answers the next `n` requests with 500 (`usize::MAX`: all of them).
    pub fn fail_next(&self, n: usize) {
        self.state
            .failures_left
            .store(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// Holds the requests that arrive from now on, unanswered, until [`Receiver::release`].
    pub fn hold(&self) {
        self.state
            .holding
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Lets the held requests (and any later ones) be answered.
    pub fn release(&self) {
        self.state
            .holding
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self.state.released.notify_waiters();
    }

    /// How many requests arrived while holding (recorded in [`Receiver::requests`] only once
    /// answered).
    pub fn held(&self) -> usize {
        self.state.held.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Received> {
        self.state.requests.lock().unwrap().clone()
    }

    /// The requests so far to `path`.
    pub fn requests_to(&self, path: &str) -> Vec<Received> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Waits (up to 10 s, polling) until `done` holds for the requests so far; returns them.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = Deadline::new(std::time::Duration::from_secs(10));
        loop {
            let requests = self.requests();
            if done(&requests) {
                return requests;
            }
            deadline.tick(what).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.release();
        if let Some(server) = self.server.take() {
            drop(server.stop(false));
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A deadline for polling a background effect: `tick` sleeps 20 ms, or fails the test (naming
/// what was awaited) once the deadline has passed.
pub struct Deadline(std::time::Instant);

impl Deadline {
    pub fn new(within: std::time::Duration) -> Deadline {
        Deadline(std::time::Instant::now() + within)
    }

    #[track_caller]
    pub fn tick(&self, what: &str) -> impl std::future::Future<Output = ()> {
        assert!(
            std::time::Instant::now() < self.0,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20))
    }
}
