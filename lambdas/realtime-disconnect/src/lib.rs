//! `$disconnect`: delete the connection and tell the rest of the tenant when the user's
//! last connection went away.

use aws_lambda_events::event::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use realtime_core::presence;
use realtime_core::response::response;
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
    let announced = match deps.broadcaster_for(&req.request_context) {
        Ok(b) => presence::announce_offline(&b, &conn).await,
        Err(e) => Err(e.into()),
    };
    if let Err(e) = announced {
        tracing::warn!(%connection_id, error = %e, "presence announcement failed");
    }
    response(200, r#"{"message":"disconnected"}"#)
}
