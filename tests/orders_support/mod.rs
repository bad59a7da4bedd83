//! Helpers shared by the order and payment tests: stock figures, the ledger sum, customer
//! accounts, books and receipts.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use crate::catalog_support::*;
use crate::common::*;
use bookstore::auth::Role;
use bookstore::db::schema::{orders, stock_levels, users};
use bookstore::db::DbConn;
use diesel::prelude::*;
use serde_json::Value;

/// (on_hand, reserved) of a book.
pub fn level(app: &TestApp, book_id: i64) -> (i64, i64) {
    let mut conn = app.conn();
    stock_levels::table
        .find(book_id)
        .select((stock_levels::on_hand, stock_levels::reserved))
        .first(&mut *conn)
        .expect("level")
}

pub fn ledger_sum(app: &TestApp, book_id: i64) -> i64 {
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

/// A customer account: (user id, customer id, token).
pub fn customer(app: &TestApp) -> (i64, i64, String) {
    let (id, token) = app.user(Role::Customer);
    let mut conn = app.conn();
    let customer_id: Option<i64> = users::table
        .find(id)
        .select(users::customer_id)
        .first(&mut *conn)
        .expect("user");
    (id, customer_id.expect("customer record"), token)
}

pub async fn book(app: &TestApp, token: &str, n: u64, title: &str, price: i64) -> i64 {
    create_book_id(
        app,
        token,
        with(
            &book_body(&isbn13(n), title),
            json!({ "list_price_cents": price }),
        ),
    )
    .await
}

pub async fn receive(app: &TestApp, token: &str, lines: &[(i64, i64)]) {
    let lines: Vec<Value> = lines
        .iter()
        .map(|(b, q)| json!({"book_id": b, "quantity": q, "unit_cost_cents": 500}))
        .collect();
    app.post(
        "/api/v1/inventory/receipts",
        Some(token),
        json!({ "lines": lines }),
    )
    .await
    .expect(201);
}

/// Places an order of `pairs` as `token`; returns its id.
pub async fn place(app: &TestApp, token: &str, pairs: &[(i64, i64)]) -> i64 {
    let lines: Vec<Value> = pairs
        .iter()
        .map(|(b, q)| json!({"book_id": b, "quantity": q}))
        .collect();
    let res = app
        .post("/api/v1/orders", Some(token), json!({ "lines": lines }))
        .await;
    res.expect(201);
    res.body["id"].as_i64().unwrap()
}

pub async fn pay(app: &TestApp, token: &str, id: i64, body: Value) -> Res {
    app.post(&format!("/api/v1/orders/{id}/payments"), Some(token), body)
        .await
}

pub async fn pay_with_key(app: &TestApp, token: &str, id: i64, key: &str, body: Value) -> Res {
    let req = app
        .client
        .post(app.url(&format!("/api/v1/orders/{id}/payments")))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(&body);
    TestApp::read(req).await
}

pub async fn card(app: &TestApp, token: &str, id: i64, card_token: &str) -> Res {
    pay(
        app,
        token,
        id,
        json!({"method": "card", "token": card_token}),
    )
    .await
}

pub async fn fulfil(app: &TestApp, token: &str, id: i64) -> Res {
    app.post(
        &format!("/api/v1/orders/{id}/fulfil"),
        Some(token),
        json!({}),
    )
    .await
}

pub async fn payments_of(app: &TestApp, token: &str, id: i64) -> Vec<Value> {
    let res = app
        .get(&format!("/api/v1/orders/{id}/payments"), Some(token))
        .await;
    res.expect(200);
    res.body.as_array().unwrap().clone()
}

pub async fn status_of(app: &TestApp, token: &str, id: i64) -> String {
    let res = app.get(&format!("/api/v1/orders/{id}"), Some(token)).await;
    res.expect(200);
    res.body["status"].as_str().unwrap().to_owned()
}

/// Places an order of `pairs`, pays it by card and fulfils it (staff); returns its id.
pub async fn fulfilled_order(app: &TestApp, token: &str, staff: &str, pairs: &[(i64, i64)]) -> i64 {
    let id = place(app, token, pairs).await;
    card(app, token, id, "tok_visa").await.expect(201);
    fulfil(app, staff, id).await.expect(200);
    id
}

/// Sets an order's status directly (to reach a state without its whole path).
pub fn set_status(app: &TestApp, id: i64, status: &str) {
    let mut conn = app.conn();
    diesel::update(orders::table.find(id))
        .set(orders::status.eq(status))
        .execute(&mut *conn)
        .expect("update");
}

/// Makes an order overdue for the expiry task.
pub fn make_overdue(app: &TestApp, id: i64) {
    let mut conn = app.conn();
    let past = chrono::Utc::now().naive_utc() - chrono::Duration::minutes(1);
    diesel::update(orders::table.find(id))
        .set(orders::expires_at.eq(past))
        .execute(&mut *conn)
        .expect("update");
}

/// The refunds of an order.
pub async fn refunds_of(app: &TestApp, token: &str, id: i64) -> Vec<Value> {
    let res = app
        .get(&format!("/api/v1/orders/{id}/refunds"), Some(token))
        .await;
    res.expect(200);
    res.body.as_array().unwrap().clone()
}
