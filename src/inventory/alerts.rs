//! Low-stock alerts. An alert opens when a book's `available` drops to or below its reorder point,
//! whatever the cause (a reservation, a sale, an adjustment, a stocktake, a raised reorder point),
//! and resolves by itself when `available` goes back above it; staff may acknowledge it meanwhile.
//!
//! [`evaluate`] runs after every change to a stock level, in the change's transaction, on the row
//! the change has just updated (and so locked): `stock_levels.alert_id` says whether the book has
//! an unresolved alert, so concurrent changes open and resolve each alert exactly once, and a
//! change that crosses no threshold costs no query at all. The partial unique index on
//! `stock_alerts (book_id) WHERE status <> 'resolved'` backs this up.

use crate::catalog::model::utc;
use crate::db::schema::{books, stock_alerts, stock_levels};
use crate::db::{now, write_transaction, DbConn, WriteTx};
use crate::error::ApiError;
use crate::http::{Page, PageParams};
use crate::inventory::model::StockLevelRow;
use crate::webhooks::outbox::{self, EventType};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

/// Where an alert stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// Stock is low and nobody has acknowledged it yet.
    Open,
    /// Staff have seen it (and, say, reordered); it stays until stock recovers.
    Acknowledged,
    /// Stock went back above the reorder point.
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Open => "open",
            AlertStatus::Acknowledged => "acknowledged",
            AlertStatus::Resolved => "resolved",
        }
    }

    fn parse(s: &str) -> Option<AlertStatus> {
        [
            AlertStatus::Open,
            AlertStatus::Acknowledged,
            AlertStatus::Resolved,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
    }
}

/// A row of `stock_alerts`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = stock_alerts)]
pub struct AlertRow {
    pub id: i64,
    pub book_id: i64,
    pub status: String,
    pub on_hand: i64,
    pub reserved: i64,
    pub available: i64,
    pub reorder_point: i64,
    pub opened_at: NaiveDateTime,
    pub acknowledged_at: Option<NaiveDateTime>,
    pub acknowledged_by: Option<i64>,
    pub resolved_at: Option<NaiveDateTime>,
}

/// A low-stock alert, with the book's figures when it opened.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 7, "book_id": 42, "title": "Dune", "isbn": "9780441172719", "status": "open",
    "on_hand": 3, "reserved": 1, "available": 2, "reorder_point": 2,
    "opened_at": "2026-11-25T10:00:00Z", "acknowledged_at": null, "acknowledged_by": null,
    "resolved_at": null
}))]
pub struct AlertView {
    pub id: i64,
    pub book_id: i64,
    pub title: String,
    pub isbn: String,
    pub status: AlertStatus,
    /// `on_hand`, `reserved`, `available` and `reorder_point` when the alert opened.
    pub on_hand: i64,
    pub reserved: i64,
    pub available: i64,
    pub reorder_point: i64,
    pub opened_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// The staff user who acknowledged it.
    pub acknowledged_by: Option<i64>,
    pub resolved_at: Option<DateTime<Utc>>,
}

impl AlertView {
    fn new(row: AlertRow, title: String, isbn: String) -> Result<Self, ApiError> {
        Ok(AlertView {
            status: AlertStatus::parse(&row.status).ok_or_else(|| {
                ApiError::internal(format!("alert {} has status {}", row.id, row.status))
            })?,
            id: row.id,
            book_id: row.book_id,
            title,
            isbn,
            on_hand: row.on_hand,
            reserved: row.reserved,
            available: row.available,
            reorder_point: row.reorder_point,
            opened_at: utc(row.opened_at),
            acknowledged_at: row.acknowledged_at.map(utc),
            acknowledged_by: row.acknowledged_by,
            resolved_at: row.resolved_at.map(utc),
        })
    }
}

crate::query_enum! {
    /// The `status` filter of `GET /inventory/alerts`.
    pub enum AlertFilter {
        Open = "open",
        Acknowledged = "acknowledged",
        Resolved = "resolved",
        /// Open or acknowledged.
        Unresolved = "unresolved",
    }
}

/// Query of `GET /inventory/alerts`. Newest first.
#[derive(Debug, Clone, Default, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    /// `open`, `acknowledged`, `resolved`, or `unresolved` (open or acknowledged).
    #[serde(default, deserialize_with = "crate::http::query::one_of")]
    #[param(inline)]
    pub status: Option<AlertFilter>,
    pub book_id: Option<i64>,
    #[param(minimum = 1, default = 1)]
    pub page: Option<i64>,
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub per_page: Option<i64>,
}

/// Opens or resolves the book's alert after a change to its level, inside the change's
/// transaction; `level` is the row as the change left it.
pub fn evaluate(tx: &mut WriteTx<'_>, level: &StockLevelRow) -> Result<(), ApiError> {
    let available = level.on_hand - level.reserved;
    let low = available <= level.reorder_point;
    match (low, level.alert_id) {
        (true, None) => open(tx, level, available),
        (false, Some(alert_id)) => resolve(tx, level.book_id, alert_id),
        _ => Ok(()),
    }
}

fn open(tx: &mut WriteTx<'_>, level: &StockLevelRow, available: i64) -> Result<(), ApiError> {
    let at = now();
    let id: i64 = diesel::insert_into(stock_alerts::table)
        .values((
            stock_alerts::book_id.eq(level.book_id),
            stock_alerts::status.eq(AlertStatus::Open.as_str()),
            stock_alerts::on_hand.eq(level.on_hand),
            stock_alerts::reserved.eq(level.reserved),
            stock_alerts::available.eq(available),
            stock_alerts::reorder_point.eq(level.reorder_point),
            stock_alerts::opened_at.eq(at),
        ))
        .returning(stock_alerts::id)
        .get_result(tx.conn())?;
    diesel::update(stock_levels::table.find(level.book_id))
        .set(stock_levels::alert_id.eq(Some(id)))
        .execute(tx.conn())?;
    outbox::emit(
        tx,
        EventType::LowStock,
        serde_json::json!({
            "alert_id": id,
            "book_id": level.book_id,
            "on_hand": level.on_hand,
            "reserved": level.reserved,
            "available": available,
            "reorder_point": level.reorder_point,
            "reorder_quantity": level.reorder_quantity,
        }),
    )?;
    Ok(())
}

fn resolve(conn: &mut DbConn, book_id: i64, alert_id: i64) -> Result<(), ApiError> {
    diesel::update(
        stock_alerts::table
            .filter(stock_alerts::id.eq(alert_id))
            .filter(stock_alerts::status.ne(AlertStatus::Resolved.as_str())),
    )
    .set((
        stock_alerts::status.eq(AlertStatus::Resolved.as_str()),
        stock_alerts::resolved_at.eq(now()),
    ))
    .execute(conn)?;
    diesel::update(stock_levels::table.find(book_id))
        .set(stock_levels::alert_id.eq(None::<i64>))
        .execute(conn)?;
    Ok(())
}

fn load(conn: &mut DbConn, id: i64) -> Result<AlertView, ApiError> {
    let (row, title, isbn): (AlertRow, String, String) = stock_alerts::table
        .inner_join(books::table)
        .filter(stock_alerts::id.eq(id))
        .select((AlertRow::as_select(), books::title, books::isbn))
        .first(conn)
        .optional()?
        .ok_or_else(|| ApiError::NotFound(format!("no alert with id {id}")))?;
    AlertView::new(row, title, isbn)
}

pub fn get_alert(conn: &mut DbConn, id: i64) -> Result<AlertView, ApiError> {
    load(conn, id)
}

/// Lists alerts, newest first, filtered by status and book.
pub fn list_alerts(conn: &mut DbConn, query: &AlertQuery) -> Result<Page<AlertView>, ApiError> {
    let (page, per_page) = PageParams {
        page: query.page,
        per_page: query.per_page,
    }
    .resolve()?;
    let statuses: Option<Vec<&'static str>> = query.status.map(|filter| {
        match filter {
            AlertFilter::Open => vec![AlertStatus::Open],
            AlertFilter::Acknowledged => vec![AlertStatus::Acknowledged],
            AlertFilter::Resolved => vec![AlertStatus::Resolved],
            AlertFilter::Unresolved => vec![AlertStatus::Open, AlertStatus::Acknowledged],
        }
        .into_iter()
        .map(AlertStatus::as_str)
        .collect()
    });
    let book_id = query.book_id;
    let filtered = || {
        let mut q = stock_alerts::table.inner_join(books::table).into_boxed();
        if let Some(statuses) = &statuses {
            q = q.filter(stock_alerts::status.eq_any(statuses.clone()));
        }
        if let Some(book_id) = book_id {
            q = q.filter(stock_alerts::book_id.eq(book_id));
        }
        q
    };
    let total: i64 = filtered().count().get_result(conn)?;
    let rows: Vec<(AlertRow, String, String)> = filtered()
        .order(stock_alerts::id.desc())
        .limit(per_page)
        .offset(Page::<AlertView>::offset(page, per_page))
        .select((AlertRow::as_select(), books::title, books::isbn))
        .load(conn)?;
    Ok(Page {
        items: rows
            .into_iter()
            .map(|(row, title, isbn)| AlertView::new(row, title, isbn))
            .collect::<Result<_, _>>()?,
        page,
        per_page,
        total,
    })
}

/// Marks an open alert as seen by `user_id`. Acknowledging it again changes nothing; a resolved
/// alert cannot be acknowledged (409).
pub fn acknowledge(conn: &mut DbConn, id: i64, user_id: i64) -> Result<AlertView, ApiError> {
    write_transaction(conn, |tx| {
        let updated = diesel::update(
            stock_alerts::table
                .filter(stock_alerts::id.eq(id))
                .filter(stock_alerts::status.eq(AlertStatus::Open.as_str())),
        )
        .set((
            stock_alerts::status.eq(AlertStatus::Acknowledged.as_str()),
            stock_alerts::acknowledged_at.eq(now()),
            stock_alerts::acknowledged_by.eq(user_id),
        ))
        .execute(tx.conn())?;
        let alert = load(tx, id)?;
        if updated == 0 && alert.status == AlertStatus::Resolved {
            return Err(ApiError::Conflict(format!(
                "alert {id} is already resolved: stock went back above the reorder point"
            )));
        }
        Ok(alert)
    })
}
