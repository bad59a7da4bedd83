//! HTTP routes of `/orders`.

use crate::app::AppState;
use crate::auth::{Principal, StaffUser};
use crate::db;
use crate::error::{ApiError, Problem, Shortage};
use crate::http::extract::OptionalJson;
use crate::http::idempotent::{answer_created, create_once};
use crate::http::{ApiJson, ApiQuery, Page};
use crate::idempotency::{self, Outcome};
use crate::orders::model::*;
use crate::orders::payments::{
    self, NewPayment, PayContext, PaymentMethod, PaymentResult, PaymentStatus, PaymentView,
};
use crate::orders::refunds::{self, RefundStatus, RefundView};
use crate::orders::returns::{
    self, NewReturn, NewReturnLine, ReturnDecision, ReturnLineView, ReturnRejection, ReturnStatus,
    ReturnView,
};
use crate::orders::service;
use crate::orders::state::{OrderAction, OrderStatus};
use actix_web::{web, HttpRequest, HttpResponse};
use utoipa::OpenApi;

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
            .service(web::resource("/{id}/complete").route(web::post().to(complete_order)))
            .service(
                web::resource("/{id}/payments")
                    .route(web::post().to(pay_order))
                    .route(web::get().to(list_payments)),
            )
            .service(
                web::resource("/{id}/payments/{payment_id}/confirm")
                    .route(web::post().to(confirm_transfer)),
            )
            .service(
                web::resource("/{id}/payments/{payment_id}/reject")
                    .route(web::post().to(reject_transfer)),
            )
            .service(web::resource("/{id}/refunds").route(web::get().to(list_refunds)))
            .service(
                web::resource("/{id}/returns")
                    .route(web::post().to(create_return))
                    .route(web::get().to(list_returns)),
            )
            .service(
                web::resource("/{id}/returns/{return_id}/receive")
                    .route(web::post().to(receive_return)),
            )
            .service(
                web::resource("/{id}/returns/{return_id}/reject")
                    .route(web::post().to(reject_return)),
            ),
    );
}

fn location(id: i64) -> String {
    format!("/api/v1/orders/{id}")
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
    user: Principal,
    req: HttpRequest,
    body: ApiJson<NewOrder>,
) -> Result<HttpResponse, ApiError> {
    let input = body.into_inner();
    let hash = idempotency::request_hash(&input)?;
    let user_id = user.user_id;
    let st = state.clone();
    let outcome = create_once(&state, &req, user_id, hash, move |conn, store| {
        let ctx = service::OrderContext {
            currency: &st.settings.currency,
            ttl: st.settings.order_ttl,
            payment_methods: &st.settings.payment_methods,
        };
        service::create_order(conn, &user, &input, &ctx, |c, o| store(c, o))
    })
    .await?;
    let id = match &outcome {
        Outcome::Fresh(order) => Some(order.id),
        Outcome::Replayed { body, .. } => serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["id"].as_i64()),
    };
    Ok(answer_created(outcome, id.map(location)))
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
    user: Principal,
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
    user: Principal,
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
    user: Principal,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let events = db::run(&state.pool, move |conn| {
        service::list_events(conn, &user, id)
    })
    .await?;
    Ok(HttpResponse::Ok().json(events))
}

/// Cancel an order and release its reserved stock, exactly once however many cancels (and the
/// expiry task) race. Customers cancel their own unpaid orders; staff also cancel paid ones,
/// which refunds the payments in full (see `GET /orders/{id}/refunds`; a card refund the
/// provider cannot take now stays `pending` and is retried). A pending bank transfer is marked
/// failed. The body (`{"reason": …}`) is optional. Any other status is 409 naming the current
/// status and the allowed actions.
#[utoipa::path(post, path = "/api/v1/orders/{id}/cancel", tag = "orders",
    request_body(content = Option<CancelOrder>, description = "Optional reason"),
    params(("id" = i64, Path, description = "Order id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "Cancelled, stock released (and a paid order refunded)", body = OrderView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order (or not yours)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order's status does not allow it", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json")))]
pub async fn cancel_order(
    state: web::Data<AppState>,
    user: Principal,
    id: web::Path<i64>,
    body: OptionalJson<CancelOrder>,
) -> Result<HttpResponse, ApiError> {
    let input = body.into_inner();
    let id = id.into_inner();
    let st = state.clone();
    let order = db::run(&state.pool, move |conn| {
        service::cancel_order(conn, st.payment_provider.as_ref(), &user, id, &input)
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
/// `pending_payment`, its stock held for the bank transfer window, until staff confirm or reject
/// it; meanwhile the order takes no other payment (409). A disabled or unknown method is 422. An
/// order that is no longer payable (cancelled, already paid) is 409 and is not charged. With an
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
    user: Principal,
    req: HttpRequest,
    id: web::Path<i64>,
    body: ApiJson<NewPayment>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let input = body.into_inner();
    // The order is part of what a key stands for: the same key for another order is a reuse.
    let hash = idempotency::request_hash(&serde_json::json!({"order_id": id, "payment": &input}))?;
    let key = crate::http::idempotent::keyed(&req, user.user_id, hash)?;
    let st = state.clone();
    let outcome = db::run(&state.pool, move |conn| {
        let ctx = PayContext {
            provider: st.payment_provider.as_ref(),
            methods: &st.settings.payment_methods,
            bank_transfer_ttl: st.settings.bank_transfer_ttl,
            lease: st.settings.payment_lease,
        };
        payments::pay_order(conn, &ctx, &user, id, &input, key.as_ref())
    })
    .await?;
    Ok(answer_created(outcome, Some(payments_location(id))))
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
    user: Principal,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let list = db::run(&state.pool, move |conn| {
        payments::list_payments(conn, &user, id)
    })
    .await?;
    Ok(HttpResponse::Ok().json(list))
}

/// Mark a fulfilled order completed (staff): delivered, nothing more to do. Returns remain
/// possible.
#[utoipa::path(post, path = "/api/v1/orders/{id}/complete", tag = "orders",
    params(("id" = i64, Path, description = "Order id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "Completed", body = OrderView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order is not fulfilled", body = Problem, content_type = "application/problem+json")))]
pub async fn complete_order(
    state: web::Data<AppState>,
    staff: StaffUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let user = staff.0;
    let order = db::run(&state.pool, move |conn| {
        service::complete_order(conn, &user, id)
    })
    .await?;
    Ok(HttpResponse::Ok().json(order))
}

/// Confirm that a pending bank transfer arrived (staff): the payment `succeeded` and the order
/// `paid`, in one transaction. A transfer already confirmed, rejected or expired, or an order no
/// longer payable, is 409.
#[utoipa::path(post, path = "/api/v1/orders/{id}/payments/{payment_id}/confirm", tag = "orders",
    params(("id" = i64, Path, description = "Order id"),
           ("payment_id" = i64, Path, description = "The pending bank transfer")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Confirmed; the order is paid", body = PaymentResult),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order or payment", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not a pending bank transfer, or the order is not payable", body = Problem, content_type = "application/problem+json")))]
pub async fn confirm_transfer(
    state: web::Data<AppState>,
    staff: StaffUser,
    path: web::Path<(i64, i64)>,
) -> Result<HttpResponse, ApiError> {
    let (id, payment_id) = path.into_inner();
    let user = staff.0;
    let result = db::run(&state.pool, move |conn| {
        payments::confirm_transfer(conn, &user, id, payment_id)
    })
    .await?;
    Ok(HttpResponse::Ok().json(result))
}

/// Reject a pending bank transfer that never arrived (staff): the payment becomes `failed`
/// (`transfer_rejected`) and the order, still `pending_payment`, can be paid again; its stock is
/// held for the usual unpaid-order time from now.
#[utoipa::path(post, path = "/api/v1/orders/{id}/payments/{payment_id}/reject", tag = "orders",
    params(("id" = i64, Path, description = "Order id"),
           ("payment_id" = i64, Path, description = "The pending bank transfer")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Rejected; the order is payable again", body = PaymentResult),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order or payment", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not a pending bank transfer, or the order is no longer unpaid", body = Problem, content_type = "application/problem+json")))]
pub async fn reject_transfer(
    state: web::Data<AppState>,
    staff: StaffUser,
    path: web::Path<(i64, i64)>,
) -> Result<HttpResponse, ApiError> {
    let (id, payment_id) = path.into_inner();
    let user = staff.0;
    let ttl = state.settings.order_ttl;
    let result = db::run(&state.pool, move |conn| {
        payments::reject_transfer(conn, &user, id, payment_id, ttl)
    })
    .await?;
    Ok(HttpResponse::Ok().json(result))
}

/// An order's refunds, oldest first: from cancelling a paid order, from returns, or from a card
/// charge that could not be recorded. Another customer's order is 404.
#[utoipa::path(get, path = "/api/v1/orders/{id}/refunds", tag = "orders",
    params(("id" = i64, Path, description = "Order id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The refunds", body = Vec<RefundView>),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order (or not yours)", body = Problem, content_type = "application/problem+json")))]
pub async fn list_refunds(
    state: web::Data<AppState>,
    user: Principal,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let list = db::run(&state.pool, move |conn| {
        refunds::list_refunds(conn, &user, id)
    })
    .await?;
    Ok(HttpResponse::Ok().json(list))
}

fn returns_location(id: i64) -> String {
    format!("/api/v1/orders/{id}/returns")
}

/// Return copies of a fulfilled (or completed, or partly returned) order. Staff: received at
/// once — the lines are refunded at the prices on the order (through the provider for card
/// payments, after the transaction; see `refunds`), restocked with `return` movements unless
/// `restock` is false, and the order becomes `partially_returned` or `returned`. Customers:
/// a `requested` return of their own order, within the return window after fulfilment
/// (`BOOKSTORE_RETURN_WINDOW_DAYS`); nothing moves until staff receive or reject it. More than
/// was sold and not yet returned (or requested) is 409. With an `Idempotency-Key`, retries of
/// the same body replay the first response (as it was when it committed).
#[utoipa::path(post, path = "/api/v1/orders/{id}/returns", tag = "orders", request_body = NewReturn,
    params(("id" = i64, Path, description = "Order id"),
           ("Idempotency-Key" = Option<String>, Header,
            description = "1 to 255 visible ASCII characters; kept 24 hours per caller")),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Received (staff) or requested (customer)", body = ReturnView,
         headers(("Location" = String, description = "The order's returns"))),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order (or not yours)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order takes no returns now, the window has closed, more than can be returned, or the Idempotency-Key is in use", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, a book not on the order, a duplicate book, `restock` from a customer, or a reused Idempotency-Key", body = Problem, content_type = "application/problem+json")))]
pub async fn create_return(
    state: web::Data<AppState>,
    user: Principal,
    req: HttpRequest,
    id: web::Path<i64>,
    body: ApiJson<NewReturn>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let input = body.into_inner();
    let hash = idempotency::request_hash(&serde_json::json!({"order_id": id, "return": &input}))?;
    let user_id = user.user_id;
    let st = state.clone();
    let outcome = create_once(&state, &req, user_id, hash, move |conn, store| {
        returns::create_return(
            conn,
            st.payment_provider.as_ref(),
            &user,
            id,
            &input,
            st.settings.return_window,
            |c, r| store(c, r),
        )
    })
    .await?;
    Ok(answer_created(outcome, Some(returns_location(id))))
}

/// An order's returns with their lines and refunds, oldest first. Another customer's order is
/// 404.
#[utoipa::path(get, path = "/api/v1/orders/{id}/returns", tag = "orders",
    params(("id" = i64, Path, description = "Order id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The returns", body = Vec<ReturnView>),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order (or not yours)", body = Problem, content_type = "application/problem+json")))]
pub async fn list_returns(
    state: web::Data<AppState>,
    user: Principal,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let list = db::run(&state.pool, move |conn| {
        returns::list_returns(conn, &user, id)
    })
    .await?;
    Ok(HttpResponse::Ok().json(list))
}

/// Receive a customer's requested return (staff): as a staff return — refunded, restocked
/// unless `restock` is false, the order moved to `partially_returned` or `returned`. The body
/// is optional. A return already received or rejected is 409.
#[utoipa::path(post, path = "/api/v1/orders/{id}/returns/{return_id}/receive", tag = "orders",
    request_body(content = Option<ReturnDecision>, description = "Optional: restock (default true) and a note"),
    params(("id" = i64, Path, description = "Order id"),
           ("return_id" = i64, Path, description = "The requested return")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Received and refunded", body = ReturnView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order or return", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not a requested return, or more than can still be returned", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json")))]
pub async fn receive_return(
    state: web::Data<AppState>,
    staff: StaffUser,
    path: web::Path<(i64, i64)>,
    body: OptionalJson<ReturnDecision>,
) -> Result<HttpResponse, ApiError> {
    let input = body.into_inner();
    let (id, return_id) = path.into_inner();
    let user = staff.0;
    let st = state.clone();
    let ret = db::run(&state.pool, move |conn| {
        returns::receive_return(
            conn,
            st.payment_provider.as_ref(),
            &user,
            id,
            return_id,
            &input,
        )
    })
    .await?;
    Ok(HttpResponse::Ok().json(ret))
}

/// Turn down a customer's requested return (staff): nothing moves, nothing is refunded. The body
/// (`{"note": …}`) is optional.
#[utoipa::path(post, path = "/api/v1/orders/{id}/returns/{return_id}/reject", tag = "orders",
    request_body(content = Option<ReturnRejection>, description = "Optional note"),
    params(("id" = i64, Path, description = "Order id"),
           ("return_id" = i64, Path, description = "The requested return")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Rejected", body = ReturnView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not staff", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order or return", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not a requested return", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json")))]
pub async fn reject_return(
    state: web::Data<AppState>,
    staff: StaffUser,
    path: web::Path<(i64, i64)>,
    body: OptionalJson<ReturnRejection>,
) -> Result<HttpResponse, ApiError> {
    let input = body.into_inner();
    let (id, return_id) = path.into_inner();
    let user = staff.0;
    let ret = db::run(&state.pool, move |conn| {
        returns::reject_return(conn, &user, id, return_id, &input)
    })
    .await?;
    Ok(HttpResponse::Ok().json(ret))
}

#[derive(OpenApi)]
#[openapi(
    paths(create_order, list_orders, get_order, list_events, cancel_order, fulfil_order,
          complete_order, pay_order, list_payments, confirm_transfer, reject_transfer,
          list_refunds, create_return, list_returns, receive_return, reject_return),
    components(schemas(
        NewOrder, NewOrderLine, ShippingAddress, CancelOrder, OrderView, OrderLineView,
        OrderEventView, OrderStatus, OrderAction, Shortage, Page<OrderView>, NewPayment,
        PaymentView, PaymentResult, PaymentMethod, PaymentStatus, RefundView, RefundStatus,
        NewReturn, NewReturnLine, ReturnDecision, ReturnRejection, ReturnView, ReturnLineView,
        ReturnStatus
    ))
)]
pub struct OrdersApi;
