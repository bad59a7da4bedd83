//! Stocktakes: counting what is on the shelves and posting the variance to the ledger.
//!
//! A stocktake covers every book, a category with its sub-categories, or a list of books, and
//! snapshots each book's `on_hand` when it opens. Counts arrive in batches while the shop keeps
//! selling and receiving; each count is compared with `on_hand` at the moment it is recorded
//! (the snapshot plus every movement since), so only what the count found missing or extra is
//! posted, as one `stocktake` movement per differing book, when the stocktake completes.

pub mod model;
pub mod routes;
pub mod service;
