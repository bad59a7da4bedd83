//! The transactional outbox (core invariant 6). An event is written in the transaction of the
//! change that caused it, with one pending delivery per active endpoint that wants it: if the
//! transaction rolls back, no event exists; once it commits, the event survives any crash until
//! a worker has delivered it.

use crate::db::schema::webhook_endpoints;
use crate::db::{DbConn, MultiBackend, Placeholders, WriteTx};
use crate::error::ApiError;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{BigInt, Text, Timestamp};
use serde::Serialize;
use std::rc::Rc;
use std::sync::LazyLock;
use tokio::sync::Notify;

/// The kinds of event an endpoint can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
pub enum EventType {
    #[serde(rename = "order.created")]
    OrderCreated,
    #[serde(rename = "order.paid")]
    OrderPaid,
    #[serde(rename = "order.fulfilled")]
    OrderFulfilled,
    #[serde(rename = "order.cancelled")]
    OrderCancelled,
    #[serde(rename = "order.returned")]
    OrderReturned,
    #[serde(rename = "inventory.low_stock")]
    LowStock,
    #[serde(rename = "inventory.stock_changed")]
    StockChanged,
    #[serde(rename = "purchase_order.received")]
    PurchaseOrderReceived,
    #[serde(rename = "stocktake.completed")]
    StocktakeCompleted,
    /// Sent by `POST /webhooks/{id}/test` only; nobody subscribes to it.
    #[serde(rename = "ping")]
    Ping,
}

impl EventType {
    /// Every type an endpoint may subscribe to (all but `ping`).
    pub const SUBSCRIBABLE: [EventType; 9] = [
        EventType::OrderCreated,
        EventType::OrderPaid,
        EventType::OrderFulfilled,
        EventType::OrderCancelled,
        EventType::OrderReturned,
        EventType::LowStock,
        EventType::StockChanged,
        EventType::PurchaseOrderReceived,
        EventType::StocktakeCompleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::OrderCreated => "order.created",
            EventType::OrderPaid => "order.paid",
            EventType::OrderFulfilled => "order.fulfilled",
            EventType::OrderCancelled => "order.cancelled",
            EventType::OrderReturned => "order.returned",
            EventType::LowStock => "inventory.low_stock",
            EventType::StockChanged => "inventory.stock_changed",
            EventType::PurchaseOrderReceived => "purchase_order.received",
            EventType::StocktakeCompleted => "stocktake.completed",
            EventType::Ping => "ping",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EventType::SUBSCRIBABLE
            .into_iter()
            .chain([EventType::Ping])
            .find(|t| t.as_str() == s)
    }
}

/// Woken when a transaction that emitted events commits, so that an idle worker starts at once
/// instead of at its next poll (which still finds events emitted outside `write_transaction`).
pub static WAKE: LazyLock<Notify> = LazyLock::new(Notify::new);

fn wake_worker() {
    WAKE.notify_one();
}

/// Whether an endpoint subscribed to `event_types` (comma-separated) wants `kind`.
pub fn subscribes(event_types: &str, kind: EventType) -> bool {
    event_types
        .split(',')
        .any(|t| t.trim() == kind.as_str() || t.trim() == "*")
}

/// The JSON body delivered for an event, exactly as signed and sent on every attempt:
/// `{id, type, created_at, data}` in that order.
pub fn payload(
    id: &str,
    kind: EventType,
    at: NaiveDateTime,
    data: &serde_json::Value,
) -> Result<String, ApiError> {
    #[derive(Serialize)]
    struct Body<'a> {
        id: &'a str,
        #[serde(rename = "type")]
        kind: &'static str,
        created_at: String,
        data: &'a serde_json::Value,
    }
    serde_json::to_string(&Body {
        id,
        kind: kind.as_str(),
        created_at: at
            .and_utc()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        data,
    })
    .map_err(|e| ApiError::internal(format!("cannot serialise event {id}: {e}")))
}

/// Records event `kind` with `data` in the caller's write transaction,
/// with a pending delivery to each active endpoint subscribed to it. When no endpoint wants the
/// event, nothing is written: there would be no one to deliver it to. Returns the event id if one
/// was written.
pub fn emit(
    tx: &mut WriteTx<'_>,
    kind: EventType,
    data: serde_json::Value,
) -> Result<Option<String>, ApiError> {
    let targets = subscribers(tx, kind)?;
    if targets.is_empty() {
        return Ok(None);
    }
    let id = enqueue(tx, kind, &data, &targets)?;
    Ok(Some(id))
}

/// [`emit`] for a change of many rows at once (a stocktake, a purchase-order receipt): one event
/// of `kind` per item of `data`, the rows written by a few multi-row inserts rather than two
/// statements per event. `data` is only consumed when an endpoint wants the events. Returns the
/// number of events written.
pub fn emit_all(
    tx: &mut WriteTx<'_>,
    kind: EventType,
    data: impl IntoIterator<Item = serde_json::Value>,
) -> Result<usize, ApiError> {
    let targets = subscribers(tx, kind)?;
    if targets.is_empty() {
        return Ok(0);
    }
    let at = crate::db::now();
    let events = data
        .into_iter()
        .map(|data| {
            let id = uuid::Uuid::new_v4().to_string();
            let body = payload(&id, kind, at, &data)?;
            Ok((id, body))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    if events.is_empty() {
        return Ok(0);
    }
    insert_events(tx, kind, at, &events)?;
    let ids: Vec<&str> = events.iter().map(|(id, _)| id.as_str()).collect();
    insert_deliveries(tx, &ids, &targets, at)?;
    tx.after_commit(wake_worker);
    Ok(events.len())
}

/// The active endpoints subscribed to `kind`.
fn subscribers(tx: &mut WriteTx<'_>, kind: EventType) -> Result<Vec<i64>, ApiError> {
    let endpoints = active_endpoints(tx)?;
    Ok(endpoints
        .0
        .iter()
        .filter(|(_, types)| subscribes(types, kind))
        .map(|(id, _)| *id)
        .collect())
}

/// Active endpoints: (id, subscribed event types), as one write transaction read them.
#[derive(Clone)]
struct Endpoints(Rc<Vec<(i64, String)>>);

/// The active endpoints, read once per write transaction (and remembered by it): an order emits
/// an event per line and per status change, and each would otherwise read the table again.
/// Reading anew in every transaction keeps every replica exact (a cache kept for some time would
/// miss events of an endpoint registered meanwhile). Nothing that changes endpoints emits events
/// in the same transaction.
fn active_endpoints(tx: &mut WriteTx<'_>) -> Result<Endpoints, ApiError> {
    if let Some(endpoints) = tx.memo::<Endpoints>() {
        return Ok(endpoints.clone());
    }
    let endpoints = Endpoints(Rc::new(
        webhook_endpoints::table
            .filter(webhook_endpoints::active.eq(true))
            .select((webhook_endpoints::id, webhook_endpoints::event_types))
            .load(tx.conn())?,
    ));
    tx.remember(endpoints.clone());
    Ok(endpoints)
}

/// Writes an event and a pending delivery of it to each of `endpoint_ids`; returns the event id.
pub fn enqueue(
    tx: &mut WriteTx<'_>,
    kind: EventType,
    data: &serde_json::Value,
    endpoint_ids: &[i64],
) -> Result<String, ApiError> {
    let at = crate::db::now();
    let id = uuid::Uuid::new_v4().to_string();
    let body = payload(&id, kind, at, data)?;
    insert_events(tx, kind, at, &[(id.clone(), body)])?;
    insert_deliveries(tx, &[&id], endpoint_ids, at)?;
    tx.after_commit(wake_worker);
    Ok(id)
}

/// Rows per multi-row insert: four binds each, well below either backend's limit.
const CHUNK: usize = 1_000;

/// Inserts `events` (id, payload) of `kind`, created `at`.
fn insert_events(
    conn: &mut DbConn,
    kind: EventType,
    at: NaiveDateTime,
    events: &[(String, String)],
) -> Result<(), ApiError> {
    for chunk in events.chunks(CHUNK) {
        let mut binds = Placeholders::new(conn);
        let rows: Vec<String> = chunk.iter().map(|_| binds.row(4)).collect();
        let text = format!(
            "INSERT INTO webhook_events (id, event_type, payload, created_at) VALUES {}",
            rows.join(", ")
        );
        let mut query: BoxedSqlQuery<'_, MultiBackend, SqlQuery> =
            diesel::sql_query(text).into_boxed();
        for (id, body) in chunk {
            query = query
                .bind::<Text, _>(id.as_str())
                .bind::<Text, _>(kind.as_str())
                .bind::<Text, _>(body.as_str())
                .bind::<Timestamp, _>(at);
        }
        query.execute(conn)?;
    }
    Ok(())
}

/// Inserts a pending delivery of each of `event_ids` to each of `endpoint_ids`, due at once.
fn insert_deliveries(
    conn: &mut DbConn,
    event_ids: &[&str],
    endpoint_ids: &[i64],
    at: NaiveDateTime,
) -> Result<(), ApiError> {
    let pairs: Vec<(&str, i64)> = event_ids
        .iter()
        .flat_map(|event| endpoint_ids.iter().map(move |endpoint| (*event, *endpoint)))
        .collect();
    for chunk in pairs.chunks(CHUNK) {
        let mut binds = Placeholders::new(conn);
        let rows: Vec<String> = chunk
            .iter()
            .map(|_| {
                format!(
                    "({}, {}, 'pending', 0, {}, {})",
                    binds.one(),
                    binds.one(),
                    binds.one(),
                    binds.one()
                )
            })
            .collect();
        let text = format!(
            "INSERT INTO webhook_deliveries \
             (event_id, endpoint_id, status, attempts, next_attempt_at, created_at) VALUES {}",
            rows.join(", ")
        );
        let mut query: BoxedSqlQuery<'_, MultiBackend, SqlQuery> =
            diesel::sql_query(text).into_boxed();
        for (event_id, endpoint_id) in chunk {
            query = query
                .bind::<Text, _>(*event_id)
                .bind::<BigInt, _>(*endpoint_id)
                .bind::<Timestamp, _>(at)
                .bind::<Timestamp, _>(at);
        }
        query.execute(conn)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_round_trip_and_match_subscriptions() {
        for t in EventType::SUBSCRIBABLE {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            assert_eq!(
                serde_json::to_value(t).ok(),
                Some(serde_json::Value::String(t.as_str().to_owned()))
            );
        }
        assert_eq!(EventType::parse("order.shipped"), None);
        assert!(subscribes(
            "order.paid, order.created",
            EventType::OrderCreated
        ));
        assert!(!subscribes("order.paid", EventType::OrderCreated));
        assert!(!subscribes("order.created.x", EventType::OrderCreated));
    }
}
