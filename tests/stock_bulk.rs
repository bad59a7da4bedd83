//! `stock::apply_movements`, the bulk path of stocktake completion and purchase-order receipts,
//! against the one-at-a-time `stock::apply_movement` it stands in for: for any starting stock and
//! any set of movements, on either backend, both give the same levels, average costs, ledger rows,
//! alerts, events and refusals. (The HTTP flows that use it are tested in `stocktakes.rs` and
//! `purchasing.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

mod catalog_support;

mod orders_support;
use orders_support::*;

use bookstore::db::schema::{
    stock_alerts, stock_levels, stock_movements, webhook_deliveries, webhook_endpoints,
    webhook_events,
};
use bookstore::db::{write_transaction, DbConn};
use bookstore::error::ApiError;
use bookstore::inventory::model::{MovementKind, MovementRow, StockLevelRow};
use bookstore::inventory::stock::{self, Movement};
use diesel::prelude::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;
use std::cell::{Cell, RefCell};

/// The most books one case moves.
const MAX_BOOKS: usize = 12;

/// A book's stock before the case, and the movement the case applies to it.
#[derive(Debug, Clone)]
struct Line {
    on_hand: i64,
    reserved: i64,
    avg_unit_cost_cents: Option<i64>,
    reorder_point: i64,
    kind: MovementKind,
    quantity: i64,
    unit_cost_cents: Option<i64>,
}

/// Mostly movements that fit (so that most cases commit and reach the alerts), one in twelve a
/// removal of one more than is available (so that some cases are refused).
fn line() -> impl Strategy<Value = Line> {
    (
        0_i64..40,
        0_i64..=100,
        proptest::option::of(1_i64..5_000),
        0_i64..8,
        (0_u8..3, 1_i64..60, 0_u8..12, 1_i64..5_000),
    )
        .prop_map(
            |(on_hand, share, avg, reorder_point, (kind, magnitude, pick, cost))| {
                let reserved = on_hand * share / 100;
                let available = on_hand - reserved;
                let (kind, quantity, unit_cost_cents) = match kind {
                    0 => (MovementKind::Receipt, magnitude, Some(cost)),
                    1 => (MovementKind::Adjustment, 0, None),
                    _ => (MovementKind::Stocktake, 0, None),
                };
                let quantity = match (quantity, pick) {
                    (0, 0) => -(available + 1),
                    (0, p) if p % 2 == 0 && available > 0 => -magnitude.min(available),
                    (0, _) => magnitude,
                    (q, _) => q,
                };
                Line {
                    on_hand,
                    reserved,
                    avg_unit_cost_cents: avg,
                    reorder_point,
                    kind,
                    quantity,
                    unit_cost_cents,
                }
            },
        )
}

/// Gives each book its starting stock, with no alert, and empties the outbox.
fn reset(conn: &mut DbConn, books: &[i64], lines: &[Line]) {
    diesel::delete(webhook_deliveries::table)
        .execute(conn)
        .unwrap();
    diesel::delete(webhook_events::table).execute(conn).unwrap();
    for (book, line) in books.iter().zip(lines) {
        diesel::update(stock_levels::table.find(book))
            .set((
                stock_levels::on_hand.eq(line.on_hand),
                stock_levels::reserved.eq(line.reserved),
                stock_levels::avg_unit_cost_cents.eq(line.avg_unit_cost_cents),
                stock_levels::reorder_point.eq(line.reorder_point),
                stock_levels::alert_id.eq(None::<i64>),
            ))
            .execute(conn)
            .unwrap();
        diesel::delete(stock_alerts::table.filter(stock_alerts::book_id.eq(book)))
            .execute(conn)
            .unwrap();
    }
}

fn movements<'a>(books: &[i64], lines: &[Line], reference: &'a str) -> Vec<Movement<'a>> {
    let at = chrono::DateTime::from_timestamp(1_790_000_000, 0)
        .unwrap()
        .naive_utc();
    books
        .iter()
        .zip(lines)
        .map(|(&book_id, line)| Movement {
            book_id,
            quantity: line.quantity,
            kind: line.kind,
            reference: Some(reference),
            reason: Some("counted"),
            note: None,
            unit_cost_cents: line.unit_cost_cents,
            user_id: None,
            at,
        })
        .collect()
}

/// What a case left behind, with book ids replaced by their position so that the two sets of
/// books compare: the answer (levels and movements, or the refusal), the levels in the database
/// afterwards, open alerts, and the outbox's events.
#[derive(Debug, PartialEq)]
struct Outcome {
    answer: Result<Vec<(Level, Written)>, String>,
    stored: Vec<Level>,
    alerts: Vec<(usize, i64)>,
    events: Vec<(String, String)>,
    deliveries: i64,
}

/// A level without its book id and time.
#[derive(Debug, PartialEq)]
struct Level {
    on_hand: i64,
    reserved: i64,
    version: i32,
    avg_unit_cost_cents: Option<i64>,
    has_alert: bool,
}

impl From<&StockLevelRow> for Level {
    fn from(l: &StockLevelRow) -> Self {
        Level {
            on_hand: l.on_hand,
            reserved: l.reserved,
            version: l.version,
            avg_unit_cost_cents: l.avg_unit_cost_cents,
            has_alert: l.alert_id.is_some(),
        }
    }
}

/// A movement without its id and book id.
#[derive(Debug, PartialEq)]
struct Written {
    quantity: i64,
    kind: String,
    reference: Option<String>,
    reason: Option<String>,
    unit_cost_cents: Option<i64>,
    created_at: chrono::NaiveDateTime,
}

impl From<&MovementRow> for Written {
    fn from(m: &MovementRow) -> Self {
        Written {
            quantity: m.quantity,
            kind: m.kind.clone(),
            reference: m.reference.clone(),
            reason: m.reason.clone(),
            unit_cost_cents: m.unit_cost_cents,
            created_at: m.created_at,
        }
    }
}

/// Replaces each book id in `text` by its position.
fn positional(text: &str, books: &[i64]) -> String {
    let mut text = text.to_owned();
    for (i, id) in books.iter().enumerate() {
        text = text
            .replace(&format!("book {id} "), &format!("book #{i} "))
            .replace(
                &format!("\"book_id\":{id},"),
                &format!("\"book_id\":\"#{i}\","),
            );
    }
    text
}

fn outcome(
    conn: &mut DbConn,
    books: &[i64],
    answer: Result<Vec<(StockLevelRow, MovementRow)>, ApiError>,
) -> Outcome {
    let answer = answer
        .map(|rows| {
            rows.iter()
                .map(|(level, movement)| (Level::from(level), Written::from(movement)))
                .collect()
        })
        .map_err(|e| positional(&format!("{e:?}"), books));
    let stored = books
        .iter()
        .map(|id| {
            let level: StockLevelRow = stock_levels::table
                .find(id)
                .select(StockLevelRow::as_select())
                .first(conn)
                .unwrap();
            Level::from(&level)
        })
        .collect();
    let alerts = books
        .iter()
        .enumerate()
        .filter_map(|(i, id)| {
            stock_alerts::table
                .filter(stock_alerts::book_id.eq(id))
                .select(stock_alerts::available)
                .first::<i64>(conn)
                .optional()
                .unwrap()
                .map(|available| (i, available))
        })
        .collect();
    let mut events: Vec<(String, String)> = webhook_events::table
        .select((webhook_events::event_type, webhook_events::payload))
        .load::<(String, String)>(conn)
        .unwrap()
        .into_iter()
        .map(|(kind, payload)| {
            let mut data: Value = serde_json::from_str::<Value>(&payload).unwrap()["data"].clone();
            if let Some(data) = data.as_object_mut() {
                data.remove("alert_id");
            }
            (kind, positional(&data.to_string(), books))
        })
        .collect();
    events.sort();
    let deliveries = webhook_deliveries::table.count().get_result(conn).unwrap();
    Outcome {
        answer,
        stored,
        alerts,
        events,
        deliveries,
    }
}

/// The levels' `version` counts changes; give both sets the same starting version.
fn versions_of(conn: &mut DbConn, books: &[i64]) -> Vec<i32> {
    books
        .iter()
        .map(|id| {
            stock_levels::table
                .find(id)
                .select(stock_levels::version)
                .first(conn)
                .unwrap()
        })
        .collect()
}

fn set_versions(conn: &mut DbConn, books: &[i64], versions: &[i32]) {
    for (id, v) in books.iter().zip(versions) {
        diesel::update(stock_levels::table.find(id))
            .set(stock_levels::version.eq(v))
            .execute(conn)
            .unwrap();
    }
}

#[tokio::test]
async fn bulk_movements_do_exactly_what_one_at_a_time_does() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let mut one_by_one = Vec::new();
    let mut bulk = Vec::new();
    for i in 0..MAX_BOOKS as u64 {
        one_by_one.push(book(&app, &staff, 100 + i, &format!("Book {i}"), 1000).await);
    }
    for i in 0..MAX_BOOKS as u64 {
        bulk.push(book(&app, &staff, 200 + i, &format!("Book {i}"), 1000).await);
    }
    let mut pooled = app.conn();
    let conn: &mut DbConn = &mut pooled;
    let at = bookstore::db::now();
    diesel::insert_into(webhook_endpoints::table)
        .values((
            webhook_endpoints::url.eq("http://127.0.0.1:9/hook"),
            webhook_endpoints::event_types.eq("*"),
            webhook_endpoints::secret.eq("whsec_test"),
            webhook_endpoints::active.eq(true),
            webhook_endpoints::version.eq(1),
            webhook_endpoints::created_at.eq(at),
            webhook_endpoints::updated_at.eq(at),
        ))
        .execute(conn)
        .unwrap();

    // The runner takes a `Fn`: the connection and the tallies live in cells.
    let conn = RefCell::new(conn);
    let (refused, alerted) = (Cell::new(0), Cell::new(0));
    let mut runner = TestRunner::new(Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&proptest::collection::vec(line(), 1..=MAX_BOOKS), |lines| {
            let mut conn = conn.borrow_mut();
            let conn: &mut DbConn = &mut conn;
            let n = lines.len();
            let (a, b) = (&one_by_one[..n], &bulk[..n]);

            reset(conn, a, &lines);
            let versions = versions_of(conn, a);
            let moves = movements(a, &lines, "case");
            let answer = write_transaction(conn, |conn| {
                moves
                    .iter()
                    .map(|m| stock::apply_movement(conn, m))
                    .collect::<Result<Vec<_>, ApiError>>()
            });
            let expected = outcome(conn, a, answer);

            reset(conn, b, &lines);
            set_versions(conn, b, &versions);
            let moves = movements(b, &lines, "case");
            let answer = write_transaction(conn, |conn| stock::apply_movements(conn, &moves));
            let actual = outcome(conn, b, answer);

            refused.set(refused.get() + usize::from(expected.answer.is_err()));
            alerted.set(alerted.get() + usize::from(!expected.alerts.is_empty()));
            prop_assert_eq!(actual, expected);
            Ok(())
        })
        .unwrap();
    let (refused, alerted) = (refused.get(), alerted.get());
    // The generator reaches both refusals and alerts, so both paths were compared.
    assert!(
        refused > 0 && alerted > 0,
        "refused {refused}, alerted {alerted}"
    );
}

#[tokio::test]
async fn bulk_movements_in_any_order_are_returned_in_the_order_given() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let a = book(&app, &staff, 1, "Alpha", 1000).await;
    let b = book(&app, &staff, 2, "Beta", 1000).await;
    let c = book(&app, &staff, 3, "Gamma", 1000).await;
    receive(&app, &staff, &[(a, 5), (b, 5), (c, 5)]).await;
    let mut conn = app.conn();
    let at = bookstore::db::now();
    let movement = |book_id, quantity| Movement {
        book_id,
        quantity,
        kind: MovementKind::Adjustment,
        reference: None,
        reason: Some("damaged"),
        note: None,
        unit_cost_cents: None,
        user_id: None,
        at,
    };
    let given = [movement(c, -1), movement(a, -2), movement(b, 3)];
    let rows = write_transaction(&mut conn, |conn| stock::apply_movements(conn, &given)).unwrap();
    let seen: Vec<(i64, i64, i64)> = rows
        .iter()
        .map(|(level, m)| (level.book_id, m.book_id, level.on_hand))
        .collect();
    assert_eq!(seen, vec![(c, c, 4), (a, a, 3), (b, b, 8)]);
    for (book, sum) in [(a, 3), (b, 8), (c, 4)] {
        assert_eq!(ledger_sum(&app, book), sum);
    }

    // A book given twice is the caller's bug, refused before anything is written.
    let twice = [movement(a, 1), movement(a, 1)];
    let err = write_transaction(&mut conn, |conn| stock::apply_movements(conn, &twice));
    assert!(matches!(err, Err(ApiError::Internal(_))), "{err:?}");
    // (Outside a write transaction, `apply_movements` does not compile: it takes a `WriteTx`.)
    let count: i64 = stock_movements::table
        .filter(stock_movements::book_id.eq(a))
        .count()
        .get_result(&mut *conn)
        .unwrap();
    assert_eq!((level(&app, a), count), ((3, 0), 2));
}
