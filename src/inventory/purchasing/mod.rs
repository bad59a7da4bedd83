//! Buying stock: suppliers and the purchase orders placed with them, received (in part or in
//! whole) as `receipt` movements.

pub mod model;
pub mod purchase_orders;
pub mod routes;
pub mod suppliers;
