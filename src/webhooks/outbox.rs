//! The transactional outbox (core invariant 6). An event is written in the transaction of the
//! change that caused it, with one pending delivery per active endpoint that wants it: if the
//! transaction rolls back, no event exists; once it commits, the event survives any crash until
//! a worker has delivered it.

use crate::db::schema::{webhook_deliveries, webhook_endpoints, webhook_events};
use crate::db::{in_transaction, DbConn};
use crate::error::ApiError;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;
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

/// Woken by every emitted event, so that an idle worker starts at once instead of at its next
/// poll. It may wake before the event's transaction commits; the worker then finds nothing and
/// the poll picks the event up.
pub static WAKE: LazyLock<Notify> = LazyLock::new(Notify::new);

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

/// Records event `kind` with `data` in the caller's transaction (it refuses to run outside one),
/// with a pending delivery to each active endpoint subscribed to it. When no endpoint wants the
/// event, nothing is written: there would be no one to deliver it to. Returns the event id if one
/// was written.
pub fn emit(
    conn: &mut DbConn,
    kind: EventType,
    data: serde_json::Value,
) -> Result<Option<String>, ApiError> {
    if !in_transaction(conn)? {
        return Err(ApiError::internal(
            "outbox::emit called outside a transaction",
        ));
    }
    let endpoints: Vec<(i64, String)> = webhook_endpoints::table
        .filter(webhook_endpoints::active.eq(true))
        .select((webhook_endpoints::id, webhook_endpoints::event_types))
        .load(conn)?;
    let targets: Vec<i64> = endpoints
        .into_iter()
        .filter(|(_, types)| subscribes(types, kind))
        .map(|(id, _)| id)
        .collect();
    if targets.is_empty() {
        return Ok(None);
    }
    let id = enqueue(conn, kind, &data, &targets)?;
    Ok(Some(id))
}

/// Writes an event and a pending delivery of it to each of `endpoint_ids`; returns the event id.
pub fn enqueue(
    conn: &mut DbConn,
    kind: EventType,
    data: &serde_json::Value,
    endpoint_ids: &[i64],
) -> Result<String, ApiError> {
    let at = crate::db::now();
    let id = uuid::Uuid::new_v4().to_string();
    diesel::insert_into(webhook_events::table)
        .values((
            webhook_events::id.eq(&id),
            webhook_events::event_type.eq(kind.as_str()),
            webhook_events::payload.eq(payload(&id, kind, at, data)?),
            webhook_events::created_at.eq(at),
        ))
        .execute(conn)?;
    // One statement per endpoint: batch inserts are not available on the multi-backend
    // connection, and an event rarely has more than a handful of endpoints.
    for endpoint_id in endpoint_ids {
        diesel::insert_into(webhook_deliveries::table)
            .values((
                webhook_deliveries::event_id.eq(&id),
                webhook_deliveries::endpoint_id.eq(*endpoint_id),
                webhook_deliveries::status.eq("pending"),
                webhook_deliveries::attempts.eq(0),
                webhook_deliveries::next_attempt_at.eq(at),
                webhook_deliveries::created_at.eq(at),
            ))
            .execute(conn)?;
    }
    WAKE.notify_one();
    Ok(id)
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
