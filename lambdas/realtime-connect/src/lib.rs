//! `$connect`: verify the caller's token and store the connection.

use aws_lambda_events::event::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use chrono::{SecondsFormat, Utc};
use realtime_core::jwt::{token_from_request, JwtVerifier};
use realtime_core::response::response;
use realtime_core::store::{Connection, ConnectionStore};

pub struct ConnectDeps {
    pub store: ConnectionStore,
    pub verifier: JwtVerifier,
    /// Seconds until the item's TTL; the gateway's maximum connection duration.
    pub ttl_seconds: i64,
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
        tracing::error!("$connect event without a connectionId");
        return response(400, r#"{"message":"missing connectionId"}"#);
    };
    let claims = match token_from_request(&req)
        .ok_or(realtime_core::TokenError::Missing)
        .and_then(|t| deps.verifier.verify(&t))
    {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(%connection_id, reason = ?e, "connection refused");
            return response(401, e.response_body());
        }
    };
    let now = Utc::now();
    let user_agent = req
        .headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.request_context.identity.user_agent.clone());
    let connection = Connection {
        connection_id: connection_id.clone(),
        user_id: claims.sub,
        tenant_id: claims.tenant_id,
        role: claims.role,
        connected_at: now.to_rfc3339_opts(SecondsFormat::Secs, true),
        expires_at: now.timestamp() + deps.ttl_seconds,
        source_ip: req.request_context.identity.source_ip.clone(),
        user_agent,
        channels: Vec::new(),
    };
    match deps.store.put(&connection).await {
        Ok(()) => {
            tracing::info!(%connection_id, user_id = %connection.user_id, tenant_id = %connection.tenant_id, "connected");
            response(200, r#"{"message":"connected"}"#)
        }
        Err(e) => {
            tracing::error!(%connection_id, error = %e, "storing the connection failed");
            response(500, r#"{"message":"internal error"}"#)
        }
    }
}
