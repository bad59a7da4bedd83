//! Orders: placing an order (reserving its stock), reading and listing orders, their status
//! history, cancellation, the order state machine and `Idempotency-Key` handling.

pub mod idempotency;
pub mod model;
pub mod payments;
pub mod routes;
pub mod service;
pub mod state;
