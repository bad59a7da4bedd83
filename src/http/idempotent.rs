//! Creating something at most once per `Idempotency-Key`, over HTTP: the handlers of
//! `POST /orders`, payments, returns and purchase-order receipts run their transaction through
//! [`create_once`] and answer with [`answer_created`]. The bookkeeping of keys is
//! [`crate::idempotency`]; this module only adapts it to requests.

use crate::app::AppState;
use crate::db;
use crate::error::{ApiError, PROBLEM_JSON};
use crate::idempotency::{self, IdempotencyKey, KeyedRequest, Outcome, StoreResult};
use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse};

/// The key `req` carries, if any (a malformed one is a 422 naming the header).
pub fn key_of(req: &HttpRequest) -> Result<Option<IdempotencyKey>, ApiError> {
    req.headers()
        .get(idempotency::HEADER)
        .map(|value| IdempotencyKey::parse(value.as_bytes()))
        .transpose()
}

/// The keyed request `req` makes as `user_id`, bound to `hash`; `None` without the header.
pub fn keyed(
    req: &HttpRequest,
    user_id: i64,
    hash: String,
) -> Result<Option<KeyedRequest>, ApiError> {
    Ok(key_of(req)?.map(|key| KeyedRequest::new(key, user_id, hash)))
}

/// Runs `work`, a transaction that creates something and stores its result through the callback
/// it gets: at most once per `Idempotency-Key` when the request carries one (kept per caller, and
/// bound to the request's `hash`), plainly otherwise.
pub async fn create_once<T, W>(
    state: &AppState,
    req: &HttpRequest,
    user_id: i64,
    hash: String,
    work: W,
) -> Result<Outcome<T>, ApiError>
where
    T: serde::Serialize + Send + 'static,
    W: FnOnce(&mut db::DbConn, &mut StoreResult<'_, T>) -> Result<T, ApiError> + Send + 'static,
{
    let Some(key) = keyed(req, user_id, hash)? else {
        let value = db::run(&state.pool, move |conn| work(conn, &mut |_, _| Ok(()))).await?;
        return Ok(Outcome::Fresh(Box::new(value)));
    };
    db::run(&state.pool, move |conn| {
        idempotency::run_once(conn, &key, work)
    })
    .await
}

/// The answer to [`create_once`]: 201 with `Location: location`, or the key's first answer
/// again (`Idempotent-Replayed: true`, with the same `Location` if it was a 201).
pub fn answer_created<T: serde::Serialize>(
    outcome: Outcome<T>,
    location: Option<String>,
) -> HttpResponse {
    match outcome {
        Outcome::Fresh(value) => {
            let mut builder = HttpResponse::Created();
            if let Some(location) = location {
                builder.insert_header((header::LOCATION, location));
            }
            builder.json(value)
        }
        Outcome::Replayed { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut builder = HttpResponse::build(status);
            builder.insert_header(("Idempotent-Replayed", "true"));
            if let (StatusCode::CREATED, Some(location)) = (status, location) {
                builder.insert_header((header::LOCATION, location));
            }
            builder.content_type(if status.is_success() {
                "application/json"
            } else {
                PROBLEM_JSON
            });
            builder.body(body)
        }
    }
}
