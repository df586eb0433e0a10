//! `$connect`: verify the caller's token (and, with `VERIFY_USER_ACTIVE`, that the user
//! is active in PostgreSQL), keep each user to `MAX_CONNECTIONS_PER_USER` connections
//! (the oldest is closed), store the connection until its token expires (at most the
//! gateway's two hours), and ask for the replay of `?since=`.
//!
//! The `refresh` route comes here too, since only this function may read the JWT
//! key: `{"action":"refresh","token":...}` with a valid token of the same user and
//! tenant extends the connection to the new token's `exp`.

use aws_lambda_events::event::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use chrono::{DateTime, SecondsFormat, Utc};
use db_core::Database;
use realtime_core::envelope::{Envelope, Payload, Refreshed};
use realtime_core::jwt::{token_from_request, Claims, JwtVerifier};
use realtime_core::management::{ConnectionSender, ManagementApi, ManagementClients, PostError};
use realtime_core::response::response;
use realtime_core::store::{
    valid_channel, Connection, ConnectionStore, MAX_CHANNELS_PER_CONNECTION,
};
use realtime_core::{Since, TokenError};
use serde_json::{json, Value};

/// Whether the token's user may connect (`users` table of the migrations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStatus {
    Active,
    Inactive,
    /// No such user in the token's tenant.
    Unknown,
}

/// The `users` lookup of `VERIFY_USER_ACTIVE`.
pub struct UserDirectory {
    pub db: Database,
}

impl UserDirectory {
    pub async fn status(&self, user_id: &str, tenant_id: &str) -> Result<UserStatus, String> {
        let client = self.db.client().await.map_err(|e| e.to_string())?;
        let row = client
            .query_opt(
                "SELECT active FROM users WHERE id = $1 AND tenant_id::text = $2",
                &[&user_id, &tenant_id],
            )
            .await
            .map_err(|e| db_core::error_chain(&e))?;
        Ok(match row.map(|r| r.get::<_, bool>(0)) {
            Some(true) => UserStatus::Active,
            Some(false) => UserStatus::Inactive,
            None => UserStatus::Unknown,
        })
    }
}

/// Invokes the function that replays missed messages, asynchronously: `$connect`
/// cannot post to a connection that is still opening.
pub struct Resumer {
    pub client: aws_sdk_lambda::Client,
    pub function: String,
}

impl Resumer {
    pub async fn ask(&self, connection_id: &str, since: &str) -> Result<(), String> {
        let payload = json!({"resume": {"connectionId": connection_id, "since": since}});
        self.client
            .invoke()
            .function_name(&self.function)
            .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
            .payload(aws_sdk_lambda::primitives::Blob::new(payload.to_string()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_sdk_lambda::error::DisplayErrorContext(&e).to_string())
    }
}

pub struct ConnectDeps {
    pub store: ConnectionStore,
    pub verifier: JwtVerifier,
    /// Seconds a connection may last at most: the gateway's maximum duration.
    pub ttl_seconds: i64,
    pub clients: ManagementClients,
    pub max_connections_per_user: Option<usize>,
    pub users: Option<UserDirectory>,
    pub resumer: Option<Resumer>,
}

pub async fn handler(
    req: ApiGatewayWebsocketProxyRequest,
    deps: &ConnectDeps,
) -> ApiGatewayProxyResponse {
    let Some(connection_id) = req
        .request_context
        .connection_id
        .clone()
        .filter(|id| !id.is_empty())
    else {
        tracing::error!("event without a connectionId");
        return response(400, r#"{"message":"missing connectionId"}"#);
    };
    if req.request_context.route_key.as_deref() == Some("refresh") {
        return refresh(&req, &connection_id, deps).await;
    }
    connect(&req, &connection_id, deps).await
}

/// The connection's end: the token's `exp`, and never later than `connected + ttl`.
pub fn expiry(token_exp: i64, connected: i64, ttl_seconds: i64) -> i64 {
    token_exp.min(connected.saturating_add(ttl_seconds))
}

async fn check_user(deps: &ConnectDeps, claims: &Claims) -> Result<(), (i64, &'static str)> {
    let Some(users) = &deps.users else {
        return Ok(());
    };
    match users.status(&claims.sub, &claims.tenant_id).await {
        Ok(UserStatus::Active) => Ok(()),
        Ok(UserStatus::Inactive) => Err((403, r#"{"message":"Forbidden: user is inactive"}"#)),
        Ok(UserStatus::Unknown) => Err((403, r#"{"message":"Forbidden: unknown user"}"#)),
        Err(e) => {
            tracing::error!(error = %e, "user lookup failed");
            Err((503, r#"{"message":"user check unavailable"}"#))
        }
    }
}

async fn connect(
    req: &ApiGatewayWebsocketProxyRequest,
    connection_id: &str,
    deps: &ConnectDeps,
) -> ApiGatewayProxyResponse {
    let claims = match token_from_request(req)
        .ok_or(TokenError::Missing)
        .and_then(|t| deps.verifier.verify(&t))
    {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(%connection_id, reason = ?e, "connection refused");
            return response(401, e.response_body());
        }
    };
    if let Err((status, body)) = check_user(deps, &claims).await {
        tracing::info!(%connection_id, user_id = %claims.sub, status, "connection refused");
        return response(status, body);
    }
    let since = req
        .query_string_parameters
        .first("since")
        .map(str::to_string);
    if let Some(s) = &since {
        if let Err(e) = Since::parse(s) {
            return response(400, json!({ "message": e }).to_string());
        }
    }
    // `?channels=a,b`: subscribe at once, so a reconnect with `since` also replays
    // those channels' messages.
    let channels: Vec<String> = req
        .query_string_parameters
        .first("channels")
        .map(|c| {
            c.split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if let Some(bad) = channels.iter().find(|c| !valid_channel(c)) {
        return response(
            400,
            json!({ "message": format!("invalid channel `{bad}`: 1-128 characters of letters, digits and -_.:/") })
                .to_string(),
        );
    }
    if channels.len() > MAX_CHANNELS_PER_CONNECTION {
        return response(
            400,
            json!({ "message": format!("at most {MAX_CHANNELS_PER_CONNECTION} channels") })
                .to_string(),
        );
    }
    if let Some(max) = deps.max_connections_per_user {
        if let Err(e) = make_room(req, deps, &claims.sub, max).await {
            tracing::error!(%connection_id, error = %e, "closing the user's oldest connection failed");
            return response(500, r#"{"message":"internal error"}"#);
        }
    }
    let now = Utc::now();
    let user_agent = req
        .headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.request_context.identity.user_agent.clone());
    let connection = Connection {
        connection_id: connection_id.to_string(),
        user_id: claims.sub,
        tenant_id: claims.tenant_id,
        role: claims.role,
        connected_at: now.to_rfc3339_opts(SecondsFormat::Secs, true),
        expires_at: expiry(claims.exp, now.timestamp(), deps.ttl_seconds),
        source_ip: req.request_context.identity.source_ip.clone(),
        user_agent,
        channels: Vec::new(),
        token_exp: Some(claims.exp),
    };
    if let Err(e) = deps.store.put(&connection).await {
        tracing::error!(%connection_id, error = %e, "storing the connection failed");
        return response(500, r#"{"message":"internal error"}"#);
    }
    for channel in &channels {
        if let Err(e) = deps.store.subscribe(connection_id, channel).await {
            tracing::error!(%connection_id, error = %e, "subscribing at connect failed");
            return response(500, r#"{"message":"internal error"}"#);
        }
    }
    tracing::info!(%connection_id, user_id = %connection.user_id, tenant_id = %connection.tenant_id, expires_at = connection.expires_at, channels = channels.len(), "connected");
    if let (Some(since), Some(resumer)) = (since, &deps.resumer) {
        // Best effort: the client can still send `resume` itself.
        if let Err(e) = resumer.ask(connection_id, &since).await {
            tracing::warn!(%connection_id, error = %e, "asking for the replay failed");
        }
    }
    response(200, r#"{"message":"connected"}"#)
}

/// Closes the user's oldest connections so that a new one stays within `max`.
async fn make_room(
    req: &ApiGatewayWebsocketProxyRequest,
    deps: &ConnectDeps,
    user_id: &str,
    max: usize,
) -> Result<(), String> {
    let mut existing = deps
        .store
        .by_user(user_id)
        .await
        .map_err(|e| e.to_string())?;
    if existing.len() < max {
        return Ok(());
    }
    existing.sort_by(|a, b| {
        (a.connected_at.as_str(), a.connection_id.as_str())
            .cmp(&(b.connected_at.as_str(), b.connection_id.as_str()))
    });
    let api = deps
        .clients
        .for_request(&req.request_context)
        .map_err(|e| e.to_string())?;
    for old in existing.iter().take(existing.len() + 1 - max) {
        match api.close(&old.connection_id).await {
            Ok(()) | Err(PostError::Gone) => {}
            Err(e) => return Err(e.to_string()),
        }
        deps.store
            .remove(&old.connection_id)
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(connection_id = %old.connection_id, %user_id, max, "closed the user's oldest connection");
    }
    Ok(())
}

async fn refresh(
    req: &ApiGatewayWebsocketProxyRequest,
    connection_id: &str,
    deps: &ConnectDeps,
) -> ApiGatewayProxyResponse {
    let api = match deps.clients.for_request(&req.request_context) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "cannot answer the caller");
            return response(500, r#"{"message":"internal error"}"#);
        }
    };
    let envelope = match refreshed(req, connection_id, deps).await {
        Ok(expires_at) => {
            tracing::info!(%connection_id, expires_at, "refreshed");
            Envelope::new(Payload::Refreshed(Refreshed { expires_at }))
                .unwrap_or_else(|e| Envelope::error("internal_error", e.to_string()))
        }
        Err((code, message)) => {
            tracing::info!(%connection_id, code, %message, "refresh refused");
            Envelope::error(code, message)
        }
    };
    reply(&api, connection_id, &envelope).await;
    response(200, r#"{"message":"refresh answered"}"#)
}

async fn reply(api: &ManagementApi, connection_id: &str, envelope: &Envelope) {
    match envelope.to_bytes() {
        Ok(frame) => {
            if let Err(e) = api.post(connection_id, &frame).await {
                tracing::warn!(%connection_id, error = %e, "reply not delivered");
            }
        }
        Err(e) => tracing::error!(error = %e, "reply not encodable"),
    }
}

async fn refreshed(
    req: &ApiGatewayWebsocketProxyRequest,
    connection_id: &str,
    deps: &ConnectDeps,
) -> Result<i64, (&'static str, String)> {
    let body: Value = serde_json::from_str(req.body.as_deref().unwrap_or_default())
        .map_err(|e| ("invalid_json", format!("message is not valid JSON: {e}")))?;
    let token = body
        .get("token")
        .and_then(Value::as_str)
        .ok_or(("invalid_request", "`token` is required".to_string()))?;
    let claims = deps.verifier.verify(token).map_err(|e| match e {
        TokenError::Expired => ("token_expired", "the new token has expired".to_string()),
        other => ("invalid_token", other.to_string()),
    })?;
    let internal = |e: String| {
        tracing::error!(error = %e, "refresh failed");
        (
            "internal_error",
            "the refresh could not be completed".to_string(),
        )
    };
    let conn = deps
        .store
        .get(connection_id)
        .await
        .map_err(|e| internal(e.to_string()))?
        .ok_or((
            "unknown_connection",
            "this connection is not registered; reconnect".to_string(),
        ))?;
    if conn.user_id != claims.sub || conn.tenant_id != claims.tenant_id {
        return Err((
            "forbidden",
            "a refresh token must be of the connection's user and tenant".into(),
        ));
    }
    if let Err((_, body)) = check_user(deps, &claims).await {
        return Err(("forbidden", body.to_string()));
    }
    let connected = DateTime::parse_from_rfc3339(&conn.connected_at)
        .map(|t| t.timestamp())
        .map_err(|e| internal(format!("`connectedAt` {}: {e}", conn.connected_at)))?;
    let expires_at = expiry(claims.exp, connected, deps.ttl_seconds);
    let stored = deps
        .store
        .refresh(&conn, &claims.role, claims.exp, expires_at)
        .await
        .map_err(|e| internal(e.to_string()))?;
    if !stored {
        return Err((
            "unknown_connection",
            "this connection is not registered; reconnect".into(),
        ));
    }
    Ok(expires_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_ends_with_its_token_or_after_the_ttl() {
        assert_eq!(expiry(1_000, 0, 7_200), 1_000);
        assert_eq!(expiry(100_000, 0, 7_200), 7_200);
        assert_eq!(expiry(5, 10, i64::MAX), 5);
    }
}
