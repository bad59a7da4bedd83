//! Expiry of unpaid orders: an order still `pending_payment` after its `expires_at` is cancelled
//! and its stock released, by the maintenance task of every replica.
//!
//! Each expiry is its own short write transaction that picks one due order and cancels it
//! through the same code as a customer's cancellation (a conditional transition first, then the
//! releases), so a cancel, a payment or another replica racing it changes the order at most once.
//! On PostgreSQL the pick is `FOR UPDATE SKIP LOCKED`: replicas sweeping at the same moment take
//! different orders instead of queueing on one row.

use crate::db::schema::orders;
use crate::db::{now, write_transaction, DbConn};
use crate::error::ApiError;
use crate::orders::model::OrderRow;
use crate::orders::service::cancel_in_transaction;
use crate::orders::state::{OrderAction, OrderStatus};
use chrono::NaiveDateTime;
use diesel::prelude::*;

/// The next unpaid order past its expiry, locked for this transaction where the backend can.
fn next_due(conn: &mut DbConn, at: NaiveDateTime) -> Result<Option<OrderRow>, ApiError> {
    macro_rules! due {
        () => {
            orders::table
                .filter(orders::status.eq(OrderStatus::PendingPayment.as_str()))
                .filter(orders::expires_at.le(at))
                .order((orders::expires_at, orders::id))
                .select(OrderRow::as_select())
        };
    }
    Ok(match conn {
        DbConn::Pg(c) => due!().for_update().skip_locked().first(c).optional()?,
        // SQLite: the write transaction (BEGIN IMMEDIATE) already excludes other writers.
        DbConn::Sqlite(c) => due!().first(c).optional()?,
    })
}

/// Cancels up to `limit` unpaid orders whose `expires_at` has passed, releasing their stock and
/// failing their pending bank transfers. Returns the ids of the orders it expired.
pub fn expire_due(conn: &mut DbConn, limit: usize) -> Result<Vec<i64>, ApiError> {
    let mut expired = Vec::new();
    // Bounded, so that an order that keeps failing cannot hold the sweep forever.
    for _ in 0..limit.saturating_mul(2) {
        if expired.len() == limit {
            break;
        }
        let done = write_transaction(conn, |tx| {
            let Some(row) = next_due(tx, now())? else {
                return Ok(None);
            };
            cancel_in_transaction(tx, &row, OrderAction::Expire, None, Some("expired unpaid"))?;
            Ok::<_, ApiError>(Some(row.id))
        });
        match done {
            Ok(Some(id)) => expired.push(id),
            Ok(None) => break,
            // Changed by someone else between the pick and the update: it is no longer due.
            Err(ApiError::IllegalTransition { .. } | ApiError::Conflict(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    if !expired.is_empty() {
        log::info!("expired {} unpaid orders: {:?}", expired.len(), expired);
    }
    Ok(expired)
}
