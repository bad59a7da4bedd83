//! Authors and the category tree over HTTP: CRUD, listing, validation, and the rules that keep
//! credits and filings consistent (no deleting what books refer to, no cycles, unique siblings).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

mod catalog_support;
use catalog_support::*;

use bookstore::catalog::model::{AuthorRow, CategoryRow};
use bookstore::db::schema::{authors, categories};
use diesel::prelude::*;
use serde_json::Value;

fn author_row(app: &TestApp, id: i64) -> Option<AuthorRow> {
    let mut conn = app.conn();
    authors::table
        .find(id)
        .select(AuthorRow::as_select())
        .first(&mut *conn)
        .optional()
        .expect("query")
}

fn category_row(app: &TestApp, id: i64) -> Option<CategoryRow> {
    let mut conn = app.conn();
    categories::table
        .find(id)
        .select(CategoryRow::as_select())
        .first(&mut *conn)
        .optional()
        .expect("query")
}

async fn list(app: &TestApp, path: &str) -> Value {
    let res = app.get(path, None).await;
    assert_eq!(res.status.as_u16(), 200, "{path}: {}", res.text);
    res.body.clone()
}

// ---------------------------------------------------------------------------------------------
// Authors

#[tokio::test]
async fn author_crud() {
    let app = TestApp::spawn().await;
    let staff = app.staff();

    let res = app
        .post(
            "/api/v1/authors",
            Some(&staff),
            json!({"name": "  Ursula K. Le Guin ", "bio": "American author."}),
        )
        .await;
    res.expect(201);
    let id = res.body["id"].as_i64().unwrap();
    assert_eq!(
        res.header("location"),
        Some(format!("/api/v1/authors/{id}").as_str())
    );
    assert_eq!(
        without_times(&res.body),
        json!({"id": id, "name": "Ursula K. Le Guin", "bio": "American author.", "book_count": 0})
    );
    assert_eq!(res.body["created_at"], res.body["updated_at"]);
    let row = author_row(&app, id).unwrap();
    assert_eq!(row.name, "Ursula K. Le Guin");
    assert_eq!(row.bio.as_deref(), Some("American author."));

    let got = app.get(&format!("/api/v1/authors/{id}"), None).await;
    got.expect(200);
    assert_eq!(got.body, res.body);

    // Rename, keep the bio.
    let res = app
        .patch(
            &format!("/api/v1/authors/{id}"),
            Some(&staff),
            json!({"name": "Ursula Le Guin"}),
        )
        .await;
    res.expect(200);
    assert_eq!(
        without_times(&res.body),
        json!({"id": id, "name": "Ursula Le Guin", "bio": "American author.", "book_count": 0})
    );
    // Clear the bio with null; an absent name is kept.
    let res = app
        .patch(
            &format!("/api/v1/authors/{id}"),
            Some(&staff),
            json!({"bio": null}),
        )
        .await;
    res.expect(200);
    assert_eq!(
        without_times(&res.body),
        json!({"id": id, "name": "Ursula Le Guin", "bio": null, "book_count": 0})
    );
    let row = author_row(&app, id).unwrap();
    assert_eq!((row.name.as_str(), row.bio), ("Ursula Le Guin", None));

    // Validation names the field; nothing is written.
    for (body, field, message) in [
        (
            json!({"name": ""}),
            "name",
            "length must be between 1 and 300",
        ),
        (json!({"name": "   "}), "name", "must not be blank"),
        (
            json!({"name": "x".repeat(301)}),
            "name",
            "length must be between 1 and 300",
        ),
        (json!({"bio": "b"}), "name", "missing field `name`"),
        (
            json!({"name": 5}),
            "name",
            "invalid type: integer `5`, expected a string",
        ),
    ] {
        let res = app
            .post("/api/v1/authors", Some(&staff), body.clone())
            .await;
        assert_eq!(res.status.as_u16(), 422, "{body}: {}", res.text);
        assert_invalid(&res, field, message);
    }
    let res = app
        .patch(
            &format!("/api/v1/authors/{id}"),
            Some(&staff),
            json!({"name": " "}),
        )
        .await;
    assert_invalid(&res, "name", "must not be blank");
    assert_eq!(app.count("authors"), 1);
    assert_eq!(author_row(&app, id).unwrap().name, "Ursula Le Guin");

    // Unknown ids.
    let missing = id + 100;
    let res = app.get(&format!("/api/v1/authors/{missing}"), None).await;
    assert_problem(
        &res,
        404,
        "not-found",
        "Not found",
        &format!("no author with id {missing}"),
    );
    let res = app
        .patch(
            &format!("/api/v1/authors/{missing}"),
            Some(&staff),
            json!({"name": "x"}),
        )
        .await;
    assert_problem(
        &res,
        404,
        "not-found",
        "Not found",
        &format!("no author with id {missing}"),
    );
    let res = app
        .delete(&format!("/api/v1/authors/{missing}"), Some(&staff))
        .await;
    assert_problem(
        &res,
        404,
        "not-found",
        "Not found",
        &format!("no author with id {missing}"),
    );

    // Delete.
    let res = app
        .delete(&format!("/api/v1/authors/{id}"), Some(&staff))
        .await;
    res.expect(204);
    assert_eq!(res.text, "");
    assert!(author_row(&app, id).is_none());
    app.get(&format!("/api/v1/authors/{id}"), None)
        .await
        .problem(404);
}

#[tokio::test]
async fn author_list_search_and_pagination() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    for name in [
        "carol shields",
        "alice walker",
        "bob dylan",
        "alice munro",
        "50% off_sale",
    ] {
        create_author(&app, &staff, name).await;
    }

    let page = list(&app, "/api/v1/authors").await;
    assert_eq!(
        names(&page),
        vec![
            "50% off_sale",
            "alice munro",
            "alice walker",
            "bob dylan",
            "carol shields"
        ]
    );
    assert_eq!(
        (
            page["page"].as_i64(),
            page["per_page"].as_i64(),
            page["total"].as_i64()
        ),
        (Some(1), Some(20), Some(5))
    );

    // q is a case-insensitive substring.
    for q in ["alice", "ALICE", "Alice", "lic"] {
        let page = list(&app, &format!("/api/v1/authors?q={q}")).await;
        assert_eq!(names(&page), vec!["alice munro", "alice walker"], "q={q}");
        assert_eq!(page["total"], 2);
    }
    let page = list(&app, "/api/v1/authors?q=MUNRO").await;
    assert_eq!(names(&page), vec!["alice munro"]);
    // A name with non-ASCII letters is found as written, and by its ASCII part in any case.
    create_author(&app, &staff, "Émile Zola").await;
    for q in ["%C3%89mile", "%C3%89MILE+ZOLA", "zola", "mile"] {
        let page = list(&app, &format!("/api/v1/authors?q={q}")).await;
        assert_eq!(names(&page), vec!["Émile Zola"], "q={q}");
    }
    app.delete(
        &format!(
            "/api/v1/authors/{}",
            ids(&list(&app, "/api/v1/authors?q=zola").await)[0]
        ),
        Some(&staff),
    )
    .await
    .expect(204);
    let page = list(&app, "/api/v1/authors?q=zzz").await;
    assert_eq!(
        page,
        json!({"items": [], "page": 1, "per_page": 20, "total": 0})
    );
    // LIKE wildcards in q match literally.
    let page = list(&app, "/api/v1/authors?q=%25").await;
    assert_eq!(names(&page), vec!["50% off_sale"]);
    let page = list(&app, "/api/v1/authors?q=_").await;
    assert_eq!(names(&page), vec!["50% off_sale"]);

    // Pages.
    let page = list(&app, "/api/v1/authors?per_page=2&page=2").await;
    assert_eq!(names(&page), vec!["alice walker", "bob dylan"]);
    assert_eq!(
        (
            page["page"].as_i64(),
            page["per_page"].as_i64(),
            page["total"].as_i64()
        ),
        (Some(2), Some(2), Some(5))
    );
    let page = list(&app, "/api/v1/authors?per_page=2&page=3").await;
    assert_eq!(names(&page), vec!["carol shields"]);
    let page = list(&app, "/api/v1/authors?q=alice&per_page=1&page=2").await;
    assert_eq!(names(&page), vec!["alice walker"]);
    assert_eq!(page["total"], 2);
    for (query, field, message) in [
        ("per_page=0", "per_page", "must be between 1 and 100"),
        ("per_page=101", "per_page", "must be between 1 and 100"),
        ("page=0", "page", "must be at least 1"),
    ] {
        let res = app.get(&format!("/api/v1/authors?{query}"), None).await;
        assert_invalid(&res, field, message);
    }
    app.get("/api/v1/authors?page=x", None)
        .await
        .invalid_field("page");
}

/// Names are listed ignoring case, the same on both backends (a byte-order sort would put every
/// capitalised name first on SQLite but not on a PostgreSQL database with a linguistic collation).
#[tokio::test]
async fn lists_order_names_ignoring_case() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    for name in ["bravo", "Alpha", "charlie", "Delta"] {
        create_author(&app, &staff, name).await;
    }
    let page = list(&app, "/api/v1/authors").await;
    assert_eq!(names(&page), vec!["Alpha", "bravo", "charlie", "Delta"]);

    let mut ids = Vec::new();
    for name in ["bravo", "Alpha", "charlie", "Delta"] {
        ids.push(create_category(&app, &staff, name, None).await);
    }
    let page = list(&app, "/api/v1/categories").await;
    assert_eq!(names(&page), vec!["Alpha", "bravo", "charlie", "Delta"]);

    // A book's categories too.
    let book = create_book(
        &app,
        &staff,
        with(
            &book_body(&isbn13(1), "Filed"),
            json!({"category_ids": ids}),
        ),
    )
    .await;
    let listed: Vec<&str> = book["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec!["Alpha", "bravo", "charlie", "Delta"]);
}

#[tokio::test]
async fn authors_count_their_books_and_cannot_be_deleted_while_credited() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let author = create_author(&app, &staff, "ursula le guin").await;
    let other = create_author(&app, &staff, "someone else").await;
    // Credited twice on one book (author and illustrator): one book.
    let first = create_book_id(
        &app,
        &staff,
        with(
            &book_body(&isbn13(1), "One"),
            json!({"authors": [{"author_id": author}, {"author_id": author, "role": "illustrator"}]}),
        ),
    )
    .await;
    let second = create_book_id(
        &app,
        &staff,
        with(
            &book_body(&isbn13(2), "Two"),
            json!({"authors": [{"author_id": other}, {"author_id": author, "role": "editor"}]}),
        ),
    )
    .await;

    let res = app.get(&format!("/api/v1/authors/{author}"), None).await;
    assert_eq!(res.body["book_count"], 2);
    let page = list(&app, "/api/v1/authors").await;
    let counts: Vec<(String, i64)> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_owned(),
                a["book_count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        vec![
            ("someone else".to_owned(), 1),
            ("ursula le guin".to_owned(), 2)
        ]
    );

    let res = app
        .delete(&format!("/api/v1/authors/{author}"), Some(&staff))
        .await;
    assert_problem(
        &res,
        409,
        "conflict",
        "Conflict",
        "the author is credited on 2 book(s); remove those credits first",
    );
    assert!(author_row(&app, author).is_some());
    assert_eq!(app.count("book_authors"), 4);

    // Removing the credits, then the author.
    app.delete(&format!("/api/v1/books/{first}"), Some(&staff))
        .await
        .expect(204);
    let res = app.get(&format!("/api/v1/authors/{author}"), None).await;
    assert_eq!(res.body["book_count"], 1);
    patch_book(
        &app,
        &staff,
        second,
        json!({"authors": [{"author_id": other}]}),
    )
    .await
    .expect(200);
    let res = app.get(&format!("/api/v1/authors/{author}"), None).await;
    assert_eq!(res.body["book_count"], 0);
    app.delete(&format!("/api/v1/authors/{author}"), Some(&staff))
        .await
        .expect(204);
    assert!(author_row(&app, author).is_none());
    assert_eq!(app.count("authors"), 1);
    assert_eq!(app.count("book_authors"), 1);
}

// ---------------------------------------------------------------------------------------------
// Categories

#[tokio::test]
async fn category_crud_and_tree() {
    let app = TestApp::spawn().await;
    let staff = app.staff();

    let res = app
        .post(
            "/api/v1/categories",
            Some(&staff),
            json!({"name": " fiction ", "description": "Made-up stories."}),
        )
        .await;
    res.expect(201);
    let fiction = res.body["id"].as_i64().unwrap();
    assert_eq!(
        res.header("location"),
        Some(format!("/api/v1/categories/{fiction}").as_str())
    );
    assert_eq!(
        without_times(&res.body),
        json!({"id": fiction, "name": "fiction", "description": "Made-up stories.",
               "parent_id": null, "children": [], "book_count": 0})
    );
    let row = category_row(&app, fiction).unwrap();
    assert_eq!((row.name.as_str(), row.parent_id), ("fiction", None));

    let res = app
        .post(
            "/api/v1/categories",
            Some(&staff),
            json!({"name": "science fiction", "parent_id": fiction}),
        )
        .await;
    res.expect(201);
    let sf = res.body["id"].as_i64().unwrap();
    assert_eq!(
        without_times(&res.body),
        json!({"id": sf, "name": "science fiction", "description": null,
               "parent_id": fiction, "children": [], "book_count": 0})
    );
    let fantasy = create_category(&app, &staff, "fantasy", Some(fiction)).await;
    let space = create_category(&app, &staff, "space opera", Some(sf)).await;
    let history = create_category(&app, &staff, "history", None).await;
    assert_eq!(category_row(&app, space).unwrap().parent_id, Some(sf));

    // The parent lists its children by id.
    let res = app
        .get(&format!("/api/v1/categories/{fiction}"), None)
        .await;
    res.expect(200);
    assert_eq!(
        without_times(&res.body),
        json!({"id": fiction, "name": "fiction", "description": "Made-up stories.",
               "parent_id": null, "children": [sf, fantasy], "book_count": 0})
    );

    // Listing: everything, the top level, the children of one.
    let page = list(&app, "/api/v1/categories").await;
    assert_eq!(
        names(&page),
        vec![
            "fantasy",
            "fiction",
            "history",
            "science fiction",
            "space opera"
        ]
    );
    assert_eq!(
        (
            page["page"].as_i64(),
            page["per_page"].as_i64(),
            page["total"].as_i64()
        ),
        (Some(1), Some(100), Some(5))
    );
    let page = list(&app, "/api/v1/categories?parent_id=0").await;
    assert_eq!(names(&page), vec!["fiction", "history"]);
    assert_eq!(page["total"], 2);
    assert_eq!(page["items"][0]["children"], json!([sf, fantasy]));
    assert_eq!(page["items"][1]["children"], json!([]));
    let page = list(&app, &format!("/api/v1/categories?parent_id={fiction}")).await;
    assert_eq!(names(&page), vec!["fantasy", "science fiction"]);
    assert_eq!(ids(&page), vec![fantasy, sf]);
    let page = list(&app, &format!("/api/v1/categories?parent_id={sf}")).await;
    assert_eq!(ids(&page), vec![space]);
    let page = list(&app, &format!("/api/v1/categories?parent_id={space}")).await;
    assert_eq!(
        page,
        json!({"items": [], "page": 1, "per_page": 100, "total": 0})
    );
    let page = list(&app, "/api/v1/categories?per_page=2&page=2").await;
    assert_eq!(names(&page), vec!["history", "science fiction"]);
    assert_eq!(page["total"], 5);
    app.get("/api/v1/categories?per_page=101", None)
        .await
        .invalid_field("per_page");
    app.get("/api/v1/categories?parent_id=x", None)
        .await
        .invalid_field("parent_id");

    // Rename, describe, and move to another parent.
    let res = app
        .patch(
            &format!("/api/v1/categories/{space}"),
            Some(&staff),
            json!({"name": "space operas", "description": "Big ships.", "parent_id": fiction}),
        )
        .await;
    res.expect(200);
    assert_eq!(
        without_times(&res.body),
        json!({"id": space, "name": "space operas", "description": "Big ships.",
               "parent_id": fiction, "children": [], "book_count": 0})
    );
    let row = category_row(&app, space).unwrap();
    assert_eq!(
        (row.name.as_str(), row.description.as_deref(), row.parent_id),
        ("space operas", Some("Big ships."), Some(fiction))
    );
    assert_eq!(
        app.get(&format!("/api/v1/categories/{sf}"), None)
            .await
            .body["children"],
        json!([])
    );
    // To the top level with null; clear the description with null; absent fields are kept.
    let res = app
        .patch(
            &format!("/api/v1/categories/{space}"),
            Some(&staff),
            json!({"parent_id": null, "description": null}),
        )
        .await;
    res.expect(200);
    assert_eq!(
        without_times(&res.body),
        json!({"id": space, "name": "space operas", "description": null,
               "parent_id": null, "children": [], "book_count": 0})
    );
    let res = app
        .patch(
            &format!("/api/v1/categories/{space}"),
            Some(&staff),
            json!({}),
        )
        .await;
    res.expect(200);
    assert_eq!(res.body["name"], "space operas");
    assert_eq!(res.body["parent_id"], Value::Null);
    let page = list(&app, "/api/v1/categories?parent_id=0").await;
    assert_eq!(names(&page), vec!["fiction", "history", "space operas"]);

    // Delete a leaf.
    let res = app
        .delete(&format!("/api/v1/categories/{history}"), Some(&staff))
        .await;
    res.expect(204);
    assert_eq!(res.text, "");
    assert!(category_row(&app, history).is_none());
    assert_eq!(app.count("categories"), 4);

    // Unknown ids.
    let missing = history + 100;
    for res in [
        app.get(&format!("/api/v1/categories/{missing}"), None)
            .await,
        app.patch(
            &format!("/api/v1/categories/{missing}"),
            Some(&staff),
            json!({"name": "x"}),
        )
        .await,
        app.delete(&format!("/api/v1/categories/{missing}"), Some(&staff))
            .await,
    ] {
        assert_problem(
            &res,
            404,
            "not-found",
            "Not found",
            &format!("no category with id {missing}"),
        );
    }
}

#[tokio::test]
async fn category_parents_must_exist_and_cycles_are_refused() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let root = create_category(&app, &staff, "fiction", None).await;
    let child = create_category(&app, &staff, "science fiction", Some(root)).await;
    let grandchild = create_category(&app, &staff, "space opera", Some(child)).await;

    let missing = grandchild + 100;
    let res = app
        .post(
            "/api/v1/categories",
            Some(&staff),
            json!({"name": "orphan", "parent_id": missing}),
        )
        .await;
    assert_invalid(&res, "parent_id", &format!("no category with id {missing}"));
    assert_eq!(app.count("categories"), 3);
    let res = app
        .patch(
            &format!("/api/v1/categories/{child}"),
            Some(&staff),
            json!({"parent_id": missing}),
        )
        .await;
    assert_invalid(&res, "parent_id", &format!("no category with id {missing}"));

    // Under itself, its child or its grandchild: refused, unchanged.
    for target in [root, child, grandchild] {
        let res = app
            .patch(
                &format!("/api/v1/categories/{root}"),
                Some(&staff),
                json!({"parent_id": target}),
            )
            .await;
        assert_invalid(
            &res,
            "parent_id",
            "cannot be the category itself or one of its sub-categories",
        );
    }
    let res = app
        .patch(
            &format!("/api/v1/categories/{child}"),
            Some(&staff),
            json!({"parent_id": grandchild}),
        )
        .await;
    assert_invalid(
        &res,
        "parent_id",
        "cannot be the category itself or one of its sub-categories",
    );
    assert_eq!(category_row(&app, root).unwrap().parent_id, None);
    assert_eq!(category_row(&app, child).unwrap().parent_id, Some(root));
    assert_eq!(
        category_row(&app, grandchild).unwrap().parent_id,
        Some(child)
    );

    // Moving a grandchild up to its grandparent is fine (not a cycle).
    let res = app
        .patch(
            &format!("/api/v1/categories/{grandchild}"),
            Some(&staff),
            json!({"parent_id": root}),
        )
        .await;
    res.expect(200);
    assert_eq!(
        category_row(&app, grandchild).unwrap().parent_id,
        Some(root)
    );

    // Validation of names.
    for (body, field, message) in [
        (
            json!({"name": ""}),
            "name",
            "length must be between 1 and 200",
        ),
        (json!({"name": "  "}), "name", "must not be blank"),
        (json!({"parent_id": root}), "name", "missing field `name`"),
        (
            json!({"name": "x", "parent_id": "one"}),
            "parent_id",
            "invalid type: string \"one\", expected i64",
        ),
    ] {
        let res = app
            .post("/api/v1/categories", Some(&staff), body.clone())
            .await;
        assert_eq!(res.status.as_u16(), 422, "{body}: {}", res.text);
        assert_invalid(&res, field, message);
    }
    assert_eq!(app.count("categories"), 3);
}

#[tokio::test]
async fn sibling_category_names_are_unique_ignoring_case() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let fiction = create_category(&app, &staff, "fiction", None).await;
    let history = create_category(&app, &staff, "history", None).await;
    let fantasy = create_category(&app, &staff, "fantasy", Some(fiction)).await;

    // Same level, any case: 409.
    for (name, parent, clash) in [
        ("Fiction", None, fiction),
        (" FICTION ", None, fiction),
        ("FANTASY", Some(fiction), fantasy),
    ] {
        let res = app
            .post(
                "/api/v1/categories",
                Some(&staff),
                json!({"name": name, "parent_id": parent}),
            )
            .await;
        assert_problem(
            &res,
            409,
            "conflict",
            "Conflict",
            &format!(
                "a category named '{}' already exists at that level (id {clash})",
                name.trim()
            ),
        );
    }
    assert_eq!(app.count("categories"), 3);

    // The same name elsewhere in the tree is fine.
    let nested = create_category(&app, &staff, "Fiction", Some(history)).await;
    let fantasy_top = create_category(&app, &staff, "fantasy", None).await;
    assert_eq!(app.count("categories"), 5);

    // Renaming onto a sibling's name, or moving next to a namesake: 409, unchanged.
    let res = app
        .patch(
            &format!("/api/v1/categories/{history}"),
            Some(&staff),
            json!({"name": "FICTION"}),
        )
        .await;
    res.problem(409);
    let res = app
        .patch(
            &format!("/api/v1/categories/{fantasy}"),
            Some(&staff),
            json!({"parent_id": null}),
        )
        .await;
    assert_problem(
        &res,
        409,
        "conflict",
        "Conflict",
        &format!("a category named 'fantasy' already exists at that level (id {fantasy_top})"),
    );
    assert_eq!(category_row(&app, history).unwrap().name, "history");
    assert_eq!(
        category_row(&app, fantasy).unwrap().parent_id,
        Some(fiction)
    );
    // Renaming to a different case of its own name is fine.
    let res = app
        .patch(
            &format!("/api/v1/categories/{nested}"),
            Some(&staff),
            json!({"name": "fiction"}),
        )
        .await;
    res.expect(200);
    assert_eq!(category_row(&app, nested).unwrap().name, "fiction");
}

#[tokio::test]
async fn categories_with_children_or_books_cannot_be_deleted() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let fiction = create_category(&app, &staff, "fiction", None).await;
    let sf = create_category(&app, &staff, "science fiction", Some(fiction)).await;
    let fantasy = create_category(&app, &staff, "fantasy", Some(fiction)).await;
    let book = create_book_id(
        &app,
        &staff,
        with(
            &book_body(&isbn13(1), "Dune"),
            json!({"category_ids": [sf, fiction]}),
        ),
    )
    .await;
    create_book_id(
        &app,
        &staff,
        with(
            &book_body(&isbn13(2), "Solaris"),
            json!({"category_ids": [sf]}),
        ),
    )
    .await;

    // book_count counts the books filed directly under the category.
    let res = app.get(&format!("/api/v1/categories/{sf}"), None).await;
    assert_eq!(res.body["book_count"], 2);
    let res = app
        .get(&format!("/api/v1/categories/{fiction}"), None)
        .await;
    assert_eq!(res.body["book_count"], 1);
    assert_eq!(res.body["children"], json!([sf, fantasy]));

    let res = app
        .delete(&format!("/api/v1/categories/{fiction}"), Some(&staff))
        .await;
    assert_problem(
        &res,
        409,
        "conflict",
        "Conflict",
        "the category has 2 sub-categories; move or delete them first",
    );
    let res = app
        .delete(&format!("/api/v1/categories/{sf}"), Some(&staff))
        .await;
    assert_problem(
        &res,
        409,
        "conflict",
        "Conflict",
        "2 book(s) are filed under the category; re-file them first",
    );
    assert_eq!(app.count("categories"), 3);
    assert_eq!(app.count("book_categories"), 3);

    // An empty leaf goes; once the books are re-filed and the children gone, so does the rest.
    app.delete(&format!("/api/v1/categories/{fantasy}"), Some(&staff))
        .await
        .expect(204);
    let res = app
        .delete(&format!("/api/v1/categories/{fiction}"), Some(&staff))
        .await;
    assert_eq!(
        res.body["detail"],
        "the category has 1 sub-categories; move or delete them first"
    );
    patch_book(&app, &staff, book, json!({"category_ids": [fiction]}))
        .await
        .expect(200);
    let res = app.get(&format!("/api/v1/categories/{sf}"), None).await;
    assert_eq!(res.body["book_count"], 1);
    let res = app.get("/api/v1/books?q=solaris", None).await;
    let solaris = res.body["items"][0]["id"].as_i64().unwrap();
    app.delete(&format!("/api/v1/books/{solaris}"), Some(&staff))
        .await
        .expect(204);
    app.delete(&format!("/api/v1/categories/{sf}"), Some(&staff))
        .await
        .expect(204);
    // fiction still has a book.
    app.delete(&format!("/api/v1/categories/{fiction}"), Some(&staff))
        .await
        .problem(409);
    assert_eq!(app.count("categories"), 1);
    assert_eq!(app.count("book_categories"), 1);
}
