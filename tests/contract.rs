//! The OpenAPI contract as a generated client or a fuzzer reads it, held against the server over
//! HTTP on either backend: optional action bodies take `null`, query filters are enums whose
//! other values answer 422 naming the parameter, time bounds have a format, PATCH bodies say
//! whether `{}` is allowed and the server agrees, JSON-body operations document 400/413/415,
//! pages refer to their items, ETags and links are documented. (scripts/fuzz.sh runs
//! schemathesis over the whole document; these tests pin each rule it found broken.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

mod catalog_support;

mod orders_support;
use orders_support::*;

use reqwest::Method;
use serde_json::{json, Value};

fn doc() -> Value {
    serde_json::from_str(&bookstore::app::openapi_json()).unwrap()
}

/// The schema `schema` stands for, following one `$ref`.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => &doc["components"]["schemas"][r.rsplit('/').next().unwrap()],
        None => schema,
    }
}

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            out.push((method.to_uppercase(), path.clone(), op));
        }
    }
    out
}

fn param<'a>(doc: &'a Value, method: &str, path: &str, name: &str) -> &'a Value {
    doc["paths"][path][method]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"))
}

/// POSTs `body` verbatim with a content type.
async fn post_raw(app: &TestApp, path: &str, token: &str, content_type: &str, body: &str) -> Res {
    let req = reqwest::Client::new()
        .request(Method::POST, app.url(path))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body.to_owned());
    TestApp::read(req).await
}

#[actix_web::test]
async fn optional_action_bodies_take_null_and_nothing_as_no_options() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let (_, _, shopper) = customer(&app);
    let b = book(&app, &staff, 1, "Kindred", 1500).await;
    receive(&app, &staff, &[(b, 10)]).await;

    // Order cancel: `null`, as the document's nullable body allows.
    let order = place(&app, &shopper, &[(b, 1)]).await;
    let cancel = format!("/api/v1/orders/{order}/cancel");
    let res = app.post(&cancel, Some(&shopper), Value::Null).await;
    res.expect(200);
    assert_eq!(res.body["status"], "cancelled");
    assert_eq!(level(&app, b), (10, 0), "the reservation was released");

    // No body at all, whatever the content type, is still "no options".
    let order = place(&app, &shopper, &[(b, 1)]).await;
    let cancel = format!("/api/v1/orders/{order}/cancel");
    post_raw(&app, &cancel, &shopper, "text/plain", "")
        .await
        .expect(200);
    // A body that is not sent as JSON is 415; broken JSON 400; both problem+json.
    let order = place(&app, &shopper, &[(b, 1)]).await;
    let cancel = format!("/api/v1/orders/{order}/cancel");
    post_raw(&app, &cancel, &shopper, "text/plain", r#"{"reason": "x"}"#)
        .await
        .problem(415);
    post_raw(
        &app,
        &cancel,
        &shopper,
        "application/json",
        r#"{"reason": "#,
    )
    .await
    .problem(400);
    assert_eq!(status_of(&app, &shopper, order).await, "pending_payment");

    // Return receive and reject: `null` bodies.
    let first = fulfilled_order(&app, &shopper, &staff, &[(b, 2)]).await;
    let request = |id: i64| {
        let app = &app;
        let shopper = &shopper;
        async move {
            let res = app
                .post(
                    &format!("/api/v1/orders/{id}/returns"),
                    Some(shopper),
                    json!({"lines": [{"book_id": b, "quantity": 1}], "reason": "changed my mind"}),
                )
                .await;
            res.expect(201);
            res.body["id"].as_i64().unwrap()
        }
    };
    let ret = request(first).await;
    let res = app
        .post(
            &format!("/api/v1/orders/{first}/returns/{ret}/receive"),
            Some(&staff),
            Value::Null,
        )
        .await;
    res.expect(200);
    assert_eq!(res.body["status"], "received");
    assert_eq!(res.body["restock"], true, "null takes the default restock");
    let ret = request(first).await;
    let res = app
        .post(
            &format!("/api/v1/orders/{first}/returns/{ret}/reject"),
            Some(&staff),
            Value::Null,
        )
        .await;
    res.expect(200);
    assert_eq!(res.body["status"], "rejected");

    // Stocktake complete: `null`.
    let res = app
        .post(
            "/api/v1/inventory/stocktakes",
            Some(&staff),
            json!({"scope": "books", "book_ids": [b]}),
        )
        .await;
    res.expect(201);
    let stocktake = res.body["id"].as_i64().unwrap();
    let res = app
        .post(
            &format!("/api/v1/inventory/stocktakes/{stocktake}/complete"),
            Some(&staff),
            Value::Null,
        )
        .await;
    res.expect(200);
    assert_eq!(res.body["status"], "completed");
}

#[actix_web::test]
async fn rejecting_a_return_has_its_own_schema_without_restock() {
    let doc = doc();
    let path = "/api/v1/orders/{id}/returns/{return_id}/reject";
    let body = &doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"];
    let reject = body["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s.get("$ref").is_some())
        .unwrap();
    let reject = resolve(&doc, reject);
    assert!(reject["properties"]["note"].is_object());
    assert!(reject["properties"].get("restock").is_none());
    assert_eq!(reject["additionalProperties"], false);

    // And the server refuses what the schema leaves out, naming it.
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let (_, _, shopper) = customer(&app);
    let b = book(&app, &staff, 2, "Parable of the Sower", 1200).await;
    receive(&app, &staff, &[(b, 5)]).await;
    let order = fulfilled_order(&app, &shopper, &staff, &[(b, 1)]).await;
    let res = app
        .post(
            &format!("/api/v1/orders/{order}/returns"),
            Some(&shopper),
            json!({"lines": [{"book_id": b, "quantity": 1}], "reason": "duplicate gift"}),
        )
        .await;
    res.expect(201);
    let ret = res.body["id"].as_i64().unwrap();
    let reject = format!("/api/v1/orders/{order}/returns/{ret}/reject");
    app.post(&reject, Some(&staff), json!({"restock": false}))
        .await
        .invalid_field("restock");
    let res = app
        .post(&reject, Some(&staff), json!({"note": "worn copy"}))
        .await;
    res.expect(200);
    assert_eq!(res.body["status"], "rejected");
}

#[actix_web::test]
async fn checked_filters_are_enums_and_other_values_are_422_naming_them() {
    let doc = doc();
    let cases: [(&str, &str, &[&str]); 10] = [
        ("/api/v1/orders", "status", &["pending_payment", "returned"]),
        ("/api/v1/orders", "sort", &["-created", "total"]),
        (
            "/api/v1/inventory/alerts",
            "status",
            &["unresolved", "open"],
        ),
        (
            "/api/v1/purchase-orders",
            "status",
            &["draft", "partially_received"],
        ),
        ("/api/v1/books", "status", &["active", "any"]),
        ("/api/v1/books", "sort", &["title", "-publication_date"]),
        ("/api/v1/books", "language", &["en", "fr"]),
        (
            "/api/v1/inventory/movements",
            "kind",
            &["receipt", "stocktake"],
        ),
        ("/api/v1/inventory/stocktakes", "status", &["open"]),
        ("/api/v1/users", "sort", &["-created_at"]),
    ];
    let app = TestApp::spawn().await;
    let admin = app.admin();
    for (path, name, samples) in cases {
        let schema = resolve(&doc, &param(&doc, "get", path, name)["schema"]);
        let values: Vec<&str> = schema["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{path} {name} is not an enum: {schema}"))
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for sample in samples {
            assert!(values.contains(sample), "{path} {name}: {values:?}");
            app.get(&format!("{path}?{name}={sample}"), Some(&admin))
                .await
                .expect(200);
        }
        for wrong in ["nonsense", ""] {
            app.get(&format!("{path}?{name}={wrong}"), Some(&admin))
                .await
                .invalid_field(name);
        }
    }
    // The body fields checked against a set.
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["NewPayment"]["properties"]["method"]["$ref"],
        "#/components/schemas/PaymentMethod"
    );
    let event_types = &schemas["NewEndpoint"]["properties"]["event_types"];
    assert_eq!(event_types["minItems"], 1);
    assert_eq!(event_types["uniqueItems"], true);
    let names = event_types["items"]["enum"].as_array().unwrap();
    assert!(names.contains(&json!("order.paid")) && names.contains(&json!("*")));
    assert!(!names.contains(&json!("ping")), "nobody subscribes to ping");
}

#[actix_web::test]
async fn time_bounds_have_a_format_and_take_dates_and_instants() {
    let doc = doc();
    for path in ["/api/v1/orders", "/api/v1/inventory/movements"] {
        for name in ["from", "to"] {
            let formats: Vec<&str> = param(&doc, "get", path, name)["schema"]["anyOf"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["format"].as_str().unwrap())
                .collect();
            assert_eq!(formats, ["date-time", "date"], "{path} {name}");
        }
    }
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let b = book(&app, &staff, 3, "Dawn", 900).await;
    receive(&app, &staff, &[(b, 4)]).await;
    let order = place(&app, &staff, &[(b, 1)]).await;
    for (query, found) in [
        ("from=2000-01-01", true),
        ("from=2000-01-01T00:00:00Z&to=2999-12-31", true),
        ("to=2000-01-01", false),
        ("from=2999-01-01T00:00:00%2B02:00", false),
    ] {
        let res = app
            .get(&format!("/api/v1/orders?{query}"), Some(&staff))
            .await;
        res.expect(200);
        let ids: Vec<i64> = res.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids.contains(&order), found, "{query}");
        let res = app
            .get(
                &format!("/api/v1/inventory/movements?{query}"),
                Some(&staff),
            )
            .await;
        res.expect(200);
        assert_eq!(res.body["total"].as_i64().unwrap() > 0, found, "{query}");
    }
    for path in ["/api/v1/orders", "/api/v1/inventory/movements"] {
        app.get(&format!("{path}?from=yesterday"), Some(&staff))
            .await
            .invalid_field("from");
        app.get(&format!("{path}?to=2026-13-01"), Some(&staff))
            .await
            .invalid_field("to");
        app.get(
            &format!("{path}?from=2026-02-01&to=2026-01-01"),
            Some(&staff),
        )
        .await
        .invalid_field("from");
    }
}

#[actix_web::test]
async fn patch_bodies_say_whether_an_empty_object_is_allowed_and_the_server_agrees() {
    let doc = doc();
    let mut refusing = Vec::new();
    for (method, path, op) in operations(&doc) {
        if method != "PATCH" {
            continue;
        }
        let body = &op["requestBody"];
        let schema = resolve(&doc, &body["content"]["application/json"]["schema"]);
        if schema["minProperties"] == 1 {
            refusing.push(path);
        } else {
            assert!(
                body["description"]
                    .as_str()
                    .is_some_and(|d| d.contains("An empty object changes nothing")),
                "PATCH {path} neither refuses nor documents an empty body"
            );
        }
    }
    assert_eq!(refusing, ["/api/v1/users/{id}"]);

    let app = TestApp::spawn().await;
    let admin = app.admin();
    let (staff_id, _) = app.user(bookstore::auth::Role::Staff);
    app.patch(
        &format!("/api/v1/users/{staff_id}"),
        Some(&admin),
        json!({}),
    )
    .await
    .invalid_field("body");
    let res = app
        .post(
            "/api/v1/authors",
            Some(&admin),
            json!({"name": "Octavia E. Butler"}),
        )
        .await;
    res.expect(201);
    let author = res.body["id"].as_i64().unwrap();
    let res = app
        .patch(
            &format!("/api/v1/authors/{author}"),
            Some(&admin),
            json!({}),
        )
        .await;
    res.expect(200);
    assert_eq!(res.body["name"], "Octavia E. Butler");
}

#[test]
fn json_body_operations_document_400_413_and_415_as_problems() {
    let doc = doc();
    let mut checked = 0;
    for (method, path, op) in operations(&doc) {
        if op["requestBody"]["content"]
            .get("application/json")
            .is_none()
        {
            continue;
        }
        checked += 1;
        for status in ["400", "413", "415", "422"] {
            let schema = &op["responses"][status]["content"]["application/problem+json"]["schema"];
            assert_eq!(
                schema["$ref"], "#/components/schemas/Problem",
                "{method} {path} does not document {status}"
            );
        }
    }
    assert!(checked > 30, "{checked}");
}

#[test]
fn arrays_that_must_not_be_empty_and_credentials_have_their_bounds() {
    let doc = doc();
    let schemas = &doc["components"]["schemas"];
    for (schema, field) in [
        ("NewOrder", "lines"),
        ("NewReturn", "lines"),
        ("RecordCounts", "counts"),
        ("NewReceipt", "lines"),
        ("NewPurchaseOrder", "lines"),
        ("ReceivePurchaseOrder", "lines"),
        ("PurchaseOrderPatch", "lines"),
        ("NewEndpoint", "event_types"),
        ("EndpointPatch", "event_types"),
    ] {
        assert_eq!(
            schemas[schema]["properties"][field]["minItems"], 1,
            "{schema}.{field}"
        );
    }
    for (schema, field, min) in [
        ("LoginRequest", "password", 1),
        ("LoginRequest", "email", 1),
        ("RefreshRequest", "refresh_token", 1),
        ("RegisterRequest", "password", 10),
        ("CreateUserRequest", "password", 10),
    ] {
        assert_eq!(
            schemas[schema]["properties"][field]["minLength"], min,
            "{schema}.{field}"
        );
    }
}

#[actix_web::test]
async fn empty_arrays_and_short_credentials_are_refused_as_documented() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    app.post("/api/v1/orders", Some(&staff), json!({"lines": []}))
        .await
        .invalid_field("lines");
    app.post(
        "/api/v1/auth/login",
        None,
        json!({"email": "a@example.com", "password": ""}),
    )
    .await
    .invalid_field("password");
    app.post("/api/v1/auth/refresh", None, json!({"refresh_token": ""}))
        .await
        .invalid_field("refresh_token");
    assert_eq!(app.count("orders"), 0);
}

#[test]
fn pages_refer_to_their_item_schema() {
    let doc = doc();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let pages: Vec<&String> = schemas.keys().filter(|k| k.starts_with("Page_")).collect();
    assert!(pages.len() >= 10);
    for page in pages {
        let item = page.strip_prefix("Page_").unwrap();
        assert_eq!(
            schemas[page]["properties"]["items"],
            json!({"type": "array", "items": {"$ref": format!("#/components/schemas/{item}")}}),
            "{page}"
        );
    }
}

#[actix_web::test]
async fn etags_the_server_sends_are_documented() {
    let doc = doc();
    let documented = |method: &str, path: &str, status: &str| {
        doc["paths"][path][method]["responses"][status]["headers"]
            .get("ETag")
            .is_some()
    };
    let app = TestApp::spawn().await;
    let staff = app.staff();
    // A supplier with a purchase order is archived by DELETE, answered with its ETag.
    let res = app
        .post(
            "/api/v1/suppliers",
            Some(&staff),
            json!({"name": "Gollancz"}),
        )
        .await;
    res.expect(201);
    let supplier = res.body["id"].as_i64().unwrap();
    let b = book(&app, &staff, 4, "Wild Seed", 1000).await;
    app.post(
        "/api/v1/purchase-orders",
        Some(&staff),
        json!({"supplier_id": supplier, "lines": [{"book_id": b, "quantity": 1, "unit_cost_cents": 1}]}),
    )
    .await
    .expect(201);
    let res = app
        .delete(&format!("/api/v1/suppliers/{supplier}"), Some(&staff))
        .await;
    res.expect(200);
    assert!(res.header("etag").is_some());
    assert!(documented("delete", "/api/v1/suppliers/{id}", "200"));
    // A book with history is archived by DELETE, answered with its ETag.
    receive(&app, &staff, &[(b, 1)]).await;
    let res = app
        .delete(&format!("/api/v1/books/{b}"), Some(&staff))
        .await;
    res.expect(200);
    assert!(res.header("etag").is_some());
    assert!(documented("delete", "/api/v1/books/{id}", "200"));
    for (method, path) in [
        ("get", "/api/v1/books/{id}"),
        ("patch", "/api/v1/books/{id}"),
        ("get", "/api/v1/orders/{id}"),
        ("get", "/api/v1/inventory/{book_id}"),
        ("get", "/api/v1/suppliers/{id}"),
        ("get", "/api/v1/purchase-orders/{id}"),
        ("get", "/api/v1/webhooks/{id}"),
    ] {
        assert!(documented(method, path, "200"), "{method} {path}");
    }
    for path in [
        "/api/v1/books/{id}",
        "/api/v1/inventory/{book_id}",
        "/api/v1/suppliers/{id}",
        "/api/v1/purchase-orders/{id}",
        "/api/v1/webhooks/{id}",
    ] {
        let if_match = param(&doc, "patch", path, "If-Match");
        assert_eq!(if_match["in"], "header", "{path}");
    }
}

#[test]
fn creates_link_to_their_item_operations_with_the_new_id() {
    let doc = doc();
    let ids: Vec<String> = operations(&doc)
        .iter()
        .filter_map(|(_, _, op)| op["operationId"].as_str().map(str::to_owned))
        .collect();
    for (path, expected) in [
        (
            "/api/v1/authors",
            &["get_author", "update_author", "delete_author"][..],
        ),
        ("/api/v1/books", &["get_book", "update_book", "delete_book"]),
        (
            "/api/v1/orders",
            &["get_order", "cancel_order", "pay_order"],
        ),
        (
            "/api/v1/suppliers",
            &["get_supplier", "update_supplier", "delete_supplier"],
        ),
        (
            "/api/v1/purchase-orders",
            &["get_purchase_order", "update_purchase_order"],
        ),
        (
            "/api/v1/inventory/stocktakes",
            &["get_stocktake", "record_counts"],
        ),
        ("/api/v1/users", &["get_user", "update_user"]),
        (
            "/api/v1/webhooks",
            &["get_endpoint", "update_endpoint", "delete_endpoint"],
        ),
    ] {
        let links = doc["paths"][path]["post"]["responses"]["201"]["links"]
            .as_object()
            .unwrap_or_else(|| panic!("POST {path} has no links"));
        for name in expected {
            let link = &links[*name];
            assert_eq!(link["operationId"], *name, "POST {path}");
            assert_eq!(link["parameters"], json!({"id": "$response.body#/id"}));
            assert!(ids.contains(&name.to_string()), "{name} is an operation");
        }
    }
    assert!(!bookstore::app::openapi_json().contains("\"operation_id\""));
}

#[actix_web::test]
async fn the_served_document_is_the_committed_one() {
    let app = TestApp::spawn().await;
    let res = app.get("/api/v1/openapi.json", None).await;
    res.expect(200);
    assert_eq!(res.body, doc());
}
