//! HTTP routes of `/webhooks` (admin): endpoints, their deliveries, replays and pings.
//!
//! Deliveries are sent by the background worker ([`super::delivery`]), never by these handlers:
//! a ping or a replay answers 202 with the delivery to follow at its `Location`.

use crate::app::AppState;
use crate::auth::AdminUser;
use crate::db;
use crate::error::{ApiError, Problem};
use crate::http::extract::{etag, if_match_version};
use crate::http::{ApiJson, ApiQuery, Page};
use crate::webhooks::model::*;
use crate::webhooks::{egress, service};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use utoipa::OpenApi;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/webhooks")
            .service(
                web::resource("")
                    .route(web::get().to(list_endpoints))
                    .route(web::post().to(create_endpoint)),
            )
            .service(
                web::resource("/{id:\\d+}")
                    .route(web::get().to(get_endpoint))
                    .route(web::patch().to(update_endpoint))
                    .route(web::delete().to(delete_endpoint)),
            )
            .service(web::resource("/{id:\\d+}/rotate-secret").route(web::post().to(rotate_secret)))
            .service(web::resource("/{id:\\d+}/test").route(web::post().to(send_test)))
            .service(web::resource("/{id:\\d+}/deliveries").route(web::get().to(list_deliveries)))
            .service(
                web::resource("/{id:\\d+}/deliveries/{delivery_id:\\d+}")
                    .route(web::get().to(get_delivery)),
            )
            .service(
                web::resource("/{id:\\d+}/deliveries/{delivery_id:\\d+}/replay")
                    .route(web::post().to(replay_delivery)),
            ),
    );
}

/// Refuses (422 on `url`) a URL that leads to an internal address, before anything is written.
/// A URL with bad syntax is left to the service, which reports it with the other fields.
async fn check_destination(url: &str, state: &AppState) -> Result<(), ApiError> {
    if service::check_url(url).is_err() {
        return Ok(());
    }
    egress::check_destination(url, state.settings.webhook_allow_private)
        .await
        .map(drop)
        .map_err(|e| ApiError::Validation(vec![e]))
}

fn endpoint_location(id: i64) -> String {
    format!("/api/v1/webhooks/{id}")
}

fn delivery_location(endpoint_id: i64, delivery_id: i64) -> String {
    format!("/api/v1/webhooks/{endpoint_id}/deliveries/{delivery_id}")
}

/// 202 with a delivery to follow.
fn accepted(delivery: &DeliveryView) -> HttpResponse {
    HttpResponse::Accepted()
        .insert_header((
            header::LOCATION,
            delivery_location(delivery.endpoint_id, delivery.id),
        ))
        .json(delivery)
}

/// List webhook endpoints (admin), oldest first. Secrets are never listed.
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", params(EndpointQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of endpoints", body = Page<EndpointView>),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A parameter is invalid", body = Problem, content_type = "application/problem+json")))]
pub async fn list_endpoints(
    state: web::Data<AppState>,
    _admin: AdminUser,
    query: ApiQuery<EndpointQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = db::run(&state.pool, move |conn| {
        service::list_endpoints(conn, &query.0)
    })
    .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Register a webhook endpoint (admin). The answer carries the signing `secret`: it is shown
/// this once (and after a rotation), never by `GET`. Every request to the endpoint is a `POST`
/// of `{id, type, created_at, data}` with `Bookstore-Event-Id`, `Bookstore-Event-Type`,
/// `Bookstore-Timestamp` and `Bookstore-Signature: v1=<hex HMAC-SHA256(secret,
/// "<timestamp>.<body>")>`; verify it over the raw body and refuse old timestamps. Delivery is
/// at least once: deduplicate by event id. Only `http` and `https` URLs without a user name or
/// password are accepted, and only to public addresses: a literal or resolved loopback, private,
/// link-local, CGNAT or otherwise internal address is refused (422 on `url`), and the name is
/// checked again at each delivery.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", request_body = NewEndpoint,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Registered; the only answer that shows the secret", body = EndpointWithSecret,
         headers(("Location" = String, description = "The endpoint's URL"), ("ETag" = String))),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid URL, or one that leads to an internal address or does not resolve (`url`); unknown or repeated event type (`event_types[i]`)", body = Problem, content_type = "application/problem+json")))]
pub async fn create_endpoint(
    state: web::Data<AppState>,
    _admin: AdminUser,
    body: ApiJson<NewEndpoint>,
) -> Result<HttpResponse, ApiError> {
    check_destination(&body.0.url, &state).await?;
    let created = db::run(&state.pool, move |conn| {
        service::create_endpoint(conn, &body.0)
    })
    .await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, endpoint_location(created.endpoint.id)))
        .insert_header((header::ETAG, etag(created.endpoint.version)))
        .json(created))
}

/// Get a webhook endpoint (admin), without its secret; the `ETag` carries its version.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = i64, Path, description = "Endpoint id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The endpoint", body = EndpointView,
         headers(("ETag" = String, description = "The endpoint's version, quoted"))),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json")))]
pub async fn get_endpoint(
    state: web::Data<AppState>,
    _admin: AdminUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let endpoint = db::run(&state.pool, move |conn| service::get_endpoint(conn, id)).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, etag(endpoint.version)))
        .json(endpoint))
}

/// Change a webhook endpoint (admin): URL, event types, description, active. Send `If-Match` with
/// the ETag you read (412 when stale, 428 when missing). Deactivating pauses deliveries (new
/// events are not queued for it; pending ones wait); reactivating resumes the pending ones,
/// except those older than the retry window, which are marked failed.
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhooks", request_body = EndpointPatch,
    params(("id" = i64, Path, description = "Endpoint id"),
           ("If-Match" = String, Header, description = "ETag of the version being changed", example = "\"1\"")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Updated", body = EndpointView, headers(("ETag" = String))),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "The endpoint changed since it was read", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
        (status = 428, description = "If-Match is missing", body = Problem, content_type = "application/problem+json")))]
pub async fn update_endpoint(
    state: web::Data<AppState>,
    _admin: AdminUser,
    req: HttpRequest,
    id: web::Path<i64>,
    body: ApiJson<EndpointPatch>,
) -> Result<HttpResponse, ApiError> {
    let version = if_match_version(&req)?;
    if let Some(url) = &body.0.url {
        check_destination(url, &state).await?;
    }
    let id = id.into_inner();
    let max_age = state.settings.webhook_max_age;
    let endpoint = db::run(&state.pool, move |conn| {
        service::update_endpoint(conn, id, version, &body.0, max_age)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, etag(endpoint.version)))
        .json(endpoint))
}

/// Delete a webhook endpoint (admin) with its deliveries and their history. A request already
/// in flight still completes.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = i64, Path, description = "Endpoint id")), security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json")))]
pub async fn delete_endpoint(
    state: web::Data<AppState>,
    _admin: AdminUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    db::run(&state.pool, move |conn| service::delete_endpoint(conn, id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Replace an endpoint's signing secret (admin); the answer shows the new one, once. Every
/// attempt from now on, including retries of older events, is signed with it.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/rotate-secret", tag = "webhooks",
    params(("id" = i64, Path, description = "Endpoint id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The endpoint with its new secret", body = EndpointWithSecret,
         headers(("ETag" = String))),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json")))]
pub async fn rotate_secret(
    state: web::Data<AppState>,
    _admin: AdminUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let rotated = db::run(&state.pool, move |conn| service::rotate_secret(conn, id)).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, etag(rotated.endpoint.version)))
        .json(rotated))
}

/// Send a test event to an endpoint (admin): queues a `ping` event (`data: {endpoint_id,
/// message}`) for this endpoint only, whatever it subscribed to, and answers 202 with its
/// delivery at once. The background worker sends it within moments, signed like any event;
/// follow the result (status code, latency, error of each attempt) at the `Location`. A failing
/// ping is retried like any delivery. An inactive endpoint cannot be pinged (409).
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/test", tag = "webhooks",
    params(("id" = i64, Path, description = "Endpoint id")), security(("bearer" = [])),
    responses(
        (status = 202, description = "Queued; follow the delivery", body = DeliveryView,
         headers(("Location" = String, description = "The delivery's URL"))),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The endpoint is inactive", body = Problem, content_type = "application/problem+json")))]
pub async fn send_test(
    state: web::Data<AppState>,
    _admin: AdminUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let delivery = db::run(&state.pool, move |conn| service::ping(conn, id)).await?;
    Ok(accepted(&delivery))
}

/// List an endpoint's deliveries (admin), newest first, each with its attempts (status code,
/// latency, error).
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = i64, Path, description = "Endpoint id"), DeliveryQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of deliveries", body = Page<DeliveryView>),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A parameter is invalid", body = Problem, content_type = "application/problem+json")))]
pub async fn list_deliveries(
    state: web::Data<AppState>,
    _admin: AdminUser,
    id: web::Path<i64>,
    query: ApiQuery<DeliveryQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let page = db::run(&state.pool, move |conn| {
        service::list_deliveries(conn, id, &query.0)
    })
    .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Get one delivery (admin) with its attempts and the exact event body it sends.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries/{delivery_id}", tag = "webhooks",
    params(("id" = i64, Path, description = "Endpoint id"),
           ("delivery_id" = i64, Path, description = "Delivery id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The delivery", body = DeliveryDetail),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint or delivery", body = Problem, content_type = "application/problem+json")))]
pub async fn get_delivery(
    state: web::Data<AppState>,
    _admin: AdminUser,
    path: web::Path<(i64, i64)>,
) -> Result<HttpResponse, ApiError> {
    let (id, delivery_id) = path.into_inner();
    let delivery = db::run(&state.pool, move |conn| {
        service::get_delivery(conn, id, delivery_id)
    })
    .await?;
    Ok(HttpResponse::Ok().json(delivery))
}

/// Send a delivery again (admin), whatever its status: it goes back to `pending`, due now, and
/// keeps its attempt history; the receiver gets the same event id again. One attempt is always
/// made; failures are retried while the event is within its retry window. An inactive endpoint's
/// replay waits for its reactivation.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/deliveries/{delivery_id}/replay", tag = "webhooks",
    params(("id" = i64, Path, description = "Endpoint id"),
           ("delivery_id" = i64, Path, description = "Delivery id")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Queued again", body = DeliveryView,
         headers(("Location" = String, description = "The delivery's URL"))),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint or delivery", body = Problem, content_type = "application/problem+json")))]
pub async fn replay_delivery(
    state: web::Data<AppState>,
    _admin: AdminUser,
    path: web::Path<(i64, i64)>,
) -> Result<HttpResponse, ApiError> {
    let (id, delivery_id) = path.into_inner();
    let delivery = db::run(&state.pool, move |conn| {
        service::replay(conn, id, delivery_id)
    })
    .await?;
    Ok(accepted(&delivery))
}

#[derive(OpenApi)]
#[openapi(
    paths(
        list_endpoints, create_endpoint, get_endpoint, update_endpoint, delete_endpoint,
        rotate_secret, send_test, list_deliveries, get_delivery, replay_delivery
    ),
    components(schemas(
        EndpointView, EndpointWithSecret, NewEndpoint, EndpointPatch, DeliveryStatus,
        DeliveryView, DeliveryDetail, AttemptView, Page<EndpointView>, Page<DeliveryView>
    ))
)]
pub struct WebhooksApi;
