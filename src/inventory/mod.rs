//! Stock: one level per book (`on_hand`, `reserved`, reorder settings), the append-only ledger of
//! movements that explains every change to `on_hand`, receipts and adjustments, low-stock
//! alerts, suppliers and purchase orders, stocktakes.

pub mod alerts;
pub mod model;
pub mod purchasing;
pub mod routes;
pub mod service;
pub mod stock;
pub mod stocktakes;
