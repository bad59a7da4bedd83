//! The outbox on either backend (core invariant 6): the changes that announce themselves write
//! their events in their own transaction — orders through their life, stock changes and low-stock
//! alerts — only when an endpoint wants them, and a transaction that rolls back leaves none.
//! Delivery itself is tested in `webhooks.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

mod catalog_support;

mod orders_support;
use orders_support::*;

use bookstore::db::schema::{webhook_deliveries, webhook_endpoints, webhook_events};
use diesel::prelude::*;
use serde_json::{json, Value};

/// Registers an active endpoint for `types` straight in the database; returns its id.
fn endpoint(app: &TestApp, types: &str) -> i64 {
    let mut conn = app.conn();
    let at = bookstore::db::now();
    diesel::insert_into(webhook_endpoints::table)
        .values((
            webhook_endpoints::url.eq("http://127.0.0.1:9/hook"),
            webhook_endpoints::event_types.eq(types),
            webhook_endpoints::secret.eq("whsec_test"),
            webhook_endpoints::active.eq(true),
            webhook_endpoints::version.eq(1),
            webhook_endpoints::created_at.eq(at),
            webhook_endpoints::updated_at.eq(at),
        ))
        .returning(webhook_endpoints::id)
        .get_result(&mut *conn)
        .expect("endpoint")
}

/// Every event in the outbox, oldest first: (type, payload).
fn events(app: &TestApp) -> Vec<(String, Value)> {
    let mut conn = app.conn();
    let rows: Vec<(String, String)> = webhook_events::table
        .order((webhook_events::created_at, webhook_events::id))
        .select((webhook_events::event_type, webhook_events::payload))
        .load(&mut *conn)
        .expect("events");
    rows.into_iter()
        .map(|(t, p)| (t, serde_json::from_str(&p).expect("payload is JSON")))
        .collect()
}

fn types(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(t, _)| t.as_str()).collect()
}

#[tokio::test]
async fn an_order_announces_each_step_of_its_life() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let a = book(&app, &staff, 1, "Alpha", 1000).await;
    receive(&app, &staff, &[(a, 5)]).await;
    // Nothing is written while no endpoint listens.
    assert_eq!(app.count("webhook_events"), 0);

    let hook = endpoint(
        &app,
        "order.created,order.paid,order.fulfilled,order.cancelled,order.returned",
    );
    let (_, customer_id, shopper) = customer(&app);
    let id = place(&app, &shopper, &[(a, 2)]).await;
    card(&app, &shopper, id, "tok_visa").await.expect(201);
    fulfil(&app, &staff, id).await.expect(200);
    app.post(
        &format!("/api/v1/orders/{id}/returns"),
        Some(&staff),
        json!({"lines": [{"book_id": a, "quantity": 1}], "reason": "damaged"}),
    )
    .await
    .expect(201);
    let other = place(&app, &shopper, &[(a, 1)]).await;
    app.post(
        &format!("/api/v1/orders/{other}/cancel"),
        Some(&shopper),
        json!({}),
    )
    .await
    .expect(200);

    let all = events(&app);
    assert_eq!(
        types(&all),
        vec![
            "order.created",
            "order.paid",
            "order.fulfilled",
            "order.returned",
            "order.created",
            "order.cancelled"
        ]
    );
    // The delivered body: {id, type, created_at, data}.
    let (_, paid) = &all[1];
    assert!(paid["id"].is_string());
    assert!(paid["created_at"].is_string());
    assert_eq!(paid["type"], "order.paid");
    assert_eq!(
        paid["data"],
        json!({
            "order_id": id, "status": "paid", "previous_status": "pending_payment",
            "customer_id": customer_id, "currency": "USD", "total_cents": 2000,
            "note": "paid by card",
        })
    );
    assert_eq!(all[3].1["data"]["status"], "partially_returned");
    // One pending delivery per event to the one endpoint.
    let mut conn = app.conn();
    let deliveries: Vec<(i64, String)> = webhook_deliveries::table
        .select((webhook_deliveries::endpoint_id, webhook_deliveries::status))
        .load(&mut *conn)
        .expect("deliveries");
    assert_eq!(deliveries.len(), 6);
    assert!(deliveries.iter().all(|(e, s)| *e == hook && s == "pending"));
}

#[tokio::test]
async fn a_counter_sale_announces_creation_payment_and_fulfilment_together() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let a = book(&app, &staff, 1, "Alpha", 1000).await;
    receive(&app, &staff, &[(a, 5)]).await;
    endpoint(&app, "*");
    app.post(
        "/api/v1/orders",
        Some(&staff),
        json!({"lines": [{"book_id": a, "quantity": 1}], "payment": {"method": "cash"}, "fulfil": true}),
    )
    .await
    .expect(201);
    let all = events(&app);
    let order_events: Vec<&str> = types(&all)
        .into_iter()
        .filter(|t| t.starts_with("order."))
        .collect();
    assert_eq!(
        order_events,
        vec!["order.created", "order.paid", "order.fulfilled"]
    );
    // The reservation and the sale each changed the stock.
    let stock: Vec<&Value> = all
        .iter()
        .filter(|(t, _)| t == "inventory.stock_changed")
        .map(|(_, p)| &p["data"])
        .collect();
    assert_eq!(
        stock,
        vec![
            &json!({"book_id": a, "on_hand": 5, "reserved": 1, "available": 4,
                    "cause": "reservation", "quantity": -1, "reference": null}),
            &json!({"book_id": a, "on_hand": 4, "reserved": 0, "available": 4,
                    "cause": "sale", "quantity": -1, "reference": format!("order:{}", 1)}),
        ]
    );
}

#[tokio::test]
async fn stock_changes_and_low_stock_reach_only_the_endpoints_that_want_them() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let a = book(&app, &staff, 1, "Alpha", 1000).await;
    let low = endpoint(&app, "inventory.low_stock");
    let changed = endpoint(&app, "inventory.stock_changed");
    receive(&app, &staff, &[(a, 3)]).await;
    app.post(
        "/api/v1/inventory/adjustments",
        Some(&staff),
        json!({"book_id": a, "quantity": -3, "reason": "damaged"}),
    )
    .await
    .expect(201);
    let all = events(&app);
    assert_eq!(
        types(&all),
        vec![
            "inventory.stock_changed",
            "inventory.low_stock",
            "inventory.stock_changed"
        ]
    );
    assert_eq!(all[1].1["data"]["available"], 0);
    assert_eq!(all[1].1["data"]["reorder_point"], 0);
    assert_eq!(all[2].1["data"]["cause"], "adjustment");
    let mut conn = app.conn();
    let to_low: i64 = webhook_deliveries::table
        .filter(webhook_deliveries::endpoint_id.eq(low))
        .count()
        .get_result(&mut *conn)
        .unwrap();
    let to_changed: i64 = webhook_deliveries::table
        .filter(webhook_deliveries::endpoint_id.eq(changed))
        .count()
        .get_result(&mut *conn)
        .unwrap();
    assert_eq!((to_low, to_changed), (1, 2));
}

#[tokio::test]
async fn a_rolled_back_transaction_leaves_no_event() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let a = book(&app, &staff, 1, "Alpha", 1000).await;
    let b = book(&app, &staff, 2, "Beta", 1000).await;
    receive(&app, &staff, &[(a, 5), (b, 1)]).await;
    endpoint(&app, "*");
    let before = app.count("webhook_events");
    // The first line reserves (and writes its stock_changed event) before the second falls short:
    // the whole transaction rolls back, event included.
    let (_, _, shopper) = customer(&app);
    let res = app
        .post(
            "/api/v1/orders",
            Some(&shopper),
            json!({"lines": [{"book_id": a, "quantity": 1}, {"book_id": b, "quantity": 2}]}),
        )
        .await;
    res.problem(409);
    assert_eq!(level(&app, a), (5, 0));
    assert_eq!(app.count("webhook_events"), before);
    assert_eq!(app.count("webhook_deliveries"), before);
}
