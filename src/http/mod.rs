//! HTTP plumbing shared by every area: body and query extractors that answer problem+json,
//! request ids, the error-body normaliser, pagination and `If-Match` handling.

pub mod extract;
pub mod middleware;
pub mod pagination;

pub use extract::{ApiJson, ApiQuery};
pub use pagination::{Page, PageParams};
