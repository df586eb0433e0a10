//! `$disconnect`: delete the connection and tell the rest of the tenant when the user's
//! last connection went away.

use aws_lambda_events::event::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use realtime_core::envelope::{Envelope, Payload, Presence, PresenceStatus};
use realtime_core::response::response;
use realtime_core::store::Connection;
use realtime_core::Deps;

pub async fn handler(req: ApiGatewayWebsocketProxyRequest, deps: &Deps) -> ApiGatewayProxyResponse {
    let Some(connection_id) = req
        .request_context
        .connection_id
        .clone()
        .filter(|id| !id.is_empty())
    else {
        tracing::error!("$disconnect event without a connectionId");
        return response(400, r#"{"message":"missing connectionId"}"#);
    };
    let removed = match deps.store.remove(&connection_id).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(%connection_id, error = %e, "deleting the connection failed");
            return response(500, r#"{"message":"internal error"}"#);
        }
    };
    // An unknown id is normal: a 410 during a broadcast may have deleted it first.
    let Some(conn) = removed else {
        tracing::info!(%connection_id, "disconnect of an unknown connection");
        return response(200, r#"{"message":"disconnected"}"#);
    };
    // The connection is gone either way; presence is best effort.
    if let Err(e) = announce_offline(&req, deps, &conn).await {
        tracing::warn!(%connection_id, error = %e, "presence announcement failed");
    }
    response(200, r#"{"message":"disconnected"}"#)
}

async fn announce_offline(
    req: &ApiGatewayWebsocketProxyRequest,
    deps: &Deps,
    conn: &Connection,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    if !deps.store.by_user(&conn.user_id).await?.is_empty() {
        return Ok(());
    }
    let recipients: Vec<String> = deps
        .store
        .by_tenant(&conn.tenant_id)
        .await?
        .into_iter()
        .map(|c| c.connection_id)
        .collect();
    if recipients.is_empty() {
        return Ok(());
    }
    let frame = Envelope::new(Payload::Presence(Presence::Change {
        user_id: conn.user_id.clone(),
        status: PresenceStatus::Offline,
    }))?
    .to_bytes()?;
    let delivery = deps
        .broadcaster_for(&req.request_context)?
        .send_to(&recipients, &frame)
        .await;
    tracing::info!(user_id = %conn.user_id, report = ?delivery.report, "announced offline");
    Ok(())
}
