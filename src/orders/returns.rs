//! Returns: copies of a fulfilled order coming back, refunded from the prices snapshotted on the
//! order's lines and, when restocked, put back on the shelf with a `return` movement.
//!
//! Staff record a return that is received at once. A customer may *request* one for their own
//! order within the return window (counted from fulfilment); nothing moves until staff receive
//! the copies (deciding whether they go back into stock) or reject the request. Receiving takes,
//! in one transaction, the order row first (the lock every order writer takes first), then a
//! conditional update per line (`returned_quantity + q <= quantity`), so no sequence or race of
//! returns ever takes back more than was sold; then the movements, the order's move to
//! `partially_returned` or `returned`, and the planned refunds, carried out after commit.

use crate::auth::model::utc;
use crate::auth::Principal;
use crate::db::schema::{order_events, order_lines, orders, return_lines, returns};
use crate::db::{now, write_transaction, DbConn, WriteTx};
use crate::error::{ApiError, FieldError};
use crate::inventory::model::MovementKind;
use crate::inventory::stock::{self, Movement};
use crate::orders::model::{OrderLineRow, OrderRow};
use crate::orders::payments::PaymentProvider;
use crate::orders::refunds::{self, RefundRow, RefundView};
use crate::orders::service::{lines_of, transition, visible_order};
use crate::orders::state::{self, IllegalTransition, OrderAction, OrderStatus};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use utoipa::ToSchema;
use validator::Validate;

/// A line of a return.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReturnLine {
    /// A book on the order.
    pub book_id: i64,
    /// Copies coming back, 1 to 1000, at most those sold and not yet returned.
    #[validate(range(min = 1, max = 1000))]
    #[schema(minimum = 1, maximum = 1000)]
    pub quantity: i64,
}

/// Body of `POST /orders/{id}/returns`.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, ToSchema)]
#[schema(example = json!({
    "lines": [{"book_id": 1, "quantity": 1}],
    "restock": true,
    "reason": "damaged in transit"
}))]
#[serde(deny_unknown_fields)]
pub struct NewReturn {
    /// 1 to 100 lines, each book at most once.
    #[validate(length(min = 1, max = 100), nested)]
    #[schema(min_items = 1, max_items = 100)]
    pub lines: Vec<NewReturnLine>,
    /// Staff: whether the copies go back into stock (default true). Customers leave it out:
    /// staff decide when the copies arrive.
    pub restock: Option<bool>,
    /// Why the copies come back.
    #[validate(length(min = 1, max = 500))]
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
}

/// Body of `POST /orders/{id}/returns/{return_id}/receive` and `…/reject` (optional).
#[derive(Debug, Clone, Default, Deserialize, Validate, ToSchema)]
#[schema(example = json!({"restock": true, "note": "both copies in good condition"}))]
#[serde(deny_unknown_fields)]
pub struct ReturnDecision {
    /// Whether the copies go back into stock (default true).
    pub restock: Option<bool>,
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub note: Option<String>,
}

/// Optional body of `POST /orders/{id}/returns/{return_id}/reject`. A rejected return moves no
/// stock, so it takes no `restock` (an unknown field, 422).
#[derive(Debug, Clone, Default, Deserialize, Validate, ToSchema)]
#[schema(example = json!({"note": "the copies were damaged by the customer"}))]
#[serde(deny_unknown_fields)]
pub struct ReturnRejection {
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub note: Option<String>,
}

/// Where a return stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReturnStatus {
    /// Asked for by the customer; nothing has moved yet.
    Requested,
    /// The copies are back and refunded.
    Received,
    /// Turned down by staff.
    Rejected,
}

impl ReturnStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReturnStatus::Requested => "requested",
            ReturnStatus::Received => "received",
            ReturnStatus::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<ReturnStatus> {
        [
            ReturnStatus::Requested,
            ReturnStatus::Received,
            ReturnStatus::Rejected,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// A row of `returns`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = returns)]
pub struct ReturnRow {
    pub id: i64,
    pub order_id: i64,
    pub status: String,
    pub restock: bool,
    pub reason: String,
    pub refund_cents: i64,
    pub requested_by: i64,
    pub decided_by: Option<i64>,
    pub decision_note: Option<String>,
    pub created_at: NaiveDateTime,
    pub decided_at: Option<NaiveDateTime>,
}

/// A row of `return_lines`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = return_lines)]
pub struct ReturnLineRow {
    pub id: i64,
    pub return_id: i64,
    pub order_line_id: i64,
    pub book_id: i64,
    pub quantity: i64,
    pub refund_cents: i64,
}

/// A line of a return, priced from the order line's snapshot.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReturnLineView {
    pub book_id: i64,
    pub quantity: i64,
    /// `unit_price_cents` of the order line times `quantity`.
    pub refund_cents: i64,
}

/// A return of (part of) an order, with its refunds.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 2, "order_id": 12, "status": "received", "restock": true,
    "reason": "damaged in transit", "refund_cents": 1299, "requested_by": 7, "decided_by": 7,
    "decision_note": null, "created_at": "2026-11-25T12:00:00Z",
    "decided_at": "2026-11-25T12:00:00Z",
    "lines": [{"book_id": 1, "quantity": 1, "refund_cents": 1299}],
    "refunds": []
}))]
pub struct ReturnView {
    pub id: i64,
    pub order_id: i64,
    pub status: ReturnStatus,
    /// Whether the copies went (or go) back into stock.
    pub restock: bool,
    pub reason: String,
    /// What the return refunds: the sum of its lines.
    pub refund_cents: i64,
    pub requested_by: i64,
    /// The staff member who received or rejected it.
    pub decided_by: Option<i64>,
    pub decision_note: Option<String>,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub lines: Vec<ReturnLineView>,
    pub refunds: Vec<RefundView>,
}

fn view(conn: &mut DbConn, row: ReturnRow) -> Result<ReturnView, ApiError> {
    let lines: Vec<ReturnLineRow> = return_lines::table
        .filter(return_lines::return_id.eq(row.id))
        .order(return_lines::id)
        .select(ReturnLineRow::as_select())
        .load(conn)?;
    let refunds = refunds::refunds_of(conn, row.order_id, Some(row.id))?;
    Ok(ReturnView {
        id: row.id,
        order_id: row.order_id,
        status: ReturnStatus::parse(&row.status).ok_or_else(|| {
            ApiError::internal(format!("return {} status {}", row.id, row.status))
        })?,
        restock: row.restock,
        reason: row.reason,
        refund_cents: row.refund_cents,
        requested_by: row.requested_by,
        decided_by: row.decided_by,
        decision_note: row.decision_note,
        created_at: utc(row.created_at),
        decided_at: row.decided_at.map(utc),
        lines: lines
            .into_iter()
            .map(|l| ReturnLineView {
                book_id: l.book_id,
                quantity: l.quantity,
                refund_cents: l.refund_cents,
            })
            .collect(),
        refunds,
    })
}

/// Takes the order's row lock (an update that bumps its version) and returns the row as it now
/// is, so that everything after it in the transaction sees the latest status and no other
/// writer of the order runs until commit.
fn lock_order(conn: &mut DbConn, id: i64) -> Result<OrderRow, ApiError> {
    Ok(diesel::update(orders::table.find(id))
        .set(orders::version.eq(orders::version + 1))
        .returning(orders::all_columns)
        .get_result(conn)?)
}

fn status_of(row: &OrderRow) -> Result<OrderStatus, ApiError> {
    OrderStatus::parse(&row.status)
        .ok_or_else(|| ApiError::internal(format!("order {} status {}", row.id, row.status)))
}

/// 409 unless the order is in a status that takes returns.
fn check_returnable(row: &OrderRow, user: &Principal) -> Result<(), ApiError> {
    let status = status_of(row)?;
    if state::next(status, OrderAction::ReturnPart, true).is_err() {
        return Err(IllegalTransition {
            from: status,
            action: OrderAction::ReturnPart,
            allowed: state::allowed_actions(status, user.is_staff()),
        }
        .into());
    }
    Ok(())
}

/// 409 when the customer's return window, counted from the order's fulfilment, has closed.
fn check_window(conn: &mut DbConn, row: &OrderRow, window: Duration) -> Result<(), ApiError> {
    let fulfilled_at: Option<NaiveDateTime> = order_events::table
        .filter(order_events::order_id.eq(row.id))
        .filter(order_events::to_status.eq(OrderStatus::Fulfilled.as_str()))
        .select(order_events::created_at)
        .first(conn)
        .optional()?;
    let fulfilled_at = fulfilled_at
        .ok_or_else(|| ApiError::internal(format!("order {} has no fulfilment event", row.id)))?;
    let window_ends =
        fulfilled_at + chrono::Duration::from_std(window).map_err(ApiError::internal)?;
    if now() > window_ends {
        return Err(ApiError::Conflict(format!(
            "the return window of order {} closed at {} ({} days after fulfilment); ask the \
             shop's staff",
            row.id,
            utc(window_ends).to_rfc3339(),
            window.as_secs() / 86_400
        )));
    }
    Ok(())
}

/// Copies of each order line asked for by open (requested) returns.
fn requested_quantities(conn: &mut DbConn, order_id: i64) -> Result<HashMap<i64, i64>, ApiError> {
    let rows: Vec<(i64, i64)> = return_lines::table
        .inner_join(returns::table)
        .filter(returns::order_id.eq(order_id))
        .filter(returns::status.eq(ReturnStatus::Requested.as_str()))
        .select((return_lines::order_line_id, return_lines::quantity))
        .load(conn)?;
    let mut out = HashMap::new();
    for (line, q) in rows {
        *out.entry(line).or_insert(0) += q;
    }
    Ok(out)
}

/// Records a return of order `order_id` (see the module docs). Staff: received at once, refunded
/// and, unless `restock` is false, restocked. Customers: a request on their own order within
/// `window`, received later by staff. Refunds are carried out through `provider` after commit.
/// `after` runs inside the transaction with the return as it commits (the idempotency record is
/// stored there).
pub fn create_return(
    conn: &mut DbConn,
    provider: &dyn PaymentProvider,
    user: &Principal,
    order_id: i64,
    input: &NewReturn,
    window: Duration,
    after: impl FnOnce(&mut DbConn, &ReturnView) -> Result<(), ApiError>,
) -> Result<ReturnView, ApiError> {
    let reason = input.reason.trim();
    if reason.is_empty() {
        return Err(ApiError::invalid("reason", "must not be blank"));
    }
    if !user.is_staff() && input.restock.is_some() {
        return Err(ApiError::invalid(
            "restock",
            "is decided by staff when the copies arrive; leave it out",
        ));
    }
    let mut errors = Vec::new();
    let mut seen = HashSet::new();
    for (i, line) in input.lines.iter().enumerate() {
        if !seen.insert(line.book_id) {
            errors.push(FieldError::new(
                format!("lines[{i}].book_id"),
                "lists a book already returned on another line",
            ));
        }
    }
    let (ret, planned) = write_transaction(conn, |tx| {
        visible_order(tx, user, order_id)?;
        let order = lock_order(tx, order_id)?;
        check_returnable(&order, user)?;
        if !user.is_staff() {
            check_window(tx, &order, window)?;
        }
        let order_lines = lines_of(tx, &[order_id])?
            .remove(&order_id)
            .unwrap_or_default();
        let by_book: HashMap<i64, &OrderLineRow> =
            order_lines.iter().map(|l| (l.book_id, l)).collect();
        let requested = requested_quantities(tx, order_id)?;
        let mut short = Vec::new();
        let mut matched = Vec::new();
        for (i, line) in input.lines.iter().enumerate() {
            let Some(ol) = by_book.get(&line.book_id) else {
                errors.push(FieldError::new(
                    format!("lines[{i}].book_id"),
                    format!("book {} is not on order {order_id}", line.book_id),
                ));
                continue;
            };
            let left = ol.quantity - ol.returned_quantity - requested.get(&ol.id).unwrap_or(&0);
            if line.quantity > left {
                short.push(format!(
                    "book {} ({:?}): {} asked, {left} can still be returned",
                    ol.book_id, ol.title, line.quantity
                ));
            }
            matched.push((*ol, line.quantity));
        }
        if !errors.is_empty() {
            errors.sort_by(|a, b| a.field.cmp(&b.field));
            return Err(ApiError::Validation(std::mem::take(&mut errors)));
        }
        if !short.is_empty() {
            return Err(ApiError::Conflict(format!(
                "more than was sold and not yet returned: {}",
                short.join("; ")
            )));
        }
        let mut refund_cents = 0_i64;
        for (ol, q) in &matched {
            refund_cents = ol
                .unit_price_cents
                .checked_mul(*q)
                .and_then(|c| c.checked_add(refund_cents))
                .ok_or_else(|| ApiError::internal("return total overflows"))?;
        }
        let at = now();
        let status = if user.is_staff() {
            ReturnStatus::Received
        } else {
            ReturnStatus::Requested
        };
        let restock = input.restock.unwrap_or(true);
        let ret: ReturnRow = diesel::insert_into(returns::table)
            .values((
                returns::order_id.eq(order_id),
                returns::status.eq(ReturnStatus::Requested.as_str()),
                returns::restock.eq(restock),
                returns::reason.eq(reason),
                returns::refund_cents.eq(refund_cents),
                returns::requested_by.eq(user.user_id),
                returns::created_at.eq(at),
            ))
            .returning(returns::all_columns)
            .get_result(tx.conn())?;
        let mut lines = Vec::with_capacity(matched.len());
        for (ol, q) in &matched {
            lines.push(
                diesel::insert_into(return_lines::table)
                    .values((
                        return_lines::return_id.eq(ret.id),
                        return_lines::order_line_id.eq(ol.id),
                        return_lines::book_id.eq(ol.book_id),
                        return_lines::quantity.eq(q),
                        return_lines::refund_cents.eq(ol.unit_price_cents * q),
                    ))
                    .returning(return_lines::all_columns)
                    .get_result::<ReturnLineRow>(tx.conn())?,
            );
        }
        let (ret, planned) = if status == ReturnStatus::Requested {
            (ret, Vec::new())
        } else {
            receive_in_transaction(tx, &order, &ret, &lines, restock, user, None)?
        };
        let committed = view(tx, ret.clone())?;
        after(tx, &committed)?;
        Ok((ret, planned))
    })?;
    refunds::carry_out_planned(conn, provider, &planned);
    let ret = refreshed(conn, ret.id)?;
    view(conn, ret)
}

fn refreshed(conn: &mut DbConn, id: i64) -> Result<ReturnRow, ApiError> {
    Ok(returns::table
        .find(id)
        .select(ReturnRow::as_select())
        .first(conn)?)
}

/// Receives return `ret` (its lines `lines`) of the locked order `order`, inside the caller's
/// transaction: takes the copies back line by line with conditional updates, restocks them if
/// asked, moves the order to `partially_returned` or `returned`, plans the refund and marks the
/// return received. Returns the return and the planned refunds.
fn receive_in_transaction(
    tx: &mut WriteTx<'_>,
    order: &OrderRow,
    ret: &ReturnRow,
    lines: &[ReturnLineRow],
    restock: bool,
    user: &Principal,
    note: Option<&str>,
) -> Result<(ReturnRow, Vec<RefundRow>), ApiError> {
    let at = now();
    let reference = format!("return:{}", ret.id);
    let mut sorted: Vec<&ReturnLineRow> = lines.iter().collect();
    sorted.sort_by_key(|l| l.book_id);
    for line in sorted {
        let taken = diesel::update(
            order_lines::table
                .filter(order_lines::id.eq(line.order_line_id))
                .filter((order_lines::returned_quantity + line.quantity).le(order_lines::quantity)),
        )
        .set(order_lines::returned_quantity.eq(order_lines::returned_quantity + line.quantity))
        .execute(tx.conn())?;
        if taken != 1 {
            return Err(ApiError::Conflict(format!(
                "book {} of order {}: {} copies are more than were sold and not yet returned",
                line.book_id, order.id, line.quantity
            )));
        }
        if restock {
            stock::apply_movement(
                tx,
                &Movement {
                    book_id: line.book_id,
                    quantity: line.quantity,
                    kind: MovementKind::Return,
                    reference: Some(&reference),
                    reason: Some("customer_return"),
                    note: Some(&ret.reason),
                    unit_cost_cents: None,
                    user_id: Some(user.user_id),
                    at,
                },
            )?;
        }
    }
    let outstanding: i64 = order_lines::table
        .filter(order_lines::order_id.eq(order.id))
        .filter(order_lines::returned_quantity.lt(order_lines::quantity))
        .count()
        .get_result(tx.conn())?;
    let action = if outstanding == 0 {
        OrderAction::ReturnAll
    } else {
        OrderAction::ReturnPart
    };
    let event_note = format!("return {}", ret.id);
    transition(tx, order, action, Some(user), Some(&event_note))?;
    let planned = refunds::plan(
        tx,
        order.id,
        ret.refund_cents,
        Some(ret.id),
        &format!("return {}: {}", ret.id, ret.reason),
        Some(user.user_id),
    )?;
    let ret: ReturnRow = diesel::update(returns::table.find(ret.id))
        .set((
            returns::status.eq(ReturnStatus::Received.as_str()),
            returns::restock.eq(restock),
            returns::decided_by.eq(Some(user.user_id)),
            returns::decision_note.eq(note),
            returns::decided_at.eq(Some(at)),
        ))
        .returning(returns::all_columns)
        .get_result(tx.conn())?;
    Ok((ret, planned))
}

/// Return `return_id` of order `order_id`, if it is still a request (404 / 409 otherwise).
fn open_request(conn: &mut DbConn, order_id: i64, return_id: i64) -> Result<ReturnRow, ApiError> {
    let ret: ReturnRow = returns::table
        .filter(returns::id.eq(return_id))
        .filter(returns::order_id.eq(order_id))
        .select(ReturnRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| ApiError::NotFound(format!("order {order_id} has no return {return_id}")))?;
    if ret.status != ReturnStatus::Requested.as_str() {
        return Err(ApiError::Conflict(format!(
            "return {return_id} is already {}",
            ret.status
        )));
    }
    Ok(ret)
}

/// Staff receive a customer's requested return: as a staff return (see
/// [`receive_in_transaction`]), with `restock` (default true) decided now.
pub fn receive_return(
    conn: &mut DbConn,
    provider: &dyn PaymentProvider,
    user: &Principal,
    order_id: i64,
    return_id: i64,
    input: &ReturnDecision,
) -> Result<ReturnView, ApiError> {
    let note = input
        .note
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty());
    let (ret, planned) = write_transaction(conn, |tx| {
        visible_order(tx, user, order_id)?;
        let order = lock_order(tx, order_id)?;
        let ret = open_request(tx, order_id, return_id)?;
        check_returnable(&order, user)?;
        let lines: Vec<ReturnLineRow> = return_lines::table
            .filter(return_lines::return_id.eq(ret.id))
            .select(ReturnLineRow::as_select())
            .load(tx.conn())?;
        let restock = input.restock.unwrap_or(true);
        receive_in_transaction(tx, &order, &ret, &lines, restock, user, note)
    })?;
    refunds::carry_out_planned(conn, provider, &planned);
    view(conn, ret)
}

/// Staff turn down a customer's requested return: nothing moves, no refund.
pub fn reject_return(
    conn: &mut DbConn,
    user: &Principal,
    order_id: i64,
    return_id: i64,
    input: &ReturnRejection,
) -> Result<ReturnView, ApiError> {
    let note = input
        .note
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty());
    let ret = write_transaction(conn, |tx| {
        visible_order(tx, user, order_id)?;
        lock_order(tx, order_id)?;
        let ret = open_request(tx, order_id, return_id)?;
        Ok::<_, ApiError>(
            diesel::update(returns::table.find(ret.id))
                .set((
                    returns::status.eq(ReturnStatus::Rejected.as_str()),
                    returns::decided_by.eq(Some(user.user_id)),
                    returns::decision_note.eq(note),
                    returns::decided_at.eq(Some(now())),
                ))
                .returning(returns::all_columns)
                .get_result::<ReturnRow>(tx.conn())?,
        )
    })?;
    view(conn, ret)
}

/// An order's returns, oldest first (same visibility as the order).
pub fn list_returns(
    conn: &mut DbConn,
    user: &Principal,
    order_id: i64,
) -> Result<Vec<ReturnView>, ApiError> {
    visible_order(conn, user, order_id)?;
    let rows: Vec<ReturnRow> = returns::table
        .filter(returns::order_id.eq(order_id))
        .order(returns::id)
        .select(ReturnRow::as_select())
        .load(conn)?;
    rows.into_iter().map(|r| view(conn, r)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for s in [
            ReturnStatus::Requested,
            ReturnStatus::Received,
            ReturnStatus::Rejected,
        ] {
            assert_eq!(ReturnStatus::parse(s.as_str()), Some(s));
        }
    }
}
