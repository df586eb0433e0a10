//! Deleting stacks in reverse dependency order, listing what outlives them.

use std::time::{Duration, Instant};

use aws_sdk_cloudformation::Client;

use super::cfn;
use super::{Error, Event, InFlight, Outcome, Reporter, StackResult};
use crate::plan;

/// One stack to delete.
#[derive(Debug, Clone)]
pub struct Target {
    pub stack: String,
    pub stack_name: String,
}

/// Delete `order` one stack at a time (already reversed: dependents first), so a
/// stack is never deleted while one that needs it still exists. Stops at the
/// first failure; the rest are reported as not started. The stack being deleted
/// is in `in_flight` while its deletion runs (what Ctrl-C leaves running).
pub async fn destroy(
    client: &Client,
    order: &[Target],
    force: bool,
    reporter: &dyn Reporter,
    in_flight: &InFlight,
) -> (Vec<StackResult>, Option<Error>) {
    let mut results = Vec::new();
    let mut error = None;
    for t in order {
        if error.is_some() {
            let r = StackResult {
                stack: t.stack.clone(),
                stack_name: t.stack_name.clone(),
                outcome: Outcome::NotStarted,
                duration: Duration::ZERO,
                note: None,
            };
            reporter.event(&Event::Finished(r.clone()));
            results.push(r);
            continue;
        }
        let started = Instant::now();
        let (outcome, note) = match destroy_one(client, t, force, reporter, in_flight).await {
            Ok(v) => v,
            Err(e) => {
                let note = Some(e.to_string());
                error = Some(e);
                (Outcome::Failed, note)
            }
        };
        let r = StackResult {
            stack: t.stack.clone(),
            stack_name: t.stack_name.clone(),
            outcome,
            duration: started.elapsed(),
            note,
        };
        reporter.event(&Event::Finished(r.clone()));
        results.push(r);
    }
    (results, error)
}

async fn destroy_one(
    client: &Client,
    t: &Target,
    force: bool,
    reporter: &dyn Reporter,
    in_flight: &InFlight,
) -> Result<(Outcome, Option<String>), Error> {
    let Some(stack) = cfn::describe(client, &t.stack_name).await? else {
        return Ok((Outcome::Absent, None));
    };
    if matches!(cfn::state_of(Some(&stack)), plan::StackState::NotFound) {
        return Ok((Outcome::Absent, None));
    }
    let kept = cfn::get_template(client, &t.stack_name)
        .await?
        .map(|tpl| plan::retained_resources(&tpl))
        .unwrap_or_default();
    reporter.event(&Event::Started {
        stack: t.stack.clone(),
        stack_name: t.stack_name.clone(),
        action: "delete".into(),
        resources: 0,
    });
    if stack.enable_termination_protection().unwrap_or(false) {
        if !force {
            return Err(Error::Blocked {
                stack_name: t.stack_name.clone(),
                status: "protected against termination".into(),
                hint: "pass `--force` to switch termination protection off and delete it".into(),
            });
        }
        cfn::set_termination_protection(client, &t.stack_name, false).await?;
    }
    let mark = |on: bool| {
        if let Ok(mut m) = in_flight.lock() {
            if on {
                m.insert(t.stack_name.clone(), "DELETE".into());
            } else {
                m.remove(&t.stack_name);
            }
        }
    };
    mark(true);
    let deleted = cfn::delete_and_wait(client, &t.stack, &t.stack_name, reporter).await;
    mark(false);
    deleted?;
    let note = (!kept.is_empty()).then(|| {
        format!(
            "kept: {}",
            kept.iter()
                .map(|(id, ty, policy)| format!("{id} ({ty}, {policy})"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    });
    Ok((Outcome::Deleted, note))
}
