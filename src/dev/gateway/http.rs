//! HTTP responses the gateway answers with, including the management API's
//! errors in the shape restJson1 clients map to typed errors.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde_json::json;

pub(crate) type Body = Full<Bytes>;

pub(crate) fn response(status: u16, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
}

pub(crate) fn json_response(status: u16, body: &serde_json::Value) -> Response<Body> {
    let mut response = response(status, body.to_string());
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// `{"message", "__type"}` plus `x-amzn-errortype`: the SDKs read either.
pub(crate) fn aws_error(status: u16, error_type: &'static str, message: &str) -> Response<Body> {
    let mut response = json_response(status, &json!({"message": message, "__type": error_type}));
    response.headers_mut().insert(
        HeaderName::from_static("x-amzn-errortype"),
        HeaderValue::from_static(error_type),
    );
    response
}

pub(crate) fn forbidden() -> Response<Body> {
    aws_error(403, "ForbiddenException", "Forbidden")
}
