//! HTTP routes of `/suppliers` and `/purchase-orders` (staff).

use crate::app::AppState;
use crate::auth::StaffUser;
use crate::db;
use crate::error::{ApiError, Problem};
use crate::http::extract::{etag, if_match_version};
use crate::http::idempotent::{answer_created, create_once};
use crate::http::{ApiJson, ApiQuery, Page};
use crate::idempotency;
use crate::inventory::model::{ReceiptLineView, ReceiptView};
use crate::inventory::purchasing::model::*;
use crate::inventory::purchasing::{purchase_orders, suppliers};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use utoipa::OpenApi;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/suppliers")
            .service(
                web::resource("")
                    .route(web::get().to(list_suppliers))
                    .route(web::post().to(create_supplier)),
            )
            .service(
                web::resource("/{id}")
                    .route(web::get().to(get_supplier))
                    .route(web::patch().to(update_supplier))
                    .route(web::delete().to(delete_supplier)),
            ),
    )
    .service(
        web::scope("/purchase-orders")
            .service(
                web::resource("")
                    .route(web::get().to(list_purchase_orders))
                    .route(web::post().to(create_purchase_order)),
            )
            .service(
                web::resource("/{id}")
                    .route(web::get().to(get_purchase_order))
                    .route(web::patch().to(update_purchase_order)),
            )
            .service(web::resource("/{id}/submit").route(web::post().to(submit_purchase_order)))
            .service(web::resource("/{id}/cancel").route(web::post().to(cancel_purchase_order)))
            .service(web::resource("/{id}/receive").route(web::post().to(receive_purchase_order))),
    );
}

fn supplier_response(status: StatusCode, supplier: &SupplierView) -> HttpResponse {
    let mut builder = HttpResponse::build(status);
    builder.insert_header((header::ETAG, etag(supplier.version)));
    if status == StatusCode::CREATED {
        builder.insert_header((
            header::LOCATION,
            format!("/api/v1/suppliers/{}", supplier.id),
        ));
    }
    builder.json(supplier)
}

fn order_response(status: StatusCode, order: &PurchaseOrderView) -> HttpResponse {
    let mut builder = HttpResponse::build(status);
    builder.insert_header((header::ETAG, etag(order.version)));
    if status == StatusCode::CREATED {
        builder.insert_header((
            header::LOCATION,
            format!("/api/v1/purchase-orders/{}", order.id),
        ));
    }
    builder.json(order)
}

// ---------------------------------------------------------------------------------------------
// Suppliers
// ---------------------------------------------------------------------------------------------

/// List suppliers (staff) by name; archived ones only with `include_archived=true`.
#[utoipa::path(get, path = "/api/v1/suppliers", tag = "suppliers", params(SupplierQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of suppliers", body = Page<SupplierView>),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A parameter is invalid", body = Problem, content_type = "application/problem+json")))]
pub async fn list_suppliers(
    state: web::Data<AppState>,
    _staff: StaffUser,
    query: ApiQuery<SupplierQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = db::run(&state.pool, move |conn| {
        suppliers::list_suppliers(conn, &query.0)
    })
    .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Add a supplier (staff). Names are unique among active suppliers, ignoring case.
#[utoipa::path(post, path = "/api/v1/suppliers", tag = "suppliers", request_body = NewSupplier,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = SupplierView,
         headers(("Location" = String, description = "The supplier's URL"),
                 ("ETag" = String, description = "The supplier's version, quoted"))),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "An active supplier has this name", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json")))]
pub async fn create_supplier(
    state: web::Data<AppState>,
    _staff: StaffUser,
    body: ApiJson<NewSupplier>,
) -> Result<HttpResponse, ApiError> {
    let supplier = db::run(&state.pool, move |conn| {
        suppliers::create_supplier(conn, &body.0)
    })
    .await?;
    Ok(supplier_response(StatusCode::CREATED, &supplier))
}

/// Get a supplier (staff), archived or not; the `ETag` carries its version for `If-Match`.
#[utoipa::path(get, path = "/api/v1/suppliers/{id}", tag = "suppliers",
    params(("id" = i64, Path, description = "Supplier id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The supplier", body = SupplierView,
         headers(("ETag" = String, description = "The supplier's version, quoted"))),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such supplier", body = Problem, content_type = "application/problem+json")))]
pub async fn get_supplier(
    state: web::Data<AppState>,
    _staff: StaffUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let supplier = db::run(&state.pool, move |conn| suppliers::get_supplier(conn, id)).await?;
    Ok(supplier_response(StatusCode::OK, &supplier))
}

/// Change a supplier (staff). Send `If-Match` with the ETag you read: a stale version is refused
/// with 412, a missing header with 428.
#[utoipa::path(patch, path = "/api/v1/suppliers/{id}", tag = "suppliers", request_body = SupplierPatch,
    params(("id" = i64, Path, description = "Supplier id"),
           ("If-Match" = String, Header, description = "ETag of the version being changed", example = "\"1\"")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Updated", body = SupplierView, headers(("ETag" = String))),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such supplier", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "An active supplier has the new name", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "The supplier changed since it was read", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
        (status = 428, description = "If-Match is missing", body = Problem, content_type = "application/problem+json")))]
pub async fn update_supplier(
    state: web::Data<AppState>,
    _staff: StaffUser,
    req: HttpRequest,
    id: web::Path<i64>,
    body: ApiJson<SupplierPatch>,
) -> Result<HttpResponse, ApiError> {
    let version = if_match_version(&req)?;
    let id = id.into_inner();
    let supplier = db::run(&state.pool, move |conn| {
        suppliers::update_supplier(conn, id, version, &body.0)
    })
    .await?;
    Ok(supplier_response(StatusCode::OK, &supplier))
}

/// Remove a supplier (staff): deleted when it has no purchase orders, otherwise archived (it
/// keeps its orders' history but takes no new orders) and returned.
#[utoipa::path(delete, path = "/api/v1/suppliers/{id}", tag = "suppliers",
    params(("id" = i64, Path, description = "Supplier id")), security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 200, description = "The supplier has purchase orders and was archived instead", body = SupplierView,
         headers(("ETag" = String, description = "The version, quoted"))),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such supplier", body = Problem, content_type = "application/problem+json")))]
pub async fn delete_supplier(
    state: web::Data<AppState>,
    _staff: StaffUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    match db::run(&state.pool, move |conn| {
        suppliers::delete_supplier(conn, id)
    })
    .await?
    {
        suppliers::Removal::Deleted => Ok(HttpResponse::NoContent().finish()),
        suppliers::Removal::Archived(supplier) => Ok(supplier_response(StatusCode::OK, &supplier)),
    }
}

// ---------------------------------------------------------------------------------------------
// Purchase orders
// ---------------------------------------------------------------------------------------------

/// List purchase orders (staff), newest first, with their lines and receipts.
#[utoipa::path(get, path = "/api/v1/purchase-orders", tag = "purchase-orders",
    params(PurchaseOrderQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of purchase orders", body = Page<PurchaseOrderView>),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A parameter is invalid", body = Problem, content_type = "application/problem+json")))]
pub async fn list_purchase_orders(
    state: web::Data<AppState>,
    _staff: StaffUser,
    query: ApiQuery<PurchaseOrderQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = db::run(&state.pool, move |conn| {
        purchase_orders::list_purchase_orders(conn, &query.0)
    })
    .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Draft a purchase order (staff) with an active supplier. The total is the sum of quantity ×
/// unit cost over the lines, in the store currency; without `expected_on` the delivery is
/// expected today plus the supplier's lead time. Nothing counts as `on_order` until it is
/// submitted.
#[utoipa::path(post, path = "/api/v1/purchase-orders", tag = "purchase-orders",
    request_body = NewPurchaseOrder, security(("bearer" = [])),
    responses(
        (status = 201, description = "Drafted", body = PurchaseOrderView,
         headers(("Location" = String, description = "The purchase order's URL"),
                 ("ETag" = String, description = "The purchase order's version, quoted"))),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, an unknown or archived supplier, an unknown or archived book, or a book on two lines", body = Problem, content_type = "application/problem+json")))]
pub async fn create_purchase_order(
    state: web::Data<AppState>,
    staff: StaffUser,
    body: ApiJson<NewPurchaseOrder>,
) -> Result<HttpResponse, ApiError> {
    let currency = state.settings.currency.clone();
    let order = db::run(&state.pool, move |conn| {
        purchase_orders::create_purchase_order(conn, &body.0, staff.0.user_id, &currency)
    })
    .await?;
    Ok(order_response(StatusCode::CREATED, &order))
}

/// Get a purchase order (staff) with its lines (ordered, received, outstanding) and the receipts
/// made against it; the `ETag` carries its version for `If-Match`.
#[utoipa::path(get, path = "/api/v1/purchase-orders/{id}", tag = "purchase-orders",
    params(("id" = i64, Path, description = "Purchase order id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The purchase order", body = PurchaseOrderView,
         headers(("ETag" = String, description = "The purchase order's version, quoted"))),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such purchase order", body = Problem, content_type = "application/problem+json")))]
pub async fn get_purchase_order(
    state: web::Data<AppState>,
    _staff: StaffUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let order = db::run(&state.pool, move |conn| {
        purchase_orders::get_purchase_order(conn, id)
    })
    .await?;
    Ok(order_response(StatusCode::OK, &order))
}

/// Change a draft purchase order (staff): its expected date, note and/or lines (`lines` replaces
/// them all). Send `If-Match` with the ETag you read: a stale version is refused with 412, a
/// missing header with 428; an order that is no longer a draft with 409.
#[utoipa::path(patch, path = "/api/v1/purchase-orders/{id}", tag = "purchase-orders",
    request_body = PurchaseOrderPatch,
    params(("id" = i64, Path, description = "Purchase order id"),
           ("If-Match" = String, Header, description = "ETag of the version being changed", example = "\"1\"")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Updated", body = PurchaseOrderView, headers(("ETag" = String))),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such purchase order", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not a draft any more (`current_status` says what it is)", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "The purchase order changed since it was read", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, an unknown or archived book, or a book on two lines", body = Problem, content_type = "application/problem+json"),
        (status = 428, description = "If-Match is missing", body = Problem, content_type = "application/problem+json")))]
pub async fn update_purchase_order(
    state: web::Data<AppState>,
    _staff: StaffUser,
    req: HttpRequest,
    id: web::Path<i64>,
    body: ApiJson<PurchaseOrderPatch>,
) -> Result<HttpResponse, ApiError> {
    let version = if_match_version(&req)?;
    let id = id.into_inner();
    let order = db::run(&state.pool, move |conn| {
        purchase_orders::update_purchase_order(conn, id, version, &body.0)
    })
    .await?;
    Ok(order_response(StatusCode::OK, &order))
}

/// Submit a draft to the supplier (staff): `draft → submitted`. From now on its quantities count
/// as `on_order` in `GET /inventory/{book_id}`.
#[utoipa::path(post, path = "/api/v1/purchase-orders/{id}/submit", tag = "purchase-orders",
    params(("id" = i64, Path, description = "Purchase order id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "Submitted", body = PurchaseOrderView, headers(("ETag" = String))),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such purchase order", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not a draft (`current_status` and `allowed_actions` say what it is and allows)", body = Problem, content_type = "application/problem+json")))]
pub async fn submit_purchase_order(
    state: web::Data<AppState>,
    _staff: StaffUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let order = db::run(&state.pool, move |conn| purchase_orders::submit(conn, id)).await?;
    Ok(order_response(StatusCode::OK, &order))
}

/// Cancel a purchase order (staff): a draft, or a submitted order before anything was received.
#[utoipa::path(post, path = "/api/v1/purchase-orders/{id}/cancel", tag = "purchase-orders",
    params(("id" = i64, Path, description = "Purchase order id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "Cancelled", body = PurchaseOrderView, headers(("ETag" = String))),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such purchase order", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Copies were received already, or the order is final (`current_status` says which)", body = Problem, content_type = "application/problem+json")))]
pub async fn cancel_purchase_order(
    state: web::Data<AppState>,
    _staff: StaffUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let order = db::run(&state.pool, move |conn| purchase_orders::cancel(conn, id)).await?;
    Ok(order_response(StatusCode::OK, &order))
}

/// Receive copies against a submitted or partially received purchase order (staff), all in one
/// transaction: one `receipt` movement per line at the line's unit cost (referencing
/// `receipt:<id>`, which also updates the book's moving average cost), the lines' received
/// quantities, and the status (`received` once every line has arrived in full, otherwise
/// `partially_received`); `purchase_order.received` is sent to subscribed webhooks. A line with
/// more copies than are outstanding is refused with 409 and nothing is received, unless
/// `allow_over_receipt`. With an `Idempotency-Key`, retries of the same body replay the first
/// response (with `Idempotent-Replayed: true`); the same key with another body is 422, and while
/// the first is still running 409.
#[utoipa::path(post, path = "/api/v1/purchase-orders/{id}/receive", tag = "purchase-orders",
    request_body = ReceivePurchaseOrder,
    params(("id" = i64, Path, description = "Purchase order id"),
           ("Idempotency-Key" = Option<String>, Header,
            description = "1 to 255 visible ASCII characters; kept 24 hours per caller")),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Received", body = PurchaseOrderReceiptView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such purchase order", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order takes no receipts now (`current_status`), a line exceeds its outstanding quantity (the detail names it), or the Idempotency-Key is in use", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, a book not on the order or on two lines, or a reused Idempotency-Key", body = Problem, content_type = "application/problem+json")))]
pub async fn receive_purchase_order(
    state: web::Data<AppState>,
    staff: StaffUser,
    req: HttpRequest,
    id: web::Path<i64>,
    body: ApiJson<ReceivePurchaseOrder>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let input = body.into_inner();
    let user_id = staff.0.user_id;
    let currency = state.settings.currency.clone();
    // The key is bound to the order as well as the body: reused for another order (or another
    // endpoint) it is refused, never answered with this receipt.
    let hash = idempotency::request_hash(&serde_json::json!({
        "purchase_order_id": id,
        "receive": &input,
    }))?;
    let outcome = create_once(&state, &req, user_id, hash, move |conn, store| {
        purchase_orders::receive(conn, id, &input, user_id, &currency, |c, v| store(c, v))
    })
    .await?;
    Ok(answer_created(outcome, None))
}

#[derive(OpenApi)]
#[openapi(
    paths(
        list_suppliers, create_supplier, get_supplier, update_supplier, delete_supplier,
        list_purchase_orders, create_purchase_order, get_purchase_order, update_purchase_order,
        submit_purchase_order, cancel_purchase_order, receive_purchase_order
    ),
    components(schemas(
        SupplierView, NewSupplier, SupplierPatch, Page<SupplierView>,
        PurchaseOrderStatus, PurchaseOrderAction, PurchaseOrderView, PurchaseOrderLineView,
        PurchaseOrderReceiptRef, NewPurchaseOrder, PurchaseOrderLineInput, PurchaseOrderPatch,
        ReceivePurchaseOrder, ReceiveLineInput, PurchaseOrderReceiptView, ReceiptView,
        ReceiptLineView, Page<PurchaseOrderView>
    ))
)]
pub struct PurchasingApi;
