//! What the gateway and the triggers need from the runtime: invoke a function by
//! its deployed name and get what Lambda would have answered.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// How one invocation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The function answered through `/response`: the raw response body.
    Response(Vec<u8>),
    /// The function reported an error through `/error` (a handler `Err`, a panic
    /// caught by the runtime): Lambda's `errorType` and `errorMessage`.
    FunctionError {
        error_type: String,
        error_message: String,
    },
    /// No answer within the function's timeout; the instance was killed
    /// (`Task timed out after N seconds`, as Lambda says).
    Timeout { seconds: u64 },
    /// The process exited or failed to start before answering: how it ended and
    /// the last lines it wrote to stderr.
    Crashed { message: String },
}

impl Outcome {
    /// Lambda's `errorType` / `errorMessage` pair for a failed invocation.
    pub fn error(&self) -> Option<(String, String)> {
        match self {
            Outcome::Response(_) => None,
            Outcome::FunctionError {
                error_type,
                error_message,
            } => Some((error_type.clone(), error_message.clone())),
            Outcome::Timeout { seconds } => Some((
                "Sandbox.Timedout".into(),
                format!("Task timed out after {seconds} seconds"),
            )),
            Outcome::Crashed { message } => Some(("Runtime.ExitError".into(), message.clone())),
        }
    }

    /// The response body parsed as JSON (`None` for errors or non-JSON bodies).
    pub fn json(&self) -> Option<serde_json::Value> {
        match self {
            Outcome::Response(body) => serde_json::from_slice(body).ok(),
            _ => None,
        }
    }
}

/// One finished invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    pub outcome: Outcome,
    /// From handing the event to an instance to its answer (queueing excluded).
    pub duration: Duration,
}

/// An invocation that could not be made at all.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InvokeError {
    #[error("function `{name}` is not deployed on this stage")]
    UnknownFunction { name: String },
    #[error("the local runtime has stopped")]
    Stopped,
}

pub type InvokeFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Invocation, InvokeError>> + Send + 'a>>;

/// Invoke a function by its deployed name (`barkbase-local-realtime-connect`)
/// with a JSON payload. The runtime implements it; tests may pass a fake.
pub trait Invoke: Send + Sync {
    fn invoke<'a>(&'a self, function: &'a str, payload: Vec<u8>) -> InvokeFuture<'a>;
}
