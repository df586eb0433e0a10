//! Runs the stage's EventBridge schedule rules: each enabled rule invokes its
//! Lambda targets at the UTC instants its expression names.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, SubsecRound, Utc};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::events::{EventSink, OutcomeSummary, TriggerEvent};
use super::schedule::{scheduled_event, Schedule};
use crate::dev::deployed::{RuleTarget, ScheduleRule};
use crate::dev::invoke::Invoke;

/// The longest single sleep: the wall clock is read again after it, so a
/// suspended laptop or a clock change does not delay a fire by more than this.
const MAX_SLEEP: StdDuration = StdDuration::from_secs(30);

/// How one target of a fired rule answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetFire {
    pub target: String,
    pub function: String,
    pub outcome: OutcomeSummary,
    pub duration: StdDuration,
}

/// The payload a target receives: its constant `Input`, else the scheduled event.
fn payload(rule: &ScheduleRule, target: &RuleTarget, region: &str, time: DateTime<Utc>) -> Vec<u8> {
    match &target.input {
        Some(input) => input.clone().into_bytes(),
        None => scheduled_event(&rule.arn, region, time, &target.id)
            .to_string()
            .into_bytes(),
    }
}

/// Invoke every target of `rule` (concurrently) as a fire scheduled for `time`,
/// reporting a [`TriggerEvent::Fired`] per target.
pub async fn fire_at(
    rule: &ScheduleRule,
    region: &str,
    time: DateTime<Utc>,
    invoker: &dyn Invoke,
    on_event: &EventSink,
) -> Vec<TargetFire> {
    if rule.targets.is_empty() {
        on_event(TriggerEvent::Skipped {
            rule: rule.name.clone(),
            reason: "the rule has no Lambda targets".into(),
        });
        return Vec::new();
    }
    let fires = rule.targets.iter().map(|target| async move {
        let started = std::time::Instant::now();
        let result = invoker
            .invoke(&target.function_name, payload(rule, target, region, time))
            .await;
        let outcome = OutcomeSummary::from_result(&result);
        let duration = match &result {
            Ok(inv) => inv.duration,
            Err(_) => started.elapsed(),
        };
        on_event(TriggerEvent::Fired {
            rule: rule.name.clone(),
            target: target.id.clone(),
            function: target.function_name.clone(),
            scheduled_time: time,
            outcome: outcome.clone(),
            duration,
        });
        TargetFire {
            target: target.id.clone(),
            function: target.function_name.clone(),
            outcome,
            duration,
        }
    });
    futures::future::join_all(fires).await
}

/// Fire `rule` now, whatever its state (`barkctl dev --fire RULE`): the event's
/// `time` is the current second.
pub async fn fire_now(
    rule: &ScheduleRule,
    region: &str,
    invoker: &dyn Invoke,
    on_event: &EventSink,
) -> Vec<TargetFire> {
    fire_at(rule, region, Utc::now().trunc_subsecs(0), invoker, on_event).await
}

/// A startup line for `rule`: its expression and next fire, or why it will not.
/// Rates are counted from now (the scheduler's start).
pub fn describe_next(rule: &ScheduleRule) -> String {
    describe_next_at(rule, Utc::now())
}

/// [`describe_next`] as of `now`.
pub fn describe_next_at(rule: &ScheduleRule, now: DateTime<Utc>) -> String {
    let targets: Vec<&str> = rule
        .targets
        .iter()
        .map(|t| t.function_name.as_str())
        .collect();
    let head = format!("{} {}", rule.name, rule.schedule_expression);
    match Schedule::parse(&rule.schedule_expression) {
        Err(e) => format!("{head}: invalid, never fires ({e})"),
        Ok(_) if !rule.enabled => format!("{head}: disabled"),
        Ok(_) if targets.is_empty() => format!("{head}: no Lambda targets"),
        Ok(s) => match s.next_after_anchored(now, now) {
            Some(next) => format!(
                "{head}: next {} -> {}",
                next.format("%Y-%m-%dT%H:%M:%SZ"),
                targets.join(", ")
            ),
            None => format!("{head}: no further fire"),
        },
    }
}

/// Whether shutdown was asked for (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) -> bool {
    shutdown.changed().await.is_err() || *shutdown.borrow()
}

/// Sleep until the wall clock reaches `at`; `false` when shut down first.
async fn sleep_until(at: DateTime<Utc>, shutdown: &mut watch::Receiver<bool>) -> bool {
    loop {
        if *shutdown.borrow() {
            return false;
        }
        let now = Utc::now();
        if now >= at {
            return true;
        }
        let wait = (at - now).to_std().unwrap_or_default().min(MAX_SLEEP);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            stop = stopped(shutdown) => if stop { return false; },
        }
    }
}

async fn rule_loop(
    rule: Arc<ScheduleRule>,
    schedule: Schedule,
    start: DateTime<Utc>,
    region: Arc<str>,
    invoker: Arc<dyn Invoke>,
    on_event: EventSink,
    mut shutdown: watch::Receiver<bool>,
) {
    // Fires run in the background: a slow function does not delay the next fire
    // (EventBridge does not wait either). Dropped (aborted) at shutdown.
    let mut in_flight = JoinSet::new();
    let mut last = start;
    loop {
        // From the last scheduled instant, not from when the fire finished: no
        // drift. After a long suspend, missed fires are skipped, not replayed.
        let after = last.max(Utc::now());
        let Some(next) = schedule.next_after_anchored(start, after) else {
            on_event(TriggerEvent::Skipped {
                rule: rule.name.clone(),
                reason: "the expression names no further instant".into(),
            });
            break;
        };
        if !sleep_until(next, &mut shutdown).await {
            break;
        }
        while in_flight.try_join_next().is_some() {}
        let (rule2, region2, invoker2, sink2) = (
            rule.clone(),
            region.clone(),
            invoker.clone(),
            on_event.clone(),
        );
        in_flight.spawn(async move {
            fire_at(&rule2, &region2, next, invoker2.as_ref(), &sink2).await;
        });
        last = next;
    }
}

/// Run `rules` until `shutdown` turns true (or its sender is dropped). ENABLED
/// rules fire their targets at the UTC instants their expression names; rates
/// count from this call (AWS counts from the rule's creation). DISABLED rules
/// and rules without targets are reported as [`TriggerEvent::Skipped`],
/// unreadable expressions as [`TriggerEvent::Invalid`]; neither ever fires.
pub async fn run_schedules(
    rules: Vec<ScheduleRule>,
    region: String,
    invoker: Arc<dyn Invoke>,
    on_event: EventSink,
    shutdown: watch::Receiver<bool>,
) {
    run_schedules_from(Utc::now(), rules, region, invoker, on_event, shutdown).await;
}

/// [`run_schedules`] with rates counted from `start`.
pub(crate) async fn run_schedules_from(
    start: DateTime<Utc>,
    rules: Vec<ScheduleRule>,
    region: String,
    invoker: Arc<dyn Invoke>,
    on_event: EventSink,
    shutdown: watch::Receiver<bool>,
) {
    let region: Arc<str> = region.into();
    let mut loops = Vec::new();
    for rule in rules {
        let schedule = match Schedule::parse(&rule.schedule_expression) {
            Ok(s) => s,
            Err(e) => {
                on_event(TriggerEvent::Invalid {
                    rule: rule.name.clone(),
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let reason = if !rule.enabled {
            "the rule is DISABLED"
        } else if rule.targets.is_empty() {
            "the rule has no Lambda targets"
        } else {
            loops.push(rule_loop(
                Arc::new(rule),
                schedule,
                start,
                region.clone(),
                invoker.clone(),
                on_event.clone(),
                shutdown.clone(),
            ));
            continue;
        };
        on_event(TriggerEvent::Skipped {
            rule: rule.name.clone(),
            reason: reason.into(),
        });
    }
    futures::future::join_all(loops).await;
}
