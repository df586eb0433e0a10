//! The Lambda proxy events API Gateway sends: CONNECT (with the handshake's
//! headers and query string), MESSAGE (body only) and DISCONNECT (close code and
//! reason, a fixed small header set).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::registry::Connection;

/// What every event's `requestContext` needs beyond the connection itself.
pub(crate) struct Api<'a> {
    pub(crate) api_id: &'a str,
    pub(crate) stage: &'a str,
    pub(crate) domain_name: &'a str,
}

/// `20/Jan/2024:11:55:00 +0000`.
pub(crate) fn request_time(at: DateTime<Utc>) -> String {
    at.format("%d/%b/%Y:%H:%M:%S +0000").to_string()
}

/// ISO-8601 as the management API answers it: `2024-01-20T11:55:00.000Z`.
pub(crate) fn iso8601(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn request_context(
    api: &Api<'_>,
    connection: &Connection,
    route_key: &str,
    event_type: &str,
    request_id: &str,
    now: DateTime<Utc>,
) -> Map<String, Value> {
    let mut ctx = Map::new();
    ctx.insert("routeKey".into(), json!(route_key));
    ctx.insert("eventType".into(), json!(event_type));
    ctx.insert("extendedRequestId".into(), json!(request_id));
    ctx.insert("requestTime".into(), json!(request_time(now)));
    ctx.insert("messageDirection".into(), json!("IN"));
    ctx.insert("stage".into(), json!(api.stage));
    ctx.insert(
        "connectedAt".into(),
        json!(connection.connected_at.timestamp_millis()),
    );
    ctx.insert("requestTimeEpoch".into(), json!(now.timestamp_millis()));
    ctx.insert(
        "identity".into(),
        json!({"sourceIp": connection.source_ip, "userAgent": connection.user_agent}),
    );
    ctx.insert("requestId".into(), json!(request_id));
    ctx.insert("domainName".into(), json!(api.domain_name));
    ctx.insert("connectionId".into(), json!(connection.id));
    ctx.insert("apiId".into(), json!(api.api_id));
    ctx
}

/// The handshake request as the CONNECT event carries it: header names as
/// clients spell them, values in arrival order; query parameters decoded.
#[derive(Debug, Default, Clone)]
pub(crate) struct Handshake {
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) query: Vec<(String, String)>,
}

/// `{single: last value wins, multi: every value}` maps, as API Gateway builds them.
fn single_and_multi(pairs: &[(String, String)]) -> (Value, Value) {
    let mut single = Map::new();
    let mut multi: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, value) in pairs {
        single.insert(name.clone(), json!(value));
        multi.entry(name).or_default().push(value);
    }
    let multi: Map<String, Value> = multi
        .into_iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    (Value::Object(single), Value::Object(multi))
}

pub(crate) fn connect_event(
    api: &Api<'_>,
    connection: &Connection,
    request_id: &str,
    now: DateTime<Utc>,
    handshake: &Handshake,
) -> Value {
    let ctx = request_context(api, connection, "$connect", "CONNECT", request_id, now);
    let (headers, multi_headers) = single_and_multi(&handshake.headers);
    let mut event = Map::new();
    event.insert("headers".into(), headers);
    event.insert("multiValueHeaders".into(), multi_headers);
    if !handshake.query.is_empty() {
        let (query, multi_query) = single_and_multi(&handshake.query);
        event.insert("queryStringParameters".into(), query);
        event.insert("multiValueQueryStringParameters".into(), multi_query);
    }
    event.insert("requestContext".into(), Value::Object(ctx));
    event.insert("isBase64Encoded".into(), json!(false));
    Value::Object(event)
}

pub(crate) struct MessageIds<'a> {
    pub(crate) request_id: &'a str,
    pub(crate) message_id: &'a str,
}

pub(crate) fn message_event(
    api: &Api<'_>,
    connection: &Connection,
    route_key: &str,
    ids: &MessageIds<'_>,
    now: DateTime<Utc>,
    body: &str,
) -> Value {
    let mut ctx = request_context(api, connection, route_key, "MESSAGE", ids.request_id, now);
    ctx.insert("messageId".into(), json!(ids.message_id));
    json!({
        "requestContext": Value::Object(ctx),
        "body": body,
        "isBase64Encoded": false,
    })
}

pub(crate) fn disconnect_event(
    api: &Api<'_>,
    connection: &Connection,
    request_id: &str,
    now: DateTime<Utc>,
    code: u16,
    reason: &str,
) -> Value {
    let mut ctx = request_context(
        api,
        connection,
        "$disconnect",
        "DISCONNECT",
        request_id,
        now,
    );
    ctx.insert("disconnectStatusCode".into(), json!(code));
    ctx.insert("disconnectReason".into(), json!(reason));
    let headers = json!({
        "Host": api.domain_name,
        "x-api-key": "",
        "X-Forwarded-For": "",
        "x-restapi": "",
    });
    let multi = json!({
        "Host": [api.domain_name],
        "x-api-key": [""],
        "X-Forwarded-For": [""],
        "x-restapi": [""],
    });
    json!({
        "headers": headers,
        "multiValueHeaders": multi,
        "requestContext": Value::Object(ctx),
        "isBase64Encoded": false,
    })
}

/// A header name as clients and API Gateway spell it (`Sec-WebSocket-Key`,
/// `User-Agent`): hyper hands names over lowercased.
pub(crate) fn header_case(name: &str) -> String {
    name.split('-')
        .map(|part| match part {
            "websocket" => "WebSocket".to_string(),
            "ws" => "WS".to_string(),
            _ => {
                let mut chars = part.chars();
                match chars.next() {
                    Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                    None => String::new(),
                }
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}
