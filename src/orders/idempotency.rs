//! `Idempotency-Key`: one key (per caller) creates at most one effect, however many retries race
//! (core invariant 5).
//!
//! The first request inserts the key row with no status (in progress) in its own short
//! transaction; a unique violation means another request owns the key. The owner stores its
//! outcome on the row (a success inside the order's own transaction; a 4xx right after); a 5xx
//! deletes the row so that a retry can run. Keys are kept 24 hours.

use crate::db::schema::idempotency_keys;
use crate::db::{now, write_transaction, DbConn};
use crate::error::ApiError;
use actix_web::{HttpRequest, ResponseError};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub const HEADER: &str = "Idempotency-Key";
/// How long a key is remembered.
pub const RETENTION_HOURS: i64 = 24;

/// The key sent by the client, if any: 1 to 255 visible ASCII characters.
pub fn key_from(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get(HEADER) else {
        return Ok(None);
    };
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > 255 || !bytes.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(ApiError::invalid(
            HEADER,
            "must be 1 to 255 visible ASCII characters",
        ));
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

/// SHA-256 (hex) of the canonical JSON of a request: object keys sorted, no whitespace.
pub fn request_hash<T: serde::Serialize>(body: &T) -> Result<String, ApiError> {
    let value = serde_json::to_value(body).map_err(ApiError::internal)?;
    let mut out = String::new();
    canonical(&value, &mut out);
    Ok(hex::encode(Sha256::digest(out.as_bytes())))
}

fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// What to do with a request carrying a key.
#[derive(Debug)]
pub enum Begin {
    /// This request owns the key (row id): run it, then [`complete`] or [`abandon`].
    Proceed(i64),
    /// The first request finished: answer with its status and body.
    Replay { status: u16, body: String },
}

/// Claims `key` for `scope`, or tells what the first request with it did.
pub fn begin(conn: &mut DbConn, scope: &str, key: &str, hash: &str) -> Result<Begin, ApiError> {
    // The owner of a row may delete it (after a 5xx) between our insert and our read: try again.
    for _ in 0..3 {
        let inserted: Result<i64, DieselError> = write_transaction(conn, |conn| {
            let cutoff = now() - chrono::Duration::hours(RETENTION_HOURS);
            diesel::delete(idempotency_keys::table.filter(idempotency_keys::created_at.lt(cutoff)))
                .execute(conn)?;
            diesel::insert_into(idempotency_keys::table)
                .values((
                    idempotency_keys::scope.eq(scope),
                    idempotency_keys::key.eq(key),
                    idempotency_keys::request_hash.eq(hash),
                    idempotency_keys::created_at.eq(now()),
                ))
                .returning(idempotency_keys::id)
                .get_result(conn)
        });
        match inserted {
            Ok(id) => return Ok(Begin::Proceed(id)),
            Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {}
            Err(other) => return Err(other.into()),
        }
        let existing: Option<(String, Option<i32>, Option<String>)> = idempotency_keys::table
            .filter(idempotency_keys::scope.eq(scope))
            .filter(idempotency_keys::key.eq(key))
            .select((
                idempotency_keys::request_hash,
                idempotency_keys::status_code,
                idempotency_keys::response_body,
            ))
            .first(conn)
            .optional()?;
        match existing {
            None => continue,
            Some((stored, _, _)) if stored != hash => {
                return Err(ApiError::invalid(
                    HEADER,
                    "was already used with a different request body",
                ))
            }
            Some((_, Some(status), body)) => {
                return Ok(Begin::Replay {
                    status: u16::try_from(status).map_err(ApiError::internal)?,
                    body: body.unwrap_or_default(),
                })
            }
            Some((_, None, _)) => {
                return Err(ApiError::Conflict(
                    "a request with this Idempotency-Key is still in progress".into(),
                ))
            }
        }
    }
    Err(ApiError::Unavailable(
        "the Idempotency-Key kept changing hands".into(),
    ))
}

/// What a request carrying a key came to.
pub enum Outcome<T> {
    /// This request ran; `T` is its (201) result.
    Fresh(Box<T>),
    /// An earlier request with the key finished: answer with its status and body.
    Replayed { status: u16, body: String },
}

/// The callback through which keyed work stores its successful result, inside the work's own
/// transaction, so that the stored answer commits together with the effect.
pub type StoreResult<'a, T> = dyn FnMut(&mut DbConn, &T) -> Result<(), ApiError> + 'a;

/// Runs `work` at most once for `key` (the whole protocol of this module): claims the key, runs
/// the work, and keeps its outcome for replays — a success (stored as 201) through the callback
/// the work gets, a 4xx right after; a 5xx releases the key so that a retry runs afresh.
pub fn run_once<T: serde::Serialize>(
    conn: &mut DbConn,
    scope: &str,
    key: &str,
    hash: &str,
    work: impl FnOnce(&mut DbConn, &mut StoreResult<'_, T>) -> Result<T, ApiError>,
) -> Result<Outcome<T>, ApiError> {
    let key_id = match begin(conn, scope, key, hash)? {
        Begin::Replay { status, body } => return Ok(Outcome::Replayed { status, body }),
        Begin::Proceed(id) => id,
    };
    let result = work(conn, &mut |conn, value| {
        let body = serde_json::to_string(value).map_err(ApiError::internal)?;
        complete(conn, key_id, 201, &body)
    });
    match result {
        Ok(value) => Ok(Outcome::Fresh(Box::new(value))),
        Err(err) if err.status_code().is_server_error() => {
            if let Err(e) = abandon(conn, key_id) {
                log::error!("cannot release Idempotency-Key row {key_id}: {e}");
            }
            Err(err)
        }
        Err(err) => {
            let body = serde_json::to_string(&err.to_problem()).map_err(ApiError::internal)?;
            if let Err(e) = complete(conn, key_id, err.status_code().as_u16(), &body) {
                log::error!("cannot store the outcome of Idempotency-Key row {key_id}: {e}");
                let _ = abandon(conn, key_id);
            }
            Err(err)
        }
    }
}

/// Stores the outcome of the request that owns key row `id`.
pub fn complete(conn: &mut DbConn, id: i64, status: u16, body: &str) -> Result<(), ApiError> {
    diesel::update(idempotency_keys::table.find(id))
        .set((
            idempotency_keys::status_code.eq(Some(i32::from(status))),
            idempotency_keys::response_body.eq(Some(body)),
        ))
        .execute(conn)?;
    Ok(())
}

/// Forgets key row `id` (its request failed with a 5xx), so that a retry runs afresh.
pub fn abandon(conn: &mut DbConn, id: i64) -> Result<(), ApiError> {
    diesel::delete(idempotency_keys::table.find(id)).execute(conn)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_ignores_key_order_and_spacing() {
        let a: Value = serde_json::from_str(r#"{"b": [1, {"y": 2, "x": 1}], "a": "s"}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":"s","b":[1,{"x":1,"y":2}]}"#).unwrap();
        assert_eq!(request_hash(&a).unwrap(), request_hash(&b).unwrap());
        let c: Value = serde_json::from_str(r#"{"a":"s","b":[{"x":1,"y":2},1]}"#).unwrap();
        assert_ne!(request_hash(&a).unwrap(), request_hash(&c).unwrap());
    }
}
