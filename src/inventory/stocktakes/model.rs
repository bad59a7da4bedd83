//! Stocktake rows, request bodies and response views.

use crate::catalog::model::utc;
use crate::db::schema::stocktakes;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

/// Most books one `books` stocktake may list.
pub const MAX_BOOKS: usize = 10_000;

/// What a stocktake covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StocktakeScope {
    /// Every book with a stock level (archived books only while they have copies on hand).
    All,
    /// The books filed under a category or any of its sub-categories (archived books only while
    /// they have copies on hand).
    Category,
    /// The books listed in `book_ids`, archived or not.
    Books,
}

impl StocktakeScope {
    pub fn as_str(self) -> &'static str {
        match self {
            StocktakeScope::All => "all",
            StocktakeScope::Category => "category",
            StocktakeScope::Books => "books",
        }
    }

    pub fn parse(s: &str) -> Option<StocktakeScope> {
        match s {
            "all" => Some(StocktakeScope::All),
            "category" => Some(StocktakeScope::Category),
            "books" => Some(StocktakeScope::Books),
            _ => None,
        }
    }
}

/// Where a stocktake is in its life: `open` (being counted) → `completed` (variance posted to
/// the ledger) or `cancelled` (nothing posted). Only an open stocktake accepts counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StocktakeStatus {
    Open,
    Completed,
    Cancelled,
}

impl StocktakeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StocktakeStatus::Open => "open",
            StocktakeStatus::Completed => "completed",
            StocktakeStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<StocktakeStatus> {
        match s {
            "open" => Some(StocktakeStatus::Open),
            "completed" => Some(StocktakeStatus::Completed),
            "cancelled" => Some(StocktakeStatus::Cancelled),
            _ => None,
        }
    }

    /// What can still be done to a stocktake in this status (named in 409 answers).
    pub fn allowed_actions(self) -> Vec<String> {
        match self {
            StocktakeStatus::Open => vec!["count".into(), "complete".into(), "cancel".into()],
            StocktakeStatus::Completed | StocktakeStatus::Cancelled => Vec::new(),
        }
    }
}

/// A row of `stocktakes`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = stocktakes)]
pub struct StocktakeRow {
    pub id: i64,
    pub status: String,
    pub scope: String,
    pub category_id: Option<i64>,
    pub note: Option<String>,
    pub zero_uncounted: Option<bool>,
    pub version: i32,
    pub created_by: Option<i64>,
    pub completed_by: Option<i64>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub completed_at: Option<NaiveDateTime>,
    pub cancelled_at: Option<NaiveDateTime>,
}

impl StocktakeRow {
    /// The table's CHECK admits only known statuses.
    pub fn status(&self) -> StocktakeStatus {
        StocktakeStatus::parse(&self.status).unwrap_or(StocktakeStatus::Cancelled)
    }
}

/// Body of `POST /inventory/stocktakes`.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[schema(example = json!({"scope": "category", "category_id": 3, "note": "Fiction, ground floor"}))]
#[serde(deny_unknown_fields)]
pub struct NewStocktake {
    pub scope: StocktakeScope,
    /// Required for scope `category` (the category and all its sub-categories are counted);
    /// not allowed otherwise.
    pub category_id: Option<i64>,
    /// Required for scope `books`: 1 to 10000 distinct book ids; not allowed otherwise.
    #[schema(max_items = 10000)]
    pub book_ids: Option<Vec<i64>>,
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub note: Option<String>,
}

/// One counted book.
#[derive(Debug, Clone, Deserialize, Serialize, Validate, ToSchema)]
#[schema(example = json!({"book_id": 1, "counted": 11}))]
#[serde(deny_unknown_fields)]
pub struct CountInput {
    pub book_id: i64,
    /// Copies found on the shelves, 0 to 1000000.
    #[validate(range(min = 0, max = 1_000_000))]
    #[schema(minimum = 0, maximum = 1000000)]
    pub counted: i64,
}

/// Body of `PUT /inventory/stocktakes/{id}/counts`: a batch of counts. Batches can be repeated;
/// a book counted again keeps its last count.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[schema(example = json!({"counts": [{"book_id": 1, "counted": 11}, {"book_id": 2, "counted": 0}]}))]
#[serde(deny_unknown_fields)]
pub struct RecordCounts {
    /// 1 to 5000 counts, each book at most once per batch.
    #[validate(length(min = 1, max = 5000), nested)]
    #[schema(min_items = 1, max_items = 5000)]
    pub counts: Vec<CountInput>,
}

/// Body of `POST /inventory/stocktakes/{id}/complete` (optional; `{}` or no body means
/// `zero_uncounted: false`).
#[derive(Debug, Clone, Default, Deserialize, Validate, ToSchema)]
#[schema(example = json!({"zero_uncounted": false}))]
#[serde(deny_unknown_fields)]
pub struct CompleteStocktake {
    /// `true`: a book that was never counted was not found, and its `on_hand` is posted down to
    /// zero. `false` (default): uncounted books are left alone.
    #[serde(default)]
    pub zero_uncounted: bool,
}

/// How far the count has got.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[schema(example = json!({"lines": 1250, "counted": 800, "uncounted": 450}))]
pub struct Progress {
    /// Books the stocktake covers.
    pub lines: i64,
    /// Books counted at least once.
    pub counted: i64,
    pub uncounted: i64,
}

/// What completion posted to the ledger.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[schema(example = json!({"lines": 6, "units": -9, "value_cents": -7308, "lines_without_cost": 0}))]
pub struct PostedTotals {
    /// `stocktake` movements written (one per line with a non-zero variance, plus zeroed
    /// uncounted lines).
    pub lines: i64,
    /// Sum of the posted quantities.
    pub units: i64,
    /// Sum of posted quantity × average unit cost, over the lines whose book has a cost.
    pub value_cents: i64,
    /// Posted lines whose book has no average cost (left out of `value_cents`).
    pub lines_without_cost: i64,
}

/// The variance report in total.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[schema(example = json!({"variance_units": -7, "variance_value_cents": -5684,
    "lines_with_variance": 5, "lines_without_cost": 0,
    "posted": {"lines": 5, "units": -7, "value_cents": -5684, "lines_without_cost": 0}}))]
pub struct StocktakeTotals {
    /// Sum over the counted lines of `counted − expected`: negative means copies are missing.
    pub variance_units: i64,
    /// Sum over the counted lines of variance × the book's average unit cost, for lines whose
    /// book has a cost.
    pub variance_value_cents: i64,
    /// Counted lines whose variance is not zero.
    pub lines_with_variance: i64,
    /// Lines with a variance whose book has no average cost yet: their units are in
    /// `variance_units`, their value is missing from `variance_value_cents`.
    pub lines_without_cost: i64,
    /// For a completed stocktake: what was posted. Absent otherwise.
    pub posted: Option<PostedTotals>,
}

/// A stocktake with its progress and variance totals.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 4, "status": "open", "scope": "category", "category_id": 3,
    "note": "Fiction, ground floor", "zero_uncounted": null, "currency": "USD",
    "progress": {"lines": 1250, "counted": 800, "uncounted": 450},
    "totals": {"variance_units": -7, "variance_value_cents": -5684, "lines_with_variance": 5,
               "lines_without_cost": 0, "posted": null},
    "version": 3, "created_by": 2, "completed_by": null,
    "created_at": "2026-11-25T08:00:00Z", "updated_at": "2026-11-25T10:30:00Z",
    "completed_at": null, "cancelled_at": null
}))]
pub struct StocktakeView {
    pub id: i64,
    pub status: StocktakeStatus,
    pub scope: StocktakeScope,
    /// For scope `category`.
    pub category_id: Option<i64>,
    pub note: Option<String>,
    /// Set at completion: whether uncounted lines were zeroed.
    pub zero_uncounted: Option<bool>,
    /// Currency of every `*_cents` figure.
    pub currency: String,
    pub progress: Progress,
    pub totals: StocktakeTotals,
    /// Changes with every batch of counts and with completion or cancellation.
    pub version: i32,
    pub created_by: Option<i64>,
    pub completed_by: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
}

impl StocktakeView {
    pub fn new(
        row: StocktakeRow,
        progress: Progress,
        totals: StocktakeTotals,
        currency: &str,
    ) -> Self {
        StocktakeView {
            id: row.id,
            status: row.status(),
            // The table's CHECK admits only known scopes.
            scope: StocktakeScope::parse(&row.scope).unwrap_or(StocktakeScope::Books),
            category_id: row.category_id,
            note: row.note,
            zero_uncounted: row.zero_uncounted,
            currency: currency.to_owned(),
            progress,
            totals,
            version: row.version,
            created_by: row.created_by,
            completed_by: row.completed_by,
            created_at: utc(row.created_at),
            updated_at: utc(row.updated_at),
            completed_at: row.completed_at.map(utc),
            cancelled_at: row.cancelled_at.map(utc),
        }
    }
}

/// One book of a stocktake: what was expected, what was counted, the difference.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "book_id": 1, "title": "The Left Hand of Darkness", "isbn": "9780441478125",
    "snapshot_on_hand": 10, "movements_since_snapshot": -3, "expected": 7, "counted": 6,
    "variance": -1, "unit_cost_cents": 812, "variance_value_cents": -812,
    "posted_quantity": null, "counted_at": "2026-11-25T10:12:00Z", "counted_by": 2
}))]
pub struct StocktakeLineView {
    pub book_id: i64,
    pub title: String,
    pub isbn: String,
    /// `on_hand` when the stocktake opened.
    pub snapshot_on_hand: i64,
    /// `expected − snapshot_on_hand`: the sales, receipts and other movements since the snapshot
    /// (up to the count for a counted line; up to now for an uncounted line of an open
    /// stocktake; up to closing for an uncounted line of a closed one).
    pub movements_since_snapshot: i64,
    /// What the count is compared with: `on_hand` when the last count was recorded; for an
    /// uncounted line, `on_hand` now (open) or when the stocktake was closed.
    pub expected: i64,
    /// The last count, absent until counted.
    pub counted: Option<i64>,
    /// `counted − expected`, for a counted line.
    pub variance: Option<i64>,
    /// The book's moving average unit cost, absent until a receipt with a cost.
    pub unit_cost_cents: Option<i64>,
    /// `variance × unit_cost_cents`, when both are known.
    pub variance_value_cents: Option<i64>,
    /// The `stocktake` movement completion posted for this book, if any.
    pub posted_quantity: Option<i64>,
    pub counted_at: Option<DateTime<Utc>>,
    /// Who recorded the last count.
    pub counted_by: Option<i64>,
}

/// The answer to a batch of counts.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"stocktake_id": 4, "recorded": 2,
    "progress": {"lines": 1250, "counted": 802, "uncounted": 448}}))]
pub struct CountsView {
    pub stocktake_id: i64,
    /// Counts recorded by this batch.
    pub recorded: i64,
    pub progress: Progress,
}

/// Which lines `GET /inventory/stocktakes/{id}/lines` lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LineFilter {
    #[default]
    All,
    Counted,
    Uncounted,
    /// Counted lines whose count differs from the expected quantity.
    Variance,
}

/// Query of `GET /inventory/stocktakes`. Newest first.
#[derive(Debug, Clone, Default, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StocktakeQuery {
    /// `open`, `completed` or `cancelled`.
    pub status: Option<StocktakeStatus>,
    #[param(minimum = 1, default = 1)]
    pub page: Option<i64>,
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub per_page: Option<i64>,
}

/// Query of `GET /inventory/stocktakes/{id}/lines`. By book id.
#[derive(Debug, Clone, Default, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LineQuery {
    /// `all` (default), `counted`, `uncounted` or `variance`.
    pub filter: Option<LineFilter>,
    #[param(minimum = 1, default = 1)]
    pub page: Option<i64>,
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub per_page: Option<i64>,
}
