//! Helpers shared by the order and payment tests: stock figures, the ledger sum, customer
//! accounts, books and receipts.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use crate::catalog_support::*;
use crate::common::*;
use bookstore::auth::Role;
use bookstore::db::schema::{stock_levels, users};
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
