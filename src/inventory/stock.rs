//! The one module of stock arithmetic. `on_hand` changes only here, and only together with the
//! ledger row that records the change, inside the caller's transaction: so `on_hand` always
//! equals the sum of the book's movements (core invariant 2), and no change ever takes it below
//! `reserved` (core invariant 1).

use crate::db::schema::{books, stock_levels, stock_movements};
use crate::db::{DbConn, MultiBackend, Placeholders, WriteTx};
use crate::error::ApiError;
use crate::inventory::alerts;
use crate::inventory::model::{MovementKind, MovementRow, StockLevelRow};
use crate::webhooks::outbox::{self, EventType};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};
use std::collections::HashMap;

/// The columns of `stock_levels` in [`StockLevelRow`]'s order, for `RETURNING`.
const LEVEL_COLUMNS: (
    stock_levels::book_id,
    stock_levels::on_hand,
    stock_levels::reserved,
    stock_levels::reorder_point,
    stock_levels::reorder_quantity,
    stock_levels::version,
    stock_levels::updated_at,
    stock_levels::avg_unit_cost_cents,
    stock_levels::alert_id,
) = (
    stock_levels::book_id,
    stock_levels::on_hand,
    stock_levels::reserved,
    stock_levels::reorder_point,
    stock_levels::reorder_quantity,
    stock_levels::version,
    stock_levels::updated_at,
    stock_levels::avg_unit_cost_cents,
    stock_levels::alert_id,
);

/// The columns of `stock_movements` in [`MovementRow`]'s order, for `RETURNING`.
const MOVEMENT_COLUMNS: (
    stock_movements::id,
    stock_movements::book_id,
    stock_movements::quantity,
    stock_movements::kind,
    stock_movements::reference,
    stock_movements::reason,
    stock_movements::note,
    stock_movements::unit_cost_cents,
    stock_movements::user_id,
    stock_movements::created_at,
) = (
    stock_movements::id,
    stock_movements::book_id,
    stock_movements::quantity,
    stock_movements::kind,
    stock_movements::reference,
    stock_movements::reason,
    stock_movements::note,
    stock_movements::unit_cost_cents,
    stock_movements::user_id,
    stock_movements::created_at,
);

/// A change to a book's `on_hand` and what the ledger records about it.
#[derive(Debug, Clone, Copy)]
pub struct Movement<'a> {
    pub book_id: i64,
    /// Signed and non-zero.
    pub quantity: i64,
    pub kind: MovementKind,
    pub reference: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub note: Option<&'a str>,
    pub unit_cost_cents: Option<i64>,
    pub user_id: Option<i64>,
    pub at: NaiveDateTime,
}

/// Creates a new book's stock level: nothing on hand, nothing reserved, the configured default
/// reorder point. No movement is written, since `on_hand` starts at the (empty) ledger's sum.
pub fn create_level(
    conn: &mut DbConn,
    book_id: i64,
    reorder_point: i64,
    at: NaiveDateTime,
) -> Result<(), ApiError> {
    diesel::insert_into(stock_levels::table)
        .values((
            stock_levels::book_id.eq(book_id),
            stock_levels::on_hand.eq(0),
            stock_levels::reserved.eq(0),
            stock_levels::reorder_point.eq(reorder_point),
            stock_levels::reorder_quantity.eq(0),
            stock_levels::version.eq(1),
            stock_levels::updated_at.eq(at),
        ))
        .execute(conn)?;
    Ok(())
}

/// Applies `m` to the book's `on_hand` and appends it to the ledger, both or neither: call it
/// inside the caller's write transaction. The update is conditional, so that
/// concurrent changes can never take `on_hand` below `reserved`: when it would, nothing is
/// written and the answer is a 409 naming the book and its current stock.
///
/// Returns the level after the change and the movement written.
pub fn apply_movement(
    tx: &mut WriteTx<'_>,
    m: &Movement<'_>,
) -> Result<(StockLevelRow, MovementRow), ApiError> {
    if m.quantity == 0 {
        return Err(ApiError::internal("a stock movement of zero"));
    }
    if let (MovementKind::Receipt, Some(cost), true) = (m.kind, m.unit_cost_cents, m.quantity > 0) {
        update_average_cost(tx, m.book_id, m.quantity, cost)?;
    }
    let level: Option<StockLevelRow> = diesel::update(
        stock_levels::table
            .filter(stock_levels::book_id.eq(m.book_id))
            .filter((stock_levels::on_hand + m.quantity).ge(stock_levels::reserved)),
    )
    .set((
        stock_levels::on_hand.eq(stock_levels::on_hand + m.quantity),
        stock_levels::version.eq(stock_levels::version + 1),
        stock_levels::updated_at.eq(m.at),
    ))
    .returning(LEVEL_COLUMNS)
    .get_result(tx.conn())
    .optional()?;
    let Some(level) = level else {
        return Err(refusal(tx, m)?);
    };
    let movement = insert_movement(tx, m)?;
    after_change(tx, &level, m.kind.as_str(), m.quantity, m.reference)?;
    Ok((level, movement))
}

/// [`apply_movement`] for many books at once, with the same rules and the same result: each
/// movement changes its book's level under the same guard (never below `reserved`), appends its
/// ledger row, folds a costed receipt into the average cost, opens or resolves the book's alert
/// and announces `inventory.stock_changed`. The statements are multi-row (an `UPDATE … FROM
/// (VALUES …) RETURNING`, a multi-row `INSERT … RETURNING`, the events in bulk), a few per
/// thousand movements instead of several per movement, which is what keeps a 10,000-line
/// stocktake or a 500-line receipt well under a second.
///
/// Each book may appear once; books are changed in ascending id order, like every stock writer.
/// If any movement would take its book below `reserved`, the answer is the same 409 as
/// [`apply_movement`]'s for the first such book, and the caller's transaction must roll back
/// (the others may already have been applied in it). Returns, in the order of `movements`, each
/// book's level after the change and the movement written.
pub fn apply_movements(
    tx: &mut WriteTx<'_>,
    movements: &[Movement<'_>],
) -> Result<Vec<(StockLevelRow, MovementRow)>, ApiError> {
    if movements.iter().any(|m| m.quantity == 0) {
        return Err(ApiError::internal("a stock movement of zero"));
    }
    let mut order: Vec<usize> = (0..movements.len()).collect();
    order.sort_by_key(|&i| movements[i].book_id);
    if order
        .windows(2)
        .any(|w| movements[w[0]].book_id == movements[w[1]].book_id)
    {
        return Err(ApiError::internal("apply_movements given a book twice"));
    }
    let mut levels: HashMap<i64, StockLevelRow> = HashMap::with_capacity(movements.len());
    let mut written: HashMap<i64, MovementRow> = HashMap::with_capacity(movements.len());
    for chunk in order.chunks(BULK_CHUNK) {
        let chunk: Vec<&Movement<'_>> = chunk.iter().map(|&i| &movements[i]).collect();
        lock_levels(tx, &chunk)?;
        let updated = update_levels(tx, &chunk)?;
        if updated.len() != chunk.len() {
            let refused = chunk
                .iter()
                .find(|m| !updated.iter().any(|l| l.book_id == m.book_id))
                .ok_or_else(|| ApiError::internal("a bulk stock update changed extra rows"))?;
            return Err(refusal(tx, refused)?);
        }
        levels.extend(updated.into_iter().map(|l| (l.book_id, l)));
        written.extend(
            insert_movements(tx, &chunk)?
                .into_iter()
                .map(|m| (m.book_id, m)),
        );
    }
    let mut results = Vec::with_capacity(movements.len());
    for m in movements {
        let (Some(level), Some(movement)) = (levels.remove(&m.book_id), written.remove(&m.book_id))
        else {
            return Err(ApiError::internal(format!(
                "the bulk stock change lost book {}",
                m.book_id
            )));
        };
        alerts::evaluate(tx, &level)?;
        results.push((level, movement));
    }
    // Built only if an endpoint wants them.
    let events = results
        .iter()
        .zip(movements)
        .map(|((level, _), m)| stock_changed(level, m.kind.as_str(), m.quantity, m.reference));
    outbox::emit_all(tx, EventType::StockChanged, events)?;
    Ok(results)
}

/// Movements per bulk statement: five binds each in the level update, nine in the ledger insert.
const BULK_CHUNK: usize = 1_000;

/// Locks the chunk's levels in book id order on PostgreSQL, where an `UPDATE … FROM` would lock
/// them in whatever order its join visits them and could deadlock with an order reserving the
/// same books. (SQLite's write transaction already excludes every other writer.)
fn lock_levels(conn: &mut DbConn, chunk: &[&Movement<'_>]) -> Result<(), ApiError> {
    if let DbConn::Pg(c) = conn {
        let ids: Vec<i64> = chunk.iter().map(|m| m.book_id).collect();
        stock_levels::table
            .filter(stock_levels::book_id.eq_any(ids))
            .order(stock_levels::book_id)
            .select(stock_levels::book_id)
            .for_update()
            .load::<i64>(c)?;
    }
    Ok(())
}

/// The level update of [`apply_movements`] for one chunk of movements in book order: `on_hand`
/// moves by each quantity where it stays at or above `reserved`, and a costed receipt folds into
/// the average cost (every expression reads the row as it was before this update, as
/// [`update_average_cost`] does). Returns the rows updated, in no particular order.
fn update_levels(
    conn: &mut DbConn,
    chunk: &[&Movement<'_>],
) -> Result<Vec<StockLevelRow>, ApiError> {
    let mut costs = Vec::with_capacity(chunk.len());
    for m in chunk {
        costs.push(match (m.kind, m.unit_cost_cents) {
            (MovementKind::Receipt, Some(cost)) if m.quantity > 0 => {
                let total = m.quantity.checked_mul(cost).ok_or_else(|| {
                    ApiError::invalid(
                        "unit_cost_cents",
                        "quantity × unit cost is too large to record",
                    )
                })?;
                (Some(cost), Some(total))
            }
            _ => (None, None),
        });
    }
    let mut binds = Placeholders::new(conn);
    let rows: Vec<String> = chunk.iter().map(|_| binds.row(5)).collect();
    // v.column1 book, v.column2 quantity, v.column3 unit cost of a costed receipt (else NULL),
    // v.column4 quantity × unit cost, v.column5 time.
    let text = format!(
        "UPDATE stock_levels SET \
           on_hand = stock_levels.on_hand + v.column2, \
           avg_unit_cost_cents = CASE \
             WHEN v.column3 IS NULL THEN stock_levels.avg_unit_cost_cents \
             WHEN stock_levels.avg_unit_cost_cents IS NULL OR stock_levels.on_hand <= 0 \
               THEN v.column3 \
             ELSE (stock_levels.on_hand * stock_levels.avg_unit_cost_cents + v.column4 \
               + (stock_levels.on_hand + v.column2) / 2) / (stock_levels.on_hand + v.column2) \
           END, \
           version = stock_levels.version + 1, \
           updated_at = v.column5 \
         FROM (VALUES {}) AS v \
         WHERE stock_levels.book_id = v.column1 \
           AND stock_levels.on_hand + v.column2 >= stock_levels.reserved \
         RETURNING book_id, on_hand, reserved, reorder_point, reorder_quantity, version, \
           updated_at, avg_unit_cost_cents, alert_id",
        rows.join(", ")
    );
    let mut query: BoxedSqlQuery<'_, MultiBackend, SqlQuery> = diesel::sql_query(text).into_boxed();
    for (m, (cost, total)) in chunk.iter().zip(costs) {
        query = query
            .bind::<BigInt, _>(m.book_id)
            .bind::<BigInt, _>(m.quantity)
            .bind::<Nullable<BigInt>, _>(cost)
            .bind::<Nullable<BigInt>, _>(total)
            .bind::<Timestamp, _>(m.at);
    }
    Ok(query.load(conn)?)
}

/// The ledger insert of [`apply_movements`] for one chunk; returns the rows written.
fn insert_movements(
    conn: &mut DbConn,
    chunk: &[&Movement<'_>],
) -> Result<Vec<MovementRow>, ApiError> {
    let mut binds = Placeholders::new(conn);
    let rows: Vec<String> = chunk.iter().map(|_| binds.row(9)).collect();
    let text = format!(
        "INSERT INTO stock_movements (book_id, quantity, kind, reference, reason, note, \
           unit_cost_cents, user_id, created_at) VALUES {} \
         RETURNING id, book_id, quantity, kind, reference, reason, note, unit_cost_cents, \
           user_id, created_at",
        rows.join(", ")
    );
    let mut query: BoxedSqlQuery<'_, MultiBackend, SqlQuery> = diesel::sql_query(text).into_boxed();
    for m in chunk {
        query = query
            .bind::<BigInt, _>(m.book_id)
            .bind::<BigInt, _>(m.quantity)
            .bind::<Text, _>(m.kind.as_str())
            .bind::<Nullable<Text>, _>(m.reference)
            .bind::<Nullable<Text>, _>(m.reason)
            .bind::<Nullable<Text>, _>(m.note)
            .bind::<Nullable<BigInt>, _>(m.unit_cost_cents)
            .bind::<Nullable<BigInt>, _>(m.user_id)
            .bind::<Timestamp, _>(m.at);
    }
    Ok(query.load(conn)?)
}

/// What follows every change to a level, in its transaction: the low-stock alert opens or
/// resolves, and `inventory.stock_changed` goes to the outbox. `cause` is the movement kind, or
/// `reservation` / `release` for changes to `reserved` alone; `quantity` is the signed change: to
/// `on_hand` for a movement, to `available` for a reservation or release.
fn after_change(
    tx: &mut WriteTx<'_>,
    level: &StockLevelRow,
    cause: &str,
    quantity: i64,
    reference: Option<&str>,
) -> Result<(), ApiError> {
    alerts::evaluate(tx, level)?;
    outbox::emit(
        tx,
        EventType::StockChanged,
        stock_changed(level, cause, quantity, reference),
    )?;
    Ok(())
}

/// The data of an `inventory.stock_changed` event.
fn stock_changed(
    level: &StockLevelRow,
    cause: &str,
    quantity: i64,
    reference: Option<&str>,
) -> serde_json::Value {
    serde_json::json!({
        "book_id": level.book_id,
        "on_hand": level.on_hand,
        "reserved": level.reserved,
        "available": level.on_hand - level.reserved,
        "cause": cause,
        "quantity": quantity,
        "reference": reference,
    })
}

/// Folds a receipt of `quantity` copies at `unit_cost_cents` each into the book's moving average
/// cost: `(on_hand × average + quantity × cost) / (on_hand + quantity)`, rounded to the nearest
/// cent; the first costed receipt (or one into empty stock) sets it outright. Runs before the
/// receipt's own update, so `on_hand` here is the quantity before it.
fn update_average_cost(
    conn: &mut DbConn,
    book_id: i64,
    quantity: i64,
    unit_cost_cents: i64,
) -> Result<(), ApiError> {
    let cost = quantity.checked_mul(unit_cost_cents).ok_or_else(|| {
        ApiError::invalid(
            "unit_cost_cents",
            "quantity × unit cost is too large to record",
        )
    })?;
    let average = diesel::dsl::sql::<Nullable<BigInt>>(
        "CASE WHEN avg_unit_cost_cents IS NULL OR on_hand <= 0 THEN ",
    )
    .bind::<BigInt, _>(unit_cost_cents)
    .sql(" ELSE (on_hand * avg_unit_cost_cents + ")
    .bind::<BigInt, _>(cost)
    .sql(" + (on_hand + ")
    .bind::<BigInt, _>(quantity)
    .sql(") / 2) / (on_hand + ")
    .bind::<BigInt, _>(quantity)
    .sql(") END");
    diesel::update(stock_levels::table.filter(stock_levels::book_id.eq(book_id)))
        .set(stock_levels::avg_unit_cost_cents.eq(average))
        .execute(conn)?;
    Ok(())
}

/// Appends `m` to the ledger (the caller has just changed `on_hand` by `m.quantity`).
fn insert_movement(conn: &mut DbConn, m: &Movement<'_>) -> Result<MovementRow, ApiError> {
    Ok(diesel::insert_into(stock_movements::table)
        .values((
            stock_movements::book_id.eq(m.book_id),
            stock_movements::quantity.eq(m.quantity),
            stock_movements::kind.eq(m.kind.as_str()),
            stock_movements::reference.eq(m.reference),
            stock_movements::reason.eq(m.reason),
            stock_movements::note.eq(m.note),
            stock_movements::unit_cost_cents.eq(m.unit_cost_cents),
            stock_movements::user_id.eq(m.user_id),
            stock_movements::created_at.eq(m.at),
        ))
        .returning(MOVEMENT_COLUMNS)
        .get_result(conn)?)
}

/// Why the conditional update of `m` matched no row: no stock level (404), or too little stock
/// (409, with the current figures).
fn refusal(conn: &mut DbConn, m: &Movement<'_>) -> Result<ApiError, ApiError> {
    let current: Option<(i64, i64, String)> = stock_levels::table
        .inner_join(books::table)
        .filter(stock_levels::book_id.eq(m.book_id))
        .select((stock_levels::on_hand, stock_levels::reserved, books::title))
        .first(conn)
        .optional()?;
    Ok(match current {
        None => ApiError::NotFound(format!("book {} has no stock level", m.book_id)),
        Some((on_hand, reserved, title)) => ApiError::Conflict(format!(
            "not enough stock of book {} ({title:?}) to remove {}: on hand {on_hand}, \
             reserved {reserved}, so at most {} can be removed",
            m.book_id,
            -m.quantity,
            (on_hand - reserved).max(0)
        )),
    })
}

/// The outcome of [`reserve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    Reserved,
    /// Too few copies are available; nothing was changed. `available` is `on_hand - reserved`
    /// as this transaction sees it (0 when the book has no stock level).
    Short {
        available: i64,
    },
}

/// Reserves `quantity` copies of a book for an order, inside the caller's transaction: one
/// conditional update (`reserved += q WHERE on_hand - reserved >= q`), so no sequence or
/// concurrency of orders ever reserves more than is on hand (core invariant 1). `on_hand` and the
/// ledger are untouched: a reservation is not a movement.
pub fn reserve(tx: &mut WriteTx<'_>, book_id: i64, quantity: i64) -> Result<Reservation, ApiError> {
    if quantity <= 0 {
        return Err(ApiError::internal(
            "a reservation of a non-positive quantity",
        ));
    }
    let updated: Option<StockLevelRow> = diesel::update(
        stock_levels::table
            .filter(stock_levels::book_id.eq(book_id))
            .filter((stock_levels::on_hand - stock_levels::reserved).ge(quantity)),
    )
    .set((
        stock_levels::reserved.eq(stock_levels::reserved + quantity),
        stock_levels::version.eq(stock_levels::version + 1),
        stock_levels::updated_at.eq(crate::db::now()),
    ))
    .returning(LEVEL_COLUMNS)
    .get_result(tx.conn())
    .optional()?;
    if let Some(level) = updated {
        after_change(tx, &level, "reservation", -quantity, None)?;
        return Ok(Reservation::Reserved);
    }
    let level: Option<(i64, i64)> = stock_levels::table
        .find(book_id)
        .select((stock_levels::on_hand, stock_levels::reserved))
        .first(tx.conn())
        .optional()?;
    Ok(Reservation::Short {
        available: level.map_or(0, |(on_hand, reserved)| (on_hand - reserved).max(0)),
    })
}

/// Gives back `quantity` reserved copies of a book (an order was cancelled or expired), inside the
/// caller's transaction. Releasing more than is reserved means the bookkeeping is broken: an
/// internal error, and the caller's transaction rolls back.
pub fn release(tx: &mut WriteTx<'_>, book_id: i64, quantity: i64) -> Result<(), ApiError> {
    if quantity <= 0 {
        return Err(ApiError::internal("a release of a non-positive quantity"));
    }
    let updated: Option<StockLevelRow> = diesel::update(
        stock_levels::table
            .filter(stock_levels::book_id.eq(book_id))
            .filter(stock_levels::reserved.ge(quantity)),
    )
    .set((
        stock_levels::reserved.eq(stock_levels::reserved - quantity),
        stock_levels::version.eq(stock_levels::version + 1),
        stock_levels::updated_at.eq(crate::db::now()),
    ))
    .returning(LEVEL_COLUMNS)
    .get_result(tx.conn())
    .optional()?;
    match updated {
        Some(level) => after_change(tx, &level, "release", quantity, None),
        None => Err(ApiError::internal(format!(
            "cannot release {quantity} copies of book {book_id}: fewer are reserved"
        ))),
    }
}

/// Consumes `quantity` reserved copies of a book that leave the shop with a fulfilled order,
/// inside the caller's transaction: `on_hand -= q` and `reserved -= q` in one conditional update
/// (`WHERE reserved >= q AND on_hand >= q`), plus the `sale` movement (`-q`, `reference`), so
/// `on_hand` still equals the ledger's sum and `available` is unchanged. Consuming more than is
/// reserved means the bookkeeping is broken: an internal error, and the transaction rolls back.
pub fn consume(
    tx: &mut WriteTx<'_>,
    book_id: i64,
    quantity: i64,
    reference: &str,
    user_id: Option<i64>,
) -> Result<MovementRow, ApiError> {
    if quantity <= 0 {
        return Err(ApiError::internal(
            "a consumption of a non-positive quantity",
        ));
    }
    let at = crate::db::now();
    let updated: Option<StockLevelRow> = diesel::update(
        stock_levels::table
            .filter(stock_levels::book_id.eq(book_id))
            .filter(stock_levels::reserved.ge(quantity))
            .filter(stock_levels::on_hand.ge(quantity)),
    )
    .set((
        stock_levels::on_hand.eq(stock_levels::on_hand - quantity),
        stock_levels::reserved.eq(stock_levels::reserved - quantity),
        stock_levels::version.eq(stock_levels::version + 1),
        stock_levels::updated_at.eq(at),
    ))
    .returning(LEVEL_COLUMNS)
    .get_result(tx.conn())
    .optional()?;
    let Some(level) = updated else {
        return Err(ApiError::internal(format!(
            "cannot consume {quantity} copies of book {book_id}: fewer are reserved or on hand"
        )));
    };
    after_change(
        tx,
        &level,
        MovementKind::Sale.as_str(),
        -quantity,
        Some(reference),
    )?;
    insert_movement(
        tx,
        &Movement {
            book_id,
            quantity: -quantity,
            kind: MovementKind::Sale,
            reference: Some(reference),
            reason: None,
            note: None,
            unit_cost_cents: None,
            user_id,
            at,
        },
    )
}
