//! Orders: placing an order (reserving its stock), reading and listing orders, their status
//! history, payments, cancellation and expiry, fulfilment, returns and refunds, the order state
//! machine. (`Idempotency-Key` handling is [`crate::idempotency`].)

pub mod card;
pub mod expiry;
pub mod model;
pub mod payments;
pub mod provider;
pub mod refunds;
pub mod returns;
pub mod routes;
pub mod service;
pub mod state;
