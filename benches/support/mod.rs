//! What the load benchmarks (`catalog_load`, `orders_load`, `stockroom_load`) and the crash test
//! (`crash_test`) share: reading their environment, running the release server (and killing and
//! restarting it) and its `create-admin` CLI, logging in, the CSV import request, CPU accounting
//! from /proc, the deterministic generator and the output helpers.
//!
//! Each bench includes it with `mod support;`.

use hdrhistogram::Histogram;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

pub type BenchResult<T> = Result<T, String>;

/// The process exit code for a bench's outcome, printing the failure.
pub fn exit_code(bench: &str, outcome: BenchResult<()>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("\n{bench} FAILED: {message}");
            ExitCode::FAILURE
        }
    }
}

pub fn env_num(name: &str, default: u64) -> BenchResult<u64> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map_err(|_| format!("{name}={v} is not a whole number")),
        _ => Ok(default),
    }
}

/// `$BENCH_OUT`, the file the result table is appended to.
pub fn out_path() -> Option<PathBuf> {
    std::env::var_os("BENCH_OUT").map(PathBuf::from)
}

// ---------------------------------------------------------------------------------------------
// The server process

/// How a bench runs the server binary: which one, on which database, with its own secret and
/// admin.
pub struct ServerConfig {
    pub database_url: String,
    pub bin: PathBuf,
    pub jwt_secret: &'static str,
    pub admin_email: &'static str,
    pub admin_password: &'static str,
}

impl ServerConfig {
    /// `$BENCH_DATABASE_URL` (required; `script` is named in the error) and `$BOOKSTORE_BIN`.
    pub fn from_env(
        script: &str,
        jwt_secret: &'static str,
        admin_email: &'static str,
        admin_password: &'static str,
    ) -> BenchResult<ServerConfig> {
        let database_url = std::env::var("BENCH_DATABASE_URL")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| {
                format!(
                    "set BENCH_DATABASE_URL to an SQLite file path or a postgres:// URL of an \
                     empty database ({script} does this)"
                )
            })?;
        // Cargo builds the package's binaries with the bench profile (release) before a bench.
        let bin = std::env::var_os("BOOKSTORE_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_bookstore")));
        Ok(ServerConfig {
            database_url,
            bin,
            jwt_secret,
            admin_email,
            admin_password,
        })
    }

    pub fn backend(&self) -> &'static str {
        if self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://")
        {
            "postgres"
        } else {
            "sqlite"
        }
    }

    /// Prints the first lines of a bench's output: its name, backend, binary and database.
    pub fn print_header(&self, bench: &str) {
        println!("== {bench}: {} ==", self.backend());
        println!("server binary: {}", self.bin.display());
        println!("database:      {}", redact(&self.database_url));
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.env("DATABASE_URL", &self.database_url)
            .env("BOOKSTORE_JWT_SECRET", self.jwt_secret)
            .env("RUST_LOG", "warn");
        cmd
    }

    /// Creates the admin with the CLI (the database must be empty).
    pub fn create_admin(&self) -> BenchResult<()> {
        let mut child = self
            .command()
            .args(["create-admin", "--email", self.admin_email])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run create-admin: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            writeln!(stdin, "{}", self.admin_password).map_err(|e| e.to_string())?;
        }
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "create-admin failed ({}): {}{} (is the database empty?)",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        print!("{}", String::from_utf8_lossy(&out.stdout));
        Ok(())
    }
}

pub struct Server {
    child: Child,
    pub pid: u32,
    #[allow(dead_code)] // the crash test's
    pub port: u16,
    pub base: String,
}

/// How [`Server::start_with`] runs the server, beyond [`ServerConfig`].
#[derive(Debug, Default)]
pub struct ServerOptions {
    /// The port to listen on (a free one when `None`); the crash test restarts on the same one.
    pub port: Option<u16>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// A file both output streams are appended to (inherited when `None`).
    pub log: Option<PathBuf>,
}

impl Server {
    pub fn start(cfg: &ServerConfig) -> BenchResult<Server> {
        Server::start_with(cfg, &ServerOptions::default())
    }

    pub fn start_with(cfg: &ServerConfig, opts: &ServerOptions) -> BenchResult<Server> {
        if !cfg.bin.exists() {
            return Err(format!(
                "{} does not exist: build it with `cargo build --release` or set BOOKSTORE_BIN",
                cfg.bin.display()
            ));
        }
        let port = match opts.port {
            Some(port) => port,
            None => std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("no free port: {e}"))?
                .port(),
        };
        let mut cmd = cfg.command();
        cmd.envs(opts.env.iter().map(|(k, v)| (k, v)));
        if let Some(path) = &opts.log {
            let open = || {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("cannot open {}: {e}", path.display()))
            };
            cmd.stdout(open()?).stderr(open()?);
        }
        let child = cmd
            .arg("serve")
            .env("BOOKSTORE_BIND", format!("127.0.0.1:{port}"))
            // Long enough for the whole run, whatever the import speed.
            .env("BOOKSTORE_ACCESS_TOKEN_TTL_SECS", "7200")
            // The stockroom bench's webhook receiver listens on 127.0.0.1.
            .env("BOOKSTORE_WEBHOOK_ALLOW_PRIVATE", "true")
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", cfg.bin.display()))?;
        Ok(Server {
            pid: child.id(),
            child,
            port,
            base: format!("http://127.0.0.1:{port}"),
        })
    }

    pub async fn wait_ready(&self, client: &reqwest::Client) -> BenchResult<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(res) = client
                .get(format!("{}/readyz", self.base))
                .timeout(Duration::from_secs(2))
                .send()
                .await
            {
                if res.status().is_success() {
                    return Ok(());
                }
            }
            // An exited child stays a zombie until it is reaped: it has no VmRSS any more.
            if !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
                || self.status_kb("VmRSS:").is_none()
            {
                return Err("the server exited before it was ready (see its log above)".into());
            }
            if Instant::now() > deadline {
                return Err("the server was not ready within 120 s".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A `kB` field of /proc/<pid>/status, such as `VmRSS:` or `VmHWM:`.
    pub fn status_kb(&self, key: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        status
            .lines()
            .find(|l| l.starts_with(key))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }
}

impl Server {
    /// `kill -9`: the process dies at once, wherever it is (and is reaped).
    #[allow(dead_code)] // the crash test's
    pub fn kill(&mut self) -> BenchResult<()> {
        self.child
            .kill()
            .map_err(|e| format!("cannot kill {}: {e}", self.pid))?;
        self.child
            .wait()
            .map(drop)
            .map_err(|e| format!("cannot reap {}: {e}", self.pid))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// The load generator's client: `connections` keep-alive connections, no Nagle, 30 s time-out.
pub fn http_client(connections: usize) -> BenchResult<reqwest::Client> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())
}

/// Logs in as the admin: its access token and the whole login answer.
pub async fn login(
    client: &reqwest::Client,
    base: &str,
    cfg: &ServerConfig,
) -> BenchResult<(String, serde_json::Value)> {
    let res = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({"email": cfg.admin_email, "password": cfg.admin_password}))
        .send()
        .await
        .map_err(|e| format!("login request failed: {e}"))?;
    let status = res.status();
    let body = res.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(format!("POST /api/v1/auth/login answered {status}: {body}"));
    }
    let json: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("login body is not JSON ({e}): {body}"))?;
    let token = json["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("login body has no access_token: {body}"))?;
    Ok((token, json))
}

/// `POST /api/v1/books/import` of a CSV: the answer's status and body.
pub async fn import_csv(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    csv: Vec<u8>,
) -> BenchResult<(reqwest::StatusCode, String)> {
    let res = client
        .post(format!("{base}/api/v1/books/import"))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .timeout(Duration::from_secs(900))
        .body(csv)
        .send()
        .await
        .map_err(|e| format!("import request failed: {e}"))?;
    let status = res.status();
    let body = res.text().await.unwrap_or_default();
    Ok((status, body))
}

/// Imports `books` generated paperbacks (ISBNs `isbn13(0..books)`, titles `<title> <n>`, prices
/// from 4.99 to 59.98) through the CSV import.
#[allow(dead_code)] // the catalog bench imports its own richer rows
pub async fn import_generated_books(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    books: u64,
    title: &str,
) -> BenchResult<()> {
    let mut w = csv::Writer::from_writer(Vec::with_capacity(80 * books as usize));
    w.write_record(["isbn", "title", "language", "format", "list_price_cents"])
        .map_err(|e| e.to_string())?;
    for n in 0..books {
        w.write_record([
            isbn13(n).as_str(),
            &format!("{title} {n}"),
            "en",
            "paperback",
            &(499 + (n * 37) % 5_500).to_string(),
        ])
        .map_err(|e| e.to_string())?;
    }
    let csv = w.into_inner().map_err(|e| e.to_string())?;
    let (status, body) = import_csv(client, base, token, csv).await?;
    if !status.is_success() {
        return Err(format!(
            "POST /api/v1/books/import answered {status}: {}",
            shorten(&body, 300)
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Measurement

pub fn new_histogram() -> Histogram<u64> {
    // Microseconds, 1 µs .. 60 s, 3 significant digits.
    Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// USER_HZ, 100 on every Linux architecture we run on.
pub const CLOCK_TICKS: f64 = 100.0;

/// Busy ticks of all CPUs from /proc/stat's `cpu` line (everything but idle and iowait).
pub fn machine_busy_ticks(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let total: u64 = ticks.iter().sum();
    Some(total - ticks.get(3)? - ticks.get(4)?)
}

/// utime + stime from a /proc/<pid>/stat line (fields 14 and 15, after the command name).
pub fn stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

// ---------------------------------------------------------------------------------------------
// Output

/// Prints the result table and appends it to `out` (`$BENCH_OUT`) if set.
pub fn report(table: &str, out: Option<&PathBuf>) -> BenchResult<()> {
    println!("\n{table}");
    if let Some(path) = out {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        writeln!(file, "{table}").map_err(|e| e.to_string())?;
    }
    Ok(())
}

pub fn yes_no(ok: bool) -> &'static str {
    if ok {
        "yes"
    } else {
        "NO"
    }
}

pub fn shorten(s: &str, max: usize) -> String {
    let s = s.trim();
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => match url[scheme + 3..at].find(':') {
            Some(colon) => format!("{}:***{}", &url[..scheme + 3 + colon], &url[at..]),
            None => url.to_owned(),
        },
        _ => url.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// Generated data

/// SplitMix64: small, fast and deterministic, so every run generates the same data.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is negligible here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// ISBN-13 number `n` of the benches: 978, a 9-digit counter and the check digit.
pub fn isbn13(n: u64) -> String {
    let body = format!("978{n:09}");
    let sum: u32 = body
        .bytes()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 1 } else { 3 })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}
