//! Orders over HTTP: placing orders (reservation, snapshots, validation, shortages),
//! `Idempotency-Key`, visibility, the status history and cancellation. Proves core invariants 1,
//! 3, 4 and 5 on either backend, including under concurrency.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

mod catalog_support;
use catalog_support::*;

mod orders_support;
use orders_support::*;

use reqwest::Method;
use serde_json::Value;

fn lines(pairs: &[(i64, i64)]) -> Value {
    Value::Array(
        pairs
            .iter()
            .map(|(b, q)| json!({"book_id": b, "quantity": q}))
            .collect(),
    )
}

async fn place(app: &TestApp, token: &str, body: Value) -> Res {
    app.post("/api/v1/orders", Some(token), body).await
}

async fn place_with_key(app: &TestApp, token: &str, key: &str, body: Value) -> Res {
    let req = app
        .client
        .post(app.url("/api/v1/orders"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(&body);
    TestApp::read(req).await
}

async fn cancel(app: &TestApp, token: &str, id: i64) -> Res {
    app.post(
        &format!("/api/v1/orders/{id}/cancel"),
        Some(token),
        json!({"reason": "changed my mind"}),
    )
    .await
}

#[tokio::test]
async fn an_order_reserves_stock_and_snapshots_its_lines() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let (user_id, customer_id, token) = customer(&app);
    let a = book(&app, &staff, 1, "Alpha", 1250).await;
    let b = book(&app, &staff, 2, "Beta", 999).await;
    receive(&app, &staff, &[(a, 10), (b, 5)]).await;

    let res = place(
        &app,
        &token,
        json!({
            "lines": lines(&[(b, 3), (a, 2)]),
            "shipping_address": {"name": "Ursula Reader", "line1": "1 Orchard Lane",
                                 "city": "Portland", "postal_code": "97201", "country": "US"},
            "notes": "Gift wrap"
        }),
    )
    .await;
    res.expect(201);
    let order = res.body.clone();
    let id = order["id"].as_i64().unwrap();
    assert_eq!(
        res.header("location"),
        Some(format!("/api/v1/orders/{id}").as_str())
    );
    assert_eq!(order["status"], "pending_payment");
    assert_eq!(order["customer_id"], customer_id);
    assert_eq!(order["created_by"], user_id);
    assert_eq!(order["currency"], "USD");
    assert_eq!(order["notes"], "Gift wrap");
    assert_eq!(order["shipping_address"]["city"], "Portland");
    assert_eq!(order["shipping_address"]["line2"], Value::Null);
    assert_eq!(order["version"], 1);
    assert_eq!(
        order["lines"],
        json!([
            {"book_id": b, "title": "Beta", "isbn": isbn13(2), "unit_price_cents": 999,
             "quantity": 3, "line_total_cents": 2997, "returned_quantity": 0},
            {"book_id": a, "title": "Alpha", "isbn": isbn13(1), "unit_price_cents": 1250,
             "quantity": 2, "line_total_cents": 2500, "returned_quantity": 0},
        ])
    );
    // Invariant 3: totals are the sum of the lines.
    assert_eq!(order["subtotal_cents"], 5497);
    assert_eq!(order["total_cents"], 5497);
    let created =
        chrono::DateTime::parse_from_rfc3339(order["created_at"].as_str().unwrap()).unwrap();
    let expires =
        chrono::DateTime::parse_from_rfc3339(order["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!((expires - created).num_seconds(), 1800);

    // Reserved, not sold: on_hand and the ledger are untouched.
    assert_eq!(level(&app, a), (10, 2));
    assert_eq!(level(&app, b), (5, 3));
    assert_eq!(app.count("stock_movements"), 2);
    assert_eq!(ledger_sum(&app, a), 10);
    assert_eq!(app.count("order_lines"), 2);

    // The lines keep the price and title of the time of sale.
    patch_book(
        &app,
        &staff,
        a,
        json!({"list_price_cents": 5000, "title": "Alpha (2nd ed.)"}),
    )
    .await
    .expect(200);
    let again = app.get(&format!("/api/v1/orders/{id}"), Some(&token)).await;
    again.expect(200);
    assert_eq!(again.body, order);
    assert_eq!(again.header("etag"), Some("\"1\""));

    let events = app
        .get(&format!("/api/v1/orders/{id}/events"), Some(&token))
        .await;
    events.expect(200);
    let events = events.body.as_array().unwrap().clone();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["from_status"], Value::Null);
    assert_eq!(events[0]["to_status"], "pending_payment");
    assert_eq!(events[0]["actor_user_id"], user_id);
}

#[tokio::test]
async fn staff_order_for_a_customer_or_a_walk_in() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let (_, customer_id, _) = customer(&app);
    let a = book(&app, &staff, 1, "Alpha", 1000).await;
    receive(&app, &staff, &[(a, 4)]).await;
    let res = place(
        &app,
        &staff,
        json!({"lines": lines(&[(a, 1)]), "customer_id": customer_id}),
    )
    .await;
    res.expect(201);
    assert_eq!(res.body["customer_id"], customer_id);
    let res = place(&app, &staff, json!({"lines": lines(&[(a, 1)])})).await;
    res.expect(201);
    assert_eq!(res.body["customer_id"], Value::Null);
    assert_eq!(level(&app, a), (4, 2));
}

#[tokio::test]
async fn invalid_orders_name_the_field_and_write_nothing() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let (_, _, token) = customer(&app);
    let a = book(&app, &staff, 1, "Alpha", 1000).await;
    let archived = book(&app, &staff, 2, "Old", 1000).await;
    receive(&app, &staff, &[(a, 10), (archived, 10)]).await;
    patch_book(&app, &staff, archived, json!({"status": "archived"}))
        .await
        .expect(200);

    let cases: Vec<(Value, &str)> = vec![
        (json!({"lines": []}), "lines"),
        (
            json!({"lines": (0..101).map(|i| json!({"book_id": a + i, "quantity": 1})).collect::<Vec<_>>()}),
            "lines",
        ),
        (json!({"lines": lines(&[(a, 0)])}), "lines[0].quantity"),
        (json!({"lines": lines(&[(a, 1001)])}), "lines[0].quantity"),
        (
            json!({"lines": lines(&[(a, 1), (999_999, 1)])}),
            "lines[1].book_id",
        ),
        (
            json!({"lines": lines(&[(archived, 1)])}),
            "lines[0].book_id",
        ),
        (
            json!({"lines": lines(&[(a, 1), (a, 2)])}),
            "lines[1].book_id",
        ),
        (json!({"lines": [{"book_id": a}]}), "lines[0].quantity"),
        (json!({}), "lines"),
        (
            json!({"lines": lines(&[(a, 1)]), "shipping_address": {"name": "X", "line1": "Y",
                   "city": "Z", "postal_code": "1", "country": "USA"}}),
            "shipping_address.country",
        ),
    ];
    for (body, field) in cases {
        place(&app, &token, body).await.invalid_field(field);
    }
    // Unknown fields are refused.
    place(
        &app,
        &token,
        json!({"lines": lines(&[(a, 1)]), "coupon": "X"}),
    )
    .await
    .problem(422);
    // Staff naming an unknown customer.
    place(
        &app,
        &staff,
        json!({"lines": lines(&[(a, 1)]), "customer_id": 999_999}),
    )
    .await
    .invalid_field("customer_id");
    // A bad Idempotency-Key.
    for key in ["", &"k".repeat(256), "has space"] {
        place_with_key(&app, &token, key, json!({"lines": lines(&[(a, 1)])}))
            .await
            .invalid_field("Idempotency-Key");
    }
    assert_eq!(app.count("orders"), 0);
    assert_eq!(app.count("idempotency_keys"), 0);
    assert_eq!(level(&app, a), (10, 0));
}

#[tokio::test]
async fn ordering_needs_a_token_and_customers_order_for_themselves() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let (_, own, token) = customer(&app);
    let (_, other, _) = customer(&app);
    let a = book(&app, &staff, 1, "Alpha", 1000).await;
    receive(&app, &staff, &[(a, 10)]).await;
    let body = json!({"lines": lines(&[(a, 1)])});
    app.post("/api/v1/orders", None, body.clone())
        .await
        .problem(401);
    app.get("/api/v1/orders", None).await.problem(401);
    app.get("/api/v1/orders/1", None).await.problem(401);
    place(
        &app,
        &token,
        json!({"lines": lines(&[(a, 1)]), "customer_id": other}),
    )
    .await
    .problem(403);
    assert_eq!(app.count("orders"), 0);
    place(
        &app,
        &token,
        json!({"lines": lines(&[(a, 1)]), "customer_id": own}),
    )
    .await
    .expect(201);
}

#[tokio::test]
async fn a_shortage_lists_every_short_line_and_reserves_nothing() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let (_, _, token) = customer(&app);
    let a = book(&app, &staff, 1, "Alpha", 1000).await;
    let b = book(&app, &staff, 2, "Beta", 1000).await;
    let c = book(&app, &staff, 3, "Gamma", 1000).await;
    receive(&app, &staff, &[(a, 5), (b, 1)]).await;

    let res = place(
        &app,
        &token,
        json!({"lines": lines(&[(c, 1), (a, 3), (b, 2)])}),
    )
    .await;
    let problem = res.problem(409);
    assert_eq!(
        problem["type"],
        "https://bookstore.example/problems/insufficient-stock"
    );
    assert_eq!(
        problem["shortages"],
        json!([
            {"book_id": b, "requested": 2, "available": 1},
            {"book_id": c, "requested": 1, "available": 0},
        ])
    );
    assert_eq!(level(&app, a), (5, 0));
    assert_eq!(level(&app, b), (1, 0));
    assert_eq!(level(&app, c), (0, 0));
    assert_eq!(app.count("orders"), 0);
    assert_eq!(app.count("order_events"), 0);
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_response() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let (_, _, token) = customer(&app);
    let (_, _, other_token) = customer(&app);
    let a = book(&app, &staff, 1, "Alpha", 1000).await;
    receive(&app, &staff, &[(a, 10)]).await;
    let body = json!({"lines": lines(&[(a, 2)]), "notes": "n"});

    let first = place_with_key(&app, &token, "key-1", body.clone()).await;
    first.expect(201);
    assert_eq!(first.header("idempotent-replayed"), None);
    // Same body with other key order: a replay.
    let second = place_with_key(
        &app,
        &token,
        "key-1",
        json!({"notes": "n", "lines": lines(&[(a, 2)])}),
    )
    .await;
    second.expect(201);
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(second.body, first.body);
    assert_eq!(second.header("location"), first.header("location"));
    assert_eq!(app.count("orders"), 1);
    assert_eq!(level(&app, a), (10, 2));

    // Same key, other body: 422.
    place_with_key(&app, &token, "key-1", json!({"lines": lines(&[(a, 3)])}))
        .await
        .invalid_field("Idempotency-Key");
    // Keys are per caller: another user's identical key is a new request.
    place_with_key(&app, &other_token, "key-1", body.clone())
        .await
        .expect(201);
    assert_eq!(app.count("orders"), 2);

    // A 4xx outcome is replayed too, even once the stock has arrived.
    let short = json!({"lines": lines(&[(a, 50)])});
    let refused = place_with_key(&app, &token, "key-2", short.clone()).await;
    refused.problem(409);
    receive(&app, &staff, &[(a, 100)]).await;
    let replayed = place_with_key(&app, &token, "key-2", short).await;
    replayed.problem(409);
    assert_eq!(replayed.header("idempotent-replayed"), Some("true"));
    assert_eq!(replayed.body, refused.body);
    assert_eq!(app.count("orders"), 2);
}

#[tokio::test]
async fn concurrent_retries_of_one_key_create_one_order() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let (_, _, token) = customer(&app);
    let a = book(&app, &staff, 1, "Alpha", 1000).await;
    receive(&app, &staff, &[(a, 100)]).await;
    let body = json!({"lines": lines(&[(a, 3)])});
    let attempts = (0..20).map(|_| place_with_key(&app, &token, "race", body.clone()));
    let results = futures_util::future::join_all(attempts).await;
    let mut ids = std::collections::HashSet::new();
    for res in &results {
        match res.status.as_u16() {
            201 => {
                ids.insert(res.body["id"].as_i64().unwrap());
            }
            409 => {
                let p = res.problem(409);
                assert!(p["detail"].as_str().unwrap().contains("in progress"), "{p}");
            }
            other => panic!("unexpected {other}: {}", res.text),
        }
    }
    assert_eq!(ids.len(), 1, "one order id across all 201s");
    assert_eq!(app.count("orders"), 1);
    assert_eq!(app.count("idempotency_keys"), 1);
    assert_eq!(level(&app, a), (100, 3));
}

#[tokio::test]
async fn sixty_four_clients_racing_for_one_book_never_oversell() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let tokens: Vec<String> = (0..4).map(|_| customer(&app).2).collect();
    let a = book(&app, &staff, 1, "Hot", 1000).await;
    receive(&app, &staff, &[(a, 100)]).await;
    let attempts = (0..64).map(|i| {
        place(
            &app,
            &tokens[i % tokens.len()],
            json!({"lines": lines(&[(a, 2)])}),
        )
    });
    let results = futures_util::future::join_all(attempts).await;
    let mut statuses: Vec<u16> = results.iter().map(|r| r.status.as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [vec![201; 50], vec![409; 14]].concat());
    for res in results.iter().filter(|r| r.status == 409) {
        let p = res.problem(409);
        assert_eq!(p["shortages"][0]["book_id"], a);
        assert_eq!(p["shortages"][0]["available"], 0);
    }
    assert_eq!(level(&app, a), (100, 100));
    assert_eq!(ledger_sum(&app, a), 100);
    assert_eq!(app.count("orders"), 50);
}

#[tokio::test]
async fn customers_see_only_their_own_orders() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let (_, alice_id, alice) = customer(&app);
    let (_, bob_id, bob) = customer(&app);
    let a = book(&app, &staff, 1, "Alpha", 1000).await;
    receive(&app, &staff, &[(a, 100)]).await;
    let mut alice_orders = Vec::new();
    for q in [1, 3] {
        let res = place(&app, &alice, json!({"lines": lines(&[(a, q)])})).await;
        alice_orders.push(res.body["id"].as_i64().unwrap());
    }
    let bob_order = place(&app, &bob, json!({"lines": lines(&[(a, 2)])}))
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    let walk_in = place(&app, &staff, json!({"lines": lines(&[(a, 5)])}))
        .await
        .body["id"]
        .as_i64()
        .unwrap();

    // Bob cannot see Alice's order, its events, or cancel it.
    let path = format!("/api/v1/orders/{}", alice_orders[0]);
    app.get(&path, Some(&bob)).await.problem(404);
    app.get(&format!("{path}/events"), Some(&bob))
        .await
        .problem(404);
    cancel(&app, &bob, alice_orders[0]).await.problem(404);
    app.get(&format!("/api/v1/orders/{walk_in}"), Some(&bob))
        .await
        .problem(404);
    app.get(&path, Some(&alice)).await.expect(200);
    app.get(&path, Some(&staff)).await.expect(200);

    let list = app.get("/api/v1/orders", Some(&alice)).await;
    list.expect(200);
    assert_eq!(list.body["total"], 2);
    assert_eq!(
        ids(&list.body),
        vec![alice_orders[1], alice_orders[0]],
        "newest first"
    );
    assert_eq!(list.body["items"][0]["lines"][0]["quantity"], 3);
    // Filters apply within the customer's own orders.
    let list = app
        .get(
            &format!("/api/v1/orders?customer_id={bob_id}"),
            Some(&alice),
        )
        .await;
    assert_eq!(list.body["total"], 0);
    let list = app.get("/api/v1/orders?sort=total", Some(&alice)).await;
    assert_eq!(ids(&list.body), alice_orders);

    // Staff see everything, with filters.
    let all = app.get("/api/v1/orders", Some(&staff)).await;
    assert_eq!(all.body["total"], 4);
    let by_customer = app
        .get(
            &format!("/api/v1/orders?customer_id={alice_id}"),
            Some(&staff),
        )
        .await;
    assert_eq!(by_customer.body["total"], 2);
    let by_total = app.get("/api/v1/orders?sort=-total", Some(&staff)).await;
    assert_eq!(
        ids(&by_total.body),
        vec![walk_in, alice_orders[1], bob_order, alice_orders[0]]
    );
    cancel(&app, &bob, bob_order).await.expect(200);
    let cancelled = app
        .get("/api/v1/orders?status=cancelled", Some(&staff))
        .await;
    assert_eq!(ids(&cancelled.body), vec![bob_order]);
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let ranged = app
        .get(
            &format!("/api/v1/orders?from={today}&to={today}&per_page=2"),
            Some(&staff),
        )
        .await;
    assert_eq!(ranged.body["total"], 4);
    assert_eq!(ranged.body["items"].as_array().unwrap().len(), 2);
    let future = app
        .get("/api/v1/orders?from=2999-01-01", Some(&staff))
        .await;
    assert_eq!(future.body["total"], 0);
    app.get("/api/v1/orders?status=lost", Some(&staff))
        .await
        .invalid_field("status");
    app.get("/api/v1/orders?sort=title", Some(&staff))
        .await
        .invalid_field("sort");
    app.get("/api/v1/orders?from=yesterday", Some(&staff))
        .await
        .invalid_field("from");
    app.get("/api/v1/orders/999999", Some(&staff))
        .await
        .problem(404);
}

#[tokio::test]
async fn concurrent_cancels_release_the_reservation_exactly_once() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let (user_id, _, token) = customer(&app);
    let a = book(&app, &staff, 1, "Alpha", 1000).await;
    let b = book(&app, &staff, 2, "Beta", 1000).await;
    receive(&app, &staff, &[(a, 10), (b, 10)]).await;
    let id = place(&app, &token, json!({"lines": lines(&[(a, 4), (b, 1)])}))
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    // A second order keeps a reservation of its own, so an over-release would show.
    place(&app, &staff, json!({"lines": lines(&[(a, 3)])}))
        .await
        .expect(201);
    assert_eq!(level(&app, a), (10, 7));

    let attempts = (0..16).map(|i| cancel(&app, if i % 2 == 0 { &token } else { &staff }, id));
    let results = futures_util::future::join_all(attempts).await;
    let mut statuses: Vec<u16> = results.iter().map(|r| r.status.as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [vec![200; 1], vec![409; 15]].concat());
    for res in results.iter().filter(|r| r.status == 409) {
        let p = res.problem(409);
        assert_eq!(p["current_status"], "cancelled");
        assert_eq!(p["allowed_actions"], json!([]));
    }
    let ok = results.iter().find(|r| r.status == 200).unwrap();
    assert_eq!(ok.body["status"], "cancelled");
    assert_eq!(ok.body["version"], 2);
    assert_eq!(level(&app, a), (10, 3));
    assert_eq!(level(&app, b), (10, 0));
    assert_eq!(ledger_sum(&app, a), 10);

    let events = app
        .get(&format!("/api/v1/orders/{id}/events"), Some(&token))
        .await;
    let events = events.body.as_array().unwrap().clone();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1]["from_status"], "pending_payment");
    assert_eq!(events[1]["to_status"], "cancelled");
    assert_eq!(events[1]["note"], "changed my mind");
    assert!(events[1]["actor_user_id"].is_i64());
    assert_eq!(events[0]["actor_user_id"], user_id);
}

#[tokio::test]
async fn an_illegal_transition_names_the_state_and_the_allowed_actions() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let (_, _, token) = customer(&app);
    let a = book(&app, &staff, 1, "Alpha", 1000).await;
    receive(&app, &staff, &[(a, 10)]).await;
    let id = place(&app, &token, json!({"lines": lines(&[(a, 1)])}))
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    // A fulfilled order cannot be cancelled (only returned); a paid one only by staff.
    set_status(&app, id, "fulfilled");
    let res = cancel(&app, &staff, id).await;
    let p = res.problem(409);
    assert_eq!(
        p["type"],
        "https://bookstore.example/problems/illegal-transition"
    );
    assert_eq!(p["current_status"], "fulfilled");
    assert_eq!(
        p["allowed_actions"],
        json!(["complete", "return_part", "return_all"])
    );
    assert!(p["detail"].as_str().unwrap().contains("fulfilled"));
    set_status(&app, id, "paid");
    let p = cancel(&app, &token, id).await;
    assert_eq!(p.problem(409)["current_status"], "paid");
    assert_eq!(p.problem(409)["allowed_actions"], json!([]));
    assert_eq!(level(&app, a), (10, 1), "nothing released");

    // The body is optional; an invalid one is a 422.
    set_status(&app, id, "pending_payment");
    app.post(
        &format!("/api/v1/orders/{id}/cancel"),
        Some(&token),
        json!({"reason": 5}),
    )
    .await
    .invalid_field("reason");
    let res = app
        .send(
            Method::POST,
            &format!("/api/v1/orders/{id}/cancel"),
            Some(&token),
            None,
        )
        .await;
    res.expect(200);
    assert_eq!(level(&app, a), (10, 0));
}
