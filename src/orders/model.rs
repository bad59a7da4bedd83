//! Order rows and the request and response types of `/orders`.

use crate::auth::model::utc;
use crate::db::schema::{order_events, order_lines, orders};
use crate::http::query::TimeBound;
use crate::orders::state::OrderStatus;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

/// Most lines one order may have.
pub const MAX_LINES: usize = 100;

/// A line of `POST /orders`.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrderLine {
    pub book_id: i64,
    /// Copies, 1 to 1000.
    #[validate(range(min = 1, max = 1000))]
    #[schema(minimum = 1, maximum = 1000)]
    pub quantity: i64,
}

/// Where an order is delivered.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShippingAddress {
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub line1: String,
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub line2: Option<String>,
    #[validate(length(min = 1, max = 100))]
    #[schema(min_length = 1, max_length = 100)]
    pub city: String,
    #[validate(length(min = 1, max = 20))]
    #[schema(min_length = 1, max_length = 20)]
    pub postal_code: String,
    /// ISO 3166-1 alpha-2 code, such as `GB`.
    #[validate(length(equal = 2))]
    pub country: String,
}

/// Body of `POST /orders`.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, ToSchema)]
#[schema(example = json!({
    "lines": [{"book_id": 1, "quantity": 2}, {"book_id": 7, "quantity": 1}],
    "shipping_address": {"name": "Ursula Reader", "line1": "1 Orchard Lane", "city": "Portland",
                         "postal_code": "97201", "country": "US"},
    "notes": "Gift wrap, please"
}))]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    /// 1 to 100 lines, each book at most once.
    #[validate(length(min = 1, max = 100), nested)]
    #[schema(min_items = 1, max_items = 100)]
    pub lines: Vec<NewOrderLine>,
    /// Staff only: the customer ordered for (none: a walk-in sale). A customer may only name
    /// themselves.
    pub customer_id: Option<i64>,
    #[validate(nested)]
    pub shipping_address: Option<ShippingAddress>,
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub notes: Option<String>,
    /// Staff only, a counter sale: take the payment with the order, in the same transaction.
    /// Only `{"method": "cash"}`; other methods go through `POST /orders/{id}/payments`.
    #[validate(nested)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment: Option<crate::orders::payments::NewPayment>,
    /// Staff only, with `payment`: hand the books over at once, so the order is created
    /// `fulfilled` (its stock consumed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fulfil: bool,
}

/// Body of `POST /orders/{id}/cancel` (optional).
#[derive(Debug, Clone, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelOrder {
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub reason: Option<String>,
}

/// A row of `orders`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = orders)]
pub struct OrderRow {
    pub id: i64,
    pub customer_id: Option<i64>,
    pub status: String,
    pub currency: String,
    pub subtotal_cents: i64,
    pub total_cents: i64,
    pub shipping_address: Option<String>,
    pub notes: Option<String>,
    pub expires_at: NaiveDateTime,
    pub created_by: i64,
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A row of `order_lines`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = order_lines)]
pub struct OrderLineRow {
    pub id: i64,
    pub order_id: i64,
    pub book_id: i64,
    pub title: String,
    pub isbn: String,
    pub unit_price_cents: i64,
    pub quantity: i64,
    pub line_total_cents: i64,
    pub position: i32,
    pub returned_quantity: i64,
}

/// A row of `order_events`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = order_events)]
pub struct OrderEventRow {
    pub id: i64,
    pub order_id: i64,
    pub from_status: Option<String>,
    pub to_status: String,
    pub actor_user_id: Option<i64>,
    pub note: Option<String>,
    pub created_at: NaiveDateTime,
}

/// A line of an order: the book as it was sold.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderLineView {
    pub book_id: i64,
    /// Title at the time of sale.
    pub title: String,
    pub isbn: String,
    /// List price at the time of sale.
    pub unit_price_cents: i64,
    pub quantity: i64,
    /// `unit_price_cents * quantity`.
    pub line_total_cents: i64,
    /// Copies that have come back through returns.
    pub returned_quantity: i64,
}

impl From<OrderLineRow> for OrderLineView {
    fn from(row: OrderLineRow) -> Self {
        OrderLineView {
            book_id: row.book_id,
            title: row.title,
            isbn: row.isbn,
            unit_price_cents: row.unit_price_cents,
            quantity: row.quantity,
            line_total_cents: row.line_total_cents,
            returned_quantity: row.returned_quantity,
        }
    }
}

/// An order with its lines.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderView {
    pub id: i64,
    /// None: a walk-in sale.
    pub customer_id: Option<i64>,
    pub status: OrderStatus,
    pub currency: String,
    /// Sum of the lines' totals.
    pub subtotal_cents: i64,
    /// What the customer pays: the subtotal (no tax or shipping yet).
    pub total_cents: i64,
    pub shipping_address: Option<ShippingAddress>,
    pub notes: Option<String>,
    /// An unpaid order is cancelled after this time.
    pub expires_at: DateTime<Utc>,
    /// The user who placed the order.
    pub created_by: i64,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub lines: Vec<OrderLineView>,
}

impl OrderView {
    pub fn from_rows(row: OrderRow, lines: Vec<OrderLineRow>) -> Result<Self, String> {
        let status = OrderStatus::parse(&row.status)
            .ok_or_else(|| format!("order {} has unknown status {}", row.id, row.status))?;
        let shipping_address = row
            .shipping_address
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| format!("order {} has a bad shipping address: {e}", row.id))?;
        Ok(OrderView {
            id: row.id,
            customer_id: row.customer_id,
            status,
            currency: row.currency,
            subtotal_cents: row.subtotal_cents,
            total_cents: row.total_cents,
            shipping_address,
            notes: row.notes,
            expires_at: utc(row.expires_at),
            created_by: row.created_by,
            version: row.version,
            created_at: utc(row.created_at),
            updated_at: utc(row.updated_at),
            lines: lines.into_iter().map(OrderLineView::from).collect(),
        })
    }
}

/// A change of an order's status.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderEventView {
    pub id: i64,
    /// None for the order's creation.
    pub from_status: Option<OrderStatus>,
    pub to_status: OrderStatus,
    /// Who did it; none for the system (expiry).
    pub actor_user_id: Option<i64>,
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl OrderEventView {
    pub fn from_row(row: OrderEventRow) -> Result<Self, String> {
        let parse = |s: &str| {
            OrderStatus::parse(s).ok_or_else(|| format!("order event {} has status {s}", row.id))
        };
        Ok(OrderEventView {
            id: row.id,
            from_status: row.from_status.as_deref().map(parse).transpose()?,
            to_status: parse(&row.to_status)?,
            actor_user_id: row.actor_user_id,
            note: row.note,
            created_at: utc(row.created_at),
        })
    }
}

crate::query_enum! {
    /// Orders of `GET /orders`; a leading `-` sorts descending.
    pub enum OrderSort {
        /// Newest first (the default).
        CreatedDesc = "-created",
        Created = "created",
        Total = "total",
        TotalDesc = "-total",
    }
}

/// Query of `GET /orders`. Customers see only their own orders; the filters apply within them.
#[derive(Debug, Clone, Default, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderQuery {
    /// One status, such as `pending_payment`.
    #[serde(default, deserialize_with = "crate::http::query::one_of")]
    #[param(inline)]
    pub status: Option<OrderStatus>,
    pub customer_id: Option<i64>,
    /// Earliest creation time, inclusive: RFC 3339 or a date (from its start, UTC).
    #[param(inline)]
    pub from: Option<TimeBound>,
    /// Latest creation time, inclusive: RFC 3339 or a date (to its end, UTC).
    #[param(inline)]
    pub to: Option<TimeBound>,
    /// `-created` (default, newest first), `created`, `total` or `-total`.
    #[serde(default, deserialize_with = "crate::http::query::one_of")]
    #[param(inline)]
    pub sort: Option<OrderSort>,
    #[param(minimum = 1, default = 1)]
    pub page: Option<i64>,
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub per_page: Option<i64>,
}
