//! The management API at `/{stage}/@connections/{id}`: PostToConnection,
//! GetConnection, DeleteConnection, with AWS's limits and error types.

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, Response};
use serde_json::json;
use tokio::sync::mpsc::error::TrySendError;
use tokio_tungstenite::tungstenite::Message;

use super::event::GatewayEvent;
use super::http::{aws_error, forbidden, json_response, response, Body};
use super::payload::iso8601;
use super::registry::{Command, ConnectionHandle};
use super::shared::Shared;

/// PostToConnection's largest `Data`.
pub const MAX_POST_SIZE: usize = 131_072;

fn gone(id: &str) -> Response<Body> {
    aws_error(
        410,
        "GoneException",
        &format!("connection `{id}` is gone: unknown, closed, or its $connect has not finished"),
    )
}

pub(crate) async fn handle(shared: &Shared, req: Request<Incoming>, id: &str) -> Response<Body> {
    let method = req.method().clone();
    let mut answer = match method {
        Method::POST => post(shared, req, id).await,
        Method::GET => match shared.registry.get(id) {
            Some(handle) => get(&handle),
            None => gone(id),
        },
        Method::DELETE => match shared.registry.remove(id) {
            Some(handle) => {
                // Closed from the caller's view at once; the socket task closes it.
                let _ = handle.commands.send(Command::Close).await;
                response(204, "")
            }
            None => gone(id),
        },
        _ => forbidden(),
    };
    if let Ok(request_id) = HeaderValue::from_str(&shared.ids.next_id()) {
        answer
            .headers_mut()
            .insert(HeaderName::from_static("x-amzn-requestid"), request_id);
    }
    shared.emit(GatewayEvent::Management {
        method: method.to_string(),
        connection_id: id.to_string(),
        status: answer.status().as_u16(),
    });
    answer
}

fn get(handle: &ConnectionHandle) -> Response<Body> {
    let c = &handle.connection;
    json_response(
        200,
        &json!({
            "connectedAt": iso8601(c.connected_at),
            "identity": {"sourceIp": c.source_ip, "userAgent": c.user_agent},
            "lastActiveAt": iso8601(c.last_active_at()),
        }),
    )
}

async fn post(shared: &Shared, req: Request<Incoming>, id: &str) -> Response<Body> {
    let too_large = || {
        aws_error(
            413,
            "PayloadTooLargeException",
            &format!("the data is over the limit of {MAX_POST_SIZE} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_POST_SIZE as u64) {
        return too_large();
    }
    let data: Bytes = match Limited::new(req.into_body(), MAX_POST_SIZE).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return too_large(),
        Err(e) => {
            return aws_error(
                400,
                "BadRequestException",
                &format!("cannot read the body: {e}"),
            )
        }
    };
    let Some(handle) = shared.registry.get(id) else {
        return gone(id);
    };
    let message = match std::str::from_utf8(&data) {
        Ok(text) => Message::text(text.to_string()),
        Err(_) => Message::binary(data),
    };
    match handle.commands.try_send(Command::Send(message)) {
        Ok(()) => {
            handle.connection.touch();
            response(200, "")
        }
        Err(TrySendError::Full(_)) => aws_error(
            429,
            "LimitExceededException",
            "too many frames are waiting for this connection",
        ),
        Err(TrySendError::Closed(_)) => gone(id),
    }
}
