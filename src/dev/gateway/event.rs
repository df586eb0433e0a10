//! What the gateway reports to its caller (it never prints): one event per
//! handshake, routed message, disconnect and management call.

use std::time::Duration;

use crate::dev::invoke::{Invocation, InvokeError, Outcome};

/// How an integration call ended, in one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Summary {
    /// The function answered (for `$connect`, see the event's status).
    Ok,
    /// The function failed, timed out, crashed, or could not be invoked:
    /// Lambda's `errorType` / `errorMessage`, or `Gateway.*` for the gateway's own
    /// failures (integration timeout, unknown function, stopped runtime).
    Failed {
        error_type: String,
        error_message: String,
    },
}

impl Summary {
    pub(crate) fn of(result: &Result<Invocation, IntegrationError>) -> Summary {
        match result {
            Ok(invocation) => match invocation.outcome.error() {
                None => Summary::Ok,
                Some((error_type, error_message)) => Summary::Failed {
                    error_type,
                    error_message,
                },
            },
            Err(e) => Summary::Failed {
                error_type: e.error_type().into(),
                error_message: e.to_string(),
            },
        }
    }
}

/// Why the gateway got no answer from an integration.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum IntegrationError {
    #[error("no answer within the integration timeout of {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Invoke(#[from] InvokeError),
}

impl IntegrationError {
    fn error_type(&self) -> &'static str {
        match self {
            IntegrationError::Timeout(_) => "Gateway.IntegrationTimeout",
            IntegrationError::Invoke(_) => "Gateway.InvokeError",
        }
    }
}

/// The response body of a successful invocation.
pub(crate) fn response_body(result: &Result<Invocation, IntegrationError>) -> Option<&[u8]> {
    match result {
        Ok(Invocation {
            outcome: Outcome::Response(body),
            ..
        }) => Some(body),
        _ => None,
    }
}

/// What happened on the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayEvent {
    /// A WebSocket upgrade completed: `$connect` answered 2xx (`status`), or the
    /// API has no `$connect` route (`function` is `None`, `status` 101).
    Connected {
        connection_id: String,
        function: Option<String>,
        status: u16,
        duration: Duration,
    },
    /// An upgrade was refused with HTTP `status`: `$connect` answered non-2xx, or
    /// failed (502, `summary` says why).
    Refused {
        connection_id: String,
        function: String,
        status: u16,
        summary: Summary,
        duration: Duration,
    },
    /// A text frame was routed to `route_key` and its function invoked (one-way:
    /// the function's response is not sent to the client).
    Routed {
        connection_id: String,
        route_key: String,
        function: String,
        summary: Summary,
        duration: Duration,
    },
    /// A text frame matched no route and the API has no `$default`: the client got
    /// a `Forbidden` message.
    Unrouted {
        connection_id: String,
        selected: Option<String>,
    },
    /// A connection ended; `$disconnect` ran (when the API has one) after the
    /// connection left the registry.
    Disconnected {
        connection_id: String,
        code: u16,
        reason: String,
        function: Option<String>,
        summary: Option<Summary>,
        connected_for: Duration,
    },
    /// A call to the management API (`@connections`).
    Management {
        method: String,
        connection_id: String,
        status: u16,
    },
    /// Something failed outside any integration (accepting a TCP connection,
    /// serving HTTP, completing an upgrade).
    Failure { message: String },
}
