//! Stocktake rules: opening a count over a scope with a snapshot of each book's `on_hand`,
//! recording counts in batches, the variance report, and completing (posting the variance to the
//! ledger through [`stock::apply_movements`]) or cancelling.
//!
//! The variance of a counted line is `counted − expected_at_count`, where `expected_at_count` is
//! the book's `on_hand` in the transaction that recorded the count. Since `on_hand` always equals
//! the ledger's sum, that is the snapshot plus every movement since it: sales and receipts made
//! while the count is open are accounted for, and only the difference the count found is posted.
//!
//! At most one open stocktake covers a book: opening checks for overlaps up front (409 naming the
//! books and the stocktake that has them), and the partial unique index
//! `stocktake_lines_open_book_idx` catches the races (also a 409).
//!
//! A closed (completed or cancelled) stocktake's report is frozen: closing stores the current
//! `on_hand` as `expected_at_count` of the lines that were never counted, so later movements no
//! longer change their figures. Values at cost use the book's current moving average cost.
//!
//! Work is done in bulk so that stocktakes of tens of thousands of books stay fast: the lines are
//! inserted by one `INSERT … SELECT`, a batch of counts is one `UPDATE … FROM (VALUES …)` per
//! thousand counts, completion reads every line with its level in one query and posts the lines
//! that change through the bulk `stock::apply_movements`.

use crate::db::schema::{
    book_categories, books, categories, stock_levels, stocktake_lines, stocktakes,
};
use crate::db::{now, write_transaction, DbConn, MultiBackend, Placeholders};
use crate::error::{ApiError, FieldError};
use crate::http::{Page, PageParams};
use crate::inventory::model::MovementKind;
use crate::inventory::stock::{self, Movement};
use crate::inventory::stocktakes::model::*;
use crate::webhooks::outbox::{self, EventType};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{BigInt, Timestamp};
use std::collections::{HashMap, HashSet};

/// Rows per `UPDATE … FROM (VALUES …)` statement: two binds each, far below either backend's
/// limit on binds.
const CHUNK: usize = 1_000;

fn not_found(id: i64) -> ApiError {
    ApiError::NotFound(format!("no stocktake with id {id}"))
}

/// Trims; an empty string becomes `None`.
fn clean(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// The books a new stocktake covers, once its input has been checked.
enum Coverage {
    All,
    /// A category and all its descendants.
    Categories(Vec<i64>),
    Books(Vec<i64>),
}

/// Runs `$body` with `$filter` bound to the condition on `stock_levels ⋈ books` that selects
/// the books `$coverage` covers (a macro, so that each arm keeps its concrete expression type and
/// can serve in a subquery as well as in the `INSERT … SELECT`). For `all` and `category`,
/// archived books are included only while they have copies on hand (they are still on the
/// shelves and must be counted); a `books` list is taken as given.
macro_rules! with_cover_filter {
    ($coverage:expr, |$filter:ident| $body:expr) => {{
        let present = books::status.ne("archived").or(stock_levels::on_hand.ne(0));
        match $coverage {
            Coverage::All => {
                let $filter = present;
                $body
            }
            Coverage::Categories(ids) => {
                let $filter = present.and(
                    stock_levels::book_id.eq_any(
                        book_categories::table
                            .filter(book_categories::category_id.eq_any(ids))
                            .select(book_categories::book_id),
                    ),
                );
                $body
            }
            Coverage::Books(ids) => {
                let $filter = stock_levels::book_id.eq_any(ids);
                $body
            }
        }
    }};
}

/// The checks of a new stocktake that need no database: which of `category_id` and `book_ids`
/// the scope requires or forbids, and the shape of `book_ids`.
fn check_new(input: &NewStocktake) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    let scope = input.scope;
    if scope != StocktakeScope::Category && input.category_id.is_some() {
        errors.push(FieldError::new(
            "category_id",
            "is only allowed for scope category",
        ));
    }
    if scope != StocktakeScope::Books && input.book_ids.is_some() {
        errors.push(FieldError::new(
            "book_ids",
            "is only allowed for scope books",
        ));
    }
    if scope == StocktakeScope::Category && input.category_id.is_none() {
        errors.push(FieldError::new(
            "category_id",
            "is required for scope category",
        ));
    }
    if scope == StocktakeScope::Books {
        match &input.book_ids {
            None => errors.push(FieldError::new("book_ids", "is required for scope books")),
            Some(ids) if ids.is_empty() || ids.len() > MAX_BOOKS => errors.push(FieldError::new(
                "book_ids",
                format!("must list 1 to {MAX_BOOKS} books"),
            )),
            Some(ids) => {
                let mut seen = HashSet::with_capacity(ids.len());
                for (i, id) in ids.iter().enumerate() {
                    if !seen.insert(*id) {
                        errors.push(FieldError::new(
                            format!("book_ids[{i}]"),
                            format!("book {id} is listed twice"),
                        ));
                    }
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// `root` and all its descendants, walking the tree a level at a time.
fn category_subtree(conn: &mut DbConn, root: i64) -> Result<Vec<i64>, ApiError> {
    let mut all = vec![root];
    let mut seen: HashSet<i64> = HashSet::from([root]);
    let mut frontier = vec![root];
    while !frontier.is_empty() {
        let children: Vec<i64> = categories::table
            .filter(categories::parent_id.eq_any(&frontier))
            .select(categories::id)
            .load(conn)?;
        // `seen` guards against a cycle in bad data.
        frontier = children.into_iter().filter(|c| seen.insert(*c)).collect();
        all.extend_from_slice(&frontier);
    }
    Ok(all)
}

/// The checks of a new stocktake against the database (the category or the books exist), and
/// what it covers.
fn coverage(conn: &mut DbConn, input: &NewStocktake) -> Result<Coverage, ApiError> {
    match input.scope {
        StocktakeScope::All => Ok(Coverage::All),
        StocktakeScope::Category => {
            let id = input.category_id.ok_or_else(|| {
                ApiError::invalid("category_id", "is required for scope category")
            })?;
            let exists = categories::table
                .find(id)
                .select(categories::id)
                .first::<i64>(conn)
                .optional()?
                .is_some();
            if !exists {
                return Err(ApiError::invalid(
                    "category_id",
                    format!("no category with id {id}"),
                ));
            }
            Ok(Coverage::Categories(category_subtree(conn, id)?))
        }
        StocktakeScope::Books => {
            let ids = input.book_ids.clone().unwrap_or_default();
            let known: HashSet<i64> = books::table
                .inner_join(stock_levels::table)
                .filter(books::id.eq_any(&ids))
                .select(books::id)
                .load::<i64>(conn)?
                .into_iter()
                .collect();
            let unknown: Vec<FieldError> = ids
                .iter()
                .enumerate()
                .filter(|(_, id)| !known.contains(id))
                .map(|(i, id)| {
                    FieldError::new(format!("book_ids[{i}]"), format!("no book with id {id}"))
                })
                .collect();
            if !unknown.is_empty() {
                return Err(ApiError::Validation(unknown));
            }
            Ok(Coverage::Books(ids))
        }
    }
}

/// Refuses a stocktake that would cover a book another open stocktake already covers, naming
/// (up to ten of) those books and their stocktakes.
fn check_overlap(conn: &mut DbConn, coverage: &Coverage) -> Result<(), ApiError> {
    const SHOWN: usize = 10;
    let clashes: Vec<(i64, i64)> = with_cover_filter!(coverage, |covered| {
        stocktake_lines::table
            .filter(stocktake_lines::is_open.eq(true))
            .filter(
                stocktake_lines::book_id.eq_any(
                    stock_levels::table
                        .inner_join(books::table)
                        .filter(covered)
                        .select(stock_levels::book_id),
                ),
            )
            .order(stocktake_lines::book_id)
            .select((stocktake_lines::book_id, stocktake_lines::stocktake_id))
            .limit(SHOWN as i64 + 1)
            .load(conn)?
    });
    if clashes.is_empty() {
        return Ok(());
    }
    let mut listed: Vec<String> = clashes
        .iter()
        .take(SHOWN)
        .map(|(book, stocktake)| format!("book {book} (stocktake {stocktake})"))
        .collect();
    if clashes.len() > SHOWN {
        listed.push("and more".into());
    }
    Err(ApiError::Conflict(format!(
        "some of these books are already covered by an open stocktake: {}; complete or cancel \
         it first",
        listed.join(", ")
    )))
}

/// A unique violation on `stocktake_lines_open_book_idx`: another stocktake took some of the
/// books between the overlap check and the insert.
fn open_race(err: diesel::result::Error) -> ApiError {
    use diesel::result::{DatabaseErrorKind, Error};
    match err {
        Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => ApiError::Conflict(
            "some of these books were just taken by another open stocktake; fetch the open \
             stocktakes and complete or cancel the one that covers them"
                .into(),
        ),
        other => other.into(),
    }
}

/// Opens a stocktake: inserts it and, in the same transaction, one line per covered book with
/// the book's current `on_hand` as the snapshot (a single `INSERT … SELECT`).
pub fn open(
    conn: &mut DbConn,
    input: &NewStocktake,
    user_id: i64,
    currency: &str,
) -> Result<StocktakeView, ApiError> {
    check_new(input)?;
    let note = clean(input.note.as_deref());
    let at = now();
    write_transaction(conn, |tx| {
        let coverage = coverage(tx, input)?;
        check_overlap(tx, &coverage)?;
        let id: i64 = diesel::insert_into(stocktakes::table)
            .values((
                stocktakes::status.eq(StocktakeStatus::Open.as_str()),
                stocktakes::scope.eq(input.scope.as_str()),
                stocktakes::category_id.eq(input.category_id),
                stocktakes::note.eq(&note),
                stocktakes::version.eq(1),
                stocktakes::created_by.eq(user_id),
                stocktakes::created_at.eq(at),
                stocktakes::updated_at.eq(at),
            ))
            .returning(stocktakes::id)
            .get_result(tx.conn())?;
        let inserted = with_cover_filter!(&coverage, |covered| {
            diesel::insert_into(stocktake_lines::table)
                .values(
                    stock_levels::table
                        .inner_join(books::table)
                        .filter(covered)
                        .select((
                            id.into_sql::<BigInt>(),
                            stock_levels::book_id,
                            stock_levels::on_hand,
                        )),
                )
                .into_columns((
                    stocktake_lines::stocktake_id,
                    stocktake_lines::book_id,
                    stocktake_lines::snapshot_on_hand,
                ))
                .execute(tx.conn())
                .map_err(open_race)?
        });
        if inserted == 0 {
            return Err(match input.scope {
                StocktakeScope::Category => ApiError::invalid(
                    "category_id",
                    "the category and its sub-categories have no books to count",
                ),
                _ => ApiError::invalid("scope", "there are no books to count"),
            });
        }
        view(tx, id, currency)
    })
}

/// The stocktake row, or 404.
fn row(conn: &mut DbConn, id: i64) -> Result<StocktakeRow, ApiError> {
    stocktakes::table
        .find(id)
        .select(StocktakeRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| not_found(id))
}

/// Why a conditional update of an open stocktake matched nothing: it does not exist (404), or it
/// is no longer open (409 naming its status).
fn not_open(conn: &mut DbConn, id: i64, action: &str) -> Result<ApiError, ApiError> {
    let status = row(conn, id)?.status();
    Ok(ApiError::IllegalTransition {
        detail: format!(
            "stocktake {id} is {}: only an open stocktake can be {action}",
            status.as_str()
        ),
        current_status: status.as_str().to_owned(),
        allowed_actions: status.allowed_actions(),
    })
}

/// Takes the stocktake for this transaction while it is open (a conditional update, which also
/// locks the row on PostgreSQL, so a batch of counts and a completion never interleave), or
/// explains why not.
fn touch_open(conn: &mut DbConn, id: i64, at: NaiveDateTime, action: &str) -> Result<(), ApiError> {
    let updated = diesel::update(
        stocktakes::table
            .filter(stocktakes::id.eq(id))
            .filter(stocktakes::status.eq(StocktakeStatus::Open.as_str())),
    )
    .set((
        stocktakes::version.eq(stocktakes::version + 1),
        stocktakes::updated_at.eq(at),
    ))
    .execute(conn)?;
    if updated == 1 {
        Ok(())
    } else {
        Err(not_open(conn, id, action)?)
    }
}

/// A bind of a [`ValuesUpdate`]'s `SET` clause.
#[derive(Debug, Clone, Copy)]
enum Bind {
    Int(i64),
    Time(NaiveDateTime),
}

/// An `UPDATE stocktake_lines … FROM (VALUES (book_id, value), …)` over the lines of one
/// stocktake, run in chunks on either backend: `v.column1` is the book id and `v.column2` the
/// value (both backends name the columns of a `VALUES` list so). The `FROM` list holds the
/// values alone: with another table beside them, SQLite 3.50 scans the values once per line
/// (quadratic); alone, it walks them and finds each line by its primary key. Other tables are
/// read by correlated subqueries in `set`.
struct ValuesUpdate<'a> {
    /// The `SET` assignments that need no bind, e.g. `counted = v.column2`.
    set: &'a str,
    /// Further `SET` assignments of a bound value: (column, value).
    set_binds: &'a [(&'a str, Bind)],
    stocktake_id: i64,
}

impl ValuesUpdate<'_> {
    /// Runs the update over `pairs` of (book id, value); returns the rows updated.
    fn run(&self, conn: &mut DbConn, pairs: &[(i64, i64)]) -> Result<usize, ApiError> {
        let mut updated = 0;
        for chunk in pairs.chunks(CHUNK) {
            let mut binds = Placeholders::new(conn);
            let mut text = String::with_capacity(chunk.len() * 16 + 300);
            text.push_str("UPDATE stocktake_lines SET ");
            text.push_str(self.set);
            for (column, _) in self.set_binds {
                text.push_str(&format!(", {column} = {}", binds.one()));
            }
            text.push_str(" FROM (VALUES ");
            for i in 0..chunk.len() {
                if i > 0 {
                    text.push_str(", ");
                }
                text.push_str(&binds.row(2));
            }
            text.push_str(") AS v");
            text.push_str(&format!(
                " WHERE stocktake_lines.stocktake_id = {} \
                 AND stocktake_lines.book_id = v.column1",
                binds.one()
            ));
            let mut query: BoxedSqlQuery<'_, MultiBackend, SqlQuery> =
                diesel::sql_query(text).into_boxed();
            for (_, bind) in self.set_binds {
                query = match *bind {
                    Bind::Int(v) => query.bind::<BigInt, _>(v),
                    Bind::Time(v) => query.bind::<Timestamp, _>(v),
                };
            }
            for (book_id, value) in chunk {
                query = query.bind::<BigInt, _>(*book_id).bind::<BigInt, _>(*value);
            }
            query = query.bind::<BigInt, _>(self.stocktake_id);
            updated += query.execute(conn)?;
        }
        Ok(updated)
    }
}

/// Records a batch of counts (each book at most once per batch; a later batch overrides an
/// earlier count). Each line stores the count, when and by whom, and the book's `on_hand` at
/// this moment as the quantity the count is compared with. Only while the stocktake is open.
pub fn record_counts(
    conn: &mut DbConn,
    id: i64,
    input: &RecordCounts,
    user_id: i64,
) -> Result<CountsView, ApiError> {
    let mut errors = Vec::new();
    let mut seen = HashSet::with_capacity(input.counts.len());
    for (i, count) in input.counts.iter().enumerate() {
        if !seen.insert(count.book_id) {
            errors.push(FieldError::new(
                format!("counts[{i}].book_id"),
                format!("book {} is counted twice in this batch", count.book_id),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let at = now();
    let ids: Vec<i64> = input.counts.iter().map(|c| c.book_id).collect();
    write_transaction(conn, |tx| {
        touch_open(tx, id, at, "counted")?;
        let covered: HashSet<i64> = stocktake_lines::table
            .filter(stocktake_lines::stocktake_id.eq(id))
            .filter(stocktake_lines::book_id.eq_any(&ids))
            .select(stocktake_lines::book_id)
            .load::<i64>(tx.conn())?
            .into_iter()
            .collect();
        let outside: Vec<FieldError> = ids
            .iter()
            .enumerate()
            .filter(|(_, book)| !covered.contains(book))
            .map(|(i, book)| {
                FieldError::new(
                    format!("counts[{i}].book_id"),
                    format!("book {book} is not covered by stocktake {id}"),
                )
            })
            .collect();
        if !outside.is_empty() {
            return Err(ApiError::Validation(outside));
        }
        let mut pairs: Vec<(i64, i64)> = input
            .counts
            .iter()
            .map(|c| (c.book_id, c.counted))
            .collect();
        // Rows are written in book id order, like every other bulk stock write.
        pairs.sort_unstable();
        let updated = ValuesUpdate {
            set: "counted = v.column2, expected_at_count = (SELECT s.on_hand \
                  FROM stock_levels s WHERE s.book_id = stocktake_lines.book_id)",
            set_binds: &[
                ("counted_at", Bind::Time(at)),
                ("counted_by", Bind::Int(user_id)),
            ],
            stocktake_id: id,
        }
        .run(tx, &pairs)?;
        if updated != pairs.len() {
            return Err(ApiError::internal(format!(
                "stocktake {id}: {updated} lines updated for {} counts",
                pairs.len()
            )));
        }
        Ok(CountsView {
            stocktake_id: id,
            recorded: pairs.len() as i64,
            progress: summaries(tx, &[id])?
                .remove(&id)
                .map(|s| s.progress)
                .ok_or_else(|| not_found(id))?,
        })
    })
}

/// Closes the lines of a stocktake being completed or cancelled: they no longer hold their
/// books (`is_open = FALSE`), and an uncounted line keeps the book's `on_hand` at this moment as
/// its expected quantity, so that the closed stocktake's report no longer moves.
fn close_lines(conn: &mut DbConn, id: i64) -> Result<(), ApiError> {
    diesel::sql_query(
        "UPDATE stocktake_lines SET is_open = FALSE, expected_at_count = COALESCE(\
         expected_at_count, (SELECT s.on_hand FROM stock_levels s \
         WHERE s.book_id = stocktake_lines.book_id)) WHERE stocktake_id = $1",
    )
    .bind::<BigInt, _>(id)
    .execute(conn)?;
    Ok(())
}

/// Zeroing an uncounted line posts `−on_hand` as read by this transaction, so on PostgreSQL the
/// levels of the uncounted lines are locked (in book id order, like every stock write) before
/// they are read: a sale or receipt committed meanwhile cannot leave a remainder or make the
/// movement overshoot. (A count's variance is posted as a delta, which needs no lock; SQLite's
/// write transaction already excludes every other writer.)
fn lock_uncounted_levels(conn: &mut DbConn, id: i64) -> Result<(), ApiError> {
    if let DbConn::Pg(c) = conn {
        stock_levels::table
            .filter(
                stock_levels::book_id.eq_any(
                    stocktake_lines::table
                        .filter(stocktake_lines::stocktake_id.eq(id))
                        .filter(stocktake_lines::counted.is_null())
                        .select(stocktake_lines::book_id),
                ),
            )
            .order(stock_levels::book_id)
            .select(stock_levels::book_id)
            .for_update()
            .load::<i64>(c)?;
    }
    Ok(())
}

/// A line as completion sees it.
type CompletionLine = (i64, Option<i64>, Option<i64>, i64, Option<i64>);

/// Completes an open stocktake in one transaction: for each counted line with a non-zero
/// variance, in book id order, a `stocktake` movement of the variance (`reference
/// stocktake:<id>`); with `zero_uncounted`, each uncounted line with stock gets a movement taking
/// `on_hand` to zero. A movement that would take `on_hand` below `reserved` fails the whole
/// completion with a 409 naming the book, and nothing is written. Emits `stocktake.completed`.
pub fn complete(
    conn: &mut DbConn,
    id: i64,
    input: &CompleteStocktake,
    user_id: i64,
    currency: &str,
) -> Result<StocktakeView, ApiError> {
    let at = now();
    write_transaction(conn, |tx| {
        let updated = diesel::update(
            stocktakes::table
                .filter(stocktakes::id.eq(id))
                .filter(stocktakes::status.eq(StocktakeStatus::Open.as_str())),
        )
        .set((
            stocktakes::status.eq(StocktakeStatus::Completed.as_str()),
            stocktakes::zero_uncounted.eq(input.zero_uncounted),
            stocktakes::completed_at.eq(at),
            stocktakes::completed_by.eq(user_id),
            stocktakes::version.eq(stocktakes::version + 1),
            stocktakes::updated_at.eq(at),
        ))
        .execute(tx.conn())?;
        if updated != 1 {
            return Err(not_open(tx, id, "completed")?);
        }
        if input.zero_uncounted {
            lock_uncounted_levels(tx, id)?;
        }
        let lines: Vec<CompletionLine> = stocktake_lines::table
            .inner_join(stock_levels::table.on(stock_levels::book_id.eq(stocktake_lines::book_id)))
            .filter(stocktake_lines::stocktake_id.eq(id))
            .order(stocktake_lines::book_id)
            .select((
                stocktake_lines::book_id,
                stocktake_lines::counted,
                stocktake_lines::expected_at_count,
                stock_levels::on_hand,
                stock_levels::avg_unit_cost_cents,
            ))
            .load(tx.conn())?;
        close_lines(tx, id)?;
        let reference = format!("stocktake:{id}");
        let mut movements: Vec<Movement<'_>> = Vec::new();
        let (mut counted, mut variance_units, mut variance_value) = (0_i64, 0_i64, 0_i64);
        for &(book_id, count, expected, on_hand, cost) in &lines {
            let quantity = match count {
                Some(count) => {
                    counted += 1;
                    let variance = count - expected.unwrap_or(on_hand);
                    variance_units += variance;
                    variance_value += variance * cost.unwrap_or(0);
                    variance
                }
                None if input.zero_uncounted => -on_hand,
                None => 0,
            };
            if quantity != 0 {
                movements.push(Movement {
                    book_id,
                    quantity,
                    kind: MovementKind::Stocktake,
                    reference: Some(&reference),
                    reason: None,
                    note: None,
                    unit_cost_cents: None,
                    user_id: Some(user_id),
                    at,
                });
            }
        }
        stock::apply_movements(tx, &movements).map_err(|e| match e {
            ApiError::Conflict(why) => ApiError::Conflict(format!(
                "stocktake {id} cannot be completed, nothing was posted: {why}"
            )),
            other => other,
        })?;
        let posted: Vec<(i64, i64)> = movements.iter().map(|m| (m.book_id, m.quantity)).collect();
        let recorded = ValuesUpdate {
            set: "posted_quantity = v.column2",
            set_binds: &[],
            stocktake_id: id,
        }
        .run(tx, &posted)?;
        if recorded != posted.len() {
            return Err(ApiError::internal(format!(
                "stocktake {id}: {recorded} lines marked posted for {} movements",
                posted.len()
            )));
        }
        outbox::emit(
            tx,
            EventType::StocktakeCompleted,
            serde_json::json!({
                "stocktake_id": id,
                "lines": lines.len(),
                "counted": counted,
                "adjusted_lines": posted.len(),
                "variance_units": variance_units,
                "variance_value_cents": variance_value,
                "zero_uncounted": input.zero_uncounted,
                "currency": currency,
            }),
        )?;
        view(tx, id, currency)
    })
}

/// Cancels an open stocktake: its books are released for another stocktake, nothing is posted.
pub fn cancel(conn: &mut DbConn, id: i64, currency: &str) -> Result<StocktakeView, ApiError> {
    let at = now();
    write_transaction(conn, |tx| {
        let updated = diesel::update(
            stocktakes::table
                .filter(stocktakes::id.eq(id))
                .filter(stocktakes::status.eq(StocktakeStatus::Open.as_str())),
        )
        .set((
            stocktakes::status.eq(StocktakeStatus::Cancelled.as_str()),
            stocktakes::cancelled_at.eq(at),
            stocktakes::version.eq(stocktakes::version + 1),
            stocktakes::updated_at.eq(at),
        ))
        .execute(tx.conn())?;
        if updated != 1 {
            return Err(not_open(tx, id, "cancelled")?);
        }
        close_lines(tx, id)?;
        view(tx, id, currency)
    })
}

/// Progress and totals of one stocktake, as computed by [`summaries`].
#[derive(Debug, Clone, Copy)]
struct Summary {
    progress: Progress,
    totals: StocktakeTotals,
}

#[derive(QueryableByName)]
struct SummaryRow {
    #[diesel(sql_type = BigInt)]
    stocktake_id: i64,
    #[diesel(sql_type = BigInt)]
    lines: i64,
    #[diesel(sql_type = BigInt)]
    counted: i64,
    #[diesel(sql_type = BigInt)]
    variance_units: i64,
    #[diesel(sql_type = BigInt)]
    variance_value_cents: i64,
    #[diesel(sql_type = BigInt)]
    lines_with_variance: i64,
    #[diesel(sql_type = BigInt)]
    lines_without_cost: i64,
    #[diesel(sql_type = BigInt)]
    posted_lines: i64,
    #[diesel(sql_type = BigInt)]
    posted_units: i64,
    #[diesel(sql_type = BigInt)]
    posted_value_cents: i64,
    #[diesel(sql_type = BigInt)]
    posted_without_cost: i64,
}

/// Progress and variance totals of the stocktakes `ids`, by id, in one aggregate query.
/// `posted` is filled in for every stocktake here; [`view_of`] keeps it for completed ones.
fn summaries(conn: &mut DbConn, ids: &[i64]) -> Result<HashMap<i64, Summary>, ApiError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut binds = Placeholders::new(conn);
    let placeholders: Vec<String> = ids.iter().map(|_| binds.one()).collect();
    // SUM of a BIGINT is NUMERIC on PostgreSQL: every figure is cast back.
    let text = format!(
        "SELECT l.stocktake_id AS stocktake_id, \
           CAST(COUNT(*) AS BIGINT) AS lines, \
           CAST(COUNT(l.counted) AS BIGINT) AS counted, \
           CAST(COALESCE(SUM(l.counted - l.expected_at_count), 0) AS BIGINT) AS variance_units, \
           CAST(COALESCE(SUM((l.counted - l.expected_at_count) * s.avg_unit_cost_cents), 0) \
             AS BIGINT) AS variance_value_cents, \
           CAST(COALESCE(SUM(CASE WHEN l.counted <> l.expected_at_count THEN 1 ELSE 0 END), 0) \
             AS BIGINT) AS lines_with_variance, \
           CAST(COALESCE(SUM(CASE WHEN l.counted <> l.expected_at_count \
             AND s.avg_unit_cost_cents IS NULL THEN 1 ELSE 0 END), 0) AS BIGINT) \
             AS lines_without_cost, \
           CAST(COUNT(l.posted_quantity) AS BIGINT) AS posted_lines, \
           CAST(COALESCE(SUM(l.posted_quantity), 0) AS BIGINT) AS posted_units, \
           CAST(COALESCE(SUM(l.posted_quantity * s.avg_unit_cost_cents), 0) AS BIGINT) \
             AS posted_value_cents, \
           CAST(COALESCE(SUM(CASE WHEN l.posted_quantity IS NOT NULL \
             AND s.avg_unit_cost_cents IS NULL THEN 1 ELSE 0 END), 0) AS BIGINT) \
             AS posted_without_cost \
         FROM stocktake_lines l JOIN stock_levels s ON s.book_id = l.book_id \
         WHERE l.stocktake_id IN ({}) GROUP BY l.stocktake_id",
        placeholders.join(", ")
    );
    let mut query: BoxedSqlQuery<'_, MultiBackend, SqlQuery> = diesel::sql_query(text).into_boxed();
    for id in ids {
        query = query.bind::<BigInt, _>(*id);
    }
    let rows: Vec<SummaryRow> = query.load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.stocktake_id,
                Summary {
                    progress: Progress {
                        lines: r.lines,
                        counted: r.counted,
                        uncounted: r.lines - r.counted,
                    },
                    totals: StocktakeTotals {
                        variance_units: r.variance_units,
                        variance_value_cents: r.variance_value_cents,
                        lines_with_variance: r.lines_with_variance,
                        lines_without_cost: r.lines_without_cost,
                        posted: Some(PostedTotals {
                            lines: r.posted_lines,
                            units: r.posted_units,
                            value_cents: r.posted_value_cents,
                            lines_without_cost: r.posted_without_cost,
                        }),
                    },
                },
            )
        })
        .collect())
}

/// The view of `row` with its summary (a stocktake without lines shows zeros).
fn view_of(row: StocktakeRow, summary: Option<Summary>, currency: &str) -> StocktakeView {
    let completed = row.status() == StocktakeStatus::Completed;
    let (progress, mut totals) = match summary {
        Some(s) => (s.progress, s.totals),
        None => (
            Progress {
                lines: 0,
                counted: 0,
                uncounted: 0,
            },
            StocktakeTotals {
                variance_units: 0,
                variance_value_cents: 0,
                lines_with_variance: 0,
                lines_without_cost: 0,
                posted: None,
            },
        ),
    };
    if !completed {
        totals.posted = None;
    }
    StocktakeView::new(row, progress, totals, currency)
}

fn view(conn: &mut DbConn, id: i64, currency: &str) -> Result<StocktakeView, ApiError> {
    let row = row(conn, id)?;
    let summary = summaries(conn, &[id])?.remove(&id);
    Ok(view_of(row, summary, currency))
}

pub fn get(conn: &mut DbConn, id: i64, currency: &str) -> Result<StocktakeView, ApiError> {
    view(conn, id, currency)
}

/// Lists stocktakes, newest first, optionally by status.
pub fn list(
    conn: &mut DbConn,
    query: &StocktakeQuery,
    currency: &str,
) -> Result<Page<StocktakeView>, ApiError> {
    let (page, per_page) = PageParams {
        page: query.page,
        per_page: query.per_page,
    }
    .resolve()?;
    let status = query.status;
    let filtered = || {
        let mut q = stocktakes::table.into_boxed();
        if let Some(status) = status {
            q = q.filter(stocktakes::status.eq(status.as_str()));
        }
        q
    };
    let total: i64 = filtered().count().get_result(conn)?;
    let rows: Vec<StocktakeRow> = filtered()
        .order(stocktakes::id.desc())
        .limit(per_page)
        .offset(Page::<StocktakeView>::offset(page, per_page))
        .select(StocktakeRow::as_select())
        .load(conn)?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut summaries = summaries(conn, &ids)?;
    Ok(Page {
        items: rows
            .into_iter()
            .map(|row| {
                let summary = summaries.remove(&row.id);
                view_of(row, summary, currency)
            })
            .collect(),
        page,
        per_page,
        total,
    })
}

/// A line with its book and current level, as the lines listing reads it.
type LineTuple = (
    i64,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<NaiveDateTime>,
    Option<i64>,
    Option<i64>,
    i64,
    Option<i64>,
);

fn line_view(t: LineTuple) -> StocktakeLineView {
    let (
        book_id,
        title,
        isbn,
        snapshot,
        counted,
        expected_at_count,
        counted_at,
        counted_by,
        posted,
        on_hand,
        cost,
    ) = t;
    let expected = expected_at_count.unwrap_or(on_hand);
    let variance = counted.map(|c| c - expected);
    StocktakeLineView {
        book_id,
        title,
        isbn,
        snapshot_on_hand: snapshot,
        movements_since_snapshot: expected - snapshot,
        expected,
        counted,
        variance,
        unit_cost_cents: cost,
        variance_value_cents: variance.zip(cost).map(|(v, c)| v * c),
        posted_quantity: posted,
        counted_at: counted_at.map(crate::catalog::model::utc),
        counted_by,
    }
}

/// Lists a stocktake's lines by book id, optionally only the counted, uncounted or differing
/// ones.
pub fn lines(
    conn: &mut DbConn,
    id: i64,
    query: &LineQuery,
) -> Result<Page<StocktakeLineView>, ApiError> {
    let (page, per_page) = PageParams {
        page: query.page,
        per_page: query.per_page,
    }
    .resolve()?;
    row(conn, id)?;
    let filter = query.filter.unwrap_or_default();
    let filtered = || {
        let mut q = stocktake_lines::table
            .inner_join(books::table)
            .inner_join(stock_levels::table.on(stock_levels::book_id.eq(stocktake_lines::book_id)))
            .filter(stocktake_lines::stocktake_id.eq(id))
            .into_boxed();
        q = match filter {
            LineFilter::All => q,
            LineFilter::Counted => q.filter(stocktake_lines::counted.is_not_null()),
            LineFilter::Uncounted => q.filter(stocktake_lines::counted.is_null()),
            LineFilter::Variance => {
                q.filter(stocktake_lines::counted.ne(stocktake_lines::expected_at_count))
            }
        };
        q
    };
    let total: i64 = filtered().count().get_result(conn)?;
    let rows: Vec<LineTuple> = filtered()
        .order(stocktake_lines::book_id)
        .limit(per_page)
        .offset(Page::<StocktakeLineView>::offset(page, per_page))
        .select((
            stocktake_lines::book_id,
            books::title,
            books::isbn,
            stocktake_lines::snapshot_on_hand,
            stocktake_lines::counted,
            stocktake_lines::expected_at_count,
            stocktake_lines::counted_at,
            stocktake_lines::counted_by,
            stocktake_lines::posted_quantity,
            stock_levels::on_hand,
            stock_levels::avg_unit_cost_cents,
        ))
        .load(conn)?;
    Ok(Page {
        items: rows.into_iter().map(line_view).collect(),
        page,
        per_page,
        total,
    })
}
