//! Low-stock alerts on either backend: an alert opens when `available` drops to or below the
//! reorder point (whatever the cause), at most one per book even under concurrent sales, resolves
//! by itself when stock recovers, and can be acknowledged meanwhile.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

mod catalog_support;
use catalog_support::*;

mod orders_support;
use orders_support::*;

use bookstore::db::schema::{stock_alerts, stock_levels};
use diesel::prelude::*;
use futures_util::future::join_all;
use serde_json::{json, Value};

/// (status, available at opening) of every alert of a book, oldest first.
fn alerts_of(app: &TestApp, book_id: i64) -> Vec<(String, i64)> {
    let mut conn = app.conn();
    stock_alerts::table
        .filter(stock_alerts::book_id.eq(book_id))
        .order(stock_alerts::id)
        .select((stock_alerts::status, stock_alerts::available))
        .load(&mut *conn)
        .expect("alerts")
}

fn level_alert_id(app: &TestApp, book_id: i64) -> Option<i64> {
    let mut conn = app.conn();
    stock_levels::table
        .find(book_id)
        .select(stock_levels::alert_id)
        .first(&mut *conn)
        .expect("level")
}

async fn set_reorder_point(app: &TestApp, staff: &str, book_id: i64, point: i64) {
    let req = app
        .client
        .patch(app.url(&format!("/api/v1/inventory/{book_id}")))
        .bearer_auth(staff)
        .header("If-Match", "*")
        .json(&json!({"reorder_point": point, "reorder_quantity": 10}));
    TestApp::read(req).await.expect(200);
}

async fn adjust(app: &TestApp, staff: &str, book_id: i64, quantity: i64) {
    app.post(
        "/api/v1/inventory/adjustments",
        Some(staff),
        json!({"book_id": book_id, "quantity": quantity, "reason": "damaged"}),
    )
    .await
    .expect(201);
}

#[tokio::test]
async fn an_alert_opens_at_the_reorder_point_and_resolves_when_stock_recovers() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let a = book(&app, &staff, 1, "Alpha", 1000).await;
    receive(&app, &staff, &[(a, 10)]).await;
    set_reorder_point(&app, &staff, a, 4).await;
    assert!(alerts_of(&app, a).is_empty(), "10 available is above 4");

    // A reservation counts: available 10 → 5 (above), then 5 → 4 (at the point).
    let (_, _, shopper) = customer(&app);
    place(&app, &shopper, &[(a, 5)]).await;
    assert!(alerts_of(&app, a).is_empty());
    place(&app, &shopper, &[(a, 1)]).await;
    assert_eq!(alerts_of(&app, a), vec![("open".to_owned(), 4)]);

    // Dropping further keeps the one alert.
    adjust(&app, &staff, a, -2).await;
    assert_eq!(alerts_of(&app, a).len(), 1);

    let res = app
        .get("/api/v1/inventory/alerts?status=open", Some(&staff))
        .await;
    res.expect(200);
    assert_eq!(res.body["total"], 1);
    let alert = &res.body["items"][0];
    let id = alert["id"].as_i64().unwrap();
    assert!(alert["opened_at"].is_string());
    assert_eq!(
        without(alert, "opened_at"),
        json!({
            "id": id, "book_id": a, "title": "Alpha", "isbn": isbn13(1), "status": "open",
            "on_hand": 10, "reserved": 6, "available": 4, "reorder_point": 4,
            "acknowledged_at": null, "acknowledged_by": null, "resolved_at": null,
        })
    );
    assert_eq!(level_alert_id(&app, a), Some(id));

    // A receipt that lifts available above the point resolves it.
    receive(&app, &staff, &[(a, 3)]).await;
    assert_eq!(alerts_of(&app, a), vec![("resolved".to_owned(), 4)]);
    assert_eq!(level_alert_id(&app, a), None);
    let res = app
        .get(&format!("/api/v1/inventory/alerts/{id}"), Some(&staff))
        .await;
    assert_eq!(res.expect(200).body["status"], "resolved");
    assert!(res.body["resolved_at"].is_string());
    app.get("/api/v1/inventory/alerts?status=unresolved", Some(&staff))
        .await
        .expect(200);

    // Dropping again opens a second alert.
    adjust(&app, &staff, a, -2).await;
    let alerts = alerts_of(&app, a);
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[1], ("open".to_owned(), 3));
}

#[tokio::test]
async fn staff_acknowledge_an_alert_once_and_not_after_it_resolved() {
    let app = TestApp::spawn().await;
    let (staff_id, staff) = app.user(bookstore::auth::Role::Staff);
    let a = book(&app, &staff, 1, "Alpha", 1000).await;
    receive(&app, &staff, &[(a, 3)]).await;
    set_reorder_point(&app, &staff, a, 5).await; // raising the point opens it
    let res = app.get("/api/v1/inventory/alerts", Some(&staff)).await;
    let id = res.expect(200).body["items"][0]["id"].as_i64().unwrap();

    let res = app
        .post(
            &format!("/api/v1/inventory/alerts/{id}/acknowledge"),
            Some(&staff),
            json!({}),
        )
        .await;
    res.expect(200);
    assert_eq!(res.body["status"], "acknowledged");
    assert_eq!(res.body["acknowledged_by"], staff_id);
    let first_ack = res.body["acknowledged_at"].clone();
    // Again: unchanged.
    let res = app
        .post(
            &format!("/api/v1/inventory/alerts/{id}/acknowledge"),
            Some(&staff),
            json!({}),
        )
        .await;
    assert_eq!(res.expect(200).body["acknowledged_at"], first_ack);
    // Acknowledged alerts stay unresolved: lowering the point below available resolves it.
    let res = app
        .get("/api/v1/inventory/alerts?status=unresolved", Some(&staff))
        .await;
    assert_eq!(res.expect(200).body["total"], 1);
    set_reorder_point(&app, &staff, a, 2).await;
    assert_eq!(alerts_of(&app, a), vec![("resolved".to_owned(), 3)]);
    let res = app
        .post(
            &format!("/api/v1/inventory/alerts/{id}/acknowledge"),
            Some(&staff),
            json!({}),
        )
        .await;
    assert!(res.problem(409)["detail"]
        .as_str()
        .unwrap()
        .contains("resolved"));

    app.post(
        "/api/v1/inventory/alerts/999/acknowledge",
        Some(&staff),
        json!({}),
    )
    .await
    .problem(404);
    app.get("/api/v1/inventory/alerts?status=closed", Some(&staff))
        .await
        .invalid_field("status");
    let (_, _, shopper) = customer(&app);
    app.get("/api/v1/inventory/alerts", Some(&shopper))
        .await
        .problem(403);
    app.get("/api/v1/inventory/alerts", None).await.problem(401);
}

#[tokio::test]
async fn alerts_open_and_resolve_exactly_once_under_concurrent_sales() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let a = book(&app, &staff, 1, "Alpha", 1000).await;
    receive(&app, &staff, &[(a, 24)]).await;
    set_reorder_point(&app, &staff, a, 8).await;
    let shoppers: Vec<String> = (0..24).map(|_| customer(&app).2).collect();

    // 24 clients each reserve one copy at once: available crosses 8 once.
    let placed = join_all(shoppers.iter().map(|token| {
        app.post(
            "/api/v1/orders",
            Some(token),
            json!({"lines": [{"book_id": a, "quantity": 1}]}),
        )
    }))
    .await;
    let ids: Vec<i64> = placed
        .iter()
        .map(|res| res.expect(201).body["id"].as_i64().unwrap())
        .collect();
    assert_eq!(level(&app, a), (24, 24));
    assert_eq!(alerts_of(&app, a), vec![("open".to_owned(), 8)]);

    // Now they all cancel at once: available climbs back past 8 once.
    let cancelled = join_all(ids.iter().zip(&shoppers).map(|(id, token)| {
        let path = format!("/api/v1/orders/{id}/cancel");
        let app = &app;
        async move { app.post(&path, Some(token), json!({})).await }
    }))
    .await;
    for res in &cancelled {
        res.expect(200);
    }
    assert_eq!(level(&app, a), (24, 0));
    assert_eq!(alerts_of(&app, a), vec![("resolved".to_owned(), 8)]);
    assert_eq!(level_alert_id(&app, a), None);

    // Mixed: concurrent sales out and receipts in, ending below the point.
    let app = &app;
    let staff = &staff;
    let results = join_all(
        shoppers
            .iter()
            .take(20)
            .enumerate()
            .map(|(i, token)| async move {
                if i % 5 == 4 {
                    app.post(
                        "/api/v1/inventory/receipts",
                        Some(staff),
                        json!({"lines": [{"book_id": a, "quantity": 1, "unit_cost_cents": 500}]}),
                    )
                    .await
                } else {
                    app.post(
                        "/api/v1/orders",
                        Some(token),
                        json!({"lines": [{"book_id": a, "quantity": 1}]}),
                    )
                    .await
                }
            }),
    )
    .await;
    for res in &results {
        res.expect(201);
    }
    // 24 + 4 received, 16 reserved: 12 available, above 8. However the sales and receipts
    // interleaved (available passes 8 only on the way down, maybe up again), every alert that
    // opened has resolved and the level points at none.
    assert_eq!(level(app, a), (28, 16));
    let alerts = alerts_of(app, a);
    assert!(alerts.iter().all(|(status, _)| status == "resolved"));
    assert_eq!(level_alert_id(app, a), None);
}

#[tokio::test]
async fn new_books_get_the_configured_reorder_point() {
    let app = TestApp::spawn_with(|s| s.default_reorder_point = 3).await;
    let staff = app.staff();
    let a = book(&app, &staff, 1, "Alpha", 1000).await;
    let res = app
        .get(&format!("/api/v1/inventory/{a}"), Some(&staff))
        .await;
    assert_eq!(res.expect(200).body["reorder_point"], 3);
    // Creating a book opens no alert; its first stock change decides.
    assert!(alerts_of(&app, a).is_empty());
    receive(&app, &staff, &[(a, 2)]).await;
    assert_eq!(alerts_of(&app, a), vec![("open".to_owned(), 2)]);
    receive(&app, &staff, &[(a, 2)]).await;
    assert_eq!(alerts_of(&app, a), vec![("resolved".to_owned(), 2)]);
    let listed: Value = app
        .get("/api/v1/inventory/alerts?status=resolved", Some(&staff))
        .await
        .body;
    assert_eq!(listed["total"], 1);
}
