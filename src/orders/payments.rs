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
use crate::auth::AuthUser;
use crate::db::schema::{orders, payments};
use crate::db::{now, write_transaction, DbConn};
use crate::error::ApiError;
use crate::orders::model::{OrderRow, OrderView};
use crate::orders::refunds;
use crate::orders::service::{transition, view, visible_order};
use crate::orders::state::{self, OrderAction, OrderStatus};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

/// A successful charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderCharge {
    /// The provider's id of the charge, needed to refund it.
    pub reference: String,
}

/// Why the provider did not charge (or refund).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decline {
    /// The card was declined: `code` such as `card_declined` or `insufficient_funds`.
    Declined { code: String, message: String },
    /// The token (or, for a refund, the charge) is not one the provider knows.
    InvalidToken,
    /// The provider could not be reached or failed on its side: worth retrying later.
    Unavailable(String),
}

/// A card payment processor: authorize and capture in one step, and refund.
pub trait PaymentProvider: Send + Sync {
    fn charge(
        &self,
        amount_cents: i64,
        currency: &str,
        token: &str,
    ) -> Result<ProviderCharge, Decline>;
    /// Refunds `amount_cents` of the charge `reference`; returns the refund's reference. The
    /// provider must treat calls with the same `idempotency_key` as one refund, since a refund is
    /// retried when its outcome was not recorded.
    fn refund(
        &self,
        reference: &str,
        amount_cents: i64,
        idempotency_key: &str,
    ) -> Result<String, Decline>;
}

/// The built-in provider for development and tests: `tok_visa` succeeds, `tok_declined` and
/// `tok_insufficient_funds` are declined, any other token is invalid.
#[derive(Debug, Clone, Copy, Default)]
pub struct TestProvider;

impl PaymentProvider for TestProvider {
    fn charge(
        &self,
        _amount_cents: i64,
        _currency: &str,
        token: &str,
    ) -> Result<ProviderCharge, Decline> {
        match token {
            "tok_visa" => Ok(ProviderCharge {
                reference: format!("test_ch_{}", uuid::Uuid::new_v4().simple()),
            }),
            "tok_declined" => Err(Decline::Declined {
                code: "card_declined".into(),
                message: "the card was declined".into(),
            }),
            "tok_insufficient_funds" => Err(Decline::Declined {
                code: "insufficient_funds".into(),
                message: "the card has insufficient funds".into(),
            }),
            _ => Err(Decline::InvalidToken),
        }
    }

    fn refund(
        &self,
        reference: &str,
        _amount_cents: i64,
        _idempotency_key: &str,
    ) -> Result<String, Decline> {
        if reference.starts_with("test_ch_") {
            Ok(format!("test_re_{}", uuid::Uuid::new_v4().simple()))
        } else {
            Err(Decline::InvalidToken)
        }
    }
}

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
    Pending,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Succeeded => "succeeded",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Pending => "pending",
        }
    }

    pub fn parse(s: &str) -> Option<PaymentStatus> {
        [
            PaymentStatus::Succeeded,
            PaymentStatus::Failed,
            PaymentStatus::Pending,
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
    /// `card`, `cash` (staff only) or `bank_transfer`, if enabled.
    #[validate(length(min = 1, max = 50))]
    pub method: String,
    /// The card token from the provider; required for `card`, refused otherwise. The test
    /// provider knows `tok_visa`, `tok_declined` and `tok_insufficient_funds`.
    #[validate(length(min = 1, max = 255))]
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
}

/// The order's total minus its succeeded payments.
fn outstanding(conn: &mut DbConn, order: &OrderRow) -> Result<i64, ApiError> {
    let paid: Vec<i64> = payments::table
        .filter(payments::order_id.eq(order.id))
        .filter(payments::status.eq(PaymentStatus::Succeeded.as_str()))
        .select(payments::amount_cents)
        .load(conn)?;
    Ok(order.total_cents - paid.iter().sum::<i64>())
}

/// Checks that `user` may take the Pay action on the order now (409 otherwise) and returns its
/// outstanding amount.
fn payable(conn: &mut DbConn, user: &AuthUser, row: &OrderRow) -> Result<i64, ApiError> {
    let status = OrderStatus::parse(&row.status)
        .ok_or_else(|| ApiError::internal(format!("order {} status {}", row.id, row.status)))?;
    state::next(status, OrderAction::Pay, user.is_staff())?;
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
    user: &AuthUser,
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
            payments::created_by.eq(user.id),
            payments::created_at.eq(now()),
        ))
        .returning(payments::all_columns)
        .get_result(conn)?;
    PaymentView::from_row(row)
}

/// Pays order `id` by `input.method` for its outstanding total (see the module docs). `after`
/// runs inside the transaction that records a successful or pending payment (the
/// idempotency record is stored there).
pub fn pay_order(
    conn: &mut DbConn,
    ctx: &PayContext<'_>,
    user: &AuthUser,
    id: i64,
    input: &NewPayment,
    after: impl FnOnce(&mut DbConn, &PaymentResult) -> Result<(), ApiError>,
) -> Result<PaymentResult, ApiError> {
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
            return Err(ApiError::invalid("token", "is required to pay by card"))
        }
        (PaymentMethod::Cash | PaymentMethod::BankTransfer, Some(_)) => {
            return Err(ApiError::invalid(
                "token",
                "is only taken for card payments",
            ))
        }
        _ => {}
    }
    // Visibility first, so a customer learns nothing about another customer's order.
    let row = visible_order(conn, user, id)?;
    if method == PaymentMethod::Cash && !user.is_staff() {
        return Err(ApiError::Forbidden(
            "cash payments are taken by staff at the counter".into(),
        ));
    }
    let due = payable(conn, user, &row)?;

    match method {
        PaymentMethod::Card => {
            let token = token.unwrap_or_default();
            // No transaction is open here: the provider may be a network call.
            let charge = match ctx.provider.charge(due, &row.currency, token) {
                Ok(charge) => charge,
                Err(Decline::InvalidToken) => {
                    return Err(ApiError::invalid("token", "is not a valid card token"))
                }
                Err(Decline::Unavailable(why)) => {
                    return Err(ApiError::Unavailable(format!(
                        "payment provider unavailable for order {id}: {why}"
                    )))
                }
                Err(Decline::Declined { code, message }) => {
                    write_transaction(conn, |conn| {
                        insert(
                            conn,
                            user,
                            id,
                            &Record {
                                method,
                                amount_cents: due,
                                status: PaymentStatus::Failed,
                                provider_reference: None,
                                failure_code: Some(&code),
                            },
                        )
                    })?;
                    return Err(ApiError::PaymentDeclined {
                        detail: format!("the payment of order {id} was declined: {message}"),
                        code,
                    });
                }
            };
            let recorded = write_transaction(conn, |conn| {
                let row = visible_order(conn, user, id)?;
                if payable(conn, user, &row)? != due {
                    return Err(ApiError::Conflict(
                        "the order's outstanding amount changed meanwhile; retry".into(),
                    ));
                }
                let updated = transition(
                    conn,
                    &row,
                    OrderAction::Pay,
                    user.into(),
                    Some("paid by card"),
                )?;
                let payment = insert(
                    conn,
                    user,
                    id,
                    &Record {
                        method,
                        amount_cents: due,
                        status: PaymentStatus::Succeeded,
                        provider_reference: Some(&charge.reference),
                        failure_code: None,
                    },
                )?;
                let result = PaymentResult {
                    payment,
                    order: view(conn, updated)?,
                };
                after(conn, &result)?;
                Ok(result)
            });
            if recorded.is_err() {
                // Nothing was recorded: give the money back, through a refund row so that the
                // refund task keeps trying if the provider cannot be reached now.
                match refunds::plan_orphan_charge(conn, id, &charge.reference, due, user.id) {
                    Ok(row) => refunds::carry_out_planned(conn, ctx.provider, &[row]),
                    Err(e) => log::error!(
                        "cannot record the refund of charge {} ({due} cents) of order {id}: {e}",
                        charge.reference
                    ),
                }
            }
            recorded
        }
        PaymentMethod::Cash => write_transaction(conn, |conn| {
            let row = visible_order(conn, user, id)?;
            let due = payable(conn, user, &row)?;
            let updated = transition(
                conn,
                &row,
                OrderAction::Pay,
                user.into(),
                Some("paid in cash"),
            )?;
            let payment = insert(
                conn,
                user,
                id,
                &Record {
                    method,
                    amount_cents: due,
                    status: PaymentStatus::Succeeded,
                    provider_reference: None,
                    failure_code: None,
                },
            )?;
            let result = PaymentResult {
                payment,
                order: view(conn, updated)?,
            };
            after(conn, &result)?;
            Ok(result)
        }),
        PaymentMethod::BankTransfer => write_transaction(conn, |conn| {
            let row = visible_order(conn, user, id)?;
            let due = payable(conn, user, &row)?;
            let window =
                chrono::Duration::from_std(ctx.bank_transfer_ttl).map_err(ApiError::internal)?;
            let row = extend_expiry(conn, &row, now() + window)?;
            let payment = insert(
                conn,
                user,
                id,
                &Record {
                    method,
                    amount_cents: due,
                    status: PaymentStatus::Pending,
                    provider_reference: None,
                    failure_code: None,
                },
            )?;
            let result = PaymentResult {
                payment,
                order: view(conn, row)?,
            };
            after(conn, &result)?;
            Ok(result)
        }),
    }
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
    .returning(payments::all_columns)
    .get_result(conn)
    .optional()?)
}

/// Staff confirm that bank transfer `payment_id` arrived: in one transaction the order becomes
/// `paid` (its row first, the lock order every writer of orders follows) and the payment
/// `succeeded`. A transfer already settled, or an order no longer payable, is 409.
pub fn confirm_transfer(
    conn: &mut DbConn,
    user: &AuthUser,
    order_id: i64,
    payment_id: i64,
) -> Result<PaymentResult, ApiError> {
    write_transaction(conn, |conn| {
        let row = visible_order(conn, user, order_id)?;
        pending_transfer(conn, order_id, payment_id)?;
        let updated = transition(
            conn,
            &row,
            OrderAction::Pay,
            user.into(),
            Some("bank transfer confirmed"),
        )?;
        let payment = settle_pending(conn, payment_id, PaymentStatus::Succeeded, None)?
            .ok_or_else(|| {
                ApiError::Conflict(format!("payment {payment_id} was settled meanwhile"))
            })?;
        Ok(PaymentResult {
            payment: PaymentView::from_row(payment)?,
            order: view(conn, updated)?,
        })
    })
}

/// Staff reject bank transfer `payment_id` (it never arrived): the payment becomes `failed`
/// (`transfer_rejected`) and the order, still `pending_payment`, is payable again with a fresh
/// expiry of `order_ttl`.
pub fn reject_transfer(
    conn: &mut DbConn,
    user: &AuthUser,
    order_id: i64,
    payment_id: i64,
    order_ttl: std::time::Duration,
) -> Result<PaymentResult, ApiError> {
    let ttl = chrono::Duration::from_std(order_ttl).map_err(ApiError::internal)?;
    write_transaction(conn, |conn| {
        let row = visible_order(conn, user, order_id)?;
        pending_transfer(conn, order_id, payment_id)?;
        let status = OrderStatus::parse(&row.status)
            .ok_or_else(|| ApiError::internal(format!("order {} status {}", row.id, row.status)))?;
        state::next(status, OrderAction::Pay, true)?;
        let updated = extend_expiry(conn, &row, now() + ttl)?;
        let payment = settle_pending(
            conn,
            payment_id,
            PaymentStatus::Failed,
            Some("transfer_rejected"),
        )?
        .ok_or_else(|| ApiError::Conflict(format!("payment {payment_id} was settled meanwhile")))?;
        Ok(PaymentResult {
            payment: PaymentView::from_row(payment)?,
            order: view(conn, updated)?,
        })
    })
}

/// An order's payments, oldest first (same visibility as the order).
pub fn list_payments(
    conn: &mut DbConn,
    user: &AuthUser,
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
    fn the_test_provider_knows_its_tokens() {
        let p = TestProvider;
        let ok = p.charge(100, "USD", "tok_visa").unwrap();
        assert!(ok.reference.starts_with("test_ch_"));
        assert!(p.refund(&ok.reference, 100, "refund:1").is_ok());
        assert_eq!(
            p.refund("ch_other", 100, "refund:2"),
            Err(Decline::InvalidToken)
        );
        let code = |t| match p.charge(100, "USD", t) {
            Err(Decline::Declined { code, .. }) => code,
            other => panic!("{other:?}"),
        };
        assert_eq!(code("tok_declined"), "card_declined");
        assert_eq!(code("tok_insufficient_funds"), "insufficient_funds");
        assert_eq!(p.charge(100, "USD", "tok_nope"), Err(Decline::InvalidToken));
    }

    #[test]
    fn methods_round_trip() {
        for m in PaymentMethod::ALL {
            assert_eq!(PaymentMethod::parse(m.as_str()), Some(m));
            assert!(crate::config::PAYMENT_METHODS.contains(&m.as_str()));
        }
    }
}
