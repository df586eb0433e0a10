//! What the triggers report while they run: one [`TriggerEvent`] per fire, batch,
//! retry or drop, handed to the caller's callback (core modules never print).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::dev::invoke::{Invocation, InvokeError, Outcome};

/// The callback the triggers report through.
pub type EventSink = Arc<dyn Fn(TriggerEvent) + Send + Sync>;

/// How one invocation made by a trigger ended, without the response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutcomeSummary {
    /// The function answered (for stream batches: possibly with item failures,
    /// reported separately as [`TriggerEvent::PartialFailure`]).
    Ok,
    FunctionError {
        error_type: String,
        error_message: String,
    },
    Timeout {
        seconds: u64,
    },
    Crashed {
        message: String,
    },
    /// The invocation could not be made (unknown function, runtime stopped).
    NotInvoked {
        reason: String,
    },
}

impl OutcomeSummary {
    pub fn from_result(result: &Result<Invocation, InvokeError>) -> Self {
        match result {
            Ok(inv) => Self::from_outcome(&inv.outcome),
            Err(e) => OutcomeSummary::NotInvoked {
                reason: e.to_string(),
            },
        }
    }

    pub fn from_outcome(outcome: &Outcome) -> Self {
        match outcome {
            Outcome::Response(_) => OutcomeSummary::Ok,
            Outcome::FunctionError {
                error_type,
                error_message,
            } => OutcomeSummary::FunctionError {
                error_type: error_type.clone(),
                error_message: error_message.clone(),
            },
            Outcome::Timeout { seconds } => OutcomeSummary::Timeout { seconds: *seconds },
            Outcome::Crashed { message } => OutcomeSummary::Crashed {
                message: message.clone(),
            },
        }
    }

    pub fn is_ok(&self) -> bool {
        matches!(self, OutcomeSummary::Ok)
    }
}

impl fmt::Display for OutcomeSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutcomeSummary::Ok => f.write_str("ok"),
            OutcomeSummary::FunctionError {
                error_type,
                error_message,
            } => write!(f, "{error_type}: {error_message}"),
            OutcomeSummary::Timeout { seconds } => {
                write!(f, "Task timed out after {seconds} seconds")
            }
            OutcomeSummary::Crashed { message } => write!(f, "crashed: {message}"),
            OutcomeSummary::NotInvoked { reason } => write!(f, "not invoked: {reason}"),
        }
    }
}

/// One thing a trigger did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TriggerEvent {
    /// A schedule rule invoked one of its targets.
    Fired {
        rule: String,
        target: String,
        function: String,
        /// The instant the expression named (the event's `time`), not when the
        /// invocation started.
        scheduled_time: DateTime<Utc>,
        outcome: OutcomeSummary,
        duration: Duration,
    },
    /// A rule that will not fire (disabled, no targets).
    Skipped { rule: String, reason: String },
    /// A rule whose schedule expression cannot be read.
    Invalid { rule: String, reason: String },
    /// A stream mapping invoked its function with a batch.
    Batch {
        mapping: String,
        function: String,
        records: usize,
        first_seq: String,
        last_seq: String,
        /// 1 for the first invocation of these records, 2 for the first retry...
        attempt: u32,
        outcome: OutcomeSummary,
        duration: Duration,
    },
    /// A failed batch is invoked again (same records, or the unprocessed rest
    /// after a partial failure).
    Retried {
        mapping: String,
        first_seq: String,
        last_seq: String,
        records: usize,
        /// The attempt about to be made.
        attempt: u32,
    },
    /// A failed batch was split in two halves (`BisectBatchOnFunctionError`).
    Bisected {
        mapping: String,
        first_seq: String,
        last_seq: String,
        left: usize,
        right: usize,
    },
    /// The function answered with `batchItemFailures`: the sequence numbers it
    /// reported; processing resumes at the lowest one.
    PartialFailure {
        mapping: String,
        failed: Vec<String>,
    },
    /// Records given up on after the last retry: reported, then the shard moves on.
    BatchDropped {
        mapping: String,
        first_seq: String,
        last_seq: String,
        records: usize,
        reason: String,
    },
    /// A mapping's poller could not read its stream (it keeps trying).
    StreamError { mapping: String, message: String },
}
