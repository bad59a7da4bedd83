//! Stocktakes over HTTP: opening over a scope (all, a category with its sub-categories, a list
//! of books), one open stocktake per book, counts in batches, the variance report while sales and
//! receipts continue, completion (exactly once, all or nothing, never below reserved stock),
//! cancellation, validation and access. Every test runs on either backend.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

mod catalog_support;
use catalog_support::*;

mod orders_support;
use orders_support::{card, customer, fulfilled_order, level, place};

use bookstore::db::schema::{stock_levels, stock_movements, stocktake_lines, webhook_endpoints};
use bookstore::db::DbConn;
use diesel::prelude::*;
use reqwest::Method;
use serde_json::Value;

const BASE: &str = "/api/v1/inventory/stocktakes";

fn path(id: i64, rest: &str) -> String {
    format!("{BASE}/{id}{rest}")
}

/// Creates a book (in `categories`); returns its id.
async fn book_in(app: &TestApp, token: &str, n: u64, title: &str, categories: &[i64]) -> i64 {
    create_book_id(
        app,
        token,
        with(
            &book_body(&isbn13(n), title),
            json!({ "category_ids": categories }),
        ),
    )
    .await
}

async fn book(app: &TestApp, token: &str, n: u64, title: &str) -> i64 {
    book_in(app, token, n, title, &[]).await
}

/// Receives `lines` of (book, quantity, unit cost).
async fn receive(app: &TestApp, token: &str, lines: &[(i64, i64, i64)]) {
    let lines: Vec<Value> = lines
        .iter()
        .map(|(b, q, c)| json!({"book_id": b, "quantity": q, "unit_cost_cents": c}))
        .collect();
    app.post(
        "/api/v1/inventory/receipts",
        Some(token),
        json!({ "lines": lines }),
    )
    .await
    .expect(201);
}

async fn adjust(app: &TestApp, token: &str, book_id: i64, quantity: i64, reason: &str) {
    app.post(
        "/api/v1/inventory/adjustments",
        Some(token),
        json!({"book_id": book_id, "quantity": quantity, "reason": reason}),
    )
    .await
    .expect(201);
}

async fn open(app: &TestApp, token: &str, body: Value) -> Res {
    app.post(BASE, Some(token), body).await
}

/// Opens a stocktake of `books`; returns its id.
async fn open_books(app: &TestApp, token: &str, books: &[i64]) -> i64 {
    let res = open(app, token, json!({"scope": "books", "book_ids": books})).await;
    res.expect(201);
    res.body["id"].as_i64().unwrap()
}

async fn count(app: &TestApp, token: &str, id: i64, counts: &[(i64, i64)]) -> Res {
    let counts: Vec<Value> = counts
        .iter()
        .map(|(b, c)| json!({"book_id": b, "counted": c}))
        .collect();
    app.send(
        Method::PUT,
        &path(id, "/counts"),
        Some(token),
        Some(json!({ "counts": counts })),
    )
    .await
}

async fn complete(app: &TestApp, token: &str, id: i64, zero_uncounted: bool) -> Res {
    app.post(
        &path(id, "/complete"),
        Some(token),
        json!({ "zero_uncounted": zero_uncounted }),
    )
    .await
}

async fn cancel(app: &TestApp, token: &str, id: i64) -> Res {
    app.post(&path(id, "/cancel"), Some(token), json!({})).await
}

/// All the lines of a stocktake (up to 100), filtered.
async fn lines(app: &TestApp, token: &str, id: i64, filter: &str) -> Vec<Value> {
    let res = app
        .get(
            &path(id, &format!("/lines?filter={filter}&per_page=100")),
            Some(token),
        )
        .await;
    res.expect(200);
    res.body["items"].as_array().unwrap().clone()
}

fn line_books(lines: &[Value]) -> Vec<i64> {
    lines
        .iter()
        .map(|l| l["book_id"].as_i64().unwrap())
        .collect()
}

fn on_hand(app: &TestApp, book_id: i64) -> i64 {
    level(app, book_id).0
}

/// (book, quantity, reference) of every `stocktake` movement, by id.
fn stocktake_movements(app: &TestApp) -> Vec<(i64, i64, Option<String>)> {
    let mut conn = app.conn();
    stock_movements::table
        .filter(stock_movements::kind.eq("stocktake"))
        .order(stock_movements::id)
        .select((
            stock_movements::book_id,
            stock_movements::quantity,
            stock_movements::reference,
        ))
        .load(&mut *conn)
        .expect("movements")
}

/// Asserts core invariants 1 and 2 for every book: `on_hand` equals the ledger's sum and is
/// never below `reserved`.
#[track_caller]
fn assert_ledger_matches(app: &TestApp) {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        book_id: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        on_hand: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        reserved: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        ledger: i64,
    }
    let mut conn = app.conn();
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT s.book_id AS book_id, s.on_hand AS on_hand, s.reserved AS reserved, \
         CAST(COALESCE((SELECT SUM(m.quantity) FROM stock_movements m \
         WHERE m.book_id = s.book_id), 0) AS BIGINT) AS ledger FROM stock_levels s",
    )
    .load(&mut *conn as &mut DbConn)
    .expect("levels");
    for r in rows {
        assert_eq!(r.on_hand, r.ledger, "ledger of book {}", r.book_id);
        assert!(
            r.on_hand >= r.reserved && r.reserved >= 0,
            "book {}",
            r.book_id
        );
    }
}

/// Whether each of the stocktake's lines still holds its book.
fn open_flags(app: &TestApp, id: i64) -> Vec<bool> {
    let mut conn = app.conn();
    stocktake_lines::table
        .filter(stocktake_lines::stocktake_id.eq(id))
        .order(stocktake_lines::book_id)
        .select(stocktake_lines::is_open)
        .load(&mut *conn)
        .expect("lines")
}

#[tokio::test]
async fn a_stocktake_covers_all_books_a_category_tree_or_a_list() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let fiction = create_category(&app, &staff, "fiction", None).await;
    let fantasy = create_category(&app, &staff, "fantasy", Some(fiction)).await;
    let epic = create_category(&app, &staff, "epic", Some(fantasy)).await;
    let history = create_category(&app, &staff, "history", None).await;

    let novel = book_in(&app, &staff, 1, "Novel", &[fiction]).await;
    let dragons = book_in(&app, &staff, 2, "Dragons", &[fantasy]).await;
    let saga = book_in(&app, &staff, 3, "Saga", &[epic, history]).await;
    let rome = book_in(&app, &staff, 4, "Rome", &[history]).await;
    let loose = book(&app, &staff, 5, "Uncategorised").await;
    // Archived without stock: left out of `all` and `category`.
    let gone = book_in(&app, &staff, 6, "Gone", &[fiction]).await;
    // Archived with copies still on the shelf: counted.
    let remainder = book_in(&app, &staff, 7, "Remainder", &[fantasy]).await;
    receive(
        &app,
        &staff,
        &[
            (novel, 10, 400),
            (dragons, 4, 300),
            (rome, 2, 900),
            (gone, 2, 100),
            (remainder, 3, 100),
        ],
    )
    .await;
    adjust(&app, &staff, gone, -2, "lost").await;
    for archived in [gone, remainder] {
        let res = app
            .delete(&format!("/api/v1/books/{archived}"), Some(&staff))
            .await;
        res.expect(200);
        assert_eq!(res.body["status"], "archived");
    }

    // A category with its sub-categories, at any depth.
    let res = open(
        &app,
        &staff,
        json!({"scope": "category", "category_id": fiction, "note": "  Fiction floor  "}),
    )
    .await;
    res.expect(201);
    let id = res.body["id"].as_i64().unwrap();
    assert_eq!(res.header("location"), Some(path(id, "").as_str()));
    assert_eq!(
        without_times(&res.body),
        json!({
            "id": id, "status": "open", "scope": "category", "category_id": fiction,
            "note": "Fiction floor", "zero_uncounted": null, "currency": "USD",
            "progress": {"lines": 4, "counted": 0, "uncounted": 4},
            "totals": {"variance_units": 0, "variance_value_cents": 0, "lines_with_variance": 0,
                       "lines_without_cost": 0, "posted": null},
            "version": 1, "created_by": res.body["created_by"], "completed_by": null,
            "completed_at": null, "cancelled_at": null,
        })
    );
    assert!(res.body["created_by"].is_i64());
    let all = lines(&app, &staff, id, "all").await;
    assert_eq!(line_books(&all), vec![novel, dragons, saga, remainder]);
    assert_eq!(
        all[0],
        json!({
            "book_id": novel, "title": "Novel", "isbn": isbn13(1),
            "snapshot_on_hand": 10, "movements_since_snapshot": 0, "expected": 10,
            "counted": null, "variance": null, "unit_cost_cents": 400,
            "variance_value_cents": null, "posted_quantity": null,
            "counted_at": null, "counted_by": null,
        })
    );
    assert_eq!(all[3]["snapshot_on_hand"], 3);
    assert_eq!(all[2]["snapshot_on_hand"], 0);
    // The same through GET.
    let got = app.get(&path(id, ""), Some(&staff)).await;
    got.expect(200);
    assert_eq!(got.body, res.body);
    cancel(&app, &staff, id).await.expect(200);

    // Every book, but not an archived one without stock.
    let res = open(&app, &staff, json!({"scope": "all"})).await;
    res.expect(201);
    let id = res.body["id"].as_i64().unwrap();
    assert_eq!(res.body["scope"], "all");
    assert_eq!(res.body["category_id"], Value::Null);
    assert_eq!(
        line_books(&lines(&app, &staff, id, "all").await),
        vec![novel, dragons, saga, rome, loose, remainder]
    );
    cancel(&app, &staff, id).await.expect(200);

    // A list: exactly the books named, archived or not.
    let id = open_books(&app, &staff, &[gone, rome]).await;
    assert_eq!(
        line_books(&lines(&app, &staff, id, "all").await),
        vec![rome, gone]
    );

    // Listed newest first, filtered by status.
    let res = app.get(&format!("{BASE}?per_page=2"), Some(&staff)).await;
    res.expect(200);
    assert_eq!(res.body["total"], 3);
    assert_eq!(ids(&res.body), vec![id, id - 1]);
    let res = app.get(&format!("{BASE}?status=open"), Some(&staff)).await;
    res.expect(200);
    assert_eq!(ids(&res.body), vec![id]);
    assert_eq!(res.body["items"][0]["progress"]["lines"], 2);
    let res = app
        .get(
            &format!("{BASE}?status=cancelled&page=2&per_page=1"),
            Some(&staff),
        )
        .await;
    res.expect(200);
    assert_eq!(res.body["total"], 2);
    assert_eq!(ids(&res.body), vec![id - 2]);
}

#[tokio::test]
async fn one_open_stocktake_per_book_until_it_completes_or_is_cancelled() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let a = book(&app, &staff, 1, "A").await;
    let b = book(&app, &staff, 2, "B").await;
    let c = book(&app, &staff, 3, "C").await;
    receive(&app, &staff, &[(a, 1, 100), (b, 1, 100), (c, 1, 100)]).await;

    let first = open_books(&app, &staff, &[a, b]).await;
    let res = open(&app, &staff, json!({"scope": "books", "book_ids": [c, b]})).await;
    let problem = res.problem(409);
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("book {b} (stocktake {first})")),
        "{detail}"
    );
    assert!(!detail.contains(&format!("book {c} ")), "{detail}");
    open(&app, &staff, json!({"scope": "all"}))
        .await
        .problem(409);
    assert_eq!(app.count("stocktakes"), 1);
    assert_eq!(app.count("stocktake_lines"), 2);

    // Cancelling releases the books.
    cancel(&app, &staff, first).await.expect(200);
    assert_eq!(open_flags(&app, first), vec![false, false]);
    let second = open_books(&app, &staff, &[c, b]).await;
    open_books(&app, &staff, &[a]).await;
    open(&app, &staff, json!({"scope": "books", "book_ids": [b]}))
        .await
        .problem(409);

    // So does completing.
    complete(&app, &staff, second, false).await.expect(200);
    assert_eq!(open_flags(&app, second), vec![false, false]);
    let fourth = open_books(&app, &staff, &[b]).await;
    assert_eq!(open_flags(&app, fourth), vec![true]);
}

#[tokio::test]
async fn counts_arrive_in_batches_and_the_last_count_wins() {
    let app = TestApp::spawn().await;
    let (staff_id, staff) = app.user(bookstore::auth::Role::Staff);
    let a = book(&app, &staff, 1, "A").await;
    let b = book(&app, &staff, 2, "B").await;
    let c = book(&app, &staff, 3, "C").await;
    receive(&app, &staff, &[(a, 5, 100), (b, 5, 100), (c, 5, 100)]).await;
    let id = open_books(&app, &staff, &[a, b, c]).await;

    let res = count(&app, &staff, id, &[(a, 4)]).await;
    res.expect(200);
    assert_eq!(
        res.body,
        json!({"stocktake_id": id, "recorded": 1,
               "progress": {"lines": 3, "counted": 1, "uncounted": 2}})
    );
    let res = count(&app, &staff, id, &[(b, 5), (a, 7)]).await;
    res.expect(200);
    assert_eq!(
        res.body,
        json!({"stocktake_id": id, "recorded": 2,
               "progress": {"lines": 3, "counted": 2, "uncounted": 1}})
    );

    let counted = lines(&app, &staff, id, "counted").await;
    assert_eq!(line_books(&counted), vec![a, b]);
    assert_eq!(counted[0]["counted"], 7);
    assert_eq!(counted[0]["variance"], 2);
    assert_eq!(counted[0]["counted_by"], staff_id);
    assert!(counted[0]["counted_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(counted[1]["variance"], 0);
    assert_eq!(
        line_books(&lines(&app, &staff, id, "uncounted").await),
        vec![c]
    );
    assert_eq!(
        line_books(&lines(&app, &staff, id, "variance").await),
        vec![a]
    );
    let view = app.get(&path(id, ""), Some(&staff)).await;
    view.expect(200);
    assert_eq!(view.body["version"], 3);
    assert_eq!(view.body["totals"]["variance_units"], 2);
    assert_eq!(view.body["totals"]["variance_value_cents"], 200);
    // Counting writes no movement.
    assert!(stocktake_movements(&app).is_empty());
    assert_eq!(on_hand(&app, a), 5);
}

#[tokio::test]
async fn sales_and_receipts_during_the_count_give_the_right_variance() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let (_, _, shopper) = customer(&app);
    let a = book(&app, &staff, 1, "Sold during the count").await;
    let b = book(&app, &staff, 2, "Received during the count").await;
    receive(&app, &staff, &[(a, 10, 400), (b, 5, 200)]).await;
    let id = open_books(&app, &staff, &[a, b]).await;

    // While the count is open: 3 copies of A are sold (placed, paid by card, fulfilled) and 4
    // copies of B arrive.
    fulfilled_order(&app, &shopper, &staff, &[(a, 3)]).await;
    receive(&app, &staff, &[(b, 4, 200)]).await;
    assert_eq!(on_hand(&app, a), 7);
    assert_eq!(on_hand(&app, b), 9);

    // The shelves hold 6 of A (one is missing) and 9 of B (all there).
    count(&app, &staff, id, &[(a, 6), (b, 9)]).await.expect(200);
    let all = lines(&app, &staff, id, "all").await;
    assert_eq!(
        all[0],
        json!({
            "book_id": a, "title": "Sold during the count", "isbn": isbn13(1),
            "snapshot_on_hand": 10, "movements_since_snapshot": -3, "expected": 7,
            "counted": 6, "variance": -1, "unit_cost_cents": 400,
            "variance_value_cents": -400, "posted_quantity": null,
            "counted_at": all[0]["counted_at"], "counted_by": all[0]["counted_by"],
        })
    );
    assert_eq!(all[1]["snapshot_on_hand"], 5);
    assert_eq!(all[1]["movements_since_snapshot"], 4);
    assert_eq!(all[1]["expected"], 9);
    assert_eq!(all[1]["variance"], 0);

    // A sale after the count but before completion is not a variance either.
    fulfilled_order(&app, &shopper, &staff, &[(a, 1)]).await;
    let view = app.get(&path(id, ""), Some(&staff)).await;
    view.expect(200);
    assert_eq!(
        view.body["totals"],
        json!({"variance_units": -1, "variance_value_cents": -400, "lines_with_variance": 1,
               "lines_without_cost": 0, "posted": null})
    );

    let res = complete(&app, &staff, id, false).await;
    res.expect(200);
    assert_eq!(
        stocktake_movements(&app),
        vec![(a, -1, Some(format!("stocktake:{id}")))]
    );
    // 10 − 3 sold − 1 missing − 1 sold after the count.
    assert_eq!(on_hand(&app, a), 5);
    assert_eq!(on_hand(&app, b), 9);
    assert_ledger_matches(&app);
}

/// Registers a webhook endpoint for every event, so that the outbox records them.
fn subscribe_all(app: &TestApp) {
    let mut conn = app.conn();
    let at = chrono::Utc::now().naive_utc();
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
        .execute(&mut *conn)
        .expect("endpoint");
}

/// The `data` of every recorded event of `kind`.
fn events(app: &TestApp, kind: &str) -> Vec<Value> {
    use bookstore::db::schema::webhook_events;
    let mut conn = app.conn();
    let payloads: Vec<String> = webhook_events::table
        .filter(webhook_events::event_type.eq(kind))
        .select(webhook_events::payload)
        .load(&mut *conn)
        .expect("events");
    payloads
        .iter()
        .map(|p| serde_json::from_str::<Value>(p).unwrap()["data"].clone())
        .collect()
}

#[tokio::test]
async fn the_report_values_the_variance_and_completion_posts_it_exactly_once() {
    let app = TestApp::spawn().await;
    let (staff_id, staff) = app.user(bookstore::auth::Role::Staff);
    subscribe_all(&app);
    let a = book(&app, &staff, 1, "A").await;
    let b = book(&app, &staff, 2, "B").await;
    let c = book(&app, &staff, 3, "No cost").await;
    let d = book(&app, &staff, 4, "Not counted").await;
    let e = book(&app, &staff, 5, "Exact").await;
    receive(
        &app,
        &staff,
        &[(a, 10, 250), (b, 10, 1000), (d, 2, 100), (e, 1, 700)],
    )
    .await;
    // Found stock has no cost.
    adjust(&app, &staff, c, 5, "found").await;
    let id = open_books(&app, &staff, &[a, b, c, d, e]).await;
    count(&app, &staff, id, &[(a, 8), (b, 12), (c, 3), (e, 1)])
        .await
        .expect(200);

    let view = app.get(&path(id, ""), Some(&staff)).await;
    view.expect(200);
    assert_eq!(
        view.body["progress"],
        json!({"lines": 5, "counted": 4, "uncounted": 1})
    );
    assert_eq!(
        view.body["totals"],
        json!({"variance_units": -2, "variance_value_cents": -500 + 2000,
               "lines_with_variance": 3, "lines_without_cost": 1, "posted": null})
    );
    let variance = lines(&app, &staff, id, "variance").await;
    assert_eq!(line_books(&variance), vec![a, b, c]);
    assert_eq!(variance[0]["variance_value_cents"], -500);
    assert_eq!(variance[1]["variance_value_cents"], 2000);
    assert_eq!(variance[2]["unit_cost_cents"], Value::Null);
    assert_eq!(variance[2]["variance"], -2);
    assert_eq!(variance[2]["variance_value_cents"], Value::Null);
    let page = app
        .get(&path(id, "/lines?page=2&per_page=2"), Some(&staff))
        .await;
    page.expect(200);
    assert_eq!(page.body["total"], 5);
    assert_eq!(page.body["page"], 2);
    assert_eq!(
        line_books(page.body["items"].as_array().unwrap()),
        vec![c, d]
    );

    let res = complete(&app, &staff, id, false).await;
    res.expect(200);
    let body = without_times(&res.body);
    assert_eq!(
        body,
        json!({
            "id": id, "status": "completed", "scope": "books", "category_id": null,
            "note": null, "zero_uncounted": false, "currency": "USD",
            "progress": {"lines": 5, "counted": 4, "uncounted": 1},
            "totals": {"variance_units": -2, "variance_value_cents": 1500,
                       "lines_with_variance": 3, "lines_without_cost": 1,
                       "posted": {"lines": 3, "units": -2, "value_cents": 1500,
                                  "lines_without_cost": 1}},
            "version": 3, "created_by": staff_id, "completed_by": staff_id,
            "completed_at": res.body["completed_at"], "cancelled_at": null,
        })
    );
    assert!(res.body["completed_at"].as_str().unwrap().ends_with('Z'));
    // One movement per line with a variance, in book order.
    let reference = Some(format!("stocktake:{id}"));
    let posted = vec![
        (a, -2, reference.clone()),
        (b, 2, reference.clone()),
        (c, -2, reference.clone()),
    ];
    assert_eq!(stocktake_movements(&app), posted);
    assert_eq!([a, b, c, d, e].map(|x| on_hand(&app, x)), [8, 12, 3, 2, 1]);
    let all = lines(&app, &staff, id, "all").await;
    let posted_quantities: Vec<Value> = all.iter().map(|l| l["posted_quantity"].clone()).collect();
    assert_eq!(
        posted_quantities,
        vec![json!(-2), json!(2), json!(-2), Value::Null, Value::Null]
    );
    assert_eq!(open_flags(&app, id), vec![false; 5]);
    assert_eq!(
        events(&app, "stocktake.completed"),
        vec![
            json!({"stocktake_id": id, "lines": 5, "counted": 4, "adjusted_lines": 3,
                    "variance_units": -2, "variance_value_cents": 1500,
                    "zero_uncounted": false, "currency": "USD"})
        ]
    );
    assert_ledger_matches(&app);

    // A closed stocktake's report no longer moves with the stock.
    receive(&app, &staff, &[(d, 5, 100)]).await;
    let uncounted = lines(&app, &staff, id, "uncounted").await;
    assert_eq!(uncounted[0]["expected"], 2);
    assert_eq!(uncounted[0]["movements_since_snapshot"], 0);

    // Completing twice is refused, and posts nothing more; so are counts and cancelling.
    let again = complete(&app, &staff, id, true).await;
    let problem = again.problem(409);
    assert_eq!(problem["current_status"], "completed");
    assert_eq!(problem["allowed_actions"], json!([]));
    let problem = count(&app, &staff, id, &[(a, 1)]).await;
    assert_eq!(problem.problem(409)["current_status"], "completed");
    assert_eq!(
        cancel(&app, &staff, id).await.problem(409)["current_status"],
        "completed"
    );
    assert_eq!(stocktake_movements(&app), posted);
    assert_eq!(events(&app, "stocktake.completed").len(), 1);
    let view = app.get(&path(id, ""), Some(&staff)).await;
    assert_eq!(view.body["version"], 3);
    assert_eq!(view.body["zero_uncounted"], false);
    assert_ledger_matches(&app);
}

#[tokio::test]
async fn uncounted_books_are_left_alone_or_zeroed() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let a = book(&app, &staff, 1, "A").await;
    let b = book(&app, &staff, 2, "B").await;
    let c = book(&app, &staff, 3, "C").await;
    let d = book(&app, &staff, 4, "D").await;
    let empty = book(&app, &staff, 5, "Empty").await;
    receive(
        &app,
        &staff,
        &[(a, 4, 100), (b, 4, 100), (c, 4, 100), (d, 6, 100)],
    )
    .await;

    let left = open_books(&app, &staff, &[a, b]).await;
    count(&app, &staff, left, &[(a, 3)]).await.expect(200);
    let res = complete(&app, &staff, left, false).await;
    res.expect(200);
    assert_eq!(res.body["zero_uncounted"], false);
    assert_eq!(res.body["totals"]["posted"]["lines"], 1);
    assert_eq!((on_hand(&app, a), on_hand(&app, b)), (3, 4));

    let zeroed = open_books(&app, &staff, &[c, d, empty]).await;
    count(&app, &staff, zeroed, &[(c, 4)]).await.expect(200);
    let res = complete(&app, &staff, zeroed, true).await;
    res.expect(200);
    assert_eq!(res.body["zero_uncounted"], true);
    assert_eq!(
        res.body["totals"],
        json!({"variance_units": 0, "variance_value_cents": 0, "lines_with_variance": 0,
               "lines_without_cost": 0,
               "posted": {"lines": 1, "units": -6, "value_cents": -600, "lines_without_cost": 0}})
    );
    // The uncounted book with stock was not found: taken to zero. The empty one needs nothing.
    assert_eq!([c, d, empty].map(|x| on_hand(&app, x)), [4, 0, 0]);
    let all = lines(&app, &staff, zeroed, "all").await;
    assert_eq!(all[1]["expected"], 6);
    assert_eq!(all[1]["counted"], Value::Null);
    assert_eq!(all[1]["posted_quantity"], -6);
    assert_eq!(all[2]["posted_quantity"], Value::Null);
    assert_eq!(
        stocktake_movements(&app),
        vec![
            (a, -1, Some(format!("stocktake:{left}"))),
            (d, -6, Some(format!("stocktake:{zeroed}"))),
        ]
    );
    assert_ledger_matches(&app);
}

#[tokio::test]
async fn a_cancelled_stocktake_posts_nothing() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let a = book(&app, &staff, 1, "A").await;
    receive(&app, &staff, &[(a, 4, 100)]).await;
    let id = open_books(&app, &staff, &[a]).await;
    count(&app, &staff, id, &[(a, 1)]).await.expect(200);

    // The body is optional.
    let res = app
        .send(Method::POST, &path(id, "/cancel"), Some(&staff), None)
        .await;
    res.expect(200);
    assert_eq!(res.body["status"], "cancelled");
    assert!(res.body["cancelled_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(res.body["completed_at"], Value::Null);
    assert_eq!(res.body["totals"]["posted"], Value::Null);
    assert_eq!(res.body["totals"]["variance_units"], -3);
    assert_eq!(open_flags(&app, id), vec![false]);
    assert!(stocktake_movements(&app).is_empty());
    assert_eq!(on_hand(&app, a), 4);

    for res in [
        cancel(&app, &staff, id).await,
        complete(&app, &staff, id, false).await,
        count(&app, &staff, id, &[(a, 2)]).await,
    ] {
        assert_eq!(res.problem(409)["current_status"], "cancelled");
    }
    assert!(stocktake_movements(&app).is_empty());
    assert_ledger_matches(&app);
}

#[tokio::test]
async fn completion_never_takes_stock_below_reserved_and_is_all_or_nothing() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let (_, _, shopper) = customer(&app);
    let a = book(&app, &staff, 1, "A").await;
    let b = book(&app, &staff, 2, "B").await;
    receive(&app, &staff, &[(a, 5, 100), (b, 5, 100)]).await;
    let id = open_books(&app, &staff, &[a, b]).await;
    count(&app, &staff, id, &[(a, 3), (b, 0)]).await.expect(200);
    // Two copies of B are held for an unpaid order: the count says there are none.
    let order = place(&app, &shopper, &[(b, 2)]).await;
    assert_eq!(level(&app, b), (5, 2));

    let res = complete(&app, &staff, id, false).await;
    let detail = res.problem(409)["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains(&format!("book {b}")), "{detail}");
    assert!(detail.contains("reserved 2"), "{detail}");
    // Nothing was written, not even A's movement, posted first.
    assert!(stocktake_movements(&app).is_empty());
    assert_eq!((on_hand(&app, a), on_hand(&app, b)), (5, 5));
    let view = app.get(&path(id, ""), Some(&staff)).await;
    assert_eq!(view.body["status"], "open");
    assert_eq!(view.body["completed_at"], Value::Null);
    assert_eq!(open_flags(&app, id), vec![true, true]);

    // Once the order is paid and fulfilled the two copies are gone: B is expected at 3, and the
    // staff recount it; completion goes through.
    card(&app, &shopper, order, "tok_visa").await.expect(201);
    orders_support::fulfil(&app, &staff, order)
        .await
        .expect(200);
    count(&app, &staff, id, &[(b, 0)]).await.expect(200);
    complete(&app, &staff, id, false).await.expect(200);
    assert_eq!(
        stocktake_movements(&app)
            .into_iter()
            .map(|(book, q, _)| (book, q))
            .collect::<Vec<_>>(),
        vec![(a, -2), (b, -3)]
    );
    assert_eq!(level(&app, b), (0, 0));
    assert_ledger_matches(&app);
}

#[tokio::test]
async fn concurrent_completions_post_once() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let a = book(&app, &staff, 1, "A").await;
    let b = book(&app, &staff, 2, "B").await;
    receive(&app, &staff, &[(a, 5, 100), (b, 5, 100)]).await;
    let id = open_books(&app, &staff, &[a, b]).await;
    count(&app, &staff, id, &[(a, 4), (b, 7)]).await.expect(200);

    let results =
        futures_util::future::join_all((0..8).map(|i| complete(&app, &staff, id, i % 2 == 0)))
            .await;
    let ok = results.iter().filter(|r| r.status == 200).count();
    assert_eq!(
        ok,
        1,
        "{:?}",
        results.iter().map(|r| &r.text).collect::<Vec<_>>()
    );
    for r in results.iter().filter(|r| r.status != 200) {
        assert_eq!(r.problem(409)["current_status"], "completed");
    }
    assert_eq!(
        stocktake_movements(&app)
            .into_iter()
            .map(|(book, q, _)| (book, q))
            .collect::<Vec<_>>(),
        vec![(a, -1), (b, 2)]
    );
    assert_eq!((on_hand(&app, a), on_hand(&app, b)), (4, 7));
    assert_ledger_matches(&app);
}

#[tokio::test]
async fn concurrent_overlapping_opens_admit_one() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let mut books = Vec::new();
    for n in 1..=4 {
        books.push(book(&app, &staff, n, &format!("Book {n}")).await);
    }
    let bodies: Vec<Value> = (0..8)
        .map(|i| match i % 3 {
            0 => json!({"scope": "all"}),
            1 => json!({"scope": "books", "book_ids": [books[0], books[1]]}),
            _ => json!({"scope": "books", "book_ids": [books[3], books[1]]}),
        })
        .collect();
    let results =
        futures_util::future::join_all(bodies.into_iter().map(|b| open(&app, &staff, b))).await;
    let ok = results.iter().filter(|r| r.status == 201).count();
    assert_eq!(
        ok,
        1,
        "{:?}",
        results.iter().map(|r| &r.text).collect::<Vec<_>>()
    );
    for r in results.iter().filter(|r| r.status != 201) {
        r.problem(409);
    }
    assert_eq!(app.count("stocktakes"), 1);
}

#[tokio::test]
async fn invalid_stocktakes_name_the_field_and_write_nothing() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let empty_category = create_category(&app, &staff, "empty", None).await;

    // Nothing to count at all.
    open(&app, &staff, json!({"scope": "all"}))
        .await
        .invalid_field("scope");
    let a = book(&app, &staff, 1, "A").await;
    let b = book(&app, &staff, 2, "B").await;

    let cases = [
        (json!({"scope": "shelf"}), "scope"),
        (json!({}), "scope"),
        (json!({"scope": "category"}), "category_id"),
        (
            json!({"scope": "category", "category_id": 999_999}),
            "category_id",
        ),
        (
            json!({"scope": "category", "category_id": empty_category}),
            "category_id",
        ),
        (
            json!({"scope": "all", "category_id": empty_category}),
            "category_id",
        ),
        (json!({"scope": "all", "book_ids": [a]}), "book_ids"),
        (
            json!({"scope": "category", "category_id": empty_category, "book_ids": [a]}),
            "book_ids",
        ),
        (json!({"scope": "books"}), "book_ids"),
        (json!({"scope": "books", "book_ids": []}), "book_ids"),
        (
            json!({"scope": "books", "book_ids": [a, b, a]}),
            "book_ids[2]",
        ),
        (
            json!({"scope": "books", "book_ids": [999_999, a]}),
            "book_ids[0]",
        ),
        (
            json!({"scope": "books", "book_ids": (1..=10_001).collect::<Vec<i64>>()}),
            "book_ids",
        ),
        (json!({"scope": "books", "book_ids": ["x"]}), "book_ids[0]"),
        (
            json!({"scope": "books", "book_ids": [a], "note": "n".repeat(2001)}),
            "note",
        ),
        (
            json!({"scope": "books", "book_ids": [a], "shelf": 3}),
            "shelf",
        ),
    ];
    for (body, field) in cases {
        open(&app, &staff, body.clone()).await.invalid_field(field);
    }
    assert_eq!(app.count("stocktakes"), 0);
    assert_eq!(app.count("stocktake_lines"), 0);

    let id = open_books(&app, &staff, &[a]).await;
    let put = |body: Value| {
        let app = &app;
        let staff = &staff;
        async move {
            app.send(Method::PUT, &path(id, "/counts"), Some(staff), Some(body))
                .await
        }
    };
    let many: Vec<Value> = (0..5001)
        .map(|i| json!({"book_id": i, "counted": 1}))
        .collect();
    let cases = [
        (json!({"counts": []}), "counts"),
        (json!({"counts": many}), "counts"),
        (json!({}), "counts"),
        (
            json!({"counts": [{"book_id": a, "counted": -1}]}),
            "counts[0].counted",
        ),
        (
            json!({"counts": [{"book_id": a, "counted": 1_000_001}]}),
            "counts[0].counted",
        ),
        (json!({"counts": [{"book_id": a}]}), "counts[0].counted"),
        (
            json!({"counts": [{"book_id": a, "counted": 1}, {"book_id": a, "counted": 2}]}),
            "counts[1].book_id",
        ),
        (
            json!({"counts": [{"book_id": a, "counted": 1}, {"book_id": b, "counted": 2}]}),
            "counts[1].book_id",
        ),
        (
            json!({"counts": [{"book_id": 999_999, "counted": 2}]}),
            "counts[0].book_id",
        ),
    ];
    for (body, field) in cases {
        put(body).await.invalid_field(field);
    }
    let view = app.get(&path(id, ""), Some(&staff)).await;
    assert_eq!(view.body["progress"]["counted"], 0);
    assert_eq!(view.body["version"], 1);

    app.post(
        &path(id, "/complete"),
        Some(&staff),
        json!({"zero_uncounted": "yes"}),
    )
    .await
    .invalid_field("zero_uncounted");
    app.get(&path(id, "/lines?filter=odd"), Some(&staff))
        .await
        .invalid_field("filter");
    app.get(&path(id, "/lines?per_page=101"), Some(&staff))
        .await
        .invalid_field("per_page");
    app.get(&format!("{BASE}?status=closed"), Some(&staff))
        .await
        .invalid_field("status");
    app.get(&format!("{BASE}?page=0"), Some(&staff))
        .await
        .invalid_field("page");
    assert_eq!(
        app.get(&path(id, ""), Some(&staff)).await.body["status"],
        "open"
    );

    // An unknown stocktake is a 404 on every route.
    let missing = id + 1000;
    app.get(&path(missing, ""), Some(&staff)).await.problem(404);
    app.get(&path(missing, "/lines"), Some(&staff))
        .await
        .problem(404);
    count(&app, &staff, missing, &[(a, 1)]).await.problem(404);
    complete(&app, &staff, missing, false).await.problem(404);
    cancel(&app, &staff, missing).await.problem(404);
}

#[tokio::test]
async fn every_stocktake_route_needs_a_staff_token() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let customer = app.customer();
    let a = book(&app, &staff, 1, "A").await;
    let id = open_books(&app, &staff, &[a]).await;
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, BASE.into(), None),
        (Method::POST, BASE.into(), Some(json!({"scope": "all"}))),
        (Method::GET, path(id, ""), None),
        (Method::GET, path(id, "/lines"), None),
        (
            Method::PUT,
            path(id, "/counts"),
            Some(json!({"counts": [{"book_id": a, "counted": 0}]})),
        ),
        (Method::POST, path(id, "/complete"), Some(json!({}))),
        (Method::POST, path(id, "/cancel"), Some(json!({}))),
    ];
    for (method, route, body) in routes {
        app.send(method.clone(), &route, None, body.clone())
            .await
            .problem(401);
        app.send(method.clone(), &route, Some("not-a-token"), body.clone())
            .await
            .problem(401);
        app.send(method, &route, Some(&customer), body)
            .await
            .problem(403);
    }
    let view = app.get(&path(id, ""), Some(&staff)).await;
    assert_eq!(view.body["status"], "open");
    assert_eq!(view.body["version"], 1);
    // The admin is staff too.
    app.get(&path(id, ""), Some(&app.admin())).await.expect(200);
}

/// Guards against accidental O(n²) work: a 2000-book stocktake opened, counted in two batches
/// and completed with a variance on every line. The lead's release benchmark measures the real
/// figures; this only bounds a debug build generously.
#[tokio::test]
async fn a_two_thousand_line_stocktake_completes_quickly() {
    const BOOKS: u64 = 2_000;
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let mut csv = String::from("isbn,title,language,format,list_price_cents\n");
    for n in 1..=BOOKS {
        csv.push_str(&format!("{},Book {n},en,paperback,1000\n", isbn13(n)));
    }
    let res = import_csv(&app, &staff, &csv).await;
    res.expect(200);
    assert_eq!(res.body["created"], BOOKS);
    let ids: Vec<i64> = {
        use bookstore::db::schema::books;
        let mut conn = app.conn();
        books::table
            .order(books::id)
            .select(books::id)
            .load(&mut *conn)
            .expect("books")
    };
    for chunk in ids.chunks(500) {
        let lines: Vec<(i64, i64, i64)> = chunk.iter().map(|&b| (b, 5, 300)).collect();
        receive(&app, &staff, &lines).await;
    }

    let started = std::time::Instant::now();
    let res = open(&app, &staff, json!({"scope": "all"})).await;
    res.expect(201);
    let opened = started.elapsed();
    let id = res.body["id"].as_i64().unwrap();
    assert_eq!(res.body["progress"]["lines"], BOOKS);

    let started = std::time::Instant::now();
    for half in ids.chunks(ids.len() / 2) {
        let counts: Vec<(i64, i64)> = half.iter().map(|&b| (b, 4)).collect();
        count(&app, &staff, id, &counts).await.expect(200);
    }
    let counted = started.elapsed();

    let started = std::time::Instant::now();
    let res = complete(&app, &staff, id, false).await;
    let completed = started.elapsed();
    res.expect(200);
    assert_eq!(
        res.body["totals"]["posted"],
        json!({"lines": BOOKS, "units": -(BOOKS as i64), "value_cents": -300 * BOOKS as i64,
               "lines_without_cost": 0})
    );
    eprintln!(
        "2000-line stocktake (debug): open {opened:?}, count {counted:?}, complete {completed:?}"
    );
    assert_eq!(app.count("stock_movements"), 2 * BOOKS as i64);
    let total: i64 = {
        let mut conn = app.conn();
        stock_levels::table
            .select(stock_levels::on_hand)
            .load::<i64>(&mut *conn)
            .expect("levels")
            .iter()
            .sum()
    };
    assert_eq!(total, 4 * BOOKS as i64);
    assert!(opened.as_secs() < 5, "open took {opened:?}");
    assert!(counted.as_secs() < 5, "counting took {counted:?}");
    assert!(completed.as_secs() < 20, "complete took {completed:?}");
    assert_ledger_matches(&app);
}
