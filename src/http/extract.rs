//! Extractors whose failures name the offending field in a problem+json body, instead of
//! actix's plain-text errors.

use crate::error::{ApiError, FieldError};
use crate::http::text;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use validator::Validate;

/// A JSON body, deserialized and then validated with its `validator` rules.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T> ApiJson<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

/// Body size limit for [`ApiJson`], taken from the app data (see `app::build`).
#[derive(Debug, Clone, Copy)]
pub struct JsonLimit(pub usize);

impl<T: DeserializeOwned + Validate + 'static> FromRequest for ApiJson<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_json = sent_as_json(req);
        let limit = req.app_data::<JsonLimit>().map_or(256 * 1024, |l| l.0);
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            if !is_json {
                return Err(not_json());
            }
            let bytes = body.await.map_err(|e| payload_error(e, limit))?;
            if bytes.len() > limit {
                return Err(too_large(limit));
            }
            let value = parse_json::<T>(&bytes)?;
            value.validate()?;
            Ok(ApiJson(value))
        })
    }
}

/// Whether the request says its body is JSON (`application/json` or `application/*+json`).
fn sent_as_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|m| {
            m.type_() == mime::APPLICATION
                && (m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON))
        })
}

fn not_json() -> ApiError {
    ApiError::UnsupportedMediaType(
        "the body must be JSON, sent with Content-Type: application/json".into(),
    )
}

/// The optional JSON body of an action endpoint (cancel, complete, receive, reject): no body
/// (empty or only whitespace, whatever its Content-Type) and a JSON `null` both mean "no
/// options", `T::default()`, as the OpenAPI document's nullable request body says. Any other
/// body is read as [`ApiJson`] reads one: sent as JSON (415), well-formed (400), valid (422).
#[derive(Debug)]
pub struct OptionalJson<T>(pub T);

impl<T> OptionalJson<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: DeserializeOwned + Validate + Default + 'static> FromRequest for OptionalJson<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_json = sent_as_json(req);
        let limit = req.app_data::<JsonLimit>().map_or(256 * 1024, |l| l.0);
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = body.await.map_err(|e| payload_error(e, limit))?;
            if bytes.len() > limit {
                return Err(too_large(limit));
            }
            parse_optional_json(&bytes, is_json).map(OptionalJson)
        })
    }
}

/// See [`OptionalJson`].
pub fn parse_optional_json<T: DeserializeOwned + Validate + Default>(
    bytes: &[u8],
    is_json: bool,
) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    if !is_json {
        return Err(not_json());
    }
    let value = parse_json::<Option<T>>(bytes)?.unwrap_or_default();
    value.validate()?;
    Ok(value)
}

fn too_large(limit: usize) -> ApiError {
    ApiError::PayloadTooLarge(format!("the body exceeds the limit of {limit} bytes"))
}

fn payload_error(err: actix_web::Error, limit: usize) -> ApiError {
    if err.as_response_error().status_code() == actix_web::http::StatusCode::PAYLOAD_TOO_LARGE {
        too_large(limit)
    } else {
        ApiError::BadRequest(format!("cannot read the body: {err}"))
    }
}

/// Parses a JSON body in three steps, so that each kind of fault gets its own answer:
/// syntactically broken JSON (truncated, trailing garbage…) is 400 whatever it contains; then
/// every string is checked against the control-character rule of [`crate::http::text`] (422
/// naming its path); then the value is deserialized into `T` (422 naming the field of a wrong
/// type or a missing field). Bodies are validated before any handler looks up its resources.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|err| ApiError::BadRequest(format!("the body is not valid JSON: {err}")))?;
    text::check_json(&value)?;
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let message = strip_position(&err.into_inner().to_string());
        let field = missing_field_name(&message)
            .map(|name| join_path(&path, name))
            .unwrap_or_else(|| if path == "." { "body".into() } else { path });
        ApiError::Validation(vec![FieldError::new(field, message)])
    })
}

fn join_path(path: &str, name: &str) -> String {
    if path == "." || path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// The field a "missing field" message is about (the error's path stops at its parent; for an
/// unknown field the path already ends with the field).
fn missing_field_name(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Query parameters, deserialized and validated; errors name the parameter.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Validate> FromRequest for ApiQuery<T> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(parse_query(req.query_string()).map(ApiQuery))
    }
}

/// Parses a query string: every parameter is first checked against the control-character rule
/// of [`crate::http::text`] (all parameters are single-line), then deserialized and validated.
pub fn parse_query<T: DeserializeOwned + Validate>(query: &str) -> Result<T, ApiError> {
    text::check_query(query)?;
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    let value: T = serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let message = err.into_inner().to_string();
        let field = missing_field_name(&message)
            .map(str::to_owned)
            .unwrap_or_else(|| if path == "." { "query".into() } else { path });
        ApiError::invalid(field, message)
    })?;
    value.validate()?;
    Ok(value)
}

/// The `If-Match` precondition of a conditional update: the version the client last saw, or
/// `None` for `If-Match: *` (any current version, RFC 9110).
pub fn if_match_version(req: &HttpRequest) -> Result<Option<i32>, ApiError> {
    let raw = req
        .headers()
        .get(header::IF_MATCH)
        .ok_or_else(|| {
            ApiError::PreconditionRequired(
                "send If-Match with the ETag of the version you are changing".into(),
            )
        })?
        .to_str()
        .unwrap_or_default()
        .trim();
    if raw == "*" {
        return Ok(None);
    }
    let tag = raw.trim_start_matches("W/").trim_matches('"');
    tag.parse().map(Some).map_err(|_| {
        ApiError::PreconditionFailed(format!(
            "If-Match '{raw}' does not name a version of this resource"
        ))
    })
}

/// The strong ETag for a resource version.
pub fn etag(version: i32) -> String {
    format!("\"{version}\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, Validate)]
    struct Body {
        #[allow(dead_code)]
        lines: Vec<Line>,
    }
    #[derive(Debug, Deserialize, Validate)]
    struct Line {
        #[allow(dead_code)]
        quantity: i64,
    }

    #[test]
    fn wrong_types_name_the_field() {
        match parse_json::<Body>(br#"{"lines":[{"quantity":1},{"quantity":"x"}]}"#) {
            Err(ApiError::Validation(errors)) => assert_eq!(errors[0].field, "lines[1].quantity"),
            other => panic!("unexpected {other:?}"),
        }
        match parse_json::<Body>(br#"{"lines":[{}]}"#) {
            Err(ApiError::Validation(errors)) => assert_eq!(errors[0].field, "lines[0].quantity"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn syntax_errors_are_bad_requests() {
        for broken in [
            &b"{\"lines\": ["[..],
            b"{\"lines\": [{\"quantity\": \"x\"}, 2,",
            b"{\"lines\": []} trailing",
            b"",
            b"{'lines': []}",
        ] {
            assert!(
                matches!(parse_json::<Body>(broken), Err(ApiError::BadRequest(_))),
                "{}",
                String::from_utf8_lossy(broken)
            );
        }
    }

    #[derive(Debug, Default, Deserialize, Validate, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Options {
        #[serde(default)]
        flag: bool,
    }

    #[test]
    fn optional_bodies_take_nothing_and_null_as_the_default() {
        for (body, is_json) in [
            (&b""[..], false),
            (b"  \n", true),
            (b"null", true),
            (b" null ", true),
        ] {
            assert_eq!(
                parse_optional_json::<Options>(body, is_json).ok(),
                Some(Options::default())
            );
        }
        assert_eq!(
            parse_optional_json::<Options>(br#"{"flag": true}"#, true).ok(),
            Some(Options { flag: true })
        );
        assert!(matches!(
            parse_optional_json::<Options>(br#"{"flag": true}"#, false),
            Err(ApiError::UnsupportedMediaType(_))
        ));
        assert!(matches!(
            parse_optional_json::<Options>(b"{", true),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            parse_optional_json::<Options>(br#"{"other": 1}"#, true),
            Err(ApiError::Validation(_))
        ));
    }

    #[test]
    fn control_characters_are_refused_before_types_are_checked() {
        match parse_json::<Body>(br#"{"lines":[{"quantity":"x","note":"a\u0000b"}]}"#) {
            Err(ApiError::Validation(errors)) => assert_eq!(errors[0].field, "lines[0].note"),
            other => panic!("unexpected {other:?}"),
        }
    }
}
