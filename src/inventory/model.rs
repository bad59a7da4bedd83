//! Inventory rows, request bodies and response views.

use crate::catalog::model::utc;
use crate::db::schema::{stock_levels, stock_movements};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

/// Why `on_hand` changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MovementKind {
    /// Stock received from a supplier.
    Receipt,
    /// Stock sold and shipped or handed over.
    Sale,
    /// Stock returned by a customer and put back on the shelf.
    Return,
    /// A manual correction (damaged, lost, found…).
    Adjustment,
    /// The difference found by a stock count.
    Stocktake,
}

impl MovementKind {
    pub const ALL: [MovementKind; 5] = [
        MovementKind::Receipt,
        MovementKind::Sale,
        MovementKind::Return,
        MovementKind::Adjustment,
        MovementKind::Stocktake,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MovementKind::Receipt => "receipt",
            MovementKind::Sale => "sale",
            MovementKind::Return => "return",
            MovementKind::Adjustment => "adjustment",
            MovementKind::Stocktake => "stocktake",
        }
    }

    pub fn parse(s: &str) -> Option<MovementKind> {
        MovementKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl crate::http::query::OneOf for MovementKind {
    fn all() -> &'static [Self] {
        &MovementKind::ALL
    }
    fn as_str(self) -> &'static str {
        MovementKind::as_str(self)
    }
}

/// Why stock was adjusted by hand. `damaged` and `lost` remove stock, `found` adds it, a
/// `correction` goes either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AdjustmentReason {
    Damaged,
    Lost,
    Found,
    Correction,
}

impl AdjustmentReason {
    pub fn as_str(self) -> &'static str {
        match self {
            AdjustmentReason::Damaged => "damaged",
            AdjustmentReason::Lost => "lost",
            AdjustmentReason::Found => "found",
            AdjustmentReason::Correction => "correction",
        }
    }
}

/// A row of `stock_levels`, in column order (also the order of `RETURNING`).
#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = stock_levels)]
pub struct StockLevelRow {
    pub book_id: i64,
    pub on_hand: i64,
    pub reserved: i64,
    pub reorder_point: i64,
    pub reorder_quantity: i64,
    pub version: i32,
    pub updated_at: NaiveDateTime,
    pub avg_unit_cost_cents: Option<i64>,
    /// The book's unresolved low-stock alert, if any.
    pub alert_id: Option<i64>,
}

/// A row of `stock_movements`, in column order (also the order of `RETURNING`).
#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = stock_movements)]
pub struct MovementRow {
    pub id: i64,
    pub book_id: i64,
    pub quantity: i64,
    pub kind: String,
    pub reference: Option<String>,
    pub reason: Option<String>,
    pub note: Option<String>,
    pub unit_cost_cents: Option<i64>,
    pub user_id: Option<i64>,
    pub created_at: NaiveDateTime,
}

/// A book's stock.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "book_id": 1, "title": "The Left Hand of Darkness", "isbn": "9780441478125",
    "on_hand": 12, "reserved": 2, "available": 10, "reorder_point": 5, "reorder_quantity": 20,
    "low_stock": false, "on_order": 40, "avg_unit_cost_cents": 812, "stock_value_cents": 9744,
    "version": 4, "updated_at": "2026-11-25T10:00:00Z"
}))]
pub struct StockLevelView {
    pub book_id: i64,
    pub title: String,
    /// ISBN-13.
    pub isbn: String,
    /// Copies in the shop or warehouse; always the sum of the book's movements.
    pub on_hand: i64,
    /// Copies held for orders not yet fulfilled.
    pub reserved: i64,
    /// `on_hand - reserved`: what can still be sold.
    pub available: i64,
    /// At or below this many available copies the book is low on stock.
    pub reorder_point: i64,
    /// How many copies to reorder.
    pub reorder_quantity: i64,
    /// `available <= reorder_point`.
    pub low_stock: bool,
    /// Copies ordered from suppliers and not yet received (submitted or partially received
    /// purchase orders).
    pub on_order: i64,
    /// Moving average cost of one copy, updated by every receipt with a cost; absent until the
    /// first one.
    pub avg_unit_cost_cents: Option<i64>,
    /// `on_hand × avg_unit_cost_cents`: the stock's value at cost.
    pub stock_value_cents: Option<i64>,
    /// Changes on every stock movement and settings change; send it back in `If-Match`.
    pub version: i32,
    pub updated_at: DateTime<Utc>,
}

impl StockLevelView {
    pub fn new(row: StockLevelRow, title: String, isbn: String) -> Self {
        let available = row.on_hand - row.reserved;
        StockLevelView {
            book_id: row.book_id,
            title,
            isbn,
            on_hand: row.on_hand,
            reserved: row.reserved,
            available,
            reorder_point: row.reorder_point,
            reorder_quantity: row.reorder_quantity,
            low_stock: available <= row.reorder_point,
            on_order: 0,
            avg_unit_cost_cents: row.avg_unit_cost_cents,
            stock_value_cents: row.avg_unit_cost_cents.map(|c| c * row.on_hand),
            version: row.version,
            updated_at: utc(row.updated_at),
        }
    }
}

/// One entry of the stock ledger.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 31, "book_id": 1, "quantity": 20, "kind": "receipt", "reference": "receipt:7",
    "reason": null, "note": null, "unit_cost_cents": 950, "user_id": 2,
    "created_at": "2026-11-25T10:00:00Z"
}))]
pub struct MovementView {
    pub id: i64,
    pub book_id: i64,
    /// Signed: positive adds stock, negative removes it.
    pub quantity: i64,
    pub kind: MovementKind,
    /// What caused it, such as `receipt:7`.
    pub reference: Option<String>,
    /// For adjustments: `damaged`, `lost`, `found` or `correction`.
    pub reason: Option<String>,
    pub note: Option<String>,
    /// For receipts: what one copy cost, in minor units of the store currency.
    pub unit_cost_cents: Option<i64>,
    /// Who recorded it.
    pub user_id: Option<i64>,
    pub created_at: DateTime<Utc>,
}

impl From<MovementRow> for MovementView {
    fn from(row: MovementRow) -> Self {
        MovementView {
            id: row.id,
            book_id: row.book_id,
            quantity: row.quantity,
            // The table's CHECK admits only known kinds.
            kind: MovementKind::parse(&row.kind).unwrap_or(MovementKind::Adjustment),
            reference: row.reference,
            reason: row.reason,
            note: row.note,
            unit_cost_cents: row.unit_cost_cents,
            user_id: row.user_id,
            created_at: utc(row.created_at),
        }
    }
}

/// One line of a receipt.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiptLineInput {
    pub book_id: i64,
    /// Copies received, 1 to 100000.
    #[validate(range(min = 1, max = 100_000))]
    #[schema(minimum = 1, maximum = 100000)]
    pub quantity: i64,
    /// What one copy cost, in minor units of the store currency.
    #[validate(range(min = 0, max = 100_000_000))]
    #[schema(minimum = 0, maximum = 100000000)]
    pub unit_cost_cents: i64,
}

/// Body of `POST /inventory/receipts`.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, ToSchema)]
#[schema(example = json!({
    "supplier": "Gollancz Distribution", "note": "Delivery note 4471",
    "lines": [{"book_id": 1, "quantity": 20, "unit_cost_cents": 950},
              {"book_id": 2, "quantity": 5, "unit_cost_cents": 1200}]
}))]
#[serde(deny_unknown_fields)]
pub struct NewReceipt {
    #[validate(length(max = 300))]
    #[schema(max_length = 300)]
    pub supplier: Option<String>,
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub note: Option<String>,
    /// 1 to 500 lines, each book at most once.
    #[validate(length(min = 1, max = 500), nested)]
    #[schema(min_items = 1, max_items = 500)]
    pub lines: Vec<ReceiptLineInput>,
}

/// A line of a recorded receipt.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReceiptLineView {
    /// The `receipt` movement this line wrote.
    pub movement_id: i64,
    pub book_id: i64,
    pub quantity: i64,
    pub unit_cost_cents: i64,
}

/// A recorded receipt, with the stock levels it left behind.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 7, "supplier": "Gollancz Distribution", "note": "Delivery note 4471", "user_id": 2,
    "total_cost_cents": 25000, "currency": "USD",
    "lines": [{"movement_id": 31, "book_id": 1, "quantity": 20, "unit_cost_cents": 950},
              {"movement_id": 32, "book_id": 2, "quantity": 5, "unit_cost_cents": 1200}],
    "levels": [{"book_id": 1, "title": "The Left Hand of Darkness", "isbn": "9780441478125",
                "on_hand": 20, "reserved": 0, "available": 20, "reorder_point": 0,
                "reorder_quantity": 0, "low_stock": false, "version": 2,
                "updated_at": "2026-11-25T10:00:00Z"}],
    "created_at": "2026-11-25T10:00:00Z"
}))]
pub struct ReceiptView {
    pub id: i64,
    pub supplier: Option<String>,
    pub note: Option<String>,
    /// Who recorded it.
    pub user_id: Option<i64>,
    /// Sum of quantity × unit cost over the lines.
    pub total_cost_cents: i64,
    pub currency: String,
    /// In the order sent.
    pub lines: Vec<ReceiptLineView>,
    /// The resulting stock of each line's book, in line order.
    pub levels: Vec<StockLevelView>,
    pub created_at: DateTime<Utc>,
}

/// Body of `POST /inventory/adjustments`.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[schema(example = json!({"book_id": 1, "quantity": -2, "reason": "damaged",
    "note": "Water damage in the stock room"}))]
#[serde(deny_unknown_fields)]
pub struct NewAdjustment {
    pub book_id: i64,
    /// Signed, non-zero, at most 100000 either way; negative for `damaged` and `lost`, positive
    /// for `found`.
    #[validate(range(min = -100_000, max = 100_000))]
    #[schema(minimum = -100000, maximum = 100000)]
    pub quantity: i64,
    pub reason: AdjustmentReason,
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub note: Option<String>,
}

/// A recorded adjustment: its movement and the new stock level.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AdjustmentView {
    pub movement: MovementView,
    pub level: StockLevelView,
}

/// Body of `PATCH /inventory/{book_id}`: absent fields are kept.
#[derive(Debug, Clone, Default, Deserialize, Validate, ToSchema)]
#[schema(example = json!({"reorder_point": 5, "reorder_quantity": 20}))]
#[serde(deny_unknown_fields)]
pub struct LevelPatch {
    #[validate(range(min = 0, max = 1_000_000))]
    #[schema(minimum = 0, maximum = 1000000)]
    pub reorder_point: Option<i64>,
    #[validate(range(min = 0, max = 1_000_000))]
    #[schema(minimum = 0, maximum = 1000000)]
    pub reorder_quantity: Option<i64>,
}

/// Query of `GET /inventory`.
#[derive(Debug, Clone, Default, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LevelQuery {
    /// `true`: only books at or below their reorder point (`available <= reorder_point`);
    /// `false`: only the others.
    pub low_stock: Option<bool>,
    /// Case-insensitive substring of the title, or an exact ISBN (ISBN-10 or ISBN-13).
    pub q: Option<String>,
    #[param(minimum = 1, default = 1)]
    pub page: Option<i64>,
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub per_page: Option<i64>,
}

/// Query of `GET /inventory/movements`. Newest first.
#[derive(Debug, Clone, Default, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MovementQuery {
    pub book_id: Option<i64>,
    /// `receipt`, `sale`, `return`, `adjustment` or `stocktake`.
    #[serde(default, deserialize_with = "crate::http::query::one_of")]
    #[param(inline)]
    pub kind: Option<MovementKind>,
    /// Earliest time, inclusive: RFC 3339 (`2026-11-25T10:00:00Z`) or a date (`2026-11-25`,
    /// from its start, UTC).
    #[param(inline)]
    pub from: Option<crate::http::query::TimeBound>,
    /// Latest time, inclusive: RFC 3339 or a date (to its end, UTC).
    #[param(inline)]
    pub to: Option<crate::http::query::TimeBound>,
    #[param(minimum = 1, default = 1)]
    pub page: Option<i64>,
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub per_page: Option<i64>,
}
