//! Catalog load benchmark: a load generator and orchestrator for the release server.
//!
//! It starts `target/release/bookstore` (or `$BOOKSTORE_BIN`) on a free port of 127.0.0.1 against
//! `$BENCH_DATABASE_URL` (an SQLite path or a `postgres://` URL of an EMPTY database), creates an
//! admin with the CLI, logs in, loads 100,000 generated books through the CSV import in batches of
//! 10,000, then measures with 32 concurrent keep-alive connections:
//!
//! * `GET /api/v1/books/{id}` for random books,
//! * `GET /api/v1/books?q=<word>` for random words of the title vocabulary,
//!
//! each for `$BENCH_SECONDS` (default 10) after a 2 s warm-up, and prints requests/s, p50/p99/max
//! latency, errors, and the server's idle and peak resident memory (VmRSS / VmHWM).
//!
//! Run it through `scripts/bench-catalog.sh`, or directly:
//! `BENCH_DATABASE_URL=/tmp/bench.db cargo bench --bench catalog_load`.
//!
//! Other knobs: `BENCH_BOOKS` (100000), `BENCH_BATCH` (10000), `BENCH_CONNECTIONS` (32),
//! `BENCH_OUT` (a file the result table is appended to).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use hdrhistogram::Histogram;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{
    env_num, http_client, import_csv, isbn13, login, machine_busy_ticks, new_histogram, report,
    shorten, stat_ticks, yes_no, BenchResult, Rng, Server, ServerConfig, CLOCK_TICKS,
};

const ADMIN_EMAIL: &str = "bench@example.com";
const ADMIN_PASSWORD: &str = "bench-password-2026";
const JWT_SECRET: &str = "catalog-load-bench-secret-0123456789abcdef";
const VOCABULARY_SIZE: usize = 2_000;
const WARMUP: Duration = Duration::from_secs(2);
const SETTLE: Duration = Duration::from_secs(3);

// The targets of the issue, for this 2-core machine.
const DETAIL_RPS_TARGET: f64 = 15_000.0;
const DETAIL_P99_MS_TARGET: f64 = 10.0;
const SEARCH_RPS_TARGET: f64 = 3_000.0;
const SEARCH_P99_MS_TARGET: f64 = 25.0;
const IDLE_RSS_MB_TARGET: f64 = 30.0;
const PEAK_RSS_MB_TARGET: f64 = 150.0;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    support::exit_code("catalog_load", run().await)
}

struct Config {
    server: ServerConfig,
    books: u64,
    batch: u64,
    seconds: u64,
    connections: usize,
    out: Option<PathBuf>,
}

impl Config {
    fn from_env() -> BenchResult<Config> {
        Ok(Config {
            server: ServerConfig::from_env(
                "scripts/bench-catalog.sh",
                JWT_SECRET,
                ADMIN_EMAIL,
                ADMIN_PASSWORD,
            )?,
            books: env_num("BENCH_BOOKS", 100_000)?,
            batch: env_num("BENCH_BATCH", 10_000)?.max(1),
            seconds: env_num("BENCH_SECONDS", 10)?.max(1),
            connections: env_num("BENCH_CONNECTIONS", 32)?.max(1) as usize,
            out: support::out_path(),
        })
    }
}

async fn run() -> BenchResult<()> {
    let cfg = Config::from_env()?;
    // 978-0-306-40615-7 is a well-known valid ISBN-13.
    assert_eq!(isbn13(30_640_615), "9780306406157");
    let data = Dataset::new();

    cfg.server.print_header("catalog_load");
    println!(
        "plan:          {} books in batches of {}, {} connections, {} s per scenario after {} s \
         warm-up",
        cfg.books,
        cfg.batch,
        cfg.connections,
        cfg.seconds,
        WARMUP.as_secs()
    );
    println!(
        "note:          the load generator runs on the same {} core(s) as the server (tokio, 2 \
         worker threads); its CPU use is reported per scenario and lowers the server's share",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // (a) the server
    let server = Server::start(&cfg.server)?;
    let client = http_client(cfg.connections)?;
    server.wait_ready(&client).await?;
    let startup_rss = server.status_kb("VmRSS:");
    println!("server ready:  pid {}, {}", server.pid, server.base);
    println!("RSS at start:  {}", mb_text(startup_rss));

    // (b) an admin and a token
    cfg.server.create_admin()?;
    let (token, _) = login(&client, &server.base, &cfg.server).await?;
    println!("logged in as {ADMIN_EMAIL}");

    // (c) the catalog
    let load_started = Instant::now();
    let batches = cfg.books.div_ceil(cfg.batch);
    for b in 0..batches {
        let first = b * cfg.batch;
        let last = ((b + 1) * cfg.batch).min(cfg.books);
        let csv = data.csv(first..last)?;
        let started = Instant::now();
        let (status, body) = import_csv(&client, &server.base, &token, csv).await?;
        let took = started.elapsed();
        if !status.is_success() {
            return Err(format!(
                "POST /api/v1/books/import (batch {}/{batches}) answered {status}: {}",
                b + 1,
                body
            ));
        }
        println!(
            "import batch {:>2}/{batches}: rows {:>6}..{:<6} in {:>7.2} s ({:>7.0} rows/s) -> {}",
            b + 1,
            first + 1,
            last,
            took.as_secs_f64(),
            (last - first) as f64 / took.as_secs_f64(),
            shorten(&body, 160)
        );
    }
    let load_time = load_started.elapsed();
    println!(
        "imported {} books in {:.1} s ({:.0} rows/s)",
        cfg.books,
        load_time.as_secs_f64(),
        cfg.books as f64 / load_time.as_secs_f64()
    );
    let total = catalog_total(&client, &server.base).await?;
    println!("catalog holds {total} books");
    if total < cfg.books {
        println!(
            "WARNING: the import kept only {total} of {} rows",
            cfg.books
        );
    }
    let ids = book_ids(&client, &server.base, &cfg, total).await?;
    search_sanity(&client, &server.base, &data, total).await;

    // (d) idle memory after loading
    tokio::time::sleep(SETTLE).await;
    let idle_rss = server.status_kb("VmRSS:");
    let load_peak = server.status_kb("VmHWM:");
    println!(
        "RSS idle after load ({} s settle): {}; peak so far (incl. import): {}",
        SETTLE.as_secs(),
        mb_text(idle_rss),
        mb_text(load_peak)
    );
    let reset = server.reset_peak();

    // (e) the scenarios
    let run = RunShape {
        connections: cfg.connections,
        warmup: WARMUP,
        measure: Duration::from_secs(cfg.seconds),
    };
    let base = Arc::new(server.base.clone());
    let detail = {
        let base = base.clone();
        let ids = Arc::new(ids);
        scenario(
            "GET /books/{id}",
            &client,
            &server,
            run,
            Arc::new(move |rng: &mut Rng| {
                let id = ids.pick(rng);
                format!("{base}/api/v1/books/{id}")
            }),
        )
        .await
    };
    let search = {
        let base = base.clone();
        let words = Arc::new(data.vocabulary.clone());
        scenario(
            "GET /books?q=<word>",
            &client,
            &server,
            run,
            Arc::new(move |rng: &mut Rng| {
                let word = rng.pick(&words);
                format!("{base}/api/v1/books?q={word}")
            }),
        )
        .await
    };

    // (f) peak memory
    let serving_peak = server.status_kb("VmHWM:");
    let peak = match (load_peak, serving_peak) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    drop(server);

    let table = results_table(
        &cfg,
        &detail,
        &search,
        Memory {
            startup: startup_rss,
            idle: idle_rss,
            load_peak,
            serving_peak: if reset { serving_peak } else { None },
            peak,
        },
    );
    report(&table, cfg.out.as_ref())?;
    if detail.errors > 0 || search.errors > 0 {
        return Err("requests failed during the measurement (see the error counts)".into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The server process

impl Server {
    /// Resets VmHWM to the current RSS (Linux ≥ 4.0), so the serving peak is measured apart from
    /// the import's.
    fn reset_peak(&self) -> bool {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5").is_ok()
    }
}

// ---------------------------------------------------------------------------------------------
// The catalog through the API

async fn get_json(client: &reqwest::Client, url: &str) -> BenchResult<serde_json::Value> {
    let res = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = res.status();
    let body = res.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(format!(
            "GET {url} answered {status}: {}",
            shorten(&body, 300)
        ));
    }
    serde_json::from_str(&body).map_err(|e| format!("GET {url}: not JSON ({e})"))
}

async fn catalog_total(client: &reqwest::Client, base: &str) -> BenchResult<u64> {
    let list = get_json(client, &format!("{base}/api/v1/books?per_page=1")).await?;
    list["total"]
        .as_u64()
        .ok_or_else(|| format!("GET /api/v1/books has no total: {list}"))
}

/// The ids to request: the whole range when the import numbered the books contiguously (found
/// from the first and last ISBN), else a sample looked up by ISBN.
enum Ids {
    Range(u64, u64),
    Sample(Vec<u64>),
}

impl Ids {
    fn pick(&self, rng: &mut Rng) -> u64 {
        match self {
            Ids::Range(lo, hi) => lo + rng.below(hi - lo + 1),
            Ids::Sample(ids) => ids[rng.below(ids.len() as u64) as usize],
        }
    }
}

async fn id_of(client: &reqwest::Client, base: &str, n: u64) -> BenchResult<u64> {
    let isbn = isbn13(n);
    let book = get_json(client, &format!("{base}/api/v1/books/isbn/{isbn}")).await?;
    book["id"]
        .as_u64()
        .ok_or_else(|| format!("GET /api/v1/books/isbn/{isbn} has no id: {book}"))
}

async fn book_ids(
    client: &reqwest::Client,
    base: &str,
    cfg: &Config,
    total: u64,
) -> BenchResult<Ids> {
    if cfg.books == 0 || total == 0 {
        return Err("the catalog is empty".into());
    }
    let first = id_of(client, base, 0).await?;
    let last = id_of(client, base, cfg.books - 1).await?;
    if last >= first && last - first + 1 == cfg.books {
        println!("book ids:      {first}..={last} (contiguous)");
        return Ok(Ids::Range(first, last));
    }
    let mut rng = Rng(7);
    let mut ids = Vec::with_capacity(2_000);
    for _ in 0..2_000 {
        if let Ok(id) = id_of(client, base, rng.below(cfg.books)).await {
            ids.push(id);
        }
    }
    if ids.is_empty() {
        return Err("no book could be found by ISBN".into());
    }
    println!(
        "book ids:      {} sampled by ISBN (ids are not contiguous)",
        ids.len()
    );
    Ok(Ids::Sample(ids))
}

/// How many books a search word finds, to show that the searches are selective.
async fn search_sanity(client: &reqwest::Client, base: &str, data: &Dataset, total: u64) {
    let mut rng = Rng(11);
    let mut counts = Vec::new();
    for _ in 0..20 {
        let word = &data.vocabulary[rng.below(data.vocabulary.len() as u64) as usize];
        match get_json(client, &format!("{base}/api/v1/books?q={word}&per_page=1")).await {
            Ok(v) => counts.push(v["total"].as_u64().unwrap_or(0)),
            Err(e) => {
                println!("WARNING: search check failed: {e}");
                return;
            }
        }
    }
    let (min, max) = (
        counts.iter().min().copied().unwrap_or(0),
        counts.iter().max().copied().unwrap_or(0),
    );
    let avg = counts.iter().sum::<u64>() as f64 / counts.len().max(1) as f64;
    println!(
        "search words:  {} words; a word matches {min}..{max} books (mean {avg:.0}, {:.2}% of \
         the catalog)",
        data.vocabulary.len(),
        100.0 * avg / total.max(1) as f64
    );
}

// ---------------------------------------------------------------------------------------------
// Load

#[derive(Clone, Copy)]
struct RunShape {
    connections: usize,
    warmup: Duration,
    measure: Duration,
}

type PathFn = Arc<dyn Fn(&mut Rng) -> String + Send + Sync>;

struct ScenarioResult {
    name: &'static str,
    requests: u64,
    errors: u64,
    first_error: Option<String>,
    seconds: f64,
    hist: Histogram<u64>,
    cpu: Option<CpuUse>,
}

impl ScenarioResult {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    fn ms(&self, quantile: f64) -> f64 {
        self.hist.value_at_quantile(quantile) as f64 / 1000.0
    }

    fn max_ms(&self) -> f64 {
        self.hist.max() as f64 / 1000.0
    }
}

struct TaskResult {
    hist: Histogram<u64>,
    requests: u64,
    errors: u64,
    first_error: Option<String>,
}

async fn scenario(
    name: &'static str,
    client: &reqwest::Client,
    server: &Server,
    run: RunShape,
    path: PathFn,
) -> ScenarioResult {
    println!(
        "\n-- {name}: {} connections, {} s warm-up + {} s --",
        run.connections,
        run.warmup.as_secs(),
        run.measure.as_secs()
    );
    let started = Instant::now();
    let measure_from = started + run.warmup;
    let end = measure_from + run.measure;
    let mut tasks = Vec::with_capacity(run.connections);
    for t in 0..run.connections {
        let client = client.clone();
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x9E37_79B9 ^ ((t as u64 + 1) * 0x1000_0001));
            // Microseconds, 1 µs .. 60 s, 3 significant digits.
            let mut hist = new_histogram();
            let (mut requests, mut errors, mut first_error) = (0u64, 0u64, None);
            loop {
                let url = path(&mut rng);
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let outcome = match client.get(&url).send().await {
                    Ok(res) => {
                        let status = res.status();
                        match res.bytes().await {
                            Ok(_) if status.is_success() => Ok(()),
                            Ok(body) => Err(format!(
                                "GET {url} -> {status}: {}",
                                shorten(&String::from_utf8_lossy(&body), 200)
                            )),
                            Err(e) => Err(format!("GET {url}: {e}")),
                        }
                    }
                    Err(e) => Err(format!("GET {url}: {e}")),
                };
                let done = Instant::now();
                if sent >= measure_from && done <= end {
                    let us = (done - sent).as_micros().clamp(1, 60_000_000) as u64;
                    hist.record(us).unwrap();
                    requests += 1;
                    if let Err(e) = outcome {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            TaskResult {
                hist,
                requests,
                errors,
                first_error,
            }
        }));
    }
    // CPU use during the measured window: the server, this process, and the whole machine (the
    // rest is the database server, for PostgreSQL, and whatever else runs here).
    tokio::time::sleep_until(measure_from.into()).await;
    let before = CpuSample::take(server.pid);
    tokio::time::sleep_until(end.into()).await;
    let cpu = before
        .zip(CpuSample::take(server.pid))
        .map(|(a, b)| b.cores_since(&a));

    let mut result = ScenarioResult {
        name,
        requests: 0,
        errors: 0,
        first_error: None,
        seconds: run.measure.as_secs_f64(),
        hist: new_histogram(),
        cpu,
    };
    for task in tasks {
        let t = task.await.unwrap();
        result.hist.add(&t.hist).unwrap();
        result.requests += t.requests;
        result.errors += t.errors;
        if result.first_error.is_none() {
            result.first_error = t.first_error;
        }
    }
    println!(
        "{:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} requests, {} errors",
        result.rps(),
        result.ms(0.50),
        result.ms(0.99),
        result.max_ms(),
        result.requests,
        result.errors
    );
    if let Some(c) = &result.cpu {
        println!(
            "CPU (cores): server {:.2}, load generator {:.2}, whole machine {:.2} of {}",
            c.server,
            c.bench,
            c.machine,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
    }
    if let Some(e) = &result.first_error {
        println!("first error: {e}");
    }
    result
}

/// CPU time used so far, in clock ticks.
struct CpuSample {
    at: Instant,
    server: u64,
    bench: u64,
    machine_busy: u64,
}

/// Cores used on average between two samples.
struct CpuUse {
    server: f64,
    bench: f64,
    machine: f64,
}

impl CpuSample {
    fn take(pid: u32) -> Option<CpuSample> {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        Some(CpuSample {
            at: Instant::now(),
            server: stat_ticks(&read(&format!("/proc/{pid}/stat"))?)?,
            bench: stat_ticks(&read("/proc/self/stat")?)?,
            machine_busy: machine_busy_ticks(&read("/proc/stat")?)?,
        })
    }

    fn cores_since(&self, earlier: &CpuSample) -> CpuUse {
        let secs = (self.at - earlier.at).as_secs_f64().max(1e-3);
        let cores = |now: u64, then: u64| now.saturating_sub(then) as f64 / CLOCK_TICKS / secs;
        CpuUse {
            server: cores(self.server, earlier.server),
            bench: cores(self.bench, earlier.bench),
            machine: cores(self.machine_busy, earlier.machine_busy),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Results

struct Memory {
    startup: Option<u64>,
    idle: Option<u64>,
    load_peak: Option<u64>,
    serving_peak: Option<u64>,
    peak: Option<u64>,
}

fn results_table(
    cfg: &Config,
    detail: &ScenarioResult,
    search: &ScenarioResult,
    mem: Memory,
) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "### catalog_load — {} — {} books, {} connections, {} s per scenario",
        cfg.server.backend(),
        cfg.books,
        cfg.connections,
        cfg.seconds
    );
    let _ = writeln!(t);
    let _ = writeln!(
        t,
        "| scenario | req/s | p50 ms | p99 ms | max ms | errors | cores: server / machine | target | met |"
    );
    let _ = writeln!(t, "|---|---:|---:|---:|---:|---:|---:|---|---|");
    for (r, rps_target, p99_target) in [
        (detail, DETAIL_RPS_TARGET, DETAIL_P99_MS_TARGET),
        (search, SEARCH_RPS_TARGET, SEARCH_P99_MS_TARGET),
    ] {
        let met = r.rps() >= rps_target && r.ms(0.99) < p99_target && r.errors == 0;
        let _ = writeln!(
            t,
            "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} | ≥ {:.0} req/s, p99 < {:.0} ms | {} |",
            r.name,
            r.rps(),
            r.ms(0.50),
            r.ms(0.99),
            r.max_ms(),
            r.errors,
            r.cpu.as_ref().map_or("?".to_owned(), |c| format!(
                "{:.2} / {:.2}",
                c.server, c.machine
            )),
            rps_target,
            p99_target,
            yes_no(met)
        );
    }
    let _ = writeln!(t);
    let _ = writeln!(t, "| server memory (RSS) | MB | target | met |");
    let _ = writeln!(t, "|---|---:|---|---|");
    let row = |t: &mut String, what: &str, kb: Option<u64>, target: Option<f64>| {
        let mb = kb.map(|k| k as f64 / 1024.0);
        let _ = writeln!(
            t,
            "| {what} | {} | {} | {} |",
            mb.map_or("?".to_owned(), |m| format!("{m:.1}")),
            target.map_or("".to_owned(), |x| format!("< {x:.0} MB")),
            match (mb, target) {
                (Some(m), Some(x)) => yes_no(m < x).to_owned(),
                _ => String::new(),
            }
        );
    };
    row(&mut t, "at start-up (empty)", mem.startup, None);
    row(
        &mut t,
        "idle after loading the catalog",
        mem.idle,
        Some(IDLE_RSS_MB_TARGET),
    );
    row(&mut t, "peak during the import", mem.load_peak, None);
    row(&mut t, "peak while serving", mem.serving_peak, None);
    row(
        &mut t,
        "peak (whole run)",
        mem.peak,
        Some(PEAK_RSS_MB_TARGET),
    );
    let _ = writeln!(t);
    let _ = writeln!(
        t,
        "The load generator runs on the same machine and takes part of its {} cores (its own \
         use is printed per scenario); \"machine\" counts every process, including the database \
         server and anything else running. Memory is the API server's only{}.",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if cfg.server.backend() == "postgres" {
            ", without PostgreSQL's"
        } else {
            " (SQLite runs inside it)"
        }
    );
    t
}

fn mb_text(kb: Option<u64>) -> String {
    kb.map_or("unknown".to_owned(), |k| {
        format!("{:.1} MB", k as f64 / 1024.0)
    })
}

// ---------------------------------------------------------------------------------------------
// The generated catalog

// Authors are "First Last" from these lists (2,000 names), categories and publishers are fixed;
// none of their words is in the search vocabulary.
const FIRST_NAMES: &str =
    "Ada Alan Alice Amara Anton Beatrix Bruno Carmen Cyrus Dalia Dmitri Edith \
    Elena Emil Farah Felix Greta Hana Hugo Ines Ivan Jonas Julia Kenji Lena Leon Lucia Malik Marta \
    Milo Nadia Nils Olga Omar Paula Quentin Rosa Samir Sofia Tomas";
const LAST_NAMES: &str = "Abbott Achebe Baldwin Bianchi Calder Castillo Dalton Dubois Eriksen \
    Esposito Fischer Fontaine Garcia Greene Hartmann Hayes Ibarra Jansen Kaplan Kowalski Laurent \
    Lindqvist Marsh Moreau Nakamura Novak Okafor Olsen Petrov Quinn Rahman Rossi Sato Schmidt Silva \
    Tanaka Ueda Varga Weber Yilmaz Zhang Zoller Brennan Costa Delgado Eastwood Ferreira Gallagher \
    Holm Iversen";
const CATEGORIES: &str = "Fiction|Science Fiction|Fantasy|Mystery|Thriller|Romance|Historical \
    Fiction|Poetry|Drama|Biography|Memoir|History|Philosophy|Psychology|Science|Mathematics|\
    Computing|Economics|Politics|Travel|Cooking|Art|Music|Children|Young Adult|Graphic Novels|\
    Religion|Health|Nature|Sports";
const PUBLISHERS: &str = "Harbor House|Northwind Press|Cedar & Pine|Lantern Books|Blue Heron|\
    Meridian|Quarry Editions|Saltmarsh|Tidewater|Old Mill Press|Juniper|Foxglove";
const FORMATS: &[&str] = &["hardcover", "paperback", "ebook", "audiobook"];
const LANGUAGES: &[&str] = &["en", "en", "en", "en", "en", "en", "en", "fr", "de", "es"];

struct Dataset {
    /// 2,000 six-letter pseudo-words. A title has 2–4 of them and a subtitle (one book in three)
    /// 2, so a search word (the search covers title, subtitle, authors and ISBN) is in about 0.2%
    /// of the books; descriptions use the same words but are not searched.
    vocabulary: Vec<String>,
    first_names: Vec<&'static str>,
    last_names: Vec<&'static str>,
    categories: Vec<&'static str>,
    publishers: Vec<&'static str>,
}

impl Dataset {
    fn new() -> Dataset {
        const CONSONANTS: &[u8] = b"bdfgklmnprstvz";
        const VOWELS: &[u8] = b"aeiou";
        let first_names: Vec<&'static str> = FIRST_NAMES.split_whitespace().collect();
        let last_names: Vec<&'static str> = LAST_NAMES.split_whitespace().collect();
        let name_words: Vec<String> = first_names
            .iter()
            .chain(&last_names)
            .chain(&CATEGORIES.split(['|', ' ']).collect::<Vec<_>>())
            .chain(&PUBLISHERS.split(['|', ' ']).collect::<Vec<_>>())
            .map(|w| w.to_lowercase())
            .collect();
        let mut rng = Rng(2026);
        let mut seen = std::collections::HashSet::new();
        let mut vocabulary = Vec::with_capacity(VOCABULARY_SIZE);
        while vocabulary.len() < VOCABULARY_SIZE {
            let mut word = String::with_capacity(6);
            for _ in 0..3 {
                word.push(*rng.pick(CONSONANTS) as char);
                word.push(*rng.pick(VOWELS) as char);
            }
            // The search matches the last word as a prefix: no word may start a name.
            let starts_a_name = name_words.iter().any(|n| n.starts_with(&word));
            if !starts_a_name && seen.insert(word.clone()) {
                vocabulary.push(word);
            }
        }
        Dataset {
            vocabulary,
            first_names,
            last_names,
            categories: CATEGORIES.split('|').map(str::trim).collect(),
            publishers: PUBLISHERS.split('|').map(str::trim).collect(),
        }
    }

    fn words(&self, rng: &mut Rng, n: u64, capitalize: bool) -> String {
        let mut out = String::new();
        for i in 0..n {
            if i > 0 {
                out.push(' ');
            }
            let w = rng.pick(&self.vocabulary);
            if capitalize {
                let mut chars = w.chars();
                if let Some(c) = chars.next() {
                    out.extend(c.to_uppercase());
                    out.push_str(chars.as_str());
                }
            } else {
                out.push_str(w);
            }
        }
        out
    }

    /// The CSV of books `range` (0-based book numbers), with the header.
    fn csv(&self, range: std::ops::Range<u64>) -> BenchResult<Vec<u8>> {
        let mut w =
            csv::Writer::from_writer(Vec::with_capacity(300 * (range.end - range.start) as usize));
        w.write_record([
            "isbn",
            "title",
            "subtitle",
            "authors",
            "categories",
            "language",
            "publisher",
            "publication_date",
            "page_count",
            "format",
            "list_price_cents",
            "description",
            "cover_url",
        ])
        .map_err(|e| e.to_string())?;
        for n in range {
            // Each book's content depends on its number only.
            let mut rng = Rng(n.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0xB00C);
            let isbn = isbn13(n);
            let title_words = rng.between(2, 4);
            let title = self.words(&mut rng, title_words, true);
            let subtitle = if n % 3 == 0 {
                self.words(&mut rng, 2, true)
            } else {
                String::new()
            };
            let author = |rng: &mut Rng| {
                format!(
                    "{} {}",
                    rng.pick(&self.first_names),
                    rng.pick(&self.last_names)
                )
            };
            let mut authors = author(&mut rng);
            if rng.below(4) == 0 {
                let second = author(&mut rng);
                if second != authors {
                    authors = format!("{authors}|{second}");
                }
            }
            let mut categories = (*rng.pick(&self.categories)).to_owned();
            if rng.below(3) == 0 {
                let second = *rng.pick(&self.categories);
                if second != categories {
                    categories = format!("{categories}|{second}");
                }
            }
            let date = format!(
                "{}-{:02}-{:02}",
                rng.between(1950, 2025),
                rng.between(1, 12),
                rng.between(1, 28)
            );
            let description = format!("{}.", self.words(&mut rng, 4, false));
            w.write_record([
                isbn.as_str(),
                &title,
                &subtitle,
                &authors,
                &categories,
                *rng.pick(LANGUAGES),
                *rng.pick(&self.publishers),
                &date,
                &rng.between(80, 900).to_string(),
                *rng.pick(FORMATS),
                &rng.between(499, 5999).to_string(),
                &description,
                &format!("https://covers.example.com/{isbn}.jpg"),
            ])
            .map_err(|e| e.to_string())?;
        }
        w.into_inner().map_err(|e| e.to_string())
    }
}
