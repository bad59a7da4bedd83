//! HTTP routes of `/inventory`: stock levels, receipts, adjustments, the movements ledger and
//! low-stock alerts (stocktakes have their own module).
//! Staff only.

use crate::app::AppState;
use crate::auth::StaffUser;
use crate::db;
use crate::error::{ApiError, Problem};
use crate::http::extract::{etag, if_match_version};
use crate::http::idempotent::{answer_created, create_once};
use crate::http::{ApiJson, ApiQuery, Page};
use crate::idempotency;
use crate::inventory::alerts::{self, AlertQuery, AlertStatus, AlertView};
use crate::inventory::model::*;
use crate::inventory::service;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use utoipa::OpenApi;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/inventory")
            .configure(crate::inventory::stocktakes::routes::configure)
            .service(web::resource("").route(web::get().to(list_levels)))
            .service(web::resource("/receipts").route(web::post().to(create_receipt)))
            .service(web::resource("/adjustments").route(web::post().to(create_adjustment)))
            .service(web::resource("/movements").route(web::get().to(list_movements)))
            .service(web::resource("/alerts").route(web::get().to(list_alerts)))
            .service(web::resource("/alerts/{id}").route(web::get().to(get_alert)))
            .service(
                web::resource("/alerts/{id}/acknowledge").route(web::post().to(acknowledge_alert)),
            )
            .service(
                web::resource("/{book_id:\\d+}")
                    .route(web::get().to(get_level))
                    .route(web::patch().to(update_level)),
            ),
    );
}

fn level_response(status: StatusCode, level: &StockLevelView) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::ETAG, etag(level.version)))
        .json(level)
}

/// List stock levels (staff), by title.
#[utoipa::path(get, path = "/api/v1/inventory", tag = "inventory", params(LevelQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of stock levels", body = Page<StockLevelView>),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A parameter is invalid", body = Problem, content_type = "application/problem+json")))]
pub async fn list_levels(
    state: web::Data<AppState>,
    _staff: StaffUser,
    query: ApiQuery<LevelQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = db::run(&state.pool, move |conn| {
        service::list_levels(conn, &query.0)
    })
    .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Get a book's stock level (staff); the `ETag` carries its version for `If-Match`.
#[utoipa::path(get, path = "/api/v1/inventory/{book_id}", tag = "inventory",
    params(("book_id" = i64, Path, description = "Book id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The stock level", body = StockLevelView,
         headers(("ETag" = String, description = "The level's version, quoted"))),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such book", body = Problem, content_type = "application/problem+json")))]
pub async fn get_level(
    state: web::Data<AppState>,
    _staff: StaffUser,
    book_id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let book_id = book_id.into_inner();
    let level = db::run(&state.pool, move |conn| service::get_level(conn, book_id)).await?;
    Ok(level_response(StatusCode::OK, &level))
}

/// Change a book's reorder settings (staff). Send `If-Match` with the ETag you read: a stale
/// version is refused with 412, a missing header with 428. Every stock movement also changes the
/// version.
#[utoipa::path(patch, path = "/api/v1/inventory/{book_id}", tag = "inventory", request_body = LevelPatch,
    params(("book_id" = i64, Path, description = "Book id"),
           ("If-Match" = String, Header, description = "ETag of the version being changed", example = "\"1\"")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Updated", body = StockLevelView, headers(("ETag" = String))),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such book", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "The level changed since it was read", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
        (status = 428, description = "If-Match is missing", body = Problem, content_type = "application/problem+json")))]
pub async fn update_level(
    state: web::Data<AppState>,
    _staff: StaffUser,
    req: HttpRequest,
    book_id: web::Path<i64>,
    body: ApiJson<LevelPatch>,
) -> Result<HttpResponse, ApiError> {
    let version = if_match_version(&req)?;
    let book_id = book_id.into_inner();
    let level = db::run(&state.pool, move |conn| {
        service::update_level(conn, book_id, version, &body.0)
    })
    .await?;
    Ok(level_response(StatusCode::OK, &level))
}

/// Record a delivery of stock (staff): one `receipt` movement per line, all or nothing. With an
/// `Idempotency-Key`, retries of the same body replay the first response (with
/// `Idempotent-Replayed: true`) instead of receiving the stock again; the same key with another
/// body is 422.
#[utoipa::path(post, path = "/api/v1/inventory/receipts", tag = "inventory", request_body = NewReceipt,
    params(("Idempotency-Key" = Option<String>, Header,
            description = "1 to 255 visible ASCII characters; kept 24 hours per caller")),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Recorded", body = ReceiptView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, a book listed twice, an unknown book, or a reused Idempotency-Key", body = Problem, content_type = "application/problem+json")))]
pub async fn create_receipt(
    state: web::Data<AppState>,
    staff: StaffUser,
    req: HttpRequest,
    body: ApiJson<NewReceipt>,
) -> Result<HttpResponse, ApiError> {
    let input = body.into_inner();
    let user_id = staff.0.user_id;
    let currency = state.settings.currency.clone();
    // Bound to the endpoint as well as the body: a key reused elsewhere is refused.
    let hash = idempotency::request_hash(&serde_json::json!({"receipt": &input}))?;
    let outcome = create_once(&state, &req, user_id, hash, move |conn, store| {
        service::create_receipt(conn, &input, user_id, &currency, store)
    })
    .await?;
    Ok(answer_created(outcome, None))
}

/// Adjust a book's stock by hand (staff). `damaged` and `lost` remove stock, `found` adds it,
/// `correction` goes either way. Stock held for orders cannot be adjusted away: taking `on_hand`
/// below `reserved` is refused with 409 and nothing is written.
#[utoipa::path(post, path = "/api/v1/inventory/adjustments", tag = "inventory", request_body = NewAdjustment,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Recorded", body = AdjustmentView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not enough unreserved stock", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields or unknown book", body = Problem, content_type = "application/problem+json")))]
pub async fn create_adjustment(
    state: web::Data<AppState>,
    staff: StaffUser,
    body: ApiJson<NewAdjustment>,
) -> Result<HttpResponse, ApiError> {
    let adjustment = db::run(&state.pool, move |conn| {
        service::create_adjustment(conn, &body.0, staff.0.user_id)
    })
    .await?;
    Ok(HttpResponse::Created().json(adjustment))
}

/// List the stock ledger (staff), newest first.
#[utoipa::path(get, path = "/api/v1/inventory/movements", tag = "inventory", params(MovementQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of movements", body = Page<MovementView>),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A parameter is invalid", body = Problem, content_type = "application/problem+json")))]
pub async fn list_movements(
    state: web::Data<AppState>,
    _staff: StaffUser,
    query: ApiQuery<MovementQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = db::run(&state.pool, move |conn| {
        service::list_movements(conn, &query.0)
    })
    .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// List low-stock alerts (staff), newest first.
#[utoipa::path(get, path = "/api/v1/inventory/alerts", tag = "alerts", params(AlertQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of alerts", body = Page<AlertView>),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A parameter is invalid", body = Problem, content_type = "application/problem+json")))]
pub async fn list_alerts(
    state: web::Data<AppState>,
    _staff: StaffUser,
    query: ApiQuery<AlertQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = db::run(&state.pool, move |conn| alerts::list_alerts(conn, &query.0)).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Get a low-stock alert (staff).
#[utoipa::path(get, path = "/api/v1/inventory/alerts/{id}", tag = "alerts",
    params(("id" = i64, Path, description = "Alert id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The alert", body = AlertView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such alert", body = Problem, content_type = "application/problem+json")))]
pub async fn get_alert(
    state: web::Data<AppState>,
    _staff: StaffUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let alert = db::run(&state.pool, move |conn| alerts::get_alert(conn, id)).await?;
    Ok(HttpResponse::Ok().json(alert))
}

/// Acknowledge a low-stock alert (staff): it stays until stock goes back above the reorder
/// point, but is marked as seen. Acknowledging it twice changes nothing.
#[utoipa::path(post, path = "/api/v1/inventory/alerts/{id}/acknowledge", tag = "alerts",
    params(("id" = i64, Path, description = "Alert id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "Acknowledged", body = AlertView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such alert", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The alert is already resolved", body = Problem, content_type = "application/problem+json")))]
pub async fn acknowledge_alert(
    state: web::Data<AppState>,
    staff: StaffUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let user_id = staff.0.user_id;
    let alert = db::run(&state.pool, move |conn| {
        alerts::acknowledge(conn, id, user_id)
    })
    .await?;
    Ok(HttpResponse::Ok().json(alert))
}

#[derive(OpenApi)]
#[openapi(
    paths(
        list_levels, get_level, update_level, create_receipt, create_adjustment, list_movements,
        list_alerts, get_alert, acknowledge_alert
    ),
    components(schemas(
        StockLevelView, MovementView, MovementKind, AdjustmentReason, NewReceipt, ReceiptLineInput,
        ReceiptView, ReceiptLineView, NewAdjustment, AdjustmentView, LevelPatch,
        Page<StockLevelView>, Page<MovementView>, AlertView, AlertStatus, Page<AlertView>
    ))
)]
pub struct InventoryApi;
