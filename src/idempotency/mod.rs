//! `Idempotency-Key`: one key (per caller) creates at most one effect, however many retries race
//! (core invariant 5). Shared by every area that creates something on a client's retry-prone
//! `POST` (orders, payments, returns, stock and purchase-order receipts), so it lives here rather
//! than in any one of them, and knows nothing of HTTP: `crate::http::idempotent` reads the header
//! into an [`IdempotencyKey`] and turns an [`Outcome`] into a response.
//!
//! - [`key`]: the validated key and the request it is bound to ([`KeyedRequest`]);
//! - [`hash`]: the fingerprint of a request body that a key is bound to;
//! - [`store`]: the keys' rows, and [`run_once`], the protocol keyed work runs through.

pub mod hash;
pub mod key;
pub mod store;

pub use hash::request_hash;
pub use key::{IdempotencyKey, KeyedRequest, HEADER};
pub use store::{
    answer_error, complete, find, in_progress, insert_open, purge_expired, release, replay,
    run_once, Found, Outcome, StoreResult, RETENTION_HOURS,
};
