//! Payments of orders: the [`PaymentProvider`] seam (with the built-in [`TestProvider`]), the
//! payment rows and the rules of `POST /orders/{id}/payments` and of bank transfer confirmation.
//!
//! A card is charged through the provider *outside* any database transaction (no network inside
//! a transaction); then one write transaction records the payment and moves the order
//! `pending_payment → paid` through the state machine with a conditional update. If the order
//! stopped being payable meanwhile (cancelled, or paid by a concurrent request) nothing is
//! recorded, the charge is refunded (through a refund row, so the refund task retries it if the
//! provider cannot be reached) and the answer is the state machine's 409. A decline records a
//! `failed` payment and answers 402 with the provider's code; the order and stock are untouched.
//! `cash` (staff only) succeeds at once. `bank_transfer` records a `pending` payment, leaves the
//! order `pending_payment` and extends its expiry to the transfer window; staff then confirm it
//! (the order becomes `paid`) or reject it (the order is payable again). While a transfer is
//! pending the order takes no other payment.

use crate::auth::model::utc;
use crate::auth::Principal;
use crate::db::schema::{orders, payments};
use crate::db::{now, write_transaction, DbConn};
use crate::error::ApiError;
use crate::idempotency::{self, KeyedRequest, Outcome, StoreResult};
use crate::orders::card;
use crate::orders::model::{OrderRow, OrderView};
use crate::orders::service::{transition, view, visible_order};
use crate::orders::state::{self, OrderAction, OrderStatus};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

pub use crate::orders::provider::{
    ChargeLookup, Decline, PaymentProvider, ProviderCharge, TestProvider,
};

/// How a payment is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    /// Through the payment provider, with a card token.
    Card,
    /// At the counter (staff only).
    Cash,
    /// Stays pending until staff confirm the transfer.
    BankTransfer,
}

impl PaymentMethod {
    pub const ALL: [PaymentMethod; 3] = [
        PaymentMethod::Card,
        PaymentMethod::Cash,
        PaymentMethod::BankTransfer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PaymentMethod::Card => "card",
            PaymentMethod::Cash => "cash",
            PaymentMethod::BankTransfer => "bank_transfer",
        }
    }

    pub fn parse(s: &str) -> Option<PaymentMethod> {
        PaymentMethod::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// Where a payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Succeeded,
    Failed,
    /// A bank transfer awaiting confirmation.
    Pending,
    /// A card being charged: written before the provider is called, settled after (see
    /// [`crate::orders::card`]).
    Processing,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Succeeded => "succeeded",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Pending => "pending",
            PaymentStatus::Processing => "processing",
        }
    }

    pub fn parse(s: &str) -> Option<PaymentStatus> {
        [
            PaymentStatus::Succeeded,
            PaymentStatus::Failed,
            PaymentStatus::Pending,
            PaymentStatus::Processing,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }
}

/// Body of `POST /orders/{id}/payments`. The amount is always the order's outstanding total.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, ToSchema)]
#[schema(example = json!({"method": "card", "token": "tok_visa"}))]
#[serde(deny_unknown_fields)]
pub struct NewPayment {
    /// `card`, `cash` (staff only) or `bank_transfer`, if enabled (a disabled one is 422).
    #[validate(length(min = 1, max = 50))]
    #[schema(value_type = PaymentMethod)]
    pub method: String,
    /// The card token from the provider; required for `card`, refused otherwise. The test
    /// provider knows `tok_visa`, `tok_declined` and `tok_insufficient_funds`.
    #[validate(length(min = 1, max = 255))]
    #[schema(min_length = 1, max_length = 255)]
    pub token: Option<String>,
}

/// A row of `payments`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = payments)]
pub struct PaymentRow {
    pub id: i64,
    pub order_id: i64,
    pub method: String,
    pub amount_cents: i64,
    pub status: String,
    pub provider_reference: Option<String>,
    pub failure_code: Option<String>,
    pub created_by: i64,
    pub created_at: NaiveDateTime,
}

/// The columns of [`PaymentRow`], for `RETURNING` (which takes no `as_returning()` on the
/// two-backend connection).
pub(crate) const PAYMENT_COLUMNS: (
    payments::id,
    payments::order_id,
    payments::method,
    payments::amount_cents,
    payments::status,
    payments::provider_reference,
    payments::failure_code,
    payments::created_by,
    payments::created_at,
) = (
    payments::id,
    payments::order_id,
    payments::method,
    payments::amount_cents,
    payments::status,
    payments::provider_reference,
    payments::failure_code,
    payments::created_by,
    payments::created_at,
);

/// A payment (or attempt) of an order.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 3, "order_id": 12, "method": "card", "amount_cents": 2499, "status": "succeeded",
    "provider_reference": "test_ch_5f0c7e1d9a2b4c6e8f001122aabbccdd", "failure_code": null,
    "created_by": 7, "created_at": "2026-11-25T10:00:00Z"
}))]
pub struct PaymentView {
    pub id: i64,
    pub order_id: i64,
    pub method: PaymentMethod,
    /// In the order's currency.
    pub amount_cents: i64,
    pub status: PaymentStatus,
    /// The provider's charge id (card payments).
    pub provider_reference: Option<String>,
    /// Why a failed payment was declined, such as `card_declined`.
    pub failure_code: Option<String>,
    pub created_by: i64,
    pub created_at: DateTime<Utc>,
}

impl PaymentView {
    pub fn from_row(row: PaymentRow) -> Result<Self, ApiError> {
        Ok(PaymentView {
            id: row.id,
            order_id: row.order_id,
            method: PaymentMethod::parse(&row.method).ok_or_else(|| {
                ApiError::internal(format!("payment {} method {}", row.id, row.method))
            })?,
            amount_cents: row.amount_cents,
            status: PaymentStatus::parse(&row.status).ok_or_else(|| {
                ApiError::internal(format!("payment {} status {}", row.id, row.status))
            })?,
            provider_reference: row.provider_reference,
            failure_code: row.failure_code,
            created_by: row.created_by,
            created_at: utc(row.created_at),
        })
    }
}

/// Answer of `POST /orders/{id}/payments`: the payment and the order after it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PaymentResult {
    pub payment: PaymentView,
    pub order: OrderView,
}

/// Everything a payment needs from the application.
pub struct PayContext<'a> {
    pub provider: &'a dyn PaymentProvider,
    /// Enabled methods (from `BOOKSTORE_PAYMENT_METHODS`).
    pub methods: &'a [String],
    /// How long an order with a pending bank transfer stays reserved.
    pub bank_transfer_ttl: std::time::Duration,
    /// How long a request may take to settle a card charge before a retry or the sweep may.
    pub lease: std::time::Duration,
}

/// The order's total minus its succeeded payments.
pub(crate) fn outstanding(conn: &mut DbConn, order: &OrderRow) -> Result<i64, ApiError> {
    let paid: Vec<i64> = payments::table
        .filter(payments::order_id.eq(order.id))
        .filter(payments::status.eq(PaymentStatus::Succeeded.as_str()))
        .select(payments::amount_cents)
        .load(conn)?;
    Ok(order.total_cents - paid.iter().sum::<i64>())
}

/// Checks that `user` may take the Pay action on the order now (409 otherwise) and returns its
/// outstanding amount.
pub(crate) fn payable(
    conn: &mut DbConn,
    user: &Principal,
    row: &OrderRow,
) -> Result<i64, ApiError> {
    let status = OrderStatus::parse(&row.status)
        .ok_or_else(|| ApiError::internal(format!("order {} status {}", row.id, row.status)))?;
    state::next(status, OrderAction::Pay, user.is_staff())?;
    let charging: Option<i64> = payments::table
        .filter(payments::order_id.eq(row.id))
        .filter(payments::status.eq(PaymentStatus::Processing.as_str()))
        .select(payments::id)
        .first(conn)
        .optional()?;
    if let Some(payment_id) = charging {
        return Err(ApiError::InProgress {
            detail: format!(
                "order {} has a card payment being processed (payment {payment_id}); retry \
                 shortly, with the same Idempotency-Key",
                row.id
            ),
            retry_after_secs: 1,
        });
    }
    let pending: Option<(i64, i64)> = payments::table
        .filter(payments::order_id.eq(row.id))
        .filter(payments::status.eq(PaymentStatus::Pending.as_str()))
        .select((payments::id, payments::amount_cents))
        .first(conn)
        .optional()?;
    if let Some((payment_id, amount)) = pending {
        return Err(ApiError::Conflict(format!(
            "order {} has a bank transfer of {amount} cents awaiting confirmation (payment \
             {payment_id}); staff confirm or reject it first",
            row.id
        )));
    }
    let due = outstanding(conn, row)?;
    if due <= 0 {
        return Err(ApiError::Conflict(format!(
            "order {} has nothing left to pay",
            row.id
        )));
    }
    Ok(due)
}

pub(crate) struct Record<'a> {
    pub method: PaymentMethod,
    pub amount_cents: i64,
    pub status: PaymentStatus,
    pub provider_reference: Option<&'a str>,
    pub failure_code: Option<&'a str>,
}

pub(crate) fn insert(
    conn: &mut DbConn,
    user: &Principal,
    order_id: i64,
    r: &Record<'_>,
) -> Result<PaymentView, ApiError> {
    let row: PaymentRow = diesel::insert_into(payments::table)
        .values((
            payments::order_id.eq(order_id),
            payments::method.eq(r.method.as_str()),
            payments::amount_cents.eq(r.amount_cents),
            payments::status.eq(r.status.as_str()),
            payments::provider_reference.eq(r.provider_reference),
            payments::failure_code.eq(r.failure_code),
            payments::created_by.eq(user.user_id),
            payments::created_at.eq(now()),
        ))
        .returning(PAYMENT_COLUMNS)
        .get_result(conn)?;
    PaymentView::from_row(row)
}

/// Pays order `id` by `input.method` for its outstanding total (see the module docs), at most
/// once per `key`.
pub fn pay_order(
    conn: &mut DbConn,
    ctx: &PayContext<'_>,
    user: &Principal,
    id: i64,
    input: &NewPayment,
    key: Option<&KeyedRequest>,
) -> Result<Outcome<PaymentResult>, ApiError> {
    let (method, token) = match method_of(ctx, input) {
        Ok(chosen) => chosen,
        Err(err) => {
            return match key {
                Some(k) => idempotency::answer_error(conn, k, err),
                None => Err(err),
            }
        }
    };
    if method == PaymentMethod::Card {
        return card::pay(conn, ctx, user, id, token.unwrap_or_default(), key);
    }
    let work = |conn: &mut DbConn, store: &mut StoreResult<'_, PaymentResult>| {
        pay_at_once(conn, ctx, user, id, method, store)
    };
    match key {
        Some(k) => idempotency::run_once(conn, k, work),
        None => work(conn, &mut |_, _| Ok(())).map(|r| Outcome::Fresh(Box::new(r))),
    }
}

/// The enabled method the body names, and its card token.
fn method_of<'a>(
    ctx: &PayContext<'_>,
    input: &'a NewPayment,
) -> Result<(PaymentMethod, Option<&'a str>), ApiError> {
    let method = PaymentMethod::parse(input.method.trim())
        .filter(|m| ctx.methods.iter().any(|e| e == m.as_str()))
        .ok_or_else(|| {
            ApiError::invalid(
                "method",
                format!(
                    "must be one of the enabled methods: {}",
                    ctx.methods.join(", ")
                ),
            )
        })?;
    let token = input.token.as_deref().map(str::trim);
    match (method, token) {
        (PaymentMethod::Card, None) => {
            Err(ApiError::invalid("token", "is required to pay by card"))
        }
        (PaymentMethod::Cash | PaymentMethod::BankTransfer, Some(_)) => Err(ApiError::invalid(
            "token",
            "is only taken for card payments",
        )),
        _ => Ok((method, token)),
    }
}

/// Pays in cash or by bank transfer: one transaction, no provider. `after` runs inside it (the
/// idempotency record is stored there).
fn pay_at_once(
    conn: &mut DbConn,
    ctx: &PayContext<'_>,
    user: &Principal,
    id: i64,
    method: PaymentMethod,
    after: &mut StoreResult<'_, PaymentResult>,
) -> Result<PaymentResult, ApiError> {
    write_transaction(conn, |tx| {
        // Visibility first, so a customer learns nothing about another customer's order.
        let row = visible_order(tx, user, id)?;
        if method == PaymentMethod::Cash && !user.is_staff() {
            return Err(ApiError::Forbidden(
                "cash payments are taken by staff at the counter".into(),
            ));
        }
        let due = payable(tx, user, &row)?;
        let (updated, status) = if method == PaymentMethod::Cash {
            let paid = transition(
                tx,
                &row,
                OrderAction::Pay,
                user.into(),
                Some("paid in cash"),
            )?;
            (paid, PaymentStatus::Succeeded)
        } else {
            let window =
                chrono::Duration::from_std(ctx.bank_transfer_ttl).map_err(ApiError::internal)?;
            (
                extend_expiry(tx, &row, now() + window)?,
                PaymentStatus::Pending,
            )
        };
        let payment = insert(
            tx,
            user,
            id,
            &Record {
                method,
                amount_cents: due,
                status,
                provider_reference: None,
                failure_code: None,
            },
        )?;
        let result = PaymentResult {
            payment,
            order: view(tx, updated)?,
        };
        after(tx, &result)?;
        Ok(result)
    })
}

/// Moves an unpaid order's expiry to `until` (a conditional update on its status and version, so
/// a concurrent change makes this a 409 rather than a lost update). Returns the updated row.
fn extend_expiry(
    conn: &mut DbConn,
    row: &OrderRow,
    until: NaiveDateTime,
) -> Result<OrderRow, ApiError> {
    diesel::update(
        orders::table
            .filter(orders::id.eq(row.id))
            .filter(orders::status.eq(OrderStatus::PendingPayment.as_str()))
            .filter(orders::version.eq(row.version)),
    )
    .set((
        orders::expires_at.eq(until),
        orders::version.eq(orders::version + 1),
        orders::updated_at.eq(now()),
    ))
    .returning(orders::all_columns)
    .get_result(conn)
    .optional()?
    .ok_or_else(|| ApiError::Conflict("the order changed meanwhile; retry".into()))
}

/// The pending bank transfer `payment_id` of order `order_id`, or 404/409.
fn pending_transfer(
    conn: &mut DbConn,
    order_id: i64,
    payment_id: i64,
) -> Result<PaymentRow, ApiError> {
    let payment: PaymentRow = payments::table
        .filter(payments::id.eq(payment_id))
        .filter(payments::order_id.eq(order_id))
        .select(PaymentRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| {
            ApiError::NotFound(format!("order {order_id} has no payment {payment_id}"))
        })?;
    if payment.method != PaymentMethod::BankTransfer.as_str()
        || payment.status != PaymentStatus::Pending.as_str()
    {
        return Err(ApiError::Conflict(format!(
            "payment {payment_id} is a {} {} payment, not a pending bank transfer",
            payment.status, payment.method
        )));
    }
    Ok(payment)
}

/// Settles pending payment `payment_id` as `to` (with `failure_code`), conditionally on it still
/// being pending: of racing confirmations, rejections and expiries exactly one settles it.
pub(crate) fn settle_pending(
    conn: &mut DbConn,
    payment_id: i64,
    to: PaymentStatus,
    failure_code: Option<&str>,
) -> Result<Option<PaymentRow>, ApiError> {
    Ok(diesel::update(
        payments::table
            .filter(payments::id.eq(payment_id))
            .filter(payments::status.eq(PaymentStatus::Pending.as_str())),
    )
    .set((
        payments::status.eq(to.as_str()),
        payments::failure_code.eq(failure_code),
    ))
    .returning(PAYMENT_COLUMNS)
    .get_result(conn)
    .optional()?)
}

/// Staff confirm that bank transfer `payment_id` arrived: in one transaction the order becomes
/// `paid` (its row first, the lock order every writer of orders follows) and the payment
/// `succeeded`. A transfer already settled, or an order no longer payable, is 409.
pub fn confirm_transfer(
    conn: &mut DbConn,
    user: &Principal,
    order_id: i64,
    payment_id: i64,
) -> Result<PaymentResult, ApiError> {
    write_transaction(conn, |tx| {
        let row = visible_order(tx, user, order_id)?;
        pending_transfer(tx, order_id, payment_id)?;
        let updated = transition(
            tx,
            &row,
            OrderAction::Pay,
            user.into(),
            Some("bank transfer confirmed"),
        )?;
        let payment =
            settle_pending(tx, payment_id, PaymentStatus::Succeeded, None)?.ok_or_else(|| {
                ApiError::Conflict(format!("payment {payment_id} was settled meanwhile"))
            })?;
        Ok(PaymentResult {
            payment: PaymentView::from_row(payment)?,
            order: view(tx, updated)?,
        })
    })
}

/// Staff reject bank transfer `payment_id` (it never arrived): the payment becomes `failed`
/// (`transfer_rejected`) and the order, still `pending_payment`, is payable again with a fresh
/// expiry of `order_ttl`.
pub fn reject_transfer(
    conn: &mut DbConn,
    user: &Principal,
    order_id: i64,
    payment_id: i64,
    order_ttl: std::time::Duration,
) -> Result<PaymentResult, ApiError> {
    let ttl = chrono::Duration::from_std(order_ttl).map_err(ApiError::internal)?;
    write_transaction(conn, |tx| {
        let row = visible_order(tx, user, order_id)?;
        pending_transfer(tx, order_id, payment_id)?;
        let status = OrderStatus::parse(&row.status)
            .ok_or_else(|| ApiError::internal(format!("order {} status {}", row.id, row.status)))?;
        state::next(status, OrderAction::Pay, true)?;
        let updated = extend_expiry(tx, &row, now() + ttl)?;
        let payment = settle_pending(
            tx,
            payment_id,
            PaymentStatus::Failed,
            Some("transfer_rejected"),
        )?
        .ok_or_else(|| ApiError::Conflict(format!("payment {payment_id} was settled meanwhile")))?;
        Ok(PaymentResult {
            payment: PaymentView::from_row(payment)?,
            order: view(tx, updated)?,
        })
    })
}

/// An order's payments, oldest first (same visibility as the order).
pub fn list_payments(
    conn: &mut DbConn,
    user: &Principal,
    id: i64,
) -> Result<Vec<PaymentView>, ApiError> {
    visible_order(conn, user, id)?;
    let rows: Vec<PaymentRow> = payments::table
        .filter(payments::order_id.eq(id))
        .order(payments::id)
        .select(PaymentRow::as_select())
        .load(conn)?;
    rows.into_iter().map(PaymentView::from_row).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_round_trip() {
        for m in PaymentMethod::ALL {
            assert_eq!(PaymentMethod::parse(m.as_str()), Some(m));
            assert!(crate::config::PAYMENT_METHODS.contains(&m.as_str()));
        }
    }
}
