//! Card payments that no crash can turn into a charge without a record, or into two charges.
//!
//! 1. One transaction writes the attempt: a `processing` payment with a fresh provider key and a
//!    lease (and, with an `Idempotency-Key`, the key's unfinished row, linked from the payment).
//! 2. The card is charged with that provider key, outside any transaction.
//! 3. One transaction records the outcome, only while the lease is still the one this holder
//!    took (its token fences the write): the payment succeeds and the order is paid; or it fails
//!    (declined, invalid token); or, the order having stopped being payable, it fails and the
//!    charge is refunded through a refund row.
//!
//! A crash (or a lost answer from the provider) between 1 and 3 leaves a `processing` payment.
//! Once its lease has run out, a retry with the same `Idempotency-Key` takes the attempt over and
//! charges again with the same provider key, which the provider answers with the first charge;
//! or the maintenance sweep asks the provider what became of the key ([`resolve_expired`]) and
//! records that. A holder whose lease was taken over records nothing: the new holder settles the
//! same charge, and a charge that nobody recorded is refunded.

use crate::auth::Principal;
use crate::db::schema::{idempotency_keys, orders, payments};
use crate::db::{now, write_transaction, DbConn};
use crate::error::ApiError;
use crate::idempotency::{self, Found, KeyedRequest, Outcome};
use crate::orders::model::OrderRow;
use crate::orders::payments::{
    outstanding, payable, ChargeLookup, Decline, PayContext, PaymentMethod, PaymentProvider,
    PaymentResult, PaymentRow, PaymentStatus, PaymentView, ProviderCharge, PAYMENT_COLUMNS,
};
use crate::orders::refunds;
use crate::orders::service::{transition, view, visible_order};
use crate::orders::state::{self, OrderAction, OrderStatus};
use actix_web::ResponseError;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use std::time::Duration;

/// A `processing` card payment, as the holder of its lease sees it.
#[derive(Debug, Clone)]
pub(crate) struct Attempt {
    id: i64,
    order_id: i64,
    amount_cents: i64,
    currency: String,
    /// The key the provider knows the charge by.
    provider_key: String,
    /// This holder's lease; a takeover replaces it, and only its holder may settle.
    lease_token: String,
    /// The unfinished `Idempotency-Key` row the outcome completes.
    key_id: Option<i64>,
    created_by: i64,
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = payments)]
struct AttemptRow {
    id: i64,
    order_id: i64,
    amount_cents: i64,
    status: String,
    provider_reference: Option<String>,
    provider_key: Option<String>,
    lease_until: Option<NaiveDateTime>,
    lease_token: Option<String>,
    idempotency_key_id: Option<i64>,
    created_by: i64,
}

/// The columns of [`AttemptRow`], for `RETURNING`.
const ATTEMPT_COLUMNS: (
    payments::id,
    payments::order_id,
    payments::amount_cents,
    payments::status,
    payments::provider_reference,
    payments::provider_key,
    payments::lease_until,
    payments::lease_token,
    payments::idempotency_key_id,
    payments::created_by,
) = (
    payments::id,
    payments::order_id,
    payments::amount_cents,
    payments::status,
    payments::provider_reference,
    payments::provider_key,
    payments::lease_until,
    payments::lease_token,
    payments::idempotency_key_id,
    payments::created_by,
);

impl Attempt {
    fn of(row: AttemptRow, currency: String) -> Result<Attempt, ApiError> {
        let missing = || ApiError::internal(format!("processing payment {} has no lease", row.id));
        Ok(Attempt {
            provider_key: row.provider_key.clone().ok_or_else(missing)?,
            lease_token: row.lease_token.clone().ok_or_else(missing)?,
            id: row.id,
            order_id: row.order_id,
            amount_cents: row.amount_cents,
            currency,
            key_id: row.idempotency_key_id,
            created_by: row.created_by,
        })
    }
}

fn lease_end(lease: Duration) -> Result<NaiveDateTime, ApiError> {
    Ok(now() + chrono::Duration::from_std(lease).map_err(ApiError::internal)?)
}

fn new_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Pays order `order_id` by card (the request's side of the module docs).
pub(crate) fn pay(
    conn: &mut DbConn,
    ctx: &PayContext<'_>,
    user: &Principal,
    order_id: i64,
    token: &str,
    key: Option<&KeyedRequest>,
) -> Result<Outcome<PaymentResult>, ApiError> {
    let attempt = match key {
        None => match begin(conn, ctx, user, order_id, None) {
            Ok(attempt) => attempt,
            Err(Begun::Refused(err)) => return Err(err),
            Err(Begun::KeyTaken) => return Err(idempotency::in_progress(None)),
        },
        Some(k) => match hold_for_key(conn, ctx, user, order_id, k)? {
            Held::Attempt(attempt) => attempt,
            Held::Answered(outcome) => return Ok(outcome),
        },
    };
    let charged = ctx.provider.charge(
        attempt.amount_cents,
        &attempt.currency,
        token,
        &attempt.provider_key,
    );
    settle(conn, ctx.provider, &attempt, charged, Some(user))
}

enum Held {
    Attempt(Attempt),
    Answered(Outcome<PaymentResult>),
}

/// The attempt a request with key `k` is to charge: a new one, or the one a crashed request
/// with the same key left behind (once its lease ran out); or the answer the key already has.
fn hold_for_key(
    conn: &mut DbConn,
    ctx: &PayContext<'_>,
    user: &Principal,
    order_id: i64,
    k: &KeyedRequest,
) -> Result<Held, ApiError> {
    // A race with another request using the key sends us round again to see what it did.
    for _ in 0..3 {
        match idempotency::find(conn, k)? {
            Found::Done { status, body } => {
                return Ok(Held::Answered(Outcome::Replayed { status, body }))
            }
            Found::Open { id } => {
                if let Some(attempt) = take_over(conn, ctx.lease, id)? {
                    return Ok(Held::Attempt(attempt));
                }
            }
            Found::New => match begin(conn, ctx, user, order_id, Some(k)) {
                Ok(attempt) => return Ok(Held::Attempt(attempt)),
                Err(Begun::KeyTaken) => {}
                Err(Begun::Refused(err)) => {
                    return idempotency::answer_error(conn, k, err).map(Held::Answered)
                }
            },
        }
    }
    Err(idempotency::in_progress(None))
}

enum Begun {
    /// Another request inserted the key first.
    KeyTaken,
    Refused(ApiError),
}

/// Step 1: writes the attempt (and the key's unfinished row) in one transaction.
fn begin(
    conn: &mut DbConn,
    ctx: &PayContext<'_>,
    user: &Principal,
    order_id: i64,
    key: Option<&KeyedRequest>,
) -> Result<Attempt, Begun> {
    let mut key_taken = false;
    let begun = write_transaction(conn, |tx| {
        // Lock the order's row (a write that changes nothing) before looking: a concurrent
        // attempt on the order then waits for this one and sees it, instead of both charging.
        diesel::update(orders::table.filter(orders::id.eq(order_id)))
            .set(orders::version.eq(orders::version))
            .execute(tx.conn())?;
        let order = visible_order(tx, user, order_id)?;
        let due = payable(tx, user, &order)?;
        let key_id = match key.map(|k| idempotency::insert_open(tx, k)) {
            None => None,
            Some(Ok(id)) => Some(id),
            Some(Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _))) => {
                key_taken = true;
                return Err(idempotency::in_progress(None));
            }
            Some(Err(e)) => return Err(e.into()),
        };
        let row: AttemptRow = diesel::insert_into(payments::table)
            .values((
                payments::order_id.eq(order_id),
                payments::method.eq(PaymentMethod::Card.as_str()),
                payments::amount_cents.eq(due),
                payments::status.eq(PaymentStatus::Processing.as_str()),
                payments::created_by.eq(user.user_id),
                payments::created_at.eq(now()),
                payments::provider_key.eq(format!("bookstore_pay_{}", new_token())),
                payments::lease_until.eq(lease_end(ctx.lease)?),
                payments::lease_token.eq(new_token()),
                payments::idempotency_key_id.eq(key_id),
            ))
            .returning(ATTEMPT_COLUMNS)
            .get_result(tx.conn())?;
        Attempt::of(row, order.currency)
    });
    match begun {
        Ok(attempt) => Ok(attempt),
        Err(_) if key_taken => Err(Begun::KeyTaken),
        Err(err) => Err(Begun::Refused(err)),
    }
}

/// The attempt behind the unfinished key row `key_id`, claimed if its lease has run out; `None`
/// if the row had no attempt (it is released, so that the key starts afresh). A live lease is a
/// 409 with `Retry-After`.
fn take_over(conn: &mut DbConn, lease: Duration, key_id: i64) -> Result<Option<Attempt>, ApiError> {
    let row: Option<AttemptRow> = payments::table
        .filter(payments::idempotency_key_id.eq(key_id))
        .order(payments::id.desc())
        .select(AttemptRow::as_select())
        .first(conn)
        .optional()?;
    let Some(row) = row else {
        idempotency::release(conn, key_id)?;
        return Ok(None);
    };
    if row.status != PaymentStatus::Processing.as_str() {
        // Settled: the key's answer is being written with it.
        return Err(idempotency::in_progress(None));
    }
    if let Some(attempt) = claim(conn, row.id, lease)? {
        return Ok(Some(attempt));
    }
    let left = row
        .lease_until
        .map_or(1, |until| (until - now()).num_seconds() + 1);
    Err(idempotency::in_progress(Some(
        u64::try_from(left.max(1)).unwrap_or(1),
    )))
}

/// Takes over processing payment `id` if its lease has run out (a conditional update: of
/// concurrent claimers exactly one wins).
fn claim(conn: &mut DbConn, id: i64, lease: Duration) -> Result<Option<Attempt>, ApiError> {
    write_transaction(conn, |tx| {
        let row: Option<AttemptRow> = diesel::update(
            payments::table
                .filter(payments::id.eq(id))
                .filter(payments::status.eq(PaymentStatus::Processing.as_str()))
                .filter(payments::lease_until.lt(now())),
        )
        .set((
            payments::lease_until.eq(lease_end(lease)?),
            payments::lease_token.eq(new_token()),
        ))
        .returning(ATTEMPT_COLUMNS)
        .get_result(tx.conn())
        .optional()?;
        let Some(row) = row else {
            return Ok(None);
        };
        let currency: String = orders::table
            .find(row.order_id)
            .select(orders::currency)
            .first(tx.conn())?;
        Attempt::of(row, currency).map(Some)
    })
}

/// Ends this holder's lease now, leaving the attempt `processing`: its outcome is unknown, and a
/// retry with the key or the next sweep settles it without waiting for the lease to run out.
fn release_lease(conn: &mut DbConn, attempt: &Attempt) -> Result<(), ApiError> {
    write_transaction(conn, |tx| {
        diesel::update(fenced(attempt))
            .set(payments::lease_until.eq(now()))
            .execute(tx.conn())?;
        Ok(())
    })
}

/// The attempt's row, filtered on this holder's lease.
type Fenced = diesel::dsl::Filter<
    diesel::dsl::Filter<
        diesel::dsl::Filter<payments::table, diesel::dsl::Eq<payments::id, i64>>,
        diesel::dsl::Eq<payments::status, &'static str>,
    >,
    diesel::dsl::Eq<payments::lease_token, String>,
>;

/// The attempt's row, if this holder's lease is still the current one.
fn fenced(attempt: &Attempt) -> Fenced {
    payments::table
        .filter(payments::id.eq(attempt.id))
        .filter(payments::status.eq(PaymentStatus::Processing.as_str()))
        .filter(payments::lease_token.eq(attempt.lease_token.clone()))
}

/// Step 3: records what the provider said of the attempt's charge.
fn settle(
    conn: &mut DbConn,
    provider: &dyn PaymentProvider,
    attempt: &Attempt,
    charged: Result<ProviderCharge, Decline>,
    by: Option<&Principal>,
) -> Result<Outcome<PaymentResult>, ApiError> {
    let order_id = attempt.order_id;
    match charged {
        Ok(charge) => succeed(conn, provider, attempt, &charge, by),
        Err(Decline::Unavailable(why)) => {
            if let Err(e) = release_lease(conn, attempt) {
                log::warn!("cannot release the lease of payment {}: {e}", attempt.id);
            }
            Err(ApiError::Unavailable(format!(
                "payment provider unavailable for order {order_id} (payment {} is left \
                 processing): {why}",
                attempt.id
            )))
        }
        Err(Decline::InvalidToken) => fail(
            conn,
            provider,
            attempt,
            "invalid_token",
            ApiError::invalid("token", "is not a valid card token"),
        ),
        Err(Decline::Declined { code, message }) => {
            let err = ApiError::PaymentDeclined {
                detail: format!("the payment of order {order_id} was declined: {message}"),
                code: code.clone(),
            };
            fail(conn, provider, attempt, &code, err)
        }
    }
}

fn problem_body(err: &ApiError) -> Result<String, ApiError> {
    serde_json::to_string(&err.to_problem()).map_err(ApiError::internal)
}

/// Records a charge that did not happen as a failed payment (and `err` as the key's answer).
fn fail(
    conn: &mut DbConn,
    provider: &dyn PaymentProvider,
    attempt: &Attempt,
    code: &str,
    err: ApiError,
) -> Result<Outcome<PaymentResult>, ApiError> {
    let body = problem_body(&err)?;
    let held = write_transaction(conn, |tx| {
        let updated = diesel::update(fenced(attempt))
            .set((
                payments::status.eq(PaymentStatus::Failed.as_str()),
                payments::failure_code.eq(code),
                payments::lease_until.eq(None::<NaiveDateTime>),
            ))
            .execute(tx.conn())?;
        if updated == 1 {
            if let Some(key_id) = attempt.key_id {
                idempotency::complete(tx, key_id, err.status_code().as_u16(), &body)?;
            }
        }
        Ok::<_, ApiError>(updated == 1)
    })?;
    if held {
        Err(err)
    } else {
        taken_over(conn, provider, attempt, None)
    }
}

enum Recorded {
    Paid(PaymentResult),
    NotPayable(refunds::RefundRow, ApiError),
    TakenOver,
}

/// Records a successful charge: the order is paid, or, no longer payable, the charge refunded.
fn succeed(
    conn: &mut DbConn,
    provider: &dyn PaymentProvider,
    attempt: &Attempt,
    charge: &ProviderCharge,
    by: Option<&Principal>,
) -> Result<Outcome<PaymentResult>, ApiError> {
    let recorded = write_transaction(conn, |tx| {
        // The order row first: the lock order every writer of orders follows.
        let order: OrderRow = orders::table
            .find(attempt.order_id)
            .select(OrderRow::as_select())
            .first(tx.conn())?;
        let held: Option<i64> = fenced(attempt)
            .select(payments::id)
            .first(tx.conn())
            .optional()?;
        if held.is_none() {
            return Ok(Recorded::TakenOver);
        }
        match still_payable(tx, &order, attempt.amount_cents, by) {
            Ok(()) => {
                let updated = transition(tx, &order, OrderAction::Pay, by, Some("paid by card"))?;
                let payment: PaymentRow = diesel::update(fenced(attempt))
                    .set((
                        payments::status.eq(PaymentStatus::Succeeded.as_str()),
                        payments::provider_reference.eq(&charge.reference),
                        payments::lease_until.eq(None::<NaiveDateTime>),
                    ))
                    .returning(PAYMENT_COLUMNS)
                    .get_result(tx.conn())?;
                let result = PaymentResult {
                    payment: PaymentView::from_row(payment)?,
                    order: view(tx, updated)?,
                };
                if let Some(key_id) = attempt.key_id {
                    let body = serde_json::to_string(&result).map_err(ApiError::internal)?;
                    idempotency::complete(tx, key_id, 201, &body)?;
                }
                Ok(Recorded::Paid(result))
            }
            Err(refusal) => {
                diesel::update(fenced(attempt))
                    .set((
                        payments::status.eq(PaymentStatus::Failed.as_str()),
                        payments::failure_code.eq("order_not_payable"),
                        payments::provider_reference.eq(&charge.reference),
                        payments::lease_until.eq(None::<NaiveDateTime>),
                    ))
                    .execute(tx.conn())?;
                let refund = refunds::record_orphan_charge(
                    tx,
                    order.id,
                    Some(attempt.id),
                    &charge.reference,
                    attempt.amount_cents,
                    attempt.created_by,
                )?;
                if let Some(key_id) = attempt.key_id {
                    let status = refusal.status_code().as_u16();
                    idempotency::complete(tx, key_id, status, &problem_body(&refusal)?)?;
                }
                Ok(Recorded::NotPayable(refund, refusal))
            }
        }
    });
    match recorded {
        Ok(Recorded::Paid(result)) => Ok(Outcome::Fresh(Box::new(result))),
        Ok(Recorded::NotPayable(refund, refusal)) => {
            // Outside the transaction: the refund is a network call (retried by the sweep).
            refunds::carry_out_planned(conn, provider, &[refund]);
            Err(refusal)
        }
        Ok(Recorded::TakenOver) => taken_over(conn, provider, attempt, Some(charge)),
        Err(err) => {
            // Nothing was recorded: leave the attempt to a retry or the sweep, at once.
            if let Err(e) = release_lease(conn, attempt) {
                log::warn!("cannot release the lease of payment {}: {e}", attempt.id);
            }
            Err(err)
        }
    }
}

/// Whether order `order` may still be paid `amount_cents` by `by` (`None`: the sweep).
fn still_payable(
    conn: &mut DbConn,
    order: &OrderRow,
    amount_cents: i64,
    by: Option<&Principal>,
) -> Result<(), ApiError> {
    let status = OrderStatus::parse(&order.status)
        .ok_or_else(|| ApiError::internal(format!("order {} status {}", order.id, order.status)))?;
    state::next(status, OrderAction::Pay, by.is_none_or(Principal::is_staff))?;
    if outstanding(conn, order)? != amount_cents {
        return Err(ApiError::Conflict(format!(
            "order {}'s outstanding amount changed while the card was charged",
            order.id
        )));
    }
    Ok(())
}

/// This holder lost its lease before it could record `charge`: the new holder settles the
/// attempt. The answer is what was recorded; a charge nobody recorded is refunded.
fn taken_over(
    conn: &mut DbConn,
    provider: &dyn PaymentProvider,
    attempt: &Attempt,
    charge: Option<&ProviderCharge>,
) -> Result<Outcome<PaymentResult>, ApiError> {
    let now_row: AttemptRow = payments::table
        .find(attempt.id)
        .select(AttemptRow::as_select())
        .first(conn)?;
    if now_row.status == PaymentStatus::Processing.as_str() {
        // The new holder charges with the same provider key: it settles this very charge.
        return Err(idempotency::in_progress(None));
    }
    if let Some(charge) = charge {
        if now_row.provider_reference.as_deref() != Some(charge.reference.as_str()) {
            log::warn!(
                "charge {} of payment {} was made after the attempt was settled without it; \
                 refunding it",
                charge.reference,
                attempt.id
            );
            let refund = write_transaction(conn, |tx| {
                refunds::record_orphan_charge(
                    tx,
                    attempt.order_id,
                    Some(attempt.id),
                    &charge.reference,
                    attempt.amount_cents,
                    attempt.created_by,
                )
            })?;
            refunds::carry_out_planned(conn, provider, &[refund]);
            return Err(ApiError::Conflict(format!(
                "payment {} was settled meanwhile without this charge, which is refunded",
                attempt.id
            )));
        }
    }
    let stored: Option<(Option<i32>, Option<String>)> = match attempt.key_id {
        Some(key_id) => idempotency_keys::table
            .find(key_id)
            .select((
                idempotency_keys::status_code,
                idempotency_keys::response_body,
            ))
            .first(conn)
            .optional()?,
        None => None,
    };
    if let Some((Some(status), body)) = stored {
        return Ok(Outcome::Replayed {
            status: u16::try_from(status).map_err(ApiError::internal)?,
            body: body.unwrap_or_default(),
        });
    }
    if now_row.status == PaymentStatus::Succeeded.as_str() {
        let payment: PaymentRow = payments::table
            .find(attempt.id)
            .select(PaymentRow::as_select())
            .first(conn)?;
        let order: OrderRow = orders::table
            .find(attempt.order_id)
            .select(OrderRow::as_select())
            .first(conn)?;
        return Ok(Outcome::Fresh(Box::new(PaymentResult {
            payment: PaymentView::from_row(payment)?,
            order: view(conn, order)?,
        })));
    }
    Err(ApiError::Conflict(format!(
        "payment {} was settled meanwhile as {}",
        attempt.id, now_row.status
    )))
}

/// The maintenance side: settles up to `limit` `processing` payments whose lease has run out
/// (their request crashed, or lost the provider's answer) by asking the provider, by key, what
/// became of the charge. Returns how many it settled or gave up on.
pub fn resolve_expired(
    conn: &mut DbConn,
    provider: &dyn PaymentProvider,
    lease: Duration,
    limit: i64,
) -> Result<usize, ApiError> {
    let due: Vec<i64> = payments::table
        .filter(payments::status.eq(PaymentStatus::Processing.as_str()))
        .filter(payments::lease_until.lt(now()))
        .order(payments::id)
        .limit(limit)
        .select(payments::id)
        .load(conn)?;
    let mut resolved = 0;
    for id in due {
        let Some(attempt) = claim(conn, id, lease)? else {
            continue; // a retry or another replica took it
        };
        match provider.lookup(&attempt.provider_key) {
            Err(why) => {
                log::warn!("cannot ask the provider about payment {id}: {why:?}");
                release_lease(conn, &attempt)?;
            }
            Ok(ChargeLookup::Unknown) => {
                abandon(conn, &attempt)?;
                resolved += 1;
            }
            Ok(ChargeLookup::Attempted(outcome)) => {
                match settle(conn, provider, &attempt, outcome, None) {
                    Err(err) if err.status_code().is_server_error() => {
                        log::warn!("cannot settle payment {id}: {err}");
                    }
                    // A decline or a refund is the payment's outcome, recorded with it.
                    _ => resolved += 1,
                }
            }
        }
    }
    Ok(resolved)
}

/// The provider never saw the attempt's charge: it fails (`abandoned`), and its key, unfinished,
/// is forgotten so that the client's retry pays afresh.
fn abandon(conn: &mut DbConn, attempt: &Attempt) -> Result<(), ApiError> {
    write_transaction(conn, |tx| {
        let updated = diesel::update(fenced(attempt))
            .set((
                payments::status.eq(PaymentStatus::Failed.as_str()),
                payments::failure_code.eq("abandoned"),
                payments::lease_until.eq(None::<NaiveDateTime>),
            ))
            .execute(tx.conn())?;
        if updated == 1 {
            if let Some(key_id) = attempt.key_id {
                idempotency::release(tx, key_id)?;
            }
        }
        Ok(())
    })
}
