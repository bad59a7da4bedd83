//! Crash test (issue 10 §7): order, payment and stock invariants survive `kill -9` under load.
//!
//! It starts the server binary (`$BOOKSTORE_BIN`, the release build through
//! `scripts/crash-test.sh`) on a free port of 127.0.0.1 against `$BENCH_DATABASE_URL` (an SQLite
//! path or a `postgres://` URL of an EMPTY database), with the built-in test payment provider
//! journaling every charge and refund to a file (`BOOKSTORE_TEST_PROVIDER_JOURNAL`), a short card
//! payment lease (`BOOKSTORE_PAYMENT_LEASE_SECS`, 2 s) and a sweep every second. It creates the
//! admin with the CLI, registers customers, imports books and stocks them with a receipt. Then:
//!
//! * `$CRASH_CLIENTS` (16) concurrent clients loop: staff clients place an order for a customer
//!   (or a walk-in), pay it by card (`tok_visa`; now and then `tok_declined` first), then fulfil
//!   it, cancel it (refunding the card) or leave it paid; customer clients place their own order
//!   and pay it (or cancel it unpaid), and staff fulfil or cancel it; two clients post receipts.
//!   Orders, payments and receipts carry an `Idempotency-Key`; on a transport error, a 5xx or a
//!   409 "in progress" the client retries with the same key (and body), as a client should.
//! * Meanwhile the server is killed with SIGKILL `$CRASH_KILLS` (3) times, each after a random
//!   delay of load (`$CRASH_MIN_GAP_MS`..`$CRASH_MAX_GAP_MS`, 2000..8000 ms), and restarted at
//!   once on the same port and database; the load goes on for `$CRASH_TAIL_SECS` (5) after the
//!   last restart.
//! * Then it waits (polling, at most `$CRASH_SETTLE_SECS`, 180) until the server's sweep has
//!   settled every card payment left `processing` and every refund left `pending`, stops the
//!   server and checks the database (and the provider's journal): one line per invariant, then a
//!   verdict. Any failed invariant makes the exit status 1.
//!
//! The random choices come from `$CRASH_SEED` (default: the clock), printed so a run can be
//! replayed (the kills' moments relative to the server's work are not reproducible).
//! `$CRASH_DIR` is where the journal and the server's log go (default: a new temporary
//! directory); the script keeps them in `bench-out/` when the test fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)] // what only the load benchmarks use
mod support;

use bookstore::db::schema::{idempotency_keys, payments, refunds};
use bookstore::db::{DbConn, Pool};
use bookstore::orders::provider::{Decline, JournalEntry, ProviderCharge};
use diesel::prelude::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{
    env_num, http_client, import_generated_books, login, shorten, BenchResult, Rng, Server,
    ServerConfig, ServerOptions,
};

const ADMIN_EMAIL: &str = "crash-test@example.com";
const ADMIN_PASSWORD: &str = "crash-test-password-2026";
const JWT_SECRET: &str = "crash-test-secret-0123456789abcdef0123456789";
const CUSTOMER_PASSWORD: &str = "crash-customer-password-2026";
/// How long one request is retried (server down, 5xx, key in progress) before the client gives up.
const GIVE_UP: Duration = Duration::from_secs(120);
/// Receipt clients among the clients (the rest place orders).
const RECEIPT_CLIENTS: usize = 2;
/// Order statuses that hold a reservation (src/orders/service.rs: created, paid; released by
/// cancel/expire, consumed by fulfil).
const RESERVING: &str = "'pending_payment', 'paid'";
/// Order statuses reached through fulfilment (its sale movements written).
const FULFILLED: &str = "'fulfilled', 'completed', 'partially_returned', 'returned'";
/// Order statuses whose total must be paid.
const PAID: &str = "'paid', 'fulfilled', 'completed'";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    support::exit_code("crash_test", run().await)
}

struct Config {
    server: ServerConfig,
    dir: PathBuf,
    clients: usize,
    books: u64,
    stock: i64,
    kills: u64,
    min_gap_ms: u64,
    max_gap_ms: u64,
    tail_secs: u64,
    settle_secs: u64,
    lease_secs: u64,
    seed: u64,
}

impl Config {
    fn from_env() -> BenchResult<Config> {
        let server = ServerConfig::from_env(
            "scripts/crash-test.sh",
            JWT_SECRET,
            ADMIN_EMAIL,
            ADMIN_PASSWORD,
        )?;
        let dir = match std::env::var_os("CRASH_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => std::env::temp_dir().join(format!("crash-test-{}", std::process::id())),
        };
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        let min_gap_ms = env_num("CRASH_MIN_GAP_MS", 2_000)?;
        Ok(Config {
            server,
            dir,
            clients: env_num("CRASH_CLIENTS", 16)?.max(RECEIPT_CLIENTS as u64 + 1) as usize,
            books: env_num("CRASH_BOOKS", 8)?.max(2),
            stock: env_num("CRASH_STOCK", 5_000)?.clamp(1, 100_000) as i64,
            kills: env_num("CRASH_KILLS", 3)?,
            min_gap_ms,
            max_gap_ms: env_num("CRASH_MAX_GAP_MS", 8_000)?.max(min_gap_ms),
            tail_secs: env_num("CRASH_TAIL_SECS", 5)?,
            settle_secs: env_num("CRASH_SETTLE_SECS", 180)?,
            lease_secs: env_num("CRASH_LEASE_SECS", 2)?.clamp(1, 60),
            seed: env_num("CRASH_SEED", clock)?,
        })
    }

    fn journal(&self) -> PathBuf {
        self.dir.join("provider-journal.jsonl")
    }

    fn log(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    fn options(&self, port: Option<u16>) -> ServerOptions {
        let env = [
            (
                "BOOKSTORE_TEST_PROVIDER_JOURNAL",
                self.journal().display().to_string(),
            ),
            ("BOOKSTORE_PAYMENT_LEASE_SECS", self.lease_secs.to_string()),
            ("BOOKSTORE_SWEEP_INTERVAL_SECS", "1".to_owned()),
            ("BOOKSTORE_PAYMENT_METHODS", "card,cash".to_owned()),
        ];
        ServerOptions {
            port,
            env: env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            log: Some(self.log()),
        }
    }
}

async fn run() -> BenchResult<()> {
    let cfg = Config::from_env()?;
    cfg.server.print_header("crash_test");
    println!(
        "plan:          {} clients ({} posting receipts), {} books of {} copies, {} kills after \
         {}..{} ms of load each, {} s of load after the last; payment lease {} s; seed {}",
        cfg.clients,
        RECEIPT_CLIENTS,
        cfg.books,
        cfg.stock,
        cfg.kills,
        cfg.min_gap_ms,
        cfg.max_gap_ms,
        cfg.tail_secs,
        cfg.lease_secs,
        cfg.seed
    );
    println!("journal, log:  {}", cfg.dir.display());
    let _ = std::fs::remove_file(cfg.journal());
    let _ = std::fs::remove_file(cfg.log());

    cfg.server.create_admin()?;
    let mut server = Server::start_with(&cfg.server, &cfg.options(None))?;
    let client = http_client(cfg.clients * 2)?;
    server.wait_ready(&client).await?;
    let (admin, _) = login(&client, &server.base, &cfg.server).await?;
    let setup = setup(&client, &server.base, &admin, &cfg).await?;
    println!(
        "seeded:        {} books, {} customers",
        setup.books.len(),
        setup.customers.len()
    );

    let shared = Arc::new(Shared {
        client: client.clone(),
        base: server.base.clone(),
        admin,
        books: setup.books.clone(),
        customers: setup.customers.iter().map(|c| c.id).collect(),
        stop: AtomicBool::new(false),
        stats: Stats::default(),
    });
    let pool = bookstore::db::build_pool(&cfg.server.database_url, 2)?;
    let started = Instant::now();
    let mut workers = Vec::new();
    for n in 0..cfg.clients {
        let sh = shared.clone();
        let rng = Rng(cfg.seed ^ (0x1000 + n as u64).wrapping_mul(0x9E37_79B9));
        let role = if n < RECEIPT_CLIENTS {
            Role::Receipts
        } else if n % 3 == 0 {
            let c = &setup.customers[n % setup.customers.len()];
            Role::Customer(c.token.clone())
        } else {
            Role::Staff
        };
        workers.push(tokio::spawn(client_loop(sh, n, role, rng)));
    }

    // The killer: load, kill -9, restart at once on the same port and database.
    let mut rng = Rng(cfg.seed);
    for k in 1..=cfg.kills {
        let gap = rng.between(cfg.min_gap_ms, cfg.max_gap_ms);
        tokio::time::sleep(Duration::from_millis(gap)).await;
        let before = shared.stats.snapshot();
        server.kill()?;
        let killed_at = started.elapsed();
        shared.stats.kills.fetch_add(1, Ordering::Relaxed);
        let caught = in_flight(&pool, &cfg.journal())?;
        let port = server.port;
        server = Server::start_with(&cfg.server, &cfg.options(Some(port)))?;
        server.wait_ready(&client).await?;
        println!(
            "kill {k}:        SIGKILL at {:.1} s (after {gap} ms of load; {} orders placed, {} paid \
             so far; {caught}); ready again after {:.1} s",
            killed_at.as_secs_f64(),
            before.orders,
            before.paid,
            (started.elapsed() - killed_at).as_secs_f64()
        );
    }
    tokio::time::sleep(Duration::from_secs(cfg.tail_secs)).await;
    shared.stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.map_err(|e| format!("a client panicked: {e}"))?;
    }
    println!(
        "load:          stopped after {:.1} s; waiting for the sweep to settle payments and refunds",
        started.elapsed().as_secs_f64()
    );

    settle(&pool, Duration::from_secs(cfg.settle_secs)).await?;
    drop(server); // stopped, so that nothing changes under the checks

    let stats = shared.stats.snapshot();
    let journal = read_journal(&cfg.journal())?;
    let log = LogSummary::read(&cfg.log());
    let samples = shared
        .stats
        .samples
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    print_happened(&pool, &stats, &samples, &journal, &log)?;
    let results = check(&pool, &journal, &cfg)?;
    let failed = results.iter().filter(|r| !r.ok).count();
    let verdict = if failed == 0 {
        format!(
            "VERDICT: ok, {} invariants held through {} kill -9 restarts ({} backend, seed {})",
            results.len(),
            stats.kills,
            cfg.server.backend(),
            cfg.seed
        )
    } else {
        format!(
            "VERDICT: FAILED, {failed} of {} invariants broken ({} backend, seed {}; journal and \
             server log in {})",
            results.len(),
            cfg.server.backend(),
            cfg.seed,
            cfg.dir.display()
        )
    };
    let mut summary = format!(
        "crash test, {} ({} clients, {} kills, seed {}):\n",
        cfg.server.backend(),
        cfg.clients,
        stats.kills,
        cfg.seed
    );
    for line in &results {
        summary.push_str(&format!("{line}\n"));
    }
    summary.push_str(&verdict);
    support::report(&summary, support::out_path().as_ref())?;
    if failed == 0 {
        Ok(())
    } else {
        Err(format!("{failed} invariant(s) failed"))
    }
}

// ---------------------------------------------------------------------------------------------
// Setup

struct Customer {
    id: i64,
    token: String,
}

struct Setup {
    books: Vec<(i64, i64)>,
    customers: Vec<Customer>,
}

async fn setup(
    client: &reqwest::Client,
    base: &str,
    admin: &str,
    cfg: &Config,
) -> BenchResult<Setup> {
    import_generated_books(client, base, admin, cfg.books, "Crash Test").await?;
    let (status, body) = send(
        client,
        base,
        reqwest::Method::GET,
        "/api/v1/books?per_page=100",
        admin,
        None,
        None,
    )
    .await
    .map_err(|e| format!("GET /books: {e}"))?;
    if status != 200 {
        return Err(format!("GET /books answered {status}: {body}"));
    }
    let books: Vec<(i64, i64)> = body["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|b| Some((b["id"].as_i64()?, b["list_price_cents"].as_i64()?)))
                .collect()
        })
        .unwrap_or_default();
    if books.len() as u64 != cfg.books {
        return Err(format!(
            "expected {} books, found {}",
            cfg.books,
            books.len()
        ));
    }
    let lines: Vec<Value> = books
        .iter()
        .map(|(id, _)| json!({"book_id": id, "quantity": cfg.stock, "unit_cost_cents": 500}))
        .collect();
    let receipt = json!({"supplier": "crash test", "note": "opening stock", "lines": lines});
    let (status, body) = send(
        client,
        base,
        reqwest::Method::POST,
        "/api/v1/inventory/receipts",
        admin,
        Some(&receipt),
        None,
    )
    .await
    .map_err(|e| format!("opening receipt: {e}"))?;
    if status != 201 {
        return Err(format!("the opening receipt answered {status}: {body}"));
    }
    let mut customers = Vec::new();
    for n in 0..5 {
        let reg = json!({
            "email": format!("crash-customer-{n}@example.com"),
            "password": CUSTOMER_PASSWORD,
            "name": format!("Crash Customer {n}"),
        });
        let (status, body) = send(
            client,
            base,
            reqwest::Method::POST,
            "/api/v1/auth/register",
            "",
            Some(&reg),
            None,
        )
        .await
        .map_err(|e| format!("register: {e}"))?;
        let (Some(token), Some(id)) = (
            body["access_token"].as_str(),
            body["user"]["customer_id"].as_i64(),
        ) else {
            return Err(format!("register answered {status}: {body}"));
        };
        customers.push(Customer {
            id,
            token: token.to_owned(),
        });
    }
    Ok(Setup { books, customers })
}

// ---------------------------------------------------------------------------------------------
// The clients

#[derive(Default)]
struct Stats {
    requests: AtomicU64,
    transport_errors: AtomicU64,
    server_errors: AtomicU64,
    unavailable: AtomicU64,
    in_progress: AtomicU64,
    orders: AtomicU64,
    short: AtomicU64,
    paid: AtomicU64,
    declined: AtomicU64,
    fulfilled: AtomicU64,
    cancelled_unpaid: AtomicU64,
    cancelled_paid: AtomicU64,
    receipts: AtomicU64,
    gave_up: AtomicU64,
    unexpected: AtomicU64,
    kills: AtomicU64,
    /// The first few 5xx and unexpected answers, to show.
    samples: Mutex<Vec<String>>,
}

#[derive(Debug, Clone, Copy)]
struct StatsSnapshot {
    requests: u64,
    transport_errors: u64,
    server_errors: u64,
    unavailable: u64,
    in_progress: u64,
    orders: u64,
    short: u64,
    paid: u64,
    declined: u64,
    fulfilled: u64,
    cancelled_unpaid: u64,
    cancelled_paid: u64,
    receipts: u64,
    gave_up: u64,
    unexpected: u64,
    kills: u64,
}

impl Stats {
    fn snapshot(&self) -> StatsSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            requests: g(&self.requests),
            transport_errors: g(&self.transport_errors),
            server_errors: g(&self.server_errors),
            unavailable: g(&self.unavailable),
            in_progress: g(&self.in_progress),
            orders: g(&self.orders),
            short: g(&self.short),
            paid: g(&self.paid),
            declined: g(&self.declined),
            fulfilled: g(&self.fulfilled),
            cancelled_unpaid: g(&self.cancelled_unpaid),
            cancelled_paid: g(&self.cancelled_paid),
            receipts: g(&self.receipts),
            gave_up: g(&self.gave_up),
            unexpected: g(&self.unexpected),
            kills: g(&self.kills),
        }
    }

    fn sample(&self, what: String) {
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        if samples.len() < 12 {
            samples.push(what);
        }
    }
}

struct Shared {
    client: reqwest::Client,
    base: String,
    admin: String,
    /// (id, list price) of the books.
    books: Vec<(i64, i64)>,
    customers: Vec<i64>,
    stop: AtomicBool,
    stats: Stats,
}

enum Role {
    /// Uses the admin's token: orders for a customer or a walk-in.
    Staff,
    /// Orders with its own token; staff (the admin) fulfil or cancel once it is paid.
    Customer(String),
    Receipts,
}

/// One request as sent (without retries): status and JSON body (Null if none), or the
/// transport error.
async fn send(
    client: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
    key: Option<&str>,
) -> Result<(u16, Value), String> {
    let mut req = client.request(method, format!("{base}{path}"));
    if !token.is_empty() {
        req = req.bearer_auth(token);
    }
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    if let Some(body) = body {
        req = req.json(body);
    }
    let res = req.send().await.map_err(|e| e.to_string())?;
    let status = res.status().as_u16();
    let text = res.text().await.map_err(|e| e.to_string())?;
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, json))
}

/// What a retried request finally got.
struct Answer {
    status: u16,
    body: Value,
}

/// Sends a request until it gets an answer that is not a transport error, a 5xx or a 409 "still
/// in progress", with the same key and body each time, for at most [`GIVE_UP`]. `None`: gave up.
async fn call(
    sh: &Shared,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
    key: Option<&str>,
) -> Option<Answer> {
    let deadline = Instant::now() + GIVE_UP;
    loop {
        sh.stats.requests.fetch_add(1, Ordering::Relaxed);
        let pause = match send(&sh.client, &sh.base, method.clone(), path, token, body, key).await {
            Err(_) => {
                sh.stats.transport_errors.fetch_add(1, Ordering::Relaxed);
                Duration::from_millis(200)
            }
            Ok((status, body)) if status >= 500 => {
                sh.stats.server_errors.fetch_add(1, Ordering::Relaxed);
                if status == 503 {
                    sh.stats.unavailable.fetch_add(1, Ordering::Relaxed);
                } else {
                    sh.stats.sample(format!(
                        "{method} {path} -> {status}: {}",
                        shorten(&body.to_string(), 200)
                    ));
                }
                Duration::from_millis(300)
            }
            Ok((409, body))
                if body["type"]
                    .as_str()
                    .is_some_and(|t| t.ends_with("/in-progress")) =>
            {
                sh.stats.in_progress.fetch_add(1, Ordering::Relaxed);
                Duration::from_millis(300)
            }
            Ok((status, body)) => return Some(Answer { status, body }),
        };
        if Instant::now() + pause > deadline {
            sh.stats.gave_up.fetch_add(1, Ordering::Relaxed);
            sh.stats
                .sample(format!("{method} {path}: gave up after {GIVE_UP:?}"));
            return None;
        }
        tokio::time::sleep(pause).await;
    }
}

fn unexpected(sh: &Shared, what: &str, answer: &Answer) {
    sh.stats.unexpected.fetch_add(1, Ordering::Relaxed);
    sh.stats.sample(format!(
        "{what} -> {}: {}",
        answer.status,
        shorten(&answer.body.to_string(), 200)
    ));
}

async fn client_loop(sh: Arc<Shared>, n: usize, role: Role, mut rng: Rng) {
    let mut round = 0u64;
    while !sh.stop.load(Ordering::Relaxed) {
        round += 1;
        let key = format!("crash-{n}-{round}");
        match &role {
            Role::Receipts => {
                receipt(&sh, &key, &mut rng).await;
                tokio::time::sleep(Duration::from_millis(rng.between(50, 250))).await;
            }
            Role::Staff => order_round(&sh, &key, None, &mut rng).await,
            Role::Customer(token) => order_round(&sh, &key, Some(token), &mut rng).await,
        }
    }
}

async fn receipt(sh: &Shared, key: &str, rng: &mut Rng) {
    let mut books: Vec<i64> = sh.books.iter().map(|b| b.0).collect();
    let count = rng.between(1, 3) as usize;
    let lines: Vec<Value> = (0..count)
        .map(|_| {
            let i = rng.below(books.len() as u64) as usize;
            let book = books.swap_remove(i);
            json!({"book_id": book, "quantity": rng.between(5, 40), "unit_cost_cents": rng.between(300, 900)})
        })
        .collect();
    let body = json!({"supplier": "crash test", "note": key, "lines": lines});
    let path = "/api/v1/inventory/receipts";
    match call(
        sh,
        reqwest::Method::POST,
        path,
        &sh.admin,
        Some(&body),
        Some(key),
    )
    .await
    {
        Some(a) if a.status == 201 => {
            sh.stats.receipts.fetch_add(1, Ordering::Relaxed);
        }
        Some(a) => unexpected(sh, "POST /inventory/receipts", &a),
        None => {}
    }
}

/// Places an order, pays it and then fulfils, cancels or leaves it. `customer`: the customer's
/// token (they order and pay themselves), else staff order for a customer or a walk-in.
async fn order_round(sh: &Shared, key: &str, customer: Option<&String>, rng: &mut Rng) {
    let token = customer.map_or(sh.admin.as_str(), String::as_str);
    let mut books = sh.books.clone();
    let count = rng.between(1, 3) as usize;
    let lines: Vec<Value> = (0..count)
        .map(|_| {
            let i = rng.below(books.len() as u64) as usize;
            let (book, _) = books.swap_remove(i);
            json!({"book_id": book, "quantity": rng.between(1, 3)})
        })
        .collect();
    let mut order = json!({"lines": lines, "notes": key});
    if customer.is_none() && rng.below(4) != 0 {
        order["customer_id"] = json!(*rng.pick(&sh.customers));
    }
    let order_key = format!("{key}-order");
    let placed = call(
        sh,
        reqwest::Method::POST,
        "/api/v1/orders",
        token,
        Some(&order),
        Some(&order_key),
    )
    .await;
    let id = match placed {
        Some(a) if a.status == 201 => match a.body["id"].as_i64() {
            Some(id) => id,
            None => return unexpected(sh, "POST /orders", &a),
        },
        Some(a) if a.status == 409 => {
            sh.stats.short.fetch_add(1, Ordering::Relaxed);
            return;
        }
        Some(a) => return unexpected(sh, "POST /orders", &a),
        None => return,
    };
    sh.stats.orders.fetch_add(1, Ordering::Relaxed);

    // Some orders are cancelled unpaid, by their customer or by staff.
    if rng.below(10) == 0 {
        cancel(sh, id, token, false).await;
        return;
    }
    let pay_path = format!("/api/v1/orders/{id}/payments");
    if rng.below(15) == 0 {
        let declined = json!({"method": "card", "token": "tok_declined"});
        match call(
            sh,
            reqwest::Method::POST,
            &pay_path,
            token,
            Some(&declined),
            Some(&format!("{key}-declined")),
        )
        .await
        {
            Some(a) if a.status == 402 => {
                sh.stats.declined.fetch_add(1, Ordering::Relaxed);
            }
            Some(a) => unexpected(sh, "POST /payments (tok_declined)", &a),
            None => return,
        }
    }
    let card = json!({"method": "card", "token": "tok_visa"});
    match call(
        sh,
        reqwest::Method::POST,
        &pay_path,
        token,
        Some(&card),
        Some(&format!("{key}-pay")),
    )
    .await
    {
        Some(a) if a.status == 201 => {
            sh.stats.paid.fetch_add(1, Ordering::Relaxed);
        }
        Some(a) => return unexpected(sh, "POST /payments", &a),
        None => return,
    }
    match rng.below(20) {
        0..=12 => {
            let path = format!("/api/v1/orders/{id}/fulfil");
            match call(sh, reqwest::Method::POST, &path, &sh.admin, None, None).await {
                Some(a) if a.status == 200 || already(&a, "fulfilled") => {
                    sh.stats.fulfilled.fetch_add(1, Ordering::Relaxed);
                }
                Some(a) => unexpected(sh, "POST /fulfil", &a),
                None => {}
            }
        }
        13..=17 => cancel(sh, id, &sh.admin, true).await,
        _ => {} // left paid
    }
}

/// A 409 saying the order already is `status`: a retry after the first try committed.
fn already(a: &Answer, status: &str) -> bool {
    a.status == 409 && a.body["current_status"].as_str() == Some(status)
}

async fn cancel(sh: &Shared, id: i64, token: &str, paid: bool) {
    let path = format!("/api/v1/orders/{id}/cancel");
    let body = json!({"reason": "crash test"});
    match call(sh, reqwest::Method::POST, &path, token, Some(&body), None).await {
        Some(a) if a.status == 200 || already(&a, "cancelled") => {
            let counter = if paid {
                &sh.stats.cancelled_paid
            } else {
                &sh.stats.cancelled_unpaid
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        Some(a) => unexpected(sh, "POST /cancel", &a),
        None => {}
    }
}

// ---------------------------------------------------------------------------------------------
// After the load

/// What a kill left behind (read while the server is down): card payments `processing`, how
/// many of them the provider had already charged (the charge recorded nowhere yet), and refunds
/// `pending`.
fn in_flight(pool: &Pool, journal: &Path) -> BenchResult<String> {
    let mut conn = pool.get().map_err(|e| format!("no connection: {e}"))?;
    let conn: &mut DbConn = &mut conn;
    let keys: Vec<Option<String>> = payments::table
        .filter(payments::status.eq("processing"))
        .select(payments::provider_key)
        .load(conn)
        .map_err(|e| e.to_string())?;
    let journal = read_journal(journal)?;
    let charged: HashSet<&str> = journal.successful().map(|(key, _, _)| key).collect();
    let unrecorded = keys
        .iter()
        .flatten()
        .filter(|k| charged.contains(k.as_str()))
        .count();
    let pending = scalar(
        conn,
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM refunds WHERE status = 'pending'",
    )?;
    Ok(format!(
        "left {} payments processing, {unrecorded} of them charged, {pending} refunds pending",
        keys.len()
    ))
}

/// Waits until no card payment is `processing` and no refund `pending` (the sweep settles them).
async fn settle(pool: &Pool, bound: Duration) -> BenchResult<()> {
    let started = Instant::now();
    let mut last = (-1, -1);
    loop {
        let mut conn = pool.get().map_err(|e| format!("no connection: {e}"))?;
        let processing = scalar(
            &mut conn,
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM payments WHERE status = 'processing'",
        )?;
        let pending = scalar(
            &mut conn,
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM refunds WHERE status = 'pending'",
        )?;
        drop(conn);
        if (processing, pending) != last {
            println!(
                "settling:      {:>5.1} s: {processing} payments processing, {pending} refunds pending",
                started.elapsed().as_secs_f64()
            );
            last = (processing, pending);
        }
        if processing == 0 && pending == 0 {
            return Ok(());
        }
        if started.elapsed() > bound {
            println!(
                "settling:      gave up after {} s (the checks below will show what is left)",
                bound.as_secs()
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[derive(diesel::QueryableByName)]
struct Num {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn scalar(conn: &mut DbConn, sql: &str) -> BenchResult<i64> {
    bookstore::per_backend!(conn, |c| diesel::sql_query(sql).get_result::<Num>(c))
        .map(|r| r.n)
        .map_err(|e| format!("{sql}: {e}"))
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::Text)]
    k: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// `SELECT <col> AS k, COUNT(*) AS n FROM <table> GROUP BY <col>`, as `k n, k n`.
fn counts_by(conn: &mut DbConn, table: &str, col: &str) -> BenchResult<String> {
    let sql = format!(
        "SELECT {col} AS k, CAST(COUNT(*) AS BIGINT) AS n FROM {table} GROUP BY {col} ORDER BY {col}"
    );
    let rows: Vec<Count> = bookstore::per_backend!(conn, |c| diesel::sql_query(&sql)
        .load::<Count>(c))
    .map_err(|e| format!("{sql}: {e}"))?;
    Ok(if rows.is_empty() {
        "none".to_owned()
    } else {
        rows.iter()
            .map(|r| format!("{} {}", r.n, r.k))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// The provider's journal: its charges and refunds, and the pieces of lines a kill cut short.
#[derive(Default)]
struct Journal {
    charges: Vec<(String, i64, Result<ProviderCharge, Decline>)>,
    /// (key, charge reference, amount, refund reference)
    refunds: Vec<(String, String, i64, String)>,
    torn: Vec<String>,
    /// Whole entries found only inside torn lines: a restarted provider, which skips such
    /// lines, forgot them.
    forgotten: usize,
}

impl Journal {
    fn successful(&self) -> impl Iterator<Item = (&str, i64, &str)> {
        self.charges.iter().filter_map(|(key, amount, outcome)| {
            outcome
                .as_ref()
                .ok()
                .map(|c| (key.as_str(), *amount, c.reference.as_str()))
        })
    }
}

/// Reads the journal; a line a kill cut short (and another entry appended to it) is kept apart,
/// and every whole entry found in it is still read.
fn read_journal(path: &Path) -> BenchResult<Journal> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let mut journal = Journal::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let entries: Vec<JournalEntry> = match serde_json::from_str(line) {
            Ok(entry) => vec![entry],
            Err(_) => {
                journal.torn.push(shorten(line, 300));
                let whole: Vec<JournalEntry> = line
                    .match_indices("{\"kind\":")
                    .filter_map(|(at, _)| {
                        serde_json::Deserializer::from_str(&line[at..])
                            .into_iter::<JournalEntry>()
                            .next()
                            .and_then(Result::ok)
                    })
                    .collect();
                journal.forgotten += whole.len();
                whole
            }
        };
        for entry in entries {
            match entry {
                JournalEntry::Charge {
                    key,
                    amount_cents,
                    outcome,
                } => journal.charges.push((key, amount_cents, outcome)),
                JournalEntry::Refund {
                    key,
                    charge,
                    amount_cents,
                    reference,
                } => journal.refunds.push((key, charge, amount_cents, reference)),
            }
        }
    }
    Ok(journal)
}

/// What the server logged (at `warn` and above).
#[derive(Default)]
struct LogSummary {
    errors: usize,
    warnings: usize,
    panics: usize,
    first_errors: Vec<String>,
}

impl LogSummary {
    fn read(path: &Path) -> LogSummary {
        let mut s = LogSummary::default();
        let Ok(text) = std::fs::read_to_string(path) else {
            return s;
        };
        for line in text.lines() {
            if line.contains(" ERROR ") {
                s.errors += 1;
                if s.first_errors.len() < 5 {
                    s.first_errors.push(shorten(line, 240));
                }
            } else if line.contains(" WARN ") {
                s.warnings += 1;
            }
            if line.contains("panicked") {
                s.panics += 1;
            }
        }
        s
    }
}

fn print_happened(
    pool: &Pool,
    s: &StatsSnapshot,
    samples: &[String],
    journal: &Journal,
    log: &LogSummary,
) -> BenchResult<()> {
    let mut conn = pool.get().map_err(|e| format!("no connection: {e}"))?;
    let conn: &mut DbConn = &mut conn;
    println!();
    println!(
        "clients:       {} requests; {} orders placed ({} refused for stock), {} paid ({} declined \
         first), {} fulfilled, {} cancelled unpaid, {} cancelled paid, {} receipts",
        s.requests,
        s.orders,
        s.short,
        s.paid,
        s.declined,
        s.fulfilled,
        s.cancelled_unpaid,
        s.cancelled_paid,
        s.receipts
    );
    println!(
        "faults seen:   {} kills; {} transport errors, {} 5xx ({} of them 503), {} 409 in progress, \
         {} gave up, {} unexpected answers",
        s.kills,
        s.transport_errors,
        s.server_errors,
        s.unavailable,
        s.in_progress,
        s.gave_up,
        s.unexpected
    );
    for sample in samples {
        println!("  {sample}");
    }
    println!("orders:        {}", counts_by(conn, "orders", "status")?);
    println!("payments:      {}", counts_by(conn, "payments", "status")?);
    println!(
        "  failed:      {}",
        counts_by(
            conn,
            "(SELECT COALESCE(failure_code, '?') AS code FROM payments WHERE status = 'failed') f",
            "code"
        )?
    );
    println!("refunds:       {}", counts_by(conn, "refunds", "status")?);
    println!(
        "receipts:      {} (opening stock included)",
        scalar(
            conn,
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM stock_receipts"
        )?
    );
    println!(
        "provider:      {} charges ({} succeeded), {} refunds; {} torn journal lines",
        journal.charges.len(),
        journal.successful().count(),
        journal.refunds.len(),
        journal.torn.len()
    );
    for torn in &journal.torn {
        println!("  torn: {torn}");
    }
    println!(
        "server log:    {} errors, {} warnings, {} panics",
        log.errors, log.warnings, log.panics
    );
    for line in &log.first_errors {
        println!("  {line}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The invariants

struct Checked {
    n: usize,
    name: &'static str,
    ok: bool,
    detail: String,
}

impl std::fmt::Display for Checked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>2} {:<44} {:<6} {}",
            self.n,
            self.name,
            if self.ok { "ok" } else { "FAILED" },
            self.detail
        )
    }
}

fn check(pool: &Pool, journal: &Journal, cfg: &Config) -> BenchResult<Vec<Checked>> {
    let mut conn = pool.get().map_err(|e| format!("no connection: {e}"))?;
    let conn: &mut DbConn = &mut conn;
    let mut out = Vec::new();
    let mut push = |name: &'static str, ok: bool, detail: String| {
        let n = out.len() + 1;
        out.push(Checked {
            n,
            name,
            ok,
            detail,
        });
    };
    let q = |conn: &mut DbConn, sql: &str| {
        scalar(
            conn,
            &format!("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM {sql}"),
        )
    };

    // 1
    let orders = q(conn, "orders")?;
    let no_lines = q(
        conn,
        "orders o WHERE NOT EXISTS (SELECT 1 FROM order_lines l WHERE l.order_id = o.id)",
    )?;
    let no_events = q(
        conn,
        "orders o WHERE NOT EXISTS (SELECT 1 FROM order_events e WHERE e.order_id = o.id)",
    )?;
    let bad_lines = q(
        conn,
        "order_lines WHERE line_total_cents <> quantity * unit_price_cents OR quantity <= 0",
    )?;
    let bad_totals = q(
        conn,
        "orders o JOIN (SELECT order_id, CAST(SUM(quantity * unit_price_cents) AS BIGINT) AS s \
         FROM order_lines GROUP BY order_id) l ON l.order_id = o.id \
         WHERE o.total_cents <> l.s OR o.subtotal_cents <> l.s",
    )?;
    push(
        "orders have lines, events, total = lines",
        orders > 0 && no_lines + no_events + bad_lines + bad_totals == 0,
        format!(
            "{orders} orders; {no_lines} without lines, {no_events} without events, {bad_lines} \
             lines with total <> qty x unit price, {bad_totals} orders with total <> sum of lines"
        ),
    );

    // 2
    let last_differs = q(
        conn,
        "orders o WHERE o.status <> (SELECT e.to_status FROM order_events e \
         WHERE e.order_id = o.id ORDER BY e.id DESC LIMIT 1)",
    )?;
    let broken_chain = q(
        conn,
        "order_events e WHERE \
         (e.from_status IS NULL AND EXISTS (SELECT 1 FROM order_events p \
            WHERE p.order_id = e.order_id AND p.id < e.id)) \
         OR (e.from_status IS NOT NULL AND NOT EXISTS (SELECT 1 FROM order_events p \
            WHERE p.order_id = e.order_id AND p.id < e.id)) \
         OR e.from_status <> (SELECT p.to_status FROM order_events p \
            WHERE p.order_id = e.order_id AND p.id < e.id ORDER BY p.id DESC LIMIT 1)",
    )?;
    let events = q(conn, "order_events")?;
    push(
        "last event's status is the order's",
        last_differs + broken_chain == 0,
        format!(
            "{events} events; {last_differs} orders whose last event differs, {broken_chain} \
             events not following the previous one"
        ),
    );

    // 3
    let books = q(conn, "stock_levels")?;
    let ledger = q(
        conn,
        "stock_levels s LEFT JOIN (SELECT book_id, CAST(SUM(quantity) AS BIGINT) AS q \
         FROM stock_movements GROUP BY book_id) m ON m.book_id = s.book_id \
         WHERE s.on_hand <> COALESCE(m.q, 0)",
    )?;
    let movements = q(conn, "stock_movements")?;
    push(
        "on_hand = sum of the ledger",
        books > 0 && ledger == 0,
        format!("{books} books, {movements} movements; {ledger} books off"),
    );

    // 4
    let reserved_off = q(
        conn,
        &format!(
            "stock_levels s LEFT JOIN (SELECT l.book_id AS book_id, \
             CAST(SUM(l.quantity) AS BIGINT) AS q FROM order_lines l \
             JOIN orders o ON o.id = l.order_id WHERE o.status IN ({RESERVING}) \
             GROUP BY l.book_id) h ON h.book_id = s.book_id WHERE s.reserved <> COALESCE(h.q, 0)"
        ),
    )?;
    let oversold = q(
        conn,
        "stock_levels WHERE reserved > on_hand OR reserved < 0 OR on_hand < 0",
    )?;
    let reserved = scalar(
        conn,
        "SELECT CAST(COALESCE(SUM(reserved), 0) AS BIGINT) AS n FROM stock_levels",
    )?;
    push(
        "reserved = open lines of live orders",
        reserved_off + oversold == 0,
        format!(
            "{reserved} copies reserved; {reserved_off} books off, {oversold} books with \
             reserved > on_hand or negative"
        ),
    );

    // 5
    let paid_orders = q(conn, &format!("orders WHERE status IN ({PAID})"))?;
    let paid_off = q(
        conn,
        &format!(
            "orders o WHERE o.status IN ({PAID}) AND o.total_cents <> COALESCE((SELECT \
             CAST(SUM(p.amount_cents) AS BIGINT) FROM payments p WHERE p.order_id = o.id \
             AND p.status = 'succeeded'), 0)"
        ),
    )?;
    let unpaid_with_money = q(
        conn,
        "orders o WHERE o.status = 'pending_payment' AND EXISTS (SELECT 1 FROM payments p \
         WHERE p.order_id = o.id AND p.status = 'succeeded')",
    )?;
    push(
        "paid orders: succeeded payments = total",
        paid_off + unpaid_with_money == 0,
        format!(
            "{paid_orders} paid/fulfilled orders; {paid_off} whose succeeded payments <> total, \
             {unpaid_with_money} unpaid orders with a succeeded payment"
        ),
    );

    // 6
    let sales_off = q(
        conn,
        &format!(
            "stock_levels s WHERE COALESCE((SELECT CAST(SUM(m.quantity) AS BIGINT) \
             FROM stock_movements m WHERE m.book_id = s.book_id AND m.kind = 'sale'), 0) \
             <> -COALESCE((SELECT CAST(SUM(l.quantity) AS BIGINT) FROM order_lines l \
             JOIN orders o ON o.id = l.order_id WHERE l.book_id = s.book_id \
             AND o.status IN ({FULFILLED})), 0)"
        ),
    )?;
    let sale_orders_off = sale_orders_off(conn)?;
    let sales = q(conn, "stock_movements WHERE kind = 'sale'")?;
    push(
        "sale movements = fulfilled lines",
        sales_off + sale_orders_off == 0,
        format!(
            "{sales} sale movements; {sales_off} books off, {sale_orders_off} orders whose \
             sale movements <> their lines (fulfilled) or are not none (not fulfilled)"
        ),
    );

    // 7
    let cancelled_paid = q(
        conn,
        "orders o WHERE o.status = 'cancelled' AND EXISTS (SELECT 1 FROM payments p \
         WHERE p.order_id = o.id AND p.status = 'succeeded')",
    )?;
    let unrefunded = q(
        conn,
        "orders o WHERE o.status = 'cancelled' AND COALESCE((SELECT \
         CAST(SUM(p.amount_cents) AS BIGINT) FROM payments p WHERE p.order_id = o.id \
         AND p.status = 'succeeded'), 0) > COALESCE((SELECT CAST(SUM(r.amount_cents) AS BIGINT) \
         FROM refunds r JOIN payments p ON p.id = r.payment_id WHERE r.order_id = o.id \
         AND p.status = 'succeeded' AND r.status = 'succeeded'), 0)",
    )?;
    let refunds_not_done = q(conn, "refunds WHERE status <> 'succeeded'")?;
    push(
        "cancelled paid orders are refunded",
        unrefunded + refunds_not_done == 0,
        format!(
            "{cancelled_paid} cancelled orders with a succeeded payment; {unrefunded} not \
             refunded in full; {refunds_not_done} refunds pending or failed"
        ),
    );

    // 8
    let cutoff = chrono::Utc::now().naive_utc() - chrono::Duration::seconds(cfg.lease_secs as i64);
    let unfinished: i64 = idempotency_keys::table
        .filter(idempotency_keys::status_code.is_null())
        .count()
        .get_result(conn)
        .map_err(|e| e.to_string())?;
    let stuck: i64 = idempotency_keys::table
        .filter(idempotency_keys::status_code.is_null())
        .filter(idempotency_keys::created_at.lt(cutoff))
        .count()
        .get_result(conn)
        .map_err(|e| e.to_string())?;
    let keys = q(conn, "idempotency_keys")?;
    push(
        "no idempotency key unfinished past the lease",
        stuck == 0,
        format!("{keys} keys; {unfinished} unfinished, {stuck} of them older than the lease"),
    );

    // 9
    let (ok9, detail9) = charges_recorded(conn, journal)?;
    push("every charge recorded or refunded, once", ok9, detail9);

    // 10
    let processing = q(conn, "payments WHERE status = 'processing'")?;
    let all_payments = q(conn, "payments")?;
    push(
        "no payment left processing",
        processing == 0,
        format!("{all_payments} payments; {processing} processing"),
    );

    // 11 (beyond the list): one key, one effect.
    let dup_orders = q(
        conn,
        "(SELECT notes FROM orders WHERE notes IS NOT NULL GROUP BY notes HAVING COUNT(*) > 1) d",
    )?;
    let dup_receipts = q(
        conn,
        "(SELECT note FROM stock_receipts WHERE note IS NOT NULL GROUP BY note \
         HAVING COUNT(*) > 1) d",
    )?;
    let receipts = q(conn, "stock_receipts")?;
    push(
        "one Idempotency-Key, one order or receipt",
        dup_orders + dup_receipts == 0,
        format!(
            "{orders} orders, {receipts} receipts; {dup_orders} order keys and {dup_receipts} \
             receipt keys with two effects"
        ),
    );

    // 12 (beyond the list): the money the provider kept is what the orders say.
    let (ok12, detail12) = money_balances(conn, journal)?;
    push("provider balance per order = paid total", ok12, detail12);

    Ok(out)
}

/// Orders whose `sale` movements (reference `order:<id>`) are not minus their lines (fulfilled
/// orders) or not none (others).
fn sale_orders_off(conn: &mut DbConn) -> BenchResult<i64> {
    use bookstore::db::schema::{order_lines, orders, stock_movements};
    let moved: Vec<(Option<String>, i64, i64)> = stock_movements::table
        .filter(stock_movements::kind.eq("sale"))
        .select((
            stock_movements::reference,
            stock_movements::book_id,
            stock_movements::quantity,
        ))
        .load(conn)
        .map_err(|e| e.to_string())?;
    let mut by_order: HashMap<i64, BTreeMap<i64, i64>> = HashMap::new();
    let mut bad = 0;
    for (reference, book, quantity) in moved {
        match reference
            .as_deref()
            .and_then(|r| r.strip_prefix("order:"))
            .and_then(|id| id.parse::<i64>().ok())
        {
            Some(id) => *by_order.entry(id).or_default().entry(book).or_default() -= quantity,
            None => bad += 1,
        }
    }
    let statuses: HashMap<i64, String> = orders::table
        .select((orders::id, orders::status))
        .load::<(i64, String)>(conn)
        .map_err(|e| e.to_string())?
        .into_iter()
        .collect();
    let mut lines: HashMap<i64, BTreeMap<i64, i64>> = HashMap::new();
    for (order, book, quantity) in order_lines::table
        .select((
            order_lines::order_id,
            order_lines::book_id,
            order_lines::quantity,
        ))
        .load::<(i64, i64, i64)>(conn)
        .map_err(|e| e.to_string())?
    {
        *lines.entry(order).or_default().entry(book).or_default() += quantity;
    }
    let empty = BTreeMap::new();
    for (id, status) in &statuses {
        let sold = by_order.get(id).unwrap_or(&empty);
        let fulfilled = FULFILLED.contains(&format!("'{status}'"));
        let expected = if fulfilled {
            lines.get(id).unwrap_or(&empty)
        } else {
            &empty
        };
        if sold != expected {
            bad += 1;
        }
    }
    bad += by_order
        .keys()
        .filter(|id| !statuses.contains_key(id))
        .count() as i64;
    Ok(bad)
}

struct PaymentRec {
    order_id: i64,
    status: String,
    reference: Option<String>,
}

/// (id, order, status, provider reference, provider key) of a payment.
type PaymentTuple = (i64, i64, String, Option<String>, Option<String>);
/// (payment, charge reference, status, provider reference) of a refund.
type RefundTuple = (Option<i64>, Option<String>, String, Option<String>);

/// The payments by id, their ids by provider key, and the refunds.
struct Money {
    pays: HashMap<i64, PaymentRec>,
    by_key: HashMap<String, i64>,
    refs: Vec<RefundRec>,
}

struct RefundRec {
    payment_id: Option<i64>,
    charge: Option<String>,
    status: String,
    reference: Option<String>,
}

fn load_money(conn: &mut DbConn) -> BenchResult<Money> {
    let rows: Vec<PaymentTuple> = payments::table
        .select((
            payments::id,
            payments::order_id,
            payments::status,
            payments::provider_reference,
            payments::provider_key,
        ))
        .load(conn)
        .map_err(|e| e.to_string())?;
    let mut by_key = HashMap::new();
    let mut pays = HashMap::new();
    for (id, order_id, status, reference, key) in rows {
        if let Some(key) = key {
            by_key.insert(key, id);
        }
        pays.insert(
            id,
            PaymentRec {
                order_id,
                status,
                reference,
            },
        );
    }
    let refund_rows: Vec<RefundTuple> = refunds::table
        .select((
            refunds::payment_id,
            refunds::charge_reference,
            refunds::status,
            refunds::provider_reference,
        ))
        .load(conn)
        .map_err(|e| e.to_string())?;
    let refs = refund_rows
        .into_iter()
        .map(|(payment_id, charge, status, reference)| RefundRec {
            payment_id,
            charge,
            status,
            reference,
        })
        .collect();
    Ok(Money { pays, by_key, refs })
}

/// Invariant 9: every successful charge of the journal is a succeeded payment's, or a failed
/// payment's with a refund row for it, or has a refund row naming it; no payment has two charges
/// and no charge was refunded twice; every refund the provider made is recorded.
fn charges_recorded(conn: &mut DbConn, journal: &Journal) -> BenchResult<(bool, String)> {
    let Money { pays, by_key, refs } = load_money(conn)?;
    let mut charges_per_payment: HashMap<i64, usize> = HashMap::new();
    let mut no_payment_row = 0;
    let mut unrecorded = 0;
    let mut examples = Vec::new();
    let mut seen_refs = HashSet::new();
    let mut dup_reference = 0;
    for (key, _, reference) in journal.successful() {
        if !seen_refs.insert(reference) {
            dup_reference += 1;
        }
        let payment = by_key.get(key).copied();
        match payment {
            Some(id) => *charges_per_payment.entry(id).or_default() += 1,
            None => no_payment_row += 1,
        }
        let as_succeeded = pays
            .values()
            .any(|p| p.status == "succeeded" && p.reference.as_deref() == Some(reference));
        let as_refunded_failure = pays.iter().any(|(id, p)| {
            p.status == "failed"
                && p.reference.as_deref() == Some(reference)
                && refs.iter().any(|r| r.payment_id == Some(*id))
        });
        let refund_named = refs.iter().any(|r| r.charge.as_deref() == Some(reference));
        if !(as_succeeded || as_refunded_failure || refund_named) {
            unrecorded += 1;
            if examples.len() < 3 {
                examples.push(format!("{reference} (key {key}, payment {payment:?})"));
            }
        }
    }
    let two_charges = charges_per_payment.values().filter(|c| **c > 1).count();
    // Refunds per charge: the provider's, and the rows that are not failed.
    let mut provider_refunds: HashMap<&str, usize> = HashMap::new();
    for (_, charge, _, _) in &journal.refunds {
        *provider_refunds.entry(charge.as_str()).or_default() += 1;
    }
    let mut row_refunds: HashMap<&str, usize> = HashMap::new();
    for r in refs.iter().filter(|r| r.status != "failed") {
        if let Some(charge) = r.charge.as_deref() {
            *row_refunds.entry(charge).or_default() += 1;
        }
    }
    let refunded_twice = provider_refunds.values().filter(|n| **n > 1).count()
        + row_refunds.values().filter(|n| **n > 1).count();
    let recorded_refunds: HashSet<&str> =
        refs.iter().filter_map(|r| r.reference.as_deref()).collect();
    let refunds_unrecorded = journal
        .refunds
        .iter()
        .filter(|(_, _, _, reference)| !recorded_refunds.contains(reference.as_str()))
        .count();
    let ok = no_payment_row
        + unrecorded
        + two_charges
        + dup_reference
        + refunded_twice
        + refunds_unrecorded
        + journal.forgotten
        == 0;
    let mut detail = format!(
        "{} successful charges, {} refunds at the provider; {no_payment_row} without a payment \
         row, {unrecorded} neither paid nor refunded, {two_charges} payments charged twice, \
         {refunded_twice} charges refunded twice, {refunds_unrecorded} provider refunds \
         unrecorded",
        journal.successful().count(),
        journal.refunds.len()
    );
    if dup_reference > 0 {
        detail.push_str(&format!(", {dup_reference} charge references repeated"));
    }
    if journal.forgotten > 0 {
        detail.push_str(&format!(
            ", {} entries in torn journal lines (forgotten by a restarted provider)",
            journal.forgotten
        ));
    }
    if !examples.is_empty() {
        detail.push_str(&format!(" (e.g. {})", examples.join("; ")));
    }
    Ok((ok, detail))
}

/// Per order: charged − refunded at the provider = the total for paid/fulfilled orders, 0 for
/// the others.
fn money_balances(conn: &mut DbConn, journal: &Journal) -> BenchResult<(bool, String)> {
    use bookstore::db::schema::orders;
    let Money { pays, by_key, .. } = load_money(conn)?;
    let mut order_of_charge: HashMap<&str, i64> = HashMap::new();
    let mut kept: HashMap<i64, i64> = HashMap::new();
    let mut unknown = 0;
    for (key, amount, reference) in journal.successful() {
        match by_key.get(key).and_then(|id| pays.get(id)) {
            Some(p) => {
                order_of_charge.insert(reference, p.order_id);
                *kept.entry(p.order_id).or_default() += amount;
            }
            None => unknown += 1,
        }
    }
    for (_, charge, amount, _) in &journal.refunds {
        match order_of_charge.get(charge.as_str()) {
            Some(order) => *kept.entry(*order).or_default() -= amount,
            None => unknown += 1,
        }
    }
    let all: Vec<(i64, String, i64)> = orders::table
        .select((orders::id, orders::status, orders::total_cents))
        .load(conn)
        .map_err(|e| e.to_string())?;
    let mut off = 0;
    let mut examples = Vec::new();
    let mut kept_total = 0;
    for (id, status, total) in all {
        let expected = if PAID.contains(&format!("'{status}'")) {
            total
        } else {
            0
        };
        let have = kept.get(&id).copied().unwrap_or(0);
        kept_total += have;
        if have != expected {
            off += 1;
            if examples.len() < 3 {
                examples.push(format!(
                    "order {id} {status}: kept {have}, expected {expected}"
                ));
            }
        }
    }
    let mut detail = format!(
        "{kept_total} cents kept; {off} orders off, {unknown} provider entries of no order"
    );
    if !examples.is_empty() {
        detail.push_str(&format!(" (e.g. {})", examples.join("; ")));
    }
    Ok((off + unknown == 0, detail))
}
