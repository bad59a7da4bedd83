//! The delivery worker: sends the outbox's pending deliveries after commit, signed, and retries
//! failures with exponential backoff until the event's retry window closes.
//!
//! Guarantees, and how they are kept:
//! - **At least once.** A delivery leaves `pending` only when an attempt is recorded as 2xx (or
//!   its window closes). A worker that dies mid-attempt leaves the delivery claimed until its
//!   lease runs out; then any worker takes it again. Receivers therefore deduplicate by event id
//!   (`Bookstore-Event-Id`, also the body's `id`), which never changes between attempts.
//! - **Never twice at the same time.** Claiming is leasing: one short write transaction picks
//!   due rows (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so replicas take different rows instead of
//!   queueing; SQLite's `BEGIN IMMEDIATE` already excludes other writers), bumps their
//!   `attempts` and moves `next_attempt_at` past the attempt's lease (HTTP timeout plus a
//!   margin). The bumped `attempts` is the claim token: the result is recorded with
//!   `WHERE attempts = <token> AND status = 'pending'`, so a worker whose lease ran out cannot
//!   overwrite a newer claim.
//! - **No transaction across the network.** Claim, HTTP request, and recording are three steps;
//!   the database work runs on the blocking pool, the requests are async, up to
//!   [`CONCURRENCY`] at a time per worker.
//!
//! The request: `POST <url>` with the event's stored JSON (`{id, type, created_at, data}`, the
//! same bytes on every attempt) and the headers `Content-Type: application/json`,
//! `Bookstore-Event-Id`, `Bookstore-Event-Type`, `Bookstore-Timestamp` (unix seconds of this
//! attempt) and `Bookstore-Signature` (see [`super::signature`]). Any 2xx answer is a success;
//! anything else (another status, a redirect, a timeout, a refused connection) is retried after
//! `webhook_retry_base × 2^(attempt−1)`, at most an hour, ±20% jitter, unless that would fall
//! after the event's `created_at + webhook_max_age`: then the delivery is marked `failed`.

use crate::app::AppState;
use crate::db::schema::{webhook_attempts, webhook_deliveries, webhook_endpoints, webhook_events};
use crate::db::{self, now, write_transaction, DbConn};
use crate::error::ApiError;
use crate::webhooks::egress::{self, WebhookClient};
use crate::webhooks::model::DeliveryStatus;
use crate::webhooks::outbox::WAKE;
use crate::webhooks::signature;
use actix_web::web;
use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use futures_util::stream::{FuturesUnordered, StreamExt};
use rand::Rng;
use std::time::{Duration, Instant};

/// Requests in flight per worker.
pub const CONCURRENCY: usize = 16;
/// How long a claim outlives the HTTP timeout: time to record the result.
pub const LEASE_MARGIN: Duration = Duration::from_secs(30);
/// The longest wait between two attempts.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(3600);
/// Longest error text kept per attempt, in characters.
pub const MAX_ERROR_CHARS: usize = 500;
/// Most of an answer's body read (and then dropped), so that the connection can be reused.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Wait after the database refused a claim, at least.
const ERROR_PAUSE: Duration = Duration::from_secs(1);

/// A delivery this worker holds the lease of, with everything needed to send it.
#[derive(Debug, Clone)]
pub struct Claim {
    pub delivery_id: i64,
    /// The delivery's `attempts` after this claim: its claim token and this attempt's number.
    pub attempt: i32,
    pub endpoint_id: i64,
    pub url: String,
    pub secret: String,
    pub event_id: String,
    pub event_type: String,
    pub event_created_at: NaiveDateTime,
    /// The exact body to send.
    pub payload: String,
}

/// What one attempt gave.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub attempted_at: NaiveDateTime,
    pub status_code: Option<u16>,
    pub latency_ms: i64,
    /// Why it failed; `None` on a 2xx answer.
    pub error: Option<String>,
}

impl Outcome {
    pub fn succeeded(&self) -> bool {
        self.error.is_none() && self.status_code.is_some_and(|c| (200..300).contains(&c))
    }
}

/// When failed deliveries are tried again, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Delay before the first retry; each later one doubles it (up to [`MAX_RETRY_DELAY`]).
    pub base: Duration,
    /// After `event.created_at + max_age`, no attempt is scheduled: the delivery fails.
    pub max_age: Duration,
}

impl RetryPolicy {
    pub fn of(settings: &crate::config::Settings) -> RetryPolicy {
        RetryPolicy {
            base: settings.webhook_retry_base,
            max_age: settings.webhook_max_age,
        }
    }
}

/// The wait after failed attempt number `attempt` (1-based): `base × 2^(attempt−1)`, capped at
/// [`MAX_RETRY_DELAY`], times `jitter` (drawn from 0.8..1.2, so that endpoints failing together
/// are not retried in lockstep).
pub fn retry_delay(base: Duration, attempt: i32, jitter: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).clamp(0, 30) as u32;
    let delay = base.saturating_mul(1u32 << exponent).min(MAX_RETRY_DELAY);
    delay.mul_f64(jitter.clamp(0.0, 2.0))
}

/// What recording an attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Succeeded,
    /// Failed; tried again at this time.
    Retrying(NaiveDateTime),
    /// Failed, and the event's retry window is over.
    Failed,
    /// The claim was no longer ours (lease ran out and another worker took it, or an admin
    /// replayed it): the attempt is in the history, the delivery's state was left alone.
    Superseded,
    /// The delivery no longer exists (its endpoint was deleted).
    Gone,
}

/// The ids of up to `limit` due deliveries of active endpoints, oldest due first, locked for this
/// transaction where the backend can (PostgreSQL skips rows another worker is claiming).
fn due_ids(conn: &mut DbConn, at: NaiveDateTime, limit: i64) -> Result<Vec<i64>, ApiError> {
    macro_rules! due {
        () => {
            webhook_deliveries::table
                .filter(webhook_deliveries::status.eq(DeliveryStatus::Pending.as_str()))
                .filter(webhook_deliveries::next_attempt_at.le(at))
                .filter(
                    webhook_deliveries::endpoint_id.eq_any(
                        webhook_endpoints::table
                            .filter(webhook_endpoints::active.eq(true))
                            .select(webhook_endpoints::id),
                    ),
                )
                .order((webhook_deliveries::next_attempt_at, webhook_deliveries::id))
                .limit(limit)
                .select(webhook_deliveries::id)
        };
    }
    Ok(match conn {
        DbConn::Pg(c) => due!().for_update().skip_locked().load(c)?,
        // SQLite: the write transaction (BEGIN IMMEDIATE) already excludes other writers.
        DbConn::Sqlite(c) => due!().load(c)?,
    })
}

/// Lets PostgreSQL acknowledge the worker's own bookkeeping (claims and attempt records) before
/// it reaches the disk: these commits are most of the worker's cost, and losing the last few in
/// a crash only means that their deliveries are sent again when the lease runs out, which
/// at-least-once delivery allows. Other transactions see the rows at once, as always, so leases
/// keep replicas apart. (SQLite already commits with `synchronous = NORMAL`.)
fn commit_lazily(conn: &mut DbConn) -> Result<(), ApiError> {
    if let DbConn::Pg(c) = conn {
        c.batch_execute("SET LOCAL synchronous_commit = off")?;
    }
    Ok(())
}

/// Claims up to `limit` due deliveries for `lease`: one short transaction that bumps their
/// `attempts` (the claim token) and pushes `next_attempt_at` to the end of the lease.
pub fn claim_due(conn: &mut DbConn, limit: i64, lease: Duration) -> Result<Vec<Claim>, ApiError> {
    let lease = chrono::Duration::from_std(lease).map_err(ApiError::internal)?;
    write_transaction(conn, |tx| {
        commit_lazily(tx)?;
        let at = now();
        let ids = due_ids(tx, at, limit)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        diesel::update(webhook_deliveries::table.filter(webhook_deliveries::id.eq_any(&ids)))
            .set((
                webhook_deliveries::attempts.eq(webhook_deliveries::attempts + 1),
                webhook_deliveries::next_attempt_at
                    .eq(at.checked_add_signed(lease).unwrap_or(NaiveDateTime::MAX)),
            ))
            .execute(tx.conn())?;
        type Row = (
            i64,
            i32,
            i64,
            String,
            String,
            String,
            String,
            NaiveDateTime,
            String,
        );
        let rows: Vec<Row> = webhook_deliveries::table
            .inner_join(webhook_events::table)
            .inner_join(webhook_endpoints::table)
            .filter(webhook_deliveries::id.eq_any(&ids))
            .order((webhook_deliveries::next_attempt_at, webhook_deliveries::id))
            .select((
                webhook_deliveries::id,
                webhook_deliveries::attempts,
                webhook_endpoints::id,
                webhook_endpoints::url,
                webhook_endpoints::secret,
                webhook_events::id,
                webhook_events::event_type,
                webhook_events::created_at,
                webhook_events::payload,
            ))
            .load(tx.conn())?;
        Ok(rows
            .into_iter()
            .map(
                |(
                    delivery_id,
                    attempt,
                    endpoint_id,
                    url,
                    secret,
                    event_id,
                    event_type,
                    created,
                    payload,
                )| {
                    Claim {
                        delivery_id,
                        attempt,
                        endpoint_id,
                        url,
                        secret,
                        event_id,
                        event_type,
                        event_created_at: created,
                        payload,
                    }
                },
            )
            .collect())
    })
}

/// Whether the delivery still exists, locking its row for the rest of the transaction.
///
/// Its endpoint may be deleted while the request is in flight (the delete cascades to the
/// delivery and its attempts). On PostgreSQL the row lock orders the two transactions: a delete
/// that got there first makes this wait and then find nothing (the outcome is dropped), and one
/// that comes after waits for the attempt to be recorded and then removes it with the rest. A
/// plain read would let the delete commit between the check and the attempt's insert, which then
/// fails on its foreign key. SQLite's `BEGIN IMMEDIATE` already serializes the two.
fn lock_delivery(conn: &mut DbConn, delivery_id: i64) -> Result<bool, ApiError> {
    let query = webhook_deliveries::table
        .find(delivery_id)
        .select(webhook_deliveries::id);
    let found = match conn {
        DbConn::Pg(c) => query.for_update().first::<i64>(c).optional()?,
        DbConn::Sqlite(c) => query.first::<i64>(c).optional()?,
    };
    Ok(found.is_some())
}

/// Records one attempt of `claim`, and, if the claim is still ours, the delivery's new state.
/// `jitter` scales the retry delay (see [`retry_delay`]).
pub fn record(
    conn: &mut DbConn,
    claim: &Claim,
    outcome: &Outcome,
    policy: RetryPolicy,
    jitter: f64,
) -> Result<Recorded, ApiError> {
    write_transaction(conn, |tx| {
        commit_lazily(tx)?;
        if !lock_delivery(tx, claim.delivery_id)? {
            return Ok(Recorded::Gone);
        }
        let code = outcome.status_code.map(i32::from);
        diesel::insert_into(webhook_attempts::table)
            .values((
                webhook_attempts::delivery_id.eq(claim.delivery_id),
                webhook_attempts::attempted_at.eq(outcome.attempted_at),
                webhook_attempts::status_code.eq(code),
                webhook_attempts::latency_ms.eq(outcome.latency_ms),
                webhook_attempts::error.eq(&outcome.error),
            ))
            .execute(tx.conn())?;
        let at = now();
        let ours = || {
            webhook_deliveries::table
                .filter(webhook_deliveries::id.eq(claim.delivery_id))
                .filter(webhook_deliveries::attempts.eq(claim.attempt))
                .filter(webhook_deliveries::status.eq(DeliveryStatus::Pending.as_str()))
        };
        let (recorded, updated) = if outcome.succeeded() {
            let n = diesel::update(ours())
                .set((
                    webhook_deliveries::status.eq(DeliveryStatus::Succeeded.as_str()),
                    webhook_deliveries::completed_at.eq(Some(at)),
                    webhook_deliveries::last_status_code.eq(code),
                    webhook_deliveries::last_error.eq(None::<String>),
                ))
                .execute(tx.conn())?;
            (Recorded::Succeeded, n)
        } else {
            let delay = chrono::Duration::from_std(retry_delay(policy.base, claim.attempt, jitter))
                .unwrap_or(chrono::Duration::MAX);
            let next = at.checked_add_signed(delay).unwrap_or(NaiveDateTime::MAX);
            let deadline = chrono::Duration::from_std(policy.max_age)
                .ok()
                .and_then(|age| claim.event_created_at.checked_add_signed(age))
                .unwrap_or(NaiveDateTime::MAX);
            if next > deadline {
                let n = diesel::update(ours())
                    .set((
                        webhook_deliveries::status.eq(DeliveryStatus::Failed.as_str()),
                        webhook_deliveries::completed_at.eq(Some(at)),
                        webhook_deliveries::last_status_code.eq(code),
                        webhook_deliveries::last_error.eq(&outcome.error),
                    ))
                    .execute(tx.conn())?;
                (Recorded::Failed, n)
            } else {
                let n = diesel::update(ours())
                    .set((
                        webhook_deliveries::next_attempt_at.eq(next),
                        webhook_deliveries::last_status_code.eq(code),
                        webhook_deliveries::last_error.eq(&outcome.error),
                    ))
                    .execute(tx.conn())?;
                (Recorded::Retrying(next), n)
            }
        };
        Ok(if updated == 1 {
            recorded
        } else {
            Recorded::Superseded
        })
    })
}

/// At most `max` characters of `text`.
fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// A network error's kind and causes, without the URL (which may carry credentials).
fn describe(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else if err.is_redirect() {
        "redirect refused"
    } else if err.is_body() || err.is_decode() {
        "failed while reading the answer"
    } else {
        "request failed"
    };
    let mut text = kind.to_owned();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Reads (up to [`MAX_ANSWER_BYTES`] of) an answer's body, returning its start as text.
async fn answer_start(response: &mut reqwest::Response) -> String {
    let mut kept = Vec::new();
    let mut read = 0;
    while read < MAX_ANSWER_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                read += chunk.len();
                let room = (MAX_ERROR_CHARS * 4).saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            _ => break,
        }
    }
    String::from_utf8_lossy(&kept).trim().to_owned()
}

/// Makes one attempt of `claim`: a signed `POST` of its payload, unless its address is not one a
/// webhook may reach (see [`super::egress`]): then the attempt fails without a request.
pub async fn send(client: &WebhookClient, claim: &Claim) -> Outcome {
    let attempted_at = now();
    if let Err(refused) = egress::check_literal(&claim.url, client.allow_private) {
        return Outcome {
            attempted_at,
            status_code: None,
            latency_ms: 0,
            error: Some(refused),
        };
    }
    let timestamp = chrono::Utc::now().timestamp();
    let started = Instant::now();
    let elapsed_ms = || i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let signature = match signature::sign(&claim.secret, timestamp, claim.payload.as_bytes()) {
        Ok(signature) => signature,
        Err(e) => {
            return Outcome {
                attempted_at,
                status_code: None,
                latency_ms: 0,
                error: Some(format!("cannot sign the request: {e}")),
            }
        }
    };
    let sent = client
        .http
        .post(&claim.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(signature::EVENT_ID_HEADER, &claim.event_id)
        .header(signature::EVENT_TYPE_HEADER, &claim.event_type)
        .header(signature::TIMESTAMP_HEADER, timestamp.to_string())
        .header(signature::SIGNATURE_HEADER, signature)
        .body(claim.payload.clone())
        .send()
        .await;
    match sent {
        Ok(mut response) => {
            let latency_ms = elapsed_ms();
            let status = response.status();
            let body = answer_start(&mut response).await;
            let error = (!status.is_success()).then(|| {
                let text = if body.is_empty() {
                    format!("HTTP {status}")
                } else {
                    format!("HTTP {}: {body}", status.as_u16())
                };
                truncate(&text, MAX_ERROR_CHARS)
            });
            Outcome {
                attempted_at,
                status_code: Some(status.as_u16()),
                latency_ms,
                error,
            }
        }
        Err(e) => Outcome {
            attempted_at,
            status_code: e.status().map(|s| s.as_u16()),
            latency_ms: elapsed_ms(),
            error: Some(truncate(&describe(&e), MAX_ERROR_CHARS)),
        },
    }
}

/// Sends one claimed delivery and records the result (retrying the recording a few times: if it
/// cannot be recorded, the lease runs out and the delivery is sent again).
async fn deliver(state: web::Data<AppState>, claim: Claim) {
    let outcome = send(&state.webhook_client, &claim).await;
    if let Some(error) = &outcome.error {
        log::warn!(
            "webhook delivery {} (event {} {}) to endpoint {} failed on attempt {}: {error}",
            claim.delivery_id,
            claim.event_type,
            claim.event_id,
            claim.endpoint_id,
            claim.attempt
        );
    }
    let policy = RetryPolicy::of(&state.settings);
    for round in 1..=3u32 {
        let jitter = rand::rng().random_range(0.8..1.2);
        let (c, o) = (claim.clone(), outcome.clone());
        let done = db::run(&state.pool, move |conn| {
            record(conn, &c, &o, policy, jitter)
        })
        .await;
        match done {
            Ok(Recorded::Failed) => log::warn!(
                "webhook delivery {} (event {} {}) to endpoint {} failed for good after {} \
                 attempts: its retry window is over",
                claim.delivery_id,
                claim.event_type,
                claim.event_id,
                claim.endpoint_id,
                claim.attempt
            ),
            Ok(Recorded::Gone) => log::debug!(
                "webhook delivery {} to endpoint {}: the endpoint was deleted while attempt {} \
                 was in flight; its outcome is dropped",
                claim.delivery_id,
                claim.endpoint_id,
                claim.attempt
            ),
            Ok(Recorded::Superseded) => log::info!(
                "webhook delivery {}: attempt {} recorded, but the delivery was claimed again \
                 or replayed meanwhile",
                claim.delivery_id,
                claim.attempt
            ),
            Ok(_) => {}
            Err(e) if round < 3 => {
                log::warn!(
                    "cannot record webhook delivery {} (try {round}): {e}",
                    claim.delivery_id
                );
                tokio::time::sleep(Duration::from_millis(200 * u64::from(round))).await;
                continue;
            }
            Err(e) => log::warn!(
                "cannot record webhook delivery {}: {e}; it will be sent again when its lease \
                 runs out",
                claim.delivery_id
            ),
        }
        break;
    }
}

/// Starts the worker on the current actix runtime (a zero poll interval disables it). It runs for
/// as long as the runtime does; stopping the server drops it, and the leases of the attempts it
/// had in flight run out, so another worker sends them again.
pub fn spawn(state: web::Data<AppState>) {
    if state.settings.webhook_poll_interval.is_zero() {
        return;
    }
    actix_web::rt::spawn(run(state));
}

/// The worker loop: claim what is due (as many as there are free slots), send, and look again
/// as soon as half the slots are free while claims come back full; otherwise wait for a slot to
/// free up, a committed event ([`WAKE`]) or the poll interval.
async fn run(state: web::Data<AppState>) {
    let poll = state.settings.webhook_poll_interval;
    let lease = state.settings.webhook_timeout + LEASE_MARGIN;
    let mut in_flight = FuturesUnordered::new();
    loop {
        let free = CONCURRENCY - in_flight.len();
        let mut more_due = false;
        let mut pause = poll;
        if free > 0 {
            let limit = free as i64;
            match db::run(&state.pool, move |conn| claim_due(conn, limit, lease)).await {
                Ok(claims) => {
                    more_due = claims.len() == free;
                    for claim in claims {
                        in_flight.push(deliver(state.clone(), claim));
                    }
                }
                Err(e) => {
                    log::warn!("webhook worker cannot claim deliveries: {e}");
                    pause = poll.max(ERROR_PAUSE);
                }
            }
        }
        if (more_due || free == 0) && !in_flight.is_empty() {
            // Slots are the limit: claim again once half of them are free, so that a backlog
            // drains in claims of several deliveries rather than one claim per delivery.
            while in_flight.len() > CONCURRENCY / 2 {
                in_flight.next().await;
            }
            continue;
        }
        tokio::select! {
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
            () = WAKE.notified() => {}
            () = tokio::time::sleep(pause) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_an_hour() {
        let base = Duration::from_secs(30);
        assert_eq!(retry_delay(base, 1, 1.0), Duration::from_secs(30));
        assert_eq!(retry_delay(base, 2, 1.0), Duration::from_secs(60));
        assert_eq!(retry_delay(base, 5, 1.0), Duration::from_secs(480));
        assert_eq!(retry_delay(base, 8, 1.0), MAX_RETRY_DELAY);
        assert_eq!(retry_delay(base, i32::MAX, 1.0), MAX_RETRY_DELAY);
        assert_eq!(retry_delay(base, 0, 1.0), base);
        assert_eq!(retry_delay(base, 2, 0.8), Duration::from_secs(48));
        assert_eq!(retry_delay(base, 2, 1.2), Duration::from_secs(72));
    }

    #[test]
    fn a_day_of_retries_is_a_few_dozen_attempts() {
        // With the default 30 s base, attempts until 24 h have passed.
        let mut elapsed = Duration::ZERO;
        let mut attempt = 1;
        while elapsed < Duration::from_secs(86_400) {
            elapsed += retry_delay(Duration::from_secs(30), attempt, 1.0);
            attempt += 1;
        }
        assert!((25..35).contains(&attempt), "{attempt}");
    }

    #[test]
    fn errors_are_truncated_on_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("hi", 5), "hi");
    }
}
