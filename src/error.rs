//! The one error type of the API and its RFC 9457 `application/problem+json` rendering.
//!
//! Services return [`ApiError`] for the outcomes a client must be told about (not found, conflict,
//! invalid input…); everything unexpected becomes [`ApiError::Internal`], whose cause is logged and
//! never sent to the client.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use std::borrow::Cow;
use utoipa::ToSchema;

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One invalid input field and why it was rejected.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the offending field (`lines[2].quantity`), or a query/header name.
    #[schema(example = "isbn")]
    pub field: String,
    /// Human-readable reason.
    #[schema(example = "is not a valid ISBN-10 or ISBN-13 (bad check digit)")]
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A book an order asked for more copies of than are available.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct Shortage {
    pub book_id: i64,
    /// Copies the order asked for.
    pub requested: i64,
    /// Copies available (`on_hand - reserved`) when the order was placed.
    pub available: i64,
}

/// RFC 9457 problem details, as sent on the wire.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "https://bookstore.example/problems/validation",
    "title": "Invalid input",
    "status": 422,
    "detail": "1 field is invalid",
    "errors": [{"field": "list_price_cents", "message": "must be greater than 0"}]
}))]
pub struct Problem {
    /// URI identifying the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Per-field reasons, present on validation errors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// On an illegal order transition: the order's current status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_status: Option<String>,
    /// On an illegal order transition: the actions the order allows now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_actions: Option<Vec<String>>,
    /// On a stock shortage: every book that is short.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shortages: Vec<Shortage>,
    /// On a declined payment (402): the provider's reason, such as `card_declined` or
    /// `insufficient_funds`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("malformed request: {0}")]
    BadRequest(String),
    #[error("unauthenticated: {0}")]
    Unauthorized(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    #[error("precondition required: {0}")]
    PreconditionRequired(String),
    #[error("payload too large: {0}")]
    PayloadTooLarge(String),
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    /// An order cannot take this action in its current status (409).
    #[error("illegal transition: {detail}")]
    IllegalTransition {
        detail: String,
        current_status: String,
        allowed_actions: Vec<String>,
    },
    /// Too little stock for an order's lines (409), listing every short line.
    #[error("stock shortage: {0:?}")]
    Shortage(Vec<Shortage>),
    /// The payment provider declined a charge (402), with its reason code.
    #[error("payment declined ({code}): {detail}")]
    PaymentDeclined { code: String, detail: String },
    #[error("invalid input: {0:?}")]
    Validation(Vec<FieldError>),
    /// Another request holds the resource for a moment (409 with `Retry-After`), such as a card
    /// payment being settled under the same `Idempotency-Key`.
    #[error("in progress: {detail}")]
    InProgress {
        detail: String,
        retry_after_secs: u64,
    },
    #[error("rate limited for {retry_after_secs}s")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// An unexpected failure; the message is logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// A single-field validation error.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError::new(field, message)])
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        ApiError::Internal(cause.to_string())
    }

    /// The HTTP status this error answers with, for code that stores answers without speaking
    /// HTTP itself (such as the idempotency keys).
    pub fn http_status(&self) -> u16 {
        self.status_code().as_u16()
    }

    /// Whether this is the server's fault (5xx): such an answer is never kept for a retry.
    pub fn is_server_error(&self) -> bool {
        self.status_code().is_server_error()
    }

    fn slug_and_title(&self) -> (&'static str, &'static str) {
        match self {
            ApiError::BadRequest(_) => ("bad-request", "Malformed request"),
            ApiError::Unauthorized(_) => ("unauthorized", "Authentication required"),
            ApiError::Forbidden(_) => ("forbidden", "Forbidden"),
            ApiError::NotFound(_) => ("not-found", "Not found"),
            ApiError::Conflict(_) => ("conflict", "Conflict"),
            ApiError::InProgress { .. } => ("in-progress", "Still in progress"),
            ApiError::PreconditionFailed(_) => ("precondition-failed", "Precondition failed"),
            ApiError::PreconditionRequired(_) => ("precondition-required", "Precondition required"),
            ApiError::PayloadTooLarge(_) => ("payload-too-large", "Payload too large"),
            ApiError::UnsupportedMediaType(_) => {
                ("unsupported-media-type", "Unsupported media type")
            }
            ApiError::IllegalTransition { .. } => {
                ("illegal-transition", "Illegal state transition")
            }
            ApiError::Shortage(_) => ("insufficient-stock", "Insufficient stock"),
            ApiError::PaymentDeclined { .. } => ("payment-declined", "Payment declined"),
            ApiError::Validation(_) => ("validation", "Invalid input"),
            ApiError::TooManyRequests { .. } => ("rate-limited", "Too many requests"),
            ApiError::Unavailable(_) => ("unavailable", "Service unavailable"),
            ApiError::Internal(_) => ("internal", "Internal server error"),
        }
    }

    fn detail(&self) -> Cow<'_, str> {
        match self {
            ApiError::BadRequest(m)
            | ApiError::Unauthorized(m)
            | ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::Conflict(m)
            | ApiError::PreconditionFailed(m)
            | ApiError::PreconditionRequired(m)
            | ApiError::PayloadTooLarge(m)
            | ApiError::UnsupportedMediaType(m)
            | ApiError::IllegalTransition { detail: m, .. }
            | ApiError::InProgress { detail: m, .. }
            | ApiError::PaymentDeclined { detail: m, .. } => Cow::Borrowed(m),
            ApiError::Shortage(lines) => Cow::Owned(format!(
                "not enough stock for {} of the order's books: {}",
                lines.len(),
                lines
                    .iter()
                    .map(|s| format!(
                        "book {} (requested {}, available {})",
                        s.book_id, s.requested, s.available
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            ApiError::Validation(errors) => match errors.as_slice() {
                [one] => Cow::Owned(format!("{}: {}", one.field, one.message)),
                many => Cow::Owned(format!("{} fields are invalid", many.len())),
            },
            ApiError::TooManyRequests { retry_after_secs } => Cow::Owned(format!(
                "too many attempts; retry in {retry_after_secs} seconds"
            )),
            ApiError::Unavailable(_) => {
                Cow::Borrowed("the service is busy; retry after the indicated delay")
            }
            ApiError::Internal(_) => Cow::Borrowed("an unexpected error occurred"),
        }
    }

    /// The problem document this error is rendered as.
    pub fn to_problem(&self) -> Problem {
        let (slug, title) = self.slug_and_title();
        Problem {
            kind: problem_type(slug),
            title: title.to_owned(),
            status: self.status_code().as_u16(),
            detail: self.detail().into_owned(),
            errors: match self {
                ApiError::Validation(e) => e.clone(),
                _ => Vec::new(),
            },
            current_status: match self {
                ApiError::IllegalTransition { current_status, .. } => Some(current_status.clone()),
                _ => None,
            },
            allowed_actions: match self {
                ApiError::IllegalTransition {
                    allowed_actions, ..
                } => Some(allowed_actions.clone()),
                _ => None,
            },
            shortages: match self {
                ApiError::Shortage(lines) => lines.clone(),
                _ => Vec::new(),
            },
            code: match self {
                ApiError::PaymentDeclined { code, .. } => Some(code.clone()),
                _ => None,
            },
        }
    }
}

/// The `type` URI of a problem kind.
pub fn problem_type(slug: &str) -> String {
    format!("https://bookstore.example/problems/{slug}")
}

/// A problem+json response for a bare status (used for errors raised by the framework itself).
pub fn problem_response(status: StatusCode, detail: &str) -> HttpResponse {
    let title = status.canonical_reason().unwrap_or("Error");
    let slug = title.to_ascii_lowercase().replace(' ', "-");
    HttpResponse::build(status)
        .content_type(PROBLEM_JSON)
        .json(Problem {
            kind: problem_type(&slug),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.to_owned(),
            errors: Vec::new(),
            current_status: None,
            allowed_actions: None,
            shortages: Vec::new(),
            code: None,
        })
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_)
            | ApiError::InProgress { .. }
            | ApiError::IllegalTransition { .. }
            | ApiError::Shortage(_) => StatusCode::CONFLICT,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::PreconditionRequired(_) => StatusCode::PRECONDITION_REQUIRED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PaymentDeclined { .. } => StatusCode::PAYMENT_REQUIRED,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Internal(cause) => log::error!("internal error: {cause}"),
            ApiError::Unavailable(cause) => log::warn!("unavailable: {cause}"),
            _ => {}
        }
        let mut builder = HttpResponse::build(self.status_code());
        builder.content_type(PROBLEM_JSON);
        match self {
            ApiError::Unauthorized(_) => {
                builder.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            ApiError::TooManyRequests { retry_after_secs }
            | ApiError::InProgress {
                retry_after_secs, ..
            } => {
                builder.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            ApiError::Unavailable(_) => {
                builder.insert_header((header::RETRY_AFTER, "1"));
            }
            _ => {}
        }
        builder.json(self.to_problem())
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(err: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind as Kind, Error};
        match &err {
            Error::NotFound => ApiError::NotFound("the resource does not exist".into()),
            Error::DatabaseError(Kind::UniqueViolation, info) => ApiError::Conflict(format!(
                "a record with the same key already exists ({})",
                info.message()
            )),
            Error::DatabaseError(Kind::ForeignKeyViolation, _) => ApiError::Conflict(
                "the change refers to, or is referred to by, another record".into(),
            ),
            Error::DatabaseError(Kind::CheckViolation, info) => {
                ApiError::Validation(vec![FieldError::new(
                    info.column_name().unwrap_or("body"),
                    "violates a database constraint",
                )])
            }
            Error::DatabaseError(Kind::SerializationFailure, _) => {
                ApiError::Unavailable(format!("serialization failure: {err}"))
            }
            _ if crate::db::is_connection_lost(&err) => {
                ApiError::Unavailable(format!("database connection lost: {err}"))
            }
            Error::DatabaseError(_, info)
                if info.message().contains("database is locked")
                    || info.message().contains("database is busy") =>
            {
                ApiError::Unavailable(format!("sqlite busy: {err}"))
            }
            _ => ApiError::Internal(format!("database error: {err}")),
        }
    }
}

impl From<diesel::r2d2::PoolError> for ApiError {
    fn from(err: diesel::r2d2::PoolError) -> Self {
        ApiError::Unavailable(format!("no database connection available: {err}"))
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(err: actix_web::error::BlockingError) -> Self {
        ApiError::Internal(format!("blocking task failed: {err}"))
    }
}

impl From<validator::ValidationErrors> for ApiError {
    fn from(errors: validator::ValidationErrors) -> Self {
        let mut out = Vec::new();
        flatten_validation("", &errors, &mut out);
        out.sort_by(|a, b| a.field.cmp(&b.field));
        ApiError::Validation(out)
    }
}

fn flatten_validation(
    prefix: &str,
    errors: &validator::ValidationErrors,
    out: &mut Vec<FieldError>,
) {
    use validator::ValidationErrorsKind as K;
    for (field, kind) in errors.errors() {
        let path = if prefix.is_empty() {
            field.to_string()
        } else {
            format!("{prefix}.{field}")
        };
        match kind {
            K::Field(list) => out.extend(list.iter().map(|e| {
                let message = e
                    .message
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| describe_validation_code(e));
                FieldError::new(path.clone(), message)
            })),
            K::Struct(inner) => flatten_validation(&path, inner, out),
            K::List(items) => {
                for (index, inner) in items {
                    flatten_validation(&format!("{path}[{index}]"), inner, out);
                }
            }
        }
    }
}

fn describe_validation_code(e: &validator::ValidationError) -> String {
    let param = |name: &str| e.params.get(name).map(|v| v.to_string());
    match e.code.as_ref() {
        "length" => match (param("min"), param("max")) {
            (Some(min), Some(max)) => format!("length must be between {min} and {max}"),
            (Some(min), None) => format!("length must be at least {min}"),
            (None, Some(max)) => format!("length must be at most {max}"),
            _ => "has an invalid length".into(),
        },
        "range" => match (param("min"), param("max")) {
            (Some(min), Some(max)) => format!("must be between {min} and {max}"),
            (Some(min), None) => format!("must be at least {min}"),
            (None, Some(max)) => format!("must be at most {max}"),
            _ => "is out of range".into(),
        },
        "email" => "must be a valid email address".into(),
        "url" => "must be a valid URL".into(),
        other => format!("is invalid ({other})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_hide_their_cause() {
        let problem = ApiError::internal("secret table exploded").to_problem();
        assert_eq!(problem.status, 500);
        assert!(!problem.detail.contains("secret"));
    }

    #[test]
    fn validation_detail_names_the_field() {
        let problem = ApiError::invalid("isbn", "bad check digit").to_problem();
        assert_eq!(problem.status, 422);
        assert_eq!(problem.detail, "isbn: bad check digit");
        assert_eq!(problem.errors.len(), 1);
    }
}
