//! Types of the accounts area: the rows read from `users`, `customers` and `refresh_tokens`, and
//! the request and response bodies of `/auth` and `/users`. Rows and views are kept apart so that
//! a password hash or a token hash can never end up in a response by accident.

use crate::auth::Role;
use crate::db::schema::{customers, refresh_tokens, users};
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::{Validate, ValidateEmail, ValidationError};

/// Longest email address a mail system delivers to (RFC 5321 path limit).
pub const MAX_EMAIL_LEN: usize = 254;

// ---------------------------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------------------------

/// A `users` row. Carries the password hash, so it never leaves the service layer as is.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: i64,
    pub email: String,
    pub password_hash: String,
    pub role: String,
    pub active: bool,
    pub customer_id: Option<i64>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// The columns of a `customers` row an account view shows.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = customers)]
pub struct CustomerRow {
    pub id: i64,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// A `refresh_tokens` row. Only the SHA-256 of the token is stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = refresh_tokens)]
pub struct RefreshTokenRow {
    pub id: i64,
    pub user_id: i64,
    pub family: String,
    pub token_hash: String,
    pub expires_at: NaiveDateTime,
    pub rotated_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
}

// ---------------------------------------------------------------------------------------------
// Views
// ---------------------------------------------------------------------------------------------

/// The customer record linked to a customer account.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
#[schema(example = json!({"id": 7, "name": "Ada Lovelace", "email": "ada@example.com", "phone": "+44 20 7946 0000"}))]
pub struct CustomerView {
    pub id: i64,
    pub name: String,
    #[schema(required = true)]
    pub email: Option<String>,
    #[schema(required = true)]
    pub phone: Option<String>,
}

impl From<CustomerRow> for CustomerView {
    fn from(row: CustomerRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            email: row.email,
            phone: row.phone,
        }
    }
}

/// An account as clients see it: never the password hash.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
#[schema(example = json!({
    "id": 12,
    "email": "ada@example.com",
    "role": "customer",
    "active": true,
    "customer_id": 7,
    "created_at": "2026-11-25T09:30:00Z",
    "updated_at": "2026-11-25T09:30:00Z",
    "customer": {"id": 7, "name": "Ada Lovelace", "email": "ada@example.com", "phone": null}
}))]
pub struct UserView {
    pub id: i64,
    /// Stored lower-cased; logins match it case-insensitively.
    pub email: String,
    pub role: Role,
    /// A deactivated account cannot log in, and its access tokens stop working at once.
    pub active: bool,
    /// The customer record of a customer account; `null` for staff and admins.
    #[schema(required = true)]
    pub customer_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The linked customer record (name, phone…) of a customer account; `null` otherwise.
    #[schema(required = true)]
    pub customer: Option<CustomerView>,
}

impl UserView {
    /// Builds the view of a row; an unknown role in the database is an internal error, not a
    /// client one, so it is reported as `Err` with the offending value.
    pub fn from_rows(user: UserRow, customer: Option<CustomerRow>) -> Result<Self, String> {
        let role = Role::parse(&user.role).ok_or_else(|| format!("unknown role {}", user.role))?;
        Ok(Self {
            id: user.id,
            email: user.email,
            role,
            active: user.active,
            customer_id: user.customer_id,
            created_at: utc(user.created_at),
            updated_at: utc(user.updated_at),
            customer: customer.map(CustomerView::from),
        })
    }
}

/// Timestamps are stored as naive UTC; this tags them so they serialize as RFC 3339 with `Z`.
pub fn utc(naive: NaiveDateTime) -> DateTime<Utc> {
    Utc.from_utc_datetime(&naive)
}

/// What login, refresh and sign-up answer: a short-lived access token for the `Authorization`
/// header and a single-use refresh token to get the next one.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMiJ9.c2lnbmF0dXJl",
    "token_type": "Bearer",
    "expires_in": 900,
    "refresh_token": "3f1c0e6a9b7d4e21a8c5f0b2d6e4a9c13f1c0e6a9b7d4e21a8c5f0b2d6e4a9c1",
    "user": {
        "id": 12,
        "email": "ada@example.com",
        "role": "customer",
        "active": true,
        "customer_id": 7,
        "created_at": "2026-11-25T09:30:00Z",
        "updated_at": "2026-11-25T09:30:00Z",
        "customer": {"id": 7, "name": "Ada Lovelace", "email": "ada@example.com", "phone": null}
    }
}))]
pub struct TokenResponse {
    /// A JWT to send as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Opaque and single-use: present it once to `POST /api/v1/auth/refresh`. Presenting it a
    /// second time is treated as theft and ends the session.
    pub refresh_token: String,
    pub user: UserView,
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/// Rejects text that is empty once trimmed (a name of spaces is no name).
fn not_blank(value: &str) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        let mut err = ValidationError::new("blank");
        err.message = Some("must not be blank".into());
        return Err(err);
    }
    Ok(())
}

/// An email address, ignoring the surrounding spaces that keyboards and copy-paste add (the
/// address is stored trimmed and lower-cased).
fn email_address(value: &str) -> Result<(), ValidationError> {
    let value = value.trim();
    let message = if value.len() > MAX_EMAIL_LEN {
        "must be at most 254 characters long"
    } else if !value.validate_email() {
        "must be a valid email address"
    } else {
        return Ok(());
    };
    let mut err = ValidationError::new("email");
    err.message = Some(message.into());
    Err(err)
}

/// A phone number as people write them: digits with `+`, spaces, dots, dashes and parentheses,
/// and at least a few digits. Stored as given; the shop does not dial it.
fn phone_number(value: &str) -> Result<(), ValidationError> {
    let digits = value.chars().filter(char::is_ascii_digit).count();
    let allowed = value
        .chars()
        .all(|c| c.is_ascii_digit() || " +-.()".contains(c));
    if !allowed || !(5..=20).contains(&digits) {
        let mut err = ValidationError::new("phone");
        err.message = Some(
            "must be a phone number: 5 to 20 digits, optionally with + ( ) - . and spaces".into(),
        );
        return Err(err);
    }
    Ok(())
}

/// Public sign-up of a customer account.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "email": "ada@example.com",
    "password": "plum-orchard-41-lantern",
    "name": "Ada Lovelace",
    "phone": "+44 20 7946 0000"
}))]
pub struct RegisterRequest {
    /// Login email; matched case-insensitively.
    #[validate(custom(function = "email_address"))]
    #[schema(format = Email, max_length = 254, example = "ada@example.com")]
    pub email: String,
    /// At least 10 characters, not the email address, not a commonly used password.
    #[schema(min_length = 10, max_length = 256)]
    pub password: String,
    /// The customer's name, as shown on orders.
    #[validate(
        length(min = 1, max = 200, message = "length must be between 1 and 200"),
        custom(function = "not_blank")
    )]
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// 5 to 20 digits, optionally with `+ ( ) - .` and spaces.
    #[validate(custom(function = "phone_number"))]
    #[schema(example = "+44 20 7946 0000")]
    pub phone: Option<String>,
}

/// Credentials for a login.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ada@example.com", "password": "plum-orchard-41-lantern"}))]
pub struct LoginRequest {
    #[validate(length(min = 1, max = 254, message = "length must be between 1 and 254"))]
    #[schema(min_length = 1, max_length = 254)]
    pub email: String,
    /// Bounded so that a huge body cannot make the server hash megabytes.
    #[validate(length(min = 1, max = 1024, message = "length must be between 1 and 1024"))]
    #[schema(min_length = 1, max_length = 1024)]
    pub password: String,
}

/// A refresh token, to rotate (`/auth/refresh`) or to revoke (`/auth/logout`).
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"refresh_token": "3f1c0e6a9b7d4e21a8c5f0b2d6e4a9c13f1c0e6a9b7d4e21a8c5f0b2d6e4a9c1"}))]
pub struct RefreshRequest {
    #[validate(length(min = 1, max = 512, message = "length must be between 1 and 512"))]
    #[schema(min_length = 1, max_length = 512)]
    pub refresh_token: String,
}

/// An account created by an admin (typically staff or another admin).
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "email": "clerk@example.com",
    "password": "plum-orchard-41-lantern",
    "role": "staff"
}))]
pub struct CreateUserRequest {
    #[validate(custom(function = "email_address"))]
    #[schema(format = Email, max_length = 254, example = "ada@example.com")]
    pub email: String,
    /// At least 10 characters, not the email address, not a commonly used password.
    #[schema(min_length = 10, max_length = 256)]
    pub password: String,
    pub role: Role,
    /// Name of the customer record; used for `customer` accounts only (defaults to the email).
    #[validate(
        length(min = 1, max = 200, message = "length must be between 1 and 200"),
        custom(function = "not_blank")
    )]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    /// Phone of the customer record; used for `customer` accounts only.
    /// 5 to 20 digits, optionally with `+ ( ) - .` and spaces.
    #[validate(custom(function = "phone_number"))]
    #[schema(example = "+44 20 7946 0000")]
    pub phone: Option<String>,
}

/// A change to an account; send `role`, `active`, or both (`{}` is 422: the document says
/// `minProperties: 1`, set by `http::contract` because utoipa-gen 5.5 writes `min_properties`
/// as `maxProperties`).
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"role": "admin", "active": true}))]
pub struct UpdateUserRequest {
    /// Between `staff` and `admin`; a customer account stays a customer account.
    pub role: Option<Role>,
    /// `false` deactivates the account: its logins, access tokens and refresh tokens stop
    /// working at once.
    pub active: Option<bool>,
}

/// Orders of `GET /api/v1/users`; a leading `-` sorts descending. Ties break by id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
pub enum UserSort {
    #[default]
    #[serde(rename = "id")]
    Id,
    #[serde(rename = "-id")]
    IdDesc,
    #[serde(rename = "email")]
    Email,
    #[serde(rename = "-email")]
    EmailDesc,
    #[serde(rename = "created_at")]
    CreatedAt,
    #[serde(rename = "-created_at")]
    CreatedAtDesc,
}

/// Filters and page of `GET /api/v1/users`. The page fields are spelled out here rather than
/// flattened from `PageParams`, because serde's `flatten` breaks typed query parameters.
#[derive(Debug, Default, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserListQuery {
    /// 1-based page number.
    #[param(minimum = 1, default = 1)]
    pub page: Option<i64>,
    /// Items per page.
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub per_page: Option<i64>,
    /// Only users with this role.
    #[param(inline)]
    pub role: Option<Role>,
    /// Only active (`true`) or deactivated (`false`) users.
    pub active: Option<bool>,
    /// Only users whose email contains this text (case-insensitive).
    #[validate(length(max = 254, message = "must be at most 254 characters long"))]
    #[param(max_length = 254, example = "example.com")]
    pub q: Option<String>,
    /// Sort order: `id`, `email`, `created_at`, each optionally prefixed with `-`.
    #[param(inline)]
    pub sort: Option<UserSort>,
}

/// The columns `PATCH /users/{id}` may change; `None` leaves a column as it is.
#[derive(Debug, AsChangeset)]
#[diesel(table_name = users)]
pub struct UserChanges<'a> {
    pub role: Option<&'a str>,
    pub active: Option<bool>,
    pub updated_at: NaiveDateTime,
}
