//! Stock: one level per book (`on_hand`, `reserved`, reorder settings), the append-only ledger of
//! movements that explains every change to `on_hand`, receipts and adjustments.

pub mod model;
pub mod routes;
pub mod service;
pub mod stock;
