//! Cancelling paid orders, returns and refunds over HTTP on either backend: full refunds of a
//! cancelled paid order, staff returns that refund from the snapshotted prices and restock with
//! `return` movements, customer return requests within the window, never taking back more than
//! was sold (also under racing returns), and refunds the provider could not take being retried by
//! the maintenance sweep.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

mod catalog_support;

mod orders_support;
use orders_support::*;

use bookstore::db::schema::{refunds, stock_movements};
use bookstore::orders::payments::{
    ChargeLookup, Decline, PaymentProvider, ProviderCharge, TestProvider,
};
use diesel::prelude::*;
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

async fn return_with(app: &TestApp, token: &str, id: i64, body: Value) -> Res {
    app.post(&format!("/api/v1/orders/{id}/returns"), Some(token), body)
        .await
}

fn return_body(pairs: &[(i64, i64)], restock: Option<bool>) -> Value {
    let lines: Vec<Value> = pairs
        .iter()
        .map(|(b, q)| json!({"book_id": b, "quantity": q}))
        .collect();
    let mut body = json!({"lines": lines, "reason": "damaged in transit"});
    if let Some(r) = restock {
        body["restock"] = json!(r);
    }
    body
}

/// (kind, quantity, reference) of a book's movements, oldest first.
fn movements(app: &TestApp, book_id: i64) -> Vec<(String, i64, Option<String>)> {
    let mut conn = app.conn();
    stock_movements::table
        .filter(stock_movements::book_id.eq(book_id))
        .order(stock_movements::id)
        .select((
            stock_movements::kind,
            stock_movements::quantity,
            stock_movements::reference,
        ))
        .load(&mut *conn)
        .unwrap()
}

#[tokio::test]
async fn cancelling_a_paid_order_refunds_it_in_full_and_releases_its_stock() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let (_, _, token) = customer(&app);
    let a = book(&app, &staff, 1, "Alpha", 1250).await;
    receive(&app, &staff, &[(a, 5)]).await;
    let id = place(&app, &token, &[(a, 2)]).await;
    let paid = card(&app, &token, id, "tok_visa").await;
    paid.expect(201);
    let payment_id = paid.body["payment"]["id"].as_i64().unwrap();
    assert_eq!(level(&app, a), (5, 2));

    // Only staff cancel a paid order.
    cancel_order(&app, &token, id).await.problem(409);
    let res = app
        .post(
            &format!("/api/v1/orders/{id}/cancel"),
            Some(&staff),
            json!({"reason": "customer changed their mind"}),
        )
        .await;
    res.expect(200);
    assert_eq!(res.body["status"], "cancelled");
    assert_eq!(level(&app, a), (5, 0), "the reservation is released");
    assert_eq!(ledger_sum(&app, a), 5);

    let refunds = refunds_of(&app, &token, id).await;
    assert_eq!(refunds.len(), 1);
    let r = &refunds[0];
    assert_eq!(r["payment_id"], payment_id);
    assert_eq!(r["amount_cents"], 2500);
    assert_eq!(r["method"], "card");
    assert_eq!(r["status"], "succeeded");
    assert_eq!(r["attempts"], 1);
    assert_eq!(r["return_id"], Value::Null);
    assert!(r["provider_reference"]
        .as_str()
        .unwrap()
        .starts_with("test_re_"));
    assert_eq!(r["reason"], "customer changed their mind");

    // Cancelled is final: a second cancel refunds nothing more.
    cancel_order(&app, &staff, id).await.problem(409);
    assert_eq!(refunds_of(&app, &staff, id).await.len(), 1);
    // Another customer cannot see the refunds.
    let (_, _, other) = customer(&app);
    app.get(&format!("/api/v1/orders/{id}/refunds"), Some(&other))
        .await
        .problem(404);
}

#[tokio::test]
async fn a_cash_sale_cancelled_is_refunded_by_hand_at_once() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let a = book(&app, &staff, 1, "Alpha", 800).await;
    receive(&app, &staff, &[(a, 3)]).await;
    let id = place(&app, &staff, &[(a, 1)]).await;
    pay(&app, &staff, id, json!({"method": "cash"}))
        .await
        .expect(201);
    cancel_order(&app, &staff, id).await.expect(200);
    let refunds = refunds_of(&app, &staff, id).await;
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0]["method"], "cash");
    assert_eq!(refunds[0]["status"], "succeeded");
    assert_eq!(refunds[0]["attempts"], 0, "no provider call for cash");
    assert_eq!(refunds[0]["amount_cents"], 800);
}

#[tokio::test]
async fn a_staff_return_refunds_restocks_and_moves_the_order() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let (_, _, token) = customer(&app);
    let a = book(&app, &staff, 1, "Alpha", 1250).await;
    let b = book(&app, &staff, 2, "Beta", 999).await;
    receive(&app, &staff, &[(a, 10), (b, 10)]).await;
    let id = fulfilled_order(&app, &token, &staff, &[(a, 3), (b, 1)]).await;
    assert_eq!(level(&app, a), (7, 0));

    // The price changes after the sale: the refund uses the order's snapshot.
    app.patch(
        &format!("/api/v1/books/{a}"),
        Some(&staff),
        json!({"list_price_cents": 5000}),
    )
    .await;

    let res = return_with(&app, &staff, id, return_body(&[(a, 1)], None)).await;
    res.expect(201);
    assert_eq!(
        res.header("location"),
        Some(format!("/api/v1/orders/{id}/returns").as_str())
    );
    let ret = &res.body;
    let return_id = ret["id"].as_i64().unwrap();
    assert_eq!(ret["status"], "received");
    assert_eq!(ret["restock"], true);
    assert_eq!(ret["refund_cents"], 1250);
    assert_eq!(
        ret["lines"],
        json!([{"book_id": a, "quantity": 1, "refund_cents": 1250}])
    );
    assert_eq!(ret["refunds"][0]["status"], "succeeded");
    assert_eq!(ret["refunds"][0]["amount_cents"], 1250);
    assert_eq!(ret["refunds"][0]["return_id"], return_id);

    let order = app.get(&format!("/api/v1/orders/{id}"), Some(&token)).await;
    assert_eq!(order.body["status"], "partially_returned");
    assert_eq!(order.body["lines"][0]["returned_quantity"], 1);
    assert_eq!(level(&app, a), (8, 0), "restocked");
    assert_eq!(ledger_sum(&app, a), 8);
    assert_eq!(
        movements(&app, a).last().unwrap(),
        &("return".to_owned(), 1, Some(format!("return:{return_id}")))
    );

    // The rest, without restocking Beta (damaged): the order is returned in full.
    let res = return_with(
        &app,
        &staff,
        id,
        return_body(&[(a, 2), (b, 1)], Some(false)),
    )
    .await;
    res.expect(201);
    assert_eq!(res.body["refund_cents"], 2 * 1250 + 999);
    assert_eq!(res.body["restock"], false);
    assert_eq!(status_of(&app, &token, id).await, "returned");
    assert_eq!(level(&app, a), (8, 0), "not restocked");
    assert_eq!(level(&app, b), (9, 0));
    assert_eq!(ledger_sum(&app, b), 9);

    // Everything paid has been refunded, once.
    let refunds = refunds_of(&app, &token, id).await;
    let total: i64 = refunds
        .iter()
        .map(|r| r["amount_cents"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 3 * 1250 + 999);
    let returns = app
        .get(&format!("/api/v1/orders/{id}/returns"), Some(&token))
        .await;
    returns.expect(200);
    assert_eq!(returns.body.as_array().unwrap().len(), 2);

    // A returned order takes no more returns.
    let p = return_with(&app, &staff, id, return_body(&[(a, 1)], None)).await;
    assert_eq!(p.problem(409)["current_status"], "returned");
    let events = app
        .get(&format!("/api/v1/orders/{id}/events"), Some(&staff))
        .await;
    let to: Vec<&str> = events
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to_status"].as_str().unwrap())
        .collect();
    assert_eq!(
        to,
        [
            "pending_payment",
            "paid",
            "fulfilled",
            "partially_returned",
            "returned"
        ]
    );
}

#[tokio::test]
async fn invalid_returns_name_the_problem_and_write_nothing() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let (_, _, token) = customer(&app);
    let a = book(&app, &staff, 1, "Alpha", 1000).await;
    let b = book(&app, &staff, 2, "Beta", 1000).await;
    receive(&app, &staff, &[(a, 10), (b, 10)]).await;
    let id = fulfilled_order(&app, &token, &staff, &[(a, 2)]).await;
    let before = (app.count("returns"), app.count("refunds"), level(&app, a));

    let p = return_with(&app, &staff, id, return_body(&[(a, 3)], None)).await;
    assert!(p.problem(409)["detail"]
        .as_str()
        .unwrap()
        .contains("2 can still be returned"));
    return_with(&app, &staff, id, return_body(&[(b, 1)], None))
        .await
        .invalid_field("lines[0].book_id");
    return_with(&app, &staff, id, return_body(&[(a, 1), (a, 1)], None))
        .await
        .invalid_field("lines[1].book_id");
    return_with(&app, &staff, id, return_body(&[(a, 0)], None))
        .await
        .invalid_field("lines[0].quantity");
    return_with(&app, &staff, id, json!({"lines": [], "reason": "x"}))
        .await
        .invalid_field("lines");
    return_with(
        &app,
        &staff,
        id,
        json!({"lines": [{"book_id": a, "quantity": 1}], "reason": "  "}),
    )
    .await
    .invalid_field("reason");
    return_with(
        &app,
        &staff,
        id,
        json!({"lines": [{"book_id": a, "quantity": 1}]}),
    )
    .await
    .invalid_field("reason");
    app.post(
        &format!("/api/v1/orders/{id}/returns"),
        None,
        return_body(&[(a, 1)], None),
    )
    .await
    .problem(401);
    return_with(&app, &staff, 999_999, return_body(&[(a, 1)], None))
        .await
        .problem(404);
    // An unpaid order has nothing to return.
    let unpaid = place(&app, &token, &[(a, 1)]).await;
    let p = return_with(&app, &staff, unpaid, return_body(&[(a, 1)], None)).await;
    assert_eq!(p.problem(409)["current_status"], "pending_payment");

    assert_eq!(
        (app.count("returns"), app.count("refunds"), level(&app, a)),
        (before.0, before.1, (before.2 .0, before.2 .1 + 1))
    );
}

#[tokio::test]
async fn customers_request_returns_that_staff_receive_or_reject() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let (user_id, _, token) = customer(&app);
    let a = book(&app, &staff, 1, "Alpha", 1000).await;
    receive(&app, &staff, &[(a, 10)]).await;
    let id = fulfilled_order(&app, &token, &staff, &[(a, 3)]).await;

    // Customers do not decide restocking.
    return_with(&app, &token, id, return_body(&[(a, 1)], Some(true)))
        .await
        .invalid_field("restock");
    let res = return_with(&app, &token, id, return_body(&[(a, 2)], None)).await;
    res.expect(201);
    let requested = res.body["id"].as_i64().unwrap();
    assert_eq!(res.body["status"], "requested");
    assert_eq!(res.body["requested_by"], user_id);
    assert_eq!(res.body["refunds"], json!([]));
    assert_eq!(level(&app, a), (7, 0), "nothing moves on a request");
    assert_eq!(status_of(&app, &token, id).await, "fulfilled");
    // Requests count against what can still be returned.
    return_with(&app, &token, id, return_body(&[(a, 2)], None))
        .await
        .problem(409);
    // Another customer sees nothing; customers cannot receive.
    let (_, _, other) = customer(&app);
    return_with(&app, &other, id, return_body(&[(a, 1)], None))
        .await
        .problem(404);
    app.post(
        &format!("/api/v1/orders/{id}/returns/{requested}/receive"),
        Some(&token),
        json!({}),
    )
    .await
    .problem(403);

    // Staff receive it, deciding not to restock.
    let res = app
        .post(
            &format!("/api/v1/orders/{id}/returns/{requested}/receive"),
            Some(&staff),
            json!({"restock": false, "note": "covers torn"}),
        )
        .await;
    res.expect(200);
    assert_eq!(res.body["status"], "received");
    assert_eq!(res.body["restock"], false);
    assert_eq!(res.body["decision_note"], "covers torn");
    assert_eq!(res.body["refunds"][0]["amount_cents"], 2000);
    assert_eq!(level(&app, a), (7, 0));
    assert_eq!(status_of(&app, &token, id).await, "partially_returned");
    app.post(
        &format!("/api/v1/orders/{id}/returns/{requested}/receive"),
        Some(&staff),
        json!({}),
    )
    .await
    .problem(409);

    // A second request, rejected: nothing moves.
    let res = return_with(&app, &token, id, return_body(&[(a, 1)], None)).await;
    let second = res.body["id"].as_i64().unwrap();
    let res = app
        .send(
            reqwest::Method::POST,
            &format!("/api/v1/orders/{id}/returns/{second}/reject"),
            Some(&staff),
            None,
        )
        .await;
    res.expect(200);
    assert_eq!(res.body["status"], "rejected");
    assert_eq!(refunds_of(&app, &staff, id).await.len(), 1);
    assert_eq!(status_of(&app, &token, id).await, "partially_returned");
    app.post(
        &format!("/api/v1/orders/{id}/returns/{second}/reject"),
        Some(&staff),
        json!({}),
    )
    .await
    .problem(409);
}

#[tokio::test]
async fn the_return_window_closes_for_customers_but_not_for_staff() {
    let app = TestApp::spawn_with(|s| s.return_window = std::time::Duration::ZERO).await;
    let staff = app.staff();
    let (_, _, token) = customer(&app);
    let a = book(&app, &staff, 1, "Alpha", 1000).await;
    receive(&app, &staff, &[(a, 10)]).await;
    let id = fulfilled_order(&app, &token, &staff, &[(a, 1)]).await;
    let p = return_with(&app, &token, id, return_body(&[(a, 1)], None)).await;
    assert!(p.problem(409)["detail"]
        .as_str()
        .unwrap()
        .contains("return window"));
    return_with(&app, &staff, id, return_body(&[(a, 1)], None))
        .await
        .expect(201);
}

#[tokio::test]
async fn racing_returns_never_take_back_more_than_was_sold() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let (_, _, token) = customer(&app);
    let a = book(&app, &staff, 1, "Alpha", 700).await;
    receive(&app, &staff, &[(a, 10)]).await;
    let id = fulfilled_order(&app, &token, &staff, &[(a, 5)]).await;

    let attempts = 16;
    let results = futures_util::future::join_all(
        (0..attempts).map(|_| return_with(&app, &staff, id, return_body(&[(a, 1)], None))),
    )
    .await;
    let ok = results.iter().filter(|r| r.status.as_u16() == 201).count();
    for r in &results {
        assert!(
            [201, 409].contains(&r.status.as_u16()),
            "only successes and conflicts: {}",
            r.text
        );
    }
    assert_eq!(ok, 5, "exactly the copies sold come back");
    assert_eq!(status_of(&app, &token, id).await, "returned");
    assert_eq!(level(&app, a), (10, 0));
    assert_eq!(ledger_sum(&app, a), 10);
    let refunds = refunds_of(&app, &staff, id).await;
    let total: i64 = refunds
        .iter()
        .map(|r| r["amount_cents"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 5 * 700, "refunded exactly what was paid");
}

#[tokio::test]
async fn a_retried_return_with_one_key_returns_once() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let (_, _, token) = customer(&app);
    let a = book(&app, &staff, 1, "Alpha", 700).await;
    receive(&app, &staff, &[(a, 10)]).await;
    let id = fulfilled_order(&app, &token, &staff, &[(a, 3)]).await;
    let send = |body: Value| {
        let req = app
            .client
            .post(app.url(&format!("/api/v1/orders/{id}/returns")))
            .bearer_auth(&staff)
            .header("Idempotency-Key", "return-1")
            .json(&body);
        TestApp::read(req)
    };
    let results =
        futures_util::future::join_all((0..8).map(|_| send(return_body(&[(a, 1)], None)))).await;
    let created: Vec<&Res> = results
        .iter()
        .filter(|r| r.status.as_u16() == 201)
        .collect();
    assert!(!created.is_empty());
    for r in &results {
        assert!([201, 409].contains(&r.status.as_u16()), "{}", r.text);
    }
    let ids: std::collections::HashSet<i64> = created
        .iter()
        .map(|r| r.body["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "one return for one key");
    assert_eq!(app.count("returns"), 1);
    assert_eq!(level(&app, a), (8, 0));
    // The same key with another body is refused.
    send(return_body(&[(a, 2)], None)).await.problem(422);
}

/// A provider whose refunds fail while `down` is set, and which counts refund calls.
#[derive(Default)]
struct FlakyProvider {
    down: std::sync::atomic::AtomicBool,
    refund_calls: AtomicUsize,
    inner: TestProvider,
}

impl PaymentProvider for FlakyProvider {
    fn charge(
        &self,
        amount: i64,
        currency: &str,
        token: &str,
        key: &str,
    ) -> Result<ProviderCharge, Decline> {
        self.inner.charge(amount, currency, token, key)
    }

    fn lookup(&self, key: &str) -> Result<ChargeLookup, Decline> {
        self.inner.lookup(key)
    }

    fn refund(&self, reference: &str, amount: i64, key: &str) -> Result<String, Decline> {
        self.refund_calls.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(Decline::Unavailable("connection refused".into()));
        }
        self.inner.refund(reference, amount, key)
    }
}

#[tokio::test]
async fn a_refund_the_provider_cannot_take_now_is_retried_by_the_sweep() {
    let provider = Arc::new(FlakyProvider::default());
    let app = TestApp::spawn_with_provider(|_| {}, provider.clone()).await;
    let staff = app.staff();
    let (_, _, token) = customer(&app);
    let a = book(&app, &staff, 1, "Alpha", 1500).await;
    receive(&app, &staff, &[(a, 5)]).await;
    let id = place(&app, &token, &[(a, 1)]).await;
    card(&app, &token, id, "tok_visa").await.expect(201);

    provider.down.store(true, Ordering::SeqCst);
    // The cancellation commits; the refund waits for the provider.
    cancel_order(&app, &staff, id).await.expect(200);
    let r = &refunds_of(&app, &staff, id).await[0];
    assert_eq!(r["status"], "pending");
    assert_eq!(r["attempts"], 1);
    assert_eq!(provider.refund_calls.load(Ordering::SeqCst), 1);

    // Not due yet (backoff): a sweep leaves it alone.
    let sweep = |app: &TestApp| {
        let mut conn = app.conn();
        bookstore::maintenance::sweep(&mut conn, provider.as_ref(), Duration::from_secs(30))
            .unwrap()
    };
    assert_eq!(sweep(&app).refund_attempts, 0);
    provider.down.store(false, Ordering::SeqCst);
    {
        let mut conn = app.conn();
        diesel::update(refunds::table)
            .set(refunds::next_attempt_at.eq(chrono::Utc::now().naive_utc()))
            .execute(&mut *conn)
            .unwrap();
    }
    assert_eq!(sweep(&app).refund_attempts, 1);
    let r = &refunds_of(&app, &staff, id).await[0];
    assert_eq!(r["status"], "succeeded");
    assert_eq!(r["attempts"], 2);
    assert_eq!(provider.refund_calls.load(Ordering::SeqCst), 2);
    // Done: later sweeps make no more calls.
    assert_eq!(sweep(&app).refund_attempts, 0);
    assert_eq!(provider.refund_calls.load(Ordering::SeqCst), 2);
}

/// Cancels `id` as `token` with no body.
async fn cancel_order(app: &TestApp, token: &str, id: i64) -> Res {
    app.post(
        &format!("/api/v1/orders/{id}/cancel"),
        Some(token),
        json!({}),
    )
    .await
}
