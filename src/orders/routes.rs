//! HTTP routes of `/orders`.

use crate::app::AppState;
use crate::auth::{AuthUser, StaffUser};
use crate::db;
use crate::error::{ApiError, Problem, Shortage, PROBLEM_JSON};
use crate::http::extract::parse_json;
use crate::http::{ApiJson, ApiQuery, Page};
use crate::orders::idempotency::{self, Outcome};
use crate::orders::model::*;
use crate::orders::payments::{
    self, NewPayment, PayContext, PaymentMethod, PaymentResult, PaymentStatus, PaymentView,
};
use crate::orders::service;
use crate::orders::state::{OrderAction, OrderStatus};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use utoipa::OpenApi;
use validator::Validate;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/orders")
            .service(
                web::resource("")
                    .route(web::post().to(create_order))
                    .route(web::get().to(list_orders)),
            )
            .service(web::resource("/{id}").route(web::get().to(get_order)))
            .service(web::resource("/{id}/events").route(web::get().to(list_events)))
            .service(web::resource("/{id}/cancel").route(web::post().to(cancel_order)))
            .service(web::resource("/{id}/fulfil").route(web::post().to(fulfil_order)))
            .service(
                web::resource("/{id}/payments")
                    .route(web::post().to(pay_order))
                    .route(web::get().to(list_payments)),
            ),
    );
}

fn location(id: i64) -> String {
    format!("/api/v1/orders/{id}")
}

fn created(order: &OrderView) -> HttpResponse {
    HttpResponse::Created()
        .insert_header((header::LOCATION, location(order.id)))
        .json(order)
}

/// The first response to a key, sent again.
fn replay(status: u16, body: String) -> HttpResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut builder = HttpResponse::build(status);
    builder.insert_header(("Idempotent-Replayed", "true"));
    if status.is_success() {
        builder.content_type("application/json");
        if status == StatusCode::CREATED {
            let id = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["id"].as_i64());
            if let Some(id) = id {
                builder.insert_header((header::LOCATION, location(id)));
            }
        }
    } else {
        builder.content_type(PROBLEM_JSON);
    }
    builder.body(body)
}

/// Place an order. Every line's book must exist and be for sale; stock for all lines is
/// reserved in one transaction, or nothing is (409 listing every short book). A customer orders
/// for themselves; staff for a customer (`customer_id`) or a walk-in shopper (none). With an
/// `Idempotency-Key`, retries of the same body replay the first response (with
/// `Idempotent-Replayed: true`); the same key with another body is 422, and while the first is
/// still running 409.
#[utoipa::path(post, path = "/api/v1/orders", tag = "orders", request_body = NewOrder,
    params(("Idempotency-Key" = Option<String>, Header,
            description = "1 to 255 visible ASCII characters; kept 24 hours per caller")),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Placed, stock reserved", body = OrderView,
         headers(("Location" = String, description = "The order's URL"))),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A customer ordering for someone else", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not enough stock (`shortages` lists each short book), or the Idempotency-Key is in use", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, unknown or archived book, duplicate book, unknown customer, or a reused Idempotency-Key", body = Problem, content_type = "application/problem+json")))]
pub async fn create_order(
    state: web::Data<AppState>,
    user: AuthUser,
    req: HttpRequest,
    body: ApiJson<NewOrder>,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency::key_from(&req)?;
    let input = body.into_inner();
    let currency = state.settings.currency.clone();
    let ttl = state.settings.order_ttl;
    let Some(key) = key else {
        let order = db::run(&state.pool, move |conn| {
            service::create_order(conn, &user, &input, &currency, ttl, |_, _| Ok(()))
        })
        .await?;
        return Ok(created(&order));
    };
    let scope = format!("user:{}", user.id);
    let hash = idempotency::request_hash(&input)?;
    let outcome = db::run(&state.pool, move |conn| {
        idempotency::run_once(conn, &scope, &key, &hash, |conn, store| {
            service::create_order(conn, &user, &input, &currency, ttl, |c, order| {
                store(c, order)
            })
        })
    })
    .await?;
    Ok(match outcome {
        Outcome::Fresh(order) => created(&order),
        Outcome::Replayed { status, body } => replay(status, body),
    })
}

/// List orders: staff see all, a customer only their own (the filters apply within them).
#[utoipa::path(get, path = "/api/v1/orders", tag = "orders", params(OrderQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of orders", body = Page<OrderView>),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A parameter is invalid", body = Problem, content_type = "application/problem+json")))]
pub async fn list_orders(
    state: web::Data<AppState>,
    user: AuthUser,
    query: ApiQuery<OrderQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = db::run(&state.pool, move |conn| {
        service::list_orders(conn, &user, &query.0)
    })
    .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Get an order with its lines. Another customer's order is 404.
#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = "orders",
    params(("id" = i64, Path, description = "Order id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The order", body = OrderView,
         headers(("ETag" = String, description = "The order's version, quoted"))),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order (or not yours)", body = Problem, content_type = "application/problem+json")))]
pub async fn get_order(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let order = db::run(&state.pool, move |conn| service::get_order(conn, &user, id)).await?;
    Ok(HttpResponse::Ok()
        .insert_header((
            actix_web::http::header::ETAG,
            crate::http::extract::etag(order.version),
        ))
        .json(order))
}

/// An order's status history, oldest first, with who changed it and when.
#[utoipa::path(get, path = "/api/v1/orders/{id}/events", tag = "orders",
    params(("id" = i64, Path, description = "Order id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The events", body = Vec<OrderEventView>),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order (or not yours)", body = Problem, content_type = "application/problem+json")))]
pub async fn list_events(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let events = db::run(&state.pool, move |conn| {
        service::list_events(conn, &user, id)
    })
    .await?;
    Ok(HttpResponse::Ok().json(events))
}

/// Cancel an unpaid order and release its reserved stock, exactly once however many cancels
/// race. Customers cancel their own orders, staff any. The body (`{"reason": …}`) is optional.
/// A paid order cannot be cancelled yet: that needs a refund, which comes with payments, so it
/// is refused with 409 like every illegal transition (naming the current status and the
/// allowed actions).
#[utoipa::path(post, path = "/api/v1/orders/{id}/cancel", tag = "orders",
    request_body(content = Option<CancelOrder>, description = "Optional reason"),
    params(("id" = i64, Path, description = "Order id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "Cancelled, stock released", body = OrderView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order (or not yours)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order's status does not allow it", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json")))]
pub async fn cancel_order(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<i64>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let input: CancelOrder = if body.iter().all(u8::is_ascii_whitespace) {
        CancelOrder::default()
    } else {
        parse_json(&body)?
    };
    input.validate()?;
    let id = id.into_inner();
    let order = db::run(&state.pool, move |conn| {
        service::cancel_order(conn, &user, id, &input)
    })
    .await?;
    Ok(HttpResponse::Ok().json(order))
}

/// Fulfil a paid order (staff): the order becomes `fulfilled` and every line's reservation is
/// consumed (`on_hand` and `reserved` both drop by the quantity, a `sale` movement referencing
/// `order:<id>` is written), exactly once however many fulfils race. Any other status is 409
/// naming the current status and the allowed actions.
#[utoipa::path(post, path = "/api/v1/orders/{id}/fulfil", tag = "orders",
    params(("id" = i64, Path, description = "Order id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "Fulfilled, stock consumed", body = OrderView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order is not paid", body = Problem, content_type = "application/problem+json")))]
pub async fn fulfil_order(
    state: web::Data<AppState>,
    staff: StaffUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let user = staff.0;
    let order = db::run(&state.pool, move |conn| {
        service::fulfil_order(conn, &user, id)
    })
    .await?;
    Ok(HttpResponse::Ok().json(order))
}

fn payments_location(id: i64) -> String {
    format!("/api/v1/orders/{id}/payments")
}

/// Pay an order's outstanding total. `card` charges the token through the payment provider and
/// moves the order to `paid`; a decline is 402 with the provider's `code` (`card_declined`,
/// `insufficient_funds`), recorded as a `failed` payment, the order left payable. `cash` is for
/// staff at the counter. `bank_transfer` records a `pending` payment and leaves the order
/// `pending_payment` until staff confirm it. A disabled or unknown method is 422. An order that
/// is no longer payable (cancelled, already paid) is 409 and is not charged. With an
/// `Idempotency-Key`, retries of the same body replay the first response.
#[utoipa::path(post, path = "/api/v1/orders/{id}/payments", tag = "orders", request_body = NewPayment,
    params(("id" = i64, Path, description = "Order id"),
           ("Idempotency-Key" = Option<String>, Header,
            description = "1 to 255 visible ASCII characters; kept 24 hours per caller")),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Paid (or a pending bank transfer recorded)", body = PaymentResult,
         headers(("Location" = String, description = "The order's payments"))),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 402, description = "Declined by the provider (`code` says why)", body = Problem, content_type = "application/problem+json",
         example = json!({"type": "https://bookstore.example/problems/payment-declined", "title": "Payment declined",
                          "status": 402, "detail": "the payment of order 12 was declined: the card was declined",
                          "code": "card_declined"})),
        (status = 403, description = "A customer paying cash", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order (or not yours)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order is not payable, or the Idempotency-Key is in use", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown or disabled method, missing or invalid token, or a reused Idempotency-Key", body = Problem, content_type = "application/problem+json")))]
pub async fn pay_order(
    state: web::Data<AppState>,
    user: AuthUser,
    req: HttpRequest,
    id: web::Path<i64>,
    body: ApiJson<NewPayment>,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency::key_from(&req)?;
    let id = id.into_inner();
    let input = body.into_inner();
    // The order is part of what a key stands for: the same key for another order is a reuse.
    let hash = idempotency::request_hash(&serde_json::json!({"order_id": id, "payment": &input}))?;
    let scope = format!("user:{}", user.id);
    let st = state.clone();
    let pay = move |conn: &mut db::DbConn,
                    after: &mut dyn FnMut(
        &mut db::DbConn,
        &PaymentResult,
    ) -> Result<(), ApiError>| {
        let ctx = PayContext {
            provider: st.payment_provider.as_ref(),
            methods: &st.settings.payment_methods,
        };
        payments::pay_order(conn, &ctx, &user, id, &input, |c, r| after(c, r))
    };
    let created = |result: &PaymentResult| {
        HttpResponse::Created()
            .insert_header((header::LOCATION, payments_location(id)))
            .json(result)
    };
    let Some(key) = key else {
        let result = db::run(&state.pool, move |conn| pay(conn, &mut |_, _| Ok(()))).await?;
        return Ok(created(&result));
    };
    let outcome = db::run(&state.pool, move |conn| {
        idempotency::run_once(conn, &scope, &key, &hash, |conn, store| pay(conn, store))
    })
    .await?;
    Ok(match outcome {
        Outcome::Fresh(result) => created(&result),
        Outcome::Replayed { status, body } => {
            let mut res = replay(status, body);
            if status == 201 {
                res.headers_mut().insert(
                    header::LOCATION,
                    header::HeaderValue::from_str(&payments_location(id))
                        .map_err(ApiError::internal)?,
                );
            }
            res
        }
    })
}

/// An order's payments and payment attempts, oldest first. Another customer's order is 404.
#[utoipa::path(get, path = "/api/v1/orders/{id}/payments", tag = "orders",
    params(("id" = i64, Path, description = "Order id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The payments", body = Vec<PaymentView>),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order (or not yours)", body = Problem, content_type = "application/problem+json")))]
pub async fn list_payments(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let list = db::run(&state.pool, move |conn| {
        payments::list_payments(conn, &user, id)
    })
    .await?;
    Ok(HttpResponse::Ok().json(list))
}

#[derive(OpenApi)]
#[openapi(
    paths(create_order, list_orders, get_order, list_events, cancel_order, fulfil_order,
          pay_order, list_payments),
    components(schemas(
        NewOrder, NewOrderLine, ShippingAddress, CancelOrder, OrderView, OrderLineView,
        OrderEventView, OrderStatus, OrderAction, Shortage, Page<OrderView>, NewPayment,
        PaymentView, PaymentResult, PaymentMethod, PaymentStatus
    ))
)]
pub struct OrdersApi;
