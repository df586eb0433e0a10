//! `$default`: routes a client's JSON message by its `action` (`ping`, `subscribe`,
//! `unsubscribe`, `presence`, `resume`) after the admission check (stored, token not
//! expired, within the rate limit). Client mistakes are answered with an `error`
//! message to the caller, never with a failed invocation. `broadcast` and `refresh`
//! have routes of their own and never arrive here.
//!
//! The same function replays missed messages for `$connect` when a client connects
//! with `?since=`: `$connect` invokes it asynchronously with
//! `{"resume": {"connectionId", "since"}}` ([`resume_event`]).

use std::collections::BTreeMap;

use aws_lambda_events::event::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use std::time::{Duration, Instant};

use realtime_core::admission::{self, Admission};
use realtime_core::client_broadcast::Refusal;
use realtime_core::envelope::{
    Envelope, OnlineUser, Payload, Pong, Presence, Resumed, MAX_FRAME_BYTES,
};
use realtime_core::history::streams_of;
use realtime_core::response::response;
use realtime_core::store::{
    valid_channel, Connection, SubscribeOutcome, MAX_CHANNELS_PER_CONNECTION,
};
use realtime_core::{Broadcaster, ConnectionSender, Deps, ManagementApi, PostError, Since};
use serde_json::Value;

/// How long a replay for `$connect` waits for the connection to open: API Gateway
/// answers 410 to posts while `$connect` has not returned.
pub const OPEN_WAIT: Duration = Duration::from_secs(5);

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
    let caller =
        match admission::admit(broadcaster.store(), &connection_id, deps.rate.as_ref()).await {
            Ok(Admission::Admitted(c)) => c,
            Ok(Admission::Refused { refusal, close }) => {
                tracing::info!(%connection_id, code = refusal.code, close, "message refused");
                admission::answer(&broadcaster, &connection_id, &refusal, close).await;
                return response(200, r#"{"message":"error sent"}"#);
            }
            Err(e) => {
                let refusal = internal(e);
                admission::answer(&broadcaster, &connection_id, &refusal, false).await;
                return response(200, r#"{"message":"error sent"}"#);
            }
        };
    let ctx = Caller {
        connection_id: &connection_id,
        broadcaster: &broadcaster,
        conn: &caller,
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
    conn: &'a Connection,
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
                .unsubscribe(&ctx.conn.tenant_id, ctx.connection_id, channel)
                .await
                .map_err(internal)?;
            Ok(format!(r#"{{"unsubscribed":{}}}"#, Value::from(channel)))
        }
        "presence" => {
            let mut users: BTreeMap<String, OnlineUser> = BTreeMap::new();
            for c in store
                .by_tenant(&ctx.conn.tenant_id)
                .await
                .map_err(internal)?
            {
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
        "resume" => {
            let since = value
                .get("since")
                .ok_or_else(|| refuse("invalid_request", "`since` is required"))
                .and_then(|v| Since::from_json(v).map_err(|e| refuse("invalid_request", e)))?;
            let resumed = replay(ctx.broadcaster, ctx.conn, since, None).await?;
            serde_json::to_string(&serde_json::json!({"resumed": resumed.count})).map_err(internal)
        }
        other => Err(refuse(
            "unknown_action",
            format!("unknown action `{other}`"),
        )),
    }
}

/// Posts the kept messages of the connection's streams after `since`, in id order,
/// then `resumed {count, lastId}`. With `open_wait`, a 410 before the first message
/// arrives is a connection still opening: retried until the deadline.
async fn replay(
    broadcaster: &Broadcaster<ManagementApi>,
    conn: &Connection,
    since: Since,
    open_wait: Option<Duration>,
) -> Result<Resumed, Refusal> {
    let history = broadcaster
        .history()
        .ok_or_else(|| refuse("history_unavailable", "this stage keeps no message history"))?;
    let kept = history
        .since(&streams_of(conn), since)
        .await
        .map_err(internal)?;
    let resumed = Resumed {
        count: kept.len(),
        last_id: kept.last().map(|k| k.id),
    };
    let done = Envelope::new(Payload::Resumed(resumed.clone()))
        .and_then(|e| e.to_bytes())
        .map_err(internal)?;
    let frames = kept
        .iter()
        .map(|k| k.frame.as_bytes())
        .chain(std::iter::once(done.as_slice()));
    let mut deadline = open_wait.map(|w| Instant::now() + w);
    for frame in frames {
        loop {
            match broadcaster.sender().post(&conn.connection_id, frame).await {
                Ok(()) => break,
                Err(PostError::Gone) if deadline.is_some_and(|d| Instant::now() < d) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => {
                    tracing::warn!(connection_id = %conn.connection_id, error = %e, "replay stopped");
                    return Err(refuse("replay_failed", e.to_string()));
                }
            }
        }
        // Open now: later 410s mean the client left.
        deadline = None;
    }
    tracing::info!(connection_id = %conn.connection_id, count = resumed.count, "replayed");
    Ok(resumed)
}

/// `{"resume": {"connectionId", "since"}}` from `$connect`.
pub async fn resume_event(event: &Value, deps: &Deps) -> Result<Value, String> {
    let connection_id = event
        .pointer("/resume/connectionId")
        .and_then(Value::as_str)
        .ok_or("`resume.connectionId` is required")?;
    let since = event
        .pointer("/resume/since")
        .ok_or_else(|| "`resume.since` is required".to_string())
        .and_then(Since::from_json)?;
    let broadcaster = deps.broadcaster().map_err(|e| e.to_string())?;
    let conn = broadcaster
        .store()
        .get(connection_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("connection `{connection_id}` is not stored"))?;
    let resumed = replay(&broadcaster, &conn, since, Some(OPEN_WAIT))
        .await
        .map_err(|r| format!("{}: {}", r.code, r.message))?;
    Ok(serde_json::json!({"resumed": resumed.count, "lastId": resumed.last_id}))
}

fn unknown_connection() -> Refusal {
    refuse(
        "unknown_connection",
        "this connection is not registered; reconnect",
    )
}

/// The `channel` of a subscribe or unsubscribe.
fn channel_of(value: &Value) -> Result<&str, Refusal> {
    let channel = value
        .get("channel")
        .and_then(Value::as_str)
        .ok_or_else(|| refuse("invalid_request", "`channel` is required"))?;
    if !valid_channel(channel) {
        return Err(refuse(
            "invalid_channel",
            "channel names are 1-128 characters of letters, digits and -_.:/",
        ));
    }
    Ok(channel)
}
