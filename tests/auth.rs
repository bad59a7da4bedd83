//! Accounts and authorization: sign-up, login and its throttling, refresh-token rotation and
//! re-use detection, logout, `me`, user administration, and the refusal of bad tokens.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use bookstore::auth::token::{hash_refresh_token, Claims};
use bookstore::auth::Role;
use bookstore::db::schema::{customers, refresh_tokens, users};
use bookstore::db::DbConn;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::Value;

const INVALID_CREDENTIALS: &str = "the email or password is incorrect";
const INVALID_REFRESH: &str = "the refresh token is invalid, expired or revoked; log in again";

async fn register(app: &TestApp, email: &str, password: &str) -> Res {
    app.post(
        "/api/v1/auth/register",
        None,
        json!({"email": email, "password": password, "name": "Ada Lovelace",
               "phone": "+44 20 7946 0000"}),
    )
    .await
}

async fn login(app: &TestApp, email: &str, password: &str) -> Res {
    app.post(
        "/api/v1/auth/login",
        None,
        json!({"email": email, "password": password}),
    )
    .await
}

async fn refresh(app: &TestApp, token: &str) -> Res {
    app.post(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": token}),
    )
    .await
}

fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v}"))
        .to_owned()
}

/// An RFC 3339 UTC timestamp, as every timestamp of the API is sent.
fn assert_utc_timestamp(v: &Value) {
    let text = s(v);
    assert!(text.ends_with('Z'), "not UTC: {text}");
    chrono::DateTime::parse_from_rfc3339(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
}

/// Asserts a token response and returns (access token, refresh token).
fn assert_token_pair(res: &Res) -> (String, String) {
    let body = &res.body;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let access = s(&body["access_token"]);
    assert_eq!(access.split('.').count(), 3, "a JWT: {access}");
    let refresh = s(&body["refresh_token"]);
    assert_eq!(refresh.len(), 64);
    assert!(refresh.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(res.header("cache-control"), Some("no-store"));
    (access, refresh)
}

/// The user view with its timestamps checked and then blanked, for whole-body comparisons.
fn user_without_timestamps(user: &Value) -> Value {
    assert_utc_timestamp(&user["created_at"]);
    assert_utc_timestamp(&user["updated_at"]);
    let mut user = user.clone();
    user["created_at"] = Value::Null;
    user["updated_at"] = Value::Null;
    user
}

fn conn(app: &TestApp) -> bookstore::db::PooledConn {
    app.conn()
}

#[derive(Debug, Queryable)]
struct TokenRow {
    user_id: i64,
    family: String,
    token_hash: String,
    rotated_at: Option<NaiveDateTime>,
    revoked_at: Option<NaiveDateTime>,
}

fn token_rows(app: &TestApp) -> Vec<TokenRow> {
    let mut c = conn(app);
    refresh_tokens::table
        .order(refresh_tokens::id)
        .select((
            refresh_tokens::user_id,
            refresh_tokens::family,
            refresh_tokens::token_hash,
            refresh_tokens::rotated_at,
            refresh_tokens::revoked_at,
        ))
        .load::<TokenRow>(&mut *c as &mut DbConn)
        .unwrap()
}

fn token_row(app: &TestApp, token: &str) -> TokenRow {
    let hash = hash_refresh_token(token);
    token_rows(app)
        .into_iter()
        .find(|r| r.token_hash == hash)
        .expect("token stored by its hash")
}

/// Email of a user made by `app.user(..)`.
async fn email_of(app: &TestApp, token: &str) -> String {
    let res = app.get("/api/v1/auth/me", Some(token)).await;
    res.expect(200);
    s(&res.body["email"])
}

// ------------------------------------------------------------------------------------------------
// Sign-up
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn register_creates_a_customer_account_and_logs_it_in() {
    let app = TestApp::spawn().await;
    let res = register(&app, "  Ada@Example.COM ", PASSWORD).await;
    res.expect(201);
    assert_eq!(res.header("location"), Some("/api/v1/auth/me"));
    let (access, refresh_token) = assert_token_pair(&res);
    let user = &res.body["user"];
    let id = user["id"].as_i64().unwrap();
    let customer_id = user["customer_id"].as_i64().unwrap();
    assert_eq!(
        user_without_timestamps(user),
        json!({
            "id": id,
            "email": "ada@example.com",
            "role": "customer",
            "active": true,
            "customer_id": customer_id,
            "created_at": null,
            "updated_at": null,
            "customer": {"id": customer_id, "name": "Ada Lovelace", "email": "ada@example.com",
                         "phone": "+44 20 7946 0000"}
        })
    );
    assert_eq!(res.body.as_object().unwrap().len(), 5);

    // Stored: the email lower-cased, an argon2id hash, the customer record, a hashed token.
    let mut c = conn(&app);
    let (email, hash, role) = users::table
        .find(id)
        .select((users::email, users::password_hash, users::role))
        .first::<(String, String, String)>(&mut *c as &mut DbConn)
        .unwrap();
    assert_eq!(email, "ada@example.com");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains(PASSWORD));
    assert_eq!(role, "customer");
    let (name, phone) = customers::table
        .find(customer_id)
        .select((customers::name, customers::phone))
        .first::<(String, Option<String>)>(&mut *c as &mut DbConn)
        .unwrap();
    assert_eq!(
        (name.as_str(), phone.as_deref()),
        ("Ada Lovelace", Some("+44 20 7946 0000"))
    );
    drop(c);
    let rows = token_rows(&app);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].token_hash, hash_refresh_token(&refresh_token));
    assert_ne!(rows[0].token_hash, refresh_token);
    assert_eq!(rows[0].user_id, id);

    // The access token works at once.
    let me = app.get("/api/v1/auth/me", Some(&access)).await;
    me.expect(200);
    assert_eq!(me.body, res.body["user"]);
}

#[tokio::test]
async fn register_rejects_a_taken_email_whatever_its_case() {
    let app = TestApp::spawn().await;
    register(&app, "reader@example.com", PASSWORD)
        .await
        .expect(201);
    let res = register(&app, "READER@Example.com", "another-fine-passphrase-7").await;
    let body = res.problem(409);
    assert_eq!(
        body["detail"],
        "an account with email reader@example.com already exists"
    );
    assert_eq!(body["type"], "https://bookstore.example/problems/conflict");
    // Nothing half-written: one user, one customer, one session.
    assert_eq!(app.count("users"), 1);
    assert_eq!(app.count("customers"), 1);
    assert_eq!(app.count("refresh_tokens"), 1);
}

#[tokio::test]
async fn register_enforces_the_password_policy() {
    let app = TestApp::spawn().await;
    let email = "Bookworm.Reader@example.com";
    let long = "x".repeat(257);
    let cases = [
        ("short1!", "must be at least 10 characters long"),
        (long.as_str(), "must be at most 256 characters long"),
        (
            "bookworm.READER@example.com",
            "must not be your email address",
        ),
        // The local part of the email, whatever its case, is refused too.
        ("BOOKWORM.reader", "must not be your email address"),
        (
            "password123",
            "is too common; choose a less predictable password",
        ),
        (
            "1234567890",
            "is too common; choose a less predictable password",
        ),
    ];
    for (password, message) in cases {
        let res = register(&app, email, password).await;
        let body = res.invalid_field("password");
        assert_eq!(
            *body,
            json!({"type": "https://bookstore.example/problems/validation",
                   "title": "Invalid input", "status": 422,
                   "detail": format!("password: {message}"),
                   "errors": [{"field": "password", "message": message}]}),
            "password {password:?}"
        );
    }
    assert_eq!(app.count("users"), 0);
    assert_eq!(app.count("customers"), 0);
    assert_eq!(app.count("refresh_tokens"), 0);
}

#[tokio::test]
async fn register_validates_email_name_and_phone() {
    let app = TestApp::spawn().await;
    let res = register(&app, "not-an-email", PASSWORD).await;
    assert_eq!(
        res.invalid_field("email")["errors"],
        json!([{"field": "email", "message": "must be a valid email address"}])
    );
    let res = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "a@example.com", "password": PASSWORD}),
        )
        .await;
    res.invalid_field("name");
    let res = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "a@example.com", "password": PASSWORD, "name": "   "}),
        )
        .await;
    assert_eq!(
        res.invalid_field("name")["errors"][0]["message"],
        "must not be blank"
    );
    let res = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "a@example.com", "password": PASSWORD, "name": "A",
                   "phone": "call me maybe"}),
        )
        .await;
    res.invalid_field("phone");
    // Unknown fields are refused rather than silently dropped (e.g. a self-assigned role).
    let res = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "a@example.com", "password": PASSWORD, "name": "A",
                   "role": "admin"}),
        )
        .await;
    res.problem(422);
    assert_eq!(app.count("users"), 0);
}

// ------------------------------------------------------------------------------------------------
// Login
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn login_answers_a_token_pair() {
    let app = TestApp::spawn().await;
    let reg = register(&app, "reader@example.com", PASSWORD).await;
    reg.expect(201);
    let res = login(&app, "  READER@example.com", PASSWORD).await;
    res.expect(200);
    let (access, _) = assert_token_pair(&res);
    assert_eq!(res.body["user"], reg.body["user"]);
    assert_eq!(res.body.as_object().unwrap().len(), 5);
    // Each login opens its own session (token family).
    let rows = token_rows(&app);
    assert_eq!(rows.len(), 2);
    assert_ne!(rows[0].family, rows[1].family);
    let me = app.get("/api/v1/auth/me", Some(&access)).await;
    me.expect(200);
    assert_eq!(me.body["email"], "reader@example.com");
}

#[tokio::test]
async fn login_failures_all_look_the_same() {
    let app = TestApp::spawn().await;
    let admin = app.admin();
    let reg = register(&app, "reader@example.com", PASSWORD).await;
    reg.expect(201);
    let id = reg.body["user"]["id"].as_i64().unwrap();

    let wrong_password = login(&app, "reader@example.com", "not-the-password-1").await;
    let unknown_email = login(&app, "nobody@example.com", PASSWORD).await;
    for res in [&wrong_password, &unknown_email] {
        let body = res.problem(401);
        assert_eq!(res.header("www-authenticate"), Some("Bearer"));
        assert_eq!(
            *body,
            json!({"type": "https://bookstore.example/problems/unauthorized",
                   "title": "Authentication required", "status": 401,
                   "detail": INVALID_CREDENTIALS})
        );
    }
    assert_eq!(wrong_password.body, unknown_email.body);

    // A deactivated account, even with the right password, answers the same.
    app.patch(
        &format!("/api/v1/users/{id}"),
        Some(&admin),
        json!({"active": false}),
    )
    .await
    .expect(200);
    let deactivated = login(&app, "reader@example.com", PASSWORD).await;
    deactivated.problem(401);
    assert_eq!(deactivated.body, wrong_password.body);
    // Only the sign-up's session exists: failures open none.
    assert_eq!(app.count("refresh_tokens"), 1);
}

#[tokio::test]
async fn login_is_throttled_after_repeated_failures() {
    let app = TestApp::spawn_with(|s| {
        s.login_max_failures = 3;
        s.login_max_failures_per_ip = 5;
    })
    .await;
    register(&app, "reader@example.com", PASSWORD)
        .await
        .expect(201);
    for _ in 0..3 {
        login(&app, "reader@example.com", "wrong-password-123")
            .await
            .problem(401);
    }
    // Refused before the password is checked: the right password gets 429 too.
    let res = login(&app, "READER@example.com", PASSWORD).await;
    let body = res.problem(429);
    assert_eq!(
        body["type"],
        "https://bookstore.example/problems/rate-limited"
    );
    let retry_after: u64 = res.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    assert_eq!(
        body["detail"],
        format!("too many attempts; retry in {retry_after} seconds")
    );
    // The address has a larger allowance of its own (5 here): two more failures on other
    // accounts are still answered, then the address itself is refused, whatever the account.
    for email in ["other@example.com", "third@example.com"] {
        login(&app, email, PASSWORD).await.problem(401);
    }
    login(&app, "fourth@example.com", PASSWORD)
        .await
        .problem(429);
    assert_eq!(app.count("refresh_tokens"), 1);
}

#[tokio::test]
async fn a_successful_login_clears_the_failures_of_its_email_and_address() {
    let app = TestApp::spawn_with(|s| s.login_max_failures = 3).await;
    register(&app, "reader@example.com", PASSWORD)
        .await
        .expect(201);
    for _ in 0..2 {
        login(&app, "Reader@example.com", "wrong-password-123")
            .await
            .problem(401);
    }
    // Failures are counted per normalised email: a success clears them, so two more failures
    // are still answered (a third would have been refused without the success).
    login(&app, " READER@example.com", PASSWORD)
        .await
        .expect(200);
    for _ in 0..2 {
        login(&app, "reader@example.com", "wrong-password-123")
            .await
            .problem(401);
    }
    login(&app, "reader@example.com", PASSWORD)
        .await
        .expect(200);
}

/// Logs in through a (simulated) proxy that forwards the client address `from`.
async fn login_from(app: &TestApp, from: &str, email: &str, password: &str) -> Res {
    TestApp::read(
        app.client
            .post(app.url("/api/v1/auth/login"))
            .header("x-forwarded-for", from)
            .json(&json!({"email": email, "password": password})),
    )
    .await
}

/// The test server behind a trusted proxy: requests come from 127.0.0.1, which is trusted, so
/// `X-Forwarded-For` names the client.
fn behind_proxy(s: &mut bookstore::Settings) {
    s.trusted_proxies = bookstore::http::client_addr::TrustedProxies::parse("127.0.0.1").unwrap();
}

const ATTACKER: &str = "203.0.113.7";
const OWNER: &str = "198.51.100.2";

#[tokio::test]
async fn an_attacker_on_one_address_does_not_lock_the_owner_out() {
    let app = TestApp::spawn_with(|s| {
        behind_proxy(s);
        s.login_max_failures = 3;
    })
    .await;
    register(&app, "owner@example.com", PASSWORD)
        .await
        .expect(201);
    for _ in 0..3 {
        login_from(&app, ATTACKER, "owner@example.com", "wrong-password-123")
            .await
            .problem(401);
    }
    // The attacker's address is refused for this account, even with the right password...
    for _ in 0..3 {
        let res = login_from(&app, ATTACKER, "owner@example.com", PASSWORD).await;
        res.problem(429);
        let retry_after: u64 = res.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=900).contains(&retry_after), "{retry_after}");
    }
    // ...while the owner, from another address, gets in.
    let res = login_from(&app, OWNER, "owner@example.com", PASSWORD).await;
    res.expect(200);
    assert_eq!(res.body["user"]["email"], "owner@example.com");
    // The sign-up's session and the owner's login; nothing for the attacker.
    assert_eq!(app.count("refresh_tokens"), 2);
    // The attacker is still refused after the owner's success.
    login_from(&app, ATTACKER, "owner@example.com", PASSWORD)
        .await
        .problem(429);
}

#[tokio::test]
async fn a_spoofed_forwarded_for_is_ignored_without_trusted_proxies() {
    let app = TestApp::spawn_with(|s| s.login_max_failures = 3).await;
    register(&app, "owner@example.com", PASSWORD)
        .await
        .expect(201);
    // Each failure claims another address; all are counted against the real peer.
    for i in 0..3 {
        login_from(
            &app,
            &format!("203.0.113.{i}"),
            "owner@example.com",
            "wrong-password-123",
        )
        .await
        .problem(401);
    }
    login_from(&app, OWNER, "owner@example.com", PASSWORD)
        .await
        .problem(429);
    assert_eq!(app.count("refresh_tokens"), 1);
}

#[tokio::test]
async fn one_address_spraying_many_accounts_is_refused() {
    let app = TestApp::spawn_with(|s| {
        behind_proxy(s);
        s.login_max_failures_per_ip = 4;
    })
    .await;
    register(&app, "owner@example.com", PASSWORD)
        .await
        .expect(201);
    for i in 0..4 {
        login_from(&app, ATTACKER, &format!("user{i}@example.com"), PASSWORD)
            .await
            .problem(401);
    }
    // Any account from that address now waits, the existing one too.
    let res = login_from(&app, ATTACKER, "owner@example.com", PASSWORD).await;
    res.problem(429);
    assert!(res.header("retry-after").is_some());
    login_from(&app, ATTACKER, "user9@example.com", PASSWORD)
        .await
        .problem(429);
    // Other addresses are not affected.
    login_from(&app, OWNER, "user0@example.com", PASSWORD)
        .await
        .problem(401);
    login_from(&app, OWNER, "owner@example.com", PASSWORD)
        .await
        .expect(200);
}

#[tokio::test]
async fn a_distributed_attack_meets_the_per_email_ceiling() {
    let app = TestApp::spawn_with(|s| {
        behind_proxy(s);
        s.login_max_failures = 3;
        s.login_max_failures_per_email = 6;
    })
    .await;
    register(&app, "owner@example.com", PASSWORD)
        .await
        .expect(201);
    register(&app, "other@example.com", PASSWORD)
        .await
        .expect(201);
    // Two failures from each of three addresses: no (email, address) pair reaches its 3.
    for i in 0..6 {
        login_from(
            &app,
            &format!("203.0.113.{}", i / 2),
            "owner@example.com",
            "wrong-password-123",
        )
        .await
        .problem(401);
    }
    // The account's ceiling is reached: every address waits for it, the owner's too...
    let res = login_from(&app, OWNER, "owner@example.com", PASSWORD).await;
    res.problem(429);
    assert!(res.header("retry-after").is_some());
    // ...but other accounts, from the same addresses, are not affected.
    login_from(&app, "203.0.113.0", "other@example.com", PASSWORD)
        .await
        .expect(200);
    assert_eq!(app.count("refresh_tokens"), 3);
}

#[tokio::test]
async fn login_validates_its_body() {
    let app = TestApp::spawn().await;
    let res = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "a@example.com"}),
        )
        .await;
    res.invalid_field("password");
    let res = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "", "password": "x"}),
        )
        .await;
    res.invalid_field("email");
}

// ------------------------------------------------------------------------------------------------
// Refresh and logout
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn refresh_rotates_the_token() {
    let app = TestApp::spawn().await;
    let reg = register(&app, "reader@example.com", PASSWORD).await;
    reg.expect(201);
    let first = s(&reg.body["refresh_token"]);

    let res = refresh(&app, &first).await;
    res.expect(200);
    let (access, second) = assert_token_pair(&res);
    assert_ne!(second, first);
    assert_eq!(res.body["user"], reg.body["user"]);
    app.get("/api/v1/auth/me", Some(&access)).await.expect(200);

    let old = token_row(&app, &first);
    let new = token_row(&app, &second);
    assert!(old.rotated_at.is_some() && old.revoked_at.is_none());
    assert!(new.rotated_at.is_none() && new.revoked_at.is_none());
    assert_eq!(old.family, new.family);
    assert_eq!(app.count("refresh_tokens"), 2);

    // The chain goes on.
    let res = refresh(&app, &second).await;
    res.expect(200);
    assert_eq!(app.count("refresh_tokens"), 3);
}

#[tokio::test]
async fn reusing_a_rotated_token_revokes_the_whole_family() {
    let app = TestApp::spawn().await;
    let reg = register(&app, "reader@example.com", PASSWORD).await;
    let first = s(&reg.body["refresh_token"]);
    // A second, independent session of the same user.
    let other = login(&app, "reader@example.com", PASSWORD).await;
    let other = s(&other.body["refresh_token"]);

    let second = s(&refresh(&app, &first).await.expect(200).body["refresh_token"]);
    // The old token again: someone kept a copy.
    let res = refresh(&app, &first).await;
    let body = res.problem(401);
    assert_eq!(body["detail"], INVALID_REFRESH);
    assert_eq!(res.header("www-authenticate"), Some("Bearer"));
    // The newer token of that family stops working too…
    refresh(&app, &second).await.problem(401);
    let family = token_row(&app, &first).family;
    for row in token_rows(&app).iter().filter(|r| r.family == family) {
        assert!(row.revoked_at.is_some(), "{row:?}");
    }
    // …but the other session is untouched.
    assert!(token_row(&app, &other).revoked_at.is_none());
    refresh(&app, &other).await.expect(200);
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_let_exactly_one_through() {
    let app = TestApp::spawn().await;
    let reg = register(&app, "reader@example.com", PASSWORD).await;
    let token = s(&reg.body["refresh_token"]);

    // Several clients race with one token; the server runs two workers and a pool of four.
    let results = futures_util::future::join_all((0..6).map(|_| refresh(&app, &token))).await;
    let winners: Vec<&Res> = results.iter().filter(|r| r.status == 200).collect();
    assert_eq!(
        winners.len(),
        1,
        "{:?}",
        results.iter().map(|r| &r.text).collect::<Vec<_>>()
    );
    for loser in results.iter().filter(|r| r.status != 200) {
        assert_eq!(loser.problem(401)["detail"], INVALID_REFRESH);
    }
    // The losers presented an already rotated token, which is treated as re-use: the family is
    // revoked, the winner's new token included, on both backends alike.
    let new = s(&winners[0].body["refresh_token"]);
    assert_eq!(app.count("refresh_tokens"), 2);
    for row in token_rows(&app) {
        assert!(row.revoked_at.is_some(), "{row:?}");
    }
    refresh(&app, &new).await.problem(401);
}

#[tokio::test]
async fn unknown_expired_and_deactivated_refresh_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let admin = app.admin();
    refresh(&app, &"0".repeat(64)).await.problem(401);
    app.post("/api/v1/auth/refresh", None, json!({}))
        .await
        .invalid_field("refresh_token");

    let reg = register(&app, "reader@example.com", PASSWORD).await;
    let id = reg.body["user"]["id"].as_i64().unwrap();
    let token = s(&reg.body["refresh_token"]);
    {
        let mut c = conn(&app);
        diesel::update(refresh_tokens::table)
            .set(refresh_tokens::expires_at.eq(bookstore::db::now() - chrono::Duration::seconds(1)))
            .execute(&mut *c as &mut DbConn)
            .unwrap();
    }
    let res = refresh(&app, &token).await;
    assert_eq!(res.problem(401)["detail"], INVALID_REFRESH);
    // An expired token is not rotated.
    assert!(token_row(&app, &token).rotated_at.is_none());

    let fresh = s(&login(&app, "reader@example.com", PASSWORD)
        .await
        .expect(200)
        .body["refresh_token"]);
    app.patch(
        &format!("/api/v1/users/{id}"),
        Some(&admin),
        json!({"active": false}),
    )
    .await
    .expect(200);
    refresh(&app, &fresh).await.problem(401);
}

#[tokio::test]
async fn logout_revokes_the_session() {
    let app = TestApp::spawn().await;
    let reg = register(&app, "reader@example.com", PASSWORD).await;
    let access = s(&reg.body["access_token"]);
    let first = s(&reg.body["refresh_token"]);
    let second = s(&refresh(&app, &first).await.expect(200).body["refresh_token"]);
    let other = s(&login(&app, "reader@example.com", PASSWORD).await.body["refresh_token"]);

    // Needs the access token.
    let res = app
        .post(
            "/api/v1/auth/logout",
            None,
            json!({"refresh_token": second}),
        )
        .await;
    res.problem(401);
    assert_eq!(res.header("www-authenticate"), Some("Bearer"));

    let res = app
        .post(
            "/api/v1/auth/logout",
            Some(&access),
            json!({"refresh_token": second}),
        )
        .await;
    res.expect(204);
    assert!(res.text.is_empty());
    let family = token_row(&app, &first).family;
    for row in token_rows(&app).iter().filter(|r| r.family == family) {
        assert!(row.revoked_at.is_some(), "{row:?}");
    }
    refresh(&app, &second).await.problem(401);
    // The other session lives on.
    assert!(token_row(&app, &other).revoked_at.is_none());

    // Someone else's token, or an unknown one: 204 all the same, and nothing revoked.
    let stranger = app.customer();
    app.post(
        "/api/v1/auth/logout",
        Some(&stranger),
        json!({"refresh_token": other}),
    )
    .await
    .expect(204);
    app.post(
        "/api/v1/auth/logout",
        Some(&stranger),
        json!({"refresh_token": "nope"}),
    )
    .await
    .expect(204);
    assert!(token_row(&app, &other).revoked_at.is_none());
    refresh(&app, &other).await.expect(200);
}

// ------------------------------------------------------------------------------------------------
// me
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn me_shows_the_caller() {
    let app = TestApp::spawn().await;
    let (id, staff) = app.user(Role::Staff);
    let res = app.get("/api/v1/auth/me", Some(&staff)).await;
    res.expect(200);
    let email = s(&res.body["email"]);
    assert!(email.starts_with("staff-"));
    assert_eq!(
        user_without_timestamps(&res.body),
        json!({"id": id, "email": email, "role": "staff", "active": true, "customer_id": null,
               "created_at": null, "updated_at": null, "customer": null})
    );

    let (id, customer) = app.user(Role::Customer);
    let res = app.get("/api/v1/auth/me", Some(&customer)).await;
    res.expect(200);
    let customer_id = res.body["customer_id"].as_i64().unwrap();
    let email = s(&res.body["email"]);
    assert_eq!(
        user_without_timestamps(&res.body),
        json!({"id": id, "email": email, "role": "customer", "active": true,
               "customer_id": customer_id, "created_at": null, "updated_at": null,
               "customer": {"id": customer_id, "name": "Test User", "email": email,
                            "phone": null}})
    );

    let res = app.get("/api/v1/auth/me", None).await;
    res.problem(401);
    assert_eq!(res.header("www-authenticate"), Some("Bearer"));
}

// ------------------------------------------------------------------------------------------------
// /users
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn users_are_for_admins_only() {
    let app = TestApp::spawn().await;
    let staff = app.staff();
    let customer = app.customer();
    let body = json!({"email": "x@example.com", "password": PASSWORD, "role": "staff"});
    for token in [None, Some(staff.as_str()), Some(customer.as_str())] {
        let status = if token.is_none() { 401 } else { 403 };
        let responses = [
            app.get("/api/v1/users", token).await,
            app.post("/api/v1/users", token, body.clone()).await,
            app.get("/api/v1/users/1", token).await,
            app.patch("/api/v1/users/1", token, json!({"active": false}))
                .await,
        ];
        for res in &responses {
            let problem = res.problem(status);
            if status == 401 {
                assert_eq!(res.header("www-authenticate"), Some("Bearer"));
            } else {
                assert_eq!(
                    *problem,
                    json!({"type": "https://bookstore.example/problems/forbidden",
                           "title": "Forbidden", "status": 403,
                           "detail": "this action needs the admin role"})
                );
            }
        }
    }
    assert_eq!(app.count("users"), 2);
}

#[tokio::test]
async fn admins_create_staff_accounts() {
    let app = TestApp::spawn().await;
    let admin = app.admin();
    let res = app
        .post(
            "/api/v1/users",
            Some(&admin),
            json!({"email": "Clerk@Example.com", "password": PASSWORD, "role": "staff"}),
        )
        .await;
    res.expect(201);
    let id = res.body["id"].as_i64().unwrap();
    assert_eq!(
        res.header("location"),
        Some(format!("/api/v1/users/{id}").as_str())
    );
    assert_eq!(
        user_without_timestamps(&res.body),
        json!({"id": id, "email": "clerk@example.com", "role": "staff", "active": true,
               "customer_id": null, "created_at": null, "updated_at": null, "customer": null})
    );
    // No customer record for staff; no session until they log in.
    assert_eq!(app.count("customers"), 0);
    assert_eq!(app.count("refresh_tokens"), 0);
    let login = login(&app, "clerk@example.com", PASSWORD).await;
    login.expect(200);
    assert_eq!(login.body["user"], res.body);

    // A customer account made by an admin gets its customer record.
    let res = app
        .post(
            "/api/v1/users",
            Some(&admin),
            json!({"email": "walkin@example.com", "password": PASSWORD, "role": "customer",
                   "name": "Walk-in Reader"}),
        )
        .await;
    res.expect(201);
    assert_eq!(res.body["customer"]["name"], "Walk-in Reader");
    assert_eq!(app.count("customers"), 1);

    app.post(
        "/api/v1/users",
        Some(&admin),
        json!({"email": "CLERK@example.com", "password": PASSWORD, "role": "admin"}),
    )
    .await
    .problem(409);
    app.post(
        "/api/v1/users",
        Some(&admin),
        json!({"email": "new@example.com", "password": "short", "role": "staff"}),
    )
    .await
    .invalid_field("password");
    app.post(
        "/api/v1/users",
        Some(&admin),
        json!({"email": "new@example.com", "password": PASSWORD, "role": "owner"}),
    )
    .await
    .invalid_field("role");
    app.post(
        "/api/v1/users",
        Some(&admin),
        json!({"email": "new@example.com", "password": PASSWORD}),
    )
    .await
    .invalid_field("role");
    assert_eq!(app.count("users"), 3);
}

/// Creates a user through the API; returns its id.
async fn create(app: &TestApp, admin: &str, email: &str, role: &str) -> i64 {
    let res = app
        .post(
            "/api/v1/users",
            Some(admin),
            json!({"email": email, "password": PASSWORD, "role": role, "name": "N"}),
        )
        .await;
    res.expect(201);
    res.body["id"].as_i64().unwrap()
}

fn ids(res: &Res) -> Vec<i64> {
    res.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn admins_list_and_filter_users() {
    let app = TestApp::spawn().await;
    let (admin_id, admin) = app.user(Role::Admin);
    let a = create(&app, &admin, "alice_shop@books.example", "staff").await;
    let b = create(&app, &admin, "bob@books.example", "staff").await;
    let c = create(&app, &admin, "carol@readers.example", "customer").await;
    let d = create(&app, &admin, "alicexshop@readers.example", "admin").await;
    app.patch(
        &format!("/api/v1/users/{b}"),
        Some(&admin),
        json!({"active": false}),
    )
    .await
    .expect(200);

    let res = app.get("/api/v1/users", Some(&admin)).await;
    res.expect(200);
    assert_eq!(ids(&res), vec![admin_id, a, b, c, d]);
    assert_eq!(res.body["page"], 1);
    assert_eq!(res.body["per_page"], 20);
    assert_eq!(res.body["total"], 5);
    assert_eq!(res.body.as_object().unwrap().len(), 4);
    let carol = &res.body["items"][3];
    assert_eq!(carol["customer"]["name"], "N");
    assert_eq!(carol["customer"]["email"], "carol@readers.example");

    let page = |q: &str| format!("/api/v1/users?{q}");
    let res = app.get(&page("page=2&per_page=2"), Some(&admin)).await;
    res.expect(200);
    assert_eq!(ids(&res), vec![b, c]);
    assert_eq!(
        (&res.body["page"], &res.body["per_page"], &res.body["total"]),
        (&json!(2), &json!(2), &json!(5))
    );
    let res = app.get(&page("page=4&per_page=2"), Some(&admin)).await;
    assert_eq!(ids(&res), Vec::<i64>::new());
    assert_eq!(res.body["total"], 5);

    let res = app.get(&page("role=staff"), Some(&admin)).await;
    assert_eq!((ids(&res), &res.body["total"]), (vec![a, b], &json!(2)));
    let res = app.get(&page("role=admin&active=true"), Some(&admin)).await;
    assert_eq!(ids(&res), vec![admin_id, d]);
    let res = app.get(&page("active=false"), Some(&admin)).await;
    assert_eq!(ids(&res), vec![b]);
    // Case-insensitive on both backends.
    let res = app.get(&page("q=READERS.Example"), Some(&admin)).await;
    assert_eq!((ids(&res), &res.body["total"]), (vec![c, d], &json!(2)));
    // `_` is a literal, not a LIKE wildcard.
    let res = app.get(&page("q=alice_shop"), Some(&admin)).await;
    assert_eq!(ids(&res), vec![a]);
    let res = app.get(&page("q=%25"), Some(&admin)).await;
    assert_eq!(ids(&res), Vec::<i64>::new());
    let res = app.get(&page("sort=-id&per_page=2"), Some(&admin)).await;
    assert_eq!(ids(&res), vec![d, c]);
    // "admin-…" < "alice_shop" < "alicexshop" < "bob" < "carol".
    let res = app.get(&page("sort=email"), Some(&admin)).await;
    assert_eq!(ids(&res), vec![admin_id, a, d, b, c]);

    app.get(&page("per_page=101"), Some(&admin))
        .await
        .invalid_field("per_page");
    app.get(&page("page=0"), Some(&admin))
        .await
        .invalid_field("page");
    app.get(&page("role=owner"), Some(&admin))
        .await
        .invalid_field("role");
    app.get(&page("active=maybe"), Some(&admin))
        .await
        .invalid_field("active");
    app.get(&page("sort=password_hash"), Some(&admin))
        .await
        .invalid_field("sort");
}

#[tokio::test]
async fn admins_get_one_user() {
    let app = TestApp::spawn().await;
    let admin = app.admin();
    let id = create(&app, &admin, "clerk@example.com", "staff").await;
    let res = app.get(&format!("/api/v1/users/{id}"), Some(&admin)).await;
    res.expect(200);
    assert_eq!(res.body["email"], "clerk@example.com");
    assert!(res.body.get("password_hash").is_none());
    assert!(!res.text.contains("argon2"));
    let res = app.get("/api/v1/users/999999", Some(&admin)).await;
    assert_eq!(res.problem(404)["detail"], "no user with id 999999");
    app.get("/api/v1/users/abc", Some(&admin))
        .await
        .problem(404);
}

#[tokio::test]
async fn admins_change_roles_and_deactivate() {
    let app = TestApp::spawn().await;
    let admin = app.admin();
    let (staff_id, staff) = app.user(Role::Staff);
    let staff_email = email_of(&app, &staff).await;
    let before = app
        .get(&format!("/api/v1/users/{staff_id}"), Some(&admin))
        .await;

    // Promotion takes effect on the next request of the same access token.
    app.get("/api/v1/users", Some(&staff)).await.problem(403);
    let res = app
        .patch(
            &format!("/api/v1/users/{staff_id}"),
            Some(&admin),
            json!({"role": "admin"}),
        )
        .await;
    res.expect(200);
    assert_eq!(res.body["role"], "admin");
    assert_eq!(res.body["active"], true);
    assert_eq!(res.body["created_at"], before.body["created_at"]);
    app.get("/api/v1/users", Some(&staff)).await.expect(200);
    app.patch(
        &format!("/api/v1/users/{staff_id}"),
        Some(&admin),
        json!({"role": "staff"}),
    )
    .await
    .expect(200);

    // Deactivation: refresh tokens revoked, the access token refused at once, login refused.
    let session = login(&app, &staff_email, PASSWORD).await;
    let session_refresh = s(&session.body["refresh_token"]);
    let res = app
        .patch(
            &format!("/api/v1/users/{staff_id}"),
            Some(&admin),
            json!({"active": false}),
        )
        .await;
    res.expect(200);
    assert_eq!(res.body["active"], false);
    assert_eq!(res.body["role"], "staff");
    for row in token_rows(&app).iter().filter(|r| r.user_id == staff_id) {
        assert!(row.revoked_at.is_some(), "{row:?}");
    }
    let res = app.get("/api/v1/auth/me", Some(&staff)).await;
    res.problem(401);
    assert_eq!(res.header("www-authenticate"), Some("Bearer"));
    refresh(&app, &session_refresh).await.problem(401);
    login(&app, &staff_email, PASSWORD).await.problem(401);

    // Reactivation lets them log in again (old sessions stay revoked).
    app.patch(
        &format!("/api/v1/users/{staff_id}"),
        Some(&admin),
        json!({"active": true}),
    )
    .await
    .expect(200);
    app.get("/api/v1/auth/me", Some(&staff)).await.expect(200);
    refresh(&app, &session_refresh).await.problem(401);
    login(&app, &staff_email, PASSWORD).await.expect(200);

    // Customer accounts stay customer accounts, and staff cannot become customers.
    let (customer_id, _) = app.user(Role::Customer);
    let res = app
        .patch(
            &format!("/api/v1/users/{customer_id}"),
            Some(&admin),
            json!({"role": "staff"}),
        )
        .await;
    assert_eq!(
        res.problem(409)["detail"],
        "cannot change a customer account into a staff account: roles change between staff and \
         admin only; create a separate account instead"
    );
    app.patch(
        &format!("/api/v1/users/{staff_id}"),
        Some(&admin),
        json!({"role": "customer"}),
    )
    .await
    .problem(409);

    // Nothing to change, bad values, unknown users.
    app.patch(
        &format!("/api/v1/users/{staff_id}"),
        Some(&admin),
        json!({}),
    )
    .await
    .invalid_field("body");
    app.patch(
        &format!("/api/v1/users/{staff_id}"),
        Some(&admin),
        json!({"active": "no"}),
    )
    .await
    .invalid_field("active");
    app.patch(
        "/api/v1/users/999999",
        Some(&admin),
        json!({"active": false}),
    )
    .await
    .problem(404);
}

#[tokio::test]
async fn admins_cannot_demote_or_deactivate_themselves() {
    let app = TestApp::spawn().await;
    let (id, admin) = app.user(Role::Admin);
    let path = format!("/api/v1/users/{id}");
    let res = app
        .patch(&path, Some(&admin), json!({"role": "staff"}))
        .await;
    assert_eq!(
        res.problem(409)["detail"],
        "you cannot remove your own admin role; ask another admin to do it"
    );
    let res = app
        .patch(&path, Some(&admin), json!({"active": false}))
        .await;
    assert_eq!(
        res.problem(409)["detail"],
        "you cannot deactivate your own account; ask another admin to do it"
    );
    // Nothing changed.
    let me = app.get("/api/v1/auth/me", Some(&admin)).await;
    me.expect(200);
    assert_eq!(
        (&me.body["role"], &me.body["active"]),
        (&json!("admin"), &json!(true))
    );
    // A no-op on oneself is fine.
    app.patch(
        &path,
        Some(&admin),
        json!({"role": "admin", "active": true}),
    )
    .await
    .expect(200);
    // Another admin can do it.
    let other = app.admin();
    app.patch(&path, Some(&other), json!({"role": "staff"}))
        .await
        .expect(200);
}

// ------------------------------------------------------------------------------------------------
// Bad tokens and methods
// ------------------------------------------------------------------------------------------------

fn sign(claims: &Claims, secret: &[u8]) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

#[tokio::test]
async fn bad_access_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let (id, _) = app.user(Role::Admin);
    let secret = bookstore::Settings::for_database("x").jwt_secret;
    let now = chrono::Utc::now().timestamp();
    let good = Claims {
        sub: id.to_string(),
        role: Role::Admin,
        iss: "bookstore".into(),
        aud: "bookstore-api".into(),
        iat: now,
        exp: now + 300,
    };
    // The reference: a well-made token is accepted.
    app.get("/api/v1/users", Some(&sign(&good, &secret)))
        .await
        .expect(200);

    let cases = [
        (
            sign(&good, b"another-secret-another-secret-another"),
            "the access token signature is invalid",
        ),
        (
            sign(
                &Claims {
                    aud: "someone-else".into(),
                    ..good.clone()
                },
                &secret,
            ),
            "the access token is for another audience",
        ),
        (
            sign(
                &Claims {
                    iss: "evil".into(),
                    ..good.clone()
                },
                &secret,
            ),
            "the access token has another issuer",
        ),
        (
            sign(
                &Claims {
                    iat: now - 3600,
                    exp: now - 600,
                    ..good.clone()
                },
                &secret,
            ),
            "the access token has expired",
        ),
        (
            encode(
                &Header::new(Algorithm::HS512),
                &good,
                &EncodingKey::from_secret(&secret),
            )
            .unwrap(),
            "the access token uses a refused algorithm",
        ),
        ("not-a-jwt".to_owned(), "the access token is malformed"),
        (
            sign(
                &Claims {
                    sub: "999999".into(),
                    ..good.clone()
                },
                &secret,
            ),
            "the account no longer exists",
        ),
    ];
    for (token, detail) in &cases {
        let res = app.get("/api/v1/auth/me", Some(token)).await;
        let body = res.problem(401);
        assert_eq!(res.header("www-authenticate"), Some("Bearer"), "{detail}");
        assert_eq!(body["detail"], *detail);
    }

    // Not the Bearer scheme, or no header at all.
    let res = TestApp::read(
        app.client
            .get(app.url("/api/v1/auth/me"))
            .header("authorization", "Basic YTpi"),
    )
    .await;
    res.problem(401);
    assert_eq!(res.header("www-authenticate"), Some("Bearer"));
    let res = app.get("/api/v1/auth/me", None).await;
    res.problem(401);
    assert_eq!(res.header("www-authenticate"), Some("Bearer"));
}

#[tokio::test]
async fn wrong_methods_answer_405_problem_json() {
    let app = TestApp::spawn().await;
    let admin = app.admin();
    let res = app.get("/api/v1/auth/login", None).await;
    let body = res.problem(405);
    assert_eq!(body["detail"], "GET is not allowed on /api/v1/auth/login");
    app.delete("/api/v1/users/1", Some(&admin))
        .await
        .problem(405);
    app.get("/api/v1/auth/logout", None).await.problem(405);
    app.post("/api/v1/auth/me", None, json!({}))
        .await
        .problem(405);
}

#[tokio::test]
async fn deactivation_applies_at_once_here_and_within_a_second_on_another_replica() {
    let app = TestApp::spawn().await;
    let other = app.sibling_with(|_| {}).await;
    let admin = app.admin();
    let (staff_id, staff) = app.user(Role::Staff);
    // Both replicas have just read the account (and may remember it for up to a second).
    app.get("/api/v1/auth/me", Some(&staff)).await.expect(200);
    other.get("/api/v1/auth/me", Some(&staff)).await.expect(200);

    let started = std::time::Instant::now();
    app.patch(
        &format!("/api/v1/users/{staff_id}"),
        Some(&admin),
        json!({"active": false}),
    )
    .await
    .expect(200);
    // The replica that made the change forgot the account: refused at once.
    app.get("/api/v1/auth/me", Some(&staff)).await.problem(401);
    // The other one stops serving the token within a second of the change.
    let deadline = Deadline::new(std::time::Duration::from_secs(5));
    while other
        .get("/api/v1/auth/me", Some(&staff))
        .await
        .status
        .as_u16()
        != 401
    {
        deadline.tick("the other replica to refuse the token").await;
    }
    let took = started.elapsed();
    assert!(
        took < bookstore::auth::accounts::FRESH_FOR + std::time::Duration::from_millis(500),
        "the other replica refused only after {took:?}"
    );
}
