//! Refunds: money going back to the customer after a cancellation of a paid order, a return, or a
//! card charge that could not be recorded.
//!
//! A refund is decided inside the transaction that causes it ([`plan`] writes `pending` rows) and
//! carried out through the provider after that transaction commits ([`carry_out`]): no network
//! call ever runs inside a transaction, and a crash between commit and the provider call loses
//! nothing, because the refund task ([`carry_out_due`]) retries every pending refund whose
//! `next_attempt_at` has come. Each attempt first *claims* the row with a conditional update that
//! pushes `next_attempt_at` past a lease, so two replicas never call the provider for one refund
//! at the same time; the provider also gets `refund:<id>` as its idempotency key. Cash and bank
//! transfer refunds are paid out by staff by hand and are recorded as succeeded at once.

use crate::auth::model::utc;
use crate::auth::Principal;
use crate::db::schema::{payments, refunds};
use crate::db::{now, write_transaction, DbConn};
use crate::error::ApiError;
use crate::orders::payments::{Decline, PaymentMethod, PaymentProvider, PaymentStatus};
use crate::orders::service::visible_order;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

/// How long a claimed attempt owns its refund before another replica may try again.
const LEASE: chrono::Duration = chrono::Duration::seconds(60);
/// Attempts before an unreachable provider makes a refund `failed` (staff must then act).
const MAX_ATTEMPTS: i32 = 12;

/// Where a refund stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    /// Decided, not yet confirmed by the provider (retried until it is).
    Pending,
    Succeeded,
    /// Refused by the provider, or it stayed unreachable; needs staff attention.
    Failed,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Pending => "pending",
            RefundStatus::Succeeded => "succeeded",
            RefundStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<RefundStatus> {
        [
            RefundStatus::Pending,
            RefundStatus::Succeeded,
            RefundStatus::Failed,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// A row of `refunds`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = refunds)]
pub struct RefundRow {
    pub id: i64,
    pub order_id: i64,
    pub payment_id: Option<i64>,
    pub return_id: Option<i64>,
    pub method: String,
    pub charge_reference: Option<String>,
    pub amount_cents: i64,
    pub status: String,
    pub provider_reference: Option<String>,
    pub failure_code: Option<String>,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub reason: String,
    pub created_by: Option<i64>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A refund of (part of) an order's payment.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 4, "order_id": 12, "payment_id": 3, "return_id": null, "method": "card",
    "amount_cents": 2499, "status": "succeeded",
    "provider_reference": "test_re_0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e", "failure_code": null,
    "attempts": 1, "reason": "order cancelled", "created_at": "2026-11-25T10:05:00Z",
    "updated_at": "2026-11-25T10:05:00Z"
}))]
pub struct RefundView {
    pub id: i64,
    pub order_id: i64,
    /// The payment refunded (none for a charge that never became a payment).
    pub payment_id: Option<i64>,
    /// The return that caused it, if any.
    pub return_id: Option<i64>,
    pub method: PaymentMethod,
    pub amount_cents: i64,
    pub status: RefundStatus,
    /// The provider's refund id (card refunds that succeeded).
    pub provider_reference: Option<String>,
    /// Why the provider refused, such as `charge_not_found`.
    pub failure_code: Option<String>,
    /// Provider calls made so far.
    pub attempts: i32,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl RefundView {
    pub fn from_row(row: RefundRow) -> Result<Self, ApiError> {
        Ok(RefundView {
            id: row.id,
            order_id: row.order_id,
            payment_id: row.payment_id,
            return_id: row.return_id,
            method: PaymentMethod::parse(&row.method).ok_or_else(|| {
                ApiError::internal(format!("refund {} method {}", row.id, row.method))
            })?,
            amount_cents: row.amount_cents,
            status: RefundStatus::parse(&row.status).ok_or_else(|| {
                ApiError::internal(format!("refund {} status {}", row.id, row.status))
            })?,
            provider_reference: row.provider_reference,
            failure_code: row.failure_code,
            attempts: row.attempts,
            reason: row.reason,
            created_at: utc(row.created_at),
            updated_at: utc(row.updated_at),
        })
    }
}

/// What a new refund row says.
struct NewRefund<'a> {
    order_id: i64,
    payment_id: Option<i64>,
    return_id: Option<i64>,
    method: PaymentMethod,
    charge_reference: Option<&'a str>,
    amount_cents: i64,
    reason: &'a str,
    created_by: Option<i64>,
}

fn insert(conn: &mut DbConn, r: &NewRefund<'_>) -> Result<RefundRow, ApiError> {
    let at = now();
    // Only card refunds go through the provider; the others are paid out by hand, now.
    let status = if r.method == PaymentMethod::Card {
        RefundStatus::Pending
    } else {
        RefundStatus::Succeeded
    };
    Ok(diesel::insert_into(refunds::table)
        .values((
            refunds::order_id.eq(r.order_id),
            refunds::payment_id.eq(r.payment_id),
            refunds::return_id.eq(r.return_id),
            refunds::method.eq(r.method.as_str()),
            refunds::charge_reference.eq(r.charge_reference),
            refunds::amount_cents.eq(r.amount_cents),
            refunds::status.eq(status.as_str()),
            refunds::attempts.eq(0),
            refunds::next_attempt_at.eq(at),
            refunds::reason.eq(r.reason),
            refunds::created_by.eq(r.created_by),
            refunds::created_at.eq(at),
            refunds::updated_at.eq(at),
        ))
        .returning(refunds::all_columns)
        .get_result(conn)?)
}

/// A succeeded payment and what of it can still be refunded.
struct Refundable {
    payment_id: i64,
    method: String,
    charge_reference: Option<String>,
    cents: i64,
}

/// What is still refundable of each succeeded payment of an order, newest payment first:
/// its amount minus its refunds that are pending or succeeded.
fn refundable(conn: &mut DbConn, order_id: i64) -> Result<Vec<Refundable>, ApiError> {
    let paid: Vec<(i64, String, Option<String>, i64)> = payments::table
        .filter(payments::order_id.eq(order_id))
        .filter(payments::status.eq(PaymentStatus::Succeeded.as_str()))
        .order(payments::id.desc())
        .select((
            payments::id,
            payments::method,
            payments::provider_reference,
            payments::amount_cents,
        ))
        .load(conn)?;
    let refunded: Vec<(Option<i64>, i64)> = refunds::table
        .filter(refunds::order_id.eq(order_id))
        .filter(refunds::status.ne(RefundStatus::Failed.as_str()))
        .select((refunds::payment_id, refunds::amount_cents))
        .load(conn)?;
    Ok(paid
        .into_iter()
        .map(|(id, method, reference, amount)| {
            let back: i64 = refunded
                .iter()
                .filter(|(p, _)| *p == Some(id))
                .map(|(_, a)| a)
                .sum();
            Refundable {
                payment_id: id,
                method,
                charge_reference: reference,
                cents: amount - back,
            }
        })
        .filter(|p| p.cents > 0)
        .collect())
}

/// The total still refundable of an order's payments.
pub(crate) fn refundable_total(conn: &mut DbConn, order_id: i64) -> Result<i64, ApiError> {
    Ok(refundable(conn, order_id)?.iter().map(|p| p.cents).sum())
}

/// Decides refunds of `amount_cents` of an order, inside the caller's transaction: spread over its
/// succeeded payments (newest first), each written `pending` (card) or `succeeded` (paid out by
/// hand). Refunding more than was paid and not yet refunded is a 409 and writes nothing.
/// Returns the rows; the caller hands the pending ones to [`carry_out`] after commit.
pub(crate) fn plan(
    conn: &mut DbConn,
    order_id: i64,
    amount_cents: i64,
    return_id: Option<i64>,
    reason: &str,
    created_by: Option<i64>,
) -> Result<Vec<RefundRow>, ApiError> {
    if amount_cents <= 0 {
        return Ok(Vec::new());
    }
    let sources = refundable(conn, order_id)?;
    let available: i64 = sources.iter().map(|p| p.cents).sum();
    if available < amount_cents {
        return Err(ApiError::Conflict(format!(
            "order {order_id} has {available} cents left to refund, less than the {amount_cents} \
             this needs"
        )));
    }
    let mut left = amount_cents;
    let mut rows = Vec::new();
    for source in sources {
        if left == 0 {
            break;
        }
        let Refundable {
            payment_id,
            method,
            charge_reference: reference,
            cents,
        } = source;
        let amount = cents.min(left);
        let method = PaymentMethod::parse(&method)
            .ok_or_else(|| ApiError::internal(format!("payment {payment_id} method {method}")))?;
        rows.push(insert(
            conn,
            &NewRefund {
                order_id,
                payment_id: Some(payment_id),
                return_id,
                method,
                charge_reference: reference.as_deref(),
                amount_cents: amount,
                reason,
                created_by,
            },
        )?);
        left -= amount;
    }
    Ok(rows)
}

/// Records, inside the caller's transaction, the refund of a card charge that never became a
/// succeeded payment (the order stopped being payable while the card was charged, or the
/// attempt `payment_id` was settled without it), so that the refund task keeps trying if the
/// provider cannot be reached now. Returns the pending row.
pub(crate) fn record_orphan_charge(
    conn: &mut DbConn,
    order_id: i64,
    payment_id: Option<i64>,
    charge_reference: &str,
    amount_cents: i64,
    created_by: i64,
) -> Result<RefundRow, ApiError> {
    insert(
        conn,
        &NewRefund {
            order_id,
            payment_id,
            return_id: None,
            method: PaymentMethod::Card,
            charge_reference: Some(charge_reference),
            amount_cents,
            reason: "charge not recorded as a payment: the order was no longer payable",
            created_by: Some(created_by),
        },
    )
}

/// Claims pending refund `id` for one attempt if it is due: a conditional update, so that of
/// concurrent claimers (replicas, a retry racing the request that planned it) exactly one wins.
fn claim(conn: &mut DbConn, id: i64, at: NaiveDateTime) -> Result<Option<RefundRow>, ApiError> {
    write_transaction(conn, |tx| {
        Ok(diesel::update(
            refunds::table
                .filter(refunds::id.eq(id))
                .filter(refunds::status.eq(RefundStatus::Pending.as_str()))
                .filter(refunds::next_attempt_at.le(at)),
        )
        .set((
            refunds::attempts.eq(refunds::attempts + 1),
            refunds::next_attempt_at.eq(at + LEASE),
            refunds::updated_at.eq(at),
        ))
        .returning(refunds::all_columns)
        .get_result(tx.conn())
        .optional()?)
    })
}

/// The wait before attempt `attempts + 1`: 30 s doubling, at most an hour.
fn backoff(attempts: i32) -> chrono::Duration {
    let exp = attempts.clamp(1, 8) - 1;
    chrono::Duration::seconds((30_i64 << exp).min(3600))
}

/// Makes one attempt at refund `id` if it is pending and due (after commit, outside any
/// transaction): claims it, calls the provider, records the outcome. An unreachable provider
/// leaves it pending with a backoff; a refusal (or too many attempts) marks it failed.
pub fn carry_out(
    conn: &mut DbConn,
    provider: &dyn PaymentProvider,
    id: i64,
) -> Result<Option<RefundRow>, ApiError> {
    let Some(row) = claim(conn, id, now())? else {
        return Ok(None);
    };
    let Some(reference) = row.charge_reference.as_deref() else {
        return Err(ApiError::internal(format!(
            "pending refund {id} has no charge to refund"
        )));
    };
    let outcome = provider.refund(reference, row.amount_cents, &format!("refund:{id}"));
    let at = now();
    let (status, provider_ref, failure, next) = match outcome {
        Ok(refund_ref) => (RefundStatus::Succeeded, Some(refund_ref), None, at),
        Err(Decline::Unavailable(why)) if row.attempts < MAX_ATTEMPTS => {
            log::warn!(
                "refund {id}: provider unavailable (attempt {}): {why}",
                row.attempts
            );
            (
                RefundStatus::Pending,
                None,
                None,
                at + backoff(row.attempts),
            )
        }
        Err(Decline::Unavailable(why)) => {
            log::error!("refund {id} failed after {} attempts: {why}", row.attempts);
            (
                RefundStatus::Failed,
                None,
                Some("provider_unavailable".to_owned()),
                at,
            )
        }
        Err(Decline::Declined { code, message }) => {
            log::error!("refund {id} refused by the provider: {code}: {message}");
            (RefundStatus::Failed, None, Some(code), at)
        }
        Err(Decline::InvalidToken) => {
            log::error!("refund {id} refused by the provider: unknown charge {reference}");
            (
                RefundStatus::Failed,
                None,
                Some("charge_not_found".to_owned()),
                at,
            )
        }
    };
    let updated = write_transaction(conn, |tx| {
        diesel::update(refunds::table.find(id))
            .set((
                refunds::status.eq(status.as_str()),
                refunds::provider_reference.eq(provider_ref.as_deref()),
                refunds::failure_code.eq(failure.as_deref()),
                refunds::next_attempt_at.eq(next),
                refunds::updated_at.eq(at),
            ))
            .returning(refunds::all_columns)
            .get_result::<RefundRow>(tx.conn())
    })?;
    Ok(Some(updated))
}

/// Carries out the pending refunds among `rows` (just planned and committed). A failure to reach
/// the database here is only logged: the refund stays pending and the refund task retries it.
pub fn carry_out_planned(conn: &mut DbConn, provider: &dyn PaymentProvider, rows: &[RefundRow]) {
    for row in rows
        .iter()
        .filter(|r| r.status == RefundStatus::Pending.as_str())
    {
        if let Err(e) = carry_out(conn, provider, row.id) {
            log::error!("refund {} left for the refund task: {e}", row.id);
        }
    }
}

/// The refund task's sweep: one attempt at each pending refund that is due (at most `limit`).
/// Returns how many attempts it made.
pub fn carry_out_due(
    conn: &mut DbConn,
    provider: &dyn PaymentProvider,
    limit: i64,
) -> Result<usize, ApiError> {
    let due: Vec<i64> = refunds::table
        .filter(refunds::status.eq(RefundStatus::Pending.as_str()))
        .filter(refunds::next_attempt_at.le(now()))
        .order(refunds::next_attempt_at)
        .limit(limit)
        .select(refunds::id)
        .load(conn)?;
    let mut attempts = 0;
    for id in due {
        if carry_out(conn, provider, id)?.is_some() {
            attempts += 1;
        }
    }
    Ok(attempts)
}

/// An order's refunds, oldest first (same visibility as the order).
pub fn list_refunds(
    conn: &mut DbConn,
    user: &Principal,
    order_id: i64,
) -> Result<Vec<RefundView>, ApiError> {
    visible_order(conn, user, order_id)?;
    refunds_of(conn, order_id, None)
}

/// The refunds of an order (of one of its returns, if given), oldest first.
pub(crate) fn refunds_of(
    conn: &mut DbConn,
    order_id: i64,
    return_id: Option<i64>,
) -> Result<Vec<RefundView>, ApiError> {
    let mut q = refunds::table
        .filter(refunds::order_id.eq(order_id))
        .into_boxed();
    if let Some(r) = return_id {
        q = q.filter(refunds::return_id.eq(r));
    }
    q.order(refunds::id)
        .select(RefundRow::as_select())
        .load(conn)?
        .into_iter()
        .map(RefundView::from_row)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(backoff(1), chrono::Duration::seconds(30));
        assert_eq!(backoff(2), chrono::Duration::seconds(60));
        assert_eq!(backoff(4), chrono::Duration::seconds(240));
        assert_eq!(backoff(8), chrono::Duration::seconds(3600));
        assert_eq!(backoff(50), chrono::Duration::seconds(3600));
    }

    #[test]
    fn statuses_round_trip() {
        for s in [
            RefundStatus::Pending,
            RefundStatus::Succeeded,
            RefundStatus::Failed,
        ] {
            assert_eq!(RefundStatus::parse(s.as_str()), Some(s));
        }
    }
}
