//! Inventory rules: receipts, adjustments, reorder settings and the listings of levels and
//! movements. Every stock change goes through [`stock::apply_movement`].

use crate::catalog::authors::escape_like;
use crate::catalog::isbn::Isbn;
use crate::db::schema::{
    books, purchase_order_lines, purchase_orders, stock_levels, stock_movements, stock_receipts,
};
use crate::db::{now, write_transaction, DbConn};
use crate::error::{ApiError, FieldError};
use crate::http::{Page, PageParams};
use crate::idempotency::StoreResult;
use crate::inventory::alerts;
use crate::inventory::model::*;
use crate::inventory::stock::{self, Movement};
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};
use std::collections::{HashMap, HashSet};

/// Trims; an empty string becomes `None`.
fn clean(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn not_found(book_id: i64) -> ApiError {
    ApiError::NotFound(format!("no book with id {book_id}"))
}

/// The views of the levels of `ids`, by book id.
fn load_levels(conn: &mut DbConn, ids: &[i64]) -> Result<HashMap<i64, StockLevelView>, ApiError> {
    let rows: Vec<(StockLevelRow, String, String)> = stock_levels::table
        .inner_join(books::table)
        .filter(stock_levels::book_id.eq_any(ids))
        .select((StockLevelRow::as_select(), books::title, books::isbn))
        .load(conn)?;
    let mut on_order = on_order(conn, ids)?;
    Ok(rows
        .into_iter()
        .map(|(row, title, isbn)| {
            let mut view = StockLevelView::new(row, title, isbn);
            view.on_order = on_order.remove(&view.book_id).unwrap_or(0);
            (view.book_id, view)
        })
        .collect())
}

/// Copies of each of `ids` still expected from suppliers: what submitted and partially received
/// purchase orders ordered and have not received (an over-received line counts as zero).
pub fn on_order(conn: &mut DbConn, ids: &[i64]) -> Result<HashMap<i64, i64>, ApiError> {
    let lines: Vec<(i64, i64, i64)> = purchase_order_lines::table
        .inner_join(purchase_orders::table)
        .filter(purchase_order_lines::book_id.eq_any(ids))
        .filter(purchase_orders::status.eq_any(["submitted", "partially_received"]))
        .select((
            purchase_order_lines::book_id,
            purchase_order_lines::quantity,
            purchase_order_lines::received_quantity,
        ))
        .load(conn)?;
    let mut out = HashMap::new();
    for (book_id, quantity, received) in lines {
        *out.entry(book_id).or_insert(0) += (quantity - received).max(0);
    }
    Ok(out)
}

pub fn get_level(conn: &mut DbConn, book_id: i64) -> Result<StockLevelView, ApiError> {
    load_levels(conn, &[book_id])?
        .remove(&book_id)
        .ok_or_else(|| not_found(book_id))
}

/// Records a delivery: one `receipt` movement per line, referencing `receipt:<id>`, all in one
/// transaction. Lines name each book once; a line naming an unknown book is a 422.
pub fn create_receipt(
    conn: &mut DbConn,
    input: &NewReceipt,
    user_id: i64,
    currency: &str,
    after: &mut StoreResult<'_, ReceiptView>,
) -> Result<ReceiptView, ApiError> {
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
    let supplier = clean(input.supplier.as_deref());
    let note = clean(input.note.as_deref());
    let book_ids: Vec<i64> = input.lines.iter().map(|l| l.book_id).collect();
    let at = now();
    write_transaction(conn, |tx| {
        let known: HashSet<i64> = books::table
            .filter(books::id.eq_any(&book_ids))
            .select(books::id)
            .load::<i64>(tx.conn())?
            .into_iter()
            .collect();
        let unknown: Vec<FieldError> = book_ids
            .iter()
            .enumerate()
            .filter(|(_, id)| !known.contains(id))
            .map(|(i, id)| {
                FieldError::new(
                    format!("lines[{i}].book_id"),
                    format!("no book with id {id}"),
                )
            })
            .collect();
        if !unknown.is_empty() {
            return Err(ApiError::Validation(unknown));
        }
        let id: i64 = diesel::insert_into(stock_receipts::table)
            .values((
                stock_receipts::supplier.eq(&supplier),
                stock_receipts::note.eq(&note),
                stock_receipts::user_id.eq(user_id),
                stock_receipts::created_at.eq(at),
            ))
            .returning(stock_receipts::id)
            .get_result(tx.conn())?;
        let reference = format!("receipt:{id}");
        // Rows are locked in book id order, so that concurrent receipts (and, later, orders)
        // touching the same books cannot deadlock on PostgreSQL.
        let mut order: Vec<usize> = (0..input.lines.len()).collect();
        order.sort_by_key(|&i| input.lines[i].book_id);
        let mut movement_ids = vec![0; input.lines.len()];
        for i in order {
            let line = &input.lines[i];
            let (_, movement) = stock::apply_movement(
                tx,
                &Movement {
                    book_id: line.book_id,
                    quantity: line.quantity,
                    kind: MovementKind::Receipt,
                    reference: Some(&reference),
                    reason: None,
                    note: None,
                    unit_cost_cents: Some(line.unit_cost_cents),
                    user_id: Some(user_id),
                    at,
                },
            )?;
            movement_ids[i] = movement.id;
        }
        let mut levels = load_levels(tx, &book_ids)?;
        let levels = book_ids
            .iter()
            .map(|id| levels.remove(id).ok_or_else(|| not_found(*id)))
            .collect::<Result<Vec<_>, _>>()?;
        let lines: Vec<ReceiptLineView> = input
            .lines
            .iter()
            .zip(movement_ids)
            .map(|(line, movement_id)| ReceiptLineView {
                movement_id,
                book_id: line.book_id,
                quantity: line.quantity,
                unit_cost_cents: line.unit_cost_cents,
            })
            .collect();
        // Bounded by the line limits: 500 × 100000 × 10^8 < 2^63.
        let total_cost_cents = lines.iter().map(|l| l.quantity * l.unit_cost_cents).sum();
        let receipt = ReceiptView {
            id,
            supplier,
            note,
            user_id: Some(user_id),
            total_cost_cents,
            currency: currency.to_owned(),
            lines,
            levels,
            created_at: crate::catalog::model::utc(at),
        };
        after(tx, &receipt)?;
        Ok(receipt)
    })
}

/// Checks what the validator cannot: a non-zero quantity whose sign fits the reason.
fn check_adjustment(input: &NewAdjustment) -> Result<(), ApiError> {
    let message = match (input.reason, input.quantity) {
        (_, 0) => Some("must not be zero"),
        (AdjustmentReason::Damaged | AdjustmentReason::Lost, q) if q > 0 => {
            Some("must be negative for damaged or lost stock")
        }
        (AdjustmentReason::Found, q) if q < 0 => Some("must be positive for found stock"),
        _ => None,
    };
    match message {
        Some(m) => Err(ApiError::invalid("quantity", m)),
        None => Ok(()),
    }
}

/// Corrects a book's stock by hand. Never takes `on_hand` below `reserved` (409, nothing written).
pub fn create_adjustment(
    conn: &mut DbConn,
    input: &NewAdjustment,
    user_id: i64,
) -> Result<AdjustmentView, ApiError> {
    check_adjustment(input)?;
    let note = clean(input.note.as_deref());
    write_transaction(conn, |tx| {
        let exists = books::table
            .find(input.book_id)
            .select(books::id)
            .first::<i64>(tx.conn())
            .optional()?
            .is_some();
        if !exists {
            return Err(ApiError::invalid(
                "book_id",
                format!("no book with id {}", input.book_id),
            ));
        }
        let (_, movement) = stock::apply_movement(
            tx,
            &Movement {
                book_id: input.book_id,
                quantity: input.quantity,
                kind: MovementKind::Adjustment,
                reference: None,
                reason: Some(input.reason.as_str()),
                note: note.as_deref(),
                unit_cost_cents: None,
                user_id: Some(user_id),
                at: now(),
            },
        )?;
        Ok(AdjustmentView {
            movement: movement.into(),
            level: get_level(tx, input.book_id)?,
        })
    })
}

/// Changes a book's reorder settings if its level is still at `expected_version` (412
/// otherwise); `None` accepts any version (`If-Match: *`).
pub fn update_level(
    conn: &mut DbConn,
    book_id: i64,
    expected_version: Option<i32>,
    patch: &LevelPatch,
) -> Result<StockLevelView, ApiError> {
    write_transaction(conn, |tx| {
        let current: StockLevelRow = stock_levels::table
            .find(book_id)
            .select(StockLevelRow::as_select())
            .first(tx.conn())
            .optional()?
            .ok_or_else(|| not_found(book_id))?;
        let expected = expected_version.unwrap_or(current.version);
        if current.version != expected {
            return Err(stale(current.version));
        }
        let updated = diesel::update(
            stock_levels::table
                .filter(stock_levels::book_id.eq(book_id))
                .filter(stock_levels::version.eq(expected)),
        )
        .set((
            stock_levels::reorder_point.eq(patch.reorder_point.unwrap_or(current.reorder_point)),
            stock_levels::reorder_quantity
                .eq(patch.reorder_quantity.unwrap_or(current.reorder_quantity)),
            stock_levels::version.eq(expected + 1),
            stock_levels::updated_at.eq(now()),
        ))
        .execute(tx.conn())?;
        if updated != 1 {
            return Err(stale(expected));
        }
        // A raised (or lowered) reorder point can open (or resolve) the low-stock alert.
        let level: StockLevelRow = stock_levels::table
            .find(book_id)
            .select(StockLevelRow::as_select())
            .first(tx.conn())?;
        alerts::evaluate(tx, &level)?;
        get_level(tx, book_id)
    })
}

fn stale(current: i32) -> ApiError {
    ApiError::PreconditionFailed(format!(
        "the stock level has changed since you read it (current version {current}); fetch it again"
    ))
}

/// What `q` of `GET /inventory` asks for.
enum LevelText {
    Isbn(String),
    /// A LIKE pattern, wildcards in the input escaped.
    Title(String),
}

/// Lists stock levels by title, with the book's title and ISBN.
pub fn list_levels(
    conn: &mut DbConn,
    query: &LevelQuery,
) -> Result<Page<StockLevelView>, ApiError> {
    let (page, per_page) = PageParams {
        page: query.page,
        per_page: query.per_page,
    }
    .resolve()?;
    let text = query
        .q
        .as_deref()
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(|q| match Isbn::parse(q) {
            Ok(isbn) => LevelText::Isbn(isbn.as_str().to_owned()),
            Err(_) => LevelText::Title(format!("%{}%", escape_like(q))),
        });
    let low_stock = query.low_stock;
    let filtered = || {
        let mut q = stock_levels::table.inner_join(books::table).into_boxed();
        match low_stock {
            Some(true) => {
                q = q.filter(
                    (stock_levels::on_hand - stock_levels::reserved)
                        .le(stock_levels::reorder_point),
                )
            }
            Some(false) => {
                q = q.filter(
                    (stock_levels::on_hand - stock_levels::reserved)
                        .gt(stock_levels::reorder_point),
                )
            }
            None => {}
        }
        match &text {
            Some(LevelText::Isbn(isbn)) => q = q.filter(books::isbn.eq(isbn.clone())),
            // Lower-cased by the database on both sides (see `authors::list_authors`).
            Some(LevelText::Title(pattern)) => {
                q = q.filter(
                    diesel::dsl::sql::<Bool>("lower(books.title) LIKE lower(")
                        .bind::<Text, _>(pattern.clone())
                        .sql(") ESCAPE '\\'"),
                )
            }
            None => {}
        }
        q
    };
    let total: i64 = filtered().count().get_result(conn)?;
    let rows: Vec<(StockLevelRow, String, String)> = filtered()
        .order((
            diesel::dsl::sql::<Text>("lower(books.title)"),
            stock_levels::book_id,
        ))
        .limit(per_page)
        .offset(Page::<StockLevelView>::offset(page, per_page))
        .select((StockLevelRow::as_select(), books::title, books::isbn))
        .load(conn)?;
    let ids: Vec<i64> = rows.iter().map(|(row, _, _)| row.book_id).collect();
    let mut on_order = on_order(conn, &ids)?;
    Ok(Page {
        items: rows
            .into_iter()
            .map(|(row, title, isbn)| {
                let mut view = StockLevelView::new(row, title, isbn);
                view.on_order = on_order.remove(&view.book_id).unwrap_or(0);
                view
            })
            .collect(),
        page,
        per_page,
        total,
    })
}

/// Lists the ledger, newest first.
pub fn list_movements(
    conn: &mut DbConn,
    query: &MovementQuery,
) -> Result<Page<MovementView>, ApiError> {
    let (page, per_page) = PageParams {
        page: query.page,
        per_page: query.per_page,
    }
    .resolve()?;
    let kind = query.kind;
    let (from, to) = crate::http::query::time_range(query.from, query.to)?;
    if let (Some((from, _)), Some((to, to_inclusive))) = (from, to) {
        if from > to || (from == to && !to_inclusive) {
            return Err(ApiError::invalid("from", "must not be after to"));
        }
    }
    let book_id = query.book_id;
    let filtered = || {
        let mut q = stock_movements::table.into_boxed();
        if let Some(book_id) = book_id {
            q = q.filter(stock_movements::book_id.eq(book_id));
        }
        if let Some(kind) = kind {
            q = q.filter(stock_movements::kind.eq(kind.as_str()));
        }
        if let Some((from, _)) = from {
            q = q.filter(stock_movements::created_at.ge(from));
        }
        match to {
            Some((to, true)) => q = q.filter(stock_movements::created_at.le(to)),
            Some((to, false)) => q = q.filter(stock_movements::created_at.lt(to)),
            None => {}
        }
        q
    };
    let total: i64 = filtered().count().get_result(conn)?;
    let rows: Vec<MovementRow> = filtered()
        .order((
            stock_movements::created_at.desc(),
            stock_movements::id.desc(),
        ))
        .limit(per_page)
        .offset(Page::<MovementView>::offset(page, per_page))
        .select(MovementRow::as_select())
        .load(conn)?;
    Ok(Page {
        items: rows.into_iter().map(MovementView::from).collect(),
        page,
        per_page,
        total,
    })
}
