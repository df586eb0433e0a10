//! Deploying stacks wave by wave. One planner ([`plan_stack`]) turns a stack's
//! rendered input, its deployed state and the upstream outputs known so far into
//! a [`StackPlan`]: `--dry-run` prints those plans, a deploy completes each wave's
//! with the outputs of the waves before it and carries them out with change sets.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_cloudformation::Client;
use serde_json::Value;
use tokio::sync::Semaphore;

use super::cfn::{self, ChangeSetRequest, ChangeSetResult, EventTail};
use super::{assets, Error, Event, Outcome, Reporter, StackResult};
use crate::plan::{
    self, Action, Approved, Broadening, Deployed, Desired, ParamValue, Plan, SecurityAdditions,
    StackPlan,
};

/// One stack to deploy.
#[derive(Debug, Clone)]
pub struct StackInput {
    /// Short name (`realtime`).
    pub stack: String,
    /// `{app}-{stage}-{stack}`
    pub stack_name: String,
    pub template: Value,
    /// Upstream outputs are `Pending` here; the run fills them in.
    pub parameters: BTreeMap<String, ParamValue>,
    pub tags: BTreeMap<String, String>,
}

/// Everything a deploy needs, resolved by the command.
pub struct DeployInput {
    pub stage: String,
    pub app: String,
    pub region: String,
    /// Short name -> full stack name, for every stack of the project (upstream
    /// stacks outside the selection are read from DescribeStacks).
    pub stack_names: BTreeMap<String, String>,
    /// Selected stacks in waves; each wave depends only on earlier ones.
    pub waves: Vec<Vec<StackInput>>,
    pub concurrency: usize,
    pub allow_replace: bool,
    pub termination_protection: bool,
    /// An emulator: operations finish synchronously, stuck stacks are recreated.
    pub local: bool,
    /// The asset bucket, for templates over the inline limit.
    pub bucket: Option<String>,
    /// The broadening gate's answer: IAM / security-group additions that may be
    /// deployed. Each stack is checked again against what is deployed when the
    /// run gets to it, before any mutating call.
    pub approved: Approved,
    /// Stacks whose operation barkctl started and has not seen end: what
    /// CloudFormation carries on with if barkctl is stopped (Ctrl-C).
    pub in_flight: InFlight,
    /// `--hotswap`: stacks whose only changes are functions' code or environment
    /// are updated through the Lambda API instead of a stack operation.
    pub hotswap: bool,
    /// The client a hotswap uses (dry runs plan without one).
    pub lambda: Option<aws_sdk_lambda::Client>,
    /// Stacks' deployed state read ahead (see [`prefetch`]), by full stack name.
    pub prefetched: Prefetched,
}

/// Full stack name -> its deployed state and when it was read.
pub type Prefetched = BTreeMap<String, (Instant, Deployed)>;

/// A state read ahead stands in for the read at the stack's turn only while it
/// is this young: a no-change run gets there in milliseconds, and a stack whose
/// turn comes after a long upstream update is read again.
const PREFETCH_FRESH: Duration = Duration::from_secs(10);

/// Read the deployed state of `stack_names` concurrently, while something else
/// (the bundle build) is under way. Only under the stage lock: no other barkctl
/// run changes these stacks until the run that holds it ends. A stack whose read
/// fails is left out; its own read at its turn reports the error.
pub async fn prefetch(cfn: &Client, stack_names: Vec<String>) -> Prefetched {
    let reads = stack_names.into_iter().map(|name| async move {
        let deployed = cfn::deployed(cfn, &name).await.ok()?;
        Some((name, (Instant::now(), deployed)))
    });
    futures::future::join_all(reads)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Stack name -> the operation running on it (`UPDATE`, `CREATE`, `DELETE`).
pub type InFlight = Arc<Mutex<BTreeMap<String, String>>>;

/// The run's result: one line per stack, and the outputs of the stacks that ended
/// deployed (created, updated or unchanged).
pub struct RunReport {
    pub results: Vec<StackResult>,
    pub outputs: BTreeMap<String, BTreeMap<String, String>>,
    pub error: Option<Error>,
}

struct Shared {
    cfn: Client,
    s3: aws_sdk_s3::Client,
    input_meta: Meta,
    outputs: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
    prefetched: Mutex<Prefetched>,
    reporter: Arc<dyn Reporter>,
}

struct Meta {
    app: String,
    region: String,
    stack_names: BTreeMap<String, String>,
    allow_replace: bool,
    termination_protection: bool,
    local: bool,
    bucket: Option<String>,
    approved: Approved,
    in_flight: InFlight,
    hotswap: Option<aws_sdk_lambda::Client>,
}

/// Deploy every wave in order; stacks of a wave run concurrently. After a wave
/// with a failure, later waves are not started.
pub async fn deploy(
    cfn: Client,
    s3: aws_sdk_s3::Client,
    input: DeployInput,
    reporter: Arc<dyn Reporter>,
) -> RunReport {
    let shared = Arc::new(Shared {
        cfn,
        s3,
        input_meta: Meta {
            app: input.app,
            region: input.region,
            stack_names: input.stack_names,
            allow_replace: input.allow_replace,
            termination_protection: input.termination_protection,
            local: input.local,
            bucket: input.bucket,
            approved: input.approved,
            in_flight: input.in_flight,
            hotswap: input.lambda.filter(|_| input.hotswap),
        },
        outputs: Mutex::new(BTreeMap::new()),
        prefetched: Mutex::new(input.prefetched),
        reporter: reporter.clone(),
    });
    let semaphore = Arc::new(Semaphore::new(input.concurrency.max(1)));
    let mut results = Vec::new();
    let mut first_error: Option<Error> = None;
    let mut waves = input.waves.into_iter().enumerate();

    for (index, wave) in waves.by_ref() {
        reporter.event(&Event::Wave {
            index,
            stacks: wave.iter().map(|s| s.stack.clone()).collect(),
        });
        let mut handles = Vec::new();
        for stack in wave {
            let shared = shared.clone();
            let semaphore = semaphore.clone();
            let name = (stack.stack.clone(), stack.stack_name.clone());
            handles.push((
                name,
                tokio::spawn(async move {
                    // The semaphore is never closed, so acquiring cannot fail.
                    let _permit = semaphore.acquire_owned().await;
                    let started = Instant::now();
                    let r = deploy_stack(&shared, &stack, index).await;
                    (r, started.elapsed())
                }),
            ));
        }
        for ((stack, stack_name), handle) in handles {
            let (r, duration) = match handle.await {
                Ok(v) => v,
                Err(e) => (
                    Err(Error::Aws {
                        stack: Some(stack_name.clone()),
                        operation: "deploy",
                        message: format!("the deploy task stopped: {e}"),
                    }),
                    Duration::ZERO,
                ),
            };
            let result = match r {
                Ok((outcome, note)) => StackResult {
                    stack,
                    stack_name,
                    outcome,
                    duration,
                    note,
                },
                Err(e) => {
                    let e = as_stack_failure(e);
                    let note = Some(short_reason(&e));
                    if first_error.is_none() {
                        first_error = Some(e);
                    }
                    StackResult {
                        stack,
                        stack_name,
                        outcome: Outcome::Failed,
                        duration,
                        note,
                    }
                }
            };
            reporter.event(&Event::Finished(result.clone()));
            results.push(result);
        }
        if first_error.is_some() {
            break;
        }
    }

    let mut not_started = Vec::new();
    for (_, wave) in waves {
        for s in wave {
            not_started.push(s.stack_name.clone());
            let r = StackResult {
                stack: s.stack,
                stack_name: s.stack_name,
                outcome: Outcome::NotStarted,
                duration: Duration::ZERO,
                note: None,
            };
            reporter.event(&Event::Finished(r.clone()));
            results.push(r);
        }
    }
    if let Some(Error::StackFailed {
        not_started: ns, ..
    }) = first_error.as_mut()
    {
        *ns = not_started;
    }
    let outputs = shared.outputs.lock().map(|m| m.clone()).unwrap_or_default();
    RunReport {
        results,
        outputs,
        error: first_error,
    }
}

/// A failed AWS call while deploying a stack is that stack's failure: its message
/// is the root cause, and the run's failure report names what was not started.
fn as_stack_failure(e: Error) -> Error {
    match e {
        Error::Aws {
            stack: Some(stack_name),
            operation,
            message,
        } => Error::StackFailed {
            summary: format!("{operation} failed"),
            causes: vec![super::RootCause {
                logical_id: stack_name.clone(),
                resource_type: "AWS::CloudFormation::Stack".into(),
                status: format!("{operation} failed"),
                reason: message,
            }],
            stack_name,
            not_started: Vec::new(),
        },
        other => other,
    }
}

fn short_reason(e: &Error) -> String {
    match e {
        Error::StackFailed { summary, .. } => summary.clone(),
        Error::Unapproved { .. } => "broadening not approved".into(),
        other => other.to_string(),
    }
}

/// Upstream outputs known when a stack's wave starts: stack -> output -> value.
pub type Known = BTreeMap<String, BTreeMap<String, String>>;

/// The one planner, for `--dry-run` and a real deploy alike: a stack's plan
/// from its rendered input, what is deployed, and the upstream outputs known
/// when its wave starts. A parameter whose upstream output is not known stays
/// pending (a dry run plans it as an update that may turn out a no-op).
pub fn plan_stack(
    stack: &StackInput,
    wave: usize,
    deployed: &Deployed,
    known: &Known,
    local: bool,
    hotswap: bool,
) -> (StackPlan, Desired) {
    let parameters = stack
        .parameters
        .iter()
        .map(|(name, v)| {
            let value = match v {
                ParamValue::Pending { stack: up, output } => known
                    .get(up)
                    .and_then(|o| o.get(output))
                    .map_or_else(|| v.clone(), |val| ParamValue::Known(val.clone())),
                known_value => known_value.clone(),
            };
            (name.clone(), value)
        })
        .collect();
    let desired = Desired {
        template: stack.template.clone(),
        parameters,
        tags: stack.tags.clone(),
    };
    let mut action = plan::decide(&desired, deployed, local);
    if hotswap {
        action = plan::with_hotswap(action, &desired, deployed);
    }
    let plan = StackPlan {
        stack: stack.stack.clone(),
        stack_name: stack.stack_name.clone(),
        wave,
        status: deployed.state.status().to_string(),
        action,
        security_additions: SecurityAdditions::between(deployed.template.as_ref(), &stack.template),
    };
    (plan, desired)
}

/// The outputs of the stacks this one takes parameters from: of this run, else
/// of the deployed upstream stack once it has settled. An upstream that is not
/// deployed (or not stable) is absent.
async fn upstream_outputs(shared: &Shared, stack: &StackInput) -> Result<Known, Error> {
    let mut known = Known::new();
    for value in stack.parameters.values() {
        let ParamValue::Pending {
            stack: upstream, ..
        } = value
        else {
            continue;
        };
        if known.contains_key(upstream) {
            continue;
        }
        let from_run = shared
            .outputs
            .lock()
            .ok()
            .and_then(|m| m.get(upstream).cloned());
        if let Some(outs) = from_run {
            known.insert(upstream.clone(), outs);
            continue;
        }
        let full = shared
            .input_meta
            .stack_names
            .get(upstream)
            .cloned()
            .unwrap_or_else(|| upstream.clone());
        let mut described = cfn::describe(&shared.cfn, &full).await?;
        // Outputs mid-update may be the old or the new ones: read them once the
        // upstream's operation has settled.
        if cfn::state_of(described.as_ref()).is_in_progress() {
            shared.reporter.event(&Event::Note {
                stack: stack.stack.clone(),
                text: format!("waiting for `{full}` to settle before reading its outputs"),
            });
            cfn::wait_quietly(&shared.cfn, &full).await?;
            described = cfn::describe(&shared.cfn, &full).await?;
        }
        if let Some(s) =
            described.filter(|s| matches!(cfn::state_of(Some(s)), plan::StackState::Stable(_)))
        {
            known.insert(upstream.clone(), cfn::outputs_of(&s));
        }
    }
    Ok(known)
}

/// The parameters to deploy with: every one known once the wave has started,
/// else the upstream output that is missing.
fn deploy_parameters(
    stack: &StackInput,
    desired: &Desired,
    known: &Known,
) -> Result<BTreeMap<String, String>, Error> {
    if let Some(p) = desired.known_parameters() {
        return Ok(p);
    }
    let (upstream, output) = desired
        .parameters
        .values()
        .find_map(|v| match v {
            ParamValue::Pending { stack, output } => Some((stack.clone(), output.clone())),
            ParamValue::Known(_) => None,
        })
        .unwrap_or_default();
    Err(Error::MissingUpstream {
        stack: stack.stack.clone(),
        deployed: known.contains_key(&upstream),
        upstream,
        output,
    })
}

/// With `BARKCTL_PLAN_LOG=FILE`, each stack's plan as executed is appended to
/// FILE as one JSON line: tests compare it with `--dry-run --json`.
fn record_plan(plan: &StackPlan) {
    let Some(path) = std::env::var_os("BARKCTL_PLAN_LOG") else {
        return;
    };
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{}", serde_json::to_string(plan).unwrap_or_default());
    }
}

fn resource_count(template: &Value) -> usize {
    template
        .get("Resources")
        .and_then(Value::as_object)
        .map_or(0, |m| m.len())
}

/// Plan and deploy one stack. Returns its outcome and a note for the summary.
async fn deploy_stack(
    shared: &Shared,
    stack: &StackInput,
    wave: usize,
) -> Result<(Outcome, Option<String>), Error> {
    let client = &shared.cfn;
    let reporter = shared.reporter.as_ref();
    let meta = &shared.input_meta;
    let known = upstream_outputs(shared, stack).await?;
    let hotswap = meta.hotswap.is_some();
    let total = resource_count(&stack.template);

    let ahead = shared
        .prefetched
        .lock()
        .ok()
        .and_then(|mut p| p.remove(&stack.stack_name))
        .filter(|(read, _)| read.elapsed() < PREFETCH_FRESH);
    let mut deployed = match ahead {
        Some((_, d)) => d,
        None => cfn::deployed(client, &stack.stack_name).await?,
    };
    let mut note = None;
    let (mut planned, mut desired) =
        plan_stack(stack, wave, &deployed, &known, meta.local, hotswap);
    if let Action::Wait { status } = &planned.action {
        reporter.event(&Event::Note {
            stack: stack.stack.clone(),
            text: format!("waiting for the running operation ({status})"),
        });
        cfn::wait_quietly(client, &stack.stack_name).await?;
        deployed = cfn::deployed(client, &stack.stack_name).await?;
        (planned, desired) = plan_stack(stack, wave, &deployed, &known, meta.local, hotswap);
    }
    let parameters = deploy_parameters(stack, &desired, &known)?;
    record_plan(&planned);
    let action = planned.action;
    if action.mutates() {
        // The broadening gate, against the template deployed now (a recreated
        // stack counts as created): before any mutating call for this stack.
        let unapproved = meta
            .approved
            .unapproved(&stack.stack_name, &planned.security_additions);
        if !unapproved.is_empty() {
            return Err(Error::Unapproved {
                stacks: vec![Broadening {
                    stack: stack.stack.clone(),
                    stack_name: stack.stack_name.clone(),
                    additions: unapproved,
                }],
            });
        }
    }
    reporter.event(&Event::Started {
        stack: stack.stack.clone(),
        stack_name: stack.stack_name.clone(),
        action: action.label().to_string(),
        resources: total,
    });

    let create = match &action {
        Action::Skip { .. } => {
            finish_outputs(shared, stack, &deployed.outputs);
            ensure_protection(shared, stack, &deployed).await?;
            return Ok((Outcome::Unchanged, None));
        }
        Action::Blocked { status, hint } => {
            return Err(Error::Blocked {
                stack_name: stack.stack_name.clone(),
                status: status.clone(),
                hint: hint.clone(),
            })
        }
        Action::Recreate { status } => {
            let text = format!(
                "stack is {status} after a failed create: deleting it, then creating it again"
            );
            reporter.event(&Event::Note {
                stack: stack.stack.clone(),
                text: text.clone(),
            });
            if deployed.termination_protection {
                cfn::set_termination_protection(client, &stack.stack_name, false).await?;
            }
            cfn::delete_and_wait(client, &stack.stack, &stack.stack_name, reporter).await?;
            note = Some(format!("recreated after {status}"));
            deployed = Deployed::not_found();
            true
        }
        Action::Hotswap { functions } => {
            let lambda = meta.hotswap.as_ref().ok_or_else(|| Error::Aws {
                stack: Some(stack.stack_name.clone()),
                operation: "hotswap",
                message: "no Lambda client".into(),
            })?;
            let names = super::hotswap::apply(
                lambda,
                client,
                &stack.stack,
                &stack.stack_name,
                functions,
                reporter,
            )
            .await?;
            finish_outputs(shared, stack, &deployed.outputs);
            return Ok((
                Outcome::Hotswapped,
                Some(format!("{}{}", names.join(", "), super::HOTSWAP_NOTE)),
            ));
        }
        Action::Create => true,
        Action::Update { what } => {
            if let Some(reason) = what.iter().find(|w| w.starts_with("no hotswap: ")) {
                note = Some(reason.clone());
            }
            false
        }
        // Still in progress after `wait_quietly` returned: someone started another
        // operation meanwhile.
        Action::Wait { status } => {
            return Err(Error::WaitTimeout {
                stack_name: stack.stack_name.clone(),
                status: status.clone(),
                waited: cfn::WAIT_LIMIT,
            })
        }
    };

    let body = serde_json::to_string(&stack.template).map_err(|e| Error::Aws {
        stack: Some(stack.stack_name.clone()),
        operation: "serialise template",
        message: e.to_string(),
    })?;
    let template = assets::template_source(
        &shared.s3,
        meta.bucket.as_deref(),
        &meta.region,
        &meta.app,
        &stack.stack_name,
        body,
    )
    .await?;
    let change_set_name = cfn::change_set_name();
    let req = ChangeSetRequest {
        stack_name: &stack.stack_name,
        change_set_name: &change_set_name,
        description: None,
        create,
        template: &template,
        parameters: &parameters,
        previous: &[],
        tags: &stack.tags,
    };
    let token = cfn::request_token();
    let mut tail;
    let in_flight = |op: Option<&str>| {
        if let Ok(mut m) = meta.in_flight.lock() {
            match op {
                Some(op) => m.insert(stack.stack_name.clone(), op.to_string()),
                None => m.remove(&stack.stack_name),
            };
        }
    };
    let operation = if create { "CREATE" } else { "UPDATE" };
    if create && meta.local {
        // Nothing to review in a create; the emulator applies it directly.
        tail = EventTail::before(client, &stack.stack_name, Some(&token)).await;
        in_flight(Some(operation));
        cfn::apply_directly(client, &req, &token).await?;
    } else {
        let (id, changes) = match cfn::create_change_set(client, &req).await? {
            ChangeSetResult::NoChanges => {
                finish_outputs(shared, stack, &deployed.outputs);
                return Ok((Outcome::Unchanged, Some("no changes".into())));
            }
            ChangeSetResult::Ready { id, changes } => (id, changes),
        };
        let refusals = plan::review(
            &changes,
            deployed.template.as_ref(),
            &stack.template,
            meta.allow_replace,
        );
        if !refusals.is_empty() {
            cfn::delete_change_set(client, &stack.stack_name, &id).await;
            if create {
                cfn::discard_review_stack(client, &stack.stack_name).await;
            }
            return Err(Error::Refused {
                stack_name: stack.stack_name.clone(),
                refusals: refusals.iter().map(plan::Refusal::describe).collect(),
                overridable: refusals.iter().all(plan::Refusal::overridable),
            });
        }
        if meta.local {
            // The change set served the review; see `cfn::apply_directly` for why
            // the emulator does not execute it.
            cfn::delete_change_set(client, &stack.stack_name, &id).await;
            tail = EventTail::before(client, &stack.stack_name, Some(&token)).await;
            in_flight(Some(operation));
            cfn::apply_directly(client, &req, &token).await?;
        } else {
            tail = EventTail::before(client, &stack.stack_name, Some(&token)).await;
            in_flight(Some(operation));
            cfn::execute_change_set(client, &stack.stack_name, &id, &token).await?;
        }
    }
    let waited = cfn::wait(
        client,
        &stack.stack,
        &stack.stack_name,
        total,
        &mut tail,
        reporter,
        meta.local,
    )
    .await;
    in_flight(None);
    let (after, ok) = waited?;
    let Some(after) = after.filter(|_| ok) else {
        return Err(Error::StackFailed {
            stack_name: stack.stack_name.clone(),
            summary: "the stack operation failed".into(),
            causes: tail.failures,
            not_started: Vec::new(),
        });
    };
    let outputs = cfn::outputs_of(&after);
    finish_outputs(shared, stack, &outputs);
    let deployed_now = Deployed {
        termination_protection: after.enable_termination_protection().unwrap_or(false),
        ..Deployed::not_found()
    };
    ensure_protection(shared, stack, &deployed_now).await?;
    Ok((
        if create {
            Outcome::Created
        } else {
            Outcome::Updated
        },
        note,
    ))
}

fn finish_outputs(shared: &Shared, stack: &StackInput, outputs: &BTreeMap<String, String>) {
    if let Ok(mut m) = shared.outputs.lock() {
        m.insert(stack.stack.clone(), outputs.clone());
    }
}

/// Termination protection follows the stage (`termination_protection` in
/// project.yaml); only a difference costs a call.
async fn ensure_protection(
    shared: &Shared,
    stack: &StackInput,
    deployed: &Deployed,
) -> Result<(), Error> {
    let wanted = shared.input_meta.termination_protection;
    if deployed.termination_protection != wanted {
        cfn::set_termination_protection(&shared.cfn, &stack.stack_name, wanted).await?;
    }
    Ok(())
}

/// The plan `--dry-run` prints: each stack's action against what is deployed,
/// with upstream outputs taken from deployed stacks that this run would leave
/// unchanged, and marked pending otherwise. No mutating call is made.
pub async fn dry_run(cfn_client: Client, input: &DeployInput) -> Result<Plan, Error> {
    let mut known = Known::new();
    let mut stacks = Vec::new();
    for (wave, list) in input.waves.iter().enumerate() {
        for stack in list {
            let deployed = cfn::deployed(&cfn_client, &stack.stack_name).await?;
            for v in stack.parameters.values() {
                let ParamValue::Pending { stack: up, .. } = v else {
                    continue;
                };
                let in_run = input.waves.iter().flatten().any(|s| &s.stack == up);
                if !in_run && !known.contains_key(up) {
                    let full = input
                        .stack_names
                        .get(up)
                        .cloned()
                        .unwrap_or_else(|| up.clone());
                    let outs = cfn::describe(&cfn_client, &full)
                        .await?
                        .map(|s| cfn::outputs_of(&s))
                        .unwrap_or_default();
                    known.insert(up.clone(), outs);
                }
            }
            let (planned, _) =
                plan_stack(stack, wave, &deployed, &known, input.local, input.hotswap);
            if matches!(planned.action, Action::Skip { .. } | Action::Hotswap { .. }) {
                known.insert(stack.stack.clone(), deployed.outputs.clone());
            }
            stacks.push(planned);
        }
    }
    let approval = plan::gate(&stacks, input.approved == Approved::All, input.local);
    Ok(Plan {
        stage: input.stage.clone(),
        stacks,
        approval,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input() -> StackInput {
        StackInput {
            stack: "alerts".into(),
            stack_name: "app-dev-alerts".into(),
            template: json!({"Parameters": {"QueueArn": {"Type": "String"}}, "Resources": {}}),
            parameters: BTreeMap::from([(
                "QueueArn".to_string(),
                ParamValue::Pending {
                    stack: "queue".into(),
                    output: "QueueArn".into(),
                },
            )]),
            tags: BTreeMap::new(),
        }
    }

    fn deployed(arn: &str) -> Deployed {
        Deployed {
            state: plan::StackState::from_status(Some("UPDATE_COMPLETE")),
            template: Some(input().template),
            parameters: BTreeMap::from([("QueueArn".to_string(), arn.to_string())]),
            ..Deployed::not_found()
        }
    }

    fn known(arn: &str) -> Known {
        BTreeMap::from([(
            "queue".to_string(),
            BTreeMap::from([("QueueArn".to_string(), arn.to_string())]),
        )])
    }

    /// The dry run and the deploy share this planner: what differs between them
    /// is only which upstream outputs are known when the stack's wave starts.
    #[test]
    fn a_plan_is_completed_with_the_upstream_outputs_known_at_its_wave() {
        let (pending, desired) =
            plan_stack(&input(), 1, &deployed("arn:q"), &Known::new(), false, false);
        assert_eq!(
            pending.action,
            Action::Update {
                what: vec!["parameters (pending upstream outputs)".into()]
            }
        );
        assert!(matches!(
            deploy_parameters(&input(), &desired, &Known::new()),
            Err(Error::MissingUpstream {
                deployed: false,
                ..
            })
        ));

        let (same, desired) = plan_stack(
            &input(),
            1,
            &deployed("arn:q"),
            &known("arn:q"),
            false,
            false,
        );
        assert_eq!(
            same.action,
            Action::Skip {
                reason: plan::SkipReason::Unchanged
            }
        );
        assert_eq!((same.wave, same.status.as_str()), (1, "UPDATE_COMPLETE"));
        assert_eq!(
            deploy_parameters(&input(), &desired, &known("arn:q")).ok(),
            Some(BTreeMap::from([(
                "QueueArn".to_string(),
                "arn:q".to_string()
            )]))
        );

        let (changed, _) = plan_stack(
            &input(),
            1,
            &deployed("arn:q"),
            &known("arn:new"),
            false,
            false,
        );
        assert_eq!(
            changed.action,
            Action::Update {
                what: vec!["parameters".into()]
            }
        );
    }
}
