//! Account rules: creating users, logging in, rotating and revoking refresh tokens, and user
//! administration. No HTTP types here; every write goes through [`write_transaction`].

use crate::auth::model::{
    CustomerRow, RefreshTokenRow, UserChanges, UserListQuery, UserRow, UserSort, UserView,
};
use crate::auth::password::{check_policy, dummy_hash, hash_password, verify_password};
use crate::auth::token::{hash_refresh_token, new_refresh_token};
use crate::auth::Role;
use crate::db::schema::{customers, refresh_tokens, users};
use crate::db::{now, write_transaction, DbConn};
use crate::error::ApiError;
use crate::http::{Page, PageParams};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use std::time::Duration;

/// The one answer to every failed login, whether the email is unknown, the password wrong or the
/// account deactivated, so that a login cannot be used to find out which accounts exist.
pub const INVALID_CREDENTIALS: &str = "the email or password is incorrect";

/// The one answer to every refused refresh token (unknown, expired, revoked, re-used, or its
/// account deactivated): the client's only remedy is the same in each case, to log in again.
pub const INVALID_REFRESH_TOKEN: &str =
    "the refresh token is invalid, expired or revoked; log in again";

/// Normalises an email for storage and lookup: trimmed and lower-cased.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A logged-in session: the account and the refresh token that continues it. The access token
/// is signed by the caller, which holds the keys.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: UserView,
    pub refresh_token: String,
}

/// Everything needed to create an account.
#[derive(Debug, Clone, Copy)]
pub struct NewAccount<'a> {
    pub email: &'a str,
    pub password: &'a str,
    pub role: Role,
    /// Name of the customer record (customer accounts only); defaults to the email.
    pub name: Option<&'a str>,
    /// Phone of the customer record (customer accounts only).
    pub phone: Option<&'a str>,
}

/// Creates a user after checking the password policy. A customer account gets its own customer
/// record. Answers 409 when the email is taken.
pub fn create_user(
    conn: &mut DbConn,
    email: &str,
    password: &str,
    role: Role,
    name: Option<&str>,
) -> Result<i64, ApiError> {
    let account = NewAccount {
        email,
        password,
        role,
        name,
        phone: None,
    };
    create_account(conn, &account).map(|user| user.id)
}

/// Creates an account and returns its view (see [`create_user`]).
pub fn create_account(conn: &mut DbConn, account: &NewAccount<'_>) -> Result<UserView, ApiError> {
    let (email, hash) = prepare_account(account)?;
    write_transaction(conn, |tx| {
        let id = insert_account(tx, account, &email, &hash)?;
        load_user(tx, id)
    })
}

/// Public sign-up: creates a customer account and opens a session for it, in one transaction so
/// that a failure leaves neither behind.
pub fn register(
    conn: &mut DbConn,
    account: &NewAccount<'_>,
    refresh_ttl: Duration,
) -> Result<Session, ApiError> {
    let (email, hash) = prepare_account(account)?;
    write_transaction(conn, |tx| {
        let id = insert_account(tx, account, &email, &hash)?;
        let refresh_token = insert_refresh_token(tx, id, &new_family(), refresh_ttl)?;
        Ok(Session {
            user: load_user(tx, id)?,
            refresh_token,
        })
    })
}

/// Checks the password policy and hashes the password, before any transaction is opened: the
/// hash is deliberately slow and must not hold SQLite's write lock.
fn prepare_account(account: &NewAccount<'_>) -> Result<(String, String), ApiError> {
    let email = normalize_email(account.email);
    check_policy(account.password, &email)?;
    let hash = hash_password(account.password)?;
    Ok((email, hash))
}

fn email_taken(email: &str) -> ApiError {
    ApiError::Conflict(format!("an account with email {email} already exists"))
}

/// Inserts the user (and, for a customer, its customer record). Runs inside the caller's
/// transaction.
fn insert_account(
    conn: &mut DbConn,
    account: &NewAccount<'_>,
    email: &str,
    hash: &str,
) -> Result<i64, ApiError> {
    let taken = users::table
        .filter(users::email.eq(email))
        .count()
        .get_result::<i64>(conn)?;
    if taken > 0 {
        return Err(email_taken(email));
    }
    let at = now();
    let customer_id = if account.role == Role::Customer {
        let name = account.name.map(str::trim).unwrap_or(email);
        let phone = account.phone.map(str::trim);
        let id = diesel::insert_into(customers::table)
            .values((
                customers::name.eq(name),
                customers::email.eq(Some(email)),
                customers::phone.eq(phone),
                customers::created_at.eq(at),
                customers::updated_at.eq(at),
            ))
            .returning(customers::id)
            .get_result::<i64>(conn)?;
        Some(id)
    } else {
        None
    };
    diesel::insert_into(users::table)
        .values((
            users::email.eq(email),
            users::password_hash.eq(hash),
            users::role.eq(account.role.as_str()),
            users::active.eq(true),
            users::customer_id.eq(customer_id),
            users::created_at.eq(at),
            users::updated_at.eq(at),
        ))
        .returning(users::id)
        .get_result::<i64>(conn)
        .map_err(|e| match e {
            // Two sign-ups with one email racing past the check above: the unique index decides,
            // and the loser gets the same answer as if it had come second.
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            ) => email_taken(email),
            other => other.into(),
        })
}

/// Checks credentials and opens a session.
///
/// Every failure is the same 401 ([`INVALID_CREDENTIALS`]); an unknown email is verified against
/// a dummy hash and a deactivated account's password is still verified, so neither the answer
/// nor its timing tells them apart from a wrong password.
pub fn login(
    conn: &mut DbConn,
    email: &str,
    password: &str,
    refresh_ttl: Duration,
) -> Result<Session, ApiError> {
    let email = normalize_email(email);
    let found = users::table
        .filter(users::email.eq(&email))
        .select((users::id, users::password_hash, users::active))
        .first::<(i64, String, bool)>(conn)
        .optional()?;
    let user_id = match found {
        Some((id, hash, active)) => {
            let matches = verify_password(password, &hash);
            (matches && active).then_some(id)
        }
        None => {
            let _ = verify_password(password, dummy_hash());
            None
        }
    };
    let user_id = user_id.ok_or_else(|| ApiError::Unauthorized(INVALID_CREDENTIALS.into()))?;
    write_transaction(conn, |tx| {
        let refresh_token = insert_refresh_token(tx, user_id, &new_family(), refresh_ttl)?;
        Ok(Session {
            user: load_user(tx, user_id)?,
            refresh_token,
        })
    })
}

/// Why a refresh token was refused; logged, never told to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Unknown,
    Revoked,
    Expired,
    Inactive,
    /// Presented after it was rotated: someone holds a copy. The whole family is revoked.
    Reused,
}

/// Exchanges a refresh token for a new one of the same family (rotation).
///
/// Lookup and rotation happen in one write transaction, and the rotation is a conditional
/// `UPDATE … WHERE rotated_at IS NULL AND revoked_at IS NULL`: of two concurrent refreshes of one
/// token exactly one rotates it. The other finds it rotated, which is indistinguishable from a
/// stolen copy being replayed, so it is treated as re-use: the whole family is revoked (the
/// winner's new token too) and the user must log in again. The revocation is committed even
/// though the request fails.
pub fn refresh(conn: &mut DbConn, token: &str, refresh_ttl: Duration) -> Result<Session, ApiError> {
    let hash = hash_refresh_token(token);
    let outcome = write_transaction(conn, |tx| -> Result<_, ApiError> {
        let Some(row) = refresh_tokens::table
            .filter(refresh_tokens::token_hash.eq(&hash))
            .select(RefreshTokenRow::as_select())
            .first(tx.conn())
            .optional()?
        else {
            return Ok(Err((Refusal::Unknown, None)));
        };
        let at = now();
        if row.revoked_at.is_some() {
            return Ok(Err((Refusal::Revoked, Some(row))));
        }
        if row.rotated_at.is_some() {
            revoke_family(tx, &row.family, at)?;
            return Ok(Err((Refusal::Reused, Some(row))));
        }
        if row.expires_at <= at {
            return Ok(Err((Refusal::Expired, Some(row))));
        }
        let active = users::table
            .find(row.user_id)
            .select(users::active)
            .first::<bool>(tx.conn())
            .optional()?;
        if active != Some(true) {
            return Ok(Err((Refusal::Inactive, Some(row))));
        }
        let rotated = diesel::update(
            refresh_tokens::table
                .filter(refresh_tokens::id.eq(row.id))
                .filter(refresh_tokens::rotated_at.is_null())
                .filter(refresh_tokens::revoked_at.is_null()),
        )
        .set(refresh_tokens::rotated_at.eq(at))
        .execute(tx.conn())?;
        if rotated == 0 {
            // A concurrent refresh of the same token committed first (PostgreSQL re-checks the
            // condition after waiting for its row lock).
            revoke_family(tx, &row.family, at)?;
            return Ok(Err((Refusal::Reused, Some(row))));
        }
        let refresh_token = insert_refresh_token(tx, row.user_id, &row.family, refresh_ttl)?;
        Ok(Ok(Session {
            user: load_user(tx, row.user_id)?,
            refresh_token,
        }))
    })?;
    outcome.map_err(|(why, row)| {
        match (why, row) {
            (Refusal::Reused, Some(row)) => log::warn!(
                "refresh token re-used for user {}: revoked token family {}",
                row.user_id,
                row.family
            ),
            (why, Some(row)) => {
                log::info!("refresh refused for user {}: {why:?}", row.user_id)
            }
            (why, None) => log::info!("refresh refused: {why:?}"),
        }
        ApiError::Unauthorized(INVALID_REFRESH_TOKEN.into())
    })
}

/// Ends the session a refresh token belongs to by revoking its whole family. A token that is
/// unknown or belongs to someone else is ignored, so that the answer never confirms whose it is.
pub fn logout(conn: &mut DbConn, user_id: i64, token: &str) -> Result<(), ApiError> {
    let hash = hash_refresh_token(token);
    write_transaction(conn, |tx| {
        let family = refresh_tokens::table
            .filter(refresh_tokens::token_hash.eq(&hash))
            .filter(refresh_tokens::user_id.eq(user_id))
            .select(refresh_tokens::family)
            .first::<String>(tx.conn())
            .optional()?;
        if let Some(family) = family {
            revoke_family(tx, &family, now())?;
        }
        Ok(())
    })
}

/// A new family id, shared by every token rotated from one login.
fn new_family() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Stores the hash of a fresh refresh token and returns the token itself. Each rotation gets a
/// full lifetime, so an active client stays logged in while an idle one expires.
fn insert_refresh_token(
    conn: &mut DbConn,
    user_id: i64,
    family: &str,
    ttl: Duration,
) -> Result<String, ApiError> {
    let token = new_refresh_token();
    let at = now();
    let ttl = chrono::Duration::from_std(ttl).map_err(ApiError::internal)?;
    diesel::insert_into(refresh_tokens::table)
        .values((
            refresh_tokens::user_id.eq(user_id),
            refresh_tokens::family.eq(family),
            refresh_tokens::token_hash.eq(hash_refresh_token(&token)),
            refresh_tokens::expires_at.eq(at + ttl),
            refresh_tokens::created_at.eq(at),
        ))
        .execute(conn)?;
    Ok(token)
}

fn revoke_family(conn: &mut DbConn, family: &str, at: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(
        refresh_tokens::table
            .filter(refresh_tokens::family.eq(family))
            .filter(refresh_tokens::revoked_at.is_null()),
    )
    .set(refresh_tokens::revoked_at.eq(at))
    .execute(conn)
}

fn revoke_all_of_user(conn: &mut DbConn, user_id: i64, at: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(
        refresh_tokens::table
            .filter(refresh_tokens::user_id.eq(user_id))
            .filter(refresh_tokens::revoked_at.is_null()),
    )
    .set(refresh_tokens::revoked_at.eq(at))
    .execute(conn)
}

/// One account with its customer record, or `None`.
fn find_user(conn: &mut DbConn, id: i64) -> Result<Option<UserView>, ApiError> {
    let row = users::table
        .left_join(customers::table)
        .filter(users::id.eq(id))
        .select((UserRow::as_select(), Option::<CustomerRow>::as_select()))
        .first::<(UserRow, Option<CustomerRow>)>(conn)
        .optional()?;
    row.map(|(user, customer)| UserView::from_rows(user, customer).map_err(ApiError::internal))
        .transpose()
}

fn no_such_user(id: i64) -> ApiError {
    ApiError::NotFound(format!("no user with id {id}"))
}

/// An account that must exist (it was just written, or the caller was just authenticated).
fn load_user(conn: &mut DbConn, id: i64) -> Result<UserView, ApiError> {
    find_user(conn, id)?.ok_or_else(|| no_such_user(id))
}

/// One account by id; 404 when there is none.
pub fn get_user(conn: &mut DbConn, id: i64) -> Result<UserView, ApiError> {
    load_user(conn, id)
}

/// Escapes `LIKE` wildcards so that `_` and `%`, both common in email addresses, match
/// themselves.
fn like_pattern(needle: &str) -> String {
    let mut escaped = String::with_capacity(needle.len() + 2);
    escaped.push('%');
    for c in needle.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped.push('%');
    escaped
}

type Backend = <DbConn as Connection>::Backend;

/// Users (with their customer records) matching the list filters, unpaged and unsorted.
fn filtered_users<'a>(
    role: Option<Role>,
    active: Option<bool>,
    pattern: Option<String>,
) -> diesel::dsl::IntoBoxed<'a, diesel::dsl::LeftJoin<users::table, customers::table>, Backend> {
    let mut query = users::table.left_join(customers::table).into_boxed();
    if let Some(role) = role {
        query = query.filter(users::role.eq(role.as_str()));
    }
    if let Some(active) = active {
        query = query.filter(users::active.eq(active));
    }
    if let Some(pattern) = pattern {
        query = query.filter(users::email.like(pattern).escape('\\'));
    }
    query
}

/// A page of accounts. The email filter is lower-cased before matching: emails are stored
/// lower-cased and `LIKE` is case-sensitive on PostgreSQL (not on SQLite), so this gives the same
/// case-insensitive result on both.
pub fn list_users(conn: &mut DbConn, query: &UserListQuery) -> Result<Page<UserView>, ApiError> {
    let (page, per_page) = PageParams {
        page: query.page,
        per_page: query.per_page,
    }
    .resolve()?;
    let pattern = query
        .q
        .as_deref()
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(|q| like_pattern(&q.to_lowercase()));
    let total = filtered_users(query.role, query.active, pattern.clone())
        .count()
        .get_result::<i64>(conn)?;
    let mut items = filtered_users(query.role, query.active, pattern)
        .select((UserRow::as_select(), Option::<CustomerRow>::as_select()));
    items = match query.sort.unwrap_or_default() {
        UserSort::Id => items.order(users::id.asc()),
        UserSort::IdDesc => items.order(users::id.desc()),
        UserSort::Email => items.order(users::email.asc()),
        UserSort::EmailDesc => items.order(users::email.desc()),
        UserSort::CreatedAt => items.order((users::created_at.asc(), users::id.asc())),
        UserSort::CreatedAtDesc => items.order((users::created_at.desc(), users::id.desc())),
    };
    let rows = items
        .limit(per_page)
        .offset(Page::<UserView>::offset(page, per_page))
        .load::<(UserRow, Option<CustomerRow>)>(conn)?;
    let items = rows
        .into_iter()
        .map(|(user, customer)| UserView::from_rows(user, customer))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::internal)?;
    Ok(Page {
        items,
        page,
        per_page,
        total,
    })
}

/// Changes an account's role and/or active flag.
///
/// Rules: an admin cannot demote or deactivate themself (so there is always an admin left to undo
/// a mistake); roles move between `staff` and `admin` only, because a customer account is tied to
/// its customer record and a staff account has none. Deactivating revokes every refresh token of
/// the account; its access tokens stop working on their own, as each request re-reads `active`.
pub fn update_user(
    conn: &mut DbConn,
    actor_id: i64,
    target_id: i64,
    role: Option<Role>,
    active: Option<bool>,
) -> Result<UserView, ApiError> {
    if role.is_none() && active.is_none() {
        return Err(ApiError::invalid(
            "body",
            "send at least one of `role` and `active`",
        ));
    }
    write_transaction(conn, |tx| {
        let current = users::table
            .find(target_id)
            .select(users::role)
            .first::<String>(tx.conn())
            .optional()?
            .ok_or_else(|| no_such_user(target_id))?;
        let current = Role::parse(&current)
            .ok_or_else(|| ApiError::internal(format!("unknown role {current}")))?;
        if actor_id == target_id {
            if role.is_some_and(|r| r != Role::Admin) {
                return Err(ApiError::Conflict(
                    "you cannot remove your own admin role; ask another admin to do it".into(),
                ));
            }
            if active == Some(false) {
                return Err(ApiError::Conflict(
                    "you cannot deactivate your own account; ask another admin to do it".into(),
                ));
            }
        }
        if let Some(new_role) = role {
            if (new_role == Role::Customer) != (current == Role::Customer) {
                return Err(ApiError::Conflict(format!(
                    "cannot change a {} account into a {} account: roles change between staff \
                     and admin only; create a separate account instead",
                    current.as_str(),
                    new_role.as_str()
                )));
            }
        }
        let at = now();
        diesel::update(users::table.find(target_id))
            .set(&UserChanges {
                role: role.map(Role::as_str),
                active,
                updated_at: at,
            })
            .execute(tx.conn())?;
        if active == Some(false) {
            revoke_all_of_user(tx, target_id, at)?;
        }
        load_user(tx, target_id)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("a_b%c"), "%a\\_b\\%c%");
        assert_eq!(like_pattern("plain"), "%plain%");
        assert_eq!(like_pattern("back\\slash"), "%back\\\\slash%");
    }

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(normalize_email("  Ada@Example.COM "), "ada@example.com");
    }
}
