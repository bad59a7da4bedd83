//! Payments and fulfilment over HTTP: paying by card (the test provider), declines, cash and
//! bank transfers, methods enabled by config, `Idempotency-Key`, races between payments, and
//! fulfilment consuming the reservation exactly once with `sale` movements (core invariants 1,
//! 2, 4 and 5) on either backend.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

mod catalog_support;

mod orders_support;
use orders_support::*;

use bookstore::db::schema::stock_movements;
use diesel::prelude::*;
use serde_json::Value;

#[tokio::test]
async fn paying_by_card_marks_the_order_paid_and_records_the_payment() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let (user_id, _, token) = customer(&app);
    let a = book(&app, &staff, 1, "Alpha", 1250).await;
    receive(&app, &staff, &[(a, 10)]).await;
    let id = place(&app, &token, &[(a, 2)]).await;

    let res = card(&app, &token, id, "tok_visa").await;
    res.expect(201);
    assert_eq!(
        res.header("location"),
        Some(format!("/api/v1/orders/{id}/payments").as_str())
    );
    let payment = &res.body["payment"];
    assert_eq!(payment["method"], "card");
    assert_eq!(payment["status"], "succeeded");
    assert_eq!(payment["amount_cents"], 2500);
    assert_eq!(payment["order_id"], id);
    assert_eq!(payment["created_by"], user_id);
    assert_eq!(payment["failure_code"], Value::Null);
    assert!(payment["provider_reference"]
        .as_str()
        .unwrap()
        .starts_with("test_ch_"));
    assert_eq!(res.body["order"]["status"], "paid");
    assert_eq!(res.body["order"]["version"], 2);

    let listed = payments_of(&app, &token, id).await;
    assert_eq!(listed, vec![payment.clone()]);
    assert_eq!(app.count("payments"), 1);
    let events = app
        .get(&format!("/api/v1/orders/{id}/events"), Some(&token))
        .await;
    let events = events.body.as_array().unwrap().clone();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1]["from_status"], "pending_payment");
    assert_eq!(events[1]["to_status"], "paid");
    assert_eq!(events[1]["actor_user_id"], user_id);
    // Paid, not yet sold: still reserved.
    assert_eq!(level(&app, a), (10, 2));

    // Nothing is left to pay.
    let again = card(&app, &token, id, "tok_visa").await;
    assert_eq!(again.problem(409)["current_status"], "paid");
    assert_eq!(app.count("payments"), 1);

    // Another customer sees nothing of it.
    let (_, _, other) = customer(&app);
    app.get(&format!("/api/v1/orders/{id}/payments"), Some(&other))
        .await
        .problem(404);
    card(&app, &other, id, "tok_visa").await.problem(404);
    app.get(&format!("/api/v1/orders/{id}/payments"), None)
        .await
        .problem(401);
}

#[tokio::test]
async fn a_declined_card_is_402_and_leaves_the_order_payable() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let (_, _, token) = customer(&app);
    let a = book(&app, &staff, 1, "Alpha", 1000).await;
    receive(&app, &staff, &[(a, 10)]).await;
    let id = place(&app, &token, &[(a, 3)]).await;

    for (card_token, code) in [
        ("tok_declined", "card_declined"),
        ("tok_insufficient_funds", "insufficient_funds"),
    ] {
        let res = card(&app, &token, id, card_token).await;
        let p = res.problem(402);
        assert_eq!(p["code"], code);
        assert_eq!(
            p["type"],
            "https://bookstore.example/problems/payment-declined"
        );
        assert_eq!(status_of(&app, &token, id).await, "pending_payment");
        assert_eq!(level(&app, a), (10, 3));
        assert_eq!(ledger_sum(&app, a), 10);
    }
    let listed = payments_of(&app, &token, id).await;
    assert_eq!(listed.len(), 2);
    for (p, code) in listed.iter().zip(["card_declined", "insufficient_funds"]) {
        assert_eq!(p["status"], "failed");
        assert_eq!(p["failure_code"], code);
        assert_eq!(p["amount_cents"], 3000);
        assert_eq!(p["provider_reference"], Value::Null);
    }
    // Still payable.
    card(&app, &token, id, "tok_visa").await.expect(201);
    assert_eq!(status_of(&app, &token, id).await, "paid");
    assert_eq!(payments_of(&app, &token, id).await.len(), 3);
}

#[tokio::test]
async fn bad_methods_and_tokens_are_rejected() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let (_, _, token) = customer(&app);
    let a = book(&app, &staff, 1, "Alpha", 1000).await;
    receive(&app, &staff, &[(a, 10)]).await;
    let id = place(&app, &token, &[(a, 1)]).await;

    card(&app, &token, id, "tok_nonsense")
        .await
        .invalid_field("token");
    pay(&app, &token, id, json!({"method": "card"}))
        .await
        .invalid_field("token");
    pay(
        &app,
        &staff,
        id,
        json!({"method": "cash", "token": "tok_visa"}),
    )
    .await
    .invalid_field("token");
    pay(&app, &token, id, json!({"method": "cheque"}))
        .await
        .invalid_field("method");
    pay(
        &app,
        &token,
        id,
        json!({"method": "card", "token": "tok_visa", "x": 1}),
    )
    .await
    .expect(422);
    // Cash is taken at the counter by staff.
    pay(&app, &token, id, json!({"method": "cash"}))
        .await
        .problem(403);
    // Only the token the provider refused was an attempt: it is written before the provider is
    // called (so that no charge can go unrecorded), and ends failed.
    let attempts = app
        .get(&format!("/api/v1/orders/{id}/payments"), Some(&token))
        .await;
    let attempts = attempts.expect(200).body.as_array().unwrap().clone();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0]["status"], "failed");
    assert_eq!(attempts[0]["failure_code"], "invalid_token");
    assert_eq!(status_of(&app, &token, id).await, "pending_payment");

    // Staff take cash: paid at once.
    let res = pay(&app, &staff, id, json!({"method": "cash"})).await;
    res.expect(201);
    assert_eq!(res.body["payment"]["status"], "succeeded");
    assert_eq!(res.body["order"]["status"], "paid");
    assert_eq!(app.count("payments"), 2);
}

#[tokio::test]
async fn a_bank_transfer_holds_the_order_until_staff_confirm_it() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let (_, _, token) = customer(&app);
    let a = book(&app, &staff, 1, "Alpha", 1000).await;
    receive(&app, &staff, &[(a, 10)]).await;
    let id = place(&app, &token, &[(a, 2)]).await;

    // The transfer stays pending, and so does the order, its stock held for the transfer window.
    let res = pay(&app, &token, id, json!({"method": "bank_transfer"})).await;
    res.expect(201);
    let payment_id = res.body["payment"]["id"].as_i64().unwrap();
    assert_eq!(res.body["payment"]["status"], "pending");
    assert_eq!(res.body["payment"]["amount_cents"], 2000);
    assert_eq!(res.body["order"]["status"], "pending_payment");
    let expires: chrono::DateTime<chrono::Utc> = res.body["order"]["expires_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(expires > chrono::Utc::now() + chrono::Duration::days(6));

    // While it is pending the order takes no other payment.
    let p = card(&app, &token, id, "tok_visa").await;
    assert!(p.problem(409)["detail"]
        .as_str()
        .unwrap()
        .contains("awaiting confirmation"));
    pay(&app, &token, id, json!({"method": "bank_transfer"}))
        .await
        .problem(409);
    assert_eq!(app.count("payments"), 1);

    let confirm = format!("/api/v1/orders/{id}/payments/{payment_id}/confirm");
    app.post(&confirm, Some(&token), json!({}))
        .await
        .problem(403);
    app.post(
        &format!("/api/v1/orders/{id}/payments/999999/confirm"),
        Some(&staff),
        json!({}),
    )
    .await
    .problem(404);
    let res = app.post(&confirm, Some(&staff), json!({})).await;
    res.expect(200);
    assert_eq!(res.body["payment"]["status"], "succeeded");
    assert_eq!(res.body["order"]["status"], "paid");
    // Once only.
    app.post(&confirm, Some(&staff), json!({}))
        .await
        .problem(409);
    let reject = format!("/api/v1/orders/{id}/payments/{payment_id}/reject");
    app.post(&reject, Some(&staff), json!({}))
        .await
        .problem(409);
    assert_eq!(status_of(&app, &token, id).await, "paid");
    assert_eq!(level(&app, a), (10, 2));
}

#[tokio::test]
async fn a_rejected_bank_transfer_leaves_the_order_payable() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let (_, _, token) = customer(&app);
    let a = book(&app, &staff, 1, "Alpha", 1000).await;
    receive(&app, &staff, &[(a, 10)]).await;
    let id = place(&app, &token, &[(a, 1)]).await;
    let res = pay(&app, &token, id, json!({"method": "bank_transfer"})).await;
    let payment_id = res.body["payment"]["id"].as_i64().unwrap();
    let res = app
        .post(
            &format!("/api/v1/orders/{id}/payments/{payment_id}/reject"),
            Some(&staff),
            json!({}),
        )
        .await;
    res.expect(200);
    assert_eq!(res.body["payment"]["status"], "failed");
    assert_eq!(res.body["payment"]["failure_code"], "transfer_rejected");
    assert_eq!(res.body["order"]["status"], "pending_payment");
    let expires: chrono::DateTime<chrono::Utc> = res.body["order"]["expires_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(expires < chrono::Utc::now() + chrono::Duration::hours(1));
    card(&app, &token, id, "tok_visa").await.expect(201);
    assert_eq!(status_of(&app, &token, id).await, "paid");
}

#[tokio::test]
async fn a_counter_sale_is_paid_and_fulfilled_in_one_request() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let (_, _, token) = customer(&app);
    let a = book(&app, &staff, 1, "Alpha", 1000).await;
    let b = book(&app, &staff, 2, "Beta", 450).await;
    receive(&app, &staff, &[(a, 5), (b, 5)]).await;
    let sale = |payment: Value, fulfil: bool, pairs: &[(i64, i64)]| {
        let lines: Vec<Value> = pairs
            .iter()
            .map(|(b, q)| json!({"book_id": b, "quantity": q}))
            .collect();
        json!({"lines": lines, "payment": payment, "fulfil": fulfil})
    };

    let res = app
        .post(
            "/api/v1/orders",
            Some(&staff),
            sale(json!({"method": "cash"}), true, &[(a, 2), (b, 1)]),
        )
        .await;
    res.expect(201);
    let id = res.body["id"].as_i64().unwrap();
    assert_eq!(res.body["status"], "fulfilled");
    assert_eq!(res.body["customer_id"], Value::Null);
    assert_eq!(res.body["total_cents"], 2450);
    assert_eq!(level(&app, a), (3, 0), "consumed, not just reserved");
    assert_eq!(level(&app, b), (4, 0));
    assert_eq!(ledger_sum(&app, a), 3);
    let payments = payments_of(&app, &staff, id).await;
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["method"], "cash");
    assert_eq!(payments[0]["status"], "succeeded");
    assert_eq!(payments[0]["amount_cents"], 2450);
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
    assert_eq!(to, ["pending_payment", "paid", "fulfilled"]);

    // Paid without handing over: a reserved, paid order.
    let res = app
        .post(
            "/api/v1/orders",
            Some(&staff),
            sale(json!({"method": "cash"}), false, &[(a, 1)]),
        )
        .await;
    res.expect(201);
    assert_eq!(res.body["status"], "paid");
    assert_eq!(level(&app, a), (3, 1));

    let before = (app.count("orders"), app.count("payments"));
    // Customers do not make counter sales; fulfil needs the payment; only cash is taken.
    app.post(
        "/api/v1/orders",
        Some(&token),
        sale(json!({"method": "cash"}), true, &[(a, 1)]),
    )
    .await
    .problem(403);
    app.post(
        "/api/v1/orders",
        Some(&staff),
        json!({"lines": [{"book_id": a, "quantity": 1}], "fulfil": true}),
    )
    .await
    .invalid_field("fulfil");
    app.post(
        "/api/v1/orders",
        Some(&staff),
        sale(
            json!({"method": "card", "token": "tok_visa"}),
            true,
            &[(a, 1)],
        ),
    )
    .await
    .invalid_field("payment.method");
    // Short stock: nothing is written, nothing is paid.
    let p = app
        .post(
            "/api/v1/orders",
            Some(&staff),
            sale(json!({"method": "cash"}), true, &[(a, 3)]),
        )
        .await;
    assert_eq!(p.problem(409)["shortages"][0]["available"], 2);
    assert_eq!((app.count("orders"), app.count("payments")), before);
    assert_eq!(level(&app, a), (3, 1));
}

#[tokio::test]
async fn a_disabled_method_is_422() {
    let app = TestApp::spawn_with(|s| s.payment_methods = vec!["card".into()]).await;
    let staff = app.staff();
    let (_, _, token) = customer(&app);
    let a = book(&app, &staff, 1, "Alpha", 1000).await;
    receive(&app, &staff, &[(a, 10)]).await;
    let id = place(&app, &token, &[(a, 1)]).await;
    pay(&app, &token, id, json!({"method": "bank_transfer"}))
        .await
        .invalid_field("method");
    pay(&app, &staff, id, json!({"method": "cash"}))
        .await
        .invalid_field("method");
    assert_eq!(app.count("payments"), 0);
    card(&app, &token, id, "tok_visa").await.expect(201);
}

#[tokio::test]
async fn paying_a_cancelled_order_is_409_and_records_nothing() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let (_, _, token) = customer(&app);
    let a = book(&app, &staff, 1, "Alpha", 1000).await;
    receive(&app, &staff, &[(a, 10)]).await;
    let id = place(&app, &token, &[(a, 2)]).await;
    app.post(
        &format!("/api/v1/orders/{id}/cancel"),
        Some(&token),
        json!({}),
    )
    .await
    .expect(200);
    let res = card(&app, &token, id, "tok_visa").await;
    let p = res.problem(409);
    assert_eq!(p["current_status"], "cancelled");
    assert_eq!(p["allowed_actions"], json!([]));
    pay(&app, &staff, id, json!({"method": "cash"}))
        .await
        .problem(409);
    assert_eq!(app.count("payments"), 0);
    assert_eq!(level(&app, a), (10, 0));
}

#[tokio::test]
async fn a_retried_payment_with_one_key_pays_once() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let (_, _, token) = customer(&app);
    let a = book(&app, &staff, 1, "Alpha", 1000).await;
    receive(&app, &staff, &[(a, 10)]).await;
    let id = place(&app, &token, &[(a, 1)]).await;
    let body = json!({"method": "card", "token": "tok_visa"});

    let attempts = (0..8).map(|_| pay_with_key(&app, &token, id, "pay-1", body.clone()));
    let results = futures_util::future::join_all(attempts).await;
    let ok: Vec<&Res> = results.iter().filter(|r| r.status == 201).collect();
    assert!(!ok.is_empty());
    for r in &results {
        // A retry racing the first request may be told it is still in progress.
        assert!(r.status == 201 || r.status == 409, "{}", r.text);
    }
    for r in &ok {
        assert_eq!(r.body, ok[0].body);
    }
    let replay = pay_with_key(&app, &token, id, "pay-1", body.clone()).await;
    replay.expect(201);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.body, ok[0].body);
    assert_eq!(app.count("payments"), 1);

    // The same key with another body, or for another order, is a reuse.
    pay_with_key(
        &app,
        &token,
        id,
        "pay-1",
        json!({"method": "bank_transfer"}),
    )
    .await
    .invalid_field("Idempotency-Key");
    let other = place(&app, &token, &[(a, 1)]).await;
    pay_with_key(&app, &token, other, "pay-1", body.clone())
        .await
        .invalid_field("Idempotency-Key");
    assert_eq!(app.count("payments"), 1);

    // A declined attempt replays its 402 too.
    let declined = json!({"method": "card", "token": "tok_declined"});
    let first = pay_with_key(&app, &token, other, "pay-2", declined.clone()).await;
    assert_eq!(first.problem(402)["code"], "card_declined");
    let again = pay_with_key(&app, &token, other, "pay-2", declined).await;
    assert_eq!(again.problem(402)["code"], "card_declined");
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(app.count("payments"), 2);
}

#[tokio::test]
async fn concurrent_payments_of_one_order_succeed_once() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let (_, _, token) = customer(&app);
    let a = book(&app, &staff, 1, "Alpha", 1000).await;
    receive(&app, &staff, &[(a, 10)]).await;
    let id = place(&app, &token, &[(a, 2)]).await;

    let keys: Vec<String> = (0..10).map(|i| format!("race-{i}")).collect();
    let attempts = keys.iter().map(|key| {
        pay_with_key(
            &app,
            &token,
            id,
            key,
            json!({"method": "card", "token": "tok_visa"}),
        )
    });
    let results = futures_util::future::join_all(attempts).await;
    let mut statuses: Vec<u16> = results.iter().map(|r| r.status.as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [vec![201; 1], vec![409; 9]].concat());
    let listed = payments_of(&app, &token, id).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["status"], "succeeded");
    assert_eq!(listed[0]["amount_cents"], 2000);
    assert_eq!(status_of(&app, &token, id).await, "paid");
    assert_eq!(level(&app, a), (10, 2));
}

#[tokio::test]
async fn fulfilling_a_paid_order_consumes_its_reservation() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let (_, _, token) = customer(&app);
    let a = book(&app, &staff, 1, "Alpha", 1000).await;
    let b = book(&app, &staff, 2, "Beta", 500).await;
    receive(&app, &staff, &[(a, 10), (b, 5)]).await;
    let id = place(&app, &token, &[(a, 4), (b, 1)]).await;
    // Another order's reservation must survive.
    place(&app, &staff, &[(a, 3)]).await;
    assert_eq!(level(&app, a), (10, 7));

    // Not paid yet.
    let p = fulfil(&app, &staff, id).await;
    let p = p.problem(409);
    assert_eq!(p["current_status"], "pending_payment");
    assert_eq!(p["allowed_actions"], json!(["pay", "cancel"]));
    card(&app, &token, id, "tok_visa").await.expect(201);
    // Customers cannot fulfil.
    fulfil(&app, &token, id).await.problem(403);
    fulfil(&app, &staff, 999_999).await.problem(404);

    let res = fulfil(&app, &staff, id).await;
    res.expect(200);
    assert_eq!(res.body["status"], "fulfilled");
    assert_eq!(level(&app, a), (6, 3));
    assert_eq!(level(&app, b), (4, 0));
    assert_eq!(ledger_sum(&app, a), 6);
    assert_eq!(ledger_sum(&app, b), 4);
    let mut conn = app.conn();
    let sales: Vec<(i64, i64, Option<String>)> = stock_movements::table
        .filter(stock_movements::kind.eq("sale"))
        .order(stock_movements::book_id)
        .select((
            stock_movements::book_id,
            stock_movements::quantity,
            stock_movements::reference,
        ))
        .load(&mut *conn)
        .unwrap();
    drop(conn);
    let reference = Some(format!("order:{id}"));
    assert_eq!(
        sales,
        vec![(a, -4, reference.clone()), (b, -1, reference.clone())]
    );
    let events = app
        .get(&format!("/api/v1/orders/{id}/events"), Some(&token))
        .await;
    let last = events.body.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["from_status"], "paid");
    assert_eq!(last["to_status"], "fulfilled");

    // Once only.
    let again = fulfil(&app, &staff, id).await;
    assert_eq!(again.problem(409)["current_status"], "fulfilled");
    assert_eq!(level(&app, a), (6, 3));
}

#[tokio::test]
async fn concurrent_fulfils_consume_the_reservation_exactly_once() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let (_, _, token) = customer(&app);
    let a = book(&app, &staff, 1, "Alpha", 1000).await;
    receive(&app, &staff, &[(a, 10)]).await;
    let id = place(&app, &token, &[(a, 4)]).await;
    place(&app, &staff, &[(a, 3)]).await;
    card(&app, &token, id, "tok_visa").await.expect(201);

    let attempts = (0..16).map(|_| fulfil(&app, &staff, id));
    let results = futures_util::future::join_all(attempts).await;
    let mut statuses: Vec<u16> = results.iter().map(|r| r.status.as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [vec![200; 1], vec![409; 15]].concat());
    for res in results.iter().filter(|r| r.status == 409) {
        assert_eq!(res.problem(409)["current_status"], "fulfilled");
    }
    assert_eq!(level(&app, a), (6, 3));
    assert_eq!(ledger_sum(&app, a), 6);
    let mut conn = app.conn();
    let sales: i64 = stock_movements::table
        .filter(stock_movements::kind.eq("sale"))
        .count()
        .get_result(&mut *conn)
        .unwrap();
    assert_eq!(sales, 1);
}

#[tokio::test]
async fn staff_complete_a_fulfilled_order_which_can_still_be_returned() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let (_, _, token) = customer(&app);
    let a = book(&app, &staff, 1, "Alpha", 1000).await;
    receive(&app, &staff, &[(a, 10)]).await;
    let unpaid = place(&app, &token, &[(a, 1)]).await;
    let complete = |id: i64| format!("/api/v1/orders/{id}/complete");
    let p = app.post(&complete(unpaid), Some(&staff), json!({})).await;
    assert_eq!(p.problem(409)["current_status"], "pending_payment");
    let id = fulfilled_order(&app, &token, &staff, &[(a, 2)]).await;
    app.post(&complete(id), Some(&token), json!({}))
        .await
        .problem(403);
    app.post(&complete(id), None, json!({})).await.problem(401);
    app.post(&complete(999_999), Some(&staff), json!({}))
        .await
        .problem(404);
    let res = app.post(&complete(id), Some(&staff), json!({})).await;
    res.expect(200);
    assert_eq!(res.body["status"], "completed");
    app.post(&complete(id), Some(&staff), json!({}))
        .await
        .problem(409);
    app.post(
        &format!("/api/v1/orders/{id}/returns"),
        Some(&staff),
        json!({"lines": [{"book_id": a, "quantity": 2}], "reason": "unwanted gift"}),
    )
    .await
    .expect(201);
    assert_eq!(status_of(&app, &token, id).await, "returned");
    assert_eq!(level(&app, a), (10, 1));
}
