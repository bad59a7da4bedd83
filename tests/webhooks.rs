//! Webhooks over HTTP against a receiver started by each test on 127.0.0.1: endpoint
//! administration, signed delivery, retries and giving up, replays and pings, and the outbox
//! guarantees (core invariant 6) on either backend: an event exists only if its transaction
//! committed, survives a restart before delivery, and reaches its endpoint exactly once even with
//! two workers on one database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use bookstore::db::schema::{webhook_deliveries, webhook_endpoints, webhook_events};
use bookstore::db::{self, DbConn};
use bookstore::webhooks::outbox::{self, EventType};
use bookstore::webhooks::signature;
use bookstore::{ApiError, Settings};
use diesel::prelude::*;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::collections::HashMap;
use std::time::Duration;

/// Runs the delivery worker briskly: polls every 50 ms, first retry after 50 ms.
fn worker(s: &mut Settings) {
    s.webhook_poll_interval = Duration::from_millis(50);
    s.webhook_retry_base = Duration::from_millis(50);
    s.webhook_timeout = Duration::from_secs(5);
}

fn deadline() -> Deadline {
    Deadline::new(Duration::from_secs(10))
}

/// Registers an endpoint; returns (id, secret).
async fn register(app: &TestApp, admin: &str, url: &str, types: &[&str]) -> (i64, String) {
    let res = app
        .post(
            "/api/v1/webhooks",
            Some(admin),
            json!({"url": url, "event_types": types, "description": "test receiver"}),
        )
        .await;
    res.expect(201);
    (
        res.body["id"].as_i64().unwrap(),
        res.body["secret"].as_str().unwrap().to_owned(),
    )
}

/// Emits an event in its own committed transaction, as a service would; returns its id.
fn emit(app: &TestApp, kind: EventType, data: Value) -> String {
    let mut conn = app.conn();
    db::write_transaction(&mut conn, |c| outbox::emit(c, kind, data))
        .expect("emit")
        .expect("some endpoint wants the event")
}

/// The endpoint's deliveries (newest first), through the API.
async fn deliveries(app: &TestApp, admin: &str, endpoint_id: i64) -> Vec<Value> {
    let res = app
        .get(
            &format!("/api/v1/webhooks/{endpoint_id}/deliveries?per_page=100"),
            Some(admin),
        )
        .await;
    res.expect(200);
    res.body["items"].as_array().unwrap().clone()
}

/// Waits until the endpoint's delivery of `event_id` has `status`; returns it.
async fn wait_delivery(
    app: &TestApp,
    admin: &str,
    endpoint_id: i64,
    event_id: &str,
    status: &str,
) -> Value {
    let deadline = deadline();
    loop {
        let res = app
            .get(
                &format!("/api/v1/webhooks/{endpoint_id}/deliveries?event_id={event_id}"),
                Some(admin),
            )
            .await;
        res.expect(200);
        if let Some(d) = res.body["items"].as_array().unwrap().first() {
            if d["status"] == status {
                return d.clone();
            }
        }
        deadline
            .tick(&format!("delivery of {event_id} to be {status}"))
            .await;
    }
}

/// Rows of a delivery status in the database.
fn count_status(app: &TestApp, status: &str) -> i64 {
    let mut conn = app.conn();
    webhook_deliveries::table
        .filter(webhook_deliveries::status.eq(status))
        .count()
        .get_result(&mut *conn as &mut DbConn)
        .unwrap()
}

/// A local port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn endpoints_are_managed_by_admins_with_checked_urls_and_event_types() {
    let app = TestApp::spawn().await;
    let admin = app.admin();
    let staff = app.staff();
    let customer = app.customer();
    let body = json!({"url": "https://erp.example.com/hooks", "event_types": ["order.paid"]});

    app.post("/api/v1/webhooks", None, body.clone())
        .await
        .problem(401);
    app.post("/api/v1/webhooks", Some(&staff), body.clone())
        .await
        .problem(403);
    app.post("/api/v1/webhooks", Some(&customer), body.clone())
        .await
        .problem(403);
    app.get("/api/v1/webhooks", Some(&staff)).await.problem(403);
    app.get("/api/v1/webhooks", None).await.problem(401);
    assert_eq!(app.count("webhook_endpoints"), 0);

    // Creation shows the secret, once.
    let res = app
        .post(
            "/api/v1/webhooks",
            Some(&admin),
            json!({"url": "https://erp.example.com/hooks", "description": " ERP ",
                   "event_types": ["order.paid", "order.cancelled"]}),
        )
        .await;
    res.expect(201);
    let id = res.body["id"].as_i64().unwrap();
    let secret = res.body["secret"].as_str().unwrap().to_owned();
    assert!(
        secret.starts_with("whsec_") && secret.len() == 6 + 64,
        "{secret}"
    );
    assert_eq!(res.body["url"], "https://erp.example.com/hooks");
    assert_eq!(res.body["description"], "ERP");
    assert_eq!(
        res.body["event_types"],
        json!(["order.paid", "order.cancelled"])
    );
    assert_eq!(res.body["active"], true);
    assert_eq!(res.body["version"], 1);
    assert_eq!(res.header("etag"), Some("\"1\""));
    assert_eq!(
        res.header("location"),
        Some(format!("/api/v1/webhooks/{id}").as_str())
    );

    let got = app
        .get(&format!("/api/v1/webhooks/{id}"), Some(&admin))
        .await;
    got.expect(200);
    assert!(
        got.body.get("secret").is_none(),
        "GET shows the secret: {}",
        got.text
    );
    assert!(!got.text.contains(&secret));
    assert_eq!(got.header("etag"), Some("\"1\""));
    app.get(&format!("/api/v1/webhooks/{id}"), Some(&staff))
        .await
        .problem(403);
    let list = app.get("/api/v1/webhooks", Some(&admin)).await;
    list.expect(200);
    assert_eq!(list.body["total"], 1);
    assert_eq!(list.body["items"][0]["id"], id);
    assert!(!list.text.contains(&secret));

    // Validation names the field and writes nothing.
    for url in [
        "ftp://files.example.com/in",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "http://",
        "not a url",
        "/relative",
    ] {
        app.post(
            "/api/v1/webhooks",
            Some(&admin),
            json!({"url": url, "event_types": ["order.paid"]}),
        )
        .await
        .invalid_field("url");
    }
    let long = format!("https://example.com/{}", "a".repeat(2000));
    app.post(
        "/api/v1/webhooks",
        Some(&admin),
        json!({"url": long, "event_types": ["order.paid"]}),
    )
    .await
    .invalid_field("url");
    app.post(
        "/api/v1/webhooks",
        Some(&admin),
        json!({"event_types": ["order.paid"]}),
    )
    .await
    .invalid_field("url");
    for (types, field) in [
        (json!([]), "event_types"),
        (json!(["order.created", "order.shipped"]), "event_types[1]"),
        (json!(["order.paid", "order.paid"]), "event_types[1]"),
        (json!(["ping"]), "event_types[0]"),
        (json!(["order.paid", "*"]), "event_types[1]"),
    ] {
        app.post(
            "/api/v1/webhooks",
            Some(&admin),
            json!({"url": "https://ok.example.com/", "event_types": types}),
        )
        .await
        .invalid_field(field);
    }
    // Both fields at once.
    let both = app
        .post(
            "/api/v1/webhooks",
            Some(&admin),
            json!({"url": "ftp://x.example.com/", "event_types": ["nope"]}),
        )
        .await;
    both.invalid_field("url");
    both.invalid_field("event_types[0]");
    assert_eq!(app.count("webhook_endpoints"), 1);

    // PATCH needs If-Match.
    let path = format!("/api/v1/webhooks/{id}");
    app.patch(&path, Some(&admin), json!({"active": false}))
        .await
        .problem(428);
    let stale = app
        .client
        .patch(app.url(&path))
        .bearer_auth(&admin)
        .header("If-Match", "\"7\"")
        .json(&json!({"active": false}));
    TestApp::read(stale).await.problem(412);
    let bad = app
        .client
        .patch(app.url(&path))
        .bearer_auth(&admin)
        .header("If-Match", "\"1\"")
        .json(&json!({"url": "file:///tmp/x"}));
    TestApp::read(bad).await.invalid_field("url");
    let patch = app
        .client
        .patch(app.url(&path))
        .bearer_auth(&admin)
        .header("If-Match", "\"1\"")
        .json(
            &json!({"url": "http://erp.example.com:8080/v2", "event_types": ["*"],
                      "description": "", "active": false}),
        );
    let patched = TestApp::read(patch).await;
    patched.expect(200);
    assert_eq!(patched.body["url"], "http://erp.example.com:8080/v2");
    assert_eq!(patched.body["event_types"], json!(["*"]));
    assert_eq!(patched.body["description"], Value::Null);
    assert_eq!(patched.body["active"], false);
    assert_eq!(patched.body["version"], 2);
    assert_eq!(patched.header("etag"), Some("\"2\""));
    // An inactive endpoint cannot be pinged.
    app.post(&format!("{path}/test"), Some(&admin), json!({}))
        .await
        .problem(409);

    // Rotation shows the new secret once and stores it.
    let rotated = app
        .post(&format!("{path}/rotate-secret"), Some(&admin), json!({}))
        .await;
    rotated.expect(200);
    let new_secret = rotated.body["secret"].as_str().unwrap().to_owned();
    assert!(new_secret.starts_with("whsec_") && new_secret != secret);
    assert_eq!(rotated.body["version"], 3);
    let stored: String = webhook_endpoints::table
        .find(id)
        .select(webhook_endpoints::secret)
        .first(&mut *app.conn() as &mut DbConn)
        .unwrap();
    assert_eq!(stored, new_secret);
    let got = app.get(&path, Some(&admin)).await;
    assert!(got.body.get("secret").is_none() && !got.text.contains(&new_secret));

    // Deliveries: listing, filters, unknown ids.
    let empty = app.get(&format!("{path}/deliveries"), Some(&admin)).await;
    empty.expect(200);
    assert_eq!(empty.body["total"], 0);
    app.get(&format!("{path}/deliveries?status=lost"), Some(&admin))
        .await
        .invalid_field("status");
    app.get(&format!("{path}/deliveries"), Some(&staff))
        .await
        .problem(403);
    app.get("/api/v1/webhooks/999999/deliveries", Some(&admin))
        .await
        .problem(404);
    app.get(&format!("{path}/deliveries/999999"), Some(&admin))
        .await
        .problem(404);
    app.post(
        &format!("{path}/deliveries/999999/replay"),
        Some(&admin),
        json!({}),
    )
    .await
    .problem(404);
    app.get("/api/v1/webhooks/999999", Some(&admin))
        .await
        .problem(404);

    // Deleting removes the endpoint with its deliveries.
    let other = register(&app, &admin, "https://other.example.com/", &["order.paid"])
        .await
        .0;
    let reactivate = app
        .client
        .patch(app.url(&path))
        .bearer_auth(&admin)
        .header("If-Match", "*")
        .json(&json!({"active": true}));
    TestApp::read(reactivate).await.expect(200);
    emit(&app, EventType::OrderPaid, json!({"order_id": 1}));
    assert_eq!(app.count("webhook_deliveries"), 2);
    // A delivery is only reachable under its own endpoint.
    let other_delivery = deliveries(&app, &admin, other).await[0]["id"]
        .as_i64()
        .unwrap();
    app.get(&format!("{path}/deliveries/{other_delivery}"), Some(&admin))
        .await
        .problem(404);
    app.delete(&path, Some(&staff)).await.problem(403);
    app.delete(&path, Some(&admin)).await.expect(204);
    app.get(&path, Some(&admin)).await.problem(404);
    app.delete(&path, Some(&admin)).await.problem(404);
    assert_eq!(app.count("webhook_endpoints"), 1);
    assert_eq!(app.count("webhook_deliveries"), 1);
}

#[tokio::test]
async fn deliveries_are_signed_with_the_secret_shown_at_creation() {
    let receiver = Receiver::start();
    let app = TestApp::spawn_with(worker).await;
    let admin = app.admin();
    let (id, secret) = register(&app, &admin, &receiver.url("/hooks"), &["order.paid"]).await;
    let data = json!({"order_id": 42, "total_cents": 1999, "currency": "USD"});
    let event_id = emit(&app, EventType::OrderPaid, data.clone());

    let got = receiver.wait_for("the event", |r| !r.is_empty()).await;
    let req = &got[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/hooks");
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(req.header("bookstore-event-id"), Some(event_id.as_str()));
    assert_eq!(req.header("bookstore-event-type"), Some("order.paid"));

    // The body is exactly {id, type, created_at, data}.
    let body = req.json();
    let mut keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["created_at", "data", "id", "type"]);
    assert_eq!(body["id"], event_id.as_str());
    assert_eq!(body["type"], "order.paid");
    assert_eq!(body["data"], data);
    chrono::DateTime::parse_from_rfc3339(body["created_at"].as_str().unwrap()).unwrap();

    // The receiver recomputes HMAC-SHA256(secret, "<timestamp>.<body>").
    let timestamp = req.header("bookstore-timestamp").unwrap();
    let sent_at: i64 = timestamp.parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - sent_at).abs() < 60);
    let header = req.header("bookstore-signature").unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{}", req.body).as_bytes());
    let expected = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(header, expected);
    let tolerance = signature::DEFAULT_TOLERANCE;
    assert_eq!(
        signature::verify(&secret, timestamp, req.body.as_bytes(), header, tolerance),
        Ok(())
    );
    assert!(signature::verify(
        "whsec_other",
        timestamp,
        req.body.as_bytes(),
        header,
        tolerance
    )
    .is_err());
    let tampered = req.body.replace("1999", "1");
    assert!(signature::verify(&secret, timestamp, tampered.as_bytes(), header, tolerance).is_err());

    // The delivery shows one successful attempt and the exact body.
    let delivery = wait_delivery(&app, &admin, id, &event_id, "succeeded").await;
    assert_eq!(delivery["attempt_count"], 1);
    assert_eq!(delivery["last_status_code"], 200);
    assert_eq!(delivery["next_attempt_at"], Value::Null);
    assert!(delivery["completed_at"].is_string());
    let attempts = delivery["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0]["status_code"], 200);
    assert_eq!(attempts[0]["error"], Value::Null);
    assert!(attempts[0]["latency_ms"].as_i64().unwrap() >= 0);
    let detail = app
        .get(
            &format!("/api/v1/webhooks/{id}/deliveries/{}", delivery["id"]),
            Some(&admin),
        )
        .await;
    detail.expect(200);
    assert_eq!(detail.body["payload"], body);
    assert_eq!(detail.body["event_type"], "order.paid");
    assert_eq!(receiver.requests().len(), 1);

    // After a rotation, the next delivery is signed with the new secret only.
    let rotated = app
        .post(
            &format!("/api/v1/webhooks/{id}/rotate-secret"),
            Some(&admin),
            json!({}),
        )
        .await;
    let new_secret = rotated.body["secret"].as_str().unwrap().to_owned();
    emit(&app, EventType::OrderPaid, json!({"order_id": 43}));
    let got = receiver
        .wait_for("the second event", |r| r.len() == 2)
        .await;
    let req = &got[1];
    let (ts, sig) = (
        req.header("bookstore-timestamp").unwrap(),
        req.header("bookstore-signature").unwrap(),
    );
    assert_eq!(
        signature::verify(&new_secret, ts, req.body.as_bytes(), sig, tolerance),
        Ok(())
    );
    assert!(signature::verify(&secret, ts, req.body.as_bytes(), sig, tolerance).is_err());
}

#[tokio::test]
async fn a_receiver_that_fails_the_first_attempts_gets_the_event_later() {
    let receiver = Receiver::start();
    receiver.fail_next(2);
    let app = TestApp::spawn_with(worker).await;
    let admin = app.admin();
    let (id, _) = register(&app, &admin, &receiver.url("/flaky"), &["*"]).await;
    let event_id = emit(&app, EventType::OrderCreated, json!({"order_id": 7}));

    let got = receiver.wait_for("three attempts", |r| r.len() >= 3).await;
    assert_eq!(
        got.iter().map(|r| r.status).collect::<Vec<_>>(),
        [500, 500, 200]
    );
    // Every attempt carries the same event and body.
    for r in &got {
        assert_eq!(r.header("bookstore-event-id"), Some(event_id.as_str()));
        assert_eq!(r.body, got[0].body);
    }

    let delivery = wait_delivery(&app, &admin, id, &event_id, "succeeded").await;
    assert_eq!(delivery["attempt_count"], 3);
    assert_eq!(delivery["last_status_code"], 200);
    assert_eq!(delivery["last_error"], Value::Null);
    let attempts = delivery["attempts"].as_array().unwrap();
    let codes: Vec<i64> = attempts
        .iter()
        .map(|a| a["status_code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, [500, 500, 200]);
    for failed in &attempts[..2] {
        assert!(
            failed["error"].as_str().unwrap().contains("500"),
            "{failed}"
        );
        assert!(failed["latency_ms"].as_i64().unwrap() >= 0);
    }
    // The retries waited: base 50 ms (±20%), then twice that.
    let at = |i: usize| {
        chrono::DateTime::parse_from_rfc3339(attempts[i]["attempted_at"].as_str().unwrap()).unwrap()
    };
    assert!((at(1) - at(0)).num_milliseconds() >= 40, "{attempts:?}");
    assert!((at(2) - at(1)).num_milliseconds() >= 80, "{attempts:?}");
    assert_eq!(receiver.requests().len(), 3);
}

#[tokio::test]
async fn a_delivery_is_given_up_when_its_event_outlives_the_retry_window() {
    let receiver = Receiver::start();
    receiver.fail_next(usize::MAX);
    let app = TestApp::spawn_with(|s| {
        worker(s);
        // Attempts at about 0, 50, 150, 350 and 750 ms; the next would be past 1 s.
        s.webhook_max_age = Duration::from_secs(1);
    })
    .await;
    let admin = app.admin();
    let (failing, _) = register(&app, &admin, &receiver.url("/down"), &["order.paid"]).await;
    let unreachable = format!("http://127.0.0.1:{}/hooks", closed_port());
    let (refused, _) = register(&app, &admin, &unreachable, &["order.paid"]).await;
    let event_id = emit(&app, EventType::OrderPaid, json!({"order_id": 9}));

    let delivery = wait_delivery(&app, &admin, failing, &event_id, "failed").await;
    let attempts = delivery["attempts"].as_array().unwrap();
    assert!(attempts.len() >= 2, "{delivery}");
    assert_eq!(delivery["attempt_count"], attempts.len() as i64);
    assert!(attempts.iter().all(|a| a["status_code"] == 500));
    assert_eq!(delivery["last_status_code"], 500);
    assert!(delivery["completed_at"].is_string());
    assert_eq!(delivery["next_attempt_at"], Value::Null);
    // Once failed, it is not attempted again: every request the receiver got is in the history.
    assert_eq!(receiver.requests_to("/down").len(), attempts.len());

    // No answer at all: the error says why, without a status code.
    let delivery = wait_delivery(&app, &admin, refused, &event_id, "failed").await;
    assert_eq!(delivery["last_status_code"], Value::Null);
    let error = delivery["last_error"].as_str().unwrap();
    assert!(error.contains("connect"), "{error}");
    assert!(
        !error.contains("127.0.0.1"),
        "the URL is not repeated: {error}"
    );
    assert_eq!(count_status(&app, "pending"), 0);
}

#[tokio::test]
async fn an_event_committed_before_a_restart_is_delivered_once_after_it() {
    let receiver = Receiver::start();
    // The first server has no worker: the event stays in the outbox.
    let app = TestApp::spawn().await;
    let admin = app.admin();
    let (id, _) = register(&app, &admin, &receiver.url("/erp"), &["order.paid"]).await;
    let event_id = emit(&app, EventType::OrderPaid, json!({"order_id": 5}));
    assert_eq!(count_status(&app, "pending"), 1);
    assert!(receiver.requests().is_empty());

    let app = app.restart_with(worker).await;
    let got = receiver
        .wait_for("the event after the restart", |r| !r.is_empty())
        .await;
    assert_eq!(got[0].header("bookstore-event-id"), Some(event_id.as_str()));
    let delivery = wait_delivery(&app, &admin, id, &event_id, "succeeded").await;
    assert_eq!(delivery["attempt_count"], 1);
    assert_eq!(receiver.requests().len(), 1);
}

#[tokio::test]
async fn no_event_is_sent_for_a_rolled_back_transaction() {
    let receiver = Receiver::start();
    let app = TestApp::spawn_with(worker).await;
    let admin = app.admin();
    let (id, _) = register(&app, &admin, &receiver.url("/erp"), &["order.paid"]).await;

    let mut conn = app.conn();
    let rolled_back = db::write_transaction(&mut conn, |c| {
        let emitted = outbox::emit(c, EventType::OrderPaid, json!({"order_id": 1}))?;
        assert!(emitted.is_some());
        Err::<(), ApiError>(ApiError::Conflict(
            "the change failed after emitting".into(),
        ))
    });
    assert!(rolled_back.is_err());
    drop(conn);
    assert_eq!(app.count("webhook_events"), 0);
    assert_eq!(app.count("webhook_deliveries"), 0);

    // A later committed event arrives, alone.
    let committed = emit(&app, EventType::OrderPaid, json!({"order_id": 2}));
    let got = receiver
        .wait_for("the committed event", |r| !r.is_empty())
        .await;
    assert_eq!(
        got[0].header("bookstore-event-id"),
        Some(committed.as_str())
    );
    wait_delivery(&app, &admin, id, &committed, "succeeded").await;
    assert_eq!(receiver.requests().len(), 1);
    assert_eq!(app.count("webhook_events"), 1);
}

#[tokio::test]
async fn two_servers_on_one_database_deliver_each_event_exactly_once() {
    let receiver = Receiver::start();
    let first = TestApp::spawn_with(worker).await;
    let admin = first.admin();
    register(&first, &admin, &receiver.url("/erp"), &["order.created"]).await;
    // Committed together, so that both workers find them due at once.
    let ids: Vec<String> = {
        let mut conn = first.conn();
        db::write_transaction(&mut conn, |c| {
            (0..50)
                .map(|i| {
                    outbox::emit(c, EventType::OrderCreated, json!({"order_id": i}))
                        .map(|id| id.unwrap())
                })
                .collect::<Result<Vec<_>, ApiError>>()
        })
        .unwrap()
    };
    let second = first.sibling_with(worker).await;

    let deadline = deadline();
    while count_status(&first, "succeeded") < 50 {
        deadline.tick("50 succeeded deliveries").await;
    }
    let mut per_event: HashMap<String, usize> = HashMap::new();
    for r in receiver.requests() {
        *per_event
            .entry(r.header("bookstore-event-id").unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(per_event.len(), 50);
    for id in &ids {
        assert_eq!(per_event.get(id), Some(&1), "event {id}");
    }
    assert_eq!(receiver.requests().len(), 50);
    let attempts: Vec<i32> = webhook_deliveries::table
        .select(webhook_deliveries::attempts)
        .load(&mut *second.conn() as &mut DbConn)
        .unwrap();
    assert!(attempts.iter().all(|a| *a == 1), "{attempts:?}");
    assert_eq!(second.count("webhook_attempts"), 50);
}

#[tokio::test]
async fn an_endpoint_receives_only_the_event_types_it_subscribed_to() {
    let receiver = Receiver::start();
    let app = TestApp::spawn_with(worker).await;
    let admin = app.admin();
    let (paid_only, _) = register(&app, &admin, &receiver.url("/paid"), &["order.paid"]).await;
    register(&app, &admin, &receiver.url("/all"), &["*"]).await;
    let created = emit(&app, EventType::OrderCreated, json!({"order_id": 3}));
    let paid = emit(&app, EventType::OrderPaid, json!({"order_id": 3}));

    receiver
        .wait_for("both events at /all and the paid one at /paid", |r| {
            r.iter().filter(|x| x.path == "/all").count() == 2
                && r.iter().any(|x| x.path == "/paid")
        })
        .await;
    wait_delivery(&app, &admin, paid_only, &paid, "succeeded").await;
    let to_paid = receiver.requests_to("/paid");
    assert_eq!(to_paid.len(), 1);
    assert_eq!(
        to_paid[0].header("bookstore-event-type"),
        Some("order.paid")
    );
    assert_eq!(to_paid[0].header("bookstore-event-id"), Some(paid.as_str()));
    let listed = deliveries(&app, &admin, paid_only).await;
    assert_eq!(listed.len(), 1);
    assert!(listed.iter().all(|d| d["event_id"] != created.as_str()));
}

#[tokio::test]
async fn a_ping_can_be_followed_and_a_replay_sends_the_same_event_again() {
    let receiver = Receiver::start();
    let app = TestApp::spawn_with(worker).await;
    let admin = app.admin();
    let staff = app.staff();
    // Subscribed to something else: a ping goes to this endpoint whatever it wants.
    let (id, secret) = register(
        &app,
        &admin,
        &receiver.url("/ping"),
        &["stocktake.completed"],
    )
    .await;
    app.post(
        &format!("/api/v1/webhooks/{id}/test"),
        Some(&staff),
        json!({}),
    )
    .await
    .problem(403);
    let ping = app
        .post(
            &format!("/api/v1/webhooks/{id}/test"),
            Some(&admin),
            json!({}),
        )
        .await;
    ping.expect(202);
    assert_eq!(ping.body["event_type"], "ping");
    assert_eq!(ping.body["status"], "pending");
    let event_id = ping.body["event_id"].as_str().unwrap().to_owned();
    let location = ping.header("location").unwrap().to_owned();
    assert_eq!(
        location,
        format!("/api/v1/webhooks/{id}/deliveries/{}", ping.body["id"])
    );

    // The admin follows the delivery to its result.
    let deadline = deadline();
    let done = loop {
        let res = app.get(&location, Some(&admin)).await;
        res.expect(200);
        if res.body["status"] == "succeeded" {
            break res.body;
        }
        deadline.tick("the ping to succeed").await;
    };
    assert_eq!(done["attempts"][0]["status_code"], 200);
    assert_eq!(done["payload"]["type"], "ping");
    assert_eq!(done["payload"]["data"]["endpoint_id"], id);
    let got = receiver.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("bookstore-event-type"), Some("ping"));
    let (ts, sig) = (
        got[0].header("bookstore-timestamp").unwrap(),
        got[0].header("bookstore-signature").unwrap(),
    );
    assert_eq!(
        signature::verify(
            &secret,
            ts,
            got[0].body.as_bytes(),
            sig,
            signature::DEFAULT_TOLERANCE
        ),
        Ok(())
    );

    // Replaying the succeeded delivery sends the same event again and keeps the history.
    app.post(&format!("{location}/replay"), Some(&staff), json!({}))
        .await
        .problem(403);
    let replay = app
        .post(&format!("{location}/replay"), Some(&admin), json!({}))
        .await;
    replay.expect(202);
    assert_eq!(replay.body["status"], "pending");
    assert_eq!(replay.body["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(replay.header("location"), Some(location.as_str()));
    let got = receiver.wait_for("the replay", |r| r.len() == 2).await;
    assert_eq!(got[1].header("bookstore-event-id"), Some(event_id.as_str()));
    assert_eq!(got[1].body, got[0].body);
    let deadline = self::deadline();
    loop {
        let res = app.get(&location, Some(&admin)).await;
        if res.body["status"] == "succeeded" {
            assert_eq!(res.body["attempt_count"], 2);
            assert_eq!(res.body["attempts"].as_array().unwrap().len(), 2);
            break;
        }
        deadline.tick("the replay to succeed").await;
    }
    assert_eq!(receiver.requests().len(), 2);
}

#[tokio::test]
async fn an_inactive_endpoint_gets_nothing_until_it_is_reactivated() {
    let receiver = Receiver::start();
    // Deliveries are queued while no worker runs, then the endpoint is paused.
    let app = TestApp::spawn().await;
    let admin = app.admin();
    let (paused, _) = register(&app, &admin, &receiver.url("/paused"), &["order.paid"]).await;
    let (control, _) = register(&app, &admin, &receiver.url("/control"), &["order.paid"]).await;
    let before = emit(&app, EventType::OrderPaid, json!({"order_id": 1}));
    let pause = app
        .client
        .patch(app.url(&format!("/api/v1/webhooks/{paused}")))
        .bearer_auth(&admin)
        .header("If-Match", "\"1\"")
        .json(&json!({"active": false}));
    TestApp::read(pause).await.expect(200);

    let app = app.restart_with(worker).await;
    // Emitted while paused: not queued for the paused endpoint at all.
    let during = emit(&app, EventType::OrderPaid, json!({"order_id": 2}));
    wait_delivery(&app, &admin, control, &before, "succeeded").await;
    wait_delivery(&app, &admin, control, &during, "succeeded").await;
    assert!(receiver.requests_to("/paused").is_empty());
    let waiting = deliveries(&app, &admin, paused).await;
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0]["event_id"], before.as_str());
    assert_eq!(waiting[0]["status"], "pending");
    assert_eq!(waiting[0]["attempt_count"], 0);

    let resume = app
        .client
        .patch(app.url(&format!("/api/v1/webhooks/{paused}")))
        .bearer_auth(&admin)
        .header("If-Match", "\"2\"")
        .json(&json!({"active": true}));
    TestApp::read(resume).await.expect(200);
    wait_delivery(&app, &admin, paused, &before, "succeeded").await;
    let got = receiver.requests_to("/paused");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("bookstore-event-id"), Some(before.as_str()));
    assert_eq!(receiver.requests_to("/control").len(), 2);
}

#[tokio::test]
async fn reactivation_fails_pending_deliveries_older_than_the_retry_window() {
    let app = TestApp::spawn().await;
    let admin = app.admin();
    let (id, _) = register(&app, &admin, "http://127.0.0.1:9/hooks", &["order.paid"]).await;
    let old = emit(&app, EventType::OrderPaid, json!({"order_id": 1}));
    let recent = emit(&app, EventType::OrderPaid, json!({"order_id": 2}));
    // The first event happened two days ago, beyond the default 24-hour window.
    diesel::update(webhook_events::table.find(&old))
        .set(webhook_events::created_at.eq(db::now() - chrono::Duration::days(2)))
        .execute(&mut *app.conn() as &mut DbConn)
        .unwrap();
    let path = format!("/api/v1/webhooks/{id}");
    let set_active = |version: i32, active: bool| {
        app.client
            .patch(app.url(&path))
            .bearer_auth(&admin)
            .header("If-Match", format!("\"{version}\""))
            .json(&json!({ "active": active }))
    };
    TestApp::read(set_active(1, false)).await.expect(200);
    TestApp::read(set_active(2, true)).await.expect(200);
    let listed = deliveries(&app, &admin, id).await;
    let of = |event: &str| {
        listed
            .iter()
            .find(|d| d["event_id"] == event)
            .unwrap()
            .clone()
    };
    let expired = of(&old);
    assert_eq!(expired["status"], "failed");
    assert_eq!(expired["attempt_count"], 0);
    assert!(expired["completed_at"].is_string());
    assert!(expired["last_error"].as_str().unwrap().contains("expired"));
    assert_eq!(of(&recent)["status"], "pending");
    // A replay still makes one attempt of it.
    let replay = app
        .post(
            &format!("{path}/deliveries/{}/replay", expired["id"]),
            Some(&admin),
            json!({}),
        )
        .await;
    replay.expect(202);
    assert_eq!(replay.body["status"], "pending");
    assert!(replay.body["completed_at"].is_null());
    assert!(replay.body["next_attempt_at"].is_string());
}

/// Production's rule: webhooks go to public addresses only.
fn public_only(s: &mut Settings) {
    s.webhook_allow_private = false;
}

#[tokio::test]
async fn internal_destinations_are_refused_and_credentials_never_echoed() {
    let receiver = Receiver::start();
    let app = TestApp::spawn_with(public_only).await;
    let admin = app.admin();
    let refused = [
        receiver.url("/hook"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/".to_owned(),
        "http://172.16.5.4:8080/".to_owned(),
        "http://192.168.1.1/".to_owned(),
        "http://100.64.0.1/".to_owned(),
        "http://0.0.0.0:9000/".to_owned(),
        "http://[::1]/".to_owned(),
        "http://[fe80::1]/".to_owned(),
        "http://[fd00::1]/".to_owned(),
        "http://[::ffff:127.0.0.1]/".to_owned(),
        "http://[::ffff:169.254.169.254]/".to_owned(),
        "http://localhost/".to_owned(),
        format!(
            "http://localhost:{}/hook",
            receiver.base.rsplit(':').next().unwrap()
        ),
        "http://user:s3cr3t-pw@example.com/".to_owned(),
        "https://:s3cr3t-pw@192.0.2.10/".to_owned(),
    ];
    for url in &refused {
        let res = app
            .post(
                "/api/v1/webhooks",
                Some(&admin),
                json!({"url": url, "event_types": ["order.paid"]}),
            )
            .await;
        res.invalid_field("url");
        assert!(!res.text.contains("s3cr3t"), "{url}: {}", res.text);
    }
    assert_eq!(app.count("webhook_endpoints"), 0);

    // A public address is accepted (nothing is subscribed to anything that would send to it:
    // the worker is off here); changing it to any of the above is refused the same way.
    let res = app
        .post(
            "/api/v1/webhooks",
            Some(&admin),
            json!({"url": "http://192.0.2.10/hook", "event_types": ["order.paid"]}),
        )
        .await;
    res.expect(201);
    let id = res.body["id"].as_i64().unwrap();
    for url in &refused {
        let res = TestApp::read(
            app.client
                .patch(app.url(&format!("/api/v1/webhooks/{id}")))
                .bearer_auth(&admin)
                .header("if-match", "\"1\"")
                .json(&json!({"url": url})),
        )
        .await;
        res.invalid_field("url");
        assert!(!res.text.contains("s3cr3t"), "{url}: {}", res.text);
    }
    let got = app
        .get(&format!("/api/v1/webhooks/{id}"), Some(&admin))
        .await;
    got.expect(200);
    assert_eq!(got.body["url"], "http://192.0.2.10/hook");
    assert_eq!(got.body["version"], 1);
    assert!(receiver.requests().is_empty());
}

#[tokio::test]
async fn credentials_in_a_url_are_refused_even_where_private_addresses_are_allowed() {
    let receiver = Receiver::start();
    let app = TestApp::spawn().await;
    let admin = app.admin();
    let with_password = receiver
        .url("/hook")
        .replace("http://", "http://u:s3cr3t-pw@");
    let res = app
        .post(
            "/api/v1/webhooks",
            Some(&admin),
            json!({"url": with_password, "event_types": ["order.paid"]}),
        )
        .await;
    res.invalid_field("url");
    assert!(!res.text.contains("s3cr3t"), "{}", res.text);
    assert_eq!(app.count("webhook_endpoints"), 0);
}

/// Inserts an endpoint directly, as one registered before the address rule (or whose name
/// resolved elsewhere then) would be stored; returns its id.
fn insert_endpoint(app: &TestApp, url: &str) -> i64 {
    let mut conn = app.conn();
    let at = db::now();
    diesel::insert_into(webhook_endpoints::table)
        .values((
            webhook_endpoints::url.eq(url),
            webhook_endpoints::event_types.eq("order.paid"),
            webhook_endpoints::secret.eq("whsec_test"),
            webhook_endpoints::active.eq(true),
            webhook_endpoints::version.eq(1),
            webhook_endpoints::created_at.eq(at),
            webhook_endpoints::updated_at.eq(at),
        ))
        .returning(webhook_endpoints::id)
        .get_result(&mut *conn as &mut DbConn)
        .unwrap()
}

#[tokio::test]
async fn a_stored_endpoint_whose_address_is_now_forbidden_is_not_sent_to() {
    let receiver = Receiver::start();
    let app = TestApp::spawn_with(|s| {
        worker(s);
        public_only(s);
    })
    .await;
    let admin = app.admin();
    let port = receiver.base.rsplit(':').next().unwrap().to_owned();
    // A literal loopback address, and a name that now resolves to loopback (DNS rebinding:
    // checked when registered, pointing inside when delivered).
    let literal = insert_endpoint(&app, &receiver.url("/literal"));
    let named = insert_endpoint(&app, &format!("http://localhost:{port}/named"));
    for (id, expected) in [(literal, "loopback"), (named, "localhost")] {
        app.send(
            reqwest::Method::POST,
            &format!("/api/v1/webhooks/{id}/test"),
            Some(&admin),
            None,
        )
        .await
        .expect(202);
        let deadline = deadline();
        let delivery = loop {
            let list = deliveries(&app, &admin, id).await;
            if list[0]["attempts"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
            {
                break list[0].clone();
            }
            deadline.tick("a refused attempt to be recorded").await;
        };
        let attempt = &delivery["attempts"][0];
        assert_eq!(attempt["status_code"], Value::Null, "{delivery}");
        let error = attempt["error"].as_str().unwrap();
        assert!(
            error.contains("refused") && error.contains(expected),
            "{error}"
        );
        assert_ne!(delivery["status"], "succeeded");
    }
    assert!(receiver.requests().is_empty(), "{:?}", receiver.requests());
    assert_eq!(receiver.held(), 0);
}

#[tokio::test]
async fn an_endpoint_deleted_during_a_delivery_stays_deleted_and_the_worker_goes_on() {
    let receiver = Receiver::start();
    let app = TestApp::spawn_with(worker).await;
    let admin = app.admin();
    // Registered first: on SQLite a deleted last id would be given again.
    let (other, _) = register(&app, &admin, &receiver.url("/other"), &["order.paid"]).await;
    let (doomed, _) = register(&app, &admin, &receiver.url("/doomed"), &["order.paid"]).await;
    receiver.hold();
    app.send(
        reqwest::Method::POST,
        &format!("/api/v1/webhooks/{doomed}/test"),
        Some(&admin),
        None,
    )
    .await
    .expect(202);
    let deadline = deadline();
    while receiver.held() == 0 {
        deadline.tick("the delivery to reach the receiver").await;
    }
    app.delete(&format!("/api/v1/webhooks/{doomed}"), Some(&admin))
        .await
        .expect(204);
    receiver.release();
    receiver
        .wait_for("the held delivery to be answered", |r| r.len() == 1)
        .await;

    // The worker goes on with other endpoints.
    let event = emit(&app, EventType::OrderPaid, json!({"order_id": 1}));
    wait_delivery(&app, &admin, other, &event, "succeeded").await;
    // The dropped outcome left nothing behind, and the endpoint is not back.
    let deadline = Deadline::new(Duration::from_secs(5));
    while app.count("webhook_attempts") != 1 {
        deadline
            .tick("only the other endpoint's attempt to be recorded")
            .await;
    }
    let mut conn = app.conn();
    let endpoints: Vec<i64> = webhook_endpoints::table
        .select(webhook_endpoints::id)
        .load(&mut *conn as &mut DbConn)
        .unwrap();
    assert_eq!(endpoints, vec![other]);
    let left: i64 = webhook_deliveries::table
        .filter(webhook_deliveries::endpoint_id.eq(doomed))
        .count()
        .get_result(&mut *conn as &mut DbConn)
        .unwrap();
    assert_eq!(left, 0);
    app.get(&format!("/api/v1/webhooks/{doomed}"), Some(&admin))
        .await
        .problem(404);
}

/// The race itself, made deterministic on PostgreSQL: the endpoint's delete has run but not yet
/// committed when the worker records its attempt. Recording must wait for it and drop the
/// outcome, not fail on the foreign key. (On SQLite writers are serialized, so the delete simply
/// comes first.)
#[tokio::test]
async fn recording_an_attempt_while_its_endpoint_is_being_deleted_drops_the_outcome() {
    use bookstore::webhooks::delivery::{claim_due, record, Outcome, Recorded, RetryPolicy};
    use diesel::connection::SimpleConnection;
    let app = TestApp::spawn().await;
    let admin = app.admin();
    let (doomed, _) = register(&app, &admin, "http://127.0.0.1:9/never", &["order.paid"]).await;
    app.send(
        reqwest::Method::POST,
        &format!("/api/v1/webhooks/{doomed}/test"),
        Some(&admin),
        None,
    )
    .await
    .expect(202);
    let claim = {
        let mut conn = app.conn();
        let mut claims = claim_due(&mut conn, 10, Duration::from_secs(60)).unwrap();
        assert_eq!(claims.len(), 1);
        claims.pop().unwrap()
    };
    let outcome = Outcome {
        attempted_at: db::now(),
        status_code: Some(200),
        latency_ms: 3,
        error: None,
    };
    let policy = RetryPolicy {
        base: Duration::from_secs(30),
        max_age: Duration::from_secs(3600),
    };
    let delete = format!("DELETE FROM webhook_endpoints WHERE id = {doomed}");
    let mut deleter = app.conn();
    let postgres = matches!(&*deleter, DbConn::Pg(_));
    let recorded = if let DbConn::Pg(pg) = &mut *deleter {
        pg.batch_execute(&format!("BEGIN; {delete}")).unwrap();
        let pool = app.state.pool.clone();
        let recorder = std::thread::spawn(move || {
            let mut conn = pool.get().unwrap();
            record(&mut conn, &claim, &outcome, policy, 1.0)
        });
        // Wait until the recorder is blocked behind the delete's locks, then commit it.
        let deadline = deadline();
        loop {
            #[derive(QueryableByName)]
            struct Waiting {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            let mut watcher = app.conn();
            let waiting = diesel::sql_query(
                "SELECT COUNT(*) AS n FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .get_result::<Waiting>(&mut *watcher as &mut DbConn)
            .unwrap()
            .n;
            if waiting > 0 {
                break;
            }
            deadline.tick("the recorder to wait for the delete").await;
        }
        pg.batch_execute("COMMIT").unwrap();
        recorder.join().unwrap()
    } else {
        (&mut *deleter as &mut DbConn)
            .batch_execute(&delete)
            .unwrap();
        let mut conn = app.conn();
        record(&mut conn, &claim, &outcome, policy, 1.0)
    };
    assert!(
        matches!(recorded, Ok(Recorded::Gone)),
        "postgres: {postgres}: {recorded:?}"
    );
    assert_eq!(app.count("webhook_endpoints"), 0);
    assert_eq!(app.count("webhook_deliveries"), 0);
    assert_eq!(app.count("webhook_attempts"), 0);
}
