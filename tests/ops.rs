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

/// A wrong method on an ops route is 405 naming the allowed ones, as problem+json.
#[tokio::test]
async fn wrong_method_on_ops_routes_is_405_with_allow() {
    let app = TestApp::spawn().await;
    for path in ["/healthz", "/readyz"] {
        for method in [
            reqwest::Method::POST,
            reqwest::Method::DELETE,
            reqwest::Method::PUT,
        ] {
            let res = app.send(method.clone(), path, None, None).await;
            res.problem(405);
            assert_eq!(res.header("allow"), Some("GET, HEAD"), "{method} {path}");
        }
    }
    // API routes list HEAD next to GET as well.
    let res = app
        .send(reqwest::Method::DELETE, "/api/v1/books", None, None)
        .await;
    res.problem(405);
    let allow = res.header("allow").unwrap_or_default();
    assert!(allow.contains("GET") && allow.contains("HEAD"), "{allow}");
}

#[tokio::test]
async fn docs_without_slash_redirects() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = TestApp::read(client.get(app.url("/docs"))).await;
    res.expect(308);
    assert_eq!(res.header("location"), Some("/docs/"));
    // Followed, it lands on the docs page.
    let docs = TestApp::read(app.client.get(app.url("/docs"))).await;
    docs.expect(200);
    assert!(docs.text.contains("swagger"), "{}", docs.text);
}

/// HEAD answers what GET answers (status and headers, `Content-Length` included) without a body,
/// on every GET route.
#[tokio::test]
async fn head_is_served_like_get() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let book = app
        .post(
            "/api/v1/books",
            Some(&staff),
            json!({"isbn": "9780441478125", "title": "The Left Hand of Darkness",
                   "language": "en", "format": "paperback", "list_price_cents": 1000}),
        )
        .await;
    book.expect(201);
    let book_path = format!("/api/v1/books/{}", book.body["id"]);
    for (path, token) in [
        ("/healthz", None),
        ("/readyz", None),
        ("/api/v1/openapi.json", None),
        ("/api/v1/books?per_page=5", None),
        (book_path.as_str(), None),
        ("/api/v1/inventory", Some(staff.as_str())),
        ("/docs/", None),
    ] {
        let get = app.send(reqwest::Method::GET, path, token, None).await;
        get.expect(200);
        let head = app.send(reqwest::Method::HEAD, path, token, None).await;
        head.expect(200);
        assert!(head.text.is_empty(), "{path}: {}", head.text);
        for name in ["content-type", "content-length", "etag"] {
            assert_eq!(head.header(name), get.header(name), "{path}: {name}");
        }
    }
    // HEAD keeps the GET's errors too.
    app.send(reqwest::Method::HEAD, "/api/v1/inventory", None, None)
        .await
        .expect(401);
    app.send(reqwest::Method::HEAD, "/api/v1/books/999999", None, None)
        .await
        .expect(404);

    // On the wire: headers only, nothing after them, so keep-alive connections stay in step.
    use std::io::{Read, Write};
    let addr = app.base.trim_start_matches("http://").to_owned();
    let raw = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .write_all(b"HEAD /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).unwrap();
        out
    })
    .await
    .unwrap();
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(
        raw.to_ascii_lowercase().contains("content-length: 15"),
        "{raw}"
    );
    assert!(raw.ends_with("\r\n\r\n"), "a body was sent: {raw:?}");
}
