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
    db: TestDb,
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
        Self::spawn_with_provider(tune, std::sync::Arc::new(TestProvider)).await
    }

    /// Spawns with adjusted settings and another payment provider.
    pub async fn spawn_with_provider(
        tune: impl FnOnce(&mut Settings),
        provider: std::sync::Arc<dyn PaymentProvider>,
    ) -> TestApp {
        let db = TestDb::create();
        let mut settings = Settings::for_database(&db.url);
        settings.pool_size = 4;
        settings.workers = Some(2);
        // Tests run the maintenance sweep themselves when they need it.
        settings.sweep_interval = std::time::Duration::ZERO;
        // The webhook worker runs only in the tests that enable it.
        settings.webhook_poll_interval = std::time::Duration::ZERO;
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
