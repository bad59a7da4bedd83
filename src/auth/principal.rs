//! Who is calling: the [`Principal`] that services are given, and the extractors that
//! authenticate it and enforce a route's role rule, so that each rule is visible in the handler's
//! signature.

use crate::app::AppState;
use crate::auth::accounts::Account;
use crate::auth::Role;
use crate::db;
use crate::db::schema::users;
use crate::error::ApiError;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use diesel::prelude::*;
use futures_util::future::LocalBoxFuture;

/// An authenticated, active user, as services see the caller. Role and active flag come from the
/// account (read at most [`crate::auth::accounts::FRESH_FOR`] ago), not from the token, so a
/// deactivation or role change takes effect then, not when the token expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    pub user_id: i64,
    pub role: Role,
    /// The customer record of a customer account.
    pub customer_id: Option<i64>,
}

impl Principal {
    pub fn is_staff(&self) -> bool {
        self.role.is_staff()
    }
}

/// A user with the `staff` or `admin` role.
#[derive(Debug, Clone, Copy)]
pub struct StaffUser(pub Principal);

/// A user with the `admin` role.
#[derive(Debug, Clone, Copy)]
pub struct AdminUser(pub Principal);

fn bearer_token(req: &HttpRequest) -> Result<String, ApiError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::Unauthorized("send an Authorization: Bearer <token> header".into())
        })?
        .to_str()
        .map_err(|_| ApiError::Unauthorized("the Authorization header is not valid text".into()))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim().to_owned())
        }
        _ => Err(ApiError::Unauthorized(
            "the Authorization header must use the Bearer scheme".into(),
        )),
    }
}

async fn authenticate(req: HttpRequest) -> Result<Principal, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::internal("application state missing"))?
        .clone();
    let token = bearer_token(&req)?;
    let claims = state
        .tokens
        .verify(&token)
        .map_err(|e| ApiError::Unauthorized(e.0))?;
    let user_id: i64 = claims
        .sub
        .parse()
        .map_err(|_| ApiError::Unauthorized("the access token is malformed".into()))?;
    let account = match state.accounts.get(user_id) {
        Some(account) => Some(account),
        None => {
            let read = db::run(&state.pool, move |conn| read_account(conn, user_id)).await?;
            if let Some(account) = read {
                state.accounts.put(user_id, account);
            }
            read
        }
    };
    match account {
        Some(Account {
            active: true,
            role,
            customer_id,
        }) => Ok(Principal {
            user_id,
            role,
            customer_id,
        }),
        Some(_) => Err(ApiError::Unauthorized("the account is deactivated".into())),
        None => Err(ApiError::Unauthorized(
            "the account no longer exists".into(),
        )),
    }
}

fn read_account(conn: &mut db::DbConn, user_id: i64) -> Result<Option<Account>, ApiError> {
    let row = users::table
        .find(user_id)
        .select((users::role, users::active, users::customer_id))
        .first::<(String, bool, Option<i64>)>(conn)
        .optional()?;
    row.map(|(role, active, customer_id)| {
        Ok(Account {
            role: Role::parse(&role)
                .ok_or_else(|| ApiError::internal(format!("user {user_id} has role {role:?}")))?,
            active,
            customer_id,
        })
    })
    .transpose()
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(authenticate(req.clone()))
    }
}

impl FromRequest for StaffUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let user = authenticate(req).await?;
            if user.role.is_staff() {
                Ok(StaffUser(user))
            } else {
                Err(ApiError::Forbidden(
                    "this action needs the staff or admin role".into(),
                ))
            }
        })
    }
}

impl FromRequest for AdminUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let user = authenticate(req).await?;
            if user.role == Role::Admin {
                Ok(AdminUser(user))
            } else {
                Err(ApiError::Forbidden(
                    "this action needs the admin role".into(),
                ))
            }
        })
    }
}
