//! Order-path load benchmark (issue 3 §6): `POST /api/v1/orders` against a release server, beside
//! the raw ceiling of the same transaction issued directly through diesel on the same machine.
//!
//! It starts `target/release/bookstore` (or `$BOOKSTORE_BIN`) on a free port of 127.0.0.1 against
//! `$BENCH_DATABASE_URL` (an SQLite path or a `postgres://` URL of an EMPTY database), creates an
//! admin with the CLI, logs in, imports 10,000 generated books through the CSV import and stocks
//! them through `POST /api/v1/inventory/receipts` (1,000 copies each; the hot book 1,001,000), so
//! that nobody runs short during the run. Then, for each scenario:
//!
//! * `spread`: each order has 1–3 lines (uniformly), distinct books drawn uniformly from 9,998 of
//!   the books (all but the hot and the sell-out book), quantity 1 each;
//! * `hot`: every order is one line, quantity 1, of the same book;
//!
//! it measures, after a 2 s warm-up, for `$BENCH_SECONDS` (default 10):
//!
//! * HTTP: `$BENCH_CONNECTIONS` (32) concurrent keep-alive clients posting walk-in orders (no
//!   `customer_id`, no `Idempotency-Key`) with the admin's token: orders/s, p50/p99 latency and the
//!   non-2xx answers by class (409, other 4xx, 5xx, transport errors);
//! * raw: with the server idle, the same number of threads in this process call the very function
//!   the handler calls, `bookstore::orders::service::create_order` (walk-in order: no payment), on a pool of
//!   `bookstore::db::build_pool(url, $BENCH_RAW_POOL)` (default 32; it applies the server's SQLite
//!   pragmas), with the same order shapes: the ceiling the HTTP path is compared with.
//!
//! After every run it checks that nothing was oversold: for every book `reserved <= on_hand` and
//! `reserved` equals the copies on its `pending_payment`/`paid` order lines, and by differences that
//! the run added exactly as many orders and reserved copies as it got successes. A last check
//! races 1,600 one-copy orders for a book with 1,000 copies: exactly 1,000 must succeed.
//!
//! Run it through `scripts/bench-orders.sh`, or directly:
//! `BENCH_DATABASE_URL=/tmp/orders.db cargo bench --bench orders_load`.
//!
//! Other knobs: `BENCH_BOOKS` (10000), `BENCH_RAW_THREADS` (= connections), `BENCH_OUT` (a file
//! the result table is appended to). The server inherits the environment, so
//! `BOOKSTORE_DB_POOL_SIZE` and `BOOKSTORE_WORKERS` apply to it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bookstore::auth::{Principal, Role};
use bookstore::db::{DbConn, Pool};
use bookstore::orders::model::NewOrder;
use bookstore::orders::service::{create_order, OrderContext};
use bookstore::Settings;
use diesel::prelude::*;
use hdrhistogram::Histogram;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{
    env_num, http_client, import_generated_books, isbn13, login, machine_busy_ticks, new_histogram,
    report, shorten, stat_ticks, yes_no, BenchResult, Rng, Server, ServerConfig, CLOCK_TICKS,
};

const ADMIN_EMAIL: &str = "orders-bench@example.com";
const ADMIN_PASSWORD: &str = "orders-bench-password-2026";
const JWT_SECRET: &str = "orders-load-bench-secret-0123456789abcdef";
const WARMUP: Duration = Duration::from_secs(2);
/// Copies received for every book, in receipts of `RECEIPT_LINES` lines.
const STOCK_PER_BOOK: i64 = 1_000;
const RECEIPT_LINES: usize = 500;
/// Extra receipts of 100,000 copies (the most one line may carry) for the hot book.
const HOT_RECEIPTS: i64 = 10;
const HOT_RECEIPT_QUANTITY: i64 = 100_000;
/// The sell-out race: one-copy orders per client, for a book with `STOCK_PER_BOOK` copies.
const SELLOUT_ATTEMPTS_PER_CLIENT: usize = 50;
/// The target: the HTTP order path reaches this share of the raw ceiling.
const RATIO_TARGET: f64 = 0.70;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    support::exit_code("orders_load", run().await)
}

struct Config {
    server: ServerConfig,
    books: u64,
    seconds: u64,
    connections: usize,
    raw_threads: usize,
    raw_pool: u32,
    out: Option<PathBuf>,
}

impl Config {
    fn from_env() -> BenchResult<Config> {
        let server = ServerConfig::from_env(
            "scripts/bench-orders.sh",
            JWT_SECRET,
            ADMIN_EMAIL,
            ADMIN_PASSWORD,
        )?;
        let connections = env_num("BENCH_CONNECTIONS", 32)?.max(1) as usize;
        Ok(Config {
            server,
            books: env_num("BENCH_BOOKS", 10_000)?.max(3),
            seconds: env_num("BENCH_SECONDS", 10)?.max(1),
            connections,
            raw_threads: env_num("BENCH_RAW_THREADS", connections as u64)?.max(1) as usize,
            raw_pool: env_num("BENCH_RAW_POOL", 32)?.clamp(1, 512) as u32,
            out: support::out_path(),
        })
    }

    /// The settings the server runs with: its environment plus what `ServerConfig` sets.
    fn server_settings(&self) -> BenchResult<Settings> {
        let mut vars: HashMap<String, String> = std::env::vars().collect();
        vars.insert("DATABASE_URL".into(), self.server.database_url.clone());
        vars.insert("BOOKSTORE_JWT_SECRET".into(), JWT_SECRET.into());
        Settings::from_vars(&vars).map_err(|e| e.to_string())
    }
}

async fn run() -> BenchResult<()> {
    let cfg = Config::from_env()?;
    assert_eq!(isbn13(30_640_615), "9780306406157");
    let settings = cfg.server_settings()?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());

    cfg.server.print_header("orders_load");
    println!(
        "server:        pool {} connections, {} workers (BOOKSTORE_DB_POOL_SIZE / \
         BOOKSTORE_WORKERS), order TTL {} s, currency {}",
        settings.pool_size,
        settings
            .workers
            .map_or(format!("{cores} (cores)"), |w| w.to_string()),
        settings.order_ttl.as_secs(),
        settings.currency
    );
    println!(
        "plan:          {} books, {} HTTP clients / {} raw threads on a pool of {}, {} s per run \
         after {} s warm-up",
        cfg.books,
        cfg.connections,
        cfg.raw_threads,
        cfg.raw_pool,
        cfg.seconds,
        WARMUP.as_secs()
    );
    println!(
        "note:          the load generator runs on the same {cores} core(s) as the server (tokio, \
         2 worker threads); its CPU use is reported per run"
    );

    // (a) the server, an admin and a token
    let server = Server::start(&cfg.server)?;
    let client = http_client(cfg.connections)?;
    server.wait_ready(&client).await?;
    println!("server ready:  pid {}, {}", server.pid, server.base);
    cfg.server.create_admin()?;
    let (token, login_body) = login(&client, &server.base, &cfg.server).await?;
    let admin_id = login_body["user"]["id"]
        .as_i64()
        .ok_or_else(|| format!("login body has no user.user_id: {login_body}"))?;
    println!("logged in as {ADMIN_EMAIL} (user {admin_id})");

    // (b) the catalog and its stock
    let started = Instant::now();
    import_generated_books(
        &client,
        &server.base,
        &token,
        cfg.books,
        "Order Bench Volume",
    )
    .await?;
    let pool = bookstore::db::build_pool(&cfg.server.database_url, cfg.raw_pool)?;
    let ids = book_ids(&pool)?;
    if ids.len() as u64 != cfg.books {
        return Err(format!(
            "the catalog holds {} books, expected {}",
            ids.len(),
            cfg.books
        ));
    }
    println!(
        "imported {} books in {:.1} s",
        ids.len(),
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let sellout_book = ids[0];
    let hot_book = ids[ids.len() - 1];
    stock_books(&client, &server.base, &token, &ids, hot_book).await?;
    println!(
        "stocked {} books with {STOCK_PER_BOOK} copies each, hot book {hot_book} with {} more, \
         in {:.1} s",
        ids.len(),
        HOT_RECEIPTS * HOT_RECEIPT_QUANTITY,
        started.elapsed().as_secs_f64()
    );
    let spread_ids: Arc<Vec<i64>> = Arc::new(ids[1..ids.len() - 1].to_vec());
    let initial = check(&pool)?;
    if !initial.consistent() {
        return Err(format!(
            "the stock is inconsistent before any order: {initial:?}"
        ));
    }

    // (c) the scenarios, HTTP then raw, never both at once
    let user = Principal {
        user_id: admin_id,
        role: Role::Admin,
        customer_id: None,
    };
    let shapes = [Shape::Spread(spread_ids), Shape::Hot(hot_book)];
    let base = Arc::new(server.base.clone());
    let token = Arc::new(token);
    let mut rows = Vec::new();
    for shape in shapes {
        let before = check(&pool)?;
        let mut http = http_run(&cfg, &client, &server, &base, &token, &shape).await;
        let after = check(&pool)?;
        http.verdict = Some(Verdict::new(&before, &after, &http));
        http.print();

        // Let the server's last transactions and the WAL settle before the raw run.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = after;
        let mut raw = {
            let pool = pool.clone();
            let shape = shape.clone();
            let threads = cfg.raw_threads;
            let measure = Duration::from_secs(cfg.seconds);
            let settings = settings.clone();
            tokio::task::spawn_blocking(move || {
                raw_run(&pool, &settings, user, &shape, threads, measure)
            })
            .await
            .map_err(|e| format!("the raw run panicked: {e}"))?
        };
        let after = check(&pool)?;
        raw.verdict = Some(Verdict::new(&before, &after, &raw));
        raw.print();
        rows.push((shape.name(), http, raw));
    }

    // (d) the sell-out race
    let sellout = sellout(&cfg, &client, &base, &token, &pool, sellout_book).await?;
    println!("\n{}", sellout.text);

    drop(server);
    let table = results_table(&cfg, &settings, &rows, &sellout.text);
    report(&table, cfg.out.as_ref())?;
    let mut failures = Vec::new();
    for (name, http, raw) in &rows {
        for r in [http, raw] {
            if !r.verdict.as_ref().is_some_and(Verdict::ok) {
                failures.push(format!("{name}/{}: the stock check failed", r.path));
            }
        }
        if http.counts.server_errors > 0 || http.counts.transport > 0 {
            failures.push(format!("{name}/HTTP: 5xx or transport errors"));
        }
    }
    if !sellout.ok {
        failures.push("the sell-out race did not sell exactly the stock".into());
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

// ---------------------------------------------------------------------------------------------
// The order shapes

#[derive(Clone)]
enum Shape {
    /// 1–3 lines of distinct books drawn uniformly from these, one copy each.
    Spread(Arc<Vec<i64>>),
    /// One line, one copy, always of this book.
    Hot(i64),
}

impl Shape {
    fn name(&self) -> &'static str {
        match self {
            Shape::Spread(_) => "spread",
            Shape::Hot(_) => "hot",
        }
    }

    fn label(&self) -> String {
        match self {
            Shape::Spread(ids) => format!("spread: 1–3 lines over {} books", ids.len()),
            Shape::Hot(id) => format!("hot: 1 line, book {id}"),
        }
    }

    /// An order body (the same for HTTP and raw) and the copies it asks for.
    fn order(&self, rng: &mut Rng) -> (serde_json::Value, i64) {
        let books: Vec<i64> = match self {
            Shape::Hot(id) => vec![*id],
            Shape::Spread(ids) => {
                let n = rng.between(1, 3) as usize;
                let mut picked = Vec::with_capacity(n);
                while picked.len() < n {
                    let id = *rng.pick(ids);
                    if !picked.contains(&id) {
                        picked.push(id);
                    }
                }
                picked
            }
        };
        let lines: Vec<serde_json::Value> = books
            .iter()
            .map(|id| serde_json::json!({"book_id": id, "quantity": 1}))
            .collect();
        (serde_json::json!({ "lines": lines }), books.len() as i64)
    }
}

// ---------------------------------------------------------------------------------------------
// Runs

/// Answers counted within the measured window, by class.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    ok: u64,
    conflict: u64,
    client_errors: u64,
    server_errors: u64,
    transport: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.ok += o.ok;
        self.conflict += o.conflict;
        self.client_errors += o.client_errors;
        self.server_errors += o.server_errors;
        self.transport += o.transport;
    }

    fn record(&mut self, status: Option<u16>) {
        match status {
            Some(s) if (200..300).contains(&s) => self.ok += 1,
            Some(409) => self.conflict += 1,
            Some(s) if (400..500).contains(&s) => self.client_errors += 1,
            Some(_) => self.server_errors += 1,
            None => self.transport += 1,
        }
    }

    fn errors_text(&self) -> String {
        let mut s = format!(
            "{} / {}",
            self.conflict + self.client_errors,
            self.server_errors
        );
        if self.conflict > 0 {
            let _ = write!(s, " ({} × 409)", self.conflict);
        }
        if self.transport > 0 {
            let _ = write!(s, " + {} transport", self.transport);
        }
        s
    }
}

/// What one worker (an HTTP client or a raw thread) did.
struct WorkerResult {
    hist: Histogram<u64>,
    counts: Counts,
    /// Orders created and copies reserved over the whole run (warm-up and tail included), to
    /// compare with the database afterwards.
    created: u64,
    copies: i64,
    first_error: Option<String>,
}

impl WorkerResult {
    fn new() -> WorkerResult {
        WorkerResult {
            hist: new_histogram(),
            counts: Counts::default(),
            created: 0,
            copies: 0,
            first_error: None,
        }
    }

    /// Books one attempt: `status` is None for a transport error.
    #[allow(clippy::too_many_arguments)]
    fn book(
        &mut self,
        status: Option<u16>,
        copies: i64,
        sent: Instant,
        done: Instant,
        measure_from: Instant,
        end: Instant,
        error: impl FnOnce() -> String,
    ) {
        let ok = status.is_some_and(|s| (200..300).contains(&s));
        if ok {
            self.created += 1;
            self.copies += copies;
        }
        if sent >= measure_from && done <= end {
            let us = (done - sent).as_micros().clamp(1, 60_000_000) as u64;
            self.hist
                .record(us)
                .expect("the latency fits the histogram");
            self.counts.record(status);
        }
        if !ok && self.first_error.is_none() {
            self.first_error = Some(error());
        }
    }
}

struct RunResult {
    scenario: String,
    path: &'static str,
    seconds: f64,
    hist: Histogram<u64>,
    counts: Counts,
    created: u64,
    copies: i64,
    first_error: Option<String>,
    cpu: Option<CpuUse>,
    verdict: Option<Verdict>,
}

impl RunResult {
    fn collect(
        scenario: String,
        path: &'static str,
        seconds: f64,
        workers: Vec<WorkerResult>,
        cpu: Option<CpuUse>,
    ) -> RunResult {
        let mut r = RunResult {
            scenario,
            path,
            seconds,
            hist: new_histogram(),
            counts: Counts::default(),
            created: 0,
            copies: 0,
            first_error: None,
            cpu,
            verdict: None,
        };
        for w in workers {
            r.hist.add(&w.hist).expect("histograms of the same bounds");
            r.counts.add(&w.counts);
            r.created += w.created;
            r.copies += w.copies;
            if r.first_error.is_none() {
                r.first_error = w.first_error;
            }
        }
        r
    }

    /// Successful orders per second within the window.
    fn rate(&self) -> f64 {
        self.counts.ok as f64 / self.seconds
    }

    fn ms(&self, quantile: f64) -> f64 {
        self.hist.value_at_quantile(quantile) as f64 / 1000.0
    }

    fn print(&self) {
        println!(
            "\n-- {} / {} --\n{:.0} orders/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; in the \
             window {} ok, {} × 409, {} other 4xx, {} 5xx, {} transport errors",
            self.scenario,
            self.path,
            self.rate(),
            self.ms(0.50),
            self.ms(0.99),
            self.hist.max() as f64 / 1000.0,
            self.counts.ok,
            self.counts.conflict,
            self.counts.client_errors,
            self.counts.server_errors,
            self.counts.transport
        );
        if let Some(c) = &self.cpu {
            println!("CPU (cores): {}", c.text());
        }
        if let Some(e) = &self.first_error {
            println!("first error: {e}");
        }
        if let Some(v) = &self.verdict {
            println!("stock check: {}", v.text());
        }
    }
}

async fn http_run(
    cfg: &Config,
    client: &reqwest::Client,
    server: &Server,
    base: &Arc<String>,
    token: &Arc<String>,
    shape: &Shape,
) -> RunResult {
    let started = Instant::now();
    let measure_from = started + WARMUP;
    let end = measure_from + Duration::from_secs(cfg.seconds);
    let url = Arc::new(format!("{base}/api/v1/orders"));
    let mut tasks = Vec::with_capacity(cfg.connections);
    for t in 0..cfg.connections {
        let client = client.clone();
        let shape = shape.clone();
        let url = url.clone();
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x5EED ^ ((t as u64 + 1) * 0x1000_0001));
            let mut w = WorkerResult::new();
            loop {
                let (body, copies) = shape.order(&mut rng);
                let body = body.to_string();
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let answer = client
                    .post(url.as_str())
                    .bearer_auth(token.as_str())
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                let (status, detail) = match answer {
                    Ok(res) => {
                        let status = res.status().as_u16();
                        match res.bytes().await {
                            Ok(b) => (Some(status), String::from_utf8_lossy(&b).into_owned()),
                            Err(e) => (None, e.to_string()),
                        }
                    }
                    Err(e) => (None, e.to_string()),
                };
                let done = Instant::now();
                w.book(status, copies, sent, done, measure_from, end, || {
                    format!(
                        "POST /api/v1/orders -> {}: {}",
                        status.map_or("no answer".to_owned(), |s| s.to_string()),
                        shorten(&detail, 200)
                    )
                });
            }
            w
        }));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let before = CpuSample::take(Some(server.pid));
    tokio::time::sleep_until(end.into()).await;
    let cpu = before
        .zip(CpuSample::take(Some(server.pid)))
        .map(|(a, b)| b.cores_since(&a));
    let mut workers = Vec::with_capacity(tasks.len());
    for task in tasks {
        workers.push(task.await.expect("an HTTP client task panicked"));
    }
    RunResult::collect(shape.label(), "HTTP", cfg.seconds as f64, workers, cpu)
}

/// The raw ceiling: the handler's service call, from `threads` threads of this process.
fn raw_run(
    pool: &Pool,
    settings: &Settings,
    user: Principal,
    shape: &Shape,
    threads: usize,
    measure: Duration,
) -> RunResult {
    let started = Instant::now();
    let measure_from = started + WARMUP;
    let end = measure_from + measure;
    let (workers, cpu) = std::thread::scope(|s| {
        let mut handles = Vec::with_capacity(threads);
        for t in 0..threads {
            let shape = shape.clone();
            handles.push(s.spawn(move || {
                let mut rng = Rng(0x5EED ^ ((t as u64 + 1) * 0x1000_0001));
                let mut w = WorkerResult::new();
                loop {
                    let (body, copies) = shape.order(&mut rng);
                    let input: NewOrder =
                        serde_json::from_value(body).expect("the order body fits NewOrder");
                    let sent = Instant::now();
                    if sent >= end {
                        break;
                    }
                    // As `db::run` does: a pooled connection per call.
                    let outcome = pool
                        .get()
                        .map_err(|e| format!("no connection: {e}"))
                        .and_then(|mut conn| {
                            let conn: &mut DbConn = &mut conn;
                            let ctx = OrderContext {
                                currency: &settings.currency,
                                ttl: settings.order_ttl,
                                payment_methods: &settings.payment_methods,
                            };
                            create_order(conn, &user, &input, &ctx, |_, _| Ok(()))
                                .map(|_| ())
                                .map_err(|e| {
                                    let status = actix_web::ResponseError::status_code(&e).as_u16();
                                    format!("{status}|{e}")
                                })
                        });
                    let done = Instant::now();
                    let status = match &outcome {
                        Ok(()) => Some(201),
                        // A pool time-out is the 503 the server would answer.
                        Err(e) => Some(
                            e.split_once('|')
                                .and_then(|(s, _)| s.parse().ok())
                                .unwrap_or(503),
                        ),
                    };
                    w.book(status, copies, sent, done, measure_from, end, || {
                        format!("create_order: {}", outcome.err().unwrap_or_default())
                    });
                }
                w
            }));
        }
        std::thread::sleep(measure_from.saturating_duration_since(Instant::now()));
        let before = CpuSample::take(None);
        std::thread::sleep(end.saturating_duration_since(Instant::now()));
        let cpu = before
            .zip(CpuSample::take(None))
            .map(|(a, b)| b.cores_since(&a));
        let workers: Vec<WorkerResult> = handles
            .into_iter()
            .map(|h| h.join().expect("a raw thread panicked"))
            .collect();
        (workers, cpu)
    });
    RunResult::collect(shape.label(), "raw", measure.as_secs_f64(), workers, cpu)
}

struct Sellout {
    text: String,
    ok: bool,
}

/// `connections × 50` one-copy orders race for the `STOCK_PER_BOOK` copies of one book.
async fn sellout(
    cfg: &Config,
    client: &reqwest::Client,
    base: &Arc<String>,
    token: &Arc<String>,
    pool: &Pool,
    book: i64,
) -> BenchResult<Sellout> {
    let attempts = cfg.connections * SELLOUT_ATTEMPTS_PER_CLIENT;
    let started = Instant::now();
    let url = Arc::new(format!("{base}/api/v1/orders"));
    let body = serde_json::json!({"lines": [{"book_id": book, "quantity": 1}]}).to_string();
    let mut tasks = Vec::with_capacity(cfg.connections);
    for _ in 0..cfg.connections {
        let (client, url, token, body) = (client.clone(), url.clone(), token.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut counts = Counts::default();
            for _ in 0..SELLOUT_ATTEMPTS_PER_CLIENT {
                let status = match client
                    .post(url.as_str())
                    .bearer_auth(token.as_str())
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                {
                    Ok(res) => {
                        let status = res.status().as_u16();
                        res.bytes().await.ok().map(|_| status)
                    }
                    Err(_) => None,
                };
                counts.record(status);
            }
            counts
        }));
    }
    let mut counts = Counts::default();
    for task in tasks {
        counts.add(
            &task
                .await
                .map_err(|e| format!("a sell-out task failed: {e}"))?,
        );
    }
    let took = started.elapsed();
    let (on_hand, reserved) = level_of(pool, book)?;
    let state = check(pool)?;
    let ok = counts.ok == STOCK_PER_BOOK as u64
        && counts.conflict == attempts as u64 - STOCK_PER_BOOK as u64
        && counts.client_errors + counts.server_errors + counts.transport == 0
        && reserved == on_hand
        && state.consistent();
    Ok(Sellout {
        text: format!(
            "sell-out race (HTTP, {} clients): {attempts} one-copy orders for the {STOCK_PER_BOOK} \
             copies of book {book} in {:.1} s: {} created, {} × 409, {} other 4xx, {} 5xx, {} \
             transport; book now on_hand {on_hand}, reserved {reserved}; all books: {} with \
             reserved > on_hand, {} whose reserved differs from their open order lines — {}",
            cfg.connections,
            took.as_secs_f64(),
            counts.ok,
            counts.conflict,
            counts.client_errors,
            counts.server_errors,
            counts.transport,
            state.oversold,
            state.mismatched,
            if ok { "exact" } else { "WRONG" }
        ),
        ok,
    })
}

// ---------------------------------------------------------------------------------------------
// The stock check

#[derive(diesel::QueryableByName)]
struct Num {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// The state of the stock, read directly from the database.
#[derive(Debug, Clone, Copy)]
struct StockState {
    /// Books with `reserved > on_hand` (or negative).
    oversold: i64,
    /// Books whose `reserved` is not the copies on their open (pending_payment, paid) order lines.
    mismatched: i64,
    orders: i64,
    reserved: i64,
}

impl StockState {
    fn consistent(&self) -> bool {
        self.oversold == 0 && self.mismatched == 0
    }
}

fn scalar(conn: &mut DbConn, sql: &str) -> BenchResult<i64> {
    bookstore::per_backend!(conn, |c| diesel::sql_query(sql).get_result::<Num>(c))
        .map(|r| r.n)
        .map_err(|e| format!("{sql}: {e}"))
}

fn check(pool: &Pool) -> BenchResult<StockState> {
    let mut conn = pool.get().map_err(|e| format!("no connection: {e}"))?;
    let conn: &mut DbConn = &mut conn;
    Ok(StockState {
        oversold: scalar(
            conn,
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM stock_levels \
             WHERE reserved > on_hand OR reserved < 0",
        )?,
        mismatched: scalar(
            conn,
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM stock_levels s LEFT JOIN \
             (SELECT ol.book_id AS book_id, CAST(SUM(ol.quantity) AS BIGINT) AS q \
              FROM order_lines ol JOIN orders o ON o.id = ol.order_id \
              WHERE o.status IN ('pending_payment', 'paid') GROUP BY ol.book_id) h \
             ON h.book_id = s.book_id WHERE s.reserved <> COALESCE(h.q, 0)",
        )?,
        orders: scalar(conn, "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM orders")?,
        reserved: scalar(
            conn,
            "SELECT CAST(COALESCE(SUM(reserved), 0) AS BIGINT) AS n FROM stock_levels",
        )?,
    })
}

fn level_of(pool: &Pool, book: i64) -> BenchResult<(i64, i64)> {
    use bookstore::db::schema::stock_levels;
    let mut conn = pool.get().map_err(|e| format!("no connection: {e}"))?;
    let conn: &mut DbConn = &mut conn;
    stock_levels::table
        .find(book)
        .select((stock_levels::on_hand, stock_levels::reserved))
        .first::<(i64, i64)>(conn)
        .map_err(|e| format!("stock of book {book}: {e}"))
}

fn book_ids(pool: &Pool) -> BenchResult<Vec<i64>> {
    use bookstore::db::schema::books;
    let mut conn = pool.get().map_err(|e| format!("no connection: {e}"))?;
    let conn: &mut DbConn = &mut conn;
    books::table
        .select(books::id)
        .order(books::id)
        .load::<i64>(conn)
        .map_err(|e| format!("cannot list the books: {e}"))
}

/// What a run did to the stock, compared with what its workers saw.
#[derive(Debug, Clone, Copy)]
struct Verdict {
    after: StockState,
    orders_added: i64,
    reserved_added: i64,
    created: u64,
    copies: i64,
}

impl Verdict {
    fn new(before: &StockState, after: &StockState, run: &RunResult) -> Verdict {
        Verdict {
            after: *after,
            orders_added: after.orders - before.orders,
            reserved_added: after.reserved - before.reserved,
            created: run.created,
            copies: run.copies,
        }
    }

    fn ok(&self) -> bool {
        self.after.consistent()
            && self.orders_added == self.created as i64
            && self.reserved_added == self.copies
    }

    fn text(&self) -> String {
        format!(
            "{} books with reserved > on_hand, {} whose reserved differs from their open order \
             lines; +{} orders for {} successes, +{} reserved for {} copies ordered — {}",
            self.after.oversold,
            self.after.mismatched,
            self.orders_added,
            self.created,
            self.reserved_added,
            self.copies,
            if self.ok() { "ok" } else { "WRONG" }
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Setup through the API

async fn receipt(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    lines: &[(i64, i64)],
) -> BenchResult<()> {
    let lines: Vec<serde_json::Value> = lines
        .iter()
        .map(|(id, q)| serde_json::json!({"book_id": id, "quantity": q, "unit_cost_cents": 300}))
        .collect();
    let res = client
        .post(format!("{base}/api/v1/inventory/receipts"))
        .bearer_auth(token)
        .timeout(Duration::from_secs(300))
        .json(&serde_json::json!({"supplier": "orders_load", "lines": lines}))
        .send()
        .await
        .map_err(|e| format!("receipt request failed: {e}"))?;
    let status = res.status();
    if !status.is_success() {
        let body = res.text().await.unwrap_or_default();
        return Err(format!(
            "POST /api/v1/inventory/receipts answered {status}: {}",
            shorten(&body, 300)
        ));
    }
    res.bytes().await.map_err(|e| e.to_string())?;
    Ok(())
}

async fn stock_books(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    ids: &[i64],
    hot: i64,
) -> BenchResult<()> {
    for chunk in ids.chunks(RECEIPT_LINES) {
        let lines: Vec<(i64, i64)> = chunk.iter().map(|&id| (id, STOCK_PER_BOOK)).collect();
        receipt(client, base, token, &lines).await?;
    }
    for _ in 0..HOT_RECEIPTS {
        receipt(client, base, token, &[(hot, HOT_RECEIPT_QUANTITY)]).await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// CPU use

/// CPU time used so far, in clock ticks.
struct CpuSample {
    at: Instant,
    server: Option<u64>,
    bench: u64,
    /// Every process named `postgres` (zero with SQLite).
    postgres: u64,
    machine_busy: u64,
}

/// Cores used on average between two samples.
struct CpuUse {
    server: Option<f64>,
    bench: f64,
    postgres: f64,
    machine: f64,
}

impl CpuUse {
    /// What the rest of the machine used (other work on this shared machine).
    fn other(&self) -> f64 {
        (self.machine - self.server.unwrap_or(0.0) - self.bench - self.postgres).max(0.0)
    }

    fn text(&self) -> String {
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        format!(
            "{}{:.2}, postgres {:.2}, other processes {:.2}; whole machine {:.2} of {cores}",
            self.server.map_or("this process ".to_owned(), |s| format!(
                "server {s:.2}, load generator "
            )),
            self.bench,
            self.postgres,
            self.other(),
            self.machine
        )
    }

    /// `server / bench / postgres / other`.
    fn short(&self) -> String {
        format!(
            "{} / {:.2} / {:.2} / {:.2}",
            self.server.map_or("–".to_owned(), |s| format!("{s:.2}")),
            self.bench,
            self.postgres,
            self.other()
        )
    }
}

impl CpuSample {
    fn take(server_pid: Option<u32>) -> Option<CpuSample> {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        let server = match server_pid {
            Some(pid) => Some(stat_ticks(&read(&format!("/proc/{pid}/stat"))?)?),
            None => None,
        };
        Some(CpuSample {
            at: Instant::now(),
            server,
            bench: stat_ticks(&read("/proc/self/stat")?)?,
            postgres: postgres_ticks(),
            machine_busy: machine_busy_ticks(&read("/proc/stat")?)?,
        })
    }

    fn cores_since(&self, earlier: &CpuSample) -> CpuUse {
        let secs = (self.at - earlier.at).as_secs_f64().max(1e-3);
        let cores = |now: u64, then: u64| now.saturating_sub(then) as f64 / CLOCK_TICKS / secs;
        CpuUse {
            server: self.server.zip(earlier.server).map(|(a, b)| cores(a, b)),
            bench: cores(self.bench, earlier.bench),
            postgres: cores(self.postgres, earlier.postgres),
            machine: cores(self.machine_busy, earlier.machine_busy),
        }
    }
}

/// CPU ticks of every process named `postgres` (backends exited in between are missed).
fn postgres_ticks() -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| stat.contains("(postgres)"))
        .filter_map(|stat| stat_ticks(&stat))
        .sum()
}

// ---------------------------------------------------------------------------------------------
// Results

fn results_table(
    cfg: &Config,
    settings: &Settings,
    rows: &[(&'static str, RunResult, RunResult)],
    sellout: &str,
) -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut t = String::new();
    let _ = writeln!(
        t,
        "### orders_load — {} — {} books, {} HTTP clients (server pool {}, workers {}), raw {} \
         threads on a pool of {}, {} s per run",
        cfg.server.backend(),
        cfg.books,
        cfg.connections,
        settings.pool_size,
        settings
            .workers
            .map_or(format!("{cores} (cores)"), |w| w.to_string()),
        cfg.raw_threads,
        cfg.raw_pool,
        cfg.seconds
    );
    let _ = writeln!(t);
    let _ = writeln!(
        t,
        "| scenario | HTTP orders/s | p50 ms | p99 ms | errors 4xx / 5xx | raw tx/s | raw p50 / \
         p99 ms | raw errors | HTTP / raw | ≥ {:.0}% | oversells | stock check | CPU HTTP: server / \
         bench / pg / other | CPU raw: bench / pg / other |",
        RATIO_TARGET * 100.0
    );
    let _ = writeln!(
        t,
        "|---|---:|---:|---:|---|---:|---:|---|---:|---|---:|---|---|---|"
    );
    for (name, http, raw) in rows {
        let ratio = if raw.rate() > 0.0 {
            http.rate() / raw.rate()
        } else {
            0.0
        };
        let oversold = |r: &RunResult| r.verdict.map_or(-1, |v| v.after.oversold);
        let checked = |r: &RunResult| r.verdict.as_ref().is_some_and(Verdict::ok);
        let met = ratio >= RATIO_TARGET
            && http.counts.server_errors == 0
            && http.counts.transport == 0
            && checked(http)
            && checked(raw);
        let _ = writeln!(
            t,
            "| {name} | {:.0} | {:.2} | {:.2} | {} | {:.0} | {:.2} / {:.2} | {} | {:.0}% | {} | \
             {} | {} | {} | {} |",
            http.rate(),
            http.ms(0.50),
            http.ms(0.99),
            http.counts.errors_text(),
            raw.rate(),
            raw.ms(0.50),
            raw.ms(0.99),
            raw.counts.errors_text(),
            ratio * 100.0,
            yes_no(met),
            oversold(http).max(0) + oversold(raw).max(0),
            if checked(http) && checked(raw) {
                "ok"
            } else {
                "WRONG"
            },
            http.cpu.as_ref().map_or("?".to_owned(), CpuUse::short),
            raw.cpu.as_ref().map_or("?".to_owned(), |c| format!(
                "{:.2} / {:.2} / {:.2}",
                c.bench,
                c.postgres,
                c.other()
            )),
        );
    }
    let _ = writeln!(t);
    let _ = writeln!(
        t,
        "spread = 1–3 lines (uniform) of distinct books out of {}, 1 copy each; hot = 1 line, 1 \
         copy, one book. Orders/s count successful orders in the window. Raw = \
         `orders::service::create_order` called from threads of the bench process on \
         `db::build_pool` (server idle), no HTTP, no token check. Oversells = books with reserved > \
         on_hand after the run; the stock check also requires reserved = open order lines on every \
         book and that the run added exactly its successes. The load generator shares the {cores} \
         cores; CPU is in cores, \"other\" is the rest of this shared machine.",
        cfg.books.saturating_sub(2)
    );
    let _ = writeln!(t);
    let _ = writeln!(t, "{sellout}");
    t
}
