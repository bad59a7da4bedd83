//! Webhook rows, request bodies and response views.

use crate::catalog::model::utc;
use crate::db::schema::{webhook_attempts, webhook_deliveries, webhook_endpoints};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

/// A row of `webhook_endpoints`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = webhook_endpoints)]
pub struct EndpointRow {
    pub id: i64,
    pub url: String,
    pub description: Option<String>,
    /// Comma-separated event types, or `*`.
    pub event_types: String,
    pub secret: String,
    pub active: bool,
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A row of `webhook_deliveries`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = webhook_deliveries)]
pub struct DeliveryRow {
    pub id: i64,
    pub event_id: String,
    pub endpoint_id: i64,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub completed_at: Option<NaiveDateTime>,
}

/// A row of `webhook_attempts`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = webhook_attempts)]
pub struct AttemptRow {
    pub id: i64,
    pub delivery_id: i64,
    pub attempted_at: NaiveDateTime,
    pub status_code: Option<i32>,
    pub latency_ms: i64,
    pub error: Option<String>,
}

/// A registered webhook endpoint. The secret is never shown again after creation (or a
/// rotation).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 3, "url": "https://erp.example.com/hooks/bookstore", "description": "ERP sync",
    "event_types": ["order.paid", "order.cancelled"], "active": true, "version": 1,
    "created_at": "2026-11-25T10:00:00Z", "updated_at": "2026-11-25T10:00:00Z"
}))]
pub struct EndpointView {
    pub id: i64,
    /// Where deliveries are POSTed (http or https), in normalised form.
    pub url: String,
    pub description: Option<String>,
    /// The event types it receives; `["*"]` for every type.
    pub event_types: Vec<String>,
    /// Inactive endpoints get no new deliveries, and their pending ones wait.
    pub active: bool,
    /// Changes on every update; send it back in `If-Match`.
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<EndpointRow> for EndpointView {
    fn from(row: EndpointRow) -> Self {
        EndpointView {
            id: row.id,
            // Stored URLs that predate the rule against credentials never show them.
            url: crate::webhooks::egress::without_credentials(&row.url),
            description: row.description,
            event_types: row
                .event_types
                .split(',')
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect(),
            active: row.active,
            version: row.version,
            created_at: utc(row.created_at),
            updated_at: utc(row.updated_at),
        }
    }
}

/// An endpoint with its signing secret: the answer to a creation or a secret rotation, the only
/// times the secret is shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 3, "url": "https://erp.example.com/hooks/bookstore", "description": "ERP sync",
    "event_types": ["order.paid", "order.cancelled"], "active": true, "version": 1,
    "created_at": "2026-11-25T10:00:00Z", "updated_at": "2026-11-25T10:00:00Z",
    "secret": "whsec_5f0c4b9a0d2e8f7a6b1c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8"
}))]
pub struct EndpointWithSecret {
    #[serde(flatten)]
    pub endpoint: EndpointView,
    /// The HMAC-SHA256 key of the `Bookstore-Signature` header (the whole string, as UTF-8
    /// bytes). Store it now: it is not shown again.
    pub secret: String,
}

/// Body of `POST /webhooks`.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[schema(example = json!({
    "url": "https://erp.example.com/hooks/bookstore", "description": "ERP sync",
    "event_types": ["order.paid", "order.cancelled"]
}))]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    /// An absolute `http://` or `https://` URL with a host, at most 2000 characters.
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub url: String,
    /// One or more of `order.created`, `order.paid`, `order.fulfilled`, `order.cancelled`,
    /// `order.returned`, `inventory.low_stock`, `inventory.stock_changed`,
    /// `purchase_order.received`, `stocktake.completed`, each at most once; or `["*"]` for all.
    #[schema(schema_with = event_types_schema)]
    pub event_types: Vec<String>,
    #[validate(length(max = 1000))]
    #[schema(max_length = 1000)]
    pub description: Option<String>,
    /// Defaults to true.
    #[serde(default = "default_active")]
    pub active: bool,
}

/// `event_types` as `service::check_event_types` accepts it: at least one subscribable type,
/// each once, or `"*"` alone (which the schema cannot say; the server answers 422).
fn event_types_schema() -> utoipa::openapi::schema::Array {
    use crate::webhooks::outbox::EventType;
    use crate::webhooks::service::ALL_EVENTS;
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    let names = EventType::SUBSCRIBABLE
        .map(EventType::as_str)
        .into_iter()
        .chain([ALL_EVENTS]);
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(names)),
        )
        .min_items(Some(1))
        .unique_items(true)
        .build()
}

fn nullable_event_types_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{SchemaType, Type};
    let mut schema = event_types_schema();
    schema.schema_type = SchemaType::from_iter([Type::Array, Type::Null]);
    schema
}

fn default_active() -> bool {
    true
}

/// Body of `PATCH /webhooks/{id}`: absent fields are kept; an empty description clears it.
#[derive(Debug, Clone, Default, Deserialize, Validate, ToSchema)]
#[schema(example = json!({"active": false}))]
#[serde(deny_unknown_fields)]
pub struct EndpointPatch {
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000)]
    pub url: Option<String>,
    /// As in `POST /webhooks`: replaces the subscription.
    #[schema(schema_with = nullable_event_types_schema)]
    pub event_types: Option<Vec<String>>,
    #[validate(length(max = 1000))]
    #[schema(max_length = 1000)]
    pub description: Option<String>,
    /// Deactivating pauses the endpoint: nothing new is queued for it and its pending deliveries
    /// wait. Reactivating resumes them, except those whose event is older than the retry window
    /// (24 hours by default), which are marked failed.
    pub active: Option<bool>,
}

/// Query of `GET /webhooks`.
#[derive(Debug, Clone, Default, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EndpointQuery {
    /// Only active (`true`) or inactive (`false`) endpoints.
    pub active: Option<bool>,
    #[param(minimum = 1, default = 1)]
    pub page: Option<i64>,
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub per_page: Option<i64>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not delivered yet: due at `next_attempt_at` (or being attempted right now).
    Pending,
    /// The endpoint answered 2xx.
    Succeeded,
    /// Every attempt failed and the retry window of the event ran out.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        match s {
            "pending" => Some(DeliveryStatus::Pending),
            "succeeded" => Some(DeliveryStatus::Succeeded),
            "failed" => Some(DeliveryStatus::Failed),
            _ => None,
        }
    }
}

/// Query of `GET /webhooks/{id}/deliveries`. Newest first.
#[derive(Debug, Clone, Default, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// `pending`, `succeeded` or `failed`.
    pub status: Option<DeliveryStatus>,
    /// Only the delivery of this event.
    pub event_id: Option<String>,
    #[param(minimum = 1, default = 1)]
    pub page: Option<i64>,
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub per_page: Option<i64>,
}

/// One HTTP attempt of a delivery.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "attempted_at": "2026-11-25T10:00:00.120Z", "status_code": 500, "latency_ms": 84,
    "error": "HTTP 500: upstream unavailable"
}))]
pub struct AttemptView {
    pub attempted_at: DateTime<Utc>,
    /// The endpoint's HTTP status; absent when no answer came (timeout, connection refused).
    pub status_code: Option<i32>,
    /// From sending the request to receiving the answer's headers (or giving up).
    pub latency_ms: i64,
    /// Why it failed (start of the answer's body, or the network error); absent on success.
    pub error: Option<String>,
}

impl From<AttemptRow> for AttemptView {
    fn from(row: AttemptRow) -> Self {
        AttemptView {
            attempted_at: utc(row.attempted_at),
            status_code: row.status_code,
            latency_ms: row.latency_ms,
            error: row.error,
        }
    }
}

/// One event to one endpoint, with its attempts in order.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 41, "endpoint_id": 3, "event_id": "0b6f1c9e-8f0a-4b8e-9d55-6c2f1f0e7a11",
    "event_type": "order.paid", "status": "succeeded", "attempt_count": 2,
    "next_attempt_at": null, "last_status_code": 200, "last_error": null,
    "created_at": "2026-11-25T10:00:00Z", "completed_at": "2026-11-25T10:00:31Z",
    "attempts": [
        {"attempted_at": "2026-11-25T10:00:00.120Z", "status_code": 500, "latency_ms": 84,
         "error": "HTTP 500: upstream unavailable"},
        {"attempted_at": "2026-11-25T10:00:31.020Z", "status_code": 200, "latency_ms": 35,
         "error": null}
    ]
}))]
pub struct DeliveryView {
    pub id: i64,
    pub endpoint_id: i64,
    /// Also in the `Bookstore-Event-Id` header and the body's `id`.
    pub event_id: String,
    pub event_type: String,
    pub status: DeliveryStatus,
    /// Attempts started, including one in progress or cut short by a crash (which may therefore
    /// be missing from `attempts`).
    pub attempt_count: i32,
    /// When the next attempt is due, while pending (while an attempt is in progress: the end of
    /// its lease, after which another worker may take it over).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When it succeeded or was given up.
    pub completed_at: Option<DateTime<Utc>>,
    /// Recorded attempts, oldest first.
    pub attempts: Vec<AttemptView>,
}

impl DeliveryView {
    pub fn new(row: DeliveryRow, event_type: String, attempts: Vec<AttemptView>) -> Self {
        // The table's CHECK admits only the three statuses.
        let status = DeliveryStatus::parse(&row.status).unwrap_or(DeliveryStatus::Pending);
        DeliveryView {
            id: row.id,
            endpoint_id: row.endpoint_id,
            event_id: row.event_id,
            event_type,
            status,
            attempt_count: row.attempts,
            next_attempt_at: (status == DeliveryStatus::Pending).then(|| utc(row.next_attempt_at)),
            last_status_code: row.last_status_code,
            last_error: row.last_error,
            created_at: utc(row.created_at),
            completed_at: row.completed_at.map(utc),
            attempts,
        }
    }
}

/// A delivery with the exact body it sends.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub delivery: DeliveryView,
    /// The event as delivered: `{id, type, created_at, data}`.
    #[schema(value_type = Object, example = json!({
        "id": "0b6f1c9e-8f0a-4b8e-9d55-6c2f1f0e7a11", "type": "order.paid",
        "created_at": "2026-11-25T10:00:00.000Z", "data": {"order_id": 1042}
    }))]
    pub payload: serde_json::Value,
}
