//! HTTP routes of `/orders`.

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::db;
use crate::error::{ApiError, Problem, Shortage, PROBLEM_JSON};
use crate::http::extract::parse_json;
use crate::http::{ApiJson, ApiQuery, Page};
use crate::orders::idempotency::{self, Begin};
use crate::orders::model::*;
use crate::orders::service;
use crate::orders::state::{OrderAction, OrderStatus};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
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
            .service(web::resource("/{id}/cancel").route(web::post().to(cancel_order))),
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

enum Created {
    Fresh(Box<OrderView>),
    Replayed(u16, String),
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
        let key_id = match idempotency::begin(conn, &scope, &key, &hash)? {
            Begin::Replay { status, body } => return Ok(Created::Replayed(status, body)),
            Begin::Proceed(id) => id,
        };
        let result = service::create_order(conn, &user, &input, &currency, ttl, |conn, order| {
            let body = serde_json::to_string(order).map_err(ApiError::internal)?;
            idempotency::complete(conn, key_id, 201, &body)
        });
        match result {
            Ok(order) => Ok(Created::Fresh(Box::new(order))),
            Err(err) if err.status_code().is_server_error() => {
                if let Err(e) = idempotency::abandon(conn, key_id) {
                    log::error!("cannot release Idempotency-Key row {key_id}: {e}");
                }
                Err(err)
            }
            Err(err) => {
                let body = serde_json::to_string(&err.to_problem()).map_err(ApiError::internal)?;
                if let Err(e) =
                    idempotency::complete(conn, key_id, err.status_code().as_u16(), &body)
                {
                    log::error!("cannot store the outcome of Idempotency-Key row {key_id}: {e}");
                    let _ = idempotency::abandon(conn, key_id);
                }
                Err(err)
            }
        }
    })
    .await?;
    Ok(match outcome {
        Created::Fresh(order) => created(&order),
        Created::Replayed(status, body) => replay(status, body),
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

#[derive(OpenApi)]
#[openapi(
    paths(create_order, list_orders, get_order, list_events, cancel_order),
    components(schemas(
        NewOrder, NewOrderLine, ShippingAddress, CancelOrder, OrderView, OrderLineView,
        OrderEventView, OrderStatus, OrderAction, Shortage, Page<OrderView>
    ))
)]
pub struct OrdersApi;
