//! The periodic work every replica runs beside serving requests: expiring unpaid orders and
//! retrying refunds the provider has not confirmed. Each step is safe to run on several replicas
//! against one database at once (see [`crate::orders::expiry`] and [`crate::orders::refunds`]),
//! so there is no leader to elect.

use crate::app::AppState;
use crate::db::{self, DbConn};
use crate::error::ApiError;
use crate::idempotency;
use crate::orders::payments::PaymentProvider;
use crate::orders::{card, expiry, refunds};
use actix_web::web;

/// Most orders expired, and refunds attempted, per sweep (the rest wait for the next one).
const BATCH: usize = 100;

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sweep {
    /// Card payments left `processing` past their lease, now settled.
    pub payments_resolved: usize,
    pub expired_orders: Vec<i64>,
    pub refund_attempts: usize,
    pub keys_purged: usize,
}

/// One round of maintenance. Card payments are settled first, so that an order whose charge
/// went through is paid before its expiry is considered.
pub fn sweep(
    conn: &mut DbConn,
    provider: &dyn PaymentProvider,
    payment_lease: std::time::Duration,
) -> Result<Sweep, ApiError> {
    Ok(Sweep {
        payments_resolved: card::resolve_expired(conn, provider, payment_lease, BATCH as i64)?,
        expired_orders: expiry::expire_due(conn, BATCH)?,
        refund_attempts: refunds::carry_out_due(conn, provider, BATCH as i64)?,
        keys_purged: idempotency::purge_expired(conn, BATCH as i64 * 10)?,
    })
}

/// Runs [`sweep`] every `sweep_interval` on the current actix runtime, for as long as it lives
/// (a zero interval disables it). A failed sweep is logged and tried again at the next tick.
pub fn spawn(state: web::Data<AppState>) {
    let every = state.settings.sweep_interval;
    if every.is_zero() {
        return;
    }
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let st = state.clone();
            let done = db::run(&state.pool, move |conn| {
                sweep(
                    conn,
                    st.payment_provider.as_ref(),
                    st.settings.payment_lease,
                )
            })
            .await;
            if let Err(e) = done {
                log::error!("maintenance sweep failed: {e}");
            }
        }
    });
}
