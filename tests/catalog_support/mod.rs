//! Helpers shared by the catalog test files (`catalog_books`, `catalog_search`,
//! `catalog_taxonomy`, `catalog_import`): valid ISBNs, creating authors, categories and books
//! over HTTP, conditional PATCH, CSV uploads and timestamp checks.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use crate::common::*;
use serde_json::Value;

/// *The Left Hand of Darkness*, in both forms.
pub const LEFT_HAND_13: &str = "9780441478125";
pub const LEFT_HAND_10: &str = "0441478123";
pub const LEFT_HAND_10_HYPHENATED: &str = "0-441-47812-3";

/// A checksum-valid 978-prefixed ISBN-13 built from a number below 10^9.
pub fn isbn13(n: u64) -> String {
    let first12 = format!("978{n:09}");
    let sum: u32 = first12
        .bytes()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 1 } else { 3 })
        .sum();
    format!("{first12}{}", (10 - sum % 10) % 10)
}

/// The ISBN-10 form of a 978-prefixed ISBN-13.
pub fn isbn10(isbn13: &str) -> String {
    let body = &isbn13[3..12];
    let sum: u32 = body
        .bytes()
        .enumerate()
        .map(|(i, b)| (10 - i as u32) * u32::from(b - b'0'))
        .sum();
    let check = (11 - sum % 11) % 11;
    let check = if check == 10 {
        'X'
    } else {
        char::from(b'0' + check as u8)
    };
    format!("{body}{check}")
}

/// A minimal valid `POST /books` body.
pub fn book_body(isbn: &str, title: &str) -> Value {
    json!({
        "isbn": isbn,
        "title": title,
        "language": "en",
        "format": "paperback",
        "list_price_cents": 1000,
    })
}

/// `base` with the fields of `changes` set (a `null` sets null; use [`without`] to drop a field).
pub fn with(base: &Value, changes: Value) -> Value {
    let mut out = base.clone();
    for (k, v) in changes.as_object().expect("object").clone() {
        out[k] = v;
    }
    out
}

/// `base` without `field`.
pub fn without(base: &Value, field: &str) -> Value {
    let mut out = base.clone();
    out.as_object_mut().expect("object").remove(field);
    out
}

pub async fn create_author(app: &TestApp, token: &str, name: &str) -> i64 {
    let res = app
        .post("/api/v1/authors", Some(token), json!({ "name": name }))
        .await;
    res.expect(201);
    res.body["id"].as_i64().expect("author id")
}

pub async fn create_category(app: &TestApp, token: &str, name: &str, parent: Option<i64>) -> i64 {
    let res = app
        .post(
            "/api/v1/categories",
            Some(token),
            json!({ "name": name, "parent_id": parent }),
        )
        .await;
    res.expect(201);
    res.body["id"].as_i64().expect("category id")
}

/// Creates a book; returns its view.
pub async fn create_book(app: &TestApp, token: &str, body: Value) -> Value {
    let res = app.post("/api/v1/books", Some(token), body).await;
    res.expect(201);
    res.body.clone()
}

/// Creates a book; returns its id.
pub async fn create_book_id(app: &TestApp, token: &str, body: Value) -> i64 {
    create_book(app, token, body).await["id"]
        .as_i64()
        .expect("book id")
}

/// `PATCH` with an optional `If-Match`.
pub async fn patch_if(
    app: &TestApp,
    token: &str,
    path: &str,
    if_match: Option<&str>,
    body: Value,
) -> Res {
    let mut req = app
        .client
        .patch(app.url(path))
        .bearer_auth(token)
        .json(&body);
    if let Some(tag) = if_match {
        req = req.header("if-match", tag);
    }
    TestApp::read(req).await
}

/// Reads a book and patches it with the ETag just read.
pub async fn patch_book(app: &TestApp, token: &str, id: i64, body: Value) -> Res {
    let path = format!("/api/v1/books/{id}");
    let current = app.get(&path, None).await;
    current.expect(200);
    let etag = current.header("etag").expect("etag").to_owned();
    patch_if(app, token, &path, Some(&etag), body).await
}

/// `POST /books/import` with the given content type.
pub async fn upload(app: &TestApp, token: Option<&str>, content_type: &str, body: &str) -> Res {
    let mut req = app
        .client
        .post(app.url("/api/v1/books/import"))
        .header("content-type", content_type)
        .body(body.to_owned());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    TestApp::read(req).await
}

/// Uploads CSV as staff would.
pub async fn import_csv(app: &TestApp, token: &str, csv: &str) -> Res {
    upload(app, Some(token), "text/csv; charset=utf-8", csv).await
}

/// Asserts that `created_at` and `updated_at` are RFC 3339 UTC timestamps and removes them, so the
/// rest of a body can be compared exactly. Recurses into arrays and `items`.
pub fn without_times(value: &Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().map(without_times).collect()),
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                if k == "created_at" || k == "updated_at" {
                    let s = v.as_str().unwrap_or_else(|| panic!("{k} is a string: {v}"));
                    assert!(
                        s.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(s).is_ok(),
                        "{k} is RFC 3339 UTC: {s}"
                    );
                } else {
                    out.insert(k.clone(), without_times(v));
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// The ids of a page's items, in order.
pub fn ids(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a page: {page}"))
        .iter()
        .map(|b| b["id"].as_i64().expect("id"))
        .collect()
}

/// The titles of a page of books, in order.
pub fn titles(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a page: {page}"))
        .iter()
        .map(|b| b["title"].as_str().expect("title").to_owned())
        .collect()
}

/// The names of a page of authors or categories, in order.
pub fn names(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a page: {page}"))
        .iter()
        .map(|b| b["name"].as_str().expect("name").to_owned())
        .collect()
}

/// The `errors` of a validation problem, as (field, message) pairs.
pub fn field_errors(problem: &Value) -> Vec<(String, String)> {
    problem["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("errors: {problem}"))
        .iter()
        .map(|e| {
            (
                e["field"].as_str().expect("field").to_owned(),
                e["message"].as_str().expect("message").to_owned(),
            )
        })
        .collect()
}

/// Asserts a 422 whose only error is `field: message`, with the full problem body.
#[track_caller]
pub fn assert_invalid(res: &Res, field: &str, message: &str) {
    let body = res.invalid_field(field);
    assert_eq!(
        body,
        &json!({
            "type": "https://bookstore.example/problems/validation",
            "title": "Invalid input",
            "status": 422,
            "detail": format!("{field}: {message}"),
            "errors": [{ "field": field, "message": message }],
        })
    );
}

/// Asserts a problem of the given kind with an exact detail.
#[track_caller]
pub fn assert_problem(res: &Res, status: u16, slug: &str, title: &str, detail: &str) {
    let body = res.problem(status);
    assert_eq!(
        body,
        &json!({
            "type": format!("https://bookstore.example/problems/{slug}"),
            "title": title,
            "status": status,
            "detail": detail,
        })
    );
}
