//! Request ids, HEAD served as GET, and the normaliser that turns every framework-made error
//! (unknown route, wrong method, …) into problem+json, so clients never see a plain-text or empty
//! error body.

use crate::error::{problem_response, PROBLEM_JSON};
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::{ErrorHandlerResponse, Next};
use actix_web::{Error, HttpMessage};

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served, for logs.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Takes the caller's `X-Request-Id` when it is sane, otherwise makes one, and echoes it.
pub async fn request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut res = next.call(req).await?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(X_REQUEST_ID, value);
    }
    Ok(res)
}

/// Serves every GET route to HEAD as well (RFC 9110 §9.3.2), without registering HEAD per route:
/// the request is routed as a GET, and the HTTP layer (actix-http, which remembers the method
/// read from the wire) sends the GET response's status and headers, `Content-Length` included,
/// without its body. A 405's `Allow` that lists GET lists HEAD too.
pub async fn head_as_get(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let is_head = req.method() == Method::HEAD;
    if is_head {
        req.head_mut().method = Method::GET;
    }
    let mut res = next.call(req).await?;
    if res.status() == StatusCode::METHOD_NOT_ALLOWED {
        let allow = res
            .headers()
            .get(header::ALLOW)
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.split(',').any(|m| m.trim() == "GET"))
            .filter(|v| !v.split(',').any(|m| m.trim() == "HEAD"))
            .map(|v| format!("{v}, HEAD"));
        if let Some(value) = allow.and_then(|v| HeaderValue::from_str(&v).ok()) {
            res.headers_mut().insert(header::ALLOW, value);
        }
    }
    Ok(res)
}

/// Rewrites error responses that are not problem+json already.
pub fn normalize_error<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(PROBLEM_JSON));
    if is_problem {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let detail = if status.is_server_error() {
        if let Some(err) = res.response().error() {
            log::error!("{} {}: {err}", res.request().method(), res.request().path());
        }
        "an unexpected error occurred".to_owned()
    } else {
        match status.as_u16() {
            404 => format!("no resource at {}", res.request().path()),
            405 => format!(
                "{} is not allowed on {}",
                res.request().method(),
                res.request().path()
            ),
            _ => res
                .response()
                .error()
                .map(|e| e.to_string())
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned()),
        }
    };
    let (req, old) = res.into_parts();
    let mut new = problem_response(status, &detail);
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new.headers_mut().insert(name.clone(), value.clone());
        }
    }
    let res: ServiceResponse<BoxBody> = ServiceResponse::new(req, new);
    Ok(ErrorHandlerResponse::Response(res.map_into_right_body()))
}
