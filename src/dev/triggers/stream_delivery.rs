//! Handing one batch of stream records to the function the way an event source
//! mapping does: retries, bisection, partial batch responses, and reporting the
//! records given up on.
//!
//! Semantics (kept simple, close to Lambda's):
//! - A failure is a function error, a timeout, a crash, or (with
//!   `ReportBatchItemFailures`) a response naming failed items.
//! - With `BisectBatchOnFunctionError`, a failing batch of two or more records
//!   is split in halves, each processed in order; a split does not use up a
//!   retry. A failing single record (or any failing batch without bisection) is
//!   retried up to `MaximumRetryAttempts` times, then dropped.
//! - `MaximumRetryAttempts = -1` (retry until the records expire) is capped at
//!   [`UNLIMITED_RETRIES_CAP`] locally.
//! - `{"batchItemFailures":[{"itemIdentifier":"<SequenceNumber>"}]}` checkpoints
//!   before the lowest failed sequence number: the records before it succeeded,
//!   the rest is the failing batch. An empty list, a `null` or absent key, or a
//!   body that is not JSON is a success; an identifier that is empty, not a
//!   string, or not a sequence number of the batch fails the whole batch.
//! - A function that is not deployed fails the batch at once (a retry cannot
//!   help); a stopped runtime ends delivery unfinished.
//! - Dropped records are reported ([`TriggerEvent::BatchDropped`]), never
//!   skipped silently; delivery then goes on with the next records.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::watch;

use super::events::{EventSink, OutcomeSummary, TriggerEvent};
use super::stream_record::{batch_event, StreamRecord};
use crate::dev::deployed::StreamMapping;
use crate::dev::invoke::{Invoke, InvokeError, Outcome};

/// The retries `MaximumRetryAttempts = -1` stands for locally.
pub const UNLIMITED_RETRIES_CAP: u32 = 10_000;

/// What delivery needs to know about the mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// The mapping's UUID, for events.
    pub mapping: String,
    pub function: String,
    /// `None` = retry until the records expire (see [`UNLIMITED_RETRIES_CAP`]).
    pub max_retries: Option<u32>,
    pub bisect_on_error: bool,
    pub report_batch_item_failures: bool,
    /// The pause before a retry (not before a bisected half).
    pub retry_delay: Duration,
}

impl DeliveryConfig {
    pub fn from_mapping(m: &StreamMapping, retry_delay: Duration) -> Self {
        DeliveryConfig {
            mapping: m.uuid.clone(),
            function: m.function_name.clone(),
            max_retries: m.max_retries,
            bisect_on_error: m.bisect_on_error,
            report_batch_item_failures: m.report_batch_item_failures,
            retry_delay,
        }
    }

    fn retries(&self) -> u32 {
        self.max_retries.unwrap_or(UNLIMITED_RETRIES_CAP)
    }
}

/// How delivering a batch went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeliveryReport {
    pub invocations: u32,
    /// Records given up on (each reported by a `BatchDropped`).
    pub dropped: usize,
    /// `false` when shutdown or a stopped runtime cut delivery short.
    pub completed: bool,
}

/// What one invocation's result means for the records it carried.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Success,
    /// Every record failed; retrying may help unless `fatal`.
    Failed {
        reason: String,
        fatal: bool,
    },
    /// Records from index `from` on failed (`batchItemFailures`).
    Partial {
        from: usize,
        failed: Vec<String>,
    },
    /// The runtime has stopped: give up without dropping.
    Stopped,
}

fn item_failures(body: &[u8], batch: &[StreamRecord]) -> Verdict {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Verdict::Success;
    };
    let list = match v.get("batchItemFailures") {
        None | Some(Value::Null) => return Verdict::Success,
        Some(Value::Array(list)) => list,
        Some(_) => {
            return Verdict::Failed {
                reason: "batchItemFailures is not a list".into(),
                fatal: false,
            }
        }
    };
    if list.is_empty() {
        return Verdict::Success;
    }
    let mut from = usize::MAX;
    let mut failed = Vec::new();
    for entry in list {
        let id = entry.get("itemIdentifier").and_then(Value::as_str);
        let index = id.and_then(|id| batch.iter().position(|r| r.sequence_number == id));
        match (id, index) {
            (Some(id), Some(i)) => {
                from = from.min(i);
                failed.push(id.to_string());
            }
            _ => {
                return Verdict::Failed {
                    reason: format!(
                        "batchItemFailures names an unknown itemIdentifier: {}",
                        entry.get("itemIdentifier").unwrap_or(&Value::Null)
                    ),
                    fatal: false,
                }
            }
        }
    }
    Verdict::Partial { from, failed }
}

fn verdict(
    result: &Result<crate::dev::invoke::Invocation, InvokeError>,
    batch: &[StreamRecord],
    report_item_failures: bool,
) -> Verdict {
    match result {
        Err(InvokeError::Stopped) => Verdict::Stopped,
        Err(e @ InvokeError::UnknownFunction { .. }) => Verdict::Failed {
            reason: e.to_string(),
            fatal: true,
        },
        Ok(inv) => match &inv.outcome {
            Outcome::Response(body) if report_item_failures => item_failures(body, batch),
            Outcome::Response(_) => Verdict::Success,
            other => Verdict::Failed {
                reason: OutcomeSummary::from_outcome(other).to_string(),
                fatal: false,
            },
        },
    }
}

/// A run of records still to deliver and the retries it has used.
#[derive(Debug, Clone, Copy)]
struct Pending {
    start: usize,
    end: usize,
    failures: u32,
}

/// Sleep `d`; `false` when shutdown came first.
async fn pause(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    if *shutdown.borrow() {
        return false;
    }
    if d.is_zero() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => !*shutdown.borrow(),
        r = shutdown.changed() => r.is_ok() && !*shutdown.borrow(),
    }
}

/// Deliver `records` (one shard's, in order) to the function, retrying,
/// bisecting and dropping as the module doc says. Returns once every record
/// succeeded or was dropped, or when shutdown interrupts.
pub async fn deliver(
    records: &[StreamRecord],
    cfg: &DeliveryConfig,
    invoker: &dyn Invoke,
    on_event: &EventSink,
    shutdown: &watch::Receiver<bool>,
) -> DeliveryReport {
    let mut shutdown = shutdown.clone();
    let mut report = DeliveryReport::default();
    let mut work = VecDeque::new();
    if !records.is_empty() {
        work.push_back(Pending {
            start: 0,
            end: records.len(),
            failures: 0,
        });
    }
    let seq = |i: usize| records[i].sequence_number.clone();
    while let Some(p) = work.pop_front() {
        if *shutdown.borrow() {
            return report;
        }
        let batch = &records[p.start..p.end];
        let started = Instant::now();
        let result = invoker.invoke(&cfg.function, batch_event(batch)).await;
        report.invocations += 1;
        let duration = match &result {
            Ok(inv) => inv.duration,
            Err(_) => started.elapsed(),
        };
        on_event(TriggerEvent::Batch {
            mapping: cfg.mapping.clone(),
            function: cfg.function.clone(),
            records: batch.len(),
            first_seq: seq(p.start),
            last_seq: seq(p.end - 1),
            attempt: p.failures + 1,
            outcome: OutcomeSummary::from_result(&result),
            duration,
        });
        let (failing, reason, fatal) = match verdict(&result, batch, cfg.report_batch_item_failures)
        {
            Verdict::Success => continue,
            Verdict::Stopped => return report,
            Verdict::Failed { reason, fatal } => (p, reason, fatal),
            Verdict::Partial { from, failed } => {
                let reason = format!("the function reported {} failed item(s)", failed.len());
                on_event(TriggerEvent::PartialFailure {
                    mapping: cfg.mapping.clone(),
                    failed,
                });
                (
                    Pending {
                        start: p.start + from,
                        ..p
                    },
                    reason,
                    false,
                )
            }
        };
        let len = failing.end - failing.start;
        if cfg.bisect_on_error && len > 1 && !fatal {
            let mid = failing.start + len / 2;
            on_event(TriggerEvent::Bisected {
                mapping: cfg.mapping.clone(),
                first_seq: seq(failing.start),
                last_seq: seq(failing.end - 1),
                left: mid - failing.start,
                right: failing.end - mid,
            });
            work.push_front(Pending {
                start: mid,
                ..failing
            });
            work.push_front(Pending {
                end: mid,
                ..failing
            });
            continue;
        }
        let failures = failing.failures + 1;
        if fatal || failures > cfg.retries() {
            on_event(TriggerEvent::BatchDropped {
                mapping: cfg.mapping.clone(),
                first_seq: seq(failing.start),
                last_seq: seq(failing.end - 1),
                records: len,
                reason: if fatal {
                    reason
                } else {
                    format!("{reason} (after {} retries)", failures - 1)
                },
            });
            report.dropped += len;
            continue;
        }
        on_event(TriggerEvent::Retried {
            mapping: cfg.mapping.clone(),
            first_seq: seq(failing.start),
            last_seq: seq(failing.end - 1),
            records: len,
            attempt: failures + 1,
        });
        if !pause(cfg.retry_delay, &mut shutdown).await {
            return report;
        }
        work.push_front(Pending {
            failures,
            ..failing
        });
    }
    report.completed = true;
    report
}
