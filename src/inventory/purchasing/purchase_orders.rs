//! Purchase order rules: drafting (lines, totals), the status changes of the state machine in
//! [`model::next`], and receiving — the one place where a purchase order turns into stock.
//!
//! Every status change is a conditional update on the status that was read, so of concurrent
//! attempts exactly one wins. A receipt first takes the order's row (the same kind of conditional
//! update), so receipts of one order run one after another on either backend; each line's
//! `received_quantity` then grows by a conditional update that can never pass the ordered
//! quantity unless the receipt allows an over-receipt.

use crate::catalog::model::BookStatus;
use crate::db::schema::{books, purchase_order_lines, purchase_orders, stock_levels};
use crate::db::schema::{stock_receipts, suppliers};
use crate::db::{now, write_transaction, DbConn};
use crate::error::{ApiError, FieldError};
use crate::http::{Page, PageParams};
use crate::inventory::model::{
    MovementKind, ReceiptLineView, ReceiptView, StockLevelRow, StockLevelView,
};
use crate::inventory::purchasing::model::{self as model, *};
use crate::inventory::service as inventory;
use crate::inventory::stock::{self, Movement};
use crate::webhooks::outbox::{self, EventType};
use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;
use std::collections::{HashMap, HashSet};

fn not_found(id: i64) -> ApiError {
    ApiError::NotFound(format!("no purchase order with id {id}"))
}

fn stale(current: i32) -> ApiError {
    ApiError::PreconditionFailed(format!(
        "the purchase order has changed since you read it (current version {current}); fetch it \
         again"
    ))
}

/// Trims; an empty string becomes `None`.
fn clean(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn order_row(conn: &mut DbConn, id: i64) -> Result<PurchaseOrderRow, ApiError> {
    purchase_orders::table
        .find(id)
        .select(PurchaseOrderRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| not_found(id))
}

// ---------------------------------------------------------------------------------------------
// Views
// ---------------------------------------------------------------------------------------------

/// The views of `rows`, in their order: lines, receipts and supplier names in three queries.
fn views(
    conn: &mut DbConn,
    rows: Vec<PurchaseOrderRow>,
) -> Result<Vec<PurchaseOrderView>, ApiError> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let supplier_ids: Vec<i64> = rows.iter().map(|r| r.supplier_id).collect();
    let mut lines: HashMap<i64, Vec<PurchaseOrderLineView>> = HashMap::new();
    let line_rows: Vec<(PurchaseOrderLineRow, String, String)> = purchase_order_lines::table
        .inner_join(books::table)
        .filter(purchase_order_lines::purchase_order_id.eq_any(&ids))
        .order(purchase_order_lines::id)
        .select((PurchaseOrderLineRow::as_select(), books::title, books::isbn))
        .load(conn)?;
    for (line, title, isbn) in line_rows {
        lines
            .entry(line.purchase_order_id)
            .or_default()
            .push(PurchaseOrderLineView {
                book_id: line.book_id,
                title,
                isbn,
                quantity: line.quantity,
                received_quantity: line.received_quantity,
                outstanding: (line.quantity - line.received_quantity).max(0),
                unit_cost_cents: line.unit_cost_cents,
                line_total_cents: line.quantity * line.unit_cost_cents,
            });
    }
    let mut receipts: HashMap<i64, Vec<PurchaseOrderReceiptRef>> = HashMap::new();
    let receipt_rows: Vec<ReceiptRefRow> = stock_receipts::table
        .filter(stock_receipts::purchase_order_id.eq_any(&ids))
        .order(stock_receipts::id)
        .select(ReceiptRefRow::as_select())
        .load(conn)?;
    for r in receipt_rows {
        if let Some(order_id) = r.purchase_order_id {
            receipts
                .entry(order_id)
                .or_default()
                .push(PurchaseOrderReceiptRef {
                    id: r.id,
                    note: r.note,
                    user_id: r.user_id,
                    created_at: crate::catalog::model::utc(r.created_at),
                });
        }
    }
    let names: HashMap<i64, String> = suppliers::table
        .filter(suppliers::id.eq_any(&supplier_ids))
        .select((suppliers::id, suppliers::name))
        .load::<(i64, String)>(conn)?
        .into_iter()
        .collect();
    rows.into_iter()
        .map(|row| {
            let name = names.get(&row.supplier_id).cloned().unwrap_or_default();
            let l = lines.remove(&row.id).unwrap_or_default();
            let r = receipts.remove(&row.id).unwrap_or_default();
            PurchaseOrderView::new(row, name, l, r)
        })
        .collect()
}

fn view(conn: &mut DbConn, row: PurchaseOrderRow) -> Result<PurchaseOrderView, ApiError> {
    views(conn, vec![row])?
        .pop()
        .ok_or_else(|| ApiError::internal("a purchase order view went missing"))
}

pub fn get_purchase_order(conn: &mut DbConn, id: i64) -> Result<PurchaseOrderView, ApiError> {
    let row = order_row(conn, id)?;
    view(conn, row)
}

/// Purchase orders matching the filters, newest first.
pub fn list_purchase_orders(
    conn: &mut DbConn,
    query: &PurchaseOrderQuery,
) -> Result<Page<PurchaseOrderView>, ApiError> {
    let (page, per_page) = PageParams {
        page: query.page,
        per_page: query.per_page,
    }
    .resolve()?;
    let status = query.status;
    let supplier_id = query.supplier_id;
    let book_id = query.book_id;
    let filtered = || {
        let mut q = purchase_orders::table.into_boxed();
        if let Some(s) = supplier_id {
            q = q.filter(purchase_orders::supplier_id.eq(s));
        }
        if let Some(s) = status {
            q = q.filter(purchase_orders::status.eq(s.as_str()));
        }
        if let Some(b) = book_id {
            q = q.filter(
                purchase_orders::id.eq_any(
                    purchase_order_lines::table
                        .filter(purchase_order_lines::book_id.eq(b))
                        .select(purchase_order_lines::purchase_order_id),
                ),
            );
        }
        q
    };
    let total: i64 = filtered().count().get_result(conn)?;
    let rows: Vec<PurchaseOrderRow> = filtered()
        .order((
            purchase_orders::created_at.desc(),
            purchase_orders::id.desc(),
        ))
        .limit(per_page)
        .offset(Page::<PurchaseOrderView>::offset(page, per_page))
        .select(PurchaseOrderRow::as_select())
        .load(conn)?;
    Ok(Page {
        items: views(conn, rows)?,
        page,
        per_page,
        total,
    })
}

// ---------------------------------------------------------------------------------------------
// Drafting
// ---------------------------------------------------------------------------------------------

/// Checks what the validator cannot (each book once, every book known and not archived) and
/// returns the order's total. Every problem is reported, each naming its line.
fn check_lines(conn: &mut DbConn, lines: &[PurchaseOrderLineInput]) -> Result<i64, ApiError> {
    let mut errors = Vec::new();
    let mut seen = HashSet::new();
    for (i, line) in lines.iter().enumerate() {
        if !seen.insert(line.book_id) {
            errors.push(FieldError::new(
                format!("lines[{i}].book_id"),
                format!("book {} is already on another line", line.book_id),
            ));
        }
    }
    let ids: Vec<i64> = lines.iter().map(|l| l.book_id).collect();
    let found: HashMap<i64, String> = books::table
        .filter(books::id.eq_any(&ids))
        .select((books::id, books::status))
        .load::<(i64, String)>(conn)?
        .into_iter()
        .collect();
    for (i, line) in lines.iter().enumerate() {
        match found.get(&line.book_id).map(String::as_str) {
            None => errors.push(FieldError::new(
                format!("lines[{i}].book_id"),
                format!("no book with id {}", line.book_id),
            )),
            Some(status) if status == BookStatus::Archived.as_str() => {
                errors.push(FieldError::new(
                    format!("lines[{i}].book_id"),
                    format!("book {} is archived", line.book_id),
                ))
            }
            Some(_) => {}
        }
    }
    if !errors.is_empty() {
        errors.sort_by(|a, b| a.field.cmp(&b.field));
        return Err(ApiError::Validation(errors));
    }
    // Bounded by the line limits (500 × 100000 × 10^8 < 2^63), checked all the same.
    lines
        .iter()
        .try_fold(0i64, |total, l| {
            l.quantity
                .checked_mul(l.unit_cost_cents)
                .and_then(|line_total| total.checked_add(line_total))
        })
        .ok_or_else(|| ApiError::invalid("lines", "the order's total is out of range"))
}

/// Writes the lines of order `id` in their given order (one statement).
fn insert_lines(
    conn: &mut DbConn,
    id: i64,
    lines: &[PurchaseOrderLineInput],
) -> Result<(), ApiError> {
    let rows: Vec<_> = lines
        .iter()
        .map(|l| {
            (
                purchase_order_lines::purchase_order_id.eq(id),
                purchase_order_lines::book_id.eq(l.book_id),
                purchase_order_lines::quantity.eq(l.quantity),
                purchase_order_lines::received_quantity.eq(0i64),
                purchase_order_lines::unit_cost_cents.eq(l.unit_cost_cents),
            )
        })
        .collect();
    // Multi-row inserts are not available on the multi-backend connection.
    crate::per_backend!(conn, |c| diesel::insert_into(purchase_order_lines::table)
        .values(&rows)
        .execute(c))?;
    Ok(())
}

/// Drafts a purchase order with an active supplier. Without `expected_on`, the delivery is
/// expected today (UTC) plus the supplier's lead time.
pub fn create_purchase_order(
    conn: &mut DbConn,
    input: &NewPurchaseOrder,
    user_id: i64,
    currency: &str,
) -> Result<PurchaseOrderView, ApiError> {
    let note = clean(input.note.as_deref());
    write_transaction(conn, |tx| {
        // A conditional write that changes nothing: it fails for an archived supplier and takes
        // the supplier's row, so that a concurrent DELETE /suppliers/{id} waits for this order
        // and archives the supplier instead of deleting it.
        let supplier: Option<(Option<NaiveDateTime>, i32)> =
            diesel::update(suppliers::table.find(input.supplier_id))
                .set(suppliers::version.eq(suppliers::version))
                .returning((suppliers::archived_at, suppliers::lead_time_days))
                .get_result(tx.conn())
                .optional()?;
        let lead_time_days = match supplier {
            None => {
                return Err(ApiError::invalid(
                    "supplier_id",
                    format!("no supplier with id {}", input.supplier_id),
                ))
            }
            Some((Some(_), _)) => {
                return Err(ApiError::invalid(
                    "supplier_id",
                    format!(
                        "supplier {} is archived and takes no new purchase orders",
                        input.supplier_id
                    ),
                ))
            }
            Some((None, days)) => days,
        };
        let total = check_lines(tx, &input.lines)?;
        let expected_on = match input.expected_on {
            Some(date) => Some(date),
            None => Utc::now().date_naive().checked_add_days(chrono::Days::new(
                u64::try_from(lead_time_days).unwrap_or(0),
            )),
        };
        let at = now();
        let row: PurchaseOrderRow = diesel::insert_into(purchase_orders::table)
            .values((
                purchase_orders::supplier_id.eq(input.supplier_id),
                purchase_orders::status.eq(PurchaseOrderStatus::Draft.as_str()),
                purchase_orders::currency.eq(currency),
                purchase_orders::expected_on.eq(expected_on),
                purchase_orders::note.eq(&note),
                purchase_orders::total_cents.eq(total),
                purchase_orders::version.eq(1),
                purchase_orders::created_by.eq(user_id),
                purchase_orders::created_at.eq(at),
                purchase_orders::updated_at.eq(at),
            ))
            .returning(purchase_orders::all_columns)
            .get_result(tx.conn())?;
        insert_lines(tx, row.id, &input.lines)?;
        view(tx, row)
    })
}

/// Changes a draft: its expected date, note and/or lines (all replaced). Refused with the state
/// machine's 409 once the order is no longer a draft, and with 412 if it is no longer at
/// `expected_version` (`None` accepts any: `If-Match: *`).
pub fn update_purchase_order(
    conn: &mut DbConn,
    id: i64,
    expected_version: Option<i32>,
    patch: &PurchaseOrderPatch,
) -> Result<PurchaseOrderView, ApiError> {
    patch.check_note()?;
    write_transaction(conn, |tx| {
        let current = order_row(tx, id)?;
        let status = current.status()?;
        model::next(status, PurchaseOrderAction::Edit, false)?;
        let expected = expected_version.unwrap_or(current.version);
        if current.version != expected {
            return Err(stale(current.version));
        }
        let total = match &patch.lines {
            Some(lines) => check_lines(tx, lines)?,
            None => current.total_cents,
        };
        let expected_on = patch.expected_on.unwrap_or(current.expected_on);
        let note = match &patch.note {
            Some(note) => clean(note.as_deref()),
            None => current.note.clone(),
        };
        let updated: Option<PurchaseOrderRow> = diesel::update(
            purchase_orders::table
                .filter(purchase_orders::id.eq(id))
                .filter(purchase_orders::version.eq(expected))
                .filter(purchase_orders::status.eq(status.as_str())),
        )
        .set((
            purchase_orders::expected_on.eq(expected_on),
            purchase_orders::note.eq(&note),
            purchase_orders::total_cents.eq(total),
            purchase_orders::version.eq(expected + 1),
            purchase_orders::updated_at.eq(now()),
        ))
        .returning(purchase_orders::all_columns)
        .get_result(tx.conn())
        .optional()?;
        let Some(updated) = updated else {
            // Changed meanwhile (PostgreSQL): answer for what it is now.
            let now_row = order_row(tx, id)?;
            model::next(now_row.status()?, PurchaseOrderAction::Edit, false)?;
            return Err(stale(now_row.version));
        };
        if let Some(lines) = &patch.lines {
            diesel::delete(
                purchase_order_lines::table.filter(purchase_order_lines::purchase_order_id.eq(id)),
            )
            .execute(tx.conn())?;
            insert_lines(tx, id, lines)?;
        }
        view(tx, updated)
    })
}

/// Moves order `row` to `to` with a conditional update on the status read, so that of
/// concurrent attempts exactly one wins; a loser gets the state machine's 409 for the status it
/// now finds. Stamps the time column of the new status and bumps the version.
fn move_to(
    conn: &mut DbConn,
    row: &PurchaseOrderRow,
    action: PurchaseOrderAction,
    to: PurchaseOrderStatus,
    at: NaiveDateTime,
) -> Result<PurchaseOrderRow, ApiError> {
    use PurchaseOrderStatus as S;
    let from = row.status()?;
    let stamp = |s: S, current: Option<NaiveDateTime>| if to == s { Some(at) } else { current };
    let updated: Option<PurchaseOrderRow> = diesel::update(
        purchase_orders::table
            .filter(purchase_orders::id.eq(row.id))
            .filter(purchase_orders::status.eq(from.as_str())),
    )
    .set((
        purchase_orders::status.eq(to.as_str()),
        purchase_orders::version.eq(purchase_orders::version + 1),
        purchase_orders::updated_at.eq(at),
        purchase_orders::submitted_at.eq(stamp(S::Submitted, row.submitted_at)),
        purchase_orders::received_at.eq(stamp(S::Received, row.received_at)),
        purchase_orders::cancelled_at.eq(stamp(S::Cancelled, row.cancelled_at)),
    ))
    .returning(purchase_orders::all_columns)
    .get_result(conn)
    .optional()?;
    match updated {
        Some(updated) => Ok(updated),
        None => {
            let current = order_row(conn, row.id)?;
            Err(match model::next(current.status()?, action, false) {
                Err(illegal) => illegal,
                Ok(_) => ApiError::Conflict("the purchase order changed meanwhile; retry".into()),
            })
        }
    }
}

/// `draft → submitted` (submit) or `draft|submitted → cancelled` (cancel).
fn change_status(
    conn: &mut DbConn,
    id: i64,
    action: PurchaseOrderAction,
) -> Result<PurchaseOrderView, ApiError> {
    write_transaction(conn, |tx| {
        let row = order_row(tx, id)?;
        let to = model::next(row.status()?, action, false)?;
        let updated = move_to(tx, &row, action, to, now())?;
        view(tx, updated)
    })
}

/// Sends a draft to the supplier: from now on its quantities count as `on_order`.
pub fn submit(conn: &mut DbConn, id: i64) -> Result<PurchaseOrderView, ApiError> {
    change_status(conn, id, PurchaseOrderAction::Submit)
}

/// Cancels a draft, or a submitted order before anything was received.
pub fn cancel(conn: &mut DbConn, id: i64) -> Result<PurchaseOrderView, ApiError> {
    change_status(conn, id, PurchaseOrderAction::Cancel)
}

// ---------------------------------------------------------------------------------------------
// Receiving
// ---------------------------------------------------------------------------------------------

/// The stock levels of `ids`, in that order (with `on_order` as it now stands).
fn levels_of(conn: &mut DbConn, ids: &[i64]) -> Result<Vec<StockLevelView>, ApiError> {
    let rows: Vec<(StockLevelRow, String, String)> = stock_levels::table
        .inner_join(books::table)
        .filter(stock_levels::book_id.eq_any(ids))
        .select((StockLevelRow::as_select(), books::title, books::isbn))
        .load(conn)?;
    let mut on_order = inventory::on_order(conn, ids)?;
    let mut by_id: HashMap<i64, StockLevelView> = rows
        .into_iter()
        .map(|(row, title, isbn)| {
            let mut level = StockLevelView::new(row, title, isbn);
            level.on_order = on_order.remove(&level.book_id).unwrap_or(0);
            (level.book_id, level)
        })
        .collect();
    ids.iter()
        .map(|id| {
            by_id
                .remove(id)
                .ok_or_else(|| ApiError::internal(format!("book {id} has no stock level")))
        })
        .collect()
}

/// Receives copies against a submitted or partially received order, all in one transaction:
/// each line's `received_quantity` grows by a conditional update that never passes the ordered
/// quantity (unless `allow_over_receipt`); a `stock_receipts` row names the order; each line
/// becomes a costed `receipt` movement (in book-id order, like every stock writer, so none
/// deadlock), which also moves the book's average cost; the order becomes `received` when every
/// line has arrived in full, `partially_received` otherwise; and `purchase_order.received` goes
/// to the outbox. A line asking for more than is outstanding is a 409 naming it, and nothing at
/// all is written. `after` runs inside the transaction with the answer (the idempotency record
/// is stored there).
pub fn receive(
    conn: &mut DbConn,
    id: i64,
    input: &ReceivePurchaseOrder,
    user_id: i64,
    currency: &str,
    after: impl FnOnce(&mut DbConn, &PurchaseOrderReceiptView) -> Result<(), ApiError>,
) -> Result<PurchaseOrderReceiptView, ApiError> {
    let mut errors = Vec::new();
    let mut seen = HashSet::new();
    for (i, line) in input.lines.iter().enumerate() {
        if !seen.insert(line.book_id) {
            errors.push(FieldError::new(
                format!("lines[{i}].book_id"),
                format!("book {} is already on another line", line.book_id),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let note = clean(input.note.as_deref());
    write_transaction(conn, |tx| {
        let at = now();
        let row = claim_for_receipt(tx, id, at)?;
        let ordered: HashMap<i64, PurchaseOrderLineRow> = purchase_order_lines::table
            .filter(purchase_order_lines::purchase_order_id.eq(id))
            .select(PurchaseOrderLineRow::as_select())
            .load(tx.conn())?
            .into_iter()
            .map(|l| (l.book_id, l))
            .collect();
        check_receipt(id, &ordered, input)?;
        let mut by_book: Vec<usize> = (0..input.lines.len()).collect();
        by_book.sort_by_key(|&i| input.lines[i].book_id);
        for &i in &by_book {
            add_received(tx, id, i, &input.lines[i], input.allow_over_receipt)?;
        }

        let supplier_name: String = suppliers::table
            .find(row.supplier_id)
            .select(suppliers::name)
            .first(tx.conn())?;
        let receipt_id: i64 = diesel::insert_into(stock_receipts::table)
            .values((
                stock_receipts::supplier.eq(&supplier_name),
                stock_receipts::note.eq(&note),
                stock_receipts::user_id.eq(user_id),
                stock_receipts::created_at.eq(at),
                stock_receipts::purchase_order_id.eq(id),
            ))
            .returning(stock_receipts::id)
            .get_result(tx.conn())?;
        let reference = format!("receipt:{receipt_id}");
        let costs = input
            .lines
            .iter()
            .map(|line| {
                ordered
                    .get(&line.book_id)
                    .map(|l| l.unit_cost_cents)
                    .ok_or_else(|| ApiError::internal("a received line left the order"))
            })
            .collect::<Result<Vec<i64>, ApiError>>()?;
        let movements: Vec<Movement<'_>> = input
            .lines
            .iter()
            .zip(&costs)
            .map(|(line, &cost)| Movement {
                book_id: line.book_id,
                quantity: line.quantity,
                kind: MovementKind::Receipt,
                reference: Some(&reference),
                reason: None,
                note: note.as_deref(),
                unit_cost_cents: Some(cost),
                user_id: Some(user_id),
                at,
            })
            .collect();
        let receipt_lines: Vec<ReceiptLineView> = stock::apply_movements(tx, &movements)?
            .into_iter()
            .zip(input.lines.iter().zip(costs))
            .map(|((_, movement), (line, cost))| ReceiptLineView {
                movement_id: movement.id,
                book_id: line.book_id,
                quantity: line.quantity,
                unit_cost_cents: cost,
            })
            .collect();

        let incomplete: i64 = purchase_order_lines::table
            .filter(purchase_order_lines::purchase_order_id.eq(id))
            .filter(purchase_order_lines::received_quantity.lt(purchase_order_lines::quantity))
            .count()
            .get_result(tx.conn())?;
        let to = model::next(row.status()?, PurchaseOrderAction::Receive, incomplete == 0)?;
        let updated = move_to(tx, &row, PurchaseOrderAction::Receive, to, at)?;

        outbox::emit(
            tx,
            EventType::PurchaseOrderReceived,
            serde_json::json!({
                "purchase_order_id": id,
                "supplier_id": row.supplier_id,
                "receipt_id": receipt_id,
                "status": to.as_str(),
                "lines": receipt_lines.iter().map(|l| serde_json::json!({
                    "book_id": l.book_id,
                    "quantity": l.quantity,
                    "unit_cost_cents": l.unit_cost_cents,
                })).collect::<Vec<_>>(),
            }),
        )?;

        let book_ids: Vec<i64> = receipt_lines.iter().map(|l| l.book_id).collect();
        let levels = levels_of(tx, &book_ids)?;
        // Bounded by the line limits: 500 × 100000 × 10^8 < 2^63.
        let total_cost_cents = receipt_lines
            .iter()
            .map(|l| l.quantity * l.unit_cost_cents)
            .sum();
        let answer = PurchaseOrderReceiptView {
            receipt: ReceiptView {
                id: receipt_id,
                supplier: Some(supplier_name),
                note,
                user_id: Some(user_id),
                total_cost_cents,
                currency: currency.to_owned(),
                lines: receipt_lines,
                levels,
                created_at: crate::catalog::model::utc(at),
            },
            purchase_order: view(tx, updated)?,
        };
        after(tx, &answer)?;
        Ok(answer)
    })
}

fn over_receipt(lines: &[String]) -> ApiError {
    ApiError::Conflict(format!(
        "more copies than are outstanding, so nothing was received: {}; send \
         allow_over_receipt: true to keep the extra copies",
        lines.join("; ")
    ))
}

/// Takes the row of order `id` if it can take a receipt (a conditional write that changes only
/// `updated_at`): receipts of one order then run one after another, each seeing the lines as the
/// previous one left them. Otherwise the state machine's 409 (or 404).
fn claim_for_receipt(
    conn: &mut DbConn,
    id: i64,
    at: NaiveDateTime,
) -> Result<PurchaseOrderRow, ApiError> {
    let claimed: Option<PurchaseOrderRow> = diesel::update(
        purchase_orders::table
            .filter(purchase_orders::id.eq(id))
            .filter(purchase_orders::status.eq_any([
                PurchaseOrderStatus::Submitted.as_str(),
                PurchaseOrderStatus::PartiallyReceived.as_str(),
            ])),
    )
    .set(purchase_orders::updated_at.eq(at))
    .returning(purchase_orders::all_columns)
    .get_result(conn)
    .optional()?;
    match claimed {
        Some(row) => Ok(row),
        None => {
            let current = order_row(conn, id)?;
            model::next(current.status()?, PurchaseOrderAction::Receive, false)?;
            Err(ApiError::Conflict(
                "the purchase order changed meanwhile; retry".into(),
            ))
        }
    }
}

/// Checks a receipt against the order's lines (by book): every book must be on the order (422),
/// and without `allow_over_receipt` no line may exceed its outstanding quantity (409 naming
/// every such line).
fn check_receipt(
    id: i64,
    ordered: &HashMap<i64, PurchaseOrderLineRow>,
    input: &ReceivePurchaseOrder,
) -> Result<(), ApiError> {
    let mut unknown = Vec::new();
    let mut over = Vec::new();
    for (i, line) in input.lines.iter().enumerate() {
        match ordered.get(&line.book_id) {
            None => unknown.push(FieldError::new(
                format!("lines[{i}].book_id"),
                format!("book {} is not on purchase order {id}", line.book_id),
            )),
            Some(l) if !input.allow_over_receipt => {
                if line.quantity > (l.quantity - l.received_quantity).max(0) {
                    over.push(over_line(i, line, l.quantity, l.received_quantity));
                }
            }
            Some(_) => {}
        }
    }
    if !unknown.is_empty() {
        return Err(ApiError::Validation(unknown));
    }
    if !over.is_empty() {
        return Err(over_receipt(&over));
    }
    Ok(())
}

/// Adds line `i` of a receipt to the order's line for its book: `received_quantity += q` on
/// condition that it stays within the ordered quantity (no condition for an over-receipt). When
/// the condition fails, the 409 names the line; the caller's transaction then rolls back every
/// line already added.
fn add_received(
    conn: &mut DbConn,
    id: i64,
    i: usize,
    line: &ReceiveLineInput,
    allow_over_receipt: bool,
) -> Result<(), ApiError> {
    let q = line.quantity;
    let line_row = purchase_order_lines::table
        .filter(purchase_order_lines::purchase_order_id.eq(id))
        .filter(purchase_order_lines::book_id.eq(line.book_id));
    let add =
        purchase_order_lines::received_quantity.eq(purchase_order_lines::received_quantity + q);
    let updated = if allow_over_receipt {
        diesel::update(line_row).set(add).execute(conn)?
    } else {
        diesel::update(line_row.filter(
            (purchase_order_lines::received_quantity + q).le(purchase_order_lines::quantity),
        ))
        .set(add)
        .execute(conn)?
    };
    if updated == 1 {
        return Ok(());
    }
    // [`check_receipt`] has refused this already while the order's row is held; this is the
    // rule's last guard.
    let (quantity, received): (i64, i64) = line_row
        .select((
            purchase_order_lines::quantity,
            purchase_order_lines::received_quantity,
        ))
        .first(conn)?;
    Err(over_receipt(&[over_line(i, line, quantity, received)]))
}

fn over_line(i: usize, line: &ReceiveLineInput, quantity: i64, received: i64) -> String {
    format!(
        "lines[{i}] (book {}): {} copies received but only {} outstanding (ordered {quantity}, \
         received so far {received})",
        line.book_id,
        line.quantity,
        (quantity - received).max(0)
    )
}
