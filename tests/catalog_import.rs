//! CSV import over HTTP: creates and updates by ISBN, resolves authors and category paths once,
//! reports bad rows with their line while the good ones land, refuses unusable headers, and copes
//! with ten thousand rows.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

mod catalog_support;
use catalog_support::*;

use bookstore::catalog::model::BookRow;
use bookstore::db::schema::{authors, book_authors, book_categories, books, categories};
use diesel::prelude::*;
use serde_json::Value;
use std::fmt::Write;

fn book_by_isbn(app: &TestApp, isbn: &str) -> Option<BookRow> {
    let mut conn = app.conn();
    books::table
        .filter(books::isbn.eq(isbn))
        .select(BookRow::as_select())
        .first(&mut *conn)
        .optional()
        .expect("query")
}

/// (name, role) of a book's credits, in order.
fn credits_of(app: &TestApp, book_id: i64) -> Vec<(String, String)> {
    let mut conn = app.conn();
    book_authors::table
        .inner_join(authors::table)
        .filter(book_authors::book_id.eq(book_id))
        .order(book_authors::position)
        .select((authors::name, book_authors::role))
        .load(&mut *conn)
        .expect("query")
}

/// Category paths (`a > b`) a book is filed under, sorted.
fn paths_of(app: &TestApp, book_id: i64) -> Vec<String> {
    let mut conn = app.conn();
    let all: Vec<(i64, String, Option<i64>)> = categories::table
        .select((categories::id, categories::name, categories::parent_id))
        .load(&mut *conn)
        .expect("query");
    let filed: Vec<i64> = book_categories::table
        .filter(book_categories::book_id.eq(book_id))
        .select(book_categories::category_id)
        .load(&mut *conn)
        .expect("query");
    let mut out: Vec<String> = filed
        .into_iter()
        .map(|mut id| {
            let mut levels = Vec::new();
            loop {
                let (_, name, parent) = all.iter().find(|c| c.0 == id).expect("category");
                levels.push(name.clone());
                match parent {
                    Some(p) => id = *p,
                    None => break,
                }
            }
            levels.reverse();
            levels.join(" > ")
        })
        .collect();
    out.sort();
    out
}

/// Every author name, sorted.
fn author_names(app: &TestApp) -> Vec<String> {
    let mut conn = app.conn();
    let mut names: Vec<String> = authors::table
        .select(authors::name)
        .load(&mut *conn)
        .expect("query");
    names.sort();
    names
}

/// Every category as (name, parent name), sorted.
fn category_tree(app: &TestApp) -> Vec<(String, Option<String>)> {
    let mut conn = app.conn();
    let all: Vec<(i64, String, Option<i64>)> = categories::table
        .select((categories::id, categories::name, categories::parent_id))
        .load(&mut *conn)
        .expect("query");
    let mut out: Vec<(String, Option<String>)> = all
        .iter()
        .map(|(_, name, parent)| {
            let parent_name =
                parent.map(|p| all.iter().find(|c| c.0 == p).expect("parent").1.clone());
            (name.clone(), parent_name)
        })
        .collect();
    out.sort();
    out
}

fn report(created: u64, updated: u64, failed: Value) -> Value {
    json!({"created": created, "updated": updated, "failed": failed})
}

#[tokio::test]
async fn import_creates_then_updates_by_isbn() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let dispossessed = isbn13(100);
    let csv = format!(
        "isbn,title,subtitle,authors,categories,language,format,list_price_cents,publisher,publication_date,page_count,cover_url,description\n\
         {LEFT_HAND_10_HYPHENATED},The Left Hand of Darkness,,Ursula K. Le Guin,Fiction > Science fiction,en,paperback,1799,Ace,1969-03-01,304,https://covers.example/lhod.jpg,\"A lone envoy, on a cold world.\"\n\
         {dispossessed},The Dispossessed,An Ambiguous Utopia,ursula k. le guin|Jean Bonnefoy:translator,Fiction > Science fiction|Fiction > Utopias,EN,Hardcover,2500,,,,,\n\
         {isbn},Guards! Guards!,, Terry Pratchett : editor ,fiction>fantasy| Humour ,en,ebook,899,,,,,\n",
        isbn = isbn13(101),
    );
    let res = import_csv(&app, &staff, &csv).await;
    res.expect(200);
    assert_eq!(res.header("content-type"), Some("application/json"));
    assert_eq!(res.body, report(3, 0, json!([])));

    assert_eq!(app.count("books"), 3);
    // Authors matched case-insensitively within the file: created once.
    assert_eq!(
        author_names(&app),
        vec!["Jean Bonnefoy", "Terry Pratchett", "Ursula K. Le Guin"]
    );
    // Category paths share their levels, matched case-insensitively.
    assert_eq!(
        category_tree(&app),
        vec![
            ("Fiction".to_owned(), None),
            ("Humour".to_owned(), None),
            ("Science fiction".to_owned(), Some("Fiction".to_owned())),
            ("Utopias".to_owned(), Some("Fiction".to_owned())),
            ("fantasy".to_owned(), Some("Fiction".to_owned())),
        ]
    );

    let left = book_by_isbn(&app, LEFT_HAND_13).expect("left hand");
    assert_eq!(left.title, "The Left Hand of Darkness");
    assert_eq!(left.subtitle, None);
    assert_eq!(left.language, "en");
    assert_eq!(left.format, "paperback");
    assert_eq!(left.list_price_cents, 1799);
    assert_eq!(left.publisher.as_deref(), Some("Ace"));
    assert_eq!(
        left.publication_date.map(|d| d.to_string()).as_deref(),
        Some("1969-03-01")
    );
    assert_eq!(left.page_count, Some(304));
    assert_eq!(
        left.cover_url.as_deref(),
        Some("https://covers.example/lhod.jpg")
    );
    assert_eq!(
        left.description.as_deref(),
        Some("A lone envoy, on a cold world.")
    );
    assert_eq!((left.status.as_str(), left.version), ("active", 1));
    assert_eq!(
        credits_of(&app, left.id),
        vec![("Ursula K. Le Guin".to_owned(), "author".to_owned())]
    );
    assert_eq!(paths_of(&app, left.id), vec!["Fiction > Science fiction"]);

    let disp = book_by_isbn(&app, &dispossessed).expect("dispossessed");
    assert_eq!(disp.subtitle.as_deref(), Some("An Ambiguous Utopia"));
    assert_eq!(
        (disp.language.as_str(), disp.format.as_str()),
        ("en", "hardcover")
    );
    assert_eq!(
        credits_of(&app, disp.id),
        vec![
            ("Ursula K. Le Guin".to_owned(), "author".to_owned()),
            ("Jean Bonnefoy".to_owned(), "translator".to_owned()),
        ]
    );
    assert_eq!(
        paths_of(&app, disp.id),
        vec!["Fiction > Science fiction", "Fiction > Utopias"]
    );
    let guards = book_by_isbn(&app, &isbn13(101)).expect("guards");
    assert_eq!(
        credits_of(&app, guards.id),
        vec![("Terry Pratchett".to_owned(), "editor".to_owned())]
    );
    assert_eq!(
        paths_of(&app, guards.id),
        vec!["Fiction > fantasy", "Humour"]
    );

    // The imported books are searchable and served like any other.
    let res = app.get("/api/v1/books?q=le+guin&sort=title", None).await;
    assert_eq!(
        titles(&res.body),
        vec!["The Dispossessed", "The Left Hand of Darkness"]
    );
    let res = app.get(&format!("/api/v1/books/{}", left.id), None).await;
    assert_eq!(res.body["authors"][0]["name"], "Ursula K. Le Guin");

    // Archive one book: a re-import updates it but keeps it archived.
    patch_book(&app, &staff, guards.id, json!({"status": "archived"}))
        .await
        .expect(200);

    // Second file: two updates (one by its ISBN-10), one new book. Existing names are reused.
    let csv = format!(
        "title,isbn,list_price_cents,format,language,authors,categories\n\
         The Left Hand of Darkness (50th anniversary),{LEFT_HAND_10},1999,hardcover,en,URSULA K. LE GUIN|Harold Bloom:editor,fiction > science FICTION\n\
         Guards! Guards!,{guards_isbn},950,paperback,en,Terry Pratchett,Humour\n\
         Orbit Station,{orbit},3000,audiobook,en,Ursula K. Le Guin,Fiction > Science fiction > Space opera\n",
        guards_isbn = isbn13(101),
        orbit = isbn13(102),
    );
    let res = import_csv(&app, &staff, &csv).await;
    res.expect(200);
    assert_eq!(res.body, report(1, 2, json!([])));
    assert_eq!(app.count("books"), 4);
    assert_eq!(
        author_names(&app),
        vec![
            "Harold Bloom",
            "Jean Bonnefoy",
            "Terry Pratchett",
            "Ursula K. Le Guin"
        ]
    );
    assert_eq!(app.count("categories"), 6);

    let left2 = book_by_isbn(&app, LEFT_HAND_13).unwrap();
    assert_eq!(left2.id, left.id);
    assert_eq!(left2.title, "The Left Hand of Darkness (50th anniversary)");
    assert_eq!(
        (left2.format.as_str(), left2.list_price_cents),
        ("hardcover", 1999)
    );
    // Optional columns the file does not have keep their values.
    assert_eq!(left2.publisher.as_deref(), Some("Ace"));
    assert_eq!(left2.page_count, Some(304));
    assert_eq!(left2.publication_date, left.publication_date);
    assert_eq!(left2.cover_url, left.cover_url);
    assert_eq!(left2.description, left.description);
    assert_eq!(left2.subtitle, None);
    assert_eq!(left2.version, 2);
    assert_eq!(
        credits_of(&app, left.id),
        vec![
            ("Ursula K. Le Guin".to_owned(), "author".to_owned()),
            ("Harold Bloom".to_owned(), "editor".to_owned()),
        ]
    );
    assert_eq!(paths_of(&app, left.id), vec!["Fiction > Science fiction"]);
    let guards2 = book_by_isbn(&app, &isbn13(101)).unwrap();
    assert_eq!(
        (
            guards2.status.as_str(),
            guards2.list_price_cents,
            guards2.version
        ),
        ("archived", 950, 3)
    );
    assert_eq!(
        credits_of(&app, guards.id),
        vec![("Terry Pratchett".to_owned(), "author".to_owned())]
    );
    assert_eq!(paths_of(&app, guards.id), vec!["Humour"]);
    let orbit = book_by_isbn(&app, &isbn13(102)).unwrap();
    assert_eq!(
        paths_of(&app, orbit.id),
        vec!["Fiction > Science fiction > Space opera"]
    );
    // The old title is no longer found, the new one is.
    let res = app.get("/api/v1/books?q=anniversary", None).await;
    assert_eq!(ids(&res.body), vec![left.id]);

    // A file without authors/categories columns keeps the existing credits and filings; an
    // empty cell in a present column clears the value.
    let csv = format!("isbn,title,language,format,list_price_cents,publisher\n{LEFT_HAND_13},Renamed,en,paperback,1500,\n");
    let res = import_csv(&app, &staff, &csv).await;
    assert_eq!(res.body, report(0, 1, json!([])));
    let left3 = book_by_isbn(&app, LEFT_HAND_13).unwrap();
    assert_eq!((left3.title.as_str(), left3.version), ("Renamed", 3));
    assert_eq!(left3.publisher, None);
    assert_eq!(left3.page_count, Some(304));
    assert_eq!(credits_of(&app, left.id).len(), 2);
    assert_eq!(paths_of(&app, left.id), vec!["Fiction > Science fiction"]);
    // An empty authors cell removes them.
    let csv = format!("isbn,title,language,format,list_price_cents,authors\n{LEFT_HAND_13},Renamed,en,paperback,1500,\n");
    let res = import_csv(&app, &staff, &csv).await;
    assert_eq!(res.body, report(0, 1, json!([])));
    assert!(credits_of(&app, left.id).is_empty());
}

#[tokio::test]
async fn names_are_reused_across_imports_whatever_their_case_or_accents() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let csv = format!(
        "isbn,title,language,format,list_price_cents,authors,categories\n\
         {},Nana,fr,paperback,900,Émile Zola,Littérature > Écrivains français\n",
        isbn13(1)
    );
    import_csv(&app, &staff, &csv).await.expect(200);
    assert_eq!(app.count("authors"), 1);
    assert_eq!(app.count("categories"), 2);

    // The same names in a later file, and the same ASCII names in another case.
    let csv = format!(
        "isbn,title,language,format,list_price_cents,authors,categories\n\
         {},Germinal,fr,paperback,900,Émile Zola,Littérature > Écrivains français\n\
         {},L'Assommoir,fr,paperback,900,ÉMILE ZOLA,LITTÉRATURE > Écrivains français\n",
        isbn13(2),
        isbn13(3)
    );
    let res = import_csv(&app, &staff, &csv).await;
    res.expect(200);
    assert_eq!(res.body, report(2, 0, json!([])));
    assert_eq!(author_names(&app), vec!["Émile Zola"]);
    assert_eq!(
        category_tree(&app),
        vec![
            ("Littérature".to_owned(), None),
            (
                "Écrivains français".to_owned(),
                Some("Littérature".to_owned())
            ),
        ]
    );
    let books: Vec<i64> = {
        let mut conn = app.conn();
        books::table
            .select(books::id)
            .order(books::id)
            .load(&mut *conn)
            .unwrap()
    };
    for id in books {
        assert_eq!(
            credits_of(&app, id),
            vec![("Émile Zola".to_owned(), "author".to_owned())]
        );
        assert_eq!(paths_of(&app, id), vec!["Littérature > Écrivains français"]);
    }
    // A later file with the name in capitals still finds the author.
    let csv = format!(
        "isbn,title,language,format,list_price_cents,authors\n{},La Bête humaine,fr,paperback,900,ÉMILE ZOLA\n",
        isbn13(5)
    );
    let res = import_csv(&app, &staff, &csv).await;
    assert_eq!(res.body, report(1, 0, json!([])));
    assert_eq!(author_names(&app), vec!["Émile Zola"]);

    // Created over HTTP, then referenced by the import.
    create_author(&app, &staff, "Guy de Maupassant").await;
    let csv = format!(
        "isbn,title,language,format,list_price_cents,authors\n{},Bel-Ami,fr,paperback,900,guy de maupassant\n",
        isbn13(4)
    );
    import_csv(&app, &staff, &csv).await.expect(200);
    assert_eq!(author_names(&app), vec!["Guy de Maupassant", "Émile Zola"]);
}

#[tokio::test]
async fn bad_rows_are_reported_and_skipped_while_good_rows_land() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let good1 = isbn13(1);
    let good2 = isbn13(2);
    let csv = format!(
        "isbn,title,language,format,list_price_cents,page_count,publication_date,cover_url,authors,categories\n\
         {good1},Good One,en,paperback,1000,,,,Alice Able,Good > Shelf\n\
         9780441478126,Bad Check Digit,en,paperback,1000,,,,Bad Author,Bad > Shelf\n\
         {good2},Good Two,en,paperback,1000,120,2001-02-03,https://x.example/c.jpg,Alice Able,Good > Shelf\n\
         {i3},,en,paperback,1000,,,,,\n\
         {i4},Bad Language,english,paperback,1000,,,,,\n\
         {i5},Bad Format,en,scroll,1000,,,,,\n\
         {i6},Bad Price,en,paperback,12.99,,,,,\n\
         {i7},Zero Price,en,paperback,0,,,,,\n\
         {i8},Bad Pages,en,paperback,100,many,,,,\n\
         {i9},Bad Date,en,paperback,100,,03/02/2001,,,\n\
         {i10},Bad Cover,en,paperback,100,,,ftp://x/y.jpg,,\n\
         {good1},Repeat Of Line Two,en,paperback,100,,,,,\n\
         {i11},Two Problems,xx,paperback,-5,,,,,\n\
         ,No Isbn,en,paperback,100,,,,,\n\
         {good2_10},Good Two As Isbn10,en,paperback,100,,,,,\n",
        good2_10 = isbn10(&good2),
        i3 = isbn13(3),
        i4 = isbn13(4),
        i5 = isbn13(5),
        i6 = isbn13(6),
        i7 = isbn13(7),
        i8 = isbn13(8),
        i9 = isbn13(9),
        i10 = isbn13(10),
        i11 = isbn13(11),
    );
    let res = import_csv(&app, &staff, &csv).await;
    res.expect(200);
    assert_eq!(
        res.body,
        report(
            2,
            0,
            json!([
                {"row": 3, "field": "isbn", "message": "has a wrong check digit"},
                {"row": 5, "field": "title", "message": "must not be empty"},
                {"row": 6, "field": "language", "message": "must be an ISO 639-1 code such as en, fr or de"},
                {"row": 7, "field": "format", "message": "must be one of hardcover, paperback, ebook, audiobook"},
                {"row": 8, "field": "list_price_cents", "message": "'12.99' is not a whole number"},
                {"row": 9, "field": "list_price_cents", "message": "must be greater than 0"},
                {"row": 10, "field": "page_count", "message": "'many' is not a whole number"},
                {"row": 11, "field": "publication_date", "message": "'03/02/2001' is not a YYYY-MM-DD date"},
                {"row": 12, "field": "cover_url", "message": "must be an http(s) URL"},
                {"row": 13, "field": "isbn", "message": "repeats the ISBN of line 2"},
                {"row": 14, "field": "language", "message": "must be an ISO 639-1 code such as en, fr or de"},
                {"row": 14, "field": "list_price_cents", "message": "must be greater than 0"},
                {"row": 15, "field": "isbn", "message": "must have 10 or 13 digits"},
                {"row": 16, "field": "isbn", "message": "repeats the ISBN of line 4"},
            ])
        )
    );
    // Only the good rows landed, with their names; the bad rows' names were not created.
    assert_eq!(app.count("books"), 2);
    let one = book_by_isbn(&app, &good1).unwrap();
    assert_eq!(
        (one.title.as_str(), one.list_price_cents),
        ("Good One", 1000)
    );
    let two = book_by_isbn(&app, &good2).unwrap();
    assert_eq!(two.title, "Good Two");
    assert_eq!(
        (two.page_count, two.cover_url.as_deref()),
        (Some(120), Some("https://x.example/c.jpg"))
    );
    assert_eq!(author_names(&app), vec!["Alice Able"]);
    assert_eq!(
        category_tree(&app),
        vec![
            ("Good".to_owned(), None),
            ("Shelf".to_owned(), Some("Good".to_owned()))
        ]
    );
    assert_eq!(app.count("book_authors"), 2);
    assert_eq!(app.count("book_categories"), 2);

    // Line numbers count physical lines: a quoted field spanning two lines shifts the rest.
    let csv = format!(
        "isbn,title,description,language,format,list_price_cents\n\
         {},Multi,\"first line\nsecond line\",en,paperback,100\n\
         {},Broken,,en,paperback,-1\n",
        isbn13(20),
        isbn13(21)
    );
    let res = import_csv(&app, &staff, &csv).await;
    assert_eq!(
        res.body,
        report(
            1,
            0,
            json!([{"row": 4, "field": "list_price_cents", "message": "must be greater than 0"}])
        )
    );
    assert_eq!(
        book_by_isbn(&app, &isbn13(20))
            .unwrap()
            .description
            .as_deref(),
        Some("first line\nsecond line")
    );

    // A row that is not UTF-8 is reported as unreadable; the others land.
    let mut bytes = format!(
        "isbn,title,language,format,list_price_cents\n{},Fine,en,paperback,100\n",
        isbn13(30)
    )
    .into_bytes();
    bytes.extend_from_slice(format!("{},Bad ", isbn13(31)).as_bytes());
    bytes.extend_from_slice(&[0xff, 0xfe]);
    bytes.extend_from_slice(
        format!(
            ",en,paperback,100\n{},Also fine,en,paperback,100\n",
            isbn13(32)
        )
        .as_bytes(),
    );
    let res = TestApp::read(
        app.client
            .post(app.url("/api/v1/books/import"))
            .bearer_auth(&staff)
            .header("content-type", "text/csv")
            .body(bytes),
    )
    .await;
    res.expect(200);
    assert_eq!(
        (res.body["created"].as_u64(), res.body["updated"].as_u64()),
        (Some(2), Some(0))
    );
    let failed = res.body["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{}", res.text);
    assert_eq!(
        (failed[0]["row"].as_u64(), failed[0]["field"].as_str()),
        (Some(3), Some("row"))
    );
    assert!(
        failed[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("cannot be read as CSV: "),
        "{}",
        res.text
    );
    assert!(book_by_isbn(&app, &isbn13(31)).is_none());
    assert!(book_by_isbn(&app, &isbn13(32)).is_some());
    assert_eq!(app.count("books"), 5);

    // A file with only bad rows writes nothing.
    let csv = "isbn,title,language,format,list_price_cents\n123,X,en,paperback,1\n";
    let res = import_csv(&app, &staff, csv).await;
    assert_eq!(
        res.body,
        report(
            0,
            0,
            json!([{"row": 2, "field": "isbn", "message": "must have 10 or 13 digits"}])
        )
    );
    assert_eq!(app.count("books"), 5);
    // A header-only file is a no-op.
    let res = import_csv(
        &app,
        &staff,
        "isbn,title,language,format,list_price_cents\n",
    )
    .await;
    assert_eq!(res.body, report(0, 0, json!([])));
}

#[tokio::test]
async fn unusable_headers_and_requests_are_refused() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let row = format!("{},T,en,paperback,100", isbn13(1));

    // Missing required columns: 422 naming `header`, one error per column.
    let res = import_csv(
        &app,
        &staff,
        &format!("isbn,title,language,format\n{row}\n"),
    )
    .await;
    assert_invalid(&res, "header", "missing required column 'list_price_cents'");
    let res = import_csv(&app, &staff, &format!("isbn,language\n{row}\n")).await;
    let body = res.invalid_field("header");
    assert_eq!(
        field_errors(body),
        vec![
            (
                "header".to_owned(),
                "missing required column 'title'".to_owned()
            ),
            (
                "header".to_owned(),
                "missing required column 'format'".to_owned()
            ),
            (
                "header".to_owned(),
                "missing required column 'list_price_cents'".to_owned()
            ),
        ]
    );
    // Unknown and repeated columns.
    let res = import_csv(
        &app,
        &staff,
        &format!("isbn,title,language,format,list_price_cents,colour\n{row},red\n"),
    )
    .await;
    assert_invalid(&res, "header", "unknown column 'colour'");
    let res = import_csv(
        &app,
        &staff,
        &format!("isbn,title,language,format,list_price_cents,title\n{row},T\n"),
    )
    .await;
    assert_invalid(&res, "header", "column 'title' appears twice");
    // An empty body has no header at all.
    let res = import_csv(&app, &staff, "").await;
    res.invalid_field("header");
    assert_eq!(app.count("books"), 0);

    // Header names are trimmed and case-insensitive; a UTF-8 BOM is ignored.
    let res = import_csv(
        &app,
        &staff,
        &format!("\u{feff}ISBN , Title,LANGUAGE,Format,List_Price_Cents\n{row}\n"),
    )
    .await;
    assert_eq!(res.body, report(1, 0, json!([])));
    assert_eq!(app.count("books"), 1);

    // Not CSV: 415.
    let csv = format!(
        "isbn,title,language,format,list_price_cents\n{},U,en,paperback,100\n",
        isbn13(2)
    );
    for content_type in [
        "application/json",
        "text/plain",
        "multipart/form-data; boundary=x",
    ] {
        let res = upload(&app, Some(&staff), content_type, &csv).await;
        assert_problem(
            &res,
            415,
            "unsupported-media-type",
            "Unsupported media type",
            "send the file with Content-Type: text/csv",
        );
    }
    let res = TestApp::read(
        app.client
            .post(app.url("/api/v1/books/import"))
            .bearer_auth(&staff)
            .body(csv.clone()),
    )
    .await;
    res.problem(415);

    // 401 without a token, 403 for a customer.
    let res = upload(&app, None, "text/csv", &csv).await;
    res.problem(401);
    assert_eq!(res.header("www-authenticate"), Some("Bearer"));
    let customer = app.customer();
    let res = upload(&app, Some(&customer), "text/csv", &csv).await;
    assert_problem(
        &res,
        403,
        "forbidden",
        "Forbidden",
        "this action needs the staff or admin role",
    );
    assert_eq!(app.count("books"), 1);

    // An admin may import.
    let admin = app.admin();
    let res = upload(&app, Some(&admin), "text/csv", &csv).await;
    assert_eq!(res.body, report(1, 0, json!([])));
    assert_eq!(app.count("books"), 2);
}

#[tokio::test]
async fn a_file_over_the_limit_is_refused() {
    let app = TestApp::spawn_with(|s| s.import_limit_bytes = 4096).await;
    let staff = app.staff();
    let mut csv = String::from("isbn,title,language,format,list_price_cents\n");
    for n in 0..200 {
        writeln!(csv, "{},Book {n},en,paperback,100", isbn13(n)).unwrap();
    }
    assert!(csv.len() > 4096);
    let res = import_csv(&app, &staff, &csv).await;
    assert_problem(
        &res,
        413,
        "payload-too-large",
        "Payload too large",
        "the file exceeds the limit of 4096 bytes",
    );
    assert_eq!(app.count("books"), 0);
}

#[tokio::test]
async fn ten_thousand_rows() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    const ROWS: u64 = 10_000;
    let mut csv = String::from(
        "isbn,title,authors,categories,language,format,list_price_cents,publication_date\n",
    );
    let formats = ["hardcover", "paperback", "ebook", "audiobook"];
    for n in 0..ROWS {
        writeln!(
            csv,
            "{},Volume {n} of the long series,author {a}|translator {t}:translator,shelf {s} > row {r},en,{f},{p},2001-01-{d:02}",
            isbn13(1_000 + n),
            a = n % 100,
            t = n % 7,
            s = n % 5,
            r = n % 4,
            f = formats[(n % 4) as usize],
            p = 100 + n,
            d = 1 + n % 28,
        )
        .unwrap();
    }
    println!("CSV of {ROWS} rows: {} bytes", csv.len());

    let started = std::time::Instant::now();
    let res = import_csv(&app, &staff, &csv).await;
    let elapsed = started.elapsed();
    println!("imported {ROWS} rows in {elapsed:?}");
    res.expect(200);
    assert_eq!(res.body, report(ROWS, 0, json!([])));
    assert_eq!(app.count("books"), ROWS as i64);
    assert_eq!(app.count("authors"), 107);
    // 5 shelves with 4 rows each.
    assert_eq!(app.count("categories"), 25);
    assert_eq!(app.count("book_authors"), 2 * ROWS as i64);
    assert_eq!(app.count("book_categories"), ROWS as i64);

    // Spot checks through the API.
    let res = app.get("/api/v1/books?q=volume+4321", None).await;
    assert_eq!(titles(&res.body), vec!["Volume 4321 of the long series"]);
    let book = &res.body["items"][0];
    assert_eq!(book["list_price_cents"], 4421);
    assert_eq!(
        book["authors"],
        json!([
            {"id": book["authors"][0]["id"], "name": "author 21", "role": "author"},
            {"id": book["authors"][1]["id"], "name": "translator 2", "role": "translator"},
        ])
    );
    let res = app.get("/api/v1/books?per_page=1", None).await;
    assert_eq!(res.body["total"], ROWS);

    // Re-importing the same file updates every row.
    let started = std::time::Instant::now();
    let res = import_csv(&app, &staff, &csv).await;
    println!("re-imported {ROWS} rows in {:?}", started.elapsed());
    assert_eq!(res.body, report(0, ROWS, json!([])));
    assert_eq!(app.count("books"), ROWS as i64);
    assert_eq!(app.count("authors"), 107);
    assert_eq!(app.count("categories"), 25);
    assert_eq!(app.count("book_authors"), 2 * ROWS as i64);
}
