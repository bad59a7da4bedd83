//! Settings read from the environment once at start-up and validated, so that a bad value stops
//! the process with a clear message instead of failing on the first request.

use crate::http::client_addr::TrustedProxies;
use rand::RngCore;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Which database a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn of_url(url: &str) -> Backend {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }
}

/// Everything the service can be configured with.
#[derive(Clone)]
pub struct Settings {
    /// A SQLite file path (or `sqlite://path`) or a `postgres://` URL.
    pub database_url: String,
    pub bind: String,
    /// HMAC key for access tokens; at least 32 bytes.
    pub jwt_secret: Vec<u8>,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// ISO 4217 code every `*_cents` amount is in.
    pub currency: String,
    /// Origins allowed by CORS; empty means no cross-origin access, `*` any origin.
    pub cors_origins: Vec<String>,
    pub pool_size: u32,
    /// HTTP worker threads; defaults to the number of cores.
    pub workers: Option<usize>,
    /// Failed logins allowed per email within `login_window`.
    pub login_max_failures: u32,
    /// Failed logins allowed per client address within `login_window`; higher than the per-email
    /// allowance because many people can share one address (an office NAT).
    pub login_max_failures_per_ip: u32,
    /// Failed logins allowed per email from all addresses together within `login_window`: a
    /// ceiling that only an attack from many addresses reaches.
    pub login_max_failures_per_email: u32,
    pub login_window: Duration,
    /// Proxies (addresses or CIDR blocks) whose `X-Forwarded-For` names the client; from any
    /// other peer the header is ignored. Empty: the TCP peer is always the client.
    pub trusted_proxies: TrustedProxies,
    /// How long a search result may be served from memory; writes through this process
    /// invalidate it at once, writes through other replicas are seen after this long. Zero: off.
    pub search_cache_ttl: Duration,
    /// Largest accepted JSON body.
    pub json_limit_bytes: usize,
    /// Largest accepted CSV import.
    pub import_limit_bytes: usize,
    /// How long an unpaid order holds its stock before it expires.
    pub order_ttl: Duration,
    /// Payment methods accepted (`card`, `cash`, `bank_transfer`).
    pub payment_methods: Vec<String>,
    /// How long an order with a pending bank transfer keeps its stock before it expires.
    pub bank_transfer_ttl: Duration,
    /// How long a request has to settle a card charge it started; after that, a retry with the
    /// same `Idempotency-Key` or the maintenance sweep settles it. Longer than any provider call.
    pub payment_lease: Duration,
    /// Where the built-in test payment provider keeps its journal of charges and refunds, so that
    /// it remembers them across restarts (the crash test reads it); in memory only when unset.
    pub test_provider_journal: Option<std::path::PathBuf>,
    /// How long after fulfilment a customer may request a return (staff: any time).
    pub return_window: Duration,
    /// How often the maintenance task expires unpaid orders and retries refunds; zero disables
    /// it (another replica must then run it).
    pub sweep_interval: Duration,
    /// The reorder point given to the stock level of every new book.
    pub default_reorder_point: i64,
    /// How often the webhook worker looks for due deliveries when nothing woke it; zero disables
    /// the worker in this process (another replica must then run it).
    pub webhook_poll_interval: Duration,
    /// How long one webhook request may take before it counts as failed.
    pub webhook_timeout: Duration,
    /// The delay before the first retry of a failed webhook delivery; later ones double it.
    pub webhook_retry_base: Duration,
    /// How long after its event a failing delivery keeps being retried before it is marked failed.
    pub webhook_max_age: Duration,
    /// Lets webhook URLs point at loopback, private, link-local and other internal addresses
    /// (and skips resolving host names at registration). Off in production: an admin token must
    /// not become a way to reach the internal network or the cloud metadata service.
    pub webhook_allow_private: bool,
}

/// Every payment method the API knows; `BOOKSTORE_PAYMENT_METHODS` enables a subset.
pub const PAYMENT_METHODS: [&str; 3] = ["card", "cash", "bank_transfer"];

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("database_url", &redact_url(&self.database_url))
            .field("bind", &self.bind)
            .field("jwt_secret", &"<redacted>")
            .field("currency", &self.currency)
            .field("cors_origins", &self.cors_origins)
            .field("pool_size", &self.pool_size)
            .finish_non_exhaustive()
    }
}

/// A setting that cannot be used, with the variable's name.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {name}: {reason}")]
pub struct ConfigError {
    pub name: &'static str,
    pub reason: String,
}

fn config_error(name: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        name,
        reason: reason.into(),
    }
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Settings, ConfigError> {
        Settings::from_vars(&std::env::vars().collect())
    }

    /// Reads settings from a map of variables, so that parsing can be tested without touching
    /// the process environment.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Settings, ConfigError> {
        let get = |name: &str| {
            vars.get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let database_url = get("DATABASE_URL").unwrap_or_else(|| "bookstore.db".to_owned());
        let backend = Backend::of_url(&database_url);

        let jwt_secret = match get("BOOKSTORE_JWT_SECRET") {
            Some(secret) if secret.len() >= 32 => secret.into_bytes(),
            Some(_) => {
                return Err(config_error(
                    "BOOKSTORE_JWT_SECRET",
                    "must be at least 32 characters long",
                ))
            }
            None if backend == Backend::Postgres => return Err(config_error(
                "BOOKSTORE_JWT_SECRET",
                "is required with PostgreSQL so that every replica signs tokens with the same key",
            )),
            None => load_or_create_secret(&secret_path_for(&database_url))?,
        };

        let currency = get("BOOKSTORE_CURRENCY").unwrap_or_else(|| "USD".to_owned());
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(config_error(
                "BOOKSTORE_CURRENCY",
                "must be an ISO 4217 code of three upper-case letters, such as USD",
            ));
        }

        let cors_origins: Vec<String> = get("BOOKSTORE_CORS_ORIGINS")
            .map(|v| {
                v.split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_owned())
                    .filter(|o| !o.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if let Some(bad) = cors_origins.iter().find(|o| !is_origin(o)) {
            return Err(config_error(
                "BOOKSTORE_CORS_ORIGINS",
                format!("'{bad}' is not an origin such as https://shop.example or http://localhost:3000 (or *)"),
            ));
        }

        let payment_methods: Vec<String> = match get("BOOKSTORE_PAYMENT_METHODS") {
            None => PAYMENT_METHODS.iter().map(|m| (*m).to_owned()).collect(),
            Some(raw) => raw
                .split(',')
                .map(|m| m.trim().to_ascii_lowercase())
                .filter(|m| !m.is_empty())
                .collect(),
        };
        if let Some(bad) = payment_methods
            .iter()
            .find(|m| !PAYMENT_METHODS.contains(&m.as_str()))
        {
            return Err(config_error(
                "BOOKSTORE_PAYMENT_METHODS",
                format!(
                    "'{bad}' is not a payment method; use a comma list of {}",
                    PAYMENT_METHODS.join(", ")
                ),
            ));
        }
        if payment_methods.is_empty() {
            return Err(config_error(
                "BOOKSTORE_PAYMENT_METHODS",
                "must name at least one payment method",
            ));
        }

        let trusted_proxies = TrustedProxies::parse(
            &get("BOOKSTORE_TRUSTED_PROXIES").unwrap_or_default(),
        )
        .map_err(|bad| {
            config_error(
                "BOOKSTORE_TRUSTED_PROXIES",
                format!("'{bad}' is not an IP address or CIDR block such as 10.0.0.0/8"),
            )
        })?;
        let webhook_allow_private = parse_bool(&get, "BOOKSTORE_WEBHOOK_ALLOW_PRIVATE", false)?;

        Ok(Settings {
            trusted_proxies,
            webhook_allow_private,
            payment_methods,
            bind: get("BOOKSTORE_BIND").unwrap_or_else(|| "127.0.0.1:8080".to_owned()),
            jwt_secret,
            jwt_issuer: get("BOOKSTORE_JWT_ISSUER").unwrap_or_else(|| "bookstore".to_owned()),
            jwt_audience: get("BOOKSTORE_JWT_AUDIENCE")
                .unwrap_or_else(|| "bookstore-api".to_owned()),
            access_token_ttl: Duration::from_secs(parse_num(
                &get,
                "BOOKSTORE_ACCESS_TOKEN_TTL_SECS",
                900,
                30..=86_400,
            )?),
            refresh_token_ttl: Duration::from_secs(parse_num(
                &get,
                "BOOKSTORE_REFRESH_TOKEN_TTL_SECS",
                30 * 86_400,
                60..=365 * 86_400,
            )?),
            currency,
            cors_origins,
            // SQLite runs in-process on the same cores: a few connections keep them busy (measured
            // on 2 cores: 4 served searches as fast as 16, with half the memory). PostgreSQL
            // connections mostly wait on the network and the server, so more of them help.
            pool_size: parse_num(
                &get,
                "BOOKSTORE_DB_POOL_SIZE",
                if backend == Backend::Postgres { 16 } else { 4 },
                1..=512,
            )? as u32,
            workers: match get("BOOKSTORE_WORKERS") {
                None => None,
                Some(_) => Some(parse_num(&get, "BOOKSTORE_WORKERS", 2, 1..=256)? as usize),
            },
            login_max_failures: parse_num(&get, "BOOKSTORE_LOGIN_MAX_FAILURES", 5, 1..=1000)?
                as u32,
            login_max_failures_per_ip: parse_num(
                &get,
                "BOOKSTORE_LOGIN_MAX_FAILURES_PER_IP",
                50,
                1..=100_000,
            )? as u32,
            login_max_failures_per_email: parse_num(
                &get,
                "BOOKSTORE_LOGIN_MAX_FAILURES_PER_EMAIL",
                100,
                1..=1_000_000,
            )? as u32,
            login_window: Duration::from_secs(parse_num(
                &get,
                "BOOKSTORE_LOGIN_WINDOW_SECS",
                900,
                1..=86_400,
            )?),
            search_cache_ttl: Duration::from_secs(parse_num(
                &get,
                "BOOKSTORE_SEARCH_CACHE_SECS",
                5,
                0..=3600,
            )?),
            json_limit_bytes: parse_num(
                &get,
                "BOOKSTORE_JSON_LIMIT_BYTES",
                256 * 1024,
                1024..=64 << 20,
            )? as usize,
            import_limit_bytes: parse_num(
                &get,
                "BOOKSTORE_IMPORT_LIMIT_BYTES",
                32 << 20,
                1024..=1 << 30,
            )? as usize,
            order_ttl: Duration::from_secs(parse_num(
                &get,
                "BOOKSTORE_ORDER_TTL_SECS",
                1800,
                1..=7 * 86_400,
            )?),
            bank_transfer_ttl: Duration::from_secs(parse_num(
                &get,
                "BOOKSTORE_BANK_TRANSFER_TTL_SECS",
                7 * 86_400,
                60..=60 * 86_400,
            )?),
            payment_lease: Duration::from_secs(parse_num(
                &get,
                "BOOKSTORE_PAYMENT_LEASE_SECS",
                30,
                1..=60,
            )?),
            test_provider_journal: get("BOOKSTORE_TEST_PROVIDER_JOURNAL")
                .filter(|path| !path.trim().is_empty())
                .map(std::path::PathBuf::from),
            return_window: Duration::from_secs(
                parse_num(&get, "BOOKSTORE_RETURN_WINDOW_DAYS", 30, 0..=365)? * 86_400,
            ),
            sweep_interval: Duration::from_secs(parse_num(
                &get,
                "BOOKSTORE_SWEEP_INTERVAL_SECS",
                10,
                0..=3600,
            )?),
            default_reorder_point: parse_num(
                &get,
                "BOOKSTORE_DEFAULT_REORDER_POINT",
                0,
                0..=1_000_000,
            )? as i64,
            webhook_poll_interval: Duration::from_millis(parse_num(
                &get,
                "BOOKSTORE_WEBHOOK_POLL_MS",
                250,
                0..=60_000,
            )?),
            webhook_timeout: Duration::from_secs(parse_num(
                &get,
                "BOOKSTORE_WEBHOOK_TIMEOUT_SECS",
                10,
                1..=120,
            )?),
            webhook_retry_base: Duration::from_secs(parse_num(
                &get,
                "BOOKSTORE_WEBHOOK_RETRY_BASE_SECS",
                30,
                1..=3600,
            )?),
            webhook_max_age: Duration::from_secs(parse_num(
                &get,
                "BOOKSTORE_WEBHOOK_MAX_AGE_SECS",
                86_400,
                60..=7 * 86_400,
            )?),
            database_url,
        })
    }

    pub fn backend(&self) -> Backend {
        Backend::of_url(&self.database_url)
    }

    /// Settings for tests and tools: the given database, a fixed secret, defaults elsewhere.
    pub fn for_database(database_url: &str) -> Settings {
        Settings {
            database_url: database_url.to_owned(),
            bind: "127.0.0.1:0".to_owned(),
            jwt_secret: b"test-secret-test-secret-test-secret!!".to_vec(),
            jwt_issuer: "bookstore".to_owned(),
            jwt_audience: "bookstore-api".to_owned(),
            access_token_ttl: Duration::from_secs(900),
            refresh_token_ttl: Duration::from_secs(30 * 86_400),
            currency: "USD".to_owned(),
            cors_origins: Vec::new(),
            pool_size: 8,
            workers: Some(2),
            login_max_failures: 5,
            login_max_failures_per_ip: 50,
            login_max_failures_per_email: 100,
            trusted_proxies: TrustedProxies::default(),
            search_cache_ttl: Duration::from_secs(5),
            login_window: Duration::from_secs(900),
            json_limit_bytes: 256 * 1024,
            import_limit_bytes: 32 << 20,
            order_ttl: Duration::from_secs(1800),
            payment_methods: PAYMENT_METHODS.iter().map(|m| (*m).to_owned()).collect(),
            bank_transfer_ttl: Duration::from_secs(7 * 86_400),
            payment_lease: Duration::from_secs(30),
            test_provider_journal: None,
            return_window: Duration::from_secs(30 * 86_400),
            sweep_interval: Duration::from_secs(10),
            default_reorder_point: 0,
            webhook_poll_interval: Duration::from_millis(250),
            webhook_timeout: Duration::from_secs(10),
            webhook_retry_base: Duration::from_secs(30),
            webhook_max_age: Duration::from_secs(86_400),
            webhook_allow_private: false,
        }
    }
}

fn parse_bool(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match get(name).map(|v| v.to_ascii_lowercase()).as_deref() {
        None => Ok(default),
        Some("true" | "1" | "yes" | "on") => Ok(true),
        Some("false" | "0" | "no" | "off") => Ok(false),
        Some(other) => Err(config_error(
            name,
            format!("'{other}' is not a boolean; use true or false"),
        )),
    }
}

fn parse_num(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    let Some(raw) = get(name) else {
        return Ok(default);
    };
    let value: u64 = raw
        .parse()
        .map_err(|_| config_error(name, format!("'{raw}' is not a whole number")))?;
    if !range.contains(&value) {
        return Err(config_error(
            name,
            format!("{value} is outside {}..={}", range.start(), range.end()),
        ));
    }
    Ok(value)
}

/// `*`, or `http(s)://host[:port]` with no path: what a browser sends in `Origin`.
fn is_origin(origin: &str) -> bool {
    if origin == "*" {
        return true;
    }
    let Some(rest) = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
    else {
        return false;
    };
    !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
}

/// The SQLite file a URL names (`sqlite://x.db`, `sqlite:x.db` or a bare path).
pub fn sqlite_path(url: &str) -> &str {
    url.strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url)
}

fn secret_path_for(database_url: &str) -> PathBuf {
    PathBuf::from(format!("{}.jwt-secret", sqlite_path(database_url)))
}

/// Keeps a generated signing key beside the SQLite file so tokens survive restarts.
fn load_or_create_secret(path: &Path) -> Result<Vec<u8>, ConfigError> {
    let name = "BOOKSTORE_JWT_SECRET";
    if let Ok(existing) = std::fs::read_to_string(path) {
        let existing = existing.trim().to_owned();
        if existing.len() >= 32 {
            return Ok(existing.into_bytes());
        }
    }
    let mut bytes = [0u8; 48];
    rand::rng().fill_bytes(&mut bytes);
    let secret = hex::encode(bytes);
    write_private(path, &secret)
        .map_err(|e| config_error(name, format!("cannot write {}: {e}", path.display())))?;
    log::warn!(
        "BOOKSTORE_JWT_SECRET is not set: generated a signing key and stored it in {} (mode 0600)",
        path.display()
    );
    Ok(secret.into_bytes())
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

/// A URL with its password replaced, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let creds = &url[scheme_end + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn postgres_requires_a_secret() {
        let err = Settings::from_vars(&vars(&[("DATABASE_URL", "postgres://localhost/x")]))
            .err()
            .map(|e| e.name);
        assert_eq!(err, Some("BOOKSTORE_JWT_SECRET"));
    }

    #[test]
    fn rejects_bad_currency_and_numbers() {
        let base = [
            ("DATABASE_URL", "postgres://localhost/x"),
            ("BOOKSTORE_JWT_SECRET", "0123456789abcdef0123456789abcdef"),
        ];
        let mut v = vars(&base);
        v.insert("BOOKSTORE_CURRENCY".into(), "usd".into());
        assert_eq!(
            Settings::from_vars(&v).err().map(|e| e.name),
            Some("BOOKSTORE_CURRENCY")
        );
        let mut v = vars(&base);
        v.insert("BOOKSTORE_DB_POOL_SIZE".into(), "many".into());
        assert_eq!(
            Settings::from_vars(&v).err().map(|e| e.name),
            Some("BOOKSTORE_DB_POOL_SIZE")
        );
        let ok = Settings::from_vars(&vars(&base)).map(|s| s.currency);
        assert_eq!(ok.ok().as_deref(), Some("USD"));
    }

    #[test]
    fn payment_methods_are_validated() {
        let base = [
            ("DATABASE_URL", "postgres://localhost/x"),
            ("BOOKSTORE_JWT_SECRET", "0123456789abcdef0123456789abcdef"),
        ];
        let all = Settings::from_vars(&vars(&base)).map(|s| s.payment_methods);
        assert_eq!(
            all.ok(),
            Some(vec!["card".into(), "cash".into(), "bank_transfer".into()])
        );
        let mut v = vars(&base);
        v.insert("BOOKSTORE_PAYMENT_METHODS".into(), " card , Cash ".into());
        let some = Settings::from_vars(&v).map(|s| s.payment_methods);
        assert_eq!(some.ok(), Some(vec!["card".into(), "cash".into()]));
        for bad in ["card,cheque", ",,"] {
            let mut v = vars(&base);
            v.insert("BOOKSTORE_PAYMENT_METHODS".into(), bad.into());
            assert_eq!(
                Settings::from_vars(&v).err().map(|e| e.name),
                Some("BOOKSTORE_PAYMENT_METHODS"),
                "{bad}"
            );
        }
    }

    #[test]
    fn sqlite_secret_is_generated_once_with_private_mode() {
        let dir = std::env::temp_dir().join(format!("bookstore-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("x.db");
        let v = vars(&[("DATABASE_URL", db.to_str().unwrap())]);
        let first = Settings::from_vars(&v).unwrap().jwt_secret;
        let second = Settings::from_vars(&v).unwrap().jwt_secret;
        assert_eq!(first, second);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("x.db.jwt-secret"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn cors_origins_are_checked() {
        let mut v = vars(&[
            ("DATABASE_URL", "postgres://localhost/x"),
            ("BOOKSTORE_JWT_SECRET", "0123456789abcdef0123456789abcdef"),
            (
                "BOOKSTORE_CORS_ORIGINS",
                "https://shop.example, http://localhost:3000/",
            ),
        ]);
        let ok = Settings::from_vars(&v).map(|s| s.cors_origins);
        assert_eq!(
            ok.ok(),
            Some(vec![
                "https://shop.example".to_owned(),
                "http://localhost:3000".to_owned()
            ])
        );
        v.insert("BOOKSTORE_CORS_ORIGINS".into(), "shop.example".into());
        assert_eq!(
            Settings::from_vars(&v).err().map(|e| e.name),
            Some("BOOKSTORE_CORS_ORIGINS")
        );
    }

    #[test]
    fn trusted_proxies_and_private_webhooks_are_parsed() {
        let base = [
            ("DATABASE_URL", "postgres://localhost/x"),
            ("BOOKSTORE_JWT_SECRET", "0123456789abcdef0123456789abcdef"),
        ];
        let s = Settings::from_vars(&vars(&base)).unwrap();
        assert!(s.trusted_proxies.is_empty());
        assert!(!s.webhook_allow_private);
        assert_eq!(s.login_max_failures_per_email, 100);
        let mut v = vars(&base);
        v.insert("BOOKSTORE_TRUSTED_PROXIES".into(), "10.0.0.0/8, ::1".into());
        v.insert("BOOKSTORE_WEBHOOK_ALLOW_PRIVATE".into(), "TRUE".into());
        let s = Settings::from_vars(&v).unwrap();
        assert!(s.trusted_proxies.contains("10.9.8.7".parse().unwrap()));
        assert!(s.webhook_allow_private);
        for (name, bad) in [
            ("BOOKSTORE_TRUSTED_PROXIES", "10.0.0.0/8, lb.internal"),
            ("BOOKSTORE_WEBHOOK_ALLOW_PRIVATE", "maybe"),
        ] {
            let mut v = vars(&base);
            v.insert(name.into(), bad.into());
            assert_eq!(Settings::from_vars(&v).err().map(|e| e.name), Some(name));
        }
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("bookstore.db"), "bookstore.db");
    }
}
