//! One connection's integrations, in arrival order: routed messages, then
//! `$disconnect` last. A slow function delays only its own connection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::event::{GatewayEvent, Summary};
use super::payload::{disconnect_event, message_event, MessageIds};
use super::registry::{Command, Connection};
use super::route::DISCONNECT;
use super::shared::Shared;

#[derive(Debug)]
pub(crate) enum Job {
    /// A routed text frame (routes are one-way: the answer is dropped).
    Message {
        route_key: String,
        function: String,
        body: String,
    },
    /// The connection closed (it already left the registry).
    Disconnect {
        code: u16,
        reason: String,
        connected_for: Duration,
    },
}

/// What the client gets when a route's integration fails, as on AWS.
pub(crate) fn error_message(message: &str, connection_id: &str, request_id: &str) -> Message {
    Message::text(
        json!({"message": message, "connectionId": connection_id, "requestId": request_id})
            .to_string(),
    )
}

pub(crate) async fn run(
    shared: Arc<Shared>,
    connection: Arc<Connection>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    replies: mpsc::Sender<Command>,
) {
    while let Some(job) = jobs.recv().await {
        match job {
            Job::Message {
                route_key,
                function,
                body,
            } => {
                let request_id = shared.ids.next_id();
                let message_id = shared.ids.next_id();
                let ids = MessageIds {
                    request_id: &request_id,
                    message_id: &message_id,
                };
                let event = message_event(
                    &shared.api_ref(),
                    &connection,
                    &route_key,
                    &ids,
                    Utc::now(),
                    &body,
                );
                let started = Instant::now();
                let result = shared.integrate(&function, &event).await;
                let summary = Summary::of(&result);
                if summary != Summary::Ok {
                    let _ = replies.try_send(Command::Send(error_message(
                        "Internal server error",
                        &connection.id,
                        &request_id,
                    )));
                }
                shared.emit(GatewayEvent::Routed {
                    connection_id: connection.id.clone(),
                    route_key,
                    function,
                    summary,
                    duration: started.elapsed(),
                });
            }
            Job::Disconnect {
                code,
                reason,
                connected_for,
            } => {
                let function = shared.api.routes.get(DISCONNECT).cloned();
                let summary = match &function {
                    None => None,
                    Some(function) => {
                        let request_id = shared.ids.next_id();
                        let event = disconnect_event(
                            &shared.api_ref(),
                            &connection,
                            &request_id,
                            Utc::now(),
                            code,
                            &reason,
                        );
                        Some(Summary::of(&shared.integrate(function, &event).await))
                    }
                };
                shared.emit(GatewayEvent::Disconnected {
                    connection_id: connection.id.clone(),
                    code,
                    reason,
                    function,
                    summary,
                    connected_for,
                });
                break;
            }
        }
    }
}
