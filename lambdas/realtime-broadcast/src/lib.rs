//! The broadcast function: invoked directly by other services with
//! `{target, message, tenantId | allTenants}`, or through the WebSocket `broadcast`
//! route by a client (then rate-limited, role-gated, scoped to the caller's tenant,
//! stamped with `from`, and answered with a `broadcast_result` message). Returns
//! `{targeted, delivered, gone, failed, id}`.

use aws_lambda_events::event::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use realtime_core::admission::{self, Admission};
use realtime_core::client_broadcast;
use realtime_core::envelope::{Envelope, Payload};
use realtime_core::management::ManagementError;
use realtime_core::response::response;
use realtime_core::{BroadcastError, BroadcastReport, BroadcastRequest, Deps};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum BroadcastFnError {
    #[error("invalid broadcast request: {0}")]
    InvalidRequest(String),
    #[error(transparent)]
    Broadcast(#[from] BroadcastError),
    #[error(transparent)]
    Management(#[from] ManagementError),
}

/// Dispatches on the event's shape: an API Gateway WebSocket event carries a
/// `requestContext` with a `connectionId`.
pub async fn handler(event: Value, deps: &Deps) -> Result<Value, BroadcastFnError> {
    let from_websocket = event
        .pointer("/requestContext/connectionId")
        .is_some_and(Value::is_string);
    if from_websocket {
        let req: ApiGatewayWebsocketProxyRequest = serde_json::from_value(event)
            .map_err(|e| BroadcastFnError::InvalidRequest(e.to_string()))?;
        let res = route_handler(req, deps).await;
        return serde_json::to_value(res)
            .map_err(|e| BroadcastFnError::InvalidRequest(e.to_string()));
    }
    let request: BroadcastRequest = serde_json::from_value(event)
        .map_err(|e| BroadcastFnError::InvalidRequest(e.to_string()))?;
    let report = direct(&request, deps).await?;
    Ok(serde_json::to_value(report).unwrap_or(Value::Null))
}

/// A service-to-service broadcast: trusted, so it may send the server's own message
/// types, but it still names its tenant or says `allTenants: true`.
pub async fn direct(
    request: &BroadcastRequest,
    deps: &Deps,
) -> Result<BroadcastReport, BroadcastFnError> {
    let scope = request.service_scope()?;
    let envelope = request.envelope().map_err(BroadcastError::from)?;
    let broadcaster = deps.broadcaster()?;
    let report = broadcaster
        .broadcast(&request.target, &envelope, &scope)
        .await?;
    tracing::info!(target = ?request.target, ?report, "broadcast");
    Ok(report)
}

/// The `broadcast` route: the caller must be a stored admin or staff connection.
pub async fn route_handler(
    req: ApiGatewayWebsocketProxyRequest,
    deps: &Deps,
) -> ApiGatewayProxyResponse {
    let Some(connection_id) = req.request_context.connection_id.clone() else {
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
                tracing::info!(%connection_id, code = refusal.code, "broadcast refused");
                admission::answer(&broadcaster, &connection_id, &refusal, close).await;
                return response(200, r#"{"message":"error sent"}"#);
            }
            Err(e) => {
                tracing::error!(error = %e, "caller lookup failed");
                let refusal = client_broadcast::Refusal {
                    code: "internal_error",
                    message: "the broadcast could not be completed".into(),
                };
                admission::answer(&broadcaster, &connection_id, &refusal, false).await;
                return response(200, r#"{"message":"error sent"}"#);
            }
        };
    let outcome =
        async {
            let body: Value = serde_json::from_str(req.body.as_deref().unwrap_or_default())
                .map_err(|e| client_broadcast::Refusal {
                    code: "invalid_json",
                    message: format!("message is not valid JSON: {e}"),
                })?;
            client_broadcast::run(&caller, &body, &broadcaster).await
        }
        .await;
    match outcome {
        Ok(report) => {
            if let Ok(frame) =
                Envelope::new(Payload::BroadcastResult(report)).and_then(|e| e.to_bytes())
            {
                broadcaster
                    .send_to(std::slice::from_ref(&connection_id), &frame)
                    .await;
            }
            response(200, serde_json::to_string(&report).unwrap_or_default())
        }
        Err(refusal) => {
            tracing::info!(%connection_id, code = refusal.code, "broadcast refused");
            admission::answer(&broadcaster, &connection_id, &refusal, false).await;
            response(200, r#"{"message":"error sent"}"#)
        }
    }
}
