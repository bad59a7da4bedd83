//! Expiry of unpaid orders on either backend: the sweep cancels exactly the overdue unpaid
//! orders and releases their stock, the server's maintenance task runs it by itself, and cancels,
//! fulfilments and expiry racing on the same orders release or consume each reservation exactly
//! once (core invariant 4).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

mod catalog_support;

mod orders_support;
use orders_support::*;

use bookstore::db::schema::{order_events, stock_movements};
use bookstore::orders::expiry::expire_due;
use diesel::prelude::*;
use std::time::{Duration, Instant};

#[tokio::test]
async fn the_sweep_cancels_overdue_unpaid_orders_and_releases_their_stock() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let (_, _, token) = customer(&app);
    let a = book(&app, &staff, 1, "Alpha", 1000).await;
    receive(&app, &staff, &[(a, 10)]).await;
    let overdue = place(&app, &token, &[(a, 2)]).await;
    let transfer = place(&app, &token, &[(a, 1)]).await;
    let fresh = place(&app, &token, &[(a, 3)]).await;
    let paid = place(&app, &token, &[(a, 1)]).await;
    pay(&app, &token, transfer, json!({"method": "bank_transfer"}))
        .await
        .expect(201);
    card(&app, &token, paid, "tok_visa").await.expect(201);
    make_overdue(&app, overdue);
    make_overdue(&app, transfer);
    make_overdue(&app, paid);
    assert_eq!(level(&app, a), (10, 7));

    let mut expired = {
        let mut conn = app.conn();
        expire_due(&mut conn, 100).unwrap()
    };
    expired.sort_unstable();
    assert_eq!(
        expired,
        vec![overdue, transfer],
        "only unpaid, overdue orders"
    );
    assert_eq!(status_of(&app, &token, overdue).await, "cancelled");
    assert_eq!(status_of(&app, &token, transfer).await, "cancelled");
    assert_eq!(status_of(&app, &token, fresh).await, "pending_payment");
    assert_eq!(status_of(&app, &token, paid).await, "paid");
    assert_eq!(level(&app, a), (10, 4), "released 2 + 1");
    let transfer_payment = &payments_of(&app, &token, transfer).await[0];
    assert_eq!(transfer_payment["status"], "failed");
    assert_eq!(transfer_payment["failure_code"], "order_expired");

    // The system did it, and said why.
    let mut conn = app.conn();
    let (actor, note): (Option<i64>, Option<String>) = order_events::table
        .filter(order_events::order_id.eq(overdue))
        .filter(order_events::to_status.eq("cancelled"))
        .select((order_events::actor_user_id, order_events::note))
        .first(&mut *conn)
        .unwrap();
    assert_eq!(actor, None);
    assert_eq!(note.as_deref(), Some("expired unpaid"));
    // A second sweep finds nothing.
    assert!(expire_due(&mut conn, 100).unwrap().is_empty());
}

#[tokio::test]
async fn the_server_expires_unpaid_orders_by_itself() {
    let app = TestApp::spawn_with(|s| {
        s.order_ttl = Duration::from_secs(1);
        s.sweep_interval = Duration::from_millis(200);
    })
    .await;
    let staff = app.staff();
    let (_, _, token) = customer(&app);
    let a = book(&app, &staff, 1, "Alpha", 1000).await;
    receive(&app, &staff, &[(a, 4)]).await;
    let id = place(&app, &token, &[(a, 4)]).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    // Polls the API (the task's effect), not a fixed sleep.
    while status_of(&app, &token, id).await != "cancelled" {
        assert!(Instant::now() < deadline, "the order was not expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(level(&app, a), (4, 0));
}

#[tokio::test]
async fn cancels_fulfilments_and_expiry_racing_settle_each_reservation_once() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let (_, _, token) = customer(&app);
    let a = book(&app, &staff, 1, "Alpha", 1000).await;
    let b = book(&app, &staff, 2, "Beta", 500).await;
    receive(&app, &staff, &[(a, 100), (b, 100)]).await;

    // Unpaid orders race customer cancels against expiry; paid ones staff cancels (refund)
    // against fulfilments.
    let mut unpaid = Vec::new();
    let mut paid = Vec::new();
    for i in 0..12 {
        let id = place(&app, &token, &[(a, 2), (b, 1)]).await;
        if i % 2 == 0 {
            make_overdue(&app, id);
            unpaid.push(id);
        } else {
            card(&app, &token, id, "tok_visa").await.expect(201);
            paid.push(id);
        }
    }
    assert_eq!(level(&app, a), (100, 24));

    // (token, order, fulfil?) of every racing request.
    let mut racing: Vec<(&str, i64, bool)> = Vec::new();
    for &id in &unpaid {
        racing.push((&token, id, false));
        racing.push((&token, id, false));
    }
    for &id in &paid {
        racing.push((&staff, id, false));
        racing.push((&staff, id, true));
        racing.push((&staff, id, true));
    }
    let requests = racing.into_iter().map(|(who, id, fulfils)| {
        let app = &app;
        async move {
            if fulfils {
                fulfil(app, who, id).await
            } else {
                cancel(app, who, id).await
            }
        }
    });
    let sweepers: Vec<_> = (0..2)
        .map(|_| {
            let pool = app.state.pool.clone();
            tokio::task::spawn_blocking(move || {
                let mut conn = pool.get().unwrap();
                // One order per sweep, so the sweeps interleave with the requests.
                let mut expired = Vec::new();
                loop {
                    let batch = expire_due(&mut conn, 1).unwrap();
                    if batch.is_empty() {
                        break expired;
                    }
                    expired.extend(batch);
                }
            })
        })
        .collect();
    let results = futures_util::future::join_all(requests).await;
    for r in &results {
        assert!(
            [200, 409].contains(&r.status.as_u16()),
            "only successes and conflicts: {} {}",
            r.status,
            r.text
        );
    }
    let mut expired: Vec<i64> = Vec::new();
    for s in sweepers {
        expired.extend(s.await.unwrap());
    }
    let unique: std::collections::HashSet<i64> = expired.iter().copied().collect();
    assert_eq!(unique.len(), expired.len(), "no order expired twice");

    // Every order settled exactly once.
    let mut fulfilled = 0;
    for &id in &unpaid {
        assert_eq!(status_of(&app, &token, id).await, "cancelled");
    }
    for &id in &paid {
        let status = status_of(&app, &token, id).await;
        match status.as_str() {
            "fulfilled" => {
                fulfilled += 1;
                assert!(refunds_of(&app, &staff, id).await.is_empty());
            }
            "cancelled" => {
                let refunds = refunds_of(&app, &staff, id).await;
                assert_eq!(refunds.len(), 1, "refunded once");
                assert_eq!(refunds[0]["amount_cents"], 2500);
            }
            other => panic!("order {id} ended {other}"),
        }
    }
    assert_eq!(
        level(&app, a),
        (100 - 2 * fulfilled, 0),
        "nothing left reserved"
    );
    assert_eq!(level(&app, b), (100 - fulfilled, 0));
    assert_eq!(ledger_sum(&app, a), 100 - 2 * fulfilled);
    let mut conn = app.conn();
    let sales: i64 = stock_movements::table
        .filter(stock_movements::kind.eq("sale"))
        .count()
        .get_result(&mut *conn)
        .unwrap();
    assert_eq!(
        sales,
        2 * fulfilled,
        "one sale movement per line of each fulfilled order"
    );
}

async fn cancel(app: &TestApp, token: &str, id: i64) -> Res {
    app.post(
        &format!("/api/v1/orders/{id}/cancel"),
        Some(token),
        json!({}),
    )
    .await
}
