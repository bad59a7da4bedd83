//! Access tokens: short-lived HS256 JWTs whose algorithm, issuer, audience and expiry are all
//! checked; and opaque refresh tokens, of which only a hash is stored.

use crate::auth::Role;
use crate::config::Settings;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// User id, as a string per RFC 7519.
    pub sub: String,
    pub role: Role,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

/// Keys and rules for issuing and checking access tokens.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl_secs: i64,
}

/// Why a bearer token was refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TokenError(pub String);

impl TokenKeys {
    pub fn new(settings: &Settings) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&settings.jwt_issuer]);
        validation.set_audience(&[&settings.jwt_audience]);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
        validation.leeway = 5;
        validation.validate_exp = true;
        Self {
            encoding: EncodingKey::from_secret(&settings.jwt_secret),
            decoding: DecodingKey::from_secret(&settings.jwt_secret),
            validation,
            issuer: settings.jwt_issuer.clone(),
            audience: settings.jwt_audience.clone(),
            ttl_secs: settings.access_token_ttl.as_secs() as i64,
        }
    }

    /// Lifetime of an access token, for the `expires_in` field of token responses.
    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    pub fn issue(&self, user_id: i64, role: Role) -> Result<String, TokenError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user_id.to_string(),
            role,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            exp: now + self.ttl_secs,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| TokenError(format!("cannot sign token: {e}")))
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        use jsonwebtoken::errors::ErrorKind;
        decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| {
                TokenError(
                    match e.kind() {
                        ErrorKind::ExpiredSignature => "the access token has expired",
                        ErrorKind::InvalidAudience => "the access token is for another audience",
                        ErrorKind::InvalidIssuer => "the access token has another issuer",
                        ErrorKind::InvalidAlgorithm => "the access token uses a refused algorithm",
                        ErrorKind::InvalidSignature => "the access token signature is invalid",
                        _ => "the access token is malformed",
                    }
                    .to_owned(),
                )
            })
    }
}

/// A fresh opaque refresh token (256 random bits, URL-safe).
pub fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// What the database stores of a refresh token: a leaked table cannot be replayed.
pub fn hash_refresh_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::new(&Settings::for_database("unused.db"))
    }

    #[test]
    fn round_trip() {
        let k = keys();
        let token = k.issue(42, Role::Staff).unwrap();
        let claims = k.verify(&token).unwrap();
        assert_eq!(claims.sub, "42");
        assert_eq!(claims.role, Role::Staff);
    }

    #[test]
    fn rejects_other_audience_issuer_algorithm_and_expired() {
        let k = keys();
        let secret = Settings::for_database("x").jwt_secret;
        let now = chrono::Utc::now().timestamp();
        let base = Claims {
            sub: "1".into(),
            role: Role::Admin,
            iss: "bookstore".into(),
            aud: "bookstore-api".into(),
            iat: now,
            exp: now + 60,
        };
        let sign = |claims: &Claims, alg: Algorithm| {
            encode(
                &Header::new(alg),
                claims,
                &EncodingKey::from_secret(&secret),
            )
            .unwrap()
        };
        assert!(k.verify(&sign(&base, Algorithm::HS256)).is_ok());
        let wrong_aud = Claims {
            aud: "other".into(),
            ..base.clone()
        };
        assert!(k.verify(&sign(&wrong_aud, Algorithm::HS256)).is_err());
        let wrong_iss = Claims {
            iss: "evil".into(),
            ..base.clone()
        };
        assert!(k.verify(&sign(&wrong_iss, Algorithm::HS256)).is_err());
        assert!(k.verify(&sign(&base, Algorithm::HS512)).is_err());
        let expired = Claims {
            exp: now - 60,
            iat: now - 120,
            ..base.clone()
        };
        assert!(k.verify(&sign(&expired, Algorithm::HS256)).is_err());
        let other_key = encode(
            &Header::default(),
            &base,
            &EncodingKey::from_secret(b"another-secret-another-secret-xx"),
        )
        .unwrap();
        assert!(k.verify(&other_key).is_err());
    }

    #[test]
    fn refresh_tokens_are_random_and_hashed() {
        let a = new_refresh_token();
        assert_ne!(a, new_refresh_token());
        assert_eq!(hash_refresh_token(&a).len(), 64);
        assert_ne!(hash_refresh_token(&a), a);
    }
}
