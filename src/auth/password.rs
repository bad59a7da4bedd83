//! Password hashing (argon2id with the crate's OWASP-recommended defaults) and the password policy.

use crate::error::ApiError;
use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use std::collections::HashSet;
use std::sync::OnceLock;

pub const MIN_PASSWORD_LEN: usize = 10;

/// Hashes a password into a PHC string (`$argon2id$…`).
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::internal(format!("password hashing failed: {e}")))
}

/// Whether `password` matches a stored PHC hash. A malformed hash never matches.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash of a random password, verified against when the email is unknown so that a login's
/// timing does not reveal whether an account exists.
pub fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| hash_password("no-such-account-placeholder").unwrap_or_default())
}

fn common_passwords() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        include_str!("common_passwords.txt")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    })
}

/// Checks the password policy; the error names the `password` field and the rule broken.
pub fn check_policy(password: &str, email: &str) -> Result<(), ApiError> {
    let rule = |message: &str| Err(ApiError::invalid("password", message));
    if password.chars().count() < MIN_PASSWORD_LEN {
        return rule("must be at least 10 characters long");
    }
    if password.chars().count() > 256 {
        return rule("must be at most 256 characters long");
    }
    let lowered = password.to_lowercase();
    let email = email.trim().to_lowercase();
    let local_part = email.split('@').next().unwrap_or_default();
    if lowered == email || (!local_part.is_empty() && lowered == local_part) {
        return rule("must not be your email address");
    }
    if common_passwords().contains(lowered.as_str()) {
        return rule("is too common; choose a less predictable password");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("wrong horse battery", &hash));
        assert!(!verify_password("anything", "not-a-hash"));
    }

    fn rejected_with(password: &str, email: &str) -> String {
        match check_policy(password, email) {
            Err(ApiError::Validation(errors)) => {
                assert_eq!(errors[0].field, "password");
                errors[0].message.clone()
            }
            other => panic!("expected a policy error, got {other:?}"),
        }
    }

    #[test]
    fn policy_rules() {
        assert!(rejected_with("short", "a@b.co").contains("at least 10"));
        assert!(rejected_with("Reader@Example.com", "reader@example.com").contains("email"));
        assert!(rejected_with("1234567890", "a@b.co").contains("common"));
        assert!(rejected_with("Password123", "a@b.co").contains("common"));
        assert!(check_policy("plum-orchard-41-lantern", "a@b.co").is_ok());
    }
}
