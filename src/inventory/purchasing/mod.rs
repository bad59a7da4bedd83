//! Buying stock: suppliers and the purchase orders placed with them, received (in part or in
//! whole) as `receipt` movements.

pub mod routes;
