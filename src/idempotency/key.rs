//! The key a client sends, and the request it stands for.

use crate::error::ApiError;

/// The header that carries the key.
pub const HEADER: &str = "Idempotency-Key";

/// A client's idempotency key: 1 to 255 visible ASCII characters. Once one exists it is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Checks the header's raw bytes; a bad key is a 422 naming the header.
    pub fn parse(bytes: &[u8]) -> Result<IdempotencyKey, ApiError> {
        if bytes.is_empty() || bytes.len() > 255 || !bytes.iter().all(|b| (0x21..=0x7e).contains(b))
        {
            return Err(ApiError::invalid(
                HEADER,
                "must be 1 to 255 visible ASCII characters",
            ));
        }
        Ok(IdempotencyKey(String::from_utf8_lossy(bytes).into_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A keyed request: whose key it is (`user:12`), the key, and the hash of the request it was
/// first used with (the same key with another body is refused).
#[derive(Debug, Clone)]
pub struct KeyedRequest {
    pub scope: String,
    pub key: IdempotencyKey,
    pub hash: String,
}

impl KeyedRequest {
    /// `key`, as user `user_id` sent it with a request whose hash is `hash`. Keys are kept per
    /// caller: two users may use the same key.
    pub fn new(key: IdempotencyKey, user_id: i64, hash: String) -> KeyedRequest {
        KeyedRequest {
            scope: format!("user:{user_id}"),
            key,
            hash,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_one_to_255_visible_ascii_characters() {
        assert!(IdempotencyKey::parse(b"order-2026-12-06_1").is_ok());
        assert!(IdempotencyKey::parse(&[b'k'; 255]).is_ok());
        for bad in [
            &b""[..],
            &[b'k'; 256][..],
            b"with space",
            b"tab\t",
            b"nul\0",
            "é".as_bytes(),
        ] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?}");
        }
    }
}
