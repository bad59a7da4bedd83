//! Books over HTTP: create, validation, auth, read by id and ISBN, conditional update, delete, and
//! the framework errors (malformed JSON, wrong media type, oversize body, wrong method).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

mod catalog_support;
use catalog_support::*;

use bookstore::catalog::model::BookRow;
use bookstore::db::schema::{authors, book_authors, book_categories, books, categories};
use diesel::prelude::*;
use reqwest::Method;
use serde_json::Value;

/// The book's row, if it exists.
fn book_row(app: &TestApp, id: i64) -> Option<BookRow> {
    let mut conn = app.conn();
    books::table
        .find(id)
        .select(BookRow::as_select())
        .first(&mut *conn)
        .optional()
        .expect("query")
}

/// (author id, position, role) of a book's credits, in credit order.
fn credits(app: &TestApp, book_id: i64) -> Vec<(i64, i32, String)> {
    let mut conn = app.conn();
    book_authors::table
        .filter(book_authors::book_id.eq(book_id))
        .order(book_authors::position)
        .select((
            book_authors::author_id,
            book_authors::position,
            book_authors::role,
        ))
        .load(&mut *conn)
        .expect("query")
}

/// Category ids a book is filed under, ascending.
fn filed_under(app: &TestApp, book_id: i64) -> Vec<i64> {
    let mut conn = app.conn();
    book_categories::table
        .filter(book_categories::book_id.eq(book_id))
        .order(book_categories::category_id)
        .select(book_categories::category_id)
        .load(&mut *conn)
        .expect("query")
}

/// The full body of a new book with two contributors and two categories.
struct Fixture {
    leguin: i64,
    translator: i64,
    fantasy: i64,
    science_fiction: i64,
}

async fn fixture(app: &TestApp, staff: &str) -> Fixture {
    Fixture {
        leguin: create_author(app, staff, "Ursula K. Le Guin").await,
        translator: create_author(app, staff, "Jean Bonnefoy").await,
        // Lower-case names: categories on a book are listed by name.
        science_fiction: create_category(app, staff, "science fiction", None).await,
        fantasy: create_category(app, staff, "fantasy", None).await,
    }
}

fn left_hand_body(f: &Fixture) -> Value {
    json!({
        "isbn": LEFT_HAND_10_HYPHENATED,
        "title": "  The Left Hand of Darkness ",
        "subtitle": "",
        "description": "A lone envoy visits a planet whose people have no fixed sex.",
        "language": "EN",
        "publisher": "Ace",
        "publication_date": "1969-03-01",
        "page_count": 304,
        "format": "paperback",
        "list_price_cents": 1799,
        "cover_url": "https://covers.example/lhod.jpg",
        "authors": [
            { "author_id": f.leguin },
            { "author_id": f.translator, "role": "translator" },
        ],
        "category_ids": [f.science_fiction, f.fantasy],
    })
}

fn left_hand_view(id: i64, f: &Fixture) -> Value {
    json!({
        "id": id,
        "isbn": LEFT_HAND_13,
        "isbn10": LEFT_HAND_10,
        "title": "The Left Hand of Darkness",
        "subtitle": null,
        "description": "A lone envoy visits a planet whose people have no fixed sex.",
        "language": "en",
        "publisher": "Ace",
        "publication_date": "1969-03-01",
        "page_count": 304,
        "format": "paperback",
        "list_price_cents": 1799,
        "currency": "USD",
        "available": 0,
        "cover_url": "https://covers.example/lhod.jpg",
        "status": "active",
        "version": 1,
        "authors": [
            { "id": f.leguin, "name": "Ursula K. Le Guin", "role": "author" },
            { "id": f.translator, "name": "Jean Bonnefoy", "role": "translator" },
        ],
        "categories": [
            { "id": f.fantasy, "name": "fantasy" },
            { "id": f.science_fiction, "name": "science fiction" },
        ],
    })
}

#[tokio::test]
async fn create_returns_the_normalised_book_with_location_and_etag() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let f = fixture(&app, &staff).await;

    let res = app
        .post("/api/v1/books", Some(&staff), left_hand_body(&f))
        .await;
    res.expect(201);
    let id = res.body["id"].as_i64().expect("id");
    assert_eq!(
        res.header("location"),
        Some(format!("/api/v1/books/{id}").as_str())
    );
    assert_eq!(res.header("etag"), Some("\"1\""));
    assert_eq!(res.header("content-type"), Some("application/json"));
    assert_eq!(without_times(&res.body), left_hand_view(id, &f));
    assert_eq!(res.body["created_at"], res.body["updated_at"]);

    // What was written.
    let row = book_row(&app, id).expect("row");
    assert_eq!(row.isbn, LEFT_HAND_13);
    assert_eq!(row.title, "The Left Hand of Darkness");
    assert_eq!(row.subtitle, None);
    assert_eq!(row.language, "en");
    assert_eq!(row.format, "paperback");
    assert_eq!(row.list_price_cents, 1799);
    assert_eq!(row.page_count, Some(304));
    assert_eq!(row.status, "active");
    assert_eq!(row.version, 1);
    assert_eq!(
        credits(&app, id),
        vec![
            (f.leguin, 0, "author".to_owned()),
            (f.translator, 1, "translator".to_owned()),
        ]
    );
    let mut cats = vec![f.science_fiction, f.fantasy];
    cats.sort_unstable();
    assert_eq!(filed_under(&app, id), cats);
    assert_eq!(app.count("books"), 1);

    // The same view is served by id, with the ETag.
    let got = app.get(&format!("/api/v1/books/{id}"), None).await;
    got.expect(200);
    assert_eq!(got.header("etag"), Some("\"1\""));
    assert_eq!(got.body, res.body);

    // An admin may write too; a book without contributors, categories or optional fields.
    let admin = app.admin();
    let isbn = isbn13(1);
    let res = app
        .post("/api/v1/books", Some(&admin), book_body(&isbn, "Bare"))
        .await;
    res.expect(201);
    let bare = res.body["id"].as_i64().expect("id");
    assert_eq!(
        without_times(&res.body),
        json!({
            "id": bare, "isbn": isbn, "isbn10": isbn10(&isbn), "title": "Bare", "subtitle": null,
            "description": null, "language": "en", "publisher": null, "publication_date": null,
            "page_count": null, "format": "paperback", "list_price_cents": 1000,
            "currency": "USD", "available": 0, "cover_url": null, "status": "active",
            "version": 1, "authors": [], "categories": [],
        })
    );

    // A 979 ISBN has no ISBN-10 form.
    let res = app
        .post(
            "/api/v1/books",
            Some(&staff),
            book_body("979-10-90636-07-1", "Nine seven nine"),
        )
        .await;
    res.expect(201);
    assert_eq!(res.body["isbn"], "9791090636071");
    assert_eq!(res.body["isbn10"], Value::Null);
    assert_eq!(app.count("books"), 3);
}

#[tokio::test]
async fn each_invalid_field_is_named_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let author = create_author(&app, &staff, "Someone").await;
    let category = create_category(&app, &staff, "somewhere", None).await;
    let base = book_body(LEFT_HAND_13, "The Left Hand of Darkness");

    let cases: Vec<(Value, &str, String)> = vec![
        (
            with(&base, json!({"isbn": "9780441478126"})),
            "isbn",
            "has a wrong check digit".into(),
        ),
        (
            with(&base, json!({"isbn": "0441478124"})),
            "isbn",
            "has a wrong check digit".into(),
        ),
        (
            with(&base, json!({"isbn": "978044147812"})),
            "isbn",
            "must have 10 or 13 digits".into(),
        ),
        (
            with(&base, json!({"isbn": "ISBN 0441478123"})),
            "isbn",
            "may contain only digits, hyphens, spaces and a final X".into(),
        ),
        (
            with(&base, json!({"isbn": "1234567890128"})),
            "isbn",
            "an ISBN-13 must start with 978 or 979".into(),
        ),
        (
            with(&base, json!({"title": "   "})),
            "title",
            "must not be empty".into(),
        ),
        (
            with(&base, json!({"title": "x".repeat(501)})),
            "title",
            "must be at most 500 characters".into(),
        ),
        (
            with(&base, json!({"language": "english"})),
            "language",
            "must be an ISO 639-1 code such as en, fr or de".into(),
        ),
        (
            with(&base, json!({"language": "xx"})),
            "language",
            "must be an ISO 639-1 code such as en, fr or de".into(),
        ),
        (
            with(&base, json!({"list_price_cents": 0})),
            "list_price_cents",
            "must be greater than 0".into(),
        ),
        (
            with(&base, json!({"list_price_cents": -100})),
            "list_price_cents",
            "must be greater than 0".into(),
        ),
        (
            with(&base, json!({"list_price_cents": 100_000_001})),
            "list_price_cents",
            "must be at most 100000000".into(),
        ),
        (
            with(&base, json!({"page_count": 0})),
            "page_count",
            "must be between 1 and 100000".into(),
        ),
        (
            with(&base, json!({"cover_url": "ftp://covers.example/x.jpg"})),
            "cover_url",
            "must be an http(s) URL".into(),
        ),
        (
            with(&base, json!({"cover_url": "javascript:alert(1)"})),
            "cover_url",
            "must be an http(s) URL".into(),
        ),
        (
            with(&base, json!({"publication_date": "1200-01-01"})),
            "publication_date",
            "must be between 1400-01-01 and five years from now".into(),
        ),
        (
            with(&base, json!({"authors": [{"author_id": author + 1000}]})),
            "authors[0].author_id",
            format!("no author with id {}", author + 1000),
        ),
        (
            with(&base, json!({"category_ids": [category + 1000]})),
            "category_ids[0]",
            format!("no category with id {}", category + 1000),
        ),
        (
            with(
                &base,
                json!({"authors": [{"author_id": author}, {"author_id": author, "role": "author"}]}),
            ),
            "authors[1]",
            "lists the same author in the same role twice".into(),
        ),
        (
            with(&base, json!({"category_ids": [category, category]})),
            "category_ids[1]",
            "is listed twice".into(),
        ),
    ];
    for (body, field, message) in cases {
        let res = app.post("/api/v1/books", Some(&staff), body.clone()).await;
        assert_eq!(res.status.as_u16(), 422, "{body}: {}", res.text);
        assert_invalid(&res, field, &message);
    }

    // Serde-level errors (unknown enum value, wrong type, missing field) also name the field.
    let serde_cases: Vec<(Value, &str, &str)> = vec![
        (
            with(&base, json!({"format": "scroll"})),
            "format",
            "unknown variant `scroll`, expected one of `hardcover`, `paperback`, `ebook`, `audiobook`",
        ),
        (
            with(&base, json!({"list_price_cents": "12.99"})),
            "list_price_cents",
            "invalid type: string \"12.99\", expected i64",
        ),
        (without(&base, "title"), "title", "missing field `title`"),
        (
            with(&base, json!({"authors": [{"author_id": author, "role": "ghostwriter"}]})),
            "authors[0].role",
            "unknown variant `ghostwriter`, expected one of `author`, `editor`, `translator`, `illustrator`",
        ),
    ];
    for (body, field, message) in serde_cases {
        let res = app.post("/api/v1/books", Some(&staff), body).await;
        assert_invalid(&res, field, message);
    }

    // Several invalid fields are reported together.
    let res = app
        .post(
            "/api/v1/books",
            Some(&staff),
            with(
                &base,
                json!({"isbn": "12", "title": "", "list_price_cents": 0, "page_count": -1}),
            ),
        )
        .await;
    let body = res.problem(422);
    assert_eq!(body["detail"], "4 fields are invalid");
    assert_eq!(
        field_errors(body),
        vec![
            ("isbn".to_owned(), "must have 10 or 13 digits".to_owned()),
            ("title".to_owned(), "must not be empty".to_owned()),
            (
                "page_count".to_owned(),
                "must be between 1 and 100000".to_owned()
            ),
            (
                "list_price_cents".to_owned(),
                "must be greater than 0".to_owned()
            ),
        ]
    );

    // A valid author and an unknown one: both checked, nothing written.
    let res = app
        .post(
            "/api/v1/books",
            Some(&staff),
            with(
                &base,
                json!({"authors": [{"author_id": author}, {"author_id": -1}], "category_ids": [-2]}),
            ),
        )
        .await;
    let body = res.problem(422);
    assert_eq!(
        field_errors(body),
        vec![
            (
                "authors[1].author_id".to_owned(),
                "no author with id -1".to_owned()
            ),
            (
                "category_ids[0]".to_owned(),
                "no category with id -2".to_owned()
            ),
        ]
    );

    assert_eq!(app.count("books"), 0);
    assert_eq!(app.count("book_authors"), 0);
    assert_eq!(app.count("book_categories"), 0);
    // The lookups did not create anything either.
    assert_eq!(app.count("authors"), 1);
    assert_eq!(app.count("categories"), 1);

    // The valid body still works afterwards.
    create_book(&app, &staff, base).await;
    assert_eq!(app.count("books"), 1);
}

#[tokio::test]
async fn malformed_json_wrong_media_type_and_oversize_bodies() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let url = app.url("/api/v1/books");

    // Malformed JSON: 400.
    let res = TestApp::read(
        app.client
            .post(&url)
            .bearer_auth(&staff)
            .header("content-type", "application/json")
            .body(r#"{"isbn": "9780441478125", "title": "#),
    )
    .await;
    let body = res.problem(400);
    assert_eq!(
        body["type"],
        "https://bookstore.example/problems/bad-request"
    );
    assert_eq!(body["title"], "Malformed request");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("the body is not valid JSON: "),
        "{body}"
    );

    // Not an object at all: well-formed JSON of the wrong shape is a 422 on the body.
    let res = TestApp::read(
        app.client
            .post(&url)
            .bearer_auth(&staff)
            .header("content-type", "application/json")
            .body("\"a string\""),
    )
    .await;
    assert_invalid(
        &res,
        "body",
        "invalid type: string \"a string\", expected struct NewBook",
    );

    // Wrong or missing content type: 415, whatever the body.
    let json_text = book_body(LEFT_HAND_13, "Title").to_string();
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut req = app
            .client
            .post(&url)
            .bearer_auth(&staff)
            .body(json_text.clone());
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let res = TestApp::read(req).await;
        assert_problem(
            &res,
            415,
            "unsupported-media-type",
            "Unsupported media type",
            "the body must be JSON, sent with Content-Type: application/json",
        );
    }
    // A charset parameter is fine.
    let res = TestApp::read(
        app.client
            .post(&url)
            .bearer_auth(&staff)
            .header("content-type", "application/json; charset=utf-8")
            .body(json_text),
    )
    .await;
    res.expect(201);
    assert_eq!(app.count("books"), 1);

    // More than 256 KiB: 413, before anything is parsed or written.
    let huge = with(
        &book_body(&isbn13(2), "Huge"),
        json!({"description": "x".repeat(300 * 1024)}),
    );
    let res = app.post("/api/v1/books", Some(&staff), huge).await;
    assert_problem(
        &res,
        413,
        "payload-too-large",
        "Payload too large",
        "the body exceeds the limit of 262144 bytes",
    );
    assert_eq!(app.count("books"), 1);
}

#[tokio::test]
async fn every_write_route_needs_a_staff_token() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let customer = app.customer();
    let author = create_author(&app, &staff, "Ursula K. Le Guin").await;
    let category = create_category(&app, &staff, "fiction", None).await;
    let book = create_book_id(&app, &staff, book_body(LEFT_HAND_13, "Original")).await;

    let csv = "isbn,title,language,format,list_price_cents\n9780306406157,New,en,paperback,100\n";
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::POST,
            "/api/v1/books".into(),
            Some(book_body(&isbn13(7), "New")),
        ),
        (
            Method::PATCH,
            format!("/api/v1/books/{book}"),
            Some(json!({"title": "Changed"})),
        ),
        (Method::DELETE, format!("/api/v1/books/{book}"), None),
        (Method::POST, "/api/v1/books/import".into(), None),
        (
            Method::POST,
            "/api/v1/authors".into(),
            Some(json!({"name": "New"})),
        ),
        (
            Method::PATCH,
            format!("/api/v1/authors/{author}"),
            Some(json!({"name": "Changed"})),
        ),
        (Method::DELETE, format!("/api/v1/authors/{author}"), None),
        (
            Method::POST,
            "/api/v1/categories".into(),
            Some(json!({"name": "new"})),
        ),
        (
            Method::PATCH,
            format!("/api/v1/categories/{category}"),
            Some(json!({"name": "changed"})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/categories/{category}"),
            None,
        ),
    ];
    for (method, path, body) in &routes {
        for token in [None, Some("not-a-jwt"), Some(customer.as_str())] {
            let mut req = app
                .client
                .request(method.clone(), app.url(path))
                .header("if-match", "\"1\"");
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            req = match body {
                Some(b) => req.json(b),
                // The import takes CSV.
                None => req.header("content-type", "text/csv").body(csv),
            };
            let res = TestApp::read(req).await;
            let context = format!("{method} {path} with {token:?}");
            if token == Some(customer.as_str()) {
                assert_eq!(res.status.as_u16(), 403, "{context}: {}", res.text);
                assert_problem(
                    &res,
                    403,
                    "forbidden",
                    "Forbidden",
                    "this action needs the staff or admin role",
                );
            } else {
                assert_eq!(res.status.as_u16(), 401, "{context}: {}", res.text);
                let body = res.problem(401);
                assert_eq!(
                    body["type"],
                    "https://bookstore.example/problems/unauthorized"
                );
                assert_eq!(res.header("www-authenticate"), Some("Bearer"), "{context}");
            }
        }
    }

    // Nothing changed.
    assert_eq!(app.count("books"), 1);
    assert_eq!(app.count("authors"), 1);
    assert_eq!(app.count("categories"), 1);
    let row = book_row(&app, book).expect("row");
    assert_eq!((row.title.as_str(), row.version), ("Original", 1));
    let mut conn = app.conn();
    let name: String = authors::table
        .find(author)
        .select(authors::name)
        .first(&mut *conn)
        .unwrap();
    assert_eq!(name, "Ursula K. Le Guin");
    let name: String = categories::table
        .find(category)
        .select(categories::name)
        .first(&mut *conn)
        .unwrap();
    assert_eq!(name, "fiction");
}

#[tokio::test]
async fn the_same_isbn_in_either_form_is_a_conflict() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let id = create_book_id(&app, &staff, book_body(LEFT_HAND_13, "First")).await;

    for isbn in [LEFT_HAND_10, LEFT_HAND_10_HYPHENATED, "978-0-441-47812-5"] {
        let res = app
            .post("/api/v1/books", Some(&staff), book_body(isbn, "Second"))
            .await;
        assert_problem(
            &res,
            409,
            "conflict",
            "Conflict",
            &format!("a book with ISBN {LEFT_HAND_13} already exists (id {id})"),
        );
    }
    assert_eq!(app.count("books"), 1);
    assert_eq!(book_row(&app, id).expect("row").title, "First");
}

#[tokio::test]
async fn get_by_id_and_by_isbn() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let created = create_book(
        &app,
        &staff,
        book_body(LEFT_HAND_10, "The Left Hand of Darkness"),
    )
    .await;
    let id = created["id"].as_i64().unwrap();

    let res = app.get(&format!("/api/v1/books/{id}"), None).await;
    res.expect(200);
    assert_eq!(res.header("etag"), Some("\"1\""));
    assert_eq!(res.body, created);

    // Reads are public, and staff see the same thing.
    let res = app.get(&format!("/api/v1/books/{id}"), Some(&staff)).await;
    assert_eq!(res.body, created);

    for isbn in [
        LEFT_HAND_13,
        LEFT_HAND_10,
        LEFT_HAND_10_HYPHENATED,
        "978-0-441-47812-5",
    ] {
        let res = app.get(&format!("/api/v1/books/isbn/{isbn}"), None).await;
        res.expect(200);
        assert_eq!(res.header("etag"), Some("\"1\""), "{isbn}");
        assert_eq!(res.body, created, "{isbn}");
    }

    let res = app.get(&format!("/api/v1/books/{}", id + 100), None).await;
    assert_problem(
        &res,
        404,
        "not-found",
        "Not found",
        &format!("no book with id {}", id + 100),
    );
    let res = app.get("/api/v1/books/abc", None).await;
    let body = res.problem(404);
    assert_eq!(body["type"], "https://bookstore.example/problems/not-found");

    let res = app.get("/api/v1/books/isbn/0441478124", None).await;
    assert_invalid(&res, "isbn", "has a wrong check digit");
    let res = app.get("/api/v1/books/isbn/12345", None).await;
    assert_invalid(&res, "isbn", "must have 10 or 13 digits");
    let other = isbn13(42);
    let res = app.get(&format!("/api/v1/books/isbn/{other}"), None).await;
    assert_problem(
        &res,
        404,
        "not-found",
        "Not found",
        &format!("no book with ISBN {other}"),
    );
}

#[tokio::test]
async fn patch_needs_a_current_if_match_and_bumps_the_version() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let f = fixture(&app, &staff).await;
    let created = create_book(&app, &staff, left_hand_body(&f)).await;
    let id = created["id"].as_i64().unwrap();
    let path = format!("/api/v1/books/{id}");
    let other_isbn = isbn13(77);
    let other = create_book_id(&app, &staff, book_body(&other_isbn, "Other")).await;

    // Give it a subtitle first, then change the price and clear the subtitle with null.
    let res = patch_if(
        &app,
        &staff,
        &path,
        Some("\"1\""),
        json!({"subtitle": "A novel"}),
    )
    .await;
    res.expect(200);
    assert_eq!(res.header("etag"), Some("\"2\""));
    assert_eq!(res.body["subtitle"], "A novel");
    assert_eq!(res.body["version"], 2);

    let res = patch_if(
        &app,
        &staff,
        &path,
        Some("\"2\""),
        json!({"list_price_cents": 1599, "subtitle": null}),
    )
    .await;
    res.expect(200);
    assert_eq!(res.header("etag"), Some("\"3\""));
    let mut expected = left_hand_view(id, &f);
    expected["version"] = json!(3);
    expected["list_price_cents"] = json!(1599);
    assert_eq!(without_times(&res.body), expected);
    assert_eq!(res.body["created_at"], created["created_at"]);
    assert_ne!(res.body["updated_at"], created["updated_at"]);
    let row = book_row(&app, id).unwrap();
    assert_eq!(
        (row.version, row.list_price_cents, row.subtitle),
        (3, 1599, None)
    );
    // An absent field is kept: the description is still there.
    assert!(row.description.is_some());

    // Without If-Match: 428, nothing changes.
    let res = patch_if(&app, &staff, &path, None, json!({"list_price_cents": 1})).await;
    assert_problem(
        &res,
        428,
        "precondition-required",
        "Precondition required",
        "send If-Match with the ETag of the version you are changing",
    );
    // With a stale version: 412, nothing changes.
    let res = patch_if(
        &app,
        &staff,
        &path,
        Some("\"2\""),
        json!({"list_price_cents": 1}),
    )
    .await;
    assert_problem(
        &res,
        412,
        "precondition-failed",
        "Precondition failed",
        "the book has changed since you read it (current version 3); fetch it again",
    );
    // A tag that is not a version: 412.
    let res = patch_if(
        &app,
        &staff,
        &path,
        Some("\"abc\""),
        json!({"list_price_cents": 1}),
    )
    .await;
    res.problem(412);
    let row = book_row(&app, id).unwrap();
    assert_eq!((row.version, row.list_price_cents), (3, 1599));

    // Invalid fields: 422 and unchanged.
    let res = patch_if(
        &app,
        &staff,
        &path,
        Some("\"3\""),
        json!({"list_price_cents": 0}),
    )
    .await;
    assert_invalid(&res, "list_price_cents", "must be greater than 0");
    let res = patch_if(
        &app,
        &staff,
        &path,
        Some("\"3\""),
        json!({"authors": [{"author_id": 9999}]}),
    )
    .await;
    assert_invalid(&res, "authors[0].author_id", "no author with id 9999");
    let res = patch_if(
        &app,
        &staff,
        &path,
        Some("\"3\""),
        json!({"format": "scroll"}),
    )
    .await;
    res.invalid_field("format");
    let row = book_row(&app, id).unwrap();
    assert_eq!((row.version, row.list_price_cents), (3, 1599));
    assert_eq!(credits(&app, id).len(), 2);

    // Changing the ISBN to another book's (given as ISBN-10): 409, unchanged.
    let res = patch_if(
        &app,
        &staff,
        &path,
        Some("\"3\""),
        json!({"isbn": isbn10(&other_isbn)}),
    )
    .await;
    assert_problem(
        &res,
        409,
        "conflict",
        "Conflict",
        &format!("a book with ISBN {other_isbn} already exists (id {other})"),
    );
    let row = book_row(&app, id).unwrap();
    assert_eq!((row.isbn.as_str(), row.version), (LEFT_HAND_13, 3));

    // Replacing contributors and categories (a weak ETag is accepted too).
    let editor = create_author(&app, &staff, "Harold Bloom").await;
    let res = patch_if(
        &app,
        &staff,
        &path,
        Some("W/\"3\""),
        json!({
            "authors": [
                {"author_id": editor, "role": "editor"},
                {"author_id": f.leguin, "role": "author"},
                {"author_id": f.leguin, "role": "illustrator"},
            ],
            "category_ids": [f.fantasy],
        }),
    )
    .await;
    res.expect(200);
    assert_eq!(res.header("etag"), Some("\"4\""));
    assert_eq!(
        res.body["authors"],
        json!([
            {"id": editor, "name": "Harold Bloom", "role": "editor"},
            {"id": f.leguin, "name": "Ursula K. Le Guin", "role": "author"},
            {"id": f.leguin, "name": "Ursula K. Le Guin", "role": "illustrator"},
        ])
    );
    assert_eq!(
        res.body["categories"],
        json!([{"id": f.fantasy, "name": "fantasy"}])
    );
    assert_eq!(
        credits(&app, id),
        vec![
            (editor, 0, "editor".to_owned()),
            (f.leguin, 1, "author".to_owned()),
            (f.leguin, 2, "illustrator".to_owned()),
        ]
    );
    assert_eq!(filed_under(&app, id), vec![f.fantasy]);

    // Empty lists remove them all; the ISBN can change to a free one, given as ISBN-10.
    let new_isbn = isbn13(78);
    let res = patch_if(
        &app,
        &staff,
        &path,
        Some("\"4\""),
        json!({"authors": [], "category_ids": [], "isbn": isbn10(&new_isbn), "status": "archived"}),
    )
    .await;
    res.expect(200);
    assert_eq!(res.body["authors"], json!([]));
    assert_eq!(res.body["categories"], json!([]));
    assert_eq!(res.body["isbn"], new_isbn);
    assert_eq!(res.body["status"], "archived");
    assert_eq!(res.body["version"], 5);
    assert!(credits(&app, id).is_empty());
    assert!(filed_under(&app, id).is_empty());
    assert_eq!(book_row(&app, id).unwrap().isbn, new_isbn);

    // The old ISBN is free again; the unknown book is a 404.
    let res = app
        .get(&format!("/api/v1/books/isbn/{LEFT_HAND_13}"), None)
        .await;
    res.problem(404);
    let res = patch_if(
        &app,
        &staff,
        &format!("/api/v1/books/{}", other + 100),
        Some("\"1\""),
        json!({"title": "x"}),
    )
    .await;
    assert_problem(
        &res,
        404,
        "not-found",
        "Not found",
        &format!("no book with id {}", other + 100),
    );
    // The other book was never touched.
    assert_eq!(book_row(&app, other).unwrap().version, 1);
}

#[tokio::test]
async fn delete_removes_the_book_and_its_links() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let f = fixture(&app, &staff).await;
    let id = create_book_id(&app, &staff, left_hand_body(&f)).await;
    let keep = create_book_id(
        &app,
        &staff,
        with(
            &book_body(&isbn13(5), "The Dispossessed"),
            json!({"authors": [{"author_id": f.leguin}], "category_ids": [f.science_fiction]}),
        ),
    )
    .await;
    assert_eq!(app.count("book_authors"), 3);
    assert_eq!(app.count("book_categories"), 3);

    let res = app
        .delete(&format!("/api/v1/books/{id}"), Some(&staff))
        .await;
    res.expect(204);
    assert_eq!(res.text, "");
    assert!(book_row(&app, id).is_none());
    assert!(credits(&app, id).is_empty());
    assert!(filed_under(&app, id).is_empty());
    assert_eq!(app.count("books"), 1);
    assert_eq!(app.count("book_authors"), 1);
    assert_eq!(app.count("book_categories"), 1);
    // Authors and categories stay; the other book is intact.
    assert_eq!(app.count("authors"), 2);
    assert_eq!(app.count("categories"), 2);
    assert_eq!(
        credits(&app, keep),
        vec![(f.leguin, 0, "author".to_owned())]
    );

    app.get(&format!("/api/v1/books/{id}"), None)
        .await
        .problem(404);
    app.get(&format!("/api/v1/books/isbn/{LEFT_HAND_13}"), None)
        .await
        .problem(404);
    let res = app
        .delete(&format!("/api/v1/books/{id}"), Some(&staff))
        .await;
    assert_problem(
        &res,
        404,
        "not-found",
        "Not found",
        &format!("no book with id {id}"),
    );
    // Gone from search too (its search entry was removed).
    let res = app.get("/api/v1/books?q=darkness", None).await;
    res.expect(200);
    assert_eq!(res.body["total"], 0);
    assert_eq!(res.body["items"], json!([]));
    // The ISBN can be used again.
    create_book(&app, &staff, book_body(LEFT_HAND_13, "Again")).await;
    let res = app.get("/api/v1/books?q=again", None).await;
    assert_eq!(titles(&res.body), vec!["Again"]);
}

#[tokio::test]
async fn a_wrong_method_is_a_405_problem() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let id = create_book_id(&app, &staff, book_body(LEFT_HAND_13, "Title")).await;
    for (method, path) in [
        (Method::PUT, format!("/api/v1/books/{id}")),
        (Method::DELETE, "/api/v1/books".to_owned()),
        (Method::GET, "/api/v1/books/import".to_owned()),
        (Method::PUT, "/api/v1/authors/1".to_owned()),
        (Method::POST, "/api/v1/categories/1".to_owned()),
    ] {
        let res = app
            .send(
                method.clone(),
                &path,
                Some(&staff),
                Some(json!({"title": "x"})),
            )
            .await;
        assert_problem(
            &res,
            405,
            "method-not-allowed",
            "Method Not Allowed",
            &format!("{method} is not allowed on {path}"),
        );
    }
    assert_eq!(book_row(&app, id).unwrap().title, "Title");
}

#[tokio::test]
async fn concurrent_writes_cannot_both_win() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let id = create_book_id(&app, &staff, book_body(LEFT_HAND_13, "Title")).await;
    let path = format!("/api/v1/books/{id}");

    // Eight updates of version 1 at once: exactly one applies, the others are stale.
    let patches = (0..8).map(|i| {
        patch_if(
            &app,
            &staff,
            &path,
            Some("\"1\""),
            json!({"list_price_cents": 2000 + i}),
        )
    });
    let results = futures_util::future::join_all(patches).await;
    let mut statuses: Vec<u16> = results.iter().map(|r| r.status.as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, vec![200, 412, 412, 412, 412, 412, 412, 412]);
    let winner = results.iter().find(|r| r.status == 200).unwrap();
    let row = book_row(&app, id).unwrap();
    assert_eq!(row.version, 2);
    assert_eq!(json!(row.list_price_cents), winner.body["list_price_cents"]);

    // Eight creates of one ISBN at once: exactly one book.
    let isbn = isbn13(9);
    let creates = (0..8).map(|i| {
        app.post(
            "/api/v1/books",
            Some(&staff),
            book_body(&isbn, &format!("Copy {i}")),
        )
    });
    let results = futures_util::future::join_all(creates).await;
    let mut statuses: Vec<u16> = results.iter().map(|r| r.status.as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, vec![201, 409, 409, 409, 409, 409, 409, 409]);
    for res in results.iter().filter(|r| r.status == 409) {
        res.problem(409);
    }
    assert_eq!(app.count("books"), 2);
}

#[tokio::test]
async fn if_match_star_accepts_the_current_version_and_unknown_fields_are_refused() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let id = create_book_id(&app, &staff, book_body(&isbn13(77), "Star Matching")).await;
    let path = format!("/api/v1/books/{id}");

    let res = patch_if(
        &app,
        &staff,
        &path,
        Some("*"),
        json!({"list_price_cents": 1234}),
    )
    .await;
    res.expect(200);
    assert_eq!(res.body["list_price_cents"], 1234);
    assert_eq!(res.body["version"], 2);
    assert_eq!(res.header("etag"), Some("\"2\""));

    // A misspelt field is named rather than silently dropped, and nothing changes.
    let res = patch_if(
        &app,
        &staff,
        &path,
        Some("\"2\""),
        json!({"sub_title": "x"}),
    )
    .await;
    let errors = field_errors(res.invalid_field("sub_title"));
    assert!(
        errors[0].1.starts_with("unknown field `sub_title`"),
        "{errors:?}"
    );
    assert_eq!(book_row(&app, id).unwrap().version, 2);
    let res = app
        .post(
            "/api/v1/books",
            Some(&staff),
            with(&book_body(&isbn13(78), "T"), json!({"role": "admin"})),
        )
        .await;
    res.invalid_field("role");
    assert_eq!(app.count("books"), 1);
}
