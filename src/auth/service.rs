//! Account rules: creating users, logging in, rotating refresh tokens. No HTTP types here.

use crate::auth::password::{check_policy, hash_password};
use crate::auth::Role;
use crate::db::schema::{customers, users};
use crate::db::{now, write_transaction, DbConn};
use crate::error::ApiError;
use diesel::prelude::*;

/// Normalises an email for storage and lookup: trimmed and lower-cased.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
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
    let email = normalize_email(email);
    check_policy(password, &email)?;
    let hash = hash_password(password)?;
    write_transaction(conn, |conn| {
        let taken = users::table
            .filter(users::email.eq(&email))
            .count()
            .get_result::<i64>(conn)?;
        if taken > 0 {
            return Err(ApiError::Conflict(format!(
                "an account with email {email} already exists"
            )));
        }
        let at = now();
        let customer_id = if role == Role::Customer {
            let id = diesel::insert_into(customers::table)
                .values((
                    customers::name.eq(name.unwrap_or(&email)),
                    customers::email.eq(Some(&email)),
                    customers::created_at.eq(at),
                    customers::updated_at.eq(at),
                ))
                .returning(customers::id)
                .get_result::<i64>(conn)?;
            Some(id)
        } else {
            None
        };
        let id = diesel::insert_into(users::table)
            .values((
                users::email.eq(&email),
                users::password_hash.eq(&hash),
                users::role.eq(role.as_str()),
                users::active.eq(true),
                users::customer_id.eq(customer_id),
                users::created_at.eq(at),
                users::updated_at.eq(at),
            ))
            .returning(users::id)
            .get_result::<i64>(conn)?;
        Ok(id)
    })
}
