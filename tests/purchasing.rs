//! Suppliers and purchase orders over HTTP: supplier CRUD (archive instead of delete), the
//! purchase order state machine, and receipts against orders — partial, refused, over-received,
//! concurrent and replayed — with the stock levels, the ledger (`on_hand == Σ movements`), the
//! moving average cost and `on_order` checked after each step, on either backend.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

mod catalog_support;
use catalog_support::*;

use bookstore::auth::Role;
use bookstore::db::schema::{
    purchase_order_lines, purchase_orders, stock_levels, stock_movements, stock_receipts,
    webhook_endpoints, webhook_events,
};
use bookstore::db::DbConn;
use chrono::{Days, NaiveDate, Utc};
use diesel::prelude::*;
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

async fn book(app: &TestApp, token: &str, n: u64, title: &str) -> i64 {
    create_book_id(app, token, book_body(&isbn13(n), title)).await
}

async fn supplier(app: &TestApp, token: &str, name: &str) -> i64 {
    let res = app
        .post("/api/v1/suppliers", Some(token), json!({ "name": name }))
        .await;
    res.expect(201);
    res.body["id"].as_i64().unwrap()
}

fn po_lines(lines: &[(i64, i64, i64)]) -> Value {
    Value::Array(
        lines
            .iter()
            .map(|(b, q, c)| json!({"book_id": b, "quantity": q, "unit_cost_cents": c}))
            .collect(),
    )
}

/// Drafts a purchase order of (book, quantity, unit cost) lines; returns its view.
async fn draft(app: &TestApp, token: &str, supplier_id: i64, lines: &[(i64, i64, i64)]) -> Value {
    let res = app
        .post(
            "/api/v1/purchase-orders",
            Some(token),
            json!({"supplier_id": supplier_id, "lines": po_lines(lines)}),
        )
        .await;
    res.expect(201);
    res.body.clone()
}

async fn action(app: &TestApp, token: &str, id: i64, name: &str) -> Res {
    app.post(
        &format!("/api/v1/purchase-orders/{id}/{name}"),
        Some(token),
        json!({}),
    )
    .await
}

/// Drafts and submits; returns the order id.
async fn submitted(app: &TestApp, token: &str, supplier_id: i64, lines: &[(i64, i64, i64)]) -> i64 {
    let id = draft(app, token, supplier_id, lines).await["id"]
        .as_i64()
        .unwrap();
    action(app, token, id, "submit").await.expect(200);
    id
}

fn receive_body(lines: &[(i64, i64)], allow_over_receipt: bool) -> Value {
    let lines: Vec<Value> = lines
        .iter()
        .map(|(b, q)| json!({"book_id": b, "quantity": q}))
        .collect();
    json!({"lines": lines, "allow_over_receipt": allow_over_receipt})
}

async fn receive(app: &TestApp, token: &str, id: i64, lines: &[(i64, i64)]) -> Res {
    app.post(
        &format!("/api/v1/purchase-orders/{id}/receive"),
        Some(token),
        receive_body(lines, false),
    )
    .await
}

async fn receive_with_key(app: &TestApp, token: &str, id: i64, key: &str, body: Value) -> Res {
    let req = app
        .client
        .post(app.url(&format!("/api/v1/purchase-orders/{id}/receive")))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(&body);
    TestApp::read(req).await
}

async fn get_po(app: &TestApp, token: &str, id: i64) -> Value {
    let res = app
        .get(&format!("/api/v1/purchase-orders/{id}"), Some(token))
        .await;
    res.expect(200);
    res.body.clone()
}

/// `GET /inventory/{book_id}`.
async fn stock(app: &TestApp, token: &str, book_id: i64) -> Value {
    let res = app
        .get(&format!("/api/v1/inventory/{book_id}"), Some(token))
        .await;
    res.expect(200);
    res.body.clone()
}

async fn on_order(app: &TestApp, token: &str, book_id: i64) -> i64 {
    stock(app, token, book_id).await["on_order"]
        .as_i64()
        .unwrap()
}

/// (on_hand, reserved, average unit cost) of a book, from the database.
fn level(app: &TestApp, book_id: i64) -> (i64, i64, Option<i64>) {
    let mut conn = app.conn();
    stock_levels::table
        .find(book_id)
        .select((
            stock_levels::on_hand,
            stock_levels::reserved,
            stock_levels::avg_unit_cost_cents,
        ))
        .first(&mut *conn)
        .expect("level")
}

fn ledger_sum(app: &TestApp, book_id: i64) -> i64 {
    #[derive(QueryableByName)]
    struct Sum {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = app.conn();
    diesel::sql_query(
        "SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT) AS n FROM stock_movements \
         WHERE book_id = $1",
    )
    .bind::<diesel::sql_types::BigInt, _>(book_id)
    .get_result::<Sum>(&mut *conn as &mut DbConn)
    .expect("sum")
    .n
}

/// Core invariant 2 for every book: `on_hand` is the sum of its movements.
#[track_caller]
fn assert_ledger_matches(app: &TestApp) {
    let levels: Vec<(i64, i64)> = {
        let mut conn = app.conn();
        stock_levels::table
            .select((stock_levels::book_id, stock_levels::on_hand))
            .load(&mut *conn)
            .expect("levels")
    };
    for (book_id, on_hand) in levels {
        assert_eq!(
            on_hand,
            ledger_sum(app, book_id),
            "ledger of book {book_id}"
        );
    }
}

/// (quantity, kind, reference, unit cost, user) of a book's movements, oldest first.
type MovementTuple = (i64, String, Option<String>, Option<i64>, Option<i64>);

fn movements_of(app: &TestApp, book_id: i64) -> Vec<MovementTuple> {
    let mut conn = app.conn();
    stock_movements::table
        .filter(stock_movements::book_id.eq(book_id))
        .order(stock_movements::id)
        .select((
            stock_movements::quantity,
            stock_movements::kind,
            stock_movements::reference,
            stock_movements::unit_cost_cents,
            stock_movements::user_id,
        ))
        .load(&mut *conn)
        .expect("movements")
}

/// Everything a receipt writes, to prove that a refused one wrote nothing: every level, every
/// movement, every receipt, every line's received quantity, every order's status and version.
#[derive(Debug, PartialEq)]
struct Snapshot {
    levels: Vec<(i64, i64, i64, i32, Option<i64>)>,
    movements: i64,
    receipts: i64,
    lines: Vec<(i64, i64)>,
    orders: Vec<(i64, String, i32)>,
}

fn snapshot(app: &TestApp) -> Snapshot {
    let mut conn = app.conn();
    Snapshot {
        levels: stock_levels::table
            .order(stock_levels::book_id)
            .select((
                stock_levels::book_id,
                stock_levels::on_hand,
                stock_levels::reserved,
                stock_levels::version,
                stock_levels::avg_unit_cost_cents,
            ))
            .load(&mut *conn)
            .unwrap(),
        movements: app.count("stock_movements"),
        receipts: app.count("stock_receipts"),
        lines: purchase_order_lines::table
            .order(purchase_order_lines::id)
            .select((
                purchase_order_lines::id,
                purchase_order_lines::received_quantity,
            ))
            .load(&mut *conn)
            .unwrap(),
        orders: purchase_orders::table
            .order(purchase_orders::id)
            .select((
                purchase_orders::id,
                purchase_orders::status,
                purchase_orders::version,
            ))
            .load(&mut *conn)
            .unwrap(),
    }
}

/// The stock module's moving average: `(on_hand × avg + q × cost) / (on_hand + q)`, rounded half
/// up; the first costed receipt (or one into empty stock) sets it.
fn next_average(on_hand: i64, average: Option<i64>, q: i64, cost: i64) -> i64 {
    match average {
        Some(avg) if on_hand > 0 => (on_hand * avg + q * cost + (on_hand + q) / 2) / (on_hand + q),
        _ => cost,
    }
}

fn line_of(order: &Value, book_id: i64) -> &Value {
    order["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["book_id"] == book_id)
        .expect("line")
}

// ---------------------------------------------------------------------------------------------
// Suppliers
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn suppliers_are_created_validated_listed_and_changed() {
    let app = TestApp::spawn().await;
    let staff = app.staff();

    let res = app
        .post(
            "/api/v1/suppliers",
            Some(&staff),
            json!({"name": "  Gollancz Distribution ", "email": "orders@gollancz.example",
                   "phone": "+44 20 7946 0000", "address": "50 Victoria Embankment, London",
                   "notes": "Account 4471"}),
        )
        .await;
    res.expect(201);
    let id = res.body["id"].as_i64().unwrap();
    assert_eq!(
        res.header("location"),
        Some(format!("/api/v1/suppliers/{id}").as_str())
    );
    assert_eq!(res.header("etag"), Some("\"1\""));
    let created = res.body.clone();
    assert_eq!(created["name"], "Gollancz Distribution", "trimmed");
    assert_eq!(created["email"], "orders@gollancz.example");
    assert_eq!(created["lead_time_days"], 7, "the default lead time");
    assert_eq!(created["archived"], false);
    assert_eq!(created["archived_at"], Value::Null);
    assert_eq!(created["version"], 1);

    // Validation: every bad field is named; nothing is written.
    for (body, field) in [
        (json!({"name": "   "}), "name"),
        (json!({"name": "x".repeat(201)}), "name"),
        (json!({}), "name"),
        (json!({"name": "A", "email": "not-an-email"}), "email"),
        (json!({"name": "A", "phone": "call me"}), "phone"),
        (
            json!({"name": "A", "lead_time_days": 366}),
            "lead_time_days",
        ),
        (json!({"name": "A", "lead_time_days": -1}), "lead_time_days"),
        (
            json!({"name": "A", "lead_time_days": "soon"}),
            "lead_time_days",
        ),
        (json!({"name": "A", "colour": "red"}), "colour"),
    ] {
        app.post("/api/v1/suppliers", Some(&staff), body)
            .await
            .invalid_field(field);
    }
    assert_eq!(app.count("suppliers"), 1);

    // Names are unique among active suppliers, ignoring case: a 409 naming the field.
    let res = app
        .post(
            "/api/v1/suppliers",
            Some(&staff),
            json!({"name": "GOLLANCZ distribution"}),
        )
        .await;
    let problem = res.problem(409);
    assert!(
        problem["detail"].as_str().unwrap().starts_with("name:"),
        "{problem}"
    );
    assert_eq!(app.count("suppliers"), 1);

    let other = app
        .post(
            "/api/v1/suppliers",
            Some(&staff),
            json!({"name": "Alpha Books", "email": "sales@alpha.example", "lead_time_days": 0}),
        )
        .await;
    other.expect(201);
    assert_eq!(other.body["lead_time_days"], 0);
    let other_id = other.body["id"].as_i64().unwrap();
    supplier(&app, &staff, "Zephyr Press").await;

    // Listed by name; q matches the name or the email, ignoring case.
    let res = app.get("/api/v1/suppliers", Some(&staff)).await;
    res.expect(200);
    assert_eq!(
        names(&res.body),
        ["Alpha Books", "Gollancz Distribution", "Zephyr Press"]
    );
    assert_eq!(res.body["total"], 3);
    assert_eq!(res.body["page"], 1);
    assert_eq!(res.body["per_page"], 20);
    let res = app.get("/api/v1/suppliers?q=GOLL", Some(&staff)).await;
    assert_eq!(names(&res.body), ["Gollancz Distribution"]);
    let res = app
        .get("/api/v1/suppliers?q=alpha.example", Some(&staff))
        .await;
    assert_eq!(names(&res.body), ["Alpha Books"]);
    let res = app.get("/api/v1/suppliers?q=%25", Some(&staff)).await;
    assert_eq!(res.body["total"], 0, "wildcards are literal");
    let res = app
        .get("/api/v1/suppliers?per_page=2&page=2", Some(&staff))
        .await;
    assert_eq!(names(&res.body), ["Zephyr Press"]);
    app.get("/api/v1/suppliers?per_page=0", Some(&staff))
        .await
        .invalid_field("per_page");

    // GET carries the version; PATCH needs it.
    let path = format!("/api/v1/suppliers/{id}");
    let res = app.get(&path, Some(&staff)).await;
    res.expect(200);
    assert_eq!(res.header("etag"), Some("\"1\""));
    assert_eq!(res.body, created);
    app.get("/api/v1/suppliers/999999", Some(&staff))
        .await
        .problem(404);

    patch_if(&app, &staff, &path, None, json!({"lead_time_days": 10}))
        .await
        .problem(428);
    let res = patch_if(
        &app,
        &staff,
        &path,
        Some("\"1\""),
        json!({"lead_time_days": 10, "email": null, "notes": "  "}),
    )
    .await;
    res.expect(200);
    assert_eq!(res.header("etag"), Some("\"2\""));
    assert_eq!(res.body["lead_time_days"], 10);
    assert_eq!(res.body["email"], Value::Null, "null clears");
    assert_eq!(res.body["notes"], Value::Null, "blank clears");
    assert_eq!(res.body["phone"], "+44 20 7946 0000", "absent keeps");
    assert_eq!(res.body["version"], 2);
    // The version read before is stale now.
    patch_if(
        &app,
        &staff,
        &path,
        Some("\"1\""),
        json!({"lead_time_days": 3}),
    )
    .await
    .problem(412);
    patch_if(
        &app,
        &staff,
        &path,
        Some("\"2\""),
        json!({"lead_time_days": 400}),
    )
    .await
    .invalid_field("lead_time_days");
    patch_if(&app, &staff, &path, Some("\"2\""), json!({"name": ""}))
        .await
        .invalid_field("name");
    // Renaming onto another active supplier's name: 409.
    let res = patch_if(
        &app,
        &staff,
        &path,
        Some("\"2\""),
        json!({"name": "alpha books"}),
    )
    .await;
    assert!(res.problem(409)["detail"]
        .as_str()
        .unwrap()
        .contains(&format!("id {other_id}")));
    // Its own name in another case is fine.
    let res = patch_if(
        &app,
        &staff,
        &path,
        Some("*"),
        json!({"name": "GOLLANCZ Distribution"}),
    )
    .await;
    res.expect(200);
    assert_eq!(res.body["name"], "GOLLANCZ Distribution");
    assert_eq!(res.body["version"], 3);
    assert_eq!(res.body["lead_time_days"], 10);
}

#[tokio::test]
async fn a_supplier_with_purchase_orders_is_archived_instead_of_deleted() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let a = book(&app, &staff, 1, "Alpha").await;

    // No orders: deleted.
    let lone = supplier(&app, &staff, "Lone Supplier").await;
    let res = app
        .delete(&format!("/api/v1/suppliers/{lone}"), Some(&staff))
        .await;
    res.expect(204);
    assert!(res.text.is_empty());
    app.get(&format!("/api/v1/suppliers/{lone}"), Some(&staff))
        .await
        .problem(404);
    app.delete(&format!("/api/v1/suppliers/{lone}"), Some(&staff))
        .await
        .problem(404);

    // With an order (even a cancelled draft): archived, and answered like DELETE /books/{id}.
    let busy = supplier(&app, &staff, "Busy Supplier").await;
    let order = draft(&app, &staff, busy, &[(a, 5, 100)]).await;
    action(&app, &staff, order["id"].as_i64().unwrap(), "cancel")
        .await
        .expect(200);
    let res = app
        .delete(&format!("/api/v1/suppliers/{busy}"), Some(&staff))
        .await;
    res.expect(200);
    assert_eq!(res.body["id"], busy);
    assert_eq!(res.body["archived"], true);
    assert!(res.body["archived_at"].is_string());
    assert_eq!(res.body["version"], 2);
    assert_eq!(res.header("etag"), Some("\"2\""));
    assert_eq!(app.count("suppliers"), 1);
    // Deleting it again changes nothing.
    let again = app
        .delete(&format!("/api/v1/suppliers/{busy}"), Some(&staff))
        .await;
    again.expect(200);
    assert_eq!(again.body, res.body);

    // Left out of the list unless asked for; still readable.
    let res = app.get("/api/v1/suppliers", Some(&staff)).await;
    assert_eq!(res.body["total"], 0);
    let res = app
        .get("/api/v1/suppliers?include_archived=true", Some(&staff))
        .await;
    assert_eq!(names(&res.body), ["Busy Supplier"]);
    app.get(&format!("/api/v1/suppliers/{busy}"), Some(&staff))
        .await
        .expect(200);

    // No new orders for an archived supplier; its old orders stay.
    let res = app
        .post(
            "/api/v1/purchase-orders",
            Some(&staff),
            json!({"supplier_id": busy, "lines": po_lines(&[(a, 1, 100)])}),
        )
        .await;
    let problem = res.invalid_field("supplier_id");
    assert!(problem["detail"].as_str().unwrap().contains("archived"));
    assert_eq!(app.count("purchase_orders"), 1);
    get_po(&app, &staff, order["id"].as_i64().unwrap()).await;

    // Its name is free again for an active supplier.
    supplier(&app, &staff, "busy supplier").await;
}

// ---------------------------------------------------------------------------------------------
// Purchase orders
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_purchase_order_goes_from_draft_to_received_in_partial_receipts() {
    let app = TestApp::spawn().await;
    let (staff_id, staff) = app.user(Role::Staff);
    let a = book(&app, &staff, 1, "Alpha").await;
    let b = book(&app, &staff, 2, "Beta").await;
    let s = app
        .post(
            "/api/v1/suppliers",
            Some(&staff),
            json!({"name": "Gollancz", "lead_time_days": 10}),
        )
        .await
        .body["id"]
        .as_i64()
        .unwrap();

    // Draft: total, currency, default expected date, and nothing on order yet.
    let before = Utc::now().date_naive();
    let res = app
        .post(
            "/api/v1/purchase-orders",
            Some(&staff),
            json!({"supplier_id": s, "note": " Christmas restock ",
                   "lines": po_lines(&[(b, 4, 1250), (a, 10, 500)])}),
        )
        .await;
    res.expect(201);
    let after = Utc::now().date_naive();
    let id = res.body["id"].as_i64().unwrap();
    assert_eq!(
        res.header("location"),
        Some(format!("/api/v1/purchase-orders/{id}").as_str())
    );
    assert_eq!(res.header("etag"), Some("\"1\""));
    let po = res.body.clone();
    assert_eq!(po["status"], "draft");
    assert_eq!(po["supplier_id"], s);
    assert_eq!(po["supplier_name"], "Gollancz");
    assert_eq!(po["currency"], app.state.settings.currency.as_str());
    assert_eq!(po["note"], "Christmas restock");
    assert_eq!(po["total_cents"], 4 * 1250 + 10 * 500);
    assert_eq!(po["created_by"], staff_id);
    assert_eq!(po["allowed_actions"], json!(["edit", "submit", "cancel"]));
    let expected_on: NaiveDate = po["expected_on"].as_str().unwrap().parse().unwrap();
    assert!(
        [before, after]
            .map(|d| d.checked_add_days(Days::new(10)).unwrap())
            .contains(&expected_on),
        "today + lead time: {expected_on}"
    );
    assert_eq!(
        po["lines"],
        json!([
            {"book_id": b, "title": "Beta", "isbn": isbn13(2), "quantity": 4,
             "received_quantity": 0, "outstanding": 4, "unit_cost_cents": 1250,
             "line_total_cents": 5000},
            {"book_id": a, "title": "Alpha", "isbn": isbn13(1), "quantity": 10,
             "received_quantity": 0, "outstanding": 10, "unit_cost_cents": 500,
             "line_total_cents": 5000},
        ])
    );
    assert_eq!(po["receipts"], json!([]));
    assert_eq!(
        on_order(&app, &staff, a).await,
        0,
        "a draft is not on order"
    );

    // Submit: now on order.
    let res = action(&app, &staff, id, "submit").await;
    res.expect(200);
    assert_eq!(res.body["status"], "submitted");
    assert!(res.body["submitted_at"].is_string());
    assert_eq!(res.body["version"], 2);
    assert_eq!(res.header("etag"), Some("\"2\""));
    assert_eq!(res.body["allowed_actions"], json!(["cancel", "receive"]));
    assert_eq!(on_order(&app, &staff, a).await, 10);
    assert_eq!(on_order(&app, &staff, b).await, 4);

    // A first, partial receipt.
    let res = app
        .post(
            &format!("/api/v1/purchase-orders/{id}/receive"),
            Some(&staff),
            json!({"lines": [{"book_id": a, "quantity": 6}], "note": "first carton"}),
        )
        .await;
    res.expect(201);
    let receipt = &res.body["receipt"];
    let first_receipt = receipt["id"].as_i64().unwrap();
    assert_eq!(receipt["supplier"], "Gollancz");
    assert_eq!(receipt["note"], "first carton");
    assert_eq!(receipt["user_id"], staff_id);
    assert_eq!(receipt["total_cost_cents"], 3000);
    assert_eq!(receipt["lines"][0]["book_id"], a);
    assert_eq!(receipt["lines"][0]["quantity"], 6);
    assert_eq!(receipt["lines"][0]["unit_cost_cents"], 500);
    assert_eq!(receipt["levels"][0]["on_hand"], 6);
    assert_eq!(receipt["levels"][0]["on_order"], 4);
    assert_eq!(receipt["levels"][0]["avg_unit_cost_cents"], 500);
    let order = &res.body["purchase_order"];
    assert_eq!(order["status"], "partially_received");
    assert_eq!(order["received_at"], Value::Null);
    assert_eq!(order["allowed_actions"], json!(["receive"]));
    assert_eq!(line_of(order, a)["received_quantity"], 6);
    assert_eq!(line_of(order, a)["outstanding"], 4);
    assert_eq!(line_of(order, b)["outstanding"], 4);
    assert_eq!(order["receipts"][0]["id"], first_receipt);
    assert_eq!(order["receipts"][0]["user_id"], staff_id);
    assert!(order["receipts"][0]["created_at"].is_string());
    assert_eq!(*order, get_po(&app, &staff, id).await);

    assert_eq!(level(&app, a), (6, 0, Some(500)));
    assert_eq!(level(&app, b), (0, 0, None));
    assert_eq!(
        movements_of(&app, a),
        [(
            6,
            "receipt".to_owned(),
            Some(format!("receipt:{first_receipt}")),
            Some(500),
            Some(staff_id)
        )]
    );
    assert_eq!(on_order(&app, &staff, a).await, 4);
    assert_eq!(on_order(&app, &staff, b).await, 4);
    assert_ledger_matches(&app);

    // The rest: received in full.
    let res = receive(&app, &staff, id, &[(b, 4), (a, 4)]).await;
    res.expect(201);
    let second_receipt = res.body["receipt"]["id"].as_i64().unwrap();
    // Lines in the order sent.
    assert_eq!(res.body["receipt"]["lines"][0]["book_id"], b);
    assert_eq!(res.body["receipt"]["lines"][1]["book_id"], a);
    assert_eq!(res.body["receipt"]["total_cost_cents"], 4 * 1250 + 4 * 500);
    let order = &res.body["purchase_order"];
    assert_eq!(order["status"], "received");
    assert!(order["received_at"].is_string());
    assert_eq!(order["allowed_actions"], json!([]));
    for book_id in [a, b] {
        assert_eq!(line_of(order, book_id)["outstanding"], 0);
    }
    let receipt_ids: Vec<&Value> = order["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["id"])
        .collect();
    assert_eq!(receipt_ids, [first_receipt, second_receipt]);
    assert_eq!(level(&app, a), (10, 0, Some(500)));
    assert_eq!(level(&app, b), (4, 0, Some(1250)));
    assert_eq!(
        movements_of(&app, b),
        [(
            4,
            "receipt".to_owned(),
            Some(format!("receipt:{second_receipt}")),
            Some(1250),
            Some(staff_id)
        )]
    );
    assert_eq!(on_order(&app, &staff, a).await, 0);
    assert_eq!(on_order(&app, &staff, b).await, 0);
    let level_b = stock(&app, &staff, b).await;
    assert_eq!(level_b["stock_value_cents"], 4 * 1250);
    assert_ledger_matches(&app);

    // The receipts name the order and its supplier.
    let rows: Vec<(Option<String>, Option<i64>, Option<i64>)> = {
        let mut conn = app.conn();
        stock_receipts::table
            .order(stock_receipts::id)
            .select((
                stock_receipts::supplier,
                stock_receipts::purchase_order_id,
                stock_receipts::user_id,
            ))
            .load(&mut *conn)
            .unwrap()
    };
    assert_eq!(
        rows,
        vec![(Some("Gollancz".to_owned()), Some(id), Some(staff_id)); 2]
    );

    // A received order is final.
    for name in ["receive", "cancel", "submit"] {
        let res = if name == "receive" {
            receive(&app, &staff, id, &[(a, 1)]).await
        } else {
            action(&app, &staff, id, name).await
        };
        let problem = res.problem(409);
        assert_eq!(problem["current_status"], "received", "{name}");
        assert_eq!(problem["allowed_actions"], json!([]), "{name}");
    }
    assert_eq!(level(&app, a), (10, 0, Some(500)));
    assert_eq!(app.count("stock_receipts"), 2);
}

#[tokio::test]
async fn the_average_cost_follows_receipts_at_different_costs() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let a = book(&app, &staff, 1, "Alpha").await;
    let s = supplier(&app, &staff, "Gollancz").await;

    let first = submitted(&app, &staff, s, &[(a, 10, 1000)]).await;
    let second = submitted(&app, &staff, s, &[(a, 20, 1300)]).await;
    let third = submitted(&app, &staff, s, &[(a, 1, 1108)]).await;
    assert_eq!(on_order(&app, &staff, a).await, 31);

    let mut on_hand = 0;
    let mut average = None;
    // (order, quantity, its unit cost): the first sets the average; then 13900/13 = 1069.2 → 1069,
    // (13×1069 + 2×1300)/15 = 1099.8 → 1100, and (15×1100 + 1108)/16 = 1100.5 → 1101 (half up).
    for (order, q, cost, expected) in [
        (first, 10, 1000, 1000),
        (second, 3, 1300, 1069),
        (second, 2, 1300, 1100),
        (third, 1, 1108, 1101),
    ] {
        receive(&app, &staff, order, &[(a, q)]).await.expect(201);
        let next = next_average(on_hand, average, q, cost);
        assert_eq!(next, expected);
        on_hand += q;
        average = Some(next);
        assert_eq!(level(&app, a), (on_hand, 0, average));
        let view = stock(&app, &staff, a).await;
        assert_eq!(view["avg_unit_cost_cents"], expected);
        assert_eq!(view["stock_value_cents"], on_hand * expected);
    }
    assert_eq!(on_order(&app, &staff, a).await, 15);
    let costs: Vec<Option<i64>> = movements_of(&app, a).into_iter().map(|m| m.3).collect();
    assert_eq!(costs, [Some(1000), Some(1300), Some(1300), Some(1108)]);
    assert_ledger_matches(&app);
}

#[tokio::test]
async fn receiving_more_than_is_outstanding_is_refused_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let a = book(&app, &staff, 1, "Alpha").await;
    let b = book(&app, &staff, 2, "Beta").await;
    let c = book(&app, &staff, 3, "Gamma").await;
    let s = supplier(&app, &staff, "Gollancz").await;
    let id = submitted(&app, &staff, s, &[(a, 10, 500), (b, 5, 700)]).await;
    receive(&app, &staff, id, &[(a, 3)]).await.expect(201);
    let before = snapshot(&app);

    // One line over its outstanding quantity.
    let res = receive(&app, &staff, id, &[(a, 8)]).await;
    let detail = res.problem(409)["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("lines[0]"), "{detail}");
    assert!(detail.contains("only 7 outstanding"), "{detail}");
    assert_eq!(snapshot(&app), before);

    // The second line is over: the first one, which fits, is not received either.
    let res = receive(&app, &staff, id, &[(a, 2), (b, 6)]).await;
    let detail = res.problem(409)["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("lines[1]"), "{detail}");
    assert!(detail.contains("only 5 outstanding"), "{detail}");
    assert!(!detail.contains("lines[0]"), "{detail}");
    assert_eq!(snapshot(&app), before);
    assert_eq!(level(&app, a), (3, 0, Some(500)));
    assert_eq!(on_order(&app, &staff, a).await, 7);

    // Bad lines: named, nothing written.
    receive(&app, &staff, id, &[(c, 1)])
        .await
        .invalid_field("lines[0].book_id");
    receive(&app, &staff, id, &[(a, 1), (a, 1)])
        .await
        .invalid_field("lines[1].book_id");
    receive(&app, &staff, id, &[(a, 0)])
        .await
        .invalid_field("lines[0].quantity");
    receive(&app, &staff, id, &[]).await.invalid_field("lines");
    receive(&app, &staff, 999_999, &[(a, 1)]).await.problem(404);
    assert_eq!(snapshot(&app), before);

    // With allow_over_receipt the extra copies are kept.
    let res = app
        .post(
            &format!("/api/v1/purchase-orders/{id}/receive"),
            Some(&staff),
            receive_body(&[(a, 9)], true),
        )
        .await;
    res.expect(201);
    let order = &res.body["purchase_order"];
    assert_eq!(line_of(order, a)["received_quantity"], 12);
    assert_eq!(line_of(order, a)["outstanding"], 0);
    assert_eq!(order["status"], "partially_received", "b is still due");
    assert_eq!(level(&app, a), (12, 0, Some(500)));
    assert_eq!(
        on_order(&app, &staff, a).await,
        0,
        "over-received counts as none"
    );
    assert_eq!(on_order(&app, &staff, b).await, 5);

    // Completing b receives the order, over-received line and all.
    let res = receive(&app, &staff, id, &[(b, 5)]).await;
    res.expect(201);
    assert_eq!(res.body["purchase_order"]["status"], "received");
    assert_ledger_matches(&app);
}

#[tokio::test]
async fn cancelling_is_for_drafts_and_submitted_orders_before_any_receipt() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let a = book(&app, &staff, 1, "Alpha").await;
    let s = supplier(&app, &staff, "Gollancz").await;

    // A draft takes no receipt, and cancels.
    let d = draft(&app, &staff, s, &[(a, 5, 100)]).await["id"]
        .as_i64()
        .unwrap();
    let problem = receive(&app, &staff, d, &[(a, 1)])
        .await
        .problem(409)
        .clone();
    assert_eq!(problem["current_status"], "draft");
    assert_eq!(
        problem["allowed_actions"],
        json!(["edit", "submit", "cancel"])
    );
    let res = action(&app, &staff, d, "cancel").await;
    res.expect(200);
    assert_eq!(res.body["status"], "cancelled");
    assert!(res.body["cancelled_at"].is_string());
    assert_eq!(res.body["submitted_at"], Value::Null);
    for name in ["cancel", "submit"] {
        let problem = action(&app, &staff, d, name).await.problem(409).clone();
        assert_eq!(problem["current_status"], "cancelled");
        assert_eq!(problem["allowed_actions"], json!([]));
    }

    // A submitted order cancels, and is no longer on order.
    let sub = submitted(&app, &staff, s, &[(a, 5, 100)]).await;
    action(&app, &staff, sub, "submit").await.problem(409);
    assert_eq!(on_order(&app, &staff, a).await, 5);
    action(&app, &staff, sub, "cancel").await.expect(200);
    assert_eq!(on_order(&app, &staff, a).await, 0);
    receive(&app, &staff, sub, &[(a, 1)]).await.problem(409);

    // Once something has arrived, it cannot be cancelled.
    let part = submitted(&app, &staff, s, &[(a, 5, 100)]).await;
    receive(&app, &staff, part, &[(a, 2)]).await.expect(201);
    let problem = action(&app, &staff, part, "cancel")
        .await
        .problem(409)
        .clone();
    assert_eq!(problem["current_status"], "partially_received");
    assert_eq!(problem["allowed_actions"], json!(["receive"]));
    assert_eq!(
        get_po(&app, &staff, part).await["status"],
        "partially_received"
    );
    assert_eq!(on_order(&app, &staff, a).await, 3);

    action(&app, &staff, 999_999, "cancel").await.problem(404);
    assert_eq!(level(&app, a), (2, 0, Some(100)));
    assert_ledger_matches(&app);
}

#[tokio::test]
async fn purchase_orders_are_validated_field_by_field() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let a = book(&app, &staff, 1, "Alpha").await;
    let b = book(&app, &staff, 2, "Beta").await;
    let archived = book(&app, &staff, 3, "Archived").await;
    patch_book(&app, &staff, archived, json!({"status": "archived"}))
        .await
        .expect(200);
    let s = supplier(&app, &staff, "Gollancz").await;

    let body = |supplier_id: i64, lines: Value| json!({"supplier_id": supplier_id, "lines": lines});
    for (body, field) in [
        (body(999_999, po_lines(&[(a, 1, 1)])), "supplier_id"),
        (body(s, json!([])), "lines"),
        (json!({"supplier_id": s}), "lines"),
        (
            body(s, po_lines(&[(a, 1, 1), (a, 2, 1)])),
            "lines[1].book_id",
        ),
        (
            body(s, po_lines(&[(a, 1, 1), (999_999, 2, 1)])),
            "lines[1].book_id",
        ),
        (body(s, po_lines(&[(archived, 1, 1)])), "lines[0].book_id"),
        (body(s, po_lines(&[(a, 0, 1)])), "lines[0].quantity"),
        (
            body(s, po_lines(&[(b, 1, 1), (a, 100_001, 1)])),
            "lines[1].quantity",
        ),
        (body(s, po_lines(&[(a, 1, -1)])), "lines[0].unit_cost_cents"),
        (
            body(s, po_lines(&[(a, 1, 100_000_001)])),
            "lines[0].unit_cost_cents",
        ),
        (
            json!({"supplier_id": s, "lines": [{"book_id": a, "quantity": 1}]}),
            "lines[0].unit_cost_cents",
        ),
        (
            json!({"supplier_id": s, "lines": po_lines(&[(a, 1, 1)]), "expected_on": "soon"}),
            "expected_on",
        ),
        (
            json!({"supplier_id": s, "lines": po_lines(&[(a, 1, 1)]), "note": "n".repeat(2001)}),
            "note",
        ),
    ] {
        app.post("/api/v1/purchase-orders", Some(&staff), body)
            .await
            .invalid_field(field);
    }
    assert_eq!(app.count("purchase_orders"), 0);
    assert_eq!(app.count("purchase_order_lines"), 0);

    // The largest order allowed: its total fits.
    let res = app
        .post(
            "/api/v1/purchase-orders",
            Some(&staff),
            json!({"supplier_id": s, "expected_on": "2027-01-15",
                   "lines": po_lines(&[(a, 100_000, 100_000_000), (b, 100_000, 100_000_000)])}),
        )
        .await;
    res.expect(201);
    assert_eq!(res.body["total_cents"], 2 * 100_000 * 100_000_000_i64);
    assert_eq!(res.body["expected_on"], "2027-01-15");
}

#[tokio::test]
async fn a_draft_can_be_edited_with_if_match_until_it_is_submitted() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let a = book(&app, &staff, 1, "Alpha").await;
    let b = book(&app, &staff, 2, "Beta").await;
    let s = supplier(&app, &staff, "Gollancz").await;
    let po = draft(&app, &staff, s, &[(a, 5, 100)]).await;
    let id = po["id"].as_i64().unwrap();
    let path = format!("/api/v1/purchase-orders/{id}");

    patch_if(&app, &staff, &path, None, json!({"note": "x"}))
        .await
        .problem(428);
    let res = patch_if(
        &app,
        &staff,
        &path,
        Some("\"1\""),
        json!({"note": "rush", "expected_on": "2027-02-01",
               "lines": po_lines(&[(b, 3, 900), (a, 7, 110)])}),
    )
    .await;
    res.expect(200);
    assert_eq!(res.header("etag"), Some("\"2\""));
    assert_eq!(res.body["note"], "rush");
    assert_eq!(res.body["expected_on"], "2027-02-01");
    assert_eq!(res.body["total_cents"], 3 * 900 + 7 * 110);
    let books: Vec<&Value> = res.body["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| &l["book_id"])
        .collect();
    assert_eq!(books, [b, a], "the new lines, in their order");
    assert_eq!(app.count("purchase_order_lines"), 2);

    // Stale, and invalid, changes are refused and change nothing.
    patch_if(&app, &staff, &path, Some("\"1\""), json!({"note": "late"}))
        .await
        .problem(412);
    for (body, field) in [
        (
            json!({"lines": po_lines(&[(a, 1, 1), (a, 1, 1)])}),
            "lines[1].book_id",
        ),
        (
            json!({"lines": po_lines(&[(999_999, 1, 1)])}),
            "lines[0].book_id",
        ),
        (json!({"lines": []}), "lines"),
        (json!({"note": "n".repeat(2001)}), "note"),
        (json!({"supplier_id": s}), "supplier_id"),
    ] {
        patch_if(&app, &staff, &path, Some("\"2\""), body)
            .await
            .invalid_field(field);
    }
    // Absent keeps, null clears; only the note changes.
    let res = patch_if(
        &app,
        &staff,
        &path,
        Some("\"2\""),
        json!({"expected_on": null}),
    )
    .await;
    res.expect(200);
    assert_eq!(res.body["expected_on"], Value::Null);
    assert_eq!(res.body["note"], "rush");
    assert_eq!(res.body["total_cents"], 3 * 900 + 7 * 110);
    assert_eq!(res.body["version"], 3);

    // Submitted: no more edits (the state machine's 409, even with a stale version).
    action(&app, &staff, id, "submit").await.expect(200);
    for tag in ["\"4\"", "\"1\"", "*"] {
        let problem = patch_if(&app, &staff, &path, Some(tag), json!({"note": "late"}))
            .await
            .problem(409)
            .clone();
        assert_eq!(problem["current_status"], "submitted");
    }
    patch_if(
        &app,
        &staff,
        "/api/v1/purchase-orders/999999",
        Some("*"),
        json!({"note": "x"}),
    )
    .await
    .problem(404);
    assert_eq!(get_po(&app, &staff, id).await["note"], "rush");
    assert_eq!(on_order(&app, &staff, a).await, 7);
    assert_eq!(on_order(&app, &staff, b).await, 3);
}

#[tokio::test]
async fn purchase_orders_are_listed_newest_first_with_filters() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let a = book(&app, &staff, 1, "Alpha").await;
    let b = book(&app, &staff, 2, "Beta").await;
    let s1 = supplier(&app, &staff, "One").await;
    let s2 = supplier(&app, &staff, "Two").await;
    let p1 = draft(&app, &staff, s1, &[(a, 1, 1)]).await["id"]
        .as_i64()
        .unwrap();
    let p2 = submitted(&app, &staff, s1, &[(b, 1, 1)]).await;
    let p3 = submitted(&app, &staff, s2, &[(a, 1, 1), (b, 2, 1)]).await;

    let ids_of = |res: &Res| ids(&res.body);
    let res = app.get("/api/v1/purchase-orders", Some(&staff)).await;
    res.expect(200);
    assert_eq!(ids_of(&res), [p3, p2, p1]);
    assert_eq!(res.body["total"], 3);
    assert_eq!(res.body["items"][0]["lines"].as_array().unwrap().len(), 2);
    assert_eq!(res.body["items"][0]["supplier_name"], "Two");
    for (query, expected) in [
        (format!("supplier_id={s1}"), vec![p2, p1]),
        ("status=submitted".to_owned(), vec![p3, p2]),
        (format!("book_id={a}"), vec![p3, p1]),
        (
            format!("book_id={b}&status=submitted&supplier_id={s1}"),
            vec![p2],
        ),
        ("status=received".to_owned(), vec![]),
        ("per_page=1&page=2".to_owned(), vec![p2]),
    ] {
        let res = app
            .get(&format!("/api/v1/purchase-orders?{query}"), Some(&staff))
            .await;
        res.expect(200);
        assert_eq!(ids_of(&res), expected, "{query}");
    }
    app.get("/api/v1/purchase-orders?status=lost", Some(&staff))
        .await
        .invalid_field("status");
    app.get("/api/v1/purchase-orders?supplier_id=x", Some(&staff))
        .await
        .invalid_field("supplier_id");
    app.get("/api/v1/purchase-orders/999999", Some(&staff))
        .await
        .problem(404);
}

#[tokio::test]
async fn concurrent_receipts_never_receive_more_than_was_ordered() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let a = book(&app, &staff, 1, "Alpha").await;
    let b = book(&app, &staff, 2, "Beta").await;
    let s = supplier(&app, &staff, "Gollancz").await;

    // Each tries to receive everything that is outstanding: exactly one does.
    let id = submitted(&app, &staff, s, &[(a, 10, 500), (b, 4, 300)]).await;
    let everything = [(b, 4), (a, 10)];
    let attempts = (0..8).map(|_| receive(&app, &staff, id, &everything));
    let results = futures_util::future::join_all(attempts).await;
    let mut statuses: Vec<u16> = results.iter().map(|r| r.status.as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [vec![201], vec![409; 7]].concat());
    for res in results.iter().filter(|r| r.status == 409) {
        res.problem(409);
    }
    assert_eq!(level(&app, a), (10, 0, Some(500)));
    assert_eq!(level(&app, b), (4, 0, Some(300)));
    assert_eq!(app.count("stock_receipts"), 1);
    assert_eq!(app.count("stock_movements"), 2);
    assert_eq!(get_po(&app, &staff, id).await["status"], "received");

    // Many small receipts against 5 outstanding copies (the order stays open, since b is still
    // due, so only the line's own limit stops them): exactly 5 land.
    let id = submitted(&app, &staff, s, &[(a, 5, 600), (b, 1, 300)]).await;
    let one = [(a, 1)];
    let attempts = (0..12).map(|_| receive(&app, &staff, id, &one));
    let results = futures_util::future::join_all(attempts).await;
    let ok = results.iter().filter(|r| r.status == 201).count();
    assert_eq!(
        ok,
        5,
        "{:?}",
        results.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for res in results.iter().filter(|r| r.status != 201) {
        let detail = res.problem(409)["detail"].as_str().unwrap().to_owned();
        assert!(detail.contains("only 0 outstanding"), "{detail}");
    }
    let po = get_po(&app, &staff, id).await;
    assert_eq!(po["status"], "partially_received");
    assert_eq!(line_of(&po, a)["received_quantity"], 5);
    assert_eq!(po["receipts"].as_array().unwrap().len(), 5);
    assert_eq!(level(&app, a).0, 15);
    assert_eq!(on_order(&app, &staff, a).await, 0);
    assert_ledger_matches(&app);
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_receipt() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let a = book(&app, &staff, 1, "Alpha").await;
    let s = supplier(&app, &staff, "Gollancz").await;
    let id = submitted(&app, &staff, s, &[(a, 10, 500)]).await;
    let body = receive_body(&[(a, 4)], false);

    let first = receive_with_key(&app, &staff, id, "delivery-4471", body.clone()).await;
    first.expect(201);
    assert_eq!(first.header("idempotent-replayed"), None);
    let second = receive_with_key(&app, &staff, id, "delivery-4471", body.clone()).await;
    second.expect(201);
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(second.body, first.body);
    assert_eq!(app.count("stock_receipts"), 1);
    assert_eq!(level(&app, a).0, 4);

    // The same key with another body, or for another order: 422, nothing received.
    receive_with_key(
        &app,
        &staff,
        id,
        "delivery-4471",
        receive_body(&[(a, 5)], false),
    )
    .await
    .invalid_field("Idempotency-Key");
    let other = submitted(&app, &staff, s, &[(a, 10, 500)]).await;
    receive_with_key(&app, &staff, other, "delivery-4471", body.clone())
        .await
        .invalid_field("Idempotency-Key");
    receive_with_key(&app, &staff, id, "", body.clone())
        .await
        .invalid_field("Idempotency-Key");
    assert_eq!(app.count("stock_receipts"), 1);

    // A refusal is replayed too, even once it would succeed.
    let over = receive_body(&[(a, 7)], false);
    let refused = receive_with_key(&app, &staff, id, "delivery-4472", over.clone()).await;
    refused.problem(409);
    let replayed = receive_with_key(&app, &staff, id, "delivery-4472", over).await;
    replayed.problem(409);
    assert_eq!(replayed.header("idempotent-replayed"), Some("true"));
    assert_eq!(replayed.body, refused.body);

    // Racing retries of one key: one receipt.
    let attempts = (0..10).map(|_| receive_with_key(&app, &staff, other, "race", body.clone()));
    let results = futures_util::future::join_all(attempts).await;
    let mut receipt_ids = std::collections::HashSet::new();
    for res in &results {
        match res.status.as_u16() {
            201 => {
                receipt_ids.insert(res.body["receipt"]["id"].as_i64().unwrap());
            }
            409 => {
                let p = res.problem(409);
                assert!(p["detail"].as_str().unwrap().contains("in progress"), "{p}");
            }
            other => panic!("unexpected {other}: {}", res.text),
        }
    }
    assert_eq!(receipt_ids.len(), 1);
    assert_eq!(app.count("stock_receipts"), 2);
    assert_eq!(level(&app, a).0, 8);
    assert_ledger_matches(&app);
}

#[tokio::test]
async fn a_receipt_tells_the_webhooks_in_its_transaction() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let a = book(&app, &staff, 1, "Alpha").await;
    let b = book(&app, &staff, 2, "Beta").await;
    let s = supplier(&app, &staff, "Gollancz").await;
    {
        let mut conn = app.conn();
        let at = Utc::now().naive_utc();
        diesel::insert_into(webhook_endpoints::table)
            .values((
                webhook_endpoints::url.eq("http://127.0.0.1:9/hook"),
                webhook_endpoints::event_types.eq("purchase_order.received"),
                webhook_endpoints::secret.eq("s3cret"),
                webhook_endpoints::active.eq(true),
                webhook_endpoints::version.eq(1),
                webhook_endpoints::created_at.eq(at),
                webhook_endpoints::updated_at.eq(at),
            ))
            .execute(&mut *conn)
            .unwrap();
    }
    let events = |app: &TestApp| -> Vec<Value> {
        let mut conn = app.conn();
        webhook_events::table
            .filter(webhook_events::event_type.eq("purchase_order.received"))
            .order(webhook_events::created_at)
            .select(webhook_events::payload)
            .load::<String>(&mut *conn)
            .unwrap()
            .iter()
            .map(|p| serde_json::from_str(p).unwrap())
            .collect()
    };
    let id = submitted(&app, &staff, s, &[(a, 5, 400), (b, 2, 900)]).await;
    assert!(events(&app).is_empty());

    // A refused receipt rolls back: no event.
    receive(&app, &staff, id, &[(a, 6)]).await.problem(409);
    assert!(events(&app).is_empty());

    let res = receive(&app, &staff, id, &[(b, 2), (a, 1)]).await;
    res.expect(201);
    let receipt_id = res.body["receipt"]["id"].as_i64().unwrap();
    let events = events(&app);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "purchase_order.received");
    assert_eq!(
        events[0]["data"],
        json!({"purchase_order_id": id, "supplier_id": s, "receipt_id": receipt_id,
               "status": "partially_received",
               "lines": [{"book_id": b, "quantity": 2, "unit_cost_cents": 900},
                         {"book_id": a, "quantity": 1, "unit_cost_cents": 400}]})
    );
    assert_eq!(app.count("webhook_deliveries"), 1);
}

#[tokio::test]
async fn suppliers_and_purchase_orders_are_for_staff() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let admin = app.admin();
    let customer = app.customer();
    let a = book(&app, &staff, 1, "Alpha").await;
    let s = supplier(&app, &staff, "Gollancz").await;
    let id = submitted(&app, &staff, s, &[(a, 5, 100)]).await;

    let routes: Vec<(reqwest::Method, String, Option<Value>)> = vec![
        (reqwest::Method::GET, "/api/v1/suppliers".into(), None),
        (
            reqwest::Method::POST,
            "/api/v1/suppliers".into(),
            Some(json!({"name": "X"})),
        ),
        (reqwest::Method::GET, format!("/api/v1/suppliers/{s}"), None),
        (
            reqwest::Method::DELETE,
            format!("/api/v1/suppliers/{s}"),
            None,
        ),
        (reqwest::Method::GET, "/api/v1/purchase-orders".into(), None),
        (
            reqwest::Method::POST,
            "/api/v1/purchase-orders".into(),
            Some(json!({"supplier_id": s, "lines": po_lines(&[(a, 1, 1)])})),
        ),
        (
            reqwest::Method::GET,
            format!("/api/v1/purchase-orders/{id}"),
            None,
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/purchase-orders/{id}/cancel"),
            None,
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/purchase-orders/{id}/receive"),
            Some(receive_body(&[(a, 1)], false)),
        ),
    ];
    for (method, path, body) in &routes {
        app.send(method.clone(), path, None, body.clone())
            .await
            .problem(401);
        app.send(method.clone(), path, Some(&customer), body.clone())
            .await
            .problem(403);
    }
    assert_eq!(app.count("suppliers"), 1);
    assert_eq!(app.count("purchase_orders"), 1);
    assert_eq!(app.count("stock_receipts"), 0);
    // Admins are staff too.
    app.get(&format!("/api/v1/purchase-orders/{id}"), Some(&admin))
        .await
        .expect(200);
    receive(&app, &admin, id, &[(a, 5)]).await.expect(201);
}
