//! HTTP routes of `/auth` (sign-up, login, token refresh, logout, the caller's account) and of
//! `/users` (user administration, admins only). Handlers parse, authorize through their extractor
//! and call [`crate::auth::service`]; the rules live there.

use crate::app::AppState;
use crate::auth::model::{
    CreateUserRequest, CustomerView, LoginRequest, RefreshRequest, RegisterRequest, TokenResponse,
    UpdateUserRequest, UserListQuery, UserSort, UserView,
};
use crate::auth::service::{self, NewAccount, Session};
use crate::auth::{AdminUser, Principal, Role};
use crate::db;
use crate::error::{ApiError, FieldError, Problem};
use crate::http::client_addr::client_addr;
use crate::http::{ApiJson, ApiQuery, Page};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use utoipa::OpenApi;

/// Registers the routes relative to `/api/v1`. Each path is a resource with explicit methods, so
/// a wrong method on a known path answers 405 rather than 404.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/auth/register").route(web::post().to(register)))
        .service(web::resource("/auth/login").route(web::post().to(login)))
        .service(web::resource("/auth/refresh").route(web::post().to(refresh)))
        .service(web::resource("/auth/logout").route(web::post().to(logout)))
        .service(web::resource("/auth/me").route(web::get().to(me)))
        .service(
            web::resource("/users")
                .route(web::get().to(list_users))
                .route(web::post().to(create_user)),
        )
        .service(
            web::resource("/users/{id}")
                .route(web::get().to(get_user))
                .route(web::patch().to(update_user)),
        );
}

/// Signs the access token of a session and builds the token response.
fn token_response(state: &AppState, session: Session) -> Result<TokenResponse, ApiError> {
    let access_token = state
        .tokens
        .issue(session.user.id, session.user.role)
        .map_err(ApiError::internal)?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: state.tokens.ttl_secs(),
        refresh_token: session.refresh_token,
        user: session.user,
    })
}

/// Token responses must not be stored by caches or proxies (RFC 6749 §5.1).
fn no_store(builder: &mut actix_web::HttpResponseBuilder) -> &mut actix_web::HttpResponseBuilder {
    builder.insert_header((header::CACHE_CONTROL, "no-store"))
}

/// Creates a customer account and logs it in.
///
/// Public. Answers 201 with the new account and a token pair, so that a client does not need a
/// second round trip to log in. A customer record (name, email, phone) is created with the
/// account.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth",
    request_body(content = RegisterRequest),
    responses(
        (status = 201, description = "Account created and logged in", body = TokenResponse,
         headers(("Location" = String, description = "`/api/v1/auth/me`"))),
        (status = 409, description = "An account with this email exists", body = Problem,
         content_type = "application/problem+json",
         example = json!({"type": "https://bookstore.example/problems/conflict", "title": "Conflict",
             "status": 409, "detail": "an account with email ada@example.com already exists"})),
        (status = 422, description = "Invalid email, name, phone, or a password that breaks the \
         policy", body = Problem, content_type = "application/problem+json",
         example = json!({"type": "https://bookstore.example/problems/validation",
             "title": "Invalid input", "status": 422,
             "detail": "password: must be at least 10 characters long",
             "errors": [{"field": "password", "message": "must be at least 10 characters long"}]})),
    ))]
pub async fn register(
    state: web::Data<AppState>,
    body: ApiJson<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let ttl = state.settings.refresh_token_ttl;
    let session = db::run(&state.pool, move |conn| {
        let account = NewAccount {
            email: &body.email,
            password: &body.password,
            role: Role::Customer,
            name: Some(&body.name),
            phone: body.phone.as_deref(),
        };
        service::register(conn, &account, ttl)
    })
    .await?;
    let response = token_response(&state, session)?;
    Ok(no_store(&mut HttpResponse::Created())
        .insert_header((header::LOCATION, "/api/v1/auth/me"))
        .json(response))
}

/// Logs in with email and password.
///
/// Unknown email, wrong password and deactivated account all answer the same 401. Failures are
/// counted per (email, client address), per client address and per email (a high ceiling only a
/// distributed attack meets); over any of these limits within the window, attempts are refused
/// with 429 and `Retry-After`, without checking the password. So an attacker guessing from one
/// address does not lock the owner, logging in from elsewhere, out. The client address is the
/// TCP peer, or behind a proxy listed in `BOOKSTORE_TRUSTED_PROXIES` the one it forwards.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth",
    request_body(content = LoginRequest),
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 401, description = "Wrong email or password, or a deactivated account",
         body = Problem, content_type = "application/problem+json",
         headers(("WWW-Authenticate" = String, description = "`Bearer`")),
         example = json!({"type": "https://bookstore.example/problems/unauthorized",
             "title": "Authentication required", "status": 401,
             "detail": "the email or password is incorrect"})),
        (status = 422, description = "Missing or oversized field", body = Problem,
         content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts", body = Problem,
         content_type = "application/problem+json",
         headers(("Retry-After" = u64, description = "Seconds to wait before trying again")),
         example = json!({"type": "https://bookstore.example/problems/rate-limited",
             "title": "Too many requests", "status": 429,
             "detail": "too many attempts; retry in 840 seconds"})),
    ))]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: ApiJson<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let email = service::normalize_email(&body.email);
    let addr = client_addr(&req, &state.settings.trusted_proxies);
    if let Some(retry_after_secs) = state.login_throttle.check(&email, addr) {
        return Err(ApiError::TooManyRequests { retry_after_secs });
    }
    let ttl = state.settings.refresh_token_ttl;
    let result = db::run(&state.pool, move |conn| {
        service::login(conn, &body.email, &body.password, ttl)
    })
    .await;
    match result {
        Ok(session) => {
            state.login_throttle.record_success(&email, addr);
            let response = token_response(&state, session)?;
            Ok(no_store(&mut HttpResponse::Ok()).json(response))
        }
        Err(err @ ApiError::Unauthorized(_)) => {
            state.login_throttle.record_failure(&email, addr);
            Err(err)
        }
        Err(err) => Err(err),
    }
}

/// Exchanges a refresh token for a new access token and a new refresh token.
///
/// Each refresh token works once. Presenting one that was already exchanged means a copy exists:
/// every token of that login is revoked and the user must log in again.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth",
    request_body(content = RefreshRequest),
    responses(
        (status = 200, description = "New token pair", body = TokenResponse),
        (status = 401, description = "Unknown, expired, revoked or re-used refresh token, or a \
         deactivated account", body = Problem, content_type = "application/problem+json",
         headers(("WWW-Authenticate" = String, description = "`Bearer`")),
         example = json!({"type": "https://bookstore.example/problems/unauthorized",
             "title": "Authentication required", "status": 401,
             "detail": "the refresh token is invalid, expired or revoked; log in again"})),
        (status = 422, description = "Missing refresh token", body = Problem,
         content_type = "application/problem+json"),
    ))]
pub async fn refresh(
    state: web::Data<AppState>,
    body: ApiJson<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let token = body.into_inner().refresh_token;
    let ttl = state.settings.refresh_token_ttl;
    let session = db::run(&state.pool, move |conn| service::refresh(conn, &token, ttl)).await?;
    let response = token_response(&state, session)?;
    Ok(no_store(&mut HttpResponse::Ok()).json(response))
}

/// Logs out: revokes the given refresh token and every token rotated from the same login.
///
/// Answers 204 whether or not the token was found, so that it never confirms whose a token is.
/// The access token stays valid until it expires (minutes); clients discard it.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    request_body(content = RefreshRequest),
    responses(
        (status = 204, description = "Logged out"),
        (status = 401, description = "Missing or invalid access token", body = Problem,
         content_type = "application/problem+json",
         headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 422, description = "Missing refresh token", body = Problem,
         content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn logout(
    state: web::Data<AppState>,
    user: Principal,
    body: ApiJson<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let token = body.into_inner().refresh_token;
    db::run(&state.pool, move |conn| {
        service::logout(conn, user.user_id, &token)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The caller's account, with its customer record for customer accounts.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth",
    responses(
        (status = 200, description = "The caller's account", body = UserView),
        (status = 401, description = "Missing or invalid access token, or a deactivated account",
         body = Problem, content_type = "application/problem+json",
         headers(("WWW-Authenticate" = String, description = "`Bearer`")),
         example = json!({"type": "https://bookstore.example/problems/unauthorized",
             "title": "Authentication required", "status": 401,
             "detail": "the access token has expired"})),
    ),
    security(("bearer" = [])))]
pub async fn me(state: web::Data<AppState>, user: Principal) -> Result<HttpResponse, ApiError> {
    let view = db::run(&state.pool, move |conn| {
        service::get_user(conn, user.user_id)
    })
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Creates an account of any role (typically staff or admin). Admins only.
#[utoipa::path(post, path = "/api/v1/users", tag = "users",
    request_body(content = CreateUserRequest),
    responses(
        (status = 201, description = "Account created", body = UserView,
         headers(("Location" = String, description = "`/api/v1/users/{id}`")),
         example = json!({"id": 3, "email": "clerk@example.com", "role": "staff", "active": true,
             "customer_id": null, "created_at": "2026-11-25T09:30:00Z",
             "updated_at": "2026-11-25T09:30:00Z", "customer": null})),
        (status = 401, description = "Missing or invalid access token", body = Problem,
         content_type = "application/problem+json",
         headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 403, description = "The caller is not an admin", body = Problem,
         content_type = "application/problem+json",
         example = json!({"type": "https://bookstore.example/problems/forbidden",
             "title": "Forbidden", "status": 403, "detail": "this action needs the admin role"})),
        (status = 409, description = "An account with this email exists", body = Problem,
         content_type = "application/problem+json"),
        (status = 422, description = "Invalid field, or a password that breaks the policy",
         body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn create_user(
    state: web::Data<AppState>,
    _admin: AdminUser,
    body: ApiJson<CreateUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let view = db::run(&state.pool, move |conn| {
        let account = NewAccount {
            email: &body.email,
            password: &body.password,
            role: body.role,
            name: body.name.as_deref(),
            phone: body.phone.as_deref(),
        };
        service::create_account(conn, &account)
    })
    .await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/users/{}", view.id)))
        .json(view))
}

/// Lists accounts, filtered by role, active flag and email text. Admins only.
#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    params(UserListQuery),
    responses(
        (status = 200, description = "One page of accounts", body = Page<UserView>,
         example = json!({"items": [{"id": 3, "email": "clerk@example.com", "role": "staff",
             "active": true, "customer_id": null, "created_at": "2026-11-25T09:30:00Z",
             "updated_at": "2026-11-25T09:30:00Z", "customer": null}],
             "page": 1, "per_page": 20, "total": 1})),
        (status = 401, description = "Missing or invalid access token", body = Problem,
         content_type = "application/problem+json",
         headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 403, description = "The caller is not an admin", body = Problem,
         content_type = "application/problem+json"),
        (status = 422, description = "Invalid query parameter", body = Problem,
         content_type = "application/problem+json",
         example = json!({"type": "https://bookstore.example/problems/validation",
             "title": "Invalid input", "status": 422,
             "detail": "per_page: must be between 1 and 100",
             "errors": [{"field": "per_page", "message": "must be between 1 and 100"}]})),
    ),
    security(("bearer" = [])))]
pub async fn list_users(
    state: web::Data<AppState>,
    _admin: AdminUser,
    query: ApiQuery<UserListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.0;
    let page = db::run(&state.pool, move |conn| service::list_users(conn, &query)).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// One account. Admins only.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = i64, Path, description = "User id")),
    responses(
        (status = 200, description = "The account", body = UserView),
        (status = 401, description = "Missing or invalid access token", body = Problem,
         content_type = "application/problem+json",
         headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 403, description = "The caller is not an admin", body = Problem,
         content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem,
         content_type = "application/problem+json",
         example = json!({"type": "https://bookstore.example/problems/not-found",
             "title": "Not found", "status": 404, "detail": "no user with id 42"})),
    ),
    security(("bearer" = [])))]
pub async fn get_user(
    state: web::Data<AppState>,
    _admin: AdminUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let view = db::run(&state.pool, move |conn| service::get_user(conn, id)).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Changes an account's role (between staff and admin) and/or active flag. Admins only.
///
/// Deactivating an account revokes all its refresh tokens, and its access tokens stop working on
/// the next request. An admin cannot demote or deactivate themself.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = i64, Path, description = "User id")),
    request_body(content = UpdateUserRequest),
    responses(
        (status = 200, description = "The updated account", body = UserView),
        (status = 401, description = "Missing or invalid access token", body = Problem,
         content_type = "application/problem+json",
         headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 403, description = "The caller is not an admin", body = Problem,
         content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem,
         content_type = "application/problem+json"),
        (status = 409, description = "Self-demotion, self-deactivation, or a role change across \
         the customer/staff boundary", body = Problem, content_type = "application/problem+json",
         example = json!({"type": "https://bookstore.example/problems/conflict",
             "title": "Conflict", "status": 409,
             "detail": "you cannot deactivate your own account; ask another admin to do it"})),
        (status = 422, description = "Invalid field, or neither `role` nor `active` sent",
         body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn update_user(
    state: web::Data<AppState>,
    admin: AdminUser,
    id: web::Path<i64>,
    body: ApiJson<UpdateUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let body = body.into_inner();
    let actor = admin.0.user_id;
    let view = db::run(&state.pool, move |conn| {
        service::update_user(conn, actor, id, body.role, body.active)
    })
    .await?;
    // The change applies to the user's very next request on this replica (others: within 1 s).
    state.accounts.forget(id);
    Ok(HttpResponse::Ok().json(view))
}

#[derive(OpenApi)]
#[openapi(
    paths(
        register,
        login,
        refresh,
        logout,
        me,
        create_user,
        list_users,
        get_user,
        update_user
    ),
    components(schemas(
        Role,
        UserView,
        CustomerView,
        TokenResponse,
        UserSort,
        RegisterRequest,
        LoginRequest,
        RefreshRequest,
        CreateUserRequest,
        UpdateUserRequest,
        Problem,
        FieldError
    ))
)]
pub struct AuthApi;
