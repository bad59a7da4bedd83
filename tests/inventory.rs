//! Inventory over HTTP: receipts, adjustments, stock levels and reorder settings, the movements
//! ledger, and the catalog's view of stock. Proves core invariants 1 and 2 on either backend:
//! `on_hand` never drops below `reserved`, whatever races, and always equals the ledger's sum.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

mod catalog_support;
use catalog_support::*;

use bookstore::auth::Role;
use bookstore::config::Backend;
use bookstore::db::schema::{books, stock_levels, stock_movements, stock_receipts};
use bookstore::db::{self, DbConn};
use bookstore::inventory::model::MovementKind;
use bookstore::inventory::stock;
use diesel::prelude::*;
use diesel_migrations::MigrationHarness;
use reqwest::Method;
use serde_json::Value;

/// (on_hand, reserved, version) of a book's stock level, if it has one.
fn level(app: &TestApp, book_id: i64) -> Option<(i64, i64, i32)> {
    let mut conn = app.conn();
    stock_levels::table
        .find(book_id)
        .select((
            stock_levels::on_hand,
            stock_levels::reserved,
            stock_levels::version,
        ))
        .first(&mut *conn)
        .optional()
        .expect("query")
}

fn set_reserved(app: &TestApp, book_id: i64, reserved: i64) {
    let mut conn = app.conn();
    diesel::update(stock_levels::table.find(book_id))
        .set(stock_levels::reserved.eq(reserved))
        .execute(&mut *conn)
        .expect("update");
}

/// The sum of a book's movements.
fn ledger_sum(app: &TestApp, book_id: i64) -> i64 {
    #[derive(QueryableByName)]
    struct Sum {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = app.conn();
    diesel::sql_query(
        "SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT) AS n FROM stock_movements \
         WHERE book_id = $1",
    )
    .bind::<diesel::sql_types::BigInt, _>(book_id)
    .get_result::<Sum>(&mut *conn as &mut DbConn)
    .expect("sum")
    .n
}

/// Asserts invariants 1 and 2 for every book: `on_hand` equals the ledger's sum and is never
/// below `reserved`.
#[track_caller]
fn assert_ledger_matches(app: &TestApp) {
    let levels: Vec<(i64, i64, i64)> = {
        let mut conn = app.conn();
        stock_levels::table
            .select((
                stock_levels::book_id,
                stock_levels::on_hand,
                stock_levels::reserved,
            ))
            .load(&mut *conn)
            .expect("levels")
    };
    assert_eq!(
        levels.len() as i64,
        app.count("books"),
        "one level per book"
    );
    for (book_id, on_hand, reserved) in levels {
        assert_eq!(
            on_hand,
            ledger_sum(app, book_id),
            "ledger of book {book_id}"
        );
        assert!(on_hand >= reserved && reserved >= 0, "book {book_id}");
    }
}

/// (book, quantity, kind, reference, reason, note, unit cost, user) of a book's movements, oldest
/// first.
type MovementTuple = (
    i64,
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

fn movements_of(app: &TestApp, book_id: i64) -> Vec<(i64, MovementTuple)> {
    let mut conn = app.conn();
    stock_movements::table
        .filter(stock_movements::book_id.eq(book_id))
        .order(stock_movements::id)
        .select((
            stock_movements::id,
            (
                stock_movements::book_id,
                stock_movements::quantity,
                stock_movements::kind,
                stock_movements::reference,
                stock_movements::reason,
                stock_movements::note,
                stock_movements::unit_cost_cents,
                stock_movements::user_id,
            ),
        ))
        .load(&mut *conn)
        .expect("movements")
}

/// The expected view of a stock level.
#[allow(clippy::too_many_arguments)]
fn level_view(
    book_id: i64,
    title: &str,
    isbn: &str,
    on_hand: i64,
    reserved: i64,
    reorder_point: i64,
    reorder_quantity: i64,
    version: i32,
    avg_unit_cost_cents: Option<i64>,
) -> Value {
    json!({
        "book_id": book_id, "title": title, "isbn": isbn,
        "on_hand": on_hand, "reserved": reserved, "available": on_hand - reserved,
        "reorder_point": reorder_point, "reorder_quantity": reorder_quantity,
        "low_stock": on_hand - reserved <= reorder_point, "on_order": 0,
        "avg_unit_cost_cents": avg_unit_cost_cents,
        "stock_value_cents": avg_unit_cost_cents.map(|c| c * on_hand),
        "version": version,
    })
}

/// Receives `lines` of (book, quantity) at 500 cents a copy.
async fn receive(app: &TestApp, token: &str, lines: &[(i64, i64)]) -> Value {
    let lines: Vec<Value> = lines
        .iter()
        .map(|(book_id, quantity)| {
            json!({"book_id": book_id, "quantity": quantity, "unit_cost_cents": 500})
        })
        .collect();
    let res = app
        .post(
            "/api/v1/inventory/receipts",
            Some(token),
            json!({ "lines": lines }),
        )
        .await;
    res.expect(201);
    res.body.clone()
}

async fn adjust(app: &TestApp, token: &str, book_id: i64, quantity: i64, reason: &str) -> Res {
    app.post(
        "/api/v1/inventory/adjustments",
        Some(token),
        json!({"book_id": book_id, "quantity": quantity, "reason": reason}),
    )
    .await
}

async fn book(app: &TestApp, token: &str, n: u64, title: &str) -> i64 {
    create_book_id(app, token, book_body(&isbn13(n), title)).await
}

#[tokio::test]
async fn a_receipt_adds_stock_with_one_movement_per_line() {
    let app = TestApp::spawn().await;
    let (staff_id, staff) = app.user(Role::Staff);
    let a = book(&app, &staff, 1, "Alpha").await;
    let b = book(&app, &staff, 2, "Beta").await;
    // A new book starts with an empty level and an empty ledger.
    assert_eq!(level(&app, a), Some((0, 0, 1)));
    receive(&app, &staff, &[(a, 3)]).await;

    let res = app
        .post(
            "/api/v1/inventory/receipts",
            Some(&staff),
            json!({
                "supplier": "  Gollancz Distribution ",
                "note": "",
                "lines": [
                    {"book_id": b, "quantity": 5, "unit_cost_cents": 1200},
                    {"book_id": a, "quantity": 20, "unit_cost_cents": 950},
                ],
            }),
        )
        .await;
    res.expect(201);
    assert_eq!(res.header("content-type"), Some("application/json"));
    let id = res.body["id"].as_i64().expect("receipt id");
    let reference = format!("receipt:{id}");
    let movement_a = movements_of(&app, a);
    let movement_b = movements_of(&app, b);
    assert_eq!(
        movement_a.iter().map(|m| m.1.clone()).collect::<Vec<_>>(),
        vec![
            (
                a,
                3,
                "receipt".into(),
                Some(format!("receipt:{}", id - 1)),
                None,
                None,
                Some(500),
                Some(staff_id)
            ),
            (
                a,
                20,
                "receipt".into(),
                Some(reference.clone()),
                None,
                None,
                Some(950),
                Some(staff_id)
            ),
        ]
    );
    assert_eq!(
        movement_b.iter().map(|m| m.1.clone()).collect::<Vec<_>>(),
        vec![(
            b,
            5,
            "receipt".into(),
            Some(reference.clone()),
            None,
            None,
            Some(1200),
            Some(staff_id)
        )]
    );
    assert_eq!(
        without_times(&res.body),
        json!({
            "id": id,
            "supplier": "Gollancz Distribution",
            "note": null,
            "user_id": staff_id,
            "total_cost_cents": 5 * 1200 + 20 * 950,
            "currency": "USD",
            "lines": [
                {"movement_id": movement_b[0].0, "book_id": b, "quantity": 5, "unit_cost_cents": 1200},
                {"movement_id": movement_a[1].0, "book_id": a, "quantity": 20, "unit_cost_cents": 950},
            ],
            "levels": [
                level_view(b, "Beta", &isbn13(2), 5, 0, 0, 0, 2, Some(1200)),
                level_view(a, "Alpha", &isbn13(1), 23, 0, 0, 0, 3, Some(891)),
            ],
        })
    );
    let receipt: (Option<String>, Option<String>, Option<i64>) = {
        let mut conn = app.conn();
        stock_receipts::table
            .find(id)
            .select((
                stock_receipts::supplier,
                stock_receipts::note,
                stock_receipts::user_id,
            ))
            .first(&mut *conn)
            .expect("receipt row")
    };
    assert_eq!(
        receipt,
        (Some("Gollancz Distribution".into()), None, Some(staff_id))
    );
    assert_eq!(level(&app, a), Some((23, 0, 3)));
    assert_eq!(level(&app, b), Some((5, 0, 2)));
    assert_eq!(app.count("stock_receipts"), 2);
    assert_ledger_matches(&app);
}

#[tokio::test]
async fn invalid_receipts_name_the_field_and_write_nothing() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let a = book(&app, &staff, 1, "Alpha").await;
    let b = book(&app, &staff, 2, "Beta").await;
    let line = |book_id: i64| json!({"book_id": book_id, "quantity": 1, "unit_cost_cents": 100});
    let post = |body: Value| app.post("/api/v1/inventory/receipts", Some(&staff), body);

    let res = post(json!({"lines": []})).await;
    assert_invalid(&res, "lines", "length must be between 1 and 500");
    let res = post(json!({"lines": vec![line(a); 501]})).await;
    res.invalid_field("lines");
    let res = post(json!({"supplier": "x"})).await;
    res.invalid_field("lines");
    let res =
        post(json!({"lines": [line(a), {"book_id": b, "quantity": 0, "unit_cost_cents": 1}]}))
            .await;
    assert_invalid(&res, "lines[1].quantity", "must be between 1 and 100000");
    let res =
        post(json!({"lines": [{"book_id": a, "quantity": 100_001, "unit_cost_cents": 1}]})).await;
    assert_invalid(&res, "lines[0].quantity", "must be between 1 and 100000");
    let res = post(json!({"lines": [{"book_id": a, "quantity": 1, "unit_cost_cents": -1}]})).await;
    assert_invalid(
        &res,
        "lines[0].unit_cost_cents",
        "must be between 0 and 100000000",
    );
    let res =
        post(json!({"lines": [{"book_id": a, "quantity": "many", "unit_cost_cents": 1}]})).await;
    res.invalid_field("lines[0].quantity");
    let res = post(json!({"lines": [{"book_id": a, "quantity": 1}]})).await;
    res.invalid_field("lines[0].unit_cost_cents");
    let res = post(json!({"lines": [line(a)], "extra": 1})).await;
    res.invalid_field("extra");
    let res = post(json!({"lines": [line(a), line(b), line(a)]})).await;
    assert_invalid(
        &res,
        "lines[2].book_id",
        &format!("book {a} is already on another line"),
    );
    let res = post(json!({"lines": [line(a), line(999_999)]})).await;
    assert_invalid(&res, "lines[1].book_id", "no book with id 999999");
    let res = post(json!({"supplier": "s".repeat(301), "lines": [line(a)]})).await;
    assert_invalid(&res, "supplier", "length must be at most 300");

    assert_eq!(app.count("stock_receipts"), 0);
    assert_eq!(app.count("stock_movements"), 0);
    assert_eq!(level(&app, a), Some((0, 0, 1)));
    assert_eq!(level(&app, b), Some((0, 0, 1)));
}

#[tokio::test]
async fn an_adjustment_records_its_movement_and_returns_the_new_level() {
    let app = TestApp::spawn().await;
    let (staff_id, staff) = app.user(Role::Staff);
    let a = book(&app, &staff, 1, "Alpha").await;
    receive(&app, &staff, &[(a, 10)]).await;

    let res = app
        .post(
            "/api/v1/inventory/adjustments",
            Some(&staff),
            json!({"book_id": a, "quantity": -2, "reason": "damaged", "note": " Water damage "}),
        )
        .await;
    res.expect(201);
    let movements = movements_of(&app, a);
    assert_eq!(movements.len(), 2);
    let (movement_id, row) = movements[1].clone();
    assert_eq!(
        row,
        (
            a,
            -2,
            "adjustment".into(),
            None,
            Some("damaged".into()),
            Some("Water damage".into()),
            None,
            Some(staff_id)
        )
    );
    assert_eq!(
        without_times(&res.body),
        json!({
            "movement": {
                "id": movement_id, "book_id": a, "quantity": -2, "kind": "adjustment",
                "reference": null, "reason": "damaged", "note": "Water damage",
                "unit_cost_cents": null, "user_id": staff_id,
            },
            "level": level_view(a, "Alpha", &isbn13(1), 8, 0, 0, 0, 3, Some(500)),
        })
    );

    for (quantity, reason, on_hand) in [
        (-1, "lost", 7),
        (3, "found", 10),
        (-4, "correction", 6),
        (1, "correction", 7),
    ] {
        let res = adjust(&app, &staff, a, quantity, reason).await;
        res.expect(201);
        assert_eq!(res.body["movement"]["quantity"], quantity);
        assert_eq!(res.body["movement"]["reason"], reason);
        assert_eq!(res.body["level"]["on_hand"], on_hand);
    }
    assert_eq!(level(&app, a), Some((7, 0, 7)));
    assert_ledger_matches(&app);
}

#[tokio::test]
async fn invalid_adjustments_name_the_field_and_write_nothing() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let a = book(&app, &staff, 1, "Alpha").await;
    receive(&app, &staff, &[(a, 10)]).await;

    for (quantity, reason, message) in [
        (1, "damaged", "must be negative for damaged or lost stock"),
        (2, "lost", "must be negative for damaged or lost stock"),
        (-1, "found", "must be positive for found stock"),
        (0, "correction", "must not be zero"),
        (100_001, "found", "must be between -100000 and 100000"),
        (-100_001, "lost", "must be between -100000 and 100000"),
    ] {
        let res = adjust(&app, &staff, a, quantity, reason).await;
        assert_invalid(&res, "quantity", message);
    }
    let res = adjust(&app, &staff, a, -1, "stolen").await;
    res.invalid_field("reason");
    let res = adjust(&app, &staff, 999_999, -1, "lost").await;
    assert_invalid(&res, "book_id", "no book with id 999999");
    let res = app
        .post(
            "/api/v1/inventory/adjustments",
            Some(&staff),
            json!({"book_id": a, "quantity": -1, "reason": "lost", "kind": "sale"}),
        )
        .await;
    res.invalid_field("kind");
    let res = app
        .post(
            "/api/v1/inventory/adjustments",
            Some(&staff),
            json!({"book_id": a, "reason": "lost"}),
        )
        .await;
    res.invalid_field("quantity");

    assert_eq!(app.count("stock_movements"), 1);
    assert_eq!(level(&app, a), Some((10, 0, 2)));
}

#[tokio::test]
async fn an_adjustment_never_takes_on_hand_below_reserved() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let a = book(&app, &staff, 1, "Alpha").await;
    let empty = book(&app, &staff, 2, "Empty").await;
    receive(&app, &staff, &[(a, 5)]).await;
    set_reserved(&app, a, 3);

    let res = adjust(&app, &staff, a, -3, "damaged").await;
    assert_problem(
        &res,
        409,
        "conflict",
        "Conflict",
        &format!(
            "not enough stock of book {a} (\"Alpha\") to remove 3: on hand 5, reserved 3, so at \
             most 2 can be removed"
        ),
    );
    let res = adjust(&app, &staff, empty, -1, "lost").await;
    assert_problem(
        &res,
        409,
        "conflict",
        "Conflict",
        &format!(
            "not enough stock of book {empty} (\"Empty\") to remove 1: on hand 0, reserved 0, so \
             at most 0 can be removed"
        ),
    );
    // Nothing written: neither the level (not even its version) nor the ledger.
    assert_eq!(level(&app, a), Some((5, 3, 2)));
    assert_eq!(level(&app, empty), Some((0, 0, 1)));
    assert_eq!(app.count("stock_movements"), 1);

    // The unreserved copies can go.
    let res = adjust(&app, &staff, a, -2, "damaged").await;
    res.expect(201);
    assert_eq!(res.body["level"]["on_hand"], 3);
    assert_eq!(res.body["level"]["available"], 0);
    adjust(&app, &staff, a, -1, "correction").await.problem(409);
    assert_eq!(level(&app, a), Some((3, 3, 3)));
    assert_ledger_matches(&app);
}

#[tokio::test]
async fn every_inventory_route_needs_a_staff_token() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let admin = app.admin();
    let customer = app.customer();
    let a = book(&app, &staff, 1, "Alpha").await;
    let routes = [
        (Method::GET, "/api/v1/inventory".to_owned(), None),
        (Method::GET, format!("/api/v1/inventory/{a}"), None),
        (
            Method::PATCH,
            format!("/api/v1/inventory/{a}"),
            Some(json!({"reorder_point": 1})),
        ),
        (Method::GET, "/api/v1/inventory/movements".to_owned(), None),
        (
            Method::POST,
            "/api/v1/inventory/receipts".to_owned(),
            Some(json!({"lines": [{"book_id": a, "quantity": 1, "unit_cost_cents": 1}]})),
        ),
        (
            Method::POST,
            "/api/v1/inventory/adjustments".to_owned(),
            Some(json!({"book_id": a, "quantity": 1, "reason": "found"})),
        ),
    ];
    for (method, path, body) in &routes {
        let res = app.send(method.clone(), path, None, body.clone()).await;
        res.problem(401);
        assert_eq!(res.header("www-authenticate"), Some("Bearer"));
        let res = app
            .send(method.clone(), path, Some("not-a-token"), body.clone())
            .await;
        res.problem(401);
        let res = app
            .send(method.clone(), path, Some(&customer), body.clone())
            .await;
        assert_problem(
            &res,
            403,
            "forbidden",
            "Forbidden",
            "this action needs the staff or admin role",
        );
    }
    assert_eq!(app.count("stock_movements"), 0);
    assert_eq!(level(&app, a), Some((0, 0, 1)));
    // Admins may do what staff may.
    app.get("/api/v1/inventory", Some(&admin)).await.expect(200);
    adjust(&app, &admin, a, 1, "found").await.expect(201);
}

#[tokio::test]
async fn a_level_is_read_with_its_etag_and_patched_with_if_match() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let a = book(&app, &staff, 1, "Alpha").await;
    let path = format!("/api/v1/inventory/{a}");

    let res = app.get(&path, Some(&staff)).await;
    res.expect(200);
    assert_eq!(res.header("etag"), Some("\"1\""));
    assert_eq!(
        without_times(&res.body),
        level_view(a, "Alpha", &isbn13(1), 0, 0, 0, 0, 1, None)
    );
    for missing in ["/api/v1/inventory/999999", "/api/v1/inventory/abc"] {
        app.get(missing, Some(&staff)).await.problem(404);
    }

    let body = json!({"reorder_point": 5, "reorder_quantity": 20});
    let res = patch_if(&app, &staff, &path, None, body.clone()).await;
    assert_problem(
        &res,
        428,
        "precondition-required",
        "Precondition required",
        "send If-Match with the ETag of the version you are changing",
    );
    let res = patch_if(&app, &staff, &path, Some("\"7\""), body.clone()).await;
    res.problem(412);
    assert_eq!(level(&app, a), Some((0, 0, 1)));

    let res = patch_if(&app, &staff, &path, Some("\"1\""), body).await;
    res.expect(200);
    assert_eq!(res.header("etag"), Some("\"2\""));
    assert_eq!(
        without_times(&res.body),
        level_view(a, "Alpha", &isbn13(1), 0, 0, 5, 20, 2, None)
    );
    // Absent fields are kept.
    let res = patch_if(
        &app,
        &staff,
        &path,
        Some("\"2\""),
        json!({"reorder_point": 3}),
    )
    .await;
    res.expect(200);
    assert_eq!(
        without_times(&res.body),
        level_view(a, "Alpha", &isbn13(1), 0, 0, 3, 20, 3, None)
    );
    // A stock movement changes the version too.
    receive(&app, &staff, &[(a, 4)]).await;
    let res = patch_if(
        &app,
        &staff,
        &path,
        Some("\"3\""),
        json!({"reorder_point": 1}),
    )
    .await;
    res.problem(412);
    let res = patch_if(&app, &staff, &path, Some("*"), json!({"reorder_point": 4})).await;
    res.expect(200);
    assert_eq!(res.header("etag"), Some("\"5\""));
    assert_eq!(
        without_times(&res.body),
        level_view(a, "Alpha", &isbn13(1), 4, 0, 4, 20, 5, Some(500))
    );
    assert_eq!(res.body["low_stock"], true);

    let res = patch_if(&app, &staff, &path, Some("*"), json!({"reorder_point": -1})).await;
    assert_invalid(&res, "reorder_point", "must be between 0 and 1000000");
    let res = patch_if(
        &app,
        &staff,
        &path,
        Some("*"),
        json!({"reorder_quantity": 1_000_001}),
    )
    .await;
    assert_invalid(&res, "reorder_quantity", "must be between 0 and 1000000");
    // Stock itself cannot be patched: only movements change it.
    let res = patch_if(&app, &staff, &path, Some("*"), json!({"on_hand": 100})).await;
    res.invalid_field("on_hand");
    let res = patch_if(
        &app,
        &staff,
        "/api/v1/inventory/999999",
        Some("\"1\""),
        json!({"reorder_point": 1}),
    )
    .await;
    assert_problem(
        &res,
        404,
        "not-found",
        "Not found",
        "no book with id 999999",
    );
    assert_eq!(level(&app, a), Some((4, 0, 5)));
    assert_ledger_matches(&app);
}

#[tokio::test]
async fn levels_are_listed_filtered_and_paged() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let alpha = book(&app, &staff, 1, "Alpha").await;
    let beta = book(&app, &staff, 2, "beta").await;
    let gamma = book(&app, &staff, 3, "Gamma 100%").await;
    receive(&app, &staff, &[(alpha, 10), (beta, 2)]).await;
    patch_if(
        &app,
        &staff,
        &format!("/api/v1/inventory/{beta}"),
        Some("*"),
        json!({"reorder_point": 5, "reorder_quantity": 10}),
    )
    .await
    .expect(200);
    let (app, staff) = (&app, staff.as_str());
    let list = |query: &str| {
        let path = format!("/api/v1/inventory{query}");
        async move { app.get(&path, Some(staff)).await }
    };
    let book_ids = |page: &Value| -> Vec<i64> {
        page["items"]
            .as_array()
            .unwrap_or_else(|| panic!("a page: {page}"))
            .iter()
            .map(|l| l["book_id"].as_i64().expect("book_id"))
            .collect()
    };

    let res = list("").await;
    res.expect(200);
    assert_eq!(
        without_times(&res.body),
        json!({
            "items": [
                level_view(alpha, "Alpha", &isbn13(1), 10, 0, 0, 0, 2, Some(500)),
                level_view(beta, "beta", &isbn13(2), 2, 0, 5, 10, 3, Some(500)),
                level_view(gamma, "Gamma 100%", &isbn13(3), 0, 0, 0, 0, 1, None),
            ],
            "page": 1, "per_page": 20, "total": 3,
        })
    );
    // available <= reorder_point: beta (2 <= 5) and gamma (0 <= 0).
    let res = list("?low_stock=true").await;
    assert_eq!(book_ids(&res.body), vec![beta, gamma]);
    assert_eq!(res.body["total"], 2);
    let res = list("?low_stock=false").await;
    assert_eq!(book_ids(&res.body), vec![alpha]);
    // Title substrings, case-insensitively; wildcards match literally.
    assert_eq!(book_ids(&list("?q=ETA").await.body), vec![beta]);
    assert_eq!(book_ids(&list("?q=a").await.body), vec![alpha, beta, gamma]);
    assert_eq!(book_ids(&list("?q=100%25").await.body), vec![gamma]);
    assert_eq!(book_ids(&list("?q=%25").await.body), vec![gamma]);
    assert_eq!(book_ids(&list("?q=_").await.body), Vec::<i64>::new());
    // An ISBN in either form, hyphens allowed.
    let isbn = isbn13(2);
    assert_eq!(
        book_ids(&list(&format!("?q={}", isbn10(&isbn))).await.body),
        vec![beta]
    );
    assert_eq!(
        book_ids(
            &list(&format!("?q={}-{}", &isbn[..3], &isbn[3..]))
                .await
                .body
        ),
        vec![beta]
    );
    assert_eq!(
        book_ids(&list(&format!("?q={isbn}&low_stock=false")).await.body),
        Vec::<i64>::new()
    );
    // Pages.
    let res = list("?per_page=1&page=2").await;
    assert_eq!(book_ids(&res.body), vec![beta]);
    assert_eq!(
        (&res.body["page"], &res.body["per_page"], &res.body["total"]),
        (&json!(2), &json!(1), &json!(3))
    );
    let res = list("?per_page=2&page=3").await;
    assert_eq!(book_ids(&res.body), Vec::<i64>::new());
    assert_eq!(res.body["total"], 3);

    assert_invalid(
        &list("?per_page=101").await,
        "per_page",
        "must be between 1 and 100",
    );
    assert_invalid(&list("?page=0").await, "page", "must be at least 1");
    list("?low_stock=maybe").await.invalid_field("low_stock");
}

#[tokio::test]
async fn movements_are_listed_newest_first_with_filters() {
    let app = TestApp::spawn().await;
    let (staff_id, staff) = app.user(Role::Staff);
    let a = book(&app, &staff, 1, "Alpha").await;
    let b = book(&app, &staff, 2, "Beta").await;
    let receipt = receive(&app, &staff, &[(a, 10), (b, 4)]).await;
    adjust(&app, &staff, a, -1, "damaged").await.expect(201);
    adjust(&app, &staff, b, 2, "found").await.expect(201);
    let (app, staff) = (&app, staff.as_str());
    let list = |query: String| async move {
        app.get(&format!("/api/v1/inventory/movements{query}"), Some(staff))
            .await
    };
    let all_ids: Vec<i64> = {
        let mut conn = app.conn();
        stock_movements::table
            .order(stock_movements::id.desc())
            .select(stock_movements::id)
            .load(&mut *conn)
            .expect("ids")
    };
    assert_eq!(all_ids.len(), 4);

    let res = list(String::new()).await;
    res.expect(200);
    assert_eq!(ids(&res.body), all_ids);
    assert_eq!(res.body["total"], 4);
    assert_eq!(
        without_times(&res.body["items"][0]),
        json!({
            "id": all_ids[0], "book_id": b, "quantity": 2, "kind": "adjustment",
            "reference": null, "reason": "found", "note": null, "unit_cost_cents": null,
            "user_id": staff_id,
        })
    );
    assert_eq!(
        without_times(&res.body["items"][3]),
        json!({
            "id": all_ids[3], "book_id": a, "quantity": 10, "kind": "receipt",
            "reference": format!("receipt:{}", receipt["id"]), "reason": null, "note": null,
            "unit_cost_cents": 500, "user_id": staff_id,
        })
    );

    let res = list(format!("?book_id={a}")).await;
    assert_eq!(ids(&res.body), vec![all_ids[1], all_ids[3]]);
    let res = list("?kind=adjustment".into()).await;
    assert_eq!(ids(&res.body), vec![all_ids[0], all_ids[1]]);
    let res = list(format!("?kind=receipt&book_id={b}")).await;
    assert_eq!(ids(&res.body), vec![all_ids[2]]);
    assert_eq!(res.body["total"], 1);
    assert_eq!(list("?kind=sale".into()).await.body["total"], 0);

    // Date ranges: dates cover whole UTC days, RFC 3339 times are exact.
    let today = chrono::Utc::now().date_naive();
    let day = |d: chrono::NaiveDate| d.format("%Y-%m-%d").to_string();
    let tomorrow = day(today.succ_opt().unwrap());
    let yesterday = day(today.pred_opt().unwrap());
    let today = day(today);
    assert_eq!(
        list(format!("?from={today}&to={today}")).await.body["total"],
        4
    );
    assert_eq!(
        list(format!("?from={yesterday}&to={today}")).await.body["total"],
        4
    );
    assert_eq!(list(format!("?from={tomorrow}")).await.body["total"], 0);
    assert_eq!(list(format!("?to={yesterday}")).await.body["total"], 0);
    let at = |offset_minutes: i64| {
        (chrono::Utc::now() + chrono::Duration::minutes(offset_minutes))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    assert_eq!(
        list(format!("?from={}&to={}", at(-60), at(60))).await.body["total"],
        4
    );
    assert_eq!(list(format!("?from={}", at(60))).await.body["total"], 0);
    assert_eq!(list(format!("?to={}", at(-60))).await.body["total"], 0);
    // An offset other than Z is converted to UTC ('+' must be escaped in a query string).
    let plus_two = (chrono::Utc::now() + chrono::Duration::minutes(60))
        .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap())
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
        .replace('+', "%2B");
    assert_eq!(list(format!("?to={plus_two}")).await.body["total"], 4);
    assert_eq!(list(format!("?from={plus_two}")).await.body["total"], 0);

    // Pages.
    let res = list("?per_page=3&page=2".into()).await;
    assert_eq!(ids(&res.body), vec![all_ids[3]]);
    assert_eq!(
        (&res.body["page"], &res.body["per_page"], &res.body["total"]),
        (&json!(2), &json!(3), &json!(4))
    );

    assert_invalid(
        &list("?kind=theft".into()).await,
        "kind",
        "must be one of receipt, sale, return, adjustment, stocktake",
    );
    assert_invalid(
        &list("?from=yesterday".into()).await,
        "from",
        "must be an RFC 3339 time (2026-11-25T10:00:00Z) or a date (2026-11-25)",
    );
    list("?to=2026-13-01".into()).await.invalid_field("to");
    assert_invalid(
        &list(format!("?from={tomorrow}&to={today}")).await,
        "from",
        "must not be after to",
    );
    list("?book_id=x".into()).await.invalid_field("book_id");
    assert_invalid(
        &list("?per_page=0".into()).await,
        "per_page",
        "must be between 1 and 100",
    );
}

#[tokio::test]
async fn the_ledger_explains_on_hand_after_a_mix_of_operations() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let a = book(&app, &staff, 1, "Alpha").await;
    let b = book(&app, &staff, 2, "Beta").await;
    let c = book(&app, &staff, 3, "Gamma").await;
    receive(&app, &staff, &[(a, 7), (b, 3)]).await;
    receive(&app, &staff, &[(b, 10), (c, 1)]).await;
    adjust(&app, &staff, a, -2, "damaged").await.expect(201);
    adjust(&app, &staff, c, -2, "lost").await.problem(409);
    adjust(&app, &staff, c, -1, "lost").await.expect(201);
    adjust(&app, &staff, c, 5, "found").await.expect(201);
    set_reserved(&app, b, 12);
    adjust(&app, &staff, b, -2, "correction").await.problem(409);
    adjust(&app, &staff, b, -1, "correction").await.expect(201);
    adjust(&app, &staff, b, 4, "damaged")
        .await
        .invalid_field("quantity");
    app.post(
        "/api/v1/inventory/receipts",
        Some(&staff),
        json!({"lines": [
            {"book_id": a, "quantity": 1, "unit_cost_cents": 1},
            {"book_id": 999_999, "quantity": 1, "unit_cost_cents": 1},
        ]}),
    )
    .await
    .invalid_field("lines[1].book_id");
    patch_if(
        &app,
        &staff,
        &format!("/api/v1/inventory/{a}"),
        Some("*"),
        json!({"reorder_point": 2}),
    )
    .await
    .expect(200);
    receive(&app, &staff, &[(c, 2), (a, 1)]).await;

    assert_eq!(level(&app, a).map(|l| l.0), Some(6));
    assert_eq!(level(&app, b).map(|l| (l.0, l.1)), Some((12, 12)));
    assert_eq!(level(&app, c).map(|l| l.0), Some(7));
    assert_eq!(app.count("stock_movements"), 10);
    assert_ledger_matches(&app);
}

#[tokio::test]
async fn concurrent_adjustments_never_take_stock_below_zero() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let a = book(&app, &staff, 1, "Alpha").await;
    receive(&app, &staff, &[(a, 10)]).await;

    let attempts = (0..16).map(|_| adjust(&app, &staff, a, -1, "lost"));
    let results = futures_util::future::join_all(attempts).await;
    let mut statuses: Vec<u16> = results.iter().map(|r| r.status.as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [vec![201; 10], vec![409; 6]].concat());
    for res in results.iter().filter(|r| r.status == 409) {
        res.problem(409);
    }
    assert_eq!(level(&app, a).map(|l| (l.0, l.1)), Some((0, 0)));
    assert_eq!(ledger_sum(&app, a), 0);
    assert_eq!(app.count("stock_movements"), 11);
    assert_ledger_matches(&app);
}

#[tokio::test]
async fn concurrent_receipts_over_the_same_books_all_land() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let a = book(&app, &staff, 1, "Alpha").await;
    let b = book(&app, &staff, 2, "Beta").await;

    // Lines in opposite orders: rows are locked in book order, so none of them deadlock.
    let receipts = (0..12).map(|i| {
        let lines = if i % 2 == 0 {
            json!([{"book_id": a, "quantity": 1, "unit_cost_cents": 1},
                   {"book_id": b, "quantity": 2, "unit_cost_cents": 1}])
        } else {
            json!([{"book_id": b, "quantity": 2, "unit_cost_cents": 1},
                   {"book_id": a, "quantity": 1, "unit_cost_cents": 1}])
        };
        app.post(
            "/api/v1/inventory/receipts",
            Some(&staff),
            json!({ "lines": lines }),
        )
    });
    let results = futures_util::future::join_all(receipts).await;
    for res in &results {
        res.expect(201);
    }
    assert_eq!(level(&app, a).map(|l| (l.0, l.2)), Some((12, 13)));
    assert_eq!(level(&app, b).map(|l| (l.0, l.2)), Some((24, 13)));
    assert_eq!(app.count("stock_receipts"), 12);
    assert_ledger_matches(&app);
}

#[tokio::test]
async fn the_catalog_shows_available_copies_and_filters_in_stock() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let a = book(&app, &staff, 1, "Alpha").await;
    let b = book(&app, &staff, 2, "Beta").await;
    let c = book(&app, &staff, 3, "Gamma").await;
    receive(&app, &staff, &[(a, 3), (c, 2)]).await;
    set_reserved(&app, c, 2);

    for (id, available) in [(a, 3), (b, 0), (c, 0)] {
        let res = app.get(&format!("/api/v1/books/{id}"), None).await;
        res.expect(200);
        assert_eq!(res.body["available"], available, "book {id}");
    }
    let res = app
        .get(&format!("/api/v1/books/isbn/{}", isbn13(1)), None)
        .await;
    assert_eq!(res.body["available"], 3);
    let res = app.get("/api/v1/books", None).await;
    let available: Vec<&Value> = res.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| &b["available"])
        .collect();
    assert_eq!(available, vec![&json!(3), &json!(0), &json!(0)]);

    let res = app.get("/api/v1/books?in_stock=true", None).await;
    res.expect(200);
    assert_eq!(ids(&res.body), vec![a]);
    assert_eq!(res.body["total"], 1);
    assert_eq!(
        ids(&app.get("/api/v1/books?in_stock=false", None).await.body),
        vec![a, b, c]
    );
    assert_eq!(
        ids(&app
            .get("/api/v1/books?in_stock=true&q=beta", None)
            .await
            .body),
        Vec::<i64>::new()
    );
    app.get("/api/v1/books?in_stock=yes", None)
        .await
        .invalid_field("in_stock");

    // A stock change shows at once, though it is no catalog write.
    receive(&app, &staff, &[(b, 1)]).await;
    assert_eq!(
        ids(&app.get("/api/v1/books?in_stock=true", None).await.body),
        vec![a, b]
    );
    adjust(&app, &staff, a, -3, "lost").await.expect(201);
    assert_eq!(
        ids(&app.get("/api/v1/books?in_stock=true", None).await.body),
        vec![b]
    );
    let res = app.get(&format!("/api/v1/books/{a}"), None).await;
    assert_eq!(res.body["available"], 0);
}

#[tokio::test]
async fn deleting_a_book_with_movements_archives_it() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let kept = book(&app, &staff, 1, "Alpha").await;
    let gone = book(&app, &staff, 2, "Beta").await;
    receive(&app, &staff, &[(kept, 2)]).await;
    adjust(&app, &staff, kept, -2, "damaged").await.expect(201);

    let res = app
        .delete(&format!("/api/v1/books/{kept}"), Some(&staff))
        .await;
    res.expect(200);
    assert_eq!(res.body["id"], kept);
    assert_eq!(res.body["status"], "archived");
    assert_eq!(res.body["version"], 2);
    assert_eq!(res.body["available"], 0);
    // The book, its level and its ledger stay.
    assert_eq!(app.count("books"), 2);
    assert_eq!(level(&app, kept).map(|l| l.0), Some(0));
    assert_eq!(movements_of(&app, kept).len(), 2);

    // A book without movements is deleted, with its stock level.
    let res = app
        .delete(&format!("/api/v1/books/{gone}"), Some(&staff))
        .await;
    res.expect(204);
    assert_eq!(level(&app, gone), None);
    assert_eq!(app.count("stock_levels"), 1);
    app.get(&format!("/api/v1/inventory/{gone}"), Some(&staff))
        .await
        .problem(404);
    assert_ledger_matches(&app);
}

#[tokio::test]
async fn every_book_gets_a_stock_level_however_it_is_created() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    book(&app, &staff, 1, "Alpha").await;
    import_csv(
        &app,
        &staff,
        &format!(
            "isbn,title,language,format,list_price_cents\n{},Imported,en,paperback,900\n{},Other,en,ebook,500\n",
            isbn13(2),
            isbn13(3)
        ),
    )
    .await
    .expect(200);
    assert_eq!(app.count("books"), 3);
    assert_eq!(app.count("stock_levels"), 3);
    assert_eq!(app.count("stock_movements"), 0);
    assert_ledger_matches(&app);
}

#[tokio::test]
async fn the_migration_gives_existing_books_an_empty_stock_level() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let a = book(&app, &staff, 1, "Alpha").await;
    let mut conn = app.conn();
    let conn_backend = conn.backend();
    let migrations = || match conn_backend {
        Backend::Sqlite => db::SQLITE_MIGRATIONS,
        Backend::Postgres => db::PG_MIGRATIONS,
    };
    let inner: &mut DbConn = &mut conn;
    // Back past the later migrations to before the inventory one.
    for version in [
        "20261206000007",
        "20261125000006",
        "20261125000005",
        "20261125000004",
        "20261125000003",
        "20261125000002",
    ] {
        let reverted = inner.revert_last_migration(migrations()).expect("revert");
        assert_eq!(reverted.to_string(), version);
    }
    let at = db::now();
    let b: i64 = diesel::insert_into(books::table)
        .values((
            books::isbn.eq(isbn13(2)),
            books::title.eq("Older"),
            books::language.eq("en"),
            books::format.eq("paperback"),
            books::list_price_cents.eq(100),
            books::status.eq("active"),
            books::version.eq(1),
            books::created_at.eq(at),
            books::updated_at.eq(at),
        ))
        .returning(books::id)
        .get_result(&mut *conn)
        .expect("insert book");
    db::run_migrations(&mut conn).expect("migrate");
    drop(conn);
    assert_eq!(level(&app, a), Some((0, 0, 1)));
    assert_eq!(level(&app, b), Some((0, 0, 1)));
    let res = app
        .get(&format!("/api/v1/inventory/{b}"), Some(&staff))
        .await;
    res.expect(200);
    assert_eq!(
        without_times(&res.body),
        level_view(b, "Older", &isbn13(2), 0, 0, 0, 0, 1, None)
    );
}

#[tokio::test]
async fn stock_changes_run_inside_a_write_transaction() {
    // Outside one, `stock::apply_movement` does not compile: it takes a `&mut WriteTx` (see the
    // compile_fail example on `bookstore::db::WriteTx`).
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let a = book(&app, &staff, 1, "Alpha").await;
    let mut conn = app.conn();
    let movement = stock::Movement {
        book_id: a,
        quantity: 1,
        kind: MovementKind::Adjustment,
        reference: None,
        reason: Some("found"),
        note: None,
        unit_cost_cents: None,
        user_id: None,
        at: db::now(),
    };
    let (level, row) = db::write_transaction(&mut conn, |tx| stock::apply_movement(tx, &movement))
        .expect("inside a transaction");
    assert_eq!((level.on_hand, level.version, row.quantity), (1, 2, 1));
    drop(conn);
    assert_ledger_matches(&app);
}

#[tokio::test]
async fn a_wrong_method_is_a_405_problem() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    for (method, path) in [
        (Method::GET, "/api/v1/inventory/receipts"),
        (Method::GET, "/api/v1/inventory/adjustments"),
        (Method::POST, "/api/v1/inventory/movements"),
        (Method::DELETE, "/api/v1/inventory/1"),
        (Method::POST, "/api/v1/inventory"),
    ] {
        let res = app
            .send(method.clone(), path, Some(&staff), Some(json!({})))
            .await;
        assert_problem(
            &res,
            405,
            "method-not-allowed",
            "Method Not Allowed",
            &format!("{method} is not allowed on {path}"),
        );
    }
}

#[tokio::test]
async fn receipts_keep_a_moving_average_cost_and_the_level_shows_the_stock_value() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let a = book(&app, &staff, 1, "Alpha").await;
    let level = app
        .get(&format!("/api/v1/inventory/{a}"), Some(&staff))
        .await;
    assert_eq!(level.expect(200).body["avg_unit_cost_cents"], Value::Null);
    assert_eq!(level.body["stock_value_cents"], Value::Null);
    assert_eq!(level.body["on_order"], 0);
    let receive_at = |quantity: i64, cost: i64| {
        app.post(
            "/api/v1/inventory/receipts",
            Some(&staff),
            json!({"lines": [{"book_id": a, "quantity": quantity, "unit_cost_cents": cost}]}),
        )
    };
    receive_at(10, 500).await.expect(201);
    receive_at(10, 800).await.expect(201);
    let level = app
        .get(&format!("/api/v1/inventory/{a}"), Some(&staff))
        .await;
    assert_eq!(level.body["avg_unit_cost_cents"], 650);
    adjust(&app, &staff, a, -5, "damaged").await.expect(201);
    // (15 × 650 + 5 × 1000) / 20 = 737.5, rounded to 738.
    receive_at(5, 1000).await.expect(201);
    let level = app
        .get(&format!("/api/v1/inventory/{a}"), Some(&staff))
        .await;
    assert_eq!(level.body["on_hand"], 20);
    assert_eq!(level.body["avg_unit_cost_cents"], 738);
    assert_eq!(level.body["stock_value_cents"], 20 * 738);
    assert_ledger_matches(&app);
}

#[tokio::test]
async fn a_receipt_retried_with_its_idempotency_key_is_recorded_once() {
    let app = TestApp::spawn().await;
    let (_, staff) = app.user(Role::Staff);
    let a = book(&app, &staff, 1, "Alpha").await;
    let body = json!({"lines": [{"book_id": a, "quantity": 7, "unit_cost_cents": 500}]});
    let send = |key: &'static str, body: Value| {
        let req = app
            .client
            .post(app.url("/api/v1/inventory/receipts"))
            .bearer_auth(&staff)
            .header("Idempotency-Key", key)
            .json(&body);
        TestApp::read(req)
    };

    // Three posts with one key (two of them racing): one receipt, the stock received once.
    let first = send("delivery-4471", body.clone()).await;
    first.expect(201);
    let (second, third) = tokio::join!(
        send("delivery-4471", body.clone()),
        send("delivery-4471", body.clone())
    );
    for again in [&second, &third] {
        again.expect(201);
        assert_eq!(again.header("idempotent-replayed"), Some("true"));
        assert_eq!(again.body, first.body);
    }
    assert_eq!(app.count("stock_receipts"), 1);
    assert_eq!(level(&app, a).map(|(on_hand, _, _)| on_hand), Some(7));

    // The same key with another body is a reuse; a new key is a new delivery.
    let other = json!({"lines": [{"book_id": a, "quantity": 8, "unit_cost_cents": 500}]});
    send("delivery-4471", other.clone())
        .await
        .invalid_field("Idempotency-Key");
    send("delivery-4472", other).await.expect(201);
    assert_eq!(app.count("stock_receipts"), 2);
    assert_eq!(level(&app, a).map(|(on_hand, _, _)| on_hand), Some(15));
}
