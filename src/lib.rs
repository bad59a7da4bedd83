//! `bookstore`: the JSON REST API a bookseller runs to sell books. The binary (`src/main.rs`) and
//! the HTTP tests both build the service from this library.

pub mod app;
pub mod auth;
pub mod catalog;
pub mod config;
pub mod db;
pub mod error;
pub mod http;
pub mod idempotency;
pub mod inventory;
pub mod maintenance;
pub mod ops;
pub mod orders;
pub mod webhooks;

pub use app::{build, start, AppState};
pub use config::Settings;
pub use error::ApiError;
