//! The rows of `idempotency_keys` and the protocol keyed work runs through ([`run_once`]).
//!
//! A key's row is written together with the work's effect, in its transaction, so no claim can
//! outlive its work. The one exception is a card payment, whose charge is a network call between
//! two transactions: its row stays unfinished while the charge is settled, under the payment's
//! lease (see `crate::orders::card`). Keys are kept 24 hours.

use crate::db::schema::idempotency_keys;
use crate::db::{now, write_transaction, DbConn};
use crate::error::ApiError;
use crate::idempotency::key::{KeyedRequest, HEADER};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// How long a key is remembered.
pub const RETENTION_HOURS: i64 = 24;

/// A key's row, as a request carrying the key finds it.
#[derive(Debug)]
pub enum Found {
    /// Nobody has used the key (within the retention).
    New,
    /// The first request finished: answer with its status and body.
    Done { status: u16, body: String },
    /// A card payment holds the key while its charge is settled (row id); see
    /// `crate::orders::card`. Other keyed work never leaves a row unfinished: its row
    /// commits with its effect.
    Open { id: i64 },
}

/// Looks `key` up for `scope`; a key used with another request body is a 422.
pub fn find(conn: &mut DbConn, k: &KeyedRequest) -> Result<Found, ApiError> {
    let (scope, key, hash) = (&k.scope, &k.key, &k.hash);
    let existing: Option<(i64, String, Option<i32>, Option<String>)> = idempotency_keys::table
        .filter(idempotency_keys::scope.eq(scope))
        .filter(idempotency_keys::key.eq(key.as_str()))
        .filter(idempotency_keys::created_at.ge(retention_cutoff()))
        .select((
            idempotency_keys::id,
            idempotency_keys::request_hash,
            idempotency_keys::status_code,
            idempotency_keys::response_body,
        ))
        .first(conn)
        .optional()?;
    match existing {
        None => Ok(Found::New),
        Some((_, stored, _, _)) if &stored != hash => Err(ApiError::invalid(
            HEADER,
            "was already used with a different request body",
        )),
        Some((_, _, Some(status), body)) => Ok(Found::Done {
            status: u16::try_from(status).map_err(ApiError::internal)?,
            body: body.unwrap_or_default(),
        }),
        Some((id, _, None, _)) => Ok(Found::Open { id }),
    }
}

fn retention_cutoff() -> chrono::NaiveDateTime {
    now() - chrono::Duration::hours(RETENTION_HOURS)
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

/// Runs `work` at most once for `key` (the whole protocol of this module).
///
/// There is no claim that could outlive its work: the key's row is written by the work's own
/// transaction, through the callback `work` gets, together with the effect, so a crash or a
/// database error rolls both back and a retry simply runs again. Two requests racing with one key
/// both run; the second to commit meets the unique index, rolls its effect back and answers with
/// the first one's result. A 4xx is stored right after, in a transaction of its own, so a retry
/// gets the same answer; a 5xx stores nothing.
pub fn run_once<T: serde::Serialize>(
    conn: &mut DbConn,
    k: &KeyedRequest,
    work: impl FnOnce(&mut DbConn, &mut StoreResult<'_, T>) -> Result<T, ApiError>,
) -> Result<Outcome<T>, ApiError> {
    match find(conn, k)? {
        Found::Done { status, body } => return Ok(Outcome::Replayed { status, body }),
        // Only a card payment leaves a row unfinished, under its lease; on other work such a row
        // can only be a claim an older version left behind when it crashed.
        Found::Open { id } if release_stale(conn, id)? => {}
        Found::Open { .. } => return Err(in_progress(None)),
        Found::New => {}
    }
    let mut lost_race = false;
    let result = work(conn, &mut |conn, value| {
        let body = serde_json::to_string(value).map_err(ApiError::internal)?;
        match insert_done(conn, k, 201, &body) {
            Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                lost_race = true;
                Err(ApiError::Conflict(
                    "another request with this Idempotency-Key finished first".into(),
                ))
            }
            other => other.map_err(ApiError::from),
        }
    });
    match result {
        Ok(value) => Ok(Outcome::Fresh(Box::new(value))),
        Err(_) if lost_race => replay(conn, k),
        Err(err) => answer_error(conn, k, err),
    }
}

/// Keeps a 4xx answer for the key's retries (in a transaction of its own), unless another
/// request with the key finished first (then that one's answer is replayed). A 5xx is kept for
/// nobody: a retry runs afresh.
pub fn answer_error<T>(
    conn: &mut DbConn,
    k: &KeyedRequest,
    err: ApiError,
) -> Result<Outcome<T>, ApiError> {
    if err.is_server_error() {
        return Err(err);
    }
    let body = serde_json::to_string(&err.to_problem()).map_err(ApiError::internal)?;
    let stored = write_transaction(conn, |tx| insert_done(tx, k, err.http_status(), &body));
    match stored {
        Ok(()) => Err(err),
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => replay(conn, k),
        Err(e) => {
            log::warn!(
                "cannot keep the {} answer of an Idempotency-Key: {e}",
                err.http_status()
            );
            Err(err)
        }
    }
}

/// The answer another request with the key committed.
pub fn replay<T>(conn: &mut DbConn, k: &KeyedRequest) -> Result<Outcome<T>, ApiError> {
    match find(conn, k)? {
        Found::Done { status, body } => Ok(Outcome::Replayed { status, body }),
        Found::Open { .. } | Found::New => Err(in_progress(None)),
    }
}

/// 409: another request holds the key; retry after `retry_after_secs` (1 s when unknown).
pub fn in_progress(retry_after_secs: Option<u64>) -> ApiError {
    ApiError::InProgress {
        detail: "a request with this Idempotency-Key is still in progress; retry shortly".into(),
        retry_after_secs: retry_after_secs.unwrap_or(1),
    }
}

/// Writes a finished key row (inside the caller's transaction).
fn insert_done(
    conn: &mut DbConn,
    k: &KeyedRequest,
    status: u16,
    body: &str,
) -> Result<(), DieselError> {
    insert_row(conn, k, Some((status, body))).map(drop)
}

/// Writes an unfinished key row (inside the caller's transaction) for work that spans a network
/// call (a card charge); returns its id. A unique violation means another request has the key.
pub fn insert_open(conn: &mut DbConn, k: &KeyedRequest) -> Result<i64, DieselError> {
    insert_row(conn, k, None)
}

fn insert_row(
    conn: &mut DbConn,
    k: &KeyedRequest,
    answer: Option<(u16, &str)>,
) -> Result<i64, DieselError> {
    forget_expired(conn, k)?;
    diesel::insert_into(idempotency_keys::table)
        .values((
            idempotency_keys::scope.eq(&k.scope),
            idempotency_keys::key.eq(k.key.as_str()),
            idempotency_keys::request_hash.eq(&k.hash),
            idempotency_keys::status_code.eq(answer.map(|(status, _)| i32::from(status))),
            idempotency_keys::response_body.eq(answer.map(|(_, body)| body)),
            idempotency_keys::created_at.eq(now()),
        ))
        .returning(idempotency_keys::id)
        .get_result(conn)
}

/// A key past its retention is free again: its old row gives way to the new one.
fn forget_expired(conn: &mut DbConn, k: &KeyedRequest) -> Result<(), DieselError> {
    diesel::delete(
        idempotency_keys::table
            .filter(idempotency_keys::scope.eq(&k.scope))
            .filter(idempotency_keys::key.eq(k.key.as_str()))
            .filter(idempotency_keys::created_at.lt(retention_cutoff())),
    )
    .execute(conn)?;
    Ok(())
}

/// Stores the outcome of the work that holds the unfinished key row `id`.
pub fn complete(conn: &mut DbConn, id: i64, status: u16, body: &str) -> Result<(), ApiError> {
    diesel::update(idempotency_keys::table.find(id))
        .set((
            idempotency_keys::status_code.eq(Some(i32::from(status))),
            idempotency_keys::response_body.eq(Some(body)),
        ))
        .execute(conn)?;
    Ok(())
}

/// Forgets the unfinished key row `id` (its work never happened), so that a retry runs afresh.
pub fn release(conn: &mut DbConn, id: i64) -> Result<(), ApiError> {
    diesel::delete(
        idempotency_keys::table
            .find(id)
            .filter(idempotency_keys::status_code.is_null()),
    )
    .execute(conn)?;
    Ok(())
}

/// How old an unfinished row must be before [`run_once`] takes it for a dead claim: longer than
/// any request, and than the longest card payment lease.
const STALE_CLAIM: chrono::Duration = chrono::Duration::seconds(120);

/// Forgets unfinished key row `id` if it is older than [`STALE_CLAIM`]; whether it did.
fn release_stale(conn: &mut DbConn, id: i64) -> Result<bool, ApiError> {
    let deleted = diesel::delete(
        idempotency_keys::table
            .find(id)
            .filter(idempotency_keys::status_code.is_null())
            .filter(idempotency_keys::created_at.lt(now() - STALE_CLAIM)),
    )
    .execute(conn)?;
    Ok(deleted == 1)
}

/// Deletes keys past their retention (a maintenance step); returns how many.
pub fn purge_expired(conn: &mut DbConn, limit: i64) -> Result<usize, ApiError> {
    let ids: Vec<i64> = idempotency_keys::table
        .filter(idempotency_keys::created_at.lt(retention_cutoff()))
        .select(idempotency_keys::id)
        .limit(limit)
        .load(conn)?;
    if ids.is_empty() {
        return Ok(0);
    }
    Ok(
        diesel::delete(idempotency_keys::table.filter(idempotency_keys::id.eq_any(&ids)))
            .execute(conn)?,
    )
}
