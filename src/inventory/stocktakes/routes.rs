//! HTTP routes of `/inventory/stocktakes` (staff), registered inside the `/inventory` scope.

use crate::app::AppState;
use crate::auth::StaffUser;
use crate::db;
use crate::error::{ApiError, Problem};
use crate::http::extract::OptionalJson;
use crate::http::{ApiJson, ApiQuery, Page};
use crate::inventory::stocktakes::model::*;
use crate::inventory::stocktakes::service;
use actix_web::http::header;
use actix_web::{web, HttpResponse};
use utoipa::OpenApi;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/stocktakes")
            .route(web::get().to(list_stocktakes))
            .route(web::post().to(open_stocktake)),
    )
    .service(web::resource("/stocktakes/{id:\\d+}").route(web::get().to(get_stocktake)))
    .service(web::resource("/stocktakes/{id:\\d+}/counts").route(web::put().to(record_counts)))
    .service(web::resource("/stocktakes/{id:\\d+}/lines").route(web::get().to(list_lines)))
    .service(
        web::resource("/stocktakes/{id:\\d+}/complete").route(web::post().to(complete_stocktake)),
    )
    .service(web::resource("/stocktakes/{id:\\d+}/cancel").route(web::post().to(cancel_stocktake)));
}

fn location(id: i64) -> String {
    format!("/api/v1/inventory/stocktakes/{id}")
}

/// Open a stocktake (staff) over every book (`scope: all`), a category with all its
/// sub-categories (`category`, with `category_id`), or a list of up to 10000 books (`books`,
/// with `book_ids`). Each covered book gets a line with its current `on_hand` as the snapshot.
/// For `all` and `category`, archived books are included only while they have copies on hand.
/// A book can be covered by one open stocktake at a time: an overlap is a 409 naming the books
/// and the stocktake that has them.
#[utoipa::path(post, path = "/api/v1/inventory/stocktakes", tag = "stocktakes",
    request_body = NewStocktake, security(("bearer" = [])),
    responses(
        (status = 201, description = "Opened", body = StocktakeView,
         headers(("Location" = String, description = "The stocktake's URL"))),
        (status = 400, description = "The body is not valid JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Some of the books are covered by another open stocktake", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body exceeds the JSON size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields: scope, an unknown category, empty, duplicate or unknown book ids, nothing to count", body = Problem, content_type = "application/problem+json")))]
pub async fn open_stocktake(
    state: web::Data<AppState>,
    staff: StaffUser,
    body: ApiJson<NewStocktake>,
) -> Result<HttpResponse, ApiError> {
    let currency = state.settings.currency.clone();
    let view = db::run(&state.pool, move |conn| {
        service::open(conn, &body.0, staff.0.user_id, &currency)
    })
    .await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location(view.id)))
        .json(view))
}

/// List stocktakes (staff), newest first, with their progress and variance totals.
#[utoipa::path(get, path = "/api/v1/inventory/stocktakes", tag = "stocktakes",
    params(StocktakeQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of stocktakes", body = Page<StocktakeView>),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A parameter is invalid", body = Problem, content_type = "application/problem+json")))]
pub async fn list_stocktakes(
    state: web::Data<AppState>,
    _staff: StaffUser,
    query: ApiQuery<StocktakeQuery>,
) -> Result<HttpResponse, ApiError> {
    let currency = state.settings.currency.clone();
    let page = db::run(&state.pool, move |conn| {
        service::list(conn, &query.0, &currency)
    })
    .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Get a stocktake (staff): its progress (lines counted of total) and the variance report in
/// total (units and value at the books' average cost), plus, once completed, what was posted.
#[utoipa::path(get, path = "/api/v1/inventory/stocktakes/{id}", tag = "stocktakes",
    params(("id" = i64, Path, description = "Stocktake id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The stocktake", body = StocktakeView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such stocktake", body = Problem, content_type = "application/problem+json")))]
pub async fn get_stocktake(
    state: web::Data<AppState>,
    _staff: StaffUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let currency = state.settings.currency.clone();
    let view = db::run(&state.pool, move |conn| service::get(conn, id, &currency)).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Record a batch of counts (staff): 1 to 5000 books, each a line of this stocktake, at most once
/// per batch. Batches can be repeated; a book counted again keeps its last count. Each count is
/// compared with the book's `on_hand` at the moment it is recorded (the snapshot plus every sale,
/// receipt or adjustment since), so stock that moves during the count is accounted for. Only
/// while the stocktake is open (409 otherwise).
#[utoipa::path(put, path = "/api/v1/inventory/stocktakes/{id}/counts", tag = "stocktakes",
    request_body = RecordCounts,
    params(("id" = i64, Path, description = "Stocktake id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "Recorded; the stocktake's progress", body = CountsView),
        (status = 400, description = "The body is not valid JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such stocktake", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The stocktake is not open (current_status says why)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body exceeds the JSON size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, a book counted twice, or a book the stocktake does not cover (counts[i].book_id)", body = Problem, content_type = "application/problem+json")))]
pub async fn record_counts(
    state: web::Data<AppState>,
    staff: StaffUser,
    id: web::Path<i64>,
    body: ApiJson<RecordCounts>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let view = db::run(&state.pool, move |conn| {
        service::record_counts(conn, id, &body.0, staff.0.user_id)
    })
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// List a stocktake's lines (staff), by book id: the snapshot, the movements since, the expected
/// and counted quantities, the variance and its value at cost, and what completion posted.
/// `filter`: `all` (default), `counted`, `uncounted`, or `variance` (counted lines that differ).
#[utoipa::path(get, path = "/api/v1/inventory/stocktakes/{id}/lines", tag = "stocktakes",
    params(("id" = i64, Path, description = "Stocktake id"), LineQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of lines", body = Page<StocktakeLineView>),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such stocktake", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A parameter is invalid", body = Problem, content_type = "application/problem+json")))]
pub async fn list_lines(
    state: web::Data<AppState>,
    _staff: StaffUser,
    id: web::Path<i64>,
    query: ApiQuery<LineQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let page = db::run(&state.pool, move |conn| service::lines(conn, id, &query.0)).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Complete a stocktake (staff), all or nothing: one `stocktake` movement (referencing
/// `stocktake:<id>`) per counted book whose count differs from the expected quantity; with
/// `zero_uncounted: true`, every book never counted is taken as not found and posted down to
/// zero (with `false`, the default, uncounted books are left alone). The body is optional. A
/// movement that would take a book's `on_hand` below its `reserved` copies fails the whole
/// completion with a 409 naming the book. Completing twice, or completing a cancelled
/// stocktake, is a 409 naming `current_status`. Emits `stocktake.completed`.
#[utoipa::path(post, path = "/api/v1/inventory/stocktakes/{id}/complete", tag = "stocktakes",
    request_body(content = Option<CompleteStocktake>, description = "Optional; defaults to zero_uncounted: false"),
    params(("id" = i64, Path, description = "Stocktake id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "Completed, variance posted", body = StocktakeView),
        (status = 400, description = "The body is not valid JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such stocktake", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not open (current_status), or a movement would take a book below its reserved stock; nothing was posted", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json")))]
pub async fn complete_stocktake(
    state: web::Data<AppState>,
    staff: StaffUser,
    id: web::Path<i64>,
    body: OptionalJson<CompleteStocktake>,
) -> Result<HttpResponse, ApiError> {
    let input = body.into_inner();
    let id = id.into_inner();
    let currency = state.settings.currency.clone();
    let view = db::run(&state.pool, move |conn| {
        service::complete(conn, id, &input, staff.0.user_id, &currency)
    })
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Cancel an open stocktake (staff): nothing is posted, and its books can be counted by another
/// stocktake. A completed or cancelled stocktake is a 409 naming `current_status`.
#[utoipa::path(post, path = "/api/v1/inventory/stocktakes/{id}/cancel", tag = "stocktakes",
    params(("id" = i64, Path, description = "Stocktake id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "Cancelled", body = StocktakeView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such stocktake", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The stocktake is not open (current_status)", body = Problem, content_type = "application/problem+json")))]
pub async fn cancel_stocktake(
    state: web::Data<AppState>,
    _staff: StaffUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let currency = state.settings.currency.clone();
    let view = db::run(&state.pool, move |conn| {
        service::cancel(conn, id, &currency)
    })
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(OpenApi)]
#[openapi(
    paths(
        open_stocktake, list_stocktakes, get_stocktake, record_counts, list_lines,
        complete_stocktake, cancel_stocktake
    ),
    components(schemas(
        NewStocktake, StocktakeScope, StocktakeStatus, RecordCounts, CountInput, CountsView,
        CompleteStocktake, Progress, StocktakeTotals, PostedTotals, StocktakeView,
        StocktakeLineView, LineFilter, Page<StocktakeView>, Page<StocktakeLineView>
    ))
)]
pub struct StocktakesApi;
