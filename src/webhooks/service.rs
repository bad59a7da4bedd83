//! Webhook rules: registering endpoints (URL and subscription checks, the secret), their
//! deliveries, replays and pings. Sending is the worker's job ([`super::delivery`]); everything
//! here only writes to the outbox tables.

use crate::db::schema::{webhook_attempts, webhook_deliveries, webhook_endpoints, webhook_events};
use crate::db::{now, write_transaction, DbConn};
use crate::error::{ApiError, FieldError};
use crate::http::{Page, PageParams};
use crate::webhooks::model::*;
use crate::webhooks::outbox::{self, EventType, WAKE};
use diesel::prelude::*;
use rand::RngCore;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Longest accepted endpoint URL, after normalisation.
pub const MAX_URL_LEN: usize = 2000;

/// Subscribes to every event type.
pub const ALL_EVENTS: &str = "*";

fn not_found(id: i64) -> ApiError {
    ApiError::NotFound(format!("no webhook endpoint with id {id}"))
}

fn delivery_not_found(id: i64) -> ApiError {
    ApiError::NotFound(format!("no delivery with id {id} for this endpoint"))
}

/// A fresh signing secret: `whsec_` and 32 random bytes from the thread's CSPRNG, in hex.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("whsec_{}", hex::encode(bytes))
}

/// Checks an endpoint URL's syntax: absolute, `http` or `https`, with a host, no user name or
/// password (they would be stored and shown in clear; receivers authenticate deliveries by their
/// signature), at most [`MAX_URL_LEN`] characters. Returns its normalised form (what is stored
/// and called). Where it leads is [`super::egress::check_destination`]'s job.
pub fn check_url(raw: &str) -> Result<String, FieldError> {
    let invalid = |message: String| FieldError::new("url", message);
    let parsed = reqwest::Url::parse(raw.trim())
        .map_err(|e| invalid(format!("is not an absolute URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "must use http or https, not {}",
            parsed.scheme()
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid("must name a host".into()));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid(
            "must not contain a user name or password; receivers verify the signature instead"
                .into(),
        ));
    }
    let url = String::from(parsed);
    if url.len() > MAX_URL_LEN {
        return Err(invalid(format!("must be at most {MAX_URL_LEN} characters")));
    }
    Ok(url)
}

/// Checks a subscription list (each a subscribable type at most once, or `*` alone); returns its
/// stored form, comma-separated. Errors name `<field>[i]`.
pub fn check_event_types(field: &str, types: &[String]) -> Result<String, Vec<FieldError>> {
    if types.is_empty() {
        return Err(vec![FieldError::new(
            field,
            "must name at least one event type (or \"*\" for all)",
        )]);
    }
    let mut errors = Vec::new();
    let mut seen = HashSet::new();
    for (i, raw) in types.iter().enumerate() {
        let name = raw.trim();
        let at = format!("{field}[{i}]");
        if name == ALL_EVENTS {
            if types.len() > 1 {
                errors.push(FieldError::new(
                    at,
                    "\"*\" (every event) must be the only entry",
                ));
            }
            continue;
        }
        match EventType::parse(name).filter(|t| EventType::SUBSCRIBABLE.contains(t)) {
            Some(kind) if !seen.insert(kind) => {
                errors.push(FieldError::new(at, format!("{name} is listed twice")))
            }
            Some(_) => {}
            None => errors.push(FieldError::new(
                at,
                format!(
                    "unknown event type '{name}'; use {} or \"*\"",
                    EventType::SUBSCRIBABLE.map(EventType::as_str).join(", ")
                ),
            )),
        }
    }
    if errors.is_empty() {
        Ok(types.iter().map(|t| t.trim()).collect::<Vec<_>>().join(","))
    } else {
        Err(errors)
    }
}

/// Trims; an empty string becomes `None`.
fn clean(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn load_endpoint(conn: &mut DbConn, id: i64) -> Result<EndpointRow, ApiError> {
    webhook_endpoints::table
        .find(id)
        .select(EndpointRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| not_found(id))
}

/// Registers an endpoint with a new secret; the answer is the only time the secret is shown.
pub fn create_endpoint(
    conn: &mut DbConn,
    input: &NewEndpoint,
) -> Result<EndpointWithSecret, ApiError> {
    let mut errors = Vec::new();
    let url = check_url(&input.url).map_err(|e| errors.push(e)).ok();
    let types = check_event_types("event_types", &input.event_types)
        .map_err(|e| errors.extend(e))
        .ok();
    let (Some(url), Some(types)) = (url, types) else {
        return Err(ApiError::Validation(errors));
    };
    let description = clean(input.description.as_deref());
    let secret = new_secret();
    let at = now();
    let row: EndpointRow = write_transaction(conn, |tx| {
        diesel::insert_into(webhook_endpoints::table)
            .values((
                webhook_endpoints::url.eq(&url),
                webhook_endpoints::description.eq(&description),
                webhook_endpoints::event_types.eq(&types),
                webhook_endpoints::secret.eq(&secret),
                webhook_endpoints::active.eq(input.active),
                webhook_endpoints::version.eq(1),
                webhook_endpoints::created_at.eq(at),
                webhook_endpoints::updated_at.eq(at),
            ))
            .returning(webhook_endpoints::all_columns)
            .get_result(tx.conn())
            .map_err(ApiError::from)
    })?;
    Ok(EndpointWithSecret {
        endpoint: row.into(),
        secret,
    })
}

/// Lists endpoints, oldest first.
pub fn list_endpoints(
    conn: &mut DbConn,
    query: &EndpointQuery,
) -> Result<Page<EndpointView>, ApiError> {
    let (page, per_page) = PageParams {
        page: query.page,
        per_page: query.per_page,
    }
    .resolve()?;
    let active = query.active;
    let filtered = || {
        let mut q = webhook_endpoints::table.into_boxed();
        if let Some(active) = active {
            q = q.filter(webhook_endpoints::active.eq(active));
        }
        q
    };
    let total: i64 = filtered().count().get_result(conn)?;
    let rows: Vec<EndpointRow> = filtered()
        .order(webhook_endpoints::id)
        .limit(per_page)
        .offset(Page::<EndpointView>::offset(page, per_page))
        .select(EndpointRow::as_select())
        .load(conn)?;
    Ok(Page {
        items: rows.into_iter().map(EndpointView::from).collect(),
        page,
        per_page,
        total,
    })
}

pub fn get_endpoint(conn: &mut DbConn, id: i64) -> Result<EndpointView, ApiError> {
    load_endpoint(conn, id).map(EndpointView::from)
}

/// Changes an endpoint if it is still at `expected_version` (412 otherwise; `None` accepts any).
/// A new URL applies to the next attempt of every pending delivery; a new subscription, to the
/// events emitted from then on (deliveries already queued stay). Reactivating
/// fails the pending deliveries whose event is older than `max_age`: they would have been given
/// up by now had the endpoint stayed active.
pub fn update_endpoint(
    conn: &mut DbConn,
    id: i64,
    expected_version: Option<i32>,
    patch: &EndpointPatch,
    max_age: Duration,
) -> Result<EndpointView, ApiError> {
    let mut errors = Vec::new();
    let url = match patch.url.as_deref().map(check_url) {
        Some(Ok(url)) => Some(url),
        Some(Err(e)) => {
            errors.push(e);
            None
        }
        None => None,
    };
    let types = match patch
        .event_types
        .as_deref()
        .map(|t| check_event_types("event_types", t))
    {
        Some(Ok(types)) => Some(types),
        Some(Err(e)) => {
            errors.extend(e);
            None
        }
        None => None,
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    write_transaction(conn, |tx| {
        let current = load_endpoint(tx, id)?;
        let expected = expected_version.unwrap_or(current.version);
        if current.version != expected {
            return Err(stale(current.version));
        }
        let at = now();
        let description = match &patch.description {
            Some(d) => clean(Some(d)),
            None => current.description.clone(),
        };
        let active = patch.active.unwrap_or(current.active);
        let row: EndpointRow = diesel::update(
            webhook_endpoints::table
                .filter(webhook_endpoints::id.eq(id))
                .filter(webhook_endpoints::version.eq(expected)),
        )
        .set((
            webhook_endpoints::url.eq(url.as_deref().unwrap_or(&current.url)),
            webhook_endpoints::event_types.eq(types.as_deref().unwrap_or(&current.event_types)),
            webhook_endpoints::description.eq(&description),
            webhook_endpoints::active.eq(active),
            webhook_endpoints::version.eq(expected + 1),
            webhook_endpoints::updated_at.eq(at),
        ))
        .returning(webhook_endpoints::all_columns)
        .get_result(tx.conn())
        .optional()?
        .ok_or_else(|| stale(expected))?;
        if active && !current.active {
            expire_stale_pending(tx, id, max_age, at)?;
        }
        Ok(EndpointView::from(row))
    })
    .inspect(|view| {
        if view.active {
            WAKE.notify_one();
        }
    })
}

fn stale(current: i32) -> ApiError {
    ApiError::PreconditionFailed(format!(
        "the endpoint has changed since you read it (current version {current}); fetch it again"
    ))
}

/// Marks failed the endpoint's pending deliveries whose event is older than `max_age`.
fn expire_stale_pending(
    conn: &mut DbConn,
    endpoint_id: i64,
    max_age: Duration,
    at: chrono::NaiveDateTime,
) -> Result<usize, ApiError> {
    let cutoff = at - chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX);
    let old_events = webhook_events::table
        .filter(webhook_events::created_at.lt(cutoff))
        .select(webhook_events::id);
    Ok(diesel::update(
        webhook_deliveries::table
            .filter(webhook_deliveries::endpoint_id.eq(endpoint_id))
            .filter(webhook_deliveries::status.eq(DeliveryStatus::Pending.as_str()))
            .filter(webhook_deliveries::event_id.eq_any(old_events)),
    )
    .set((
        webhook_deliveries::status.eq(DeliveryStatus::Failed.as_str()),
        webhook_deliveries::completed_at.eq(Some(at)),
        webhook_deliveries::last_error.eq(Some(
            "expired: the event outlived its retry window while the endpoint was inactive",
        )),
    ))
    .execute(conn)?)
}

/// Deletes an endpoint with its deliveries and their attempts (the events stay: other
/// endpoints may still be delivering them).
pub fn delete_endpoint(conn: &mut DbConn, id: i64) -> Result<(), ApiError> {
    let deleted = write_transaction(conn, |tx| {
        diesel::delete(webhook_endpoints::table.find(id))
            .execute(tx.conn())
            .map_err(ApiError::from)
    })?;
    if deleted == 0 {
        return Err(not_found(id));
    }
    Ok(())
}

/// Replaces an endpoint's secret; attempts made from now on (including retries of older events)
/// are signed with the new one.
pub fn rotate_secret(conn: &mut DbConn, id: i64) -> Result<EndpointWithSecret, ApiError> {
    let secret = new_secret();
    let row: EndpointRow = write_transaction(conn, |tx| {
        diesel::update(webhook_endpoints::table.find(id))
            .set((
                webhook_endpoints::secret.eq(&secret),
                webhook_endpoints::version.eq(webhook_endpoints::version + 1),
                webhook_endpoints::updated_at.eq(now()),
            ))
            .returning(webhook_endpoints::all_columns)
            .get_result(tx.conn())
            .optional()?
            .ok_or_else(|| not_found(id))
    })?;
    Ok(EndpointWithSecret {
        endpoint: row.into(),
        secret,
    })
}

/// Views of `rows` (each with its event type), with their attempts.
fn delivery_views(
    conn: &mut DbConn,
    rows: Vec<(DeliveryRow, String)>,
) -> Result<Vec<DeliveryView>, ApiError> {
    let ids: Vec<i64> = rows.iter().map(|(row, _)| row.id).collect();
    let mut attempts: HashMap<i64, Vec<AttemptView>> = HashMap::new();
    let attempt_rows: Vec<AttemptRow> = webhook_attempts::table
        .filter(webhook_attempts::delivery_id.eq_any(&ids))
        .order((webhook_attempts::delivery_id, webhook_attempts::id))
        .select(AttemptRow::as_select())
        .load(conn)?;
    for row in attempt_rows {
        attempts
            .entry(row.delivery_id)
            .or_default()
            .push(row.into());
    }
    Ok(rows
        .into_iter()
        .map(|(row, event_type)| {
            let list = attempts.remove(&row.id).unwrap_or_default();
            DeliveryView::new(row, event_type, list)
        })
        .collect())
}

/// Lists an endpoint's deliveries, newest first.
pub fn list_deliveries(
    conn: &mut DbConn,
    endpoint_id: i64,
    query: &DeliveryQuery,
) -> Result<Page<DeliveryView>, ApiError> {
    let (page, per_page) = PageParams {
        page: query.page,
        per_page: query.per_page,
    }
    .resolve()?;
    load_endpoint(conn, endpoint_id)?;
    let status = query.status;
    let event_id = clean(query.event_id.as_deref());
    let filtered = || {
        let mut q = webhook_deliveries::table
            .inner_join(webhook_events::table)
            .filter(webhook_deliveries::endpoint_id.eq(endpoint_id))
            .into_boxed();
        if let Some(status) = status {
            q = q.filter(webhook_deliveries::status.eq(status.as_str()));
        }
        if let Some(event_id) = &event_id {
            q = q.filter(webhook_deliveries::event_id.eq(event_id.clone()));
        }
        q
    };
    let total: i64 = filtered().count().get_result(conn)?;
    let rows: Vec<(DeliveryRow, String)> = filtered()
        .order(webhook_deliveries::id.desc())
        .limit(per_page)
        .offset(Page::<DeliveryView>::offset(page, per_page))
        .select((DeliveryRow::as_select(), webhook_events::event_type))
        .load(conn)?;
    Ok(Page {
        items: delivery_views(conn, rows)?,
        page,
        per_page,
        total,
    })
}

fn delivery_view(
    conn: &mut DbConn,
    endpoint_id: i64,
    delivery_id: i64,
) -> Result<(DeliveryView, String), ApiError> {
    let (row, event_type, payload): (DeliveryRow, String, String) = webhook_deliveries::table
        .inner_join(webhook_events::table)
        .filter(webhook_deliveries::id.eq(delivery_id))
        .filter(webhook_deliveries::endpoint_id.eq(endpoint_id))
        .select((
            DeliveryRow::as_select(),
            webhook_events::event_type,
            webhook_events::payload,
        ))
        .first(conn)
        .optional()?
        .ok_or_else(|| delivery_not_found(delivery_id))?;
    let view = delivery_views(conn, vec![(row, event_type)])?
        .pop()
        .ok_or_else(|| delivery_not_found(delivery_id))?;
    Ok((view, payload))
}

/// One delivery with the body it sends.
pub fn get_delivery(
    conn: &mut DbConn,
    endpoint_id: i64,
    delivery_id: i64,
) -> Result<DeliveryDetail, ApiError> {
    load_endpoint(conn, endpoint_id)?;
    let (delivery, payload) = delivery_view(conn, endpoint_id, delivery_id)?;
    Ok(DeliveryDetail {
        delivery,
        payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::String(payload)),
    })
}

/// Puts a delivery back to `pending`, due now, whatever its status; its attempts stay. A replay
/// always makes one more attempt; failures are retried only while the event is within its retry
/// window. An inactive endpoint's replay waits for its reactivation.
pub fn replay(
    conn: &mut DbConn,
    endpoint_id: i64,
    delivery_id: i64,
) -> Result<DeliveryView, ApiError> {
    let view = write_transaction(conn, |tx| {
        load_endpoint(tx, endpoint_id)?;
        let updated = diesel::update(
            webhook_deliveries::table
                .filter(webhook_deliveries::id.eq(delivery_id))
                .filter(webhook_deliveries::endpoint_id.eq(endpoint_id)),
        )
        .set((
            webhook_deliveries::status.eq(DeliveryStatus::Pending.as_str()),
            webhook_deliveries::next_attempt_at.eq(now()),
            webhook_deliveries::completed_at.eq(None::<chrono::NaiveDateTime>),
        ))
        .execute(tx.conn())?;
        if updated == 0 {
            return Err(delivery_not_found(delivery_id));
        }
        delivery_view(tx, endpoint_id, delivery_id).map(|(view, _)| view)
    })?;
    WAKE.notify_one();
    Ok(view)
}

/// Queues a `ping` event to this endpoint only (whatever it subscribed to) and returns its
/// delivery, for the caller to follow. An inactive endpoint cannot be pinged (409).
pub fn ping(conn: &mut DbConn, endpoint_id: i64) -> Result<DeliveryView, ApiError> {
    write_transaction(conn, |tx| {
        let endpoint = load_endpoint(tx, endpoint_id)?;
        if !endpoint.active {
            return Err(ApiError::Conflict(
                "the endpoint is inactive; activate it before sending a test event".into(),
            ));
        }
        let data = serde_json::json!({
            "endpoint_id": endpoint.id,
            "message": "Test event from the bookstore API",
        });
        let event_id = outbox::enqueue(tx, EventType::Ping, &data, &[endpoint.id])?;
        let delivery_id: i64 = webhook_deliveries::table
            .filter(webhook_deliveries::event_id.eq(&event_id))
            .filter(webhook_deliveries::endpoint_id.eq(endpoint.id))
            .select(webhook_deliveries::id)
            .first(tx.conn())?;
        delivery_view(tx, endpoint_id, delivery_id).map(|(view, _)| view)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_http_with_a_host() {
        assert_eq!(
            check_url(" https://erp.example.com/hooks?a=1 "),
            Ok("https://erp.example.com/hooks?a=1".to_owned())
        );
        assert_eq!(
            check_url("http://127.0.0.1:9000"),
            Ok("http://127.0.0.1:9000/".to_owned())
        );
        for bad in [
            "ftp://example.com/x",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "mailto:a@example.com",
            "http://",
            "/relative/path",
            "example.com/hook",
            "",
        ] {
            assert!(check_url(bad).is_err(), "{bad} was accepted");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(check_url(&long).is_err());
    }

    #[test]
    fn subscriptions_name_known_types_once() {
        let list = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            check_event_types("event_types", &list(&["order.paid", " order.created"])),
            Ok("order.paid,order.created".to_owned())
        );
        assert_eq!(
            check_event_types("event_types", &list(&["*"])),
            Ok("*".to_owned())
        );
        let fields = |r: Result<String, Vec<FieldError>>| {
            r.err()
                .unwrap_or_default()
                .into_iter()
                .map(|e| e.field)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            fields(check_event_types("event_types", &[])),
            vec!["event_types"]
        );
        assert_eq!(
            fields(check_event_types(
                "event_types",
                &list(&["order.paid", "order.shipped", "ping", "order.paid"])
            )),
            vec!["event_types[1]", "event_types[2]", "event_types[3]"]
        );
        assert_eq!(
            fields(check_event_types(
                "event_types",
                &list(&["order.paid", "*"])
            )),
            vec!["event_types[1]"]
        );
    }
}
