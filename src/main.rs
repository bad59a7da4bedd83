//! The `bookstore` command: serves the API, runs migrations, prints the OpenAPI document, and
//! creates the first admin.

use bookstore::auth::Role;
use bookstore::{db, AppState, Settings};
use clap::{Parser, Subcommand};
use std::io::BufRead;
use std::net::TcpListener;
use std::process::ExitCode;

/// jemalloc hands freed memory back to the OS within a second (see `.cargo/config.toml`), where
/// glibc's allocator kept what a large CSV import had used (measured: idle RSS after loading
/// 100,000 books).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The bookstore API server. Settings come from the environment (see README): DATABASE_URL,
/// BOOKSTORE_BIND, BOOKSTORE_JWT_SECRET, BOOKSTORE_CURRENCY, BOOKSTORE_CORS_ORIGINS, RUST_LOG, …
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate the database and serve the API (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI document (JSON) to standard output.
    Openapi,
    /// Create an admin user; the password is read from standard input when --password is omitted.
    CreateAdmin {
        /// Login email of the new admin.
        #[arg(long)]
        email: String,
        /// Password (at least 10 characters). Prefer standard input: flags show up in `ps`.
        #[arg(long)]
        password: Option<String>,
    },
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Openapi => {
            print!("{}", bookstore::app::openapi_json());
            Ok(())
        }
        Command::Serve => serve(),
        Command::Migrate => migrate(),
        Command::CreateAdmin { email, password } => create_admin(&email, password),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn settings() -> Result<Settings, String> {
    Settings::from_env().map_err(|e| e.to_string())
}

fn serve() -> Result<(), String> {
    let settings = settings()?;
    let bind = settings.bind.clone();
    log::info!("starting with {settings:?}");
    let state = AppState::init(settings)?;
    let listener = TcpListener::bind(&bind).map_err(|e| format!("cannot listen on {bind}: {e}"))?;
    log::info!("listening on http://{bind} (docs at http://{bind}/docs/)");
    actix_web::rt::System::new()
        .block_on(async move { bookstore::start(listener, state)?.await })
        .map_err(|e| format!("server error: {e}"))
}

fn migrate() -> Result<(), String> {
    let settings = settings()?;
    let pool = db::build_pool(&settings.database_url, 1)?;
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    let applied = db::run_migrations(&mut conn)?;
    println!("applied {} migration(s)", applied.len());
    Ok(())
}

fn create_admin(email: &str, password: Option<String>) -> Result<(), String> {
    let password = match password {
        Some(p) => p,
        None => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    let state = AppState::init(settings()?)?;
    let mut conn = state.pool.get().map_err(|e| e.to_string())?;
    let id = bookstore::auth::service::create_user(&mut conn, email, &password, Role::Admin, None)
        .map_err(|e| match e {
            bookstore::ApiError::Validation(errors) => errors
                .iter()
                .map(|f| format!("{} {}", f.field, f.message))
                .collect::<Vec<_>>()
                .join("; "),
            other => other.to_string(),
        })?;
    println!("created admin {email} (user id {id})");
    Ok(())
}
