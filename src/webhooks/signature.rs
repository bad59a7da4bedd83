//! How webhook requests are signed, and the check a receiver makes.
//!
//! Every delivery attempt carries `Bookstore-Timestamp: <unix seconds>` and
//! `Bookstore-Signature: v1=<hex>`, where `<hex>` is HMAC-SHA256 keyed with the endpoint's
//! secret (the whole `whsec_…` string, as UTF-8 bytes) over `<timestamp>.<body>`: the
//! timestamp header exactly as sent, a dot, and the raw request body. A receiver recomputes it
//! over the bytes it received (before any JSON parsing), compares in constant time, and refuses
//! timestamps too far from its clock, so that a captured request cannot be replayed later.
//! The header may hold several comma-separated `v1=` values; any one of them matching is enough
//! (room for signing with two secrets during a rotation).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;

type HmacSha256 = Hmac<Sha256>;

/// `Bookstore-Signature`: `v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub const SIGNATURE_HEADER: &str = "Bookstore-Signature";
/// `Bookstore-Timestamp`: unix seconds of the attempt, part of the signed text.
pub const TIMESTAMP_HEADER: &str = "Bookstore-Timestamp";
/// `Bookstore-Event-Id`: the event's id, the same on every attempt and replay; dedupe on it.
pub const EVENT_ID_HEADER: &str = "Bookstore-Event-Id";
/// `Bookstore-Event-Type`: the event's type, such as `order.paid`.
pub const EVENT_TYPE_HEADER: &str = "Bookstore-Event-Type";
/// The version tag of the signature scheme.
pub const SCHEME: &str = "v1";
/// How far a receiver should let a timestamp be from its own clock (what [`verify`] callers
/// usually pass).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the secret cannot be used as an HMAC key")]
    InvalidKey,
    #[error("the timestamp is not a whole number of seconds")]
    BadTimestamp,
    #[error("the timestamp is outside the tolerance")]
    Expired,
    #[error("the signature header has no v1= value")]
    Malformed,
    #[error("no signature matches")]
    Mismatch,
}

fn keyed(secret: &str, timestamp: &str, body: &[u8]) -> Result<HmacSha256, SignatureError> {
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).map_err(|_| SignatureError::InvalidKey)?;
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(mac)
}

/// The `Bookstore-Signature` value for `body` sent at `timestamp` (unix seconds).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> Result<String, SignatureError> {
    let mac = keyed(secret, &timestamp.to_string(), body)?;
    Ok(format!(
        "{SCHEME}={}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

/// Checks a received request: `timestamp` and `header` are the `Bookstore-Timestamp` and
/// `Bookstore-Signature` values, `body` the raw bytes received. Refuses a timestamp more than
/// `tolerance` away from now; compares signatures in constant time.
pub fn verify(
    secret: &str,
    timestamp: &str,
    body: &[u8],
    header: &str,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    verify_at(
        secret,
        timestamp,
        body,
        header,
        tolerance,
        chrono::Utc::now().timestamp(),
    )
}

/// [`verify`] against the clock reading `now` (unix seconds).
pub fn verify_at(
    secret: &str,
    timestamp: &str,
    body: &[u8],
    header: &str,
    tolerance: Duration,
    now: i64,
) -> Result<(), SignatureError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    let tolerance = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
    if now.abs_diff(ts) > tolerance.unsigned_abs() {
        return Err(SignatureError::Expired);
    }
    let mac = keyed(secret, timestamp.trim(), body)?;
    let candidates: Vec<&str> = header
        .split(',')
        .filter_map(|part| part.trim().strip_prefix("v1="))
        .collect();
    if candidates.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let matched = candidates.into_iter().any(|candidate| {
        hex::decode(candidate.trim()).is_ok_and(|bytes| mac.clone().verify_slice(&bytes).is_ok())
    });
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"id":"evt"}"#;

    #[test]
    fn matches_a_known_vector() {
        // Computed with: printf '%s' '1700000000.{"id":"evt"}' | openssl dgst -sha256 -hmac whsec_test
        assert_eq!(
            sign("whsec_test", 1_700_000_000, BODY),
            Ok("v1=a94cea056df1fbb92eadafcf2c5cd541dbe0c6ef736e4748202dd53f86694a3e".to_owned())
        );
    }

    #[test]
    fn a_signed_body_verifies_and_any_change_is_refused() {
        let sig = sign("whsec_a", 1_700_000_000, BODY).unwrap_or_default();
        let check = |secret: &str, ts: &str, body: &[u8], header: &str, now: i64| {
            verify_at(secret, ts, body, header, DEFAULT_TOLERANCE, now)
        };
        assert_eq!(
            check("whsec_a", "1700000000", BODY, &sig, 1_700_000_100),
            Ok(())
        );
        assert_eq!(
            check("whsec_b", "1700000000", BODY, &sig, 1_700_000_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(
                "whsec_a",
                "1700000000",
                br#"{"id":"evu"}"#,
                &sig,
                1_700_000_000
            ),
            Err(SignatureError::Mismatch)
        );
        // The timestamp is signed: moving it breaks the signature.
        assert_eq!(
            check("whsec_a", "1700000001", BODY, &sig, 1_700_000_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check("whsec_a", "1700000000", BODY, &sig, 1_700_000_301),
            Err(SignatureError::Expired)
        );
        assert_eq!(
            check("whsec_a", "1700000000", BODY, &sig, 1_699_999_699),
            Err(SignatureError::Expired)
        );
        assert_eq!(
            check("whsec_a", "soon", BODY, &sig, 1_700_000_000),
            Err(SignatureError::BadTimestamp)
        );
        assert_eq!(
            check("whsec_a", "1700000000", BODY, "sha256=abc", 1_700_000_000),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            check("whsec_a", "1700000000", BODY, "v1=zz", 1_700_000_000),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn any_of_several_signatures_may_match() {
        let old = sign("whsec_old", 1_700_000_000, BODY).unwrap_or_default();
        let new = sign("whsec_new", 1_700_000_000, BODY).unwrap_or_default();
        let header = format!("{old}, {new}");
        for secret in ["whsec_old", "whsec_new"] {
            assert_eq!(
                verify_at(
                    secret,
                    "1700000000",
                    BODY,
                    &header,
                    DEFAULT_TOLERANCE,
                    1_700_000_000
                ),
                Ok(())
            );
        }
    }
}
