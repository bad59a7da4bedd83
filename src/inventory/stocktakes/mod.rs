//! Stocktakes: counting what is on the shelves and posting the variance to the ledger.

pub mod routes;
