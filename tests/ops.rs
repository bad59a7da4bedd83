//! Health, readiness, request ids and the problem+json shape of framework errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

#[tokio::test]
async fn health_and_readiness() {
    let app = TestApp::spawn().await;
    let res = app.get("/healthz", None).await;
    res.expect(200);
    assert_eq!(res.body, json!({"status": "ok"}));
    app.get("/readyz", None).await.expect(200);
}

#[tokio::test]
async fn request_id_is_echoed_or_generated() {
    let app = TestApp::spawn().await;
    let res = TestApp::read(
        app.client
            .get(app.url("/healthz"))
            .header("x-request-id", "abc-123"),
    )
    .await;
    assert_eq!(res.header("x-request-id"), Some("abc-123"));
    let res = app.get("/healthz", None).await;
    assert_eq!(res.header("x-request-id").map(str::len), Some(36));
    // An unsafe id is replaced, not echoed.
    let res = TestApp::read(
        app.client
            .get(app.url("/healthz"))
            .header("x-request-id", "a b<script>"),
    )
    .await;
    assert_ne!(res.header("x-request-id"), Some("a b<script>"));
}

#[tokio::test]
async fn unknown_routes_are_problem_json() {
    let app = TestApp::spawn().await;
    let res = app.get("/api/v1/nothing-here", None).await;
    let body = res.problem(404);
    assert_eq!(body["type"], "https://bookstore.example/problems/not-found");
}

#[tokio::test]
async fn openapi_and_docs_are_served() {
    let app = TestApp::spawn().await;
    let res = app.get("/api/v1/openapi.json", None).await;
    res.expect(200);
    assert_eq!(res.body["openapi"], "3.1.0");
    let docs = TestApp::read(app.client.get(app.url("/docs/"))).await;
    docs.expect(200);
    assert!(docs.text.contains("swagger"), "docs page: {}", docs.text);
}

/// The committed document must be what the code generates; regenerate it with
/// `cargo run -- openapi > openapi/openapi.json`.
#[test]
fn committed_openapi_matches_the_code() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = bookstore::app::openapi_json();
    if std::env::var("UPDATE_OPENAPI").is_ok() {
        std::fs::write(&path, &generated).expect("write openapi.json");
        return;
    }
    assert!(
        committed == generated,
        "openapi/openapi.json is out of date: run `UPDATE_OPENAPI=1 cargo test --test ops` or \
         `cargo run -- openapi > openapi/openapi.json` and commit it"
    );
}

#[tokio::test]
async fn cors_allows_configured_origins_only() {
    let app = TestApp::spawn_with(|s| s.cors_origins = vec!["https://shop.example".into()]).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/books"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
    };
    let res = TestApp::read(preflight("https://shop.example")).await;
    res.expect(200);
    assert_eq!(
        res.header("access-control-allow-origin"),
        Some("https://shop.example")
    );
    let res = TestApp::read(preflight("https://evil.example")).await;
    assert_eq!(res.header("access-control-allow-origin"), None);
    assert!(res.status.is_client_error(), "{}", res.status);

    let res = TestApp::read(
        app.client
            .get(app.url("/healthz"))
            .header("origin", "https://shop.example"),
    )
    .await;
    assert_eq!(
        res.header("access-control-allow-origin"),
        Some("https://shop.example")
    );
    assert!(res
        .header("access-control-expose-headers")
        .is_some_and(|h| h.contains("etag")));
}

/// When no database connection frees up in time the answer is a retryable 503, not a 500.
#[tokio::test]
async fn pool_exhaustion_is_a_retryable_503() {
    let app = TestApp::spawn_with(|s| s.pool_size = 1).await;
    let held = app.conn();
    let res = app.get("/readyz", None).await;
    let body = res.problem(503);
    assert_eq!(res.header("retry-after"), Some("1"));
    assert_eq!(
        body["type"],
        "https://bookstore.example/problems/unavailable"
    );
    assert!(
        !res.text.contains("timed out"),
        "no internal detail: {}",
        res.text
    );
    drop(held);
    app.get("/readyz", None).await.expect(200);
}
