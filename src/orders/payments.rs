//! Payments of orders: the [`PaymentProvider`] seam (with the built-in [`TestProvider`]), the
//! payment rows and the rules of `POST /orders/{id}/payments`.
//!
//! A card is charged through the provider *outside* any database transaction (no network inside
//! a transaction); then one write transaction records the payment and moves the order
//! `pending_payment → paid` through the state machine with a conditional update. If the order
//! stopped being payable meanwhile (cancelled, or paid by a concurrent request) nothing is
//! recorded, the charge is refunded and the answer is the state machine's 409. A decline records
//! a `failed` payment and answers 402 with the provider's code; the order and stock are
//! untouched. `cash` (staff only) succeeds at once; `bank_transfer` records a `pending` payment
//! and leaves the order `pending_payment` (staff confirmation of transfers is not built yet).

use crate::auth::model::utc;
use crate::auth::AuthUser;
use crate::db::schema::payments;
use crate::db::{now, write_transaction, DbConn};
use crate::error::ApiError;
use crate::orders::model::{OrderRow, OrderView};
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
    /// The token is not one the provider knows.
    InvalidToken,
}

/// A card payment processor: authorize and capture in one step, and refund.
pub trait PaymentProvider: Send + Sync {
    fn charge(
        &self,
        amount_cents: i64,
        currency: &str,
        token: &str,
    ) -> Result<ProviderCharge, Decline>;
    /// Refunds `amount_cents` of the charge `reference`; returns the refund's reference.
    fn refund(&self, reference: &str, amount_cents: i64) -> Result<String, Decline>;
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

    fn refund(&self, reference: &str, _amount_cents: i64) -> Result<String, Decline> {
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
    let due = outstanding(conn, row)?;
    if due <= 0 {
        return Err(ApiError::Conflict(format!(
            "order {} has nothing left to pay",
            row.id
        )));
    }
    Ok(due)
}

struct Record<'a> {
    method: PaymentMethod,
    amount_cents: i64,
    status: PaymentStatus,
    provider_reference: Option<&'a str>,
    failure_code: Option<&'a str>,
}

fn insert(
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
                let updated = transition(conn, &row, OrderAction::Pay, user, Some("paid by card"))?;
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
                // Nothing was recorded: give the money back.
                if let Err(e) = ctx.provider.refund(&charge.reference, due) {
                    log::error!(
                        "cannot refund charge {} of order {id} after a failed record: {e:?}",
                        charge.reference
                    );
                }
            }
            recorded
        }
        PaymentMethod::Cash => write_transaction(conn, |conn| {
            let row = visible_order(conn, user, id)?;
            let due = payable(conn, user, &row)?;
            let updated = transition(conn, &row, OrderAction::Pay, user, Some("paid in cash"))?;
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
        assert!(p.refund(&ok.reference, 100).is_ok());
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
