//! Pure planning: rendered templates + deployed state -> what happens to each stack.
//!
//! Nothing here calls AWS. `deploy/` reads the deployed state into [`Deployed`],
//! renders the wanted state into [`Desired`], and asks [`decide`] what to do; the
//! review gates ([`review`]) judge a change set's changes the same way. `--dry-run`
//! prints a [`Plan`] built from the same values.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::diff::security::{self, IamStatement, SgRule};

pub mod hotswap;

pub use hotswap::FunctionSwap;

/// A stack's status as DescribeStacks reports it, grouped by what barkctl can do
/// with it (success / in progress / failure, as CloudFormation's own docs group them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "status", rename_all = "snake_case")]
pub enum StackState {
    /// DescribeStacks says the stack does not exist (or it was deleted).
    NotFound,
    /// Created by a CREATE change set that was never executed: no resources yet.
    ReviewInProgress,
    /// CREATE_COMPLETE, UPDATE_COMPLETE, UPDATE_ROLLBACK_COMPLETE, IMPORT_COMPLETE...:
    /// resources exist and an update may start.
    Stable(String),
    /// Any *_IN_PROGRESS: another operation runs; wait for it.
    InProgress(String),
    /// ROLLBACK_COMPLETE after a failed create: only deleting it is possible.
    RollbackComplete,
    /// UPDATE_ROLLBACK_FAILED: a person must continue the rollback first.
    UpdateRollbackFailed,
    /// CREATE_FAILED, ROLLBACK_FAILED, DELETE_FAILED, IMPORT_ROLLBACK_FAILED.
    Failed(String),
}

impl StackState {
    /// Classify a StackStatus string (`None` or `DELETE_COMPLETE`: not found).
    pub fn from_status(status: Option<&str>) -> Self {
        let Some(s) = status else {
            return StackState::NotFound;
        };
        match s {
            "DELETE_COMPLETE" => StackState::NotFound,
            "REVIEW_IN_PROGRESS" => StackState::ReviewInProgress,
            "ROLLBACK_COMPLETE" => StackState::RollbackComplete,
            "UPDATE_ROLLBACK_FAILED" => StackState::UpdateRollbackFailed,
            s if s.ends_with("_IN_PROGRESS") => StackState::InProgress(s.to_string()),
            s if s.ends_with("_FAILED") => StackState::Failed(s.to_string()),
            s => StackState::Stable(s.to_string()),
        }
    }

    pub fn is_in_progress(&self) -> bool {
        matches!(
            self,
            StackState::InProgress(_) | StackState::ReviewInProgress
        )
    }

    /// The status text, for messages.
    pub fn status(&self) -> &str {
        match self {
            StackState::NotFound => "NOT_FOUND",
            StackState::ReviewInProgress => "REVIEW_IN_PROGRESS",
            StackState::Stable(s) | StackState::InProgress(s) | StackState::Failed(s) => s,
            StackState::RollbackComplete => "ROLLBACK_COMPLETE",
            StackState::UpdateRollbackFailed => "UPDATE_ROLLBACK_FAILED",
        }
    }
}

/// The outcome of an operation barkctl waits for, from a stack status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    Pending,
    Succeeded,
    Failed,
}

/// Whether an operation of `kind` has settled, judged by the stack's status.
pub fn settled(status: &str) -> Settled {
    match status {
        "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "DELETE_COMPLETE" | "IMPORT_COMPLETE" => {
            Settled::Succeeded
        }
        s if s.ends_with("_IN_PROGRESS") => Settled::Pending,
        // ROLLBACK_COMPLETE, UPDATE_ROLLBACK_COMPLETE, *_FAILED: the operation failed
        // even where the stack itself is usable again.
        _ => Settled::Failed,
    }
}

/// What is deployed now for one stack.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployed {
    pub state: StackState,
    /// The template as submitted (GetTemplate, stage Original), parsed.
    pub template: Option<Value>,
    pub parameters: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub outputs: BTreeMap<String, String>,
    pub termination_protection: bool,
}

impl Deployed {
    pub fn not_found() -> Self {
        Deployed {
            state: StackState::NotFound,
            template: None,
            parameters: BTreeMap::new(),
            tags: BTreeMap::new(),
            outputs: BTreeMap::new(),
            termination_protection: false,
        }
    }
}

/// A parameter's value as far as it is known before deploying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ParamValue {
    Known(String),
    /// An upstream output that this run has not produced yet (dry runs, or an
    /// upstream stack that is created in an earlier wave of the same run).
    Pending {
        stack: String,
        output: String,
    },
}

/// What barkctl wants deployed for one stack.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub template: Value,
    pub parameters: BTreeMap<String, ParamValue>,
    pub tags: BTreeMap<String, String>,
}

impl Desired {
    /// Every parameter as a string, when all are known.
    pub fn known_parameters(&self) -> Option<BTreeMap<String, String>> {
        self.parameters
            .iter()
            .map(|(k, v)| match v {
                ParamValue::Known(s) => Some((k.clone(), s.clone())),
                ParamValue::Pending { .. } => None,
            })
            .collect()
    }
}

/// Why a stack is left alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Template, parameters and tags equal what is deployed.
    Unchanged,
    /// The change set found nothing to do (e.g. only values CloudFormation normalises).
    NoChanges,
}

/// What happens to one stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    Create,
    /// `what` lists the parts that differ (template, parameters, tags).
    Update {
        what: Vec<String>,
    },
    Skip {
        reason: SkipReason,
    },
    /// `deploy --hotswap`: only functions' code or environment differ; update them
    /// through the Lambda API, no stack operation (the stack drifts from its
    /// template until the next full deploy).
    Hotswap {
        functions: Vec<FunctionSwap>,
    },
    /// Delete, then create: the stack is in ROLLBACK_COMPLETE after a failed create
    /// (or REVIEW_IN_PROGRESS / stuck in an emulator that never rolls back).
    Recreate {
        status: String,
    },
    /// Another operation runs on the stack: wait for it, then plan again.
    Wait {
        status: String,
    },
    /// Nothing barkctl can do until a person acts.
    Blocked {
        status: String,
        hint: String,
    },
}

impl Action {
    pub fn label(&self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update { .. } => "update",
            Action::Skip { .. } => "skip",
            Action::Hotswap { .. } => "hotswap",
            Action::Recreate { .. } => "recreate",
            Action::Wait { .. } => "wait",
            Action::Blocked { .. } => "blocked",
        }
    }

    /// Would carrying this out call a mutating API?
    pub fn mutates(&self) -> bool {
        matches!(
            self,
            Action::Create
                | Action::Update { .. }
                | Action::Recreate { .. }
                | Action::Hotswap { .. }
        )
    }
}

/// `deploy --hotswap`: an update that a hotswap covers (see [`hotswap::plan`])
/// becomes [`Action::Hotswap`]; any other update stays one, with `no hotswap:`
/// and the reason added to its `what`. Other actions are kept as they are.
pub fn with_hotswap(action: Action, desired: &Desired, deployed: &Deployed) -> Action {
    let Action::Update { mut what } = action else {
        return action;
    };
    let swaps = match (
        &deployed.state,
        &deployed.template,
        desired.known_parameters(),
    ) {
        (StackState::Stable(_), _, _) if desired.tags != deployed.tags => {
            Err("tags changed".to_string())
        }
        (StackState::Stable(_), Some(template), Some(passed)) => {
            let mut wanted = with_defaults(&desired.template, passed);
            // DescribeStacks masks `NoEcho` values: only their presence counts.
            for (k, v) in wanted.iter_mut() {
                if is_no_echo(&desired.template, k) {
                    if let Some(d) = deployed.parameters.get(k) {
                        v.clone_from(d);
                    }
                }
            }
            hotswap::plan(template, &deployed.parameters, &desired.template, &wanted)
        }
        (StackState::Stable(_), None, _) => Err("the deployed template cannot be read".into()),
        (StackState::Stable(_), _, None) => Err("parameters wait for upstream outputs".into()),
        (state, _, _) => Err(format!("the stack is {}", state.status())),
    };
    match swaps {
        Ok(functions) if !functions.is_empty() => Action::Hotswap { functions },
        Ok(_) => {
            what.push("no hotswap: no function code or environment changed".into());
            Action::Update { what }
        }
        Err(reason) => {
            what.push(format!("no hotswap: {reason}"));
            Action::Update { what }
        }
    }
}

/// Decide what to do with one stack. `local` stacks run on an emulator whose
/// operations finish synchronously: a stack still in progress there is stuck
/// (a failed operation that never rolled back), so it is recreated, not waited for.
pub fn decide(desired: &Desired, deployed: &Deployed, local: bool) -> Action {
    match &deployed.state {
        StackState::NotFound => Action::Create,
        StackState::ReviewInProgress => Action::Recreate {
            status: "REVIEW_IN_PROGRESS".into(),
        },
        StackState::RollbackComplete => Action::Recreate {
            status: "ROLLBACK_COMPLETE".into(),
        },
        StackState::UpdateRollbackFailed => Action::Blocked {
            status: "UPDATE_ROLLBACK_FAILED".into(),
            hint: format!(
                "continue the rollback first: `aws cloudformation continue-update-rollback --stack-name <stack>`{}",
                ", skipping resources that cannot roll back with `--resources-to-skip`"
            ),
        },
        // The emulator never finishes what it failed: an update stuck in progress
        // is applied again (the stack and its data stay), a stuck create is
        // recreated (it never worked).
        StackState::InProgress(s) if local && s.starts_with("UPDATE_") => {
            let mut what = differences(desired, deployed);
            what.push(format!("left in {s} by a failed update"));
            Action::Update { what }
        }
        StackState::InProgress(s) if local => Action::Recreate { status: s.clone() },
        StackState::InProgress(s) => Action::Wait { status: s.clone() },
        StackState::Failed(s) if s == "DELETE_FAILED" || s == "CREATE_FAILED" => {
            Action::Recreate { status: s.clone() }
        }
        StackState::Failed(s) => Action::Blocked {
            status: s.clone(),
            hint: "inspect the stack's events in the CloudFormation console and repair it by hand"
                .into(),
        },
        StackState::Stable(_) => {
            let what = differences(desired, deployed);
            if what.is_empty() {
                Action::Skip {
                    reason: SkipReason::Unchanged,
                }
            } else {
                Action::Update { what }
            }
        }
    }
}

/// The parts of a stack that differ between wanted and deployed.
pub fn differences(desired: &Desired, deployed: &Deployed) -> Vec<String> {
    let mut what = Vec::new();
    if deployed.template.as_ref() != Some(&desired.template) {
        what.push("template".to_string());
    }
    match desired
        .known_parameters()
        .map(|p| with_defaults(&desired.template, p))
    {
        Some(p) if same_parameters(&desired.template, &p, &deployed.parameters) => {}
        Some(_) => what.push("parameters".to_string()),
        // An upstream output is produced later in this run: it may differ.
        None => what.push("parameters (pending upstream outputs)".to_string()),
    }
    if desired.tags != deployed.tags {
        what.push("tags".to_string());
    }
    what
}

/// The parameters a stack gets: the ones passed, plus the template's own
/// parameters at their `Default` (DescribeStacks lists those too).
fn with_defaults(
    template: &Value,
    mut passed: BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let declared = template.get("Parameters").and_then(Value::as_object);
    for (name, decl) in declared.into_iter().flatten() {
        if passed.contains_key(name) {
            continue;
        }
        let value = match decl.get("Default") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join(","),
            Some(other) => other.to_string(),
            None => continue,
        };
        passed.insert(name.clone(), value);
    }
    passed
}

/// Equal parameters; `NoEcho` ones are masked by DescribeStacks, so only their
/// presence is compared.
fn same_parameters(
    template: &Value,
    wanted: &BTreeMap<String, String>,
    deployed: &BTreeMap<String, String>,
) -> bool {
    wanted.len() == deployed.len()
        && wanted.iter().all(|(k, v)| {
            deployed
                .get(k)
                .is_some_and(|d| d == v || is_no_echo(template, k))
        })
}

fn is_no_echo(template: &Value, name: &str) -> bool {
    template
        .pointer(&format!("/Parameters/{name}/NoEcho"))
        .is_some_and(|v| v == &Value::Bool(true) || v == "true")
}

/// One stack's line in the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StackPlan {
    pub stack: String,
    pub stack_name: String,
    pub wave: usize,
    pub status: String,
    #[serde(flatten)]
    pub action: Action,
    /// IAM statements and security-group rules the rendered template adds to
    /// the deployed one (all of them for a stack that is created): what the
    /// broadening gate asks about.
    pub security_additions: SecurityAdditions,
}

/// What a deploy would do, wave by wave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub stage: String,
    pub stacks: Vec<StackPlan>,
    /// The broadening gate's verdict for this plan (see [`gate`]).
    pub approval: Approval,
}

/// Grants a deploy adds: new IAM statements (or statement-like grants) and new
/// security-group rules. Removals never need approval, so they are not kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SecurityAdditions {
    pub iam: Vec<IamStatement>,
    pub sg: Vec<SgRule>,
}

impl SecurityAdditions {
    /// The additions of `rendered` over `deployed` (`None`: the stack is created,
    /// or recreated, so every grant it holds is new), from `diff::security`.
    pub fn between(deployed: Option<&Value>, rendered: &Value) -> Self {
        let changes = security::compare(deployed, rendered);
        SecurityAdditions {
            iam: changes.iam_added,
            sg: changes.sg_added,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.iam.is_empty() && self.sg.is_empty()
    }

    /// Every addition here was also in `approved` (what a person said yes to).
    pub fn within(&self, approved: &SecurityAdditions) -> bool {
        self.iam.iter().all(|x| approved.iam.contains(x))
            && self.sg.iter().all(|x| approved.sg.contains(x))
    }

    /// One line per addition, for the prompt, the refusal and `--dry-run`:
    /// `IAM QueuePolicy: Allow sqs:SendMessage on arn:... to Service:sns.amazonaws.com`.
    pub fn lines(&self) -> Vec<String> {
        let list = |v: &[String]| {
            if v.is_empty() {
                "-".to_string()
            } else {
                v.join(", ")
            }
        };
        let mut out = Vec::new();
        for x in &self.iam {
            let mut line = format!(
                "IAM {}: {} {} on {}",
                x.resource,
                x.effect,
                list(&x.actions),
                list(&x.resources)
            );
            if !x.principals.is_empty() {
                line.push_str(&format!(" to {}", list(&x.principals)));
            }
            if let Some(c) = &x.condition {
                line.push_str(&format!(" when {c}"));
            }
            out.push(line);
        }
        for x in &self.sg {
            let way = if x.direction == "egress" {
                "to"
            } else {
                "from"
            };
            let mut line = format!(
                "SG {}: {} {} port {} {way} {}",
                x.group, x.direction, x.protocol, x.ports, x.peer
            );
            if let Some(d) = &x.description {
                line.push_str(&format!(" ({d})"));
            }
            out.push(line);
        }
        out
    }
}

/// The broadening gate (DESIGN.md: "IAM or security-group broadening needs
/// `--yes` when there is no TTY"), like CDK's `--require-approval broadening`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "gate", rename_all = "snake_case")]
pub enum Approval {
    /// No stack that would be created or updated adds a grant.
    NotNeeded,
    /// `--yes`: every addition is approved up front.
    ApprovedByFlag,
    /// A `local: true` stage (the emulator): not gated, so that
    /// `deploy --stage local` works on a fresh machine without a TTY.
    LocalStage,
    /// These stacks add grants; a person must approve them (`y` on a TTY) or the
    /// deploy is refused (no TTY) before any mutating call.
    Required { stacks: Vec<Broadening> },
}

/// One stack's additions that need approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Broadening {
    pub stack: String,
    pub stack_name: String,
    pub additions: SecurityAdditions,
}

/// Decide the gate for a plan: only stacks that would be created, updated or
/// recreated count (a skipped stack adds nothing; one that must wait for another
/// operation is judged by the run once it gets to it, and refused there when it
/// broadens without approval).
pub fn gate(stacks: &[StackPlan], yes: bool, local: bool) -> Approval {
    let broadening: Vec<Broadening> = stacks
        .iter()
        .filter(|s| s.action.mutates())
        .filter(|s| !s.security_additions.is_empty())
        .map(|s| Broadening {
            stack: s.stack.clone(),
            stack_name: s.stack_name.clone(),
            additions: s.security_additions.clone(),
        })
        .collect();
    if broadening.is_empty() {
        Approval::NotNeeded
    } else if local {
        Approval::LocalStage
    } else if yes {
        Approval::ApprovedByFlag
    } else {
        Approval::Required { stacks: broadening }
    }
}

/// What the deploy run may add, per stack: the gate's answer handed to `deploy/`,
/// which checks each stack again against what is deployed when it gets to it and
/// refuses additions nobody approved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approved {
    /// `--yes`, a local stage, or barkctl's own toolkit stack.
    All,
    /// Stack name -> the additions a person approved (absent: none).
    Only(BTreeMap<String, SecurityAdditions>),
}

impl Approved {
    /// The additions of one stack that nobody approved (empty: it may go ahead).
    pub fn unapproved(&self, stack_name: &str, additions: &SecurityAdditions) -> SecurityAdditions {
        match self {
            Approved::All => SecurityAdditions::default(),
            Approved::Only(map) => {
                let ok = map.get(stack_name).cloned().unwrap_or_default();
                SecurityAdditions {
                    iam: additions
                        .iam
                        .iter()
                        .filter(|x| !ok.iam.contains(x))
                        .cloned()
                        .collect(),
                    sg: additions
                        .sg
                        .iter()
                        .filter(|x| !ok.sg.contains(x))
                        .cloned()
                        .collect(),
                }
            }
        }
    }
}

/// A change set's change, reduced to what the review gates need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub action: ChangeAction,
    pub logical_id: String,
    pub resource_type: String,
    /// `True`, `Conditional`, or `False`; `None` where the endpoint does not say.
    pub replacement: Option<String>,
    /// The parts that change (`Properties`, `Tags`), as the change set lists them.
    pub scope: Vec<String>,
    /// Each changed attribute and whether changing it recreates the resource.
    pub details: Vec<ChangeDetail>,
}

/// One changed attribute of a resource in a change set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeDetail {
    /// `Properties.Timeout` (attribute, then name where there is one).
    pub path: String,
    /// `Always`, `Conditionally` or `Never`; `None` where the endpoint does not say.
    pub recreation: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeAction {
    Add,
    Modify,
    Remove,
    Import,
    Dynamic,
    /// An action barkctl does not know (or none at all): the review refuses it
    /// rather than guess what it does to the resource.
    Unknown(String),
}

impl ChangeAction {
    pub fn parse(s: &str) -> Self {
        match s {
            "Add" => ChangeAction::Add,
            "Modify" => ChangeAction::Modify,
            "Remove" => ChangeAction::Remove,
            "Import" => ChangeAction::Import,
            "Dynamic" => ChangeAction::Dynamic,
            other => ChangeAction::Unknown(other.to_string()),
        }
    }
}

/// Resource types whose replacement or removal loses data: the one list that
/// deploy's review gates and diff's classification both use.
pub const STATEFUL_TYPES: &[&str] = &[
    "AWS::DynamoDB::Table",
    "AWS::DynamoDB::GlobalTable",
    "AWS::RDS::DBInstance",
    "AWS::RDS::DBCluster",
    "AWS::SecretsManager::Secret",
    "AWS::S3::Bucket",
    "AWS::Logs::LogGroup",
    "AWS::EFS::FileSystem",
    "AWS::KMS::Key",
];

pub fn is_stateful(resource_type: &str) -> bool {
    STATEFUL_TYPES.contains(&resource_type)
}

/// A change the review gates refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub logical_id: String,
    pub resource_type: String,
    pub what: Refused,
}

/// Why a change is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// `Replacement: True`, or the resource's `Type` changed.
    Replaced,
    /// `Replacement: Conditional`: CloudFormation decides while updating, so it
    /// is treated as a replacement.
    MayBeReplaced,
    Removed,
    /// A change action barkctl does not know; `--allow-replace` does not pass it.
    UnknownAction(String),
}

impl Refusal {
    /// `` `Table` (AWS::DynamoDB::Table) would be replaced ``
    pub fn describe(&self) -> String {
        let what = match &self.what {
            Refused::Replaced => "would be replaced".to_string(),
            Refused::MayBeReplaced => {
                "may be replaced (the change set says `Replacement: Conditional`)".to_string()
            }
            Refused::Removed => "would be removed".to_string(),
            Refused::UnknownAction(a) if a.is_empty() => {
                "has a change with no action, which barkctl cannot review".to_string()
            }
            Refused::UnknownAction(a) => {
                format!("has a change action `{a}` that barkctl does not know")
            }
        };
        format!("`{}` ({}) {what}", self.logical_id, self.resource_type)
    }

    /// `--allow-replace` would let this change through.
    pub fn overridable(&self) -> bool {
        !matches!(self.what, Refused::UnknownAction(_))
    }
}

/// Review gates (DESIGN.md "Deploy" 6): replacing or removing a stateful resource
/// is refused unless `allow_replace`. The change set's Replacement field is used
/// where the endpoint gives it (`Conditional` counts as a replacement: whether it
/// happens is only known during the update); the templates fill the gaps: a removed
/// resource whose `DeletionPolicy` is `Retain` keeps its data and passes, and a
/// logical id whose `Type` changed is a replacement whatever the endpoint says.
/// A change action barkctl does not know is refused on any resource, even with
/// `allow_replace`: what it would do cannot be judged.
pub fn review(
    changes: &[Change],
    old_template: Option<&Value>,
    new_template: &Value,
    allow_replace: bool,
) -> Vec<Refusal> {
    let resource = |t: Option<&Value>, id: &str| -> Option<Value> {
        t.and_then(|t| t.get("Resources"))
            .and_then(|r| r.get(id))
            .cloned()
    };
    let mut refused = Vec::new();
    let mut refuse = |c: &Change, what: Refused| {
        refused.push(Refusal {
            logical_id: c.logical_id.clone(),
            resource_type: c.resource_type.clone(),
            what,
        })
    };
    for c in changes {
        if let ChangeAction::Unknown(a) = &c.action {
            refuse(c, Refused::UnknownAction(a.clone()));
            continue;
        }
        if allow_replace || !is_stateful(&c.resource_type) {
            continue;
        }
        match c.action {
            ChangeAction::Remove => {
                let retained = resource(old_template, &c.logical_id)
                    .and_then(|r| r.get("DeletionPolicy").cloned())
                    .is_some_and(|p| p == "Retain");
                if !retained {
                    refuse(c, Refused::Removed);
                }
            }
            ChangeAction::Modify => {
                let old_type =
                    resource(old_template, &c.logical_id).and_then(|r| r.get("Type").cloned());
                let new_type = resource(Some(new_template), &c.logical_id)
                    .and_then(|r| r.get("Type").cloned());
                let type_changed = old_type.is_some() && old_type != new_type;
                match c.replacement.as_deref() {
                    _ if type_changed => refuse(c, Refused::Replaced),
                    Some("True") => refuse(c, Refused::Replaced),
                    Some("Conditional") => refuse(c, Refused::MayBeReplaced),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    refused
}

/// Resources that outlive their stack (`DeletionPolicy: Retain` or `Snapshot`),
/// as (logical id, type, policy): `destroy` lists them as kept.
pub fn retained_resources(template: &Value) -> Vec<(String, String, String)> {
    let Some(resources) = template.get("Resources").and_then(Value::as_object) else {
        return Vec::new();
    };
    resources
        .iter()
        .filter_map(|(id, r)| {
            let policy = r.get("DeletionPolicy")?.as_str()?;
            if policy == "Retain" || policy == "Snapshot" || policy == "RetainExceptOnCreate" {
                let ty = r.get("Type").and_then(Value::as_str).unwrap_or("?");
                Some((id.clone(), ty.to_string(), policy.to_string()))
            } else {
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn desired() -> Desired {
        Desired {
            template: json!({"Resources": {"T": {"Type": "AWS::SQS::Queue"}}}),
            parameters: BTreeMap::from([(
                "NetworkVpcId".into(),
                ParamValue::Known("vpc-1".into()),
            )]),
            tags: BTreeMap::from([("barkctl:stage".into(), "dev".into())]),
        }
    }

    fn deployed_as(d: &Desired, status: &str) -> Deployed {
        Deployed {
            state: StackState::from_status(Some(status)),
            template: Some(d.template.clone()),
            parameters: d.known_parameters().expect("known"),
            tags: d.tags.clone(),
            outputs: BTreeMap::new(),
            termination_protection: false,
        }
    }

    #[test]
    fn statuses_are_grouped() {
        assert_eq!(StackState::from_status(None), StackState::NotFound);
        assert_eq!(
            StackState::from_status(Some("DELETE_COMPLETE")),
            StackState::NotFound
        );
        assert_eq!(
            StackState::from_status(Some("UPDATE_ROLLBACK_COMPLETE")),
            StackState::Stable("UPDATE_ROLLBACK_COMPLETE".into())
        );
        assert_eq!(
            StackState::from_status(Some("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")),
            StackState::InProgress("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS".into())
        );
        assert_eq!(
            StackState::from_status(Some("ROLLBACK_COMPLETE")),
            StackState::RollbackComplete
        );
        assert_eq!(
            StackState::from_status(Some("UPDATE_ROLLBACK_FAILED")),
            StackState::UpdateRollbackFailed
        );
        assert_eq!(
            StackState::from_status(Some("DELETE_FAILED")),
            StackState::Failed("DELETE_FAILED".into())
        );
    }

    #[test]
    fn settled_distinguishes_rolled_back_updates_from_success() {
        assert_eq!(settled("UPDATE_COMPLETE"), Settled::Succeeded);
        assert_eq!(settled("UPDATE_ROLLBACK_COMPLETE"), Settled::Failed);
        assert_eq!(settled("ROLLBACK_COMPLETE"), Settled::Failed);
        assert_eq!(settled("UPDATE_ROLLBACK_IN_PROGRESS"), Settled::Pending);
    }

    #[test]
    fn missing_stack_is_created() {
        assert_eq!(
            decide(&desired(), &Deployed::not_found(), false),
            Action::Create
        );
    }

    #[test]
    fn equal_template_parameters_and_tags_skip() {
        let d = desired();
        let action = decide(&d, &deployed_as(&d, "UPDATE_COMPLETE"), false);
        assert_eq!(
            action,
            Action::Skip {
                reason: SkipReason::Unchanged
            }
        );
        assert!(!action.mutates());
    }

    #[test]
    fn a_changed_parameter_is_an_update_naming_it() {
        let d = desired();
        let mut dep = deployed_as(&d, "CREATE_COMPLETE");
        dep.parameters.insert("NetworkVpcId".into(), "vpc-2".into());
        assert_eq!(
            decide(&d, &dep, false),
            Action::Update {
                what: vec!["parameters".into()]
            }
        );
    }

    #[test]
    fn template_defaults_and_no_echo_values_do_not_count_as_changes() {
        let mut d = desired();
        d.template = json!({
            "Parameters": {
                "Retention": {"Type": "Number", "Default": 7},
                "Token": {"Type": "String", "NoEcho": true},
                "NetworkVpcId": {"Type": "String"}
            },
            "Resources": {"T": {"Type": "AWS::SQS::Queue"}}
        });
        d.parameters
            .insert("Token".into(), ParamValue::Known("secret".into()));
        let mut dep = deployed_as(&d, "UPDATE_COMPLETE");
        dep.parameters.insert("Retention".into(), "7".into());
        dep.parameters.insert("Token".into(), "****".into());
        assert!(matches!(decide(&d, &dep, false), Action::Skip { .. }));
        dep.parameters.insert("Retention".into(), "30".into());
        assert!(matches!(decide(&d, &dep, false), Action::Update { .. }));
    }

    #[test]
    fn template_and_tag_changes_are_named() {
        let d = desired();
        let mut dep = deployed_as(&d, "CREATE_COMPLETE");
        dep.template = Some(json!({"Resources": {}}));
        dep.tags.clear();
        assert_eq!(
            decide(&d, &dep, false),
            Action::Update {
                what: vec!["template".into(), "tags".into()]
            }
        );
    }

    #[test]
    fn pending_upstream_outputs_count_as_a_possible_change() {
        let mut d = desired();
        let dep = deployed_as(&d, "CREATE_COMPLETE");
        d.parameters.insert(
            "NetworkVpcId".into(),
            ParamValue::Pending {
                stack: "network".into(),
                output: "VpcId".into(),
            },
        );
        assert!(matches!(decide(&d, &dep, false), Action::Update { .. }));
    }

    #[test]
    fn failed_create_is_recreated_and_failed_rollback_blocks() {
        let d = desired();
        assert_eq!(
            decide(&d, &deployed_as(&d, "ROLLBACK_COMPLETE"), false),
            Action::Recreate {
                status: "ROLLBACK_COMPLETE".into()
            }
        );
        let blocked = decide(&d, &deployed_as(&d, "UPDATE_ROLLBACK_FAILED"), false);
        match blocked {
            Action::Blocked { hint, .. } => assert!(hint.contains("continue-update-rollback")),
            other => panic!("expected blocked, got {other:?}"),
        }
    }

    #[test]
    fn in_progress_waits_on_aws_but_is_recreated_on_the_emulator() {
        let d = desired();
        let dep = deployed_as(&d, "CREATE_IN_PROGRESS");
        assert_eq!(
            decide(&d, &dep, false),
            Action::Wait {
                status: "CREATE_IN_PROGRESS".into()
            }
        );
        assert_eq!(
            decide(&d, &dep, true),
            Action::Recreate {
                status: "CREATE_IN_PROGRESS".into()
            }
        );
        // A failed update on the emulator is retried in place, keeping the stack.
        let stuck = deployed_as(&d, "UPDATE_IN_PROGRESS");
        assert_eq!(
            decide(&d, &stuck, true),
            Action::Update {
                what: vec!["left in UPDATE_IN_PROGRESS by a failed update".into()]
            }
        );
    }

    fn change(action: ChangeAction, id: &str, ty: &str, replacement: Option<&str>) -> Change {
        Change {
            action,
            logical_id: id.into(),
            resource_type: ty.into(),
            replacement: replacement.map(str::to_string),
            scope: Vec::new(),
            details: Vec::new(),
        }
    }

    #[test]
    fn review_refuses_replacing_or_removing_a_table() {
        let old = json!({"Resources": {
            "Table": {"Type": "AWS::DynamoDB::Table"},
            "Kept": {"Type": "AWS::DynamoDB::Table", "DeletionPolicy": "Retain"},
            "Fn": {"Type": "AWS::Lambda::Function"}
        }});
        let new = json!({"Resources": {"Table": {"Type": "AWS::DynamoDB::Table"}}});
        let changes = vec![
            change(
                ChangeAction::Modify,
                "Table",
                "AWS::DynamoDB::Table",
                Some("True"),
            ),
            change(ChangeAction::Remove, "Kept", "AWS::DynamoDB::Table", None),
            change(ChangeAction::Remove, "Fn", "AWS::Lambda::Function", None),
        ];
        let refused = review(&changes, Some(&old), &new, false);
        assert_eq!(
            refused,
            vec![Refusal {
                logical_id: "Table".into(),
                resource_type: "AWS::DynamoDB::Table".into(),
                what: Refused::Replaced
            }]
        );
        assert!(review(&changes, Some(&old), &new, true).is_empty());

        let removed = vec![change(
            ChangeAction::Remove,
            "Table",
            "AWS::DynamoDB::Table",
            None,
        )];
        assert_eq!(
            review(&removed, Some(&old), &json!({}), false)[0].what,
            Refused::Removed
        );
    }

    #[test]
    fn in_place_changes_without_replacement_info_pass() {
        let t = json!({"Resources": {"Table": {"Type": "AWS::DynamoDB::Table"}}});
        let changes = vec![change(
            ChangeAction::Modify,
            "Table",
            "AWS::DynamoDB::Table",
            None,
        )];
        assert!(review(&changes, Some(&t), &t, false).is_empty());
    }

    #[test]
    fn conditional_replacement_of_a_stateful_resource_is_refused() {
        let t = json!({"Resources": {
            "Table": {"Type": "AWS::DynamoDB::Table"},
            "Fn": {"Type": "AWS::Lambda::Function"}
        }});
        let changes = vec![
            change(
                ChangeAction::Modify,
                "Table",
                "AWS::DynamoDB::Table",
                Some("Conditional"),
            ),
            // Stateless: a conditional replacement of a function loses nothing.
            change(
                ChangeAction::Modify,
                "Fn",
                "AWS::Lambda::Function",
                Some("Conditional"),
            ),
        ];
        let refused = review(&changes, Some(&t), &t, false);
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!(refused[0].logical_id, "Table");
        assert_eq!(refused[0].what, Refused::MayBeReplaced);
        assert!(refused[0].overridable());
        assert!(
            refused[0].describe().contains("Replacement: Conditional"),
            "{}",
            refused[0].describe()
        );
        assert!(review(&changes, Some(&t), &t, true).is_empty());
        // `False` stays an in-place change.
        let in_place = vec![change(
            ChangeAction::Modify,
            "Table",
            "AWS::DynamoDB::Table",
            Some("False"),
        )];
        assert!(review(&in_place, Some(&t), &t, false).is_empty());
    }

    #[test]
    fn unknown_change_actions_are_refused_even_with_allow_replace() {
        assert_eq!(ChangeAction::parse("Modify"), ChangeAction::Modify);
        assert_eq!(
            ChangeAction::parse("SyncWithActual"),
            ChangeAction::Unknown("SyncWithActual".into())
        );
        assert_eq!(
            ChangeAction::parse(""),
            ChangeAction::Unknown(String::new())
        );
        let t = json!({"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}});
        let changes = vec![change(
            ChangeAction::parse("SyncWithActual"),
            "Q",
            "AWS::SQS::Queue",
            None,
        )];
        for allow_replace in [false, true] {
            let refused = review(&changes, Some(&t), &t, allow_replace);
            assert_eq!(
                refused,
                vec![Refusal {
                    logical_id: "Q".into(),
                    resource_type: "AWS::SQS::Queue".into(),
                    what: Refused::UnknownAction("SyncWithActual".into()),
                }]
            );
            assert!(!refused[0].overridable());
            assert_eq!(
                refused[0].describe(),
                "`Q` (AWS::SQS::Queue) has a change action `SyncWithActual` that barkctl does not know"
            );
        }
    }

    fn policy_template(actions: &[&str]) -> Value {
        let statements: Vec<Value> = actions
            .iter()
            .map(|a| json!({"Effect": "Allow", "Action": a, "Resource": "*", "Principal": {"Service": "sns.amazonaws.com"}}))
            .collect();
        json!({"Resources": {
            "QueuePolicy": {"Type": "AWS::SQS::QueuePolicy", "Properties": {
                "Queues": ["q"],
                "PolicyDocument": {"Statement": statements}
            }},
            "Sg": {"Type": "AWS::EC2::SecurityGroup", "Properties": {
                "GroupDescription": "d",
                "SecurityGroupIngress": [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": "10.0.0.0/16"}]
            }}
        }})
    }

    fn stack_plan(action: Action, additions: SecurityAdditions) -> StackPlan {
        StackPlan {
            stack: "queue".into(),
            stack_name: "hello-ci-queue".into(),
            wave: 0,
            status: "UPDATE_COMPLETE".into(),
            action,
            security_additions: additions,
        }
    }

    #[test]
    fn security_additions_list_only_what_is_new() {
        let old = policy_template(&["sqs:SendMessage"]);
        let new = policy_template(&["sqs:SendMessage", "sqs:DeleteMessage"]);
        let added = SecurityAdditions::between(Some(&old), &new);
        assert_eq!(added.iam.len(), 1, "{added:?}");
        assert!(added.sg.is_empty());
        assert_eq!(
            added.lines(),
            vec!["IAM QueuePolicy: Allow sqs:DeleteMessage on * to Service:sns.amazonaws.com"]
        );
        // Removing grants narrows: nothing to approve.
        assert!(SecurityAdditions::between(Some(&new), &old).is_empty());
        assert!(SecurityAdditions::between(Some(&new), &new).is_empty());
        // A created stack adds every grant it holds, rules included.
        let created = SecurityAdditions::between(None, &old);
        assert_eq!((created.iam.len(), created.sg.len()), (1, 1));
        assert_eq!(
            created.lines()[1],
            "SG Sg: ingress tcp port 443 from 10.0.0.0/16"
        );
    }

    #[test]
    fn the_gate_asks_for_broadening_updates_and_creates_only() {
        let old = policy_template(&["sqs:SendMessage"]);
        let new = policy_template(&["sqs:SendMessage", "sqs:DeleteMessage"]);
        let added = SecurityAdditions::between(Some(&old), &new);
        let update = stack_plan(
            Action::Update {
                what: vec!["template".into()],
            },
            added.clone(),
        );
        match gate(std::slice::from_ref(&update), false, false) {
            Approval::Required { stacks } => {
                assert_eq!(stacks.len(), 1);
                assert_eq!(stacks[0].stack_name, "hello-ci-queue");
                assert_eq!(stacks[0].additions, added);
            }
            other => panic!("expected approval required, got {other:?}"),
        }
        assert_eq!(
            gate(std::slice::from_ref(&update), true, false),
            Approval::ApprovedByFlag
        );
        // Local stages are exempt, with or without --yes.
        assert_eq!(
            gate(std::slice::from_ref(&update), false, true),
            Approval::LocalStage
        );
        // A create counts: all its grants are new.
        let create = stack_plan(Action::Create, SecurityAdditions::between(None, &old));
        assert!(matches!(
            gate(&[create], false, false),
            Approval::Required { .. }
        ));
        // Nothing added, or a stack that is skipped: nothing to ask.
        let narrowing = stack_plan(
            Action::Update {
                what: vec!["template".into()],
            },
            SecurityAdditions::between(Some(&new), &old),
        );
        let skipped = stack_plan(
            Action::Skip {
                reason: SkipReason::Unchanged,
            },
            added.clone(),
        );
        assert_eq!(
            gate(&[narrowing, skipped], false, false),
            Approval::NotNeeded
        );
    }

    #[test]
    fn the_run_refuses_additions_nobody_approved() {
        let old = policy_template(&["sqs:SendMessage"]);
        let new = policy_template(&["sqs:SendMessage", "sqs:DeleteMessage"]);
        let more = policy_template(&["sqs:SendMessage", "sqs:DeleteMessage", "sqs:PurgeQueue"]);
        let approved_now = SecurityAdditions::between(Some(&old), &new);
        let approved = Approved::Only(BTreeMap::from([(
            "hello-ci-queue".to_string(),
            approved_now.clone(),
        )]));
        assert!(approved
            .unapproved("hello-ci-queue", &approved_now)
            .is_empty());
        // The template grew after the question was asked: the new grant is refused.
        let grown = SecurityAdditions::between(Some(&old), &more);
        let left = approved.unapproved("hello-ci-queue", &grown);
        assert_eq!(left.iam.len(), 1);
        assert_eq!(left.iam[0].actions, ["sqs:PurgeQueue"]);
        // Another stack had nothing approved.
        assert_eq!(approved.unapproved("other", &approved_now), approved_now);
        assert!(Approved::All.unapproved("other", &grown).is_empty());
        assert!(approved_now.within(&grown) && !grown.within(&approved_now));
    }

    #[test]
    fn retained_resources_are_listed() {
        let t = json!({"Resources": {
            "A": {"Type": "AWS::DynamoDB::Table", "DeletionPolicy": "Retain"},
            "B": {"Type": "AWS::RDS::DBInstance", "DeletionPolicy": "Snapshot"},
            "C": {"Type": "AWS::SQS::Queue"}
        }});
        let kept = retained_resources(&t);
        assert_eq!(kept.len(), 2);
        assert_eq!(
            kept[1],
            ("B".into(), "AWS::RDS::DBInstance".into(), "Snapshot".into())
        );
    }
}
