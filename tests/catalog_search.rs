//! Book search and listing over HTTP: full-text `q` (titles, subtitles, author names, ISBNs,
//! prefixes, ranking), filters, sorting and pagination, on both backends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

mod catalog_support;
use catalog_support::*;

use serde_json::Value;

/// A small catalog. Titles are chosen so that `lower(title)` orders the same under any collation.
struct Corpus {
    staff: String,
    leguin: i64,
    styron: i64,
    pratchett: i64,
    fiction: i64,
    science_fiction: i64,
    space_opera: i64,
    history: i64,
    left_hand: i64,
    dispossessed: i64,
    darkness_visible: i64,
    guards: i64,
    peste: i64,
    orbit: i64,
}

const ALL_BY_TITLE: [&str; 6] = [
    "Darkness Visible",
    "Guards! Guards!",
    "La peste",
    "Orbit Station",
    "The Dispossessed",
    "The Left Hand of Darkness",
];

async fn corpus(app: &TestApp) -> Corpus {
    let staff = app.staff();
    let leguin = create_author(app, &staff, "Ursula K. Le Guin").await;
    let styron = create_author(app, &staff, "William Styron").await;
    let pratchett = create_author(app, &staff, "Terry Pratchett").await;
    let camus = create_author(app, &staff, "Albert Camus").await;
    let fiction = create_category(app, &staff, "fiction", None).await;
    let science_fiction = create_category(app, &staff, "science fiction", Some(fiction)).await;
    let space_opera = create_category(app, &staff, "space opera", Some(science_fiction)).await;
    let history = create_category(app, &staff, "history", None).await;

    async fn book(
        app: &TestApp,
        staff: &str,
        isbn: &str,
        title: &str,
        extra: Value,
        author: i64,
        category: i64,
    ) -> i64 {
        let body = with(
            &with(&book_body(isbn, title), extra),
            json!({"authors": [{"author_id": author}], "category_ids": [category]}),
        );
        create_book_id(app, staff, body).await
    }

    // Created in this order (the `created` sort relies on it).
    let left_hand = book(
        app,
        &staff,
        LEFT_HAND_13,
        "The Left Hand of Darkness",
        json!({"format": "paperback", "list_price_cents": 1799, "publication_date": "1969-03-01"}),
        leguin,
        science_fiction,
    )
    .await;
    let dispossessed = book(
        app,
        &staff,
        &isbn13(100),
        "The Dispossessed",
        json!({"subtitle": "An Ambiguous Utopia", "format": "hardcover", "list_price_cents": 2500,
               "publication_date": "1974-05-01"}),
        leguin,
        science_fiction,
    )
    .await;
    let darkness_visible = book(
        app,
        &staff,
        &isbn13(101),
        "Darkness Visible",
        json!({"subtitle": "A Memoir of Madness", "format": "paperback", "list_price_cents": 1200}),
        styron,
        history,
    )
    .await;
    let guards = book(
        app,
        &staff,
        &isbn13(102),
        "Guards! Guards!",
        json!({"format": "ebook", "list_price_cents": 899, "publication_date": "1989-01-01"}),
        pratchett,
        fiction,
    )
    .await;
    let peste = book(
        app,
        &staff,
        &isbn13(103),
        "La peste",
        json!({"language": "fr", "format": "paperback", "list_price_cents": 1500,
               "publication_date": "1947-06-10"}),
        camus,
        fiction,
    )
    .await;
    let orbit = book(
        app,
        &staff,
        &isbn13(104),
        "Orbit Station",
        json!({"subtitle": "a space opera", "format": "audiobook", "list_price_cents": 3000,
               "publication_date": "2001-01-01"}),
        leguin,
        space_opera,
    )
    .await;
    Corpus {
        staff,
        leguin,
        styron,
        pratchett,
        fiction,
        science_fiction,
        space_opera,
        history,
        left_hand,
        dispossessed,
        darkness_visible,
        guards,
        peste,
        orbit,
    }
}

/// `GET /api/v1/books?{query}`, expecting 200; returns the page.
async fn list(app: &TestApp, query: &str) -> Value {
    let res = app.get(&format!("/api/v1/books?{query}"), None).await;
    assert_eq!(res.status.as_u16(), 200, "{query}: {}", res.text);
    res.body.clone()
}

async fn titles_of(app: &TestApp, query: &str) -> Vec<String> {
    let page = list(app, query).await;
    let titles = titles(&page);
    assert_eq!(
        page["total"].as_u64(),
        Some(titles.len() as u64),
        "{query}: one page holds every match"
    );
    titles
}

#[tokio::test]
async fn listing_returns_full_views_in_an_envelope() {
    let app = TestApp::spawn().await;
    let c = corpus(&app).await;
    let page = list(&app, "").await;
    assert_eq!(page["page"], 1);
    assert_eq!(page["per_page"], 20);
    assert_eq!(page["total"], 6);
    assert_eq!(titles(&page), ALL_BY_TITLE);
    // Each item is the same view as GET /books/{id}.
    for item in page["items"].as_array().unwrap() {
        let id = item["id"].as_i64().unwrap();
        let one = app.get(&format!("/api/v1/books/{id}"), None).await;
        assert_eq!(&one.body, item);
    }
    let first = &page["items"][0];
    assert_eq!(
        without_times(first),
        json!({
            "id": c.darkness_visible, "isbn": isbn13(101), "isbn10": isbn10(&isbn13(101)),
            "title": "Darkness Visible", "subtitle": "A Memoir of Madness", "description": null,
            "language": "en", "publisher": null, "publication_date": null, "page_count": null,
            "format": "paperback", "list_price_cents": 1200, "currency": "USD", "available": 0,
            "cover_url": null, "status": "active", "version": 1,
            "authors": [{"id": c.styron, "name": "William Styron", "role": "author"}],
            "categories": [{"id": c.history, "name": "history"}],
        })
    );
}

#[tokio::test]
async fn text_search_matches_titles_subtitles_authors_and_isbns() {
    let app = TestApp::spawn().await;
    let c = corpus(&app).await;

    // Title words, whole or as a prefix (type-ahead), in any case.
    for q in ["darkness", "DARKNESS", "Darkness", "dar", "DaRk"] {
        assert_eq!(
            titles_of(&app, &format!("q={q}&sort=title")).await,
            vec!["Darkness Visible", "The Left Hand of Darkness"],
            "q={q}"
        );
    }
    assert_eq!(titles_of(&app, "q=guard").await, vec!["Guards! Guards!"]);
    // Subtitles.
    assert_eq!(
        titles_of(&app, "q=ambiguous").await,
        vec!["The Dispossessed"]
    );
    assert_eq!(titles_of(&app, "q=memoir").await, vec!["Darkness Visible"]);
    // Author names, whole or partial, several words.
    assert_eq!(
        titles_of(&app, "q=le+guin&sort=title").await,
        vec![
            "Orbit Station",
            "The Dispossessed",
            "The Left Hand of Darkness"
        ]
    );
    assert_eq!(titles_of(&app, "q=pratch").await, vec!["Guards! Guards!"]);
    assert_eq!(titles_of(&app, "q=styron").await, vec!["Darkness Visible"]);
    // Every word must match (AND), in any field: title + author, title + title.
    assert_eq!(
        titles_of(&app, "q=darkness+styron").await,
        vec!["Darkness Visible"]
    );
    assert_eq!(
        titles_of(&app, "q=left+dark").await,
        vec!["The Left Hand of Darkness"]
    );
    // Only the last word is a prefix (the word being typed); earlier ones must be whole.
    assert_eq!(
        titles_of(&app, "q=lef+darkness").await,
        Vec::<String>::new()
    );
    assert_eq!(
        titles_of(&app, "q=left+visible").await,
        Vec::<String>::new()
    );
    // Punctuation is ignored rather than being query syntax.
    assert_eq!(
        titles_of(&app, "q=%22left%22+OR+*dark*").await,
        Vec::<String>::new(),
        "OR is a word, not an operator"
    );
    assert_eq!(
        titles_of(&app, "q=%22left%22+(dark*)").await,
        vec!["The Left Hand of Darkness"]
    );
    // Nothing searchable: every book.
    assert_eq!(titles_of(&app, "q=%22%2A%22").await, ALL_BY_TITLE);
    // No match at all.
    let page = list(&app, "q=zebra").await;
    assert_eq!(
        page,
        json!({"items": [], "page": 1, "per_page": 20, "total": 0})
    );

    // ISBNs, exact, in either form, hyphenated or not.
    for q in [
        LEFT_HAND_13,
        LEFT_HAND_10,
        LEFT_HAND_10_HYPHENATED,
        "978-0-441-47812-5",
    ] {
        let page = list(&app, &format!("q={q}")).await;
        assert_eq!(ids(&page), vec![c.left_hand], "q={q}");
        assert_eq!(page["total"], 1);
    }
    let dispossessed_10 = isbn10(&isbn13(100));
    assert_eq!(
        ids(&list(&app, &format!("q={dispossessed_10}")).await),
        vec![c.dispossessed]
    );
    // A valid ISBN no book has.
    assert_eq!(list(&app, &format!("q={}", isbn13(999))).await["total"], 0);

    // Renaming an author re-indexes their books: the new name matches, the old one does not.
    let res = app
        .patch(
            &format!("/api/v1/authors/{}", c.pratchett),
            Some(&c.staff),
            json!({"name": "Terence Pratchett"}),
        )
        .await;
    res.expect(200);
    assert_eq!(titles_of(&app, "q=terence").await, vec!["Guards! Guards!"]);
    assert_eq!(titles_of(&app, "q=terry").await, Vec::<String>::new());
    // The view shows the new name.
    let page = list(&app, "q=terence").await;
    assert_eq!(
        page["items"][0]["authors"],
        json!([{"id": c.pratchett, "name": "Terence Pratchett", "role": "author"}])
    );

    // Changing a book's title or credits re-indexes it too.
    let res = patch_book(
        &app,
        &c.staff,
        c.guards,
        json!({"title": "Night Watch", "authors": [{"author_id": c.styron}]}),
    )
    .await;
    res.expect(200);
    assert_eq!(titles_of(&app, "q=guards").await, Vec::<String>::new());
    assert_eq!(titles_of(&app, "q=terence").await, Vec::<String>::new());
    assert_eq!(titles_of(&app, "q=night+watch").await, vec!["Night Watch"]);
    assert_eq!(
        titles_of(&app, "q=styron&sort=title").await,
        vec!["Darkness Visible", "Night Watch"]
    );
}

#[tokio::test]
async fn a_title_match_ranks_above_author_and_subtitle_matches() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let lena = create_author(&app, &staff, "Lena Orchid").await;
    let paul = create_author(&app, &staff, "Paul Baker").await;
    let mut make = Vec::new();
    // Created so that id order is the reverse of the expected ranking.
    for (n, title, subtitle, author) in [
        (1, "Morning Walk", Some("an orchid story"), paul),
        (2, "Quiet Hours", None, lena),
        (3, "The Orchid Thief", None, paul),
        (4, "Unrelated Matters", None, paul),
    ] {
        let body = with(
            &book_body(&isbn13(n), title),
            json!({"subtitle": subtitle, "authors": [{"author_id": author}]}),
        );
        make.push(create_book_id(&app, &staff, body).await);
    }
    let expected = vec!["The Orchid Thief", "Quiet Hours", "Morning Walk"];
    for query in [
        "q=orchid",
        "q=ORCHID",
        "q=orch",
        "q=orchid&sort=relevance",
        "q=orchid&sort=-relevance",
    ] {
        let page = list(&app, query).await;
        assert_eq!(titles(&page), expected, "{query}");
        assert_eq!(page["total"], 3);
    }
    // An explicit sort overrides relevance.
    assert_eq!(
        titles_of(&app, "q=orchid&sort=title").await,
        vec!["Morning Walk", "Quiet Hours", "The Orchid Thief"]
    );
    // Ranking and paging together.
    let page = list(&app, "q=orchid&per_page=1&page=2").await;
    assert_eq!(titles(&page), vec!["Quiet Hours"]);
    assert_eq!(page["total"], 3);
    assert_eq!(page["per_page"], 1);
    assert_eq!(page["page"], 2);
}

#[tokio::test]
async fn filters_narrow_the_list() {
    let app = TestApp::spawn().await;
    let c = corpus(&app).await;

    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            format!("author_id={}", c.leguin),
            vec![
                "Orbit Station",
                "The Dispossessed",
                "The Left Hand of Darkness",
            ],
        ),
        (format!("author_id={}", c.styron), vec!["Darkness Visible"]),
        (format!("author_id={}", c.leguin + 1000), vec![]),
        // A category includes its sub-categories, at any depth.
        (
            format!("category_id={}", c.fiction),
            vec![
                "Guards! Guards!",
                "La peste",
                "Orbit Station",
                "The Dispossessed",
                "The Left Hand of Darkness",
            ],
        ),
        (
            format!("category_id={}", c.science_fiction),
            vec![
                "Orbit Station",
                "The Dispossessed",
                "The Left Hand of Darkness",
            ],
        ),
        (
            format!("category_id={}", c.space_opera),
            vec!["Orbit Station"],
        ),
        (
            format!("category_id={}", c.history),
            vec!["Darkness Visible"],
        ),
        (format!("category_id={}", c.history + 1000), vec![]),
        ("language=fr".into(), vec!["La peste"]),
        ("language=FR".into(), vec!["La peste"]),
        ("language=de".into(), vec![]),
        ("format=hardcover".into(), vec!["The Dispossessed"]),
        ("format=ebook".into(), vec!["Guards! Guards!"]),
        (
            "format=paperback".into(),
            vec!["Darkness Visible", "La peste", "The Left Hand of Darkness"],
        ),
        // Price bounds are inclusive.
        (
            "min_price_cents=1500&max_price_cents=2500".into(),
            vec!["La peste", "The Dispossessed", "The Left Hand of Darkness"],
        ),
        (
            "min_price_cents=2500".into(),
            vec!["Orbit Station", "The Dispossessed"],
        ),
        (
            "max_price_cents=1200".into(),
            vec!["Darkness Visible", "Guards! Guards!"],
        ),
        ("min_price_cents=1800&max_price_cents=1800".into(), vec![]),
        // Filters combine with each other and with q.
        (
            format!("author_id={}&format=paperback", c.leguin),
            vec!["The Left Hand of Darkness"],
        ),
        (
            format!("q=darkness&category_id={}", c.fiction),
            vec!["The Left Hand of Darkness"],
        ),
        (
            "q=darkness&format=paperback&language=en&max_price_cents=1500".into(),
            vec!["Darkness Visible"],
        ),
    ];
    for (query, expected) in cases {
        assert_eq!(
            titles_of(&app, &format!("{query}&sort=title")).await,
            expected,
            "{query}"
        );
    }

    // Archived books are hidden unless asked for.
    let res = patch_book(&app, &c.staff, c.guards, json!({"status": "archived"})).await;
    res.expect(200);
    assert_eq!(res.body["status"], "archived");
    let without_guards: Vec<&str> = ALL_BY_TITLE
        .into_iter()
        .filter(|t| *t != "Guards! Guards!")
        .collect();
    assert_eq!(titles_of(&app, "").await, without_guards);
    assert_eq!(titles_of(&app, "status=active").await, without_guards);
    assert_eq!(titles_of(&app, "status=any").await, ALL_BY_TITLE);
    assert_eq!(
        titles_of(&app, "status=archived").await,
        vec!["Guards! Guards!"]
    );
    assert_eq!(titles_of(&app, "q=guards").await, Vec::<String>::new());
    assert_eq!(
        titles_of(&app, "q=guards&status=any").await,
        vec!["Guards! Guards!"]
    );
    // The status is part of the index on SQLite, but never matched as a search word.
    for word in ["active", "archived", "status"] {
        assert_eq!(
            titles_of(&app, &format!("q={word}&status=any")).await,
            Vec::<String>::new(),
            "{word}"
        );
    }
    assert_eq!(
        titles_of(&app, &format!("q={}", isbn13(102))).await,
        Vec::<String>::new()
    );
    // Still readable directly.
    app.get(&format!("/api/v1/books/{}", c.guards), None)
        .await
        .expect(200);
    // And it can be re-activated.
    patch_book(&app, &c.staff, c.guards, json!({"status": "active"}))
        .await
        .expect(200);
    assert_eq!(titles_of(&app, "").await, ALL_BY_TITLE);
}

#[tokio::test]
async fn sorting() {
    let app = TestApp::spawn().await;
    let c = corpus(&app).await;
    let created = vec![
        c.left_hand,
        c.dispossessed,
        c.darkness_visible,
        c.guards,
        c.peste,
        c.orbit,
    ];
    let mut reversed = created.clone();
    reversed.reverse();

    assert_eq!(titles_of(&app, "sort=title").await, ALL_BY_TITLE);
    let mut desc = ALL_BY_TITLE.to_vec();
    desc.reverse();
    assert_eq!(titles_of(&app, "sort=-title").await, desc);
    assert_eq!(
        ids(&list(&app, "sort=-price").await),
        vec![
            c.orbit,
            c.dispossessed,
            c.left_hand,
            c.peste,
            c.darkness_visible,
            c.guards
        ]
    );
    assert_eq!(
        ids(&list(&app, "sort=price").await),
        vec![
            c.guards,
            c.darkness_visible,
            c.peste,
            c.left_hand,
            c.dispossessed,
            c.orbit
        ]
    );
    // Books without a publication date come last in both directions.
    assert_eq!(
        ids(&list(&app, "sort=publication_date").await),
        vec![
            c.peste,
            c.left_hand,
            c.dispossessed,
            c.guards,
            c.orbit,
            c.darkness_visible
        ]
    );
    assert_eq!(
        ids(&list(&app, "sort=-publication_date").await),
        vec![
            c.orbit,
            c.guards,
            c.dispossessed,
            c.left_hand,
            c.peste,
            c.darkness_visible
        ]
    );
    assert_eq!(ids(&list(&app, "sort=created").await), created);
    assert_eq!(ids(&list(&app, "sort=-created").await), reversed);
    // Sorting applies to the filtered set.
    assert_eq!(
        ids(&list(&app, &format!("author_id={}&sort=-price", c.leguin)).await),
        vec![c.orbit, c.dispossessed, c.left_hand]
    );
}

#[tokio::test]
async fn pagination() {
    let app = TestApp::spawn().await;
    corpus(&app).await;

    let page = list(&app, "per_page=2").await;
    assert_eq!(titles(&page), ALL_BY_TITLE[..2]);
    assert_eq!(
        (
            page["page"].as_i64(),
            page["per_page"].as_i64(),
            page["total"].as_i64()
        ),
        (Some(1), Some(2), Some(6))
    );
    let page = list(&app, "per_page=2&page=2").await;
    assert_eq!(titles(&page), ALL_BY_TITLE[2..4]);
    assert_eq!(
        (page["page"].as_i64(), page["total"].as_i64()),
        (Some(2), Some(6))
    );
    let page = list(&app, "per_page=4&page=2").await;
    assert_eq!(titles(&page), ALL_BY_TITLE[4..]);
    assert_eq!(page["total"], 6);
    let page = list(&app, "per_page=2&page=4").await;
    assert_eq!(
        page,
        json!({"items": [], "page": 4, "per_page": 2, "total": 6})
    );
    let page = list(&app, "per_page=100").await;
    assert_eq!(titles(&page), ALL_BY_TITLE);

    // Out-of-range and malformed parameters name the parameter.
    for (query, field, message) in [
        ("per_page=0", "per_page", "must be between 1 and 100"),
        ("per_page=101", "per_page", "must be between 1 and 100"),
        ("per_page=-1", "per_page", "must be between 1 and 100"),
        ("page=0", "page", "must be at least 1"),
        ("page=-3", "page", "must be at least 1"),
        (
            "sort=isbn",
            "sort",
            "must be one of relevance, title, price, publication_date, created (prefix - for descending)",
        ),
        ("sort=relevance", "sort", "relevance needs a search query q"),
        ("sort=-relevance", "sort", "relevance needs a search query q"),
        ("status=deleted", "status", "must be active, archived or any"),
        ("language=english", "language", "must be an ISO 639-1 code such as en"),
        ("min_price_cents=-1", "min_price_cents", "must not be negative"),
        ("max_price_cents=-1", "max_price_cents", "must not be negative"),
        (
            "min_price_cents=500&max_price_cents=100",
            "min_price_cents",
            "must not exceed max_price_cents",
        ),
    ] {
        let res = app.get(&format!("/api/v1/books?{query}"), None).await;
        assert_eq!(res.status.as_u16(), 422, "{query}: {}", res.text);
        assert_invalid(&res, field, message);
    }
    for (query, field) in [
        ("page=abc", "page"),
        ("per_page=ten", "per_page"),
        ("format=scroll", "format"),
        ("author_id=x", "author_id"),
        ("category_id=1.5", "category_id"),
    ] {
        let res = app.get(&format!("/api/v1/books?{query}"), None).await;
        assert_eq!(res.status.as_u16(), 422, "{query}: {}", res.text);
        res.invalid_field(field);
    }
}

#[tokio::test]
async fn odd_search_input_never_fails() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    create_book_id(&app, &staff, book_body(&isbn13(1), "Le Rouge et le Noir")).await;
    create_book_id(&app, &staff, book_body(&isbn13(2), "日本語の本")).await;
    for q in [
        "½",
        "e\u{301}",
        "क़ि",
        "日本語",
        "a:b",
        "foo'bar",
        "\\",
        "NEAR(",
        "^",
        "-",
        "\"",
        "*",
        "AND",
        "OR NOT",
        "%",
        "_",
        "'; DROP TABLE books; --",
        "0",
        "978",
        "X",
        "😀 rouge",
        "ROUGE NOIR",
        "rouge  ,  noir",
    ] {
        let res = app
            .send(
                reqwest::Method::GET,
                &format!("/api/v1/books?q={}", urlencode(q)),
                None,
                None,
            )
            .await;
        assert_eq!(res.status.as_u16(), 200, "q={q:?}: {}", res.text);
        assert!(res.body["items"].is_array(), "q={q:?}");
    }
    // Control characters follow the API's one text rule (`http::text`): a 422 naming `q`.
    for q in ["x\u{0}y", "tab\there"] {
        app.get(&format!("/api/v1/books?q={}", urlencode(q)), None)
            .await
            .invalid_field("q");
    }
    assert_eq!(
        titles_of(&app, &format!("q={}", urlencode("rouge  ,  noir"))).await,
        vec!["Le Rouge et le Noir"]
    );
    assert_eq!(
        titles_of(&app, &format!("q={}", urlencode("😀 rouge"))).await,
        vec!["Le Rouge et le Noir"]
    );
    assert_eq!(app.count("books"), 2);
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Marks a book archived behind the API's back, as another replica's write would look to this
/// process.
fn archive_directly(app: &TestApp, id: i64) {
    use bookstore::db::schema::books;
    use diesel::prelude::*;
    let mut conn = app.conn();
    diesel::update(books::table.find(id))
        .set(books::status.eq("archived"))
        .execute(&mut *conn)
        .unwrap();
}

#[tokio::test]
async fn search_results_are_cached_until_a_catalog_write() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let id = create_book_id(&app, &staff, book_body(&isbn13(901), "Cachable Tome")).await;
    assert_eq!(titles_of(&app, "q=cachable").await, vec!["Cachable Tome"]);

    // A change this process did not make is not seen while the entry is fresh...
    archive_directly(&app, id);
    assert_eq!(titles_of(&app, "q=cachable").await, vec!["Cachable Tome"]);
    // ...but the book itself is always read fresh.
    let page = list(&app, "q=cachable").await;
    assert_eq!(page["items"][0]["status"], "archived");

    // Any catalog write through the API drops the cached results.
    create_author(&app, &staff, "Someone Else").await;
    assert_eq!(titles_of(&app, "q=cachable").await, Vec::<String>::new());
}

#[tokio::test]
async fn the_search_cache_can_be_turned_off() {
    let app = TestApp::spawn_with(|s| s.search_cache_ttl = std::time::Duration::ZERO).await;
    let staff = app.staff();
    let id = create_book_id(&app, &staff, book_body(&isbn13(902), "Uncached Tome")).await;
    assert_eq!(titles_of(&app, "q=uncached").await, vec!["Uncached Tome"]);
    archive_directly(&app, id);
    assert_eq!(titles_of(&app, "q=uncached").await, Vec::<String>::new());
}
