//! HTTP plumbing shared by every area: body and query extractors that answer problem+json,
//! request ids, the error-body normaliser, pagination, `If-Match` handling and `Idempotency-Key`
//! replays, and the one rule for control characters in text input.

pub mod client_addr;
pub mod contract;
pub mod extract;
pub mod idempotent;
pub mod middleware;
pub mod pagination;
pub mod query;
pub mod text;

pub use extract::{ApiJson, ApiQuery};
pub use pagination::{Page, PageParams};
