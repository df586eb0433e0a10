//! The WebSocket handshake at `/{stage}`: the upgrade waits for the `$connect`
//! integration; a 2xx answer completes it (passing on only
//! `Sec-WebSocket-Protocol`), anything else refuses it with that status.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::Utc;
use hyper::body::Incoming;
use hyper::header::{
    HeaderName, HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE, USER_AGENT,
};
use hyper::{Method, Request, Response};
use percent_encoding::percent_decode_str;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::event::{response_body, GatewayEvent, IntegrationError, Summary};
use super::http::{json_response, response, Body};
use super::payload::{connect_event, header_case, Handshake};
use super::registry::{Connection, ConnectionHandle, COMMAND_QUEUE};
use super::route::CONNECT;
use super::shared::Shared;
use super::socket;
use crate::dev::invoke::Invocation;

fn header_has_token(req: &Request<Incoming>, name: HeaderName, token: &str) -> bool {
    req.headers().get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// GET `/{stage}`: a WebSocket upgrade, or 426 for plain HTTP.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Body> {
    let is_upgrade = req.method() == Method::GET
        && header_has_token(&req, UPGRADE, "websocket")
        && header_has_token(&req, CONNECTION, "upgrade");
    if !is_upgrade {
        return response(426, "Upgrade Required");
    }
    if req
        .headers()
        .get(SEC_WEBSOCKET_VERSION)
        .map(|v| v.as_bytes())
        != Some(b"13")
    {
        let mut refused = response(426, "Upgrade Required");
        refused
            .headers_mut()
            .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        return refused;
    }
    let Some(key) = req.headers().get(SEC_WEBSOCKET_KEY) else {
        return response(400, "Missing Sec-WebSocket-Key");
    };
    let accept = derive_accept_key(key.as_bytes());
    upgrade(shared, peer, req, accept).await
}

/// What the `$connect` answer decides.
enum Decision {
    Accept {
        status: u16,
        protocol: Option<HeaderValue>,
    },
    Refuse {
        status: u16,
        body: Vec<u8>,
    },
    /// The function failed or answered no proxy response: 502.
    Fail,
}

fn internal_error() -> Decision {
    Decision::Fail
}

/// Read the API Gateway proxy response `{statusCode, body?, headers?}`; an
/// answer without a usable `statusCode` (including `null`) is a 502, as for a
/// malformed Lambda proxy response.
fn decide(result: &Result<Invocation, IntegrationError>) -> Decision {
    let Some(body) = response_body(result) else {
        return internal_error();
    };
    let Ok(Value::Object(answer)) = serde_json::from_slice::<Value>(body) else {
        return internal_error();
    };
    let status = match answer.get("statusCode") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    let Some(status) = status
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| (100..=599).contains(s))
    else {
        return internal_error();
    };
    if (200..300).contains(&status) {
        let protocol = answer
            .get("headers")
            .and_then(Value::as_object)
            .and_then(|h| {
                h.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("sec-websocket-protocol"))
            })
            .and_then(|(_, v)| v.as_str())
            .and_then(|v| HeaderValue::from_str(v).ok());
        return Decision::Accept { status, protocol };
    }
    let text = answer.get("body").and_then(Value::as_str).unwrap_or("");
    let base64 = answer.get("isBase64Encoded").and_then(Value::as_bool) == Some(true);
    let body = if base64 {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap_or_else(|_| text.as_bytes().to_vec())
    } else {
        text.as_bytes().to_vec()
    };
    Decision::Refuse { status, body }
}

fn handshake_facts(shared: &Shared, peer: SocketAddr, req: &Request<Incoming>) -> Handshake {
    let mut headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter(|(name, _)| *name != CONNECTION && *name != UPGRADE)
        .map(|(name, value)| {
            (
                header_case(name.as_str()),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let has = |headers: &[(String, String)], name: &str| {
        headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    if !has(&headers, "X-Amzn-Trace-Id") {
        let trace = shared.ids.trace_id(Utc::now().timestamp());
        headers.push(("X-Amzn-Trace-Id".into(), trace));
    }
    headers.push(("X-Forwarded-For".into(), peer.ip().to_string()));
    headers.push(("X-Forwarded-Port".into(), shared.port.to_string()));
    headers.push(("X-Forwarded-Proto".into(), "http".into()));
    let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    let query = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(pair), String::new()),
        })
        .collect();
    Handshake { headers, query }
}

async fn upgrade(
    shared: Arc<Shared>,
    peer: SocketAddr,
    mut req: Request<Incoming>,
    accept: String,
) -> Response<Body> {
    let now = Utc::now();
    let user_agent = req
        .headers()
        .get(USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let connection = Arc::new(Connection::new(
        shared.ids.next_id(),
        now,
        peer.ip().to_string(),
        user_agent,
    ));
    let mut protocol = None;
    let (function, status, duration) = match shared.api.routes.get(CONNECT) {
        None => (None, 101, Duration::ZERO),
        Some(function) => {
            let request_id = shared.ids.next_id();
            let handshake = handshake_facts(&shared, peer, &req);
            let event = connect_event(&shared.api_ref(), &connection, &request_id, now, &handshake);
            let started = Instant::now();
            let result = shared.integrate(function, &event).await;
            let duration = started.elapsed();
            match decide(&result) {
                Decision::Accept {
                    status,
                    protocol: p,
                } => {
                    protocol = p;
                    (Some(function.clone()), status, duration)
                }
                refusal => {
                    let (status, refused) = match refusal {
                        Decision::Refuse { status, body } => (status, response(status, body)),
                        _ => (
                            502,
                            json_response(502, &json!({"message": "Internal server error"})),
                        ),
                    };
                    let summary = match Summary::of(&result) {
                        Summary::Ok if status == 502 => Summary::Failed {
                            error_type: "Gateway.MalformedProxyResponse".into(),
                            error_message: "the $connect answer has no valid statusCode".into(),
                        },
                        summary => summary,
                    };
                    shared.emit(GatewayEvent::Refused {
                        connection_id: connection.id.clone(),
                        function: function.clone(),
                        status,
                        summary,
                        duration,
                    });
                    return refused;
                }
            }
        }
    };
    // Connected from here on: `@connections` reaches it (frames posted before the
    // upgrade finishes wait in the queue).
    let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE);
    shared.registry.insert(ConnectionHandle {
        connection: connection.clone(),
        commands: commands_tx.clone(),
    });
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(socket::run(
        shared.clone(),
        connection.clone(),
        on_upgrade,
        commands_tx,
        commands_rx,
    ));
    shared.emit(GatewayEvent::Connected {
        connection_id: connection.id.clone(),
        function,
        status,
        duration,
    });
    let mut switching = response(101, "");
    let headers = switching.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    }
    if let Some(protocol) = protocol {
        headers.insert(SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    switching
}
