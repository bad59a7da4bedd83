//! Hostile text: NUL and control characters in any text input are a 422 naming the field on both
//! backends (never a 500 from PostgreSQL, never stored by SQLite), checked by a sweep generated
//! from the OpenAPI document over every string property of every JSON body and every query
//! parameter; broken JSON is a 400 whatever it contains; CSV rows with control characters fail
//! alone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

mod catalog_support;
use catalog_support::*;

use reqwest::Method;
use serde_json::Value;

/// The tables a refused request must leave untouched.
const TABLES: [&str; 13] = [
    "users",
    "authors",
    "books",
    "categories",
    "suppliers",
    "stock_receipts",
    "stock_movements",
    "stocktakes",
    "webhook_endpoints",
    "orders",
    "purchase_orders",
    "returns",
    "idempotency_keys",
];

fn counts(app: &TestApp) -> Vec<(&'static str, i64)> {
    TABLES.iter().map(|t| (*t, app.count(t))).collect()
}

/// One step of a path into a JSON body.
#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    Index,
}

fn field_name(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if out.is_empty() => out.push_str(k),
            Seg::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Seg::Index => out.push_str("[0]"),
        }
    }
    out
}

/// Follows `$ref`s and picks the non-null variant of a nullable `oneOf`/`anyOf`.
fn resolve<'a>(doc: &'a Value, mut schema: &'a Value) -> &'a Value {
    loop {
        if let Some(r) = schema["$ref"].as_str() {
            let name = r.rsplit('/').next().unwrap();
            schema = &doc["components"]["schemas"][name];
            continue;
        }
        let variants = schema["oneOf"]
            .as_array()
            .or_else(|| schema["anyOf"].as_array())
            .or_else(|| schema["allOf"].as_array());
        if let Some(variants) = variants {
            if let Some(v) = variants.iter().find(|v| v["type"] != "null") {
                schema = v;
                continue;
            }
        }
        return schema;
    }
}

fn type_of(schema: &Value) -> &str {
    match &schema["type"] {
        Value::String(t) => t,
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if schema["properties"].is_object() => "object",
        _ if schema["enum"].is_array() => "string",
        _ => "null",
    }
}

/// A valid-looking value for a schema: its example where it has one, else minimal values.
fn minimal(doc: &Value, schema: &Value) -> Value {
    let schema = resolve(doc, schema);
    if !schema["example"].is_null() {
        return schema["example"].clone();
    }
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        return first.clone();
    }
    match type_of(schema) {
        "object" => {
            let mut out = serde_json::Map::new();
            for name in schema["required"].as_array().into_iter().flatten() {
                let name = name.as_str().unwrap();
                out.insert(name.into(), minimal(doc, &schema["properties"][name]));
            }
            Value::Object(out)
        }
        "array" => json!([minimal(doc, &schema["items"])]),
        "integer" | "number" => json!(schema["minimum"].as_i64().unwrap_or(1).max(1)),
        "boolean" => json!(false),
        "string" => match schema["format"].as_str() {
            Some("date") => json!("2030-01-01"),
            Some("date-time") => json!("2030-01-01T00:00:00Z"),
            Some("email") => json!("someone@example.com"),
            Some("uri") => json!("https://example.com/hook"),
            _ => json!("x"),
        },
        _ => Value::Null,
    }
}

/// Every string property reachable from `schema` (following `$ref`s, into arrays of objects).
fn string_paths(doc: &Value, schema: &Value, prefix: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    let schema = resolve(doc, schema);
    match type_of(schema) {
        "object" => {
            for (name, prop) in schema["properties"].as_object().into_iter().flatten() {
                prefix.push(Seg::Key(name.clone()));
                string_paths(doc, prop, prefix, out);
                prefix.pop();
            }
        }
        "array" => {
            prefix.push(Seg::Index);
            string_paths(doc, &schema["items"], prefix, out);
            prefix.pop();
        }
        "string" => out.push(prefix.clone()),
        _ => {}
    }
}

/// Sets the value at `path` inside `body`, creating what lies on the way from the schema.
fn set_path(doc: &Value, schema: &Value, body: &mut Value, path: &[Seg], leaf: Value) {
    let schema = resolve(doc, schema);
    let Some((first, rest)) = path.split_first() else {
        *body = leaf;
        return;
    };
    match first {
        Seg::Key(k) => {
            if !body.is_object() {
                *body = json!({});
            }
            let prop = &schema["properties"][k];
            if body[k].is_null() || (rest.is_empty() && !body[k].is_string()) {
                body[k] = minimal(doc, prop);
            }
            set_path(doc, prop, &mut body[k], rest, leaf);
        }
        Seg::Index => {
            let items = &schema["items"];
            if body.as_array().is_none_or(Vec::is_empty) {
                *body = json!([minimal(doc, items)]);
            }
            set_path(doc, items, &mut body[0], rest, leaf);
        }
    }
}

fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => in_param = true,
            '}' => {
                in_param = false;
                out.push('1');
            }
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

fn operations(doc: &Value) -> Vec<(Method, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            out.push((method, path.clone(), op));
        }
    }
    out
}

/// Every string property of every JSON request body in the OpenAPI document, set to `a\0b` in
/// an otherwise valid-looking body: 422 naming that property, on every operation, and nothing
/// written. Then every query parameter of every GET operation, likewise.
#[tokio::test]
async fn nul_in_any_documented_text_input_is_422_naming_it() {
    let app = TestApp::spawn().await;
    let admin = app.admin();
    let doc = serde_json::to_value(bookstore::app::openapi()).unwrap();
    let before = counts(&app);

    let mut bodies_checked = 0;
    let mut failures = Vec::new();
    for (method, path, op) in operations(&doc) {
        let Some(schema) = op["requestBody"]["content"]
            .get("application/json")
            .map(|c| &c["schema"])
        else {
            continue;
        };
        let mut paths = Vec::new();
        string_paths(&doc, schema, &mut Vec::new(), &mut paths);
        let anonymous = path.ends_with("/auth/register") || path.ends_with("/auth/login");
        let token = (!anonymous).then_some(admin.as_str());
        for target in paths {
            let field = field_name(&target);
            let mut body = minimal(&doc, schema);
            set_path(&doc, schema, &mut body, &target, json!("a\u{0}b"));
            let res = app
                .send(method.clone(), &concrete(&path), token, Some(body.clone()))
                .await;
            bodies_checked += 1;
            let named: Vec<&str> = res.body["errors"]
                .as_array()
                .map(|a| a.iter().filter_map(|e| e["field"].as_str()).collect())
                .unwrap_or_default();
            let ok = res.status == 422
                && res.header("content-type") == Some("application/problem+json")
                && named == [field.as_str()];
            if !ok {
                failures.push(format!(
                    "{method} {path} {field}: {} {} (body {body})",
                    res.status, res.text
                ));
            }
        }
    }

    let mut params_checked = 0;
    for (method, path, op) in operations(&doc) {
        if method != Method::GET {
            continue;
        }
        for param in op["parameters"].as_array().into_iter().flatten() {
            if param["in"] != "query" {
                continue;
            }
            let name = param["name"].as_str().unwrap();
            let url = format!("{}?{name}=a%00b", concrete(&path));
            let res = app.get(&url, Some(&admin)).await;
            params_checked += 1;
            let named: Vec<&str> = res.body["errors"]
                .as_array()
                .map(|a| a.iter().filter_map(|e| e["field"].as_str()).collect())
                .unwrap_or_default();
            if !(res.status == 422 && named == [name]) {
                failures.push(format!("GET {url}: {} {}", res.status, res.text));
            }
        }
    }

    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The sweep really covered the API (the counts at the time of writing: 60 and 23).
    assert!(bodies_checked >= 50, "only {bodies_checked} body fields");
    assert!(
        params_checked >= 20,
        "only {params_checked} query parameters"
    );
    assert_eq!(counts(&app), before, "a refused request wrote rows");
}

#[tokio::test]
async fn control_characters_follow_the_one_text_rule() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let before = app.count("categories");
    // Free-text fields take tabs and line breaks, single-line fields take none.
    let res = app
        .post(
            "/api/v1/categories",
            Some(&staff),
            json!({"name": "Poetry", "description": "Verse\n\tand\r\nrhyme"}),
        )
        .await;
    res.expect(201);
    assert_eq!(res.body["description"], "Verse\n\tand\r\nrhyme");
    for name in ["Tab\there", "Line\nbreak", "Bell\u{7}", "Nul\u{0}"] {
        app.post("/api/v1/categories", Some(&staff), json!({ "name": name }))
            .await
            .invalid_field("name");
    }
    // Other controls are refused in free text too.
    let res = app
        .post(
            "/api/v1/categories",
            Some(&staff),
            json!({"name": "Drama", "description": "esc\u{1b}[31m"}),
        )
        .await;
    let body = res.invalid_field("description");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("U+001B"),
        "{}",
        res.text
    );
    assert_eq!(app.count("categories"), before + 1);

    // Nested fields are named by their path; printable Unicode passes.
    let res = app
        .post(
            "/api/v1/orders",
            Some(&staff),
            json!({"lines": [{"book_id": 1, "quantity": 1}],
                   "shipping_address": {"name": "Zoë\u{0}", "line1": "1 rue", "city": "Paris",
                                        "postal_code": "75001", "country": "FR"}}),
        )
        .await;
    res.invalid_field("shipping_address.name");

    // Anonymous entry points, and query parameters.
    app.post(
        "/api/v1/auth/register",
        None,
        json!({"email": "nul@example.com", "password": PASSWORD, "name": "a\u{0}b"}),
    )
    .await
    .invalid_field("name");
    app.post(
        "/api/v1/auth/login",
        None,
        json!({"email": "a\u{0}b@example.com", "password": PASSWORD}),
    )
    .await
    .invalid_field("email");
    app.get("/api/v1/authors?q=a%00b", None)
        .await
        .invalid_field("q");
    app.get("/api/v1/books?q=tab%09here", None)
        .await
        .invalid_field("q");
    app.get("/api/v1/books?q=caf%C3%A9", None).await.expect(200);
    app.get("/api/v1/suppliers?q=a%00b", Some(&staff))
        .await
        .invalid_field("q");
    app.get("/api/v1/inventory?q=a%00b", Some(&staff))
        .await
        .invalid_field("q");
    app.get("/api/v1/users?q=a%00b", Some(&app.admin()))
        .await
        .invalid_field("q");
}

#[tokio::test]
async fn nul_in_path_segments_is_never_a_server_error() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    for path in [
        "/api/v1/books/isbn/978%000441478125",
        "/api/v1/books/isbn/%00",
        "/api/v1/books/1%00",
        "/api/v1/authors/%00",
        "/api/v1/orders/%00/cancel",
        "/api/v1/nothing%00here",
        "/docs/%00",
    ] {
        let res = app.get(path, Some(&staff)).await;
        assert!(
            [404, 405, 422].contains(&res.status.as_u16()),
            "{path}: {} {}",
            res.status,
            res.text
        );
        res.problem(res.status.as_u16());
    }
}

/// Syntactically broken JSON is 400 however far a type error would have been met; well-formed
/// JSON of the wrong shape is 422 naming the field.
#[tokio::test]
async fn broken_json_is_400_and_wrong_shapes_are_422() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let raw = |path: &'static str, body: &'static str| {
        TestApp::read(
            app.client
                .post(app.url(path))
                .bearer_auth(&staff)
                .header("content-type", "application/json")
                .body(body),
        )
    };
    for (path, body) in [
        ("/api/v1/books", r#"{"title": [1, 2,"#),
        ("/api/v1/books", r#"{"isbn": 5, "title": "#),
        ("/api/v1/authors", r#"{"name": "Ann"} trailing"#),
        ("/api/v1/authors", r#"{"name": "Ann""#),
        ("/api/v1/orders", r#"{"lines": [{"book_id": "x"}, "#),
        ("/api/v1/orders/1/cancel", r#"{"reason": 5,"#),
        ("/api/v1/inventory/stocktakes", r#"{"scope": 1} {"#),
    ] {
        let res = raw(path, body).await;
        let problem = res.problem(400);
        assert_eq!(
            problem["type"], "https://bookstore.example/problems/bad-request",
            "{path} {body}"
        );
    }
    raw("/api/v1/books", r#"{"title": [1, 2]}"#)
        .await
        .invalid_field("title");
    raw("/api/v1/authors", r#"{"bio": "x"}"#)
        .await
        .invalid_field("name");
    raw(
        "/api/v1/orders",
        r#"{"lines": [{"book_id": "x", "quantity": 1}]}"#,
    )
    .await
    .invalid_field("lines[0].book_id");
    assert_eq!(app.count("books") + app.count("authors"), 0);
}

/// A CSV row with NUL or a control character in a cell is listed in `failed` naming the column;
/// the other rows are imported. Tabs and line breaks stay allowed in `description`.
#[tokio::test]
async fn csv_rows_with_control_characters_fail_alone() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let csv = format!(
        "isbn,title,language,format,list_price_cents,description,authors\n\
         {},Fine,en,paperback,100,\"two\nlines\twith a tab\",Ann\n\
         {},Bad\u{0}title,en,paperback,100,,Ann\n\
         {},Bell,en,paperback,100,ring\u{7},Ann\n\
         {},Also fine,en,paperback,100,,Bo\u{0}b\n\
         {},Last,en,paperback,100,,Cy\n",
        isbn13(41),
        isbn13(42),
        isbn13(43),
        isbn13(44),
        isbn13(45),
    );
    let res = import_csv(&app, &staff, &csv).await;
    res.expect(200);
    assert_eq!(res.body["created"], 2, "{}", res.text);
    let failed: Vec<(u64, &str)> = res.body["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["row"].as_u64().unwrap(), f["field"].as_str().unwrap()))
        .collect();
    assert_eq!(
        failed,
        [(4, "title"), (5, "description"), (6, "authors")],
        "{}",
        res.text
    );
    assert_eq!(app.count("books"), 2);
    let page = app.get("/api/v1/books?sort=title", None).await;
    assert_eq!(titles(&page.body), ["Fine", "Last"]);
    assert_eq!(
        page.body["items"][0]["description"],
        "two\nlines\twith a tab"
    );
}
