//! The one module of stock arithmetic. `on_hand` changes only here, and only together with the
//! ledger row that records the change, inside the caller's transaction: so `on_hand` always
//! equals the sum of the book's movements (core invariant 2), and no change ever takes it below
//! `reserved` (core invariant 1).

use crate::db::schema::{books, stock_levels, stock_movements};
use crate::db::{in_transaction, DbConn};
use crate::error::ApiError;
use crate::inventory::alerts;
use crate::inventory::model::{MovementKind, MovementRow, StockLevelRow};
use crate::webhooks::outbox::{self, EventType};
use chrono::NaiveDateTime;
use diesel::prelude::*;

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
/// inside a transaction (it refuses to run outside one). The update is conditional, so that
/// concurrent changes can never take `on_hand` below `reserved`: when it would, nothing is
/// written and the answer is a 409 naming the book and its current stock.
///
/// Returns the level after the change and the movement written.
pub fn apply_movement(
    conn: &mut DbConn,
    m: &Movement<'_>,
) -> Result<(StockLevelRow, MovementRow), ApiError> {
    if m.quantity == 0 {
        return Err(ApiError::internal("a stock movement of zero"));
    }
    if !in_transaction(conn)? {
        return Err(ApiError::internal(
            "apply_movement called outside a transaction",
        ));
    }
    if let (MovementKind::Receipt, Some(cost), true) = (m.kind, m.unit_cost_cents, m.quantity > 0) {
        update_average_cost(conn, m.book_id, m.quantity, cost)?;
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
    .get_result(conn)
    .optional()?;
    let Some(level) = level else {
        return Err(refusal(conn, m)?);
    };
    let movement = insert_movement(conn, m)?;
    after_change(conn, &level, m.kind.as_str(), m.quantity, m.reference)?;
    Ok((level, movement))
}

/// What follows every change to a level, in its transaction: the low-stock alert opens or
/// resolves, and `inventory.stock_changed` goes to the outbox. `cause` is the movement kind, or
/// `reservation` / `release` for changes to `reserved` alone; `quantity` is the signed change: to
/// `on_hand` for a movement, to `available` for a reservation or release.
fn after_change(
    conn: &mut DbConn,
    level: &StockLevelRow,
    cause: &str,
    quantity: i64,
    reference: Option<&str>,
) -> Result<(), ApiError> {
    alerts::evaluate(conn, level)?;
    outbox::emit(
        conn,
        EventType::StockChanged,
        serde_json::json!({
            "book_id": level.book_id,
            "on_hand": level.on_hand,
            "reserved": level.reserved,
            "available": level.on_hand - level.reserved,
            "cause": cause,
            "quantity": quantity,
            "reference": reference,
        }),
    )?;
    Ok(())
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
    use diesel::sql_types::{BigInt, Nullable};
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
pub fn reserve(conn: &mut DbConn, book_id: i64, quantity: i64) -> Result<Reservation, ApiError> {
    if quantity <= 0 {
        return Err(ApiError::internal(
            "a reservation of a non-positive quantity",
        ));
    }
    if !in_transaction(conn)? {
        return Err(ApiError::internal("reserve called outside a transaction"));
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
    .get_result(conn)
    .optional()?;
    if let Some(level) = updated {
        after_change(conn, &level, "reservation", -quantity, None)?;
        return Ok(Reservation::Reserved);
    }
    let level: Option<(i64, i64)> = stock_levels::table
        .find(book_id)
        .select((stock_levels::on_hand, stock_levels::reserved))
        .first(conn)
        .optional()?;
    Ok(Reservation::Short {
        available: level.map_or(0, |(on_hand, reserved)| (on_hand - reserved).max(0)),
    })
}

/// Gives back `quantity` reserved copies of a book (an order was cancelled or expired), inside the
/// caller's transaction. Releasing more than is reserved means the bookkeeping is broken: an
/// internal error, and the caller's transaction rolls back.
pub fn release(conn: &mut DbConn, book_id: i64, quantity: i64) -> Result<(), ApiError> {
    if quantity <= 0 {
        return Err(ApiError::internal("a release of a non-positive quantity"));
    }
    if !in_transaction(conn)? {
        return Err(ApiError::internal("release called outside a transaction"));
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
    .get_result(conn)
    .optional()?;
    match updated {
        Some(level) => after_change(conn, &level, "release", quantity, None),
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
    conn: &mut DbConn,
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
    if !in_transaction(conn)? {
        return Err(ApiError::internal("consume called outside a transaction"));
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
    .get_result(conn)
    .optional()?;
    let Some(level) = updated else {
        return Err(ApiError::internal(format!(
            "cannot consume {quantity} copies of book {book_id}: fewer are reserved or on hand"
        )));
    };
    after_change(
        conn,
        &level,
        MovementKind::Sale.as_str(),
        -quantity,
        Some(reference),
    )?;
    insert_movement(
        conn,
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
