//! `$default`: routes a client's JSON message by its `action`. Client mistakes are
//! answered with an `error` message to the caller, never with a failed invocation.

use std::collections::BTreeMap;

use aws_lambda_events::event::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use realtime_core::client_broadcast::{self, Refusal};
use realtime_core::envelope::{Envelope, OnlineUser, Payload, Pong, Presence, MAX_FRAME_BYTES};
use realtime_core::response::response;
use realtime_core::store::{SubscribeOutcome, MAX_CHANNELS_PER_CONNECTION};
use realtime_core::{Broadcaster, Deps, ManagementApi};
use serde_json::Value;

const MAX_CHANNEL_LEN: usize = 128;

pub async fn handler(req: ApiGatewayWebsocketProxyRequest, deps: &Deps) -> ApiGatewayProxyResponse {
    let Some(connection_id) = req
        .request_context
        .connection_id
        .clone()
        .filter(|id| !id.is_empty())
    else {
        tracing::error!("message event without a connectionId");
        return response(400, r#"{"message":"missing connectionId"}"#);
    };
    let broadcaster = match deps.broadcaster_for(&req.request_context) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "cannot answer the caller");
            return response(500, r#"{"message":"internal error"}"#);
        }
    };
    let ctx = Caller {
        connection_id: &connection_id,
        broadcaster: &broadcaster,
    };
    match route(&req, &ctx).await {
        Ok(body) => response(200, body),
        Err(refusal) => {
            tracing::info!(%connection_id, code = refusal.code, message = %refusal.message, "message refused");
            ctx.reply(&refusal.envelope()).await;
            response(200, r#"{"message":"error sent"}"#)
        }
    }
}

struct Caller<'a> {
    connection_id: &'a str,
    broadcaster: &'a Broadcaster<ManagementApi>,
}

impl Caller<'_> {
    /// Sends to the caller; a caller that left meanwhile is deleted by the broadcaster.
    async fn reply(&self, envelope: &Envelope) {
        match envelope.to_bytes() {
            Ok(frame) => {
                let delivery = self
                    .broadcaster
                    .send_to(&[self.connection_id.to_string()], &frame)
                    .await;
                if delivery.report.failed > 0 {
                    tracing::warn!(connection_id = %self.connection_id, "reply not delivered");
                }
            }
            Err(e) => tracing::error!(error = %e, "reply not encodable"),
        }
    }
}

fn refuse(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

fn internal(e: impl std::fmt::Display) -> Refusal {
    tracing::error!(error = %e, "message handling failed");
    refuse("internal_error", "the request could not be completed")
}

async fn route(req: &ApiGatewayWebsocketProxyRequest, ctx: &Caller<'_>) -> Result<String, Refusal> {
    if req.is_base64_encoded {
        return Err(refuse(
            "unsupported_frame",
            "binary frames are not supported; send JSON text",
        ));
    }
    let body = req.body.as_deref().unwrap_or_default();
    if body.len() > MAX_FRAME_BYTES {
        return Err(refuse(
            "payload_too_large",
            format!(
                "message is {} bytes, over the {MAX_FRAME_BYTES}-byte limit",
                body.len()
            ),
        ));
    }
    let value: Value = serde_json::from_str(body)
        .map_err(|e| refuse("invalid_json", format!("message is not valid JSON: {e}")))?;
    let Some(action) = value.get("action").and_then(Value::as_str) else {
        return Err(refuse("invalid_request", "message needs a string `action`"));
    };
    let store = ctx.broadcaster.store();
    match action {
        "ping" => {
            ctx.reply(&Envelope::new(Payload::Pong(Pong {})).map_err(internal)?)
                .await;
            Ok(r#"{"message":"pong"}"#.into())
        }
        "subscribe" => {
            let channel = channel_of(&value)?;
            match store.subscribe(ctx.connection_id, channel).await.map_err(internal)? {
                SubscribeOutcome::Subscribed | SubscribeOutcome::AlreadySubscribed => {
                    Ok(format!(r#"{{"subscribed":{}}}"#, Value::from(channel)))
                }
                SubscribeOutcome::LimitReached => Err(refuse(
                    "too_many_channels",
                    format!("a connection may subscribe to at most {MAX_CHANNELS_PER_CONNECTION} channels"),
                )),
                SubscribeOutcome::UnknownConnection => Err(unknown_connection()),
            }
        }
        "unsubscribe" => {
            let channel = channel_of(&value)?;
            store
                .unsubscribe(ctx.connection_id, channel)
                .await
                .map_err(internal)?;
            Ok(format!(r#"{{"unsubscribed":{}}}"#, Value::from(channel)))
        }
        "presence" => {
            let caller = store
                .get(ctx.connection_id)
                .await
                .map_err(internal)?
                .ok_or_else(unknown_connection)?;
            let mut users: BTreeMap<String, OnlineUser> = BTreeMap::new();
            for c in store.by_tenant(&caller.tenant_id).await.map_err(internal)? {
                users
                    .entry(c.user_id.clone())
                    .or_insert_with(|| OnlineUser {
                        user_id: c.user_id.clone(),
                        role: c.role.clone(),
                        connections: 0,
                    })
                    .connections += 1;
            }
            let online = users.into_values().collect();
            let envelope =
                Envelope::new(Payload::Presence(Presence::Online { online })).map_err(internal)?;
            ctx.reply(&envelope).await;
            Ok(r#"{"message":"presence sent"}"#.into())
        }
        "broadcast" => {
            let caller = store
                .get(ctx.connection_id)
                .await
                .map_err(internal)?
                .ok_or_else(unknown_connection)?;
            let report = client_broadcast::run(&caller, &value, ctx.broadcaster).await?;
            serde_json::to_string(&report).map_err(internal)
        }
        other => Err(refuse(
            "unknown_action",
            format!("unknown action `{other}`"),
        )),
    }
}

fn unknown_connection() -> Refusal {
    refuse(
        "unknown_connection",
        "this connection is not registered; reconnect",
    )
}

/// A channel name: 1–128 characters of letters, digits and `-_.:/`. `#` is excluded
/// because it separates the parts of subscription item keys.
fn channel_of(value: &Value) -> Result<&str, Refusal> {
    let channel = value
        .get("channel")
        .and_then(Value::as_str)
        .ok_or_else(|| refuse("invalid_request", "`channel` is required"))?;
    let valid = !channel.is_empty()
        && channel.len() <= MAX_CHANNEL_LEN
        && channel
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/'));
    if !valid {
        return Err(refuse(
            "invalid_channel",
            "channel names are 1-128 characters of letters, digits and -_.:/",
        ));
    }
    Ok(channel)
}
