//! The end-of-run summary table (stack, action, duration, note) and the text
//! form of a deploy plan (`deploy --dry-run`).

use super::progress::{duration, paint_outcome};
use super::Term;
use crate::deploy::StackResult;
use crate::plan::{Action, Approval, Broadening, Plan};

/// Summary lines: a header, then one line per stack in run order.
pub fn table(term: &Term, results: &[StackResult]) -> Vec<String> {
    if results.is_empty() {
        return Vec::new();
    }
    let w_name = results
        .iter()
        .map(|r| r.stack_name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let w_action = 11; // "not started"
    let mut lines = vec![format!(
        "{:<w_name$}  {:<w_action$}  {:>8}  note",
        "stack", "action", "duration"
    )];
    for r in results {
        // Pad before painting: escape codes have no width.
        let label = r.outcome.label();
        let pad = " ".repeat(w_action.saturating_sub(label.len()));
        lines.push(
            format!(
                "{:<w_name$}  {}{pad}  {:>8}  {}",
                r.stack_name,
                paint_outcome(term, r.outcome),
                duration(r.duration),
                r.note.as_deref().unwrap_or("")
            )
            .trim_end()
            .to_string(),
        );
    }
    lines
}

/// `--dry-run` as text: one line per stack, grouped by wave.
pub fn plan_lines(plan: &Plan) -> Vec<String> {
    let mut lines = vec![format!("plan for stage `{}`:", plan.stage)];
    let w = plan
        .stacks
        .iter()
        .map(|s| s.stack_name.len())
        .max()
        .unwrap_or(0);
    let mut wave = usize::MAX;
    for s in &plan.stacks {
        if s.wave != wave {
            wave = s.wave;
            lines.push(format!("wave {}:", wave + 1));
        }
        let detail = match &s.action {
            Action::Update { what } => format!("({})", what.join(", ")),
            Action::Skip { .. } => "(template, parameters and tags unchanged)".into(),
            Action::Recreate { status } => format!("(delete the stack left in {status})"),
            Action::Wait { status } => format!("(wait for {status})"),
            Action::Blocked { status, hint } => format!("({status}: {hint})"),
            Action::Create => String::new(),
            Action::Hotswap { functions } => format!(
                "({} through the Lambda API, no stack update)",
                functions
                    .iter()
                    .map(|f| format!(
                        "{} {}",
                        f.function_name.as_deref().unwrap_or(&f.logical_id),
                        f.what()
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        };
        lines.push(
            format!("  {:<w$}  {:<8} {detail}", s.stack_name, s.action.label())
                .trim_end()
                .to_string(),
        );
        if s.action.mutates() {
            for a in s.security_additions.lines() {
                lines.push(format!("    + {a}"));
            }
        }
    }
    match &plan.approval {
        Approval::NotNeeded => {}
        Approval::ApprovedByFlag => {
            lines.push("security: the added grants above are approved by --yes".into())
        }
        Approval::LocalStage => lines
            .push("security: the added grants above are not gated on a local stage".into()),
        Approval::Required { stacks } => lines.push(format!(
            "security: {} broaden{} IAM or security-group access: deploy asks on a TTY, and needs --yes without one",
            stacks
                .iter()
                .map(|b| b.stack_name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            if stacks.len() == 1 { "s" } else { "" }
        )),
    }
    lines
}

/// The broadening gate's question on a TTY: each stack and what it adds.
pub fn broadening_lines(stacks: &[Broadening]) -> Vec<String> {
    let mut lines = vec![
        "this deploy broadens IAM or security-group access (statements and rules added):"
            .to_string(),
    ];
    for b in stacks {
        lines.push(format!("  {}", b.stack_name));
        for a in b.additions.lines() {
            lines.push(format!("    + {a}"));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::Outcome;
    use crate::plan::{SkipReason, StackPlan};
    use std::time::Duration;

    fn term() -> Term {
        Term {
            color: false,
            quiet: false,
            verbose: 0,
            stderr_tty: false,
            live: false,
        }
    }

    #[test]
    fn table_lists_every_stack_with_its_action() {
        let r = |n: &str, o| StackResult {
            stack: n.into(),
            stack_name: format!("app-dev-{n}"),
            outcome: o,
            duration: Duration::from_millis(1500),
            note: None,
        };
        let lines = table(
            &term(),
            &[
                r("network", Outcome::Unchanged),
                r("jobs", Outcome::NotStarted),
            ],
        );
        assert_eq!(lines[0], "stack            action       duration  note");
        assert_eq!(lines[1], "app-dev-network  unchanged        1.5s");
        assert_eq!(lines[2], "app-dev-jobs     not started      1.5s");
    }

    #[test]
    fn plan_text_groups_waves() {
        let plan = Plan {
            stage: "dev".into(),
            stacks: vec![
                StackPlan {
                    stack: "a".into(),
                    stack_name: "x-dev-a".into(),
                    wave: 0,
                    status: "NOT_FOUND".into(),
                    action: Action::Create,
                    security_additions: Default::default(),
                },
                StackPlan {
                    stack: "b".into(),
                    stack_name: "x-dev-b".into(),
                    wave: 1,
                    status: "UPDATE_COMPLETE".into(),
                    action: Action::Skip {
                        reason: SkipReason::Unchanged,
                    },
                    security_additions: Default::default(),
                },
            ],
            approval: Approval::NotNeeded,
        };
        assert_eq!(
            plan_lines(&plan),
            vec![
                "plan for stage `dev`:",
                "wave 1:",
                "  x-dev-a  create",
                "wave 2:",
                "  x-dev-b  skip     (template, parameters and tags unchanged)",
            ]
        );
    }

    #[test]
    fn plan_text_lists_added_grants_and_the_gate() {
        let t = serde_json::json!({"Resources": {"Sg": {"Type": "AWS::EC2::SecurityGroup", "Properties": {
            "GroupDescription": "d",
            "SecurityGroupIngress": [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIp": "0.0.0.0/0"}]
        }}}});
        let additions = crate::plan::SecurityAdditions::between(None, &t);
        let stacks = vec![StackPlan {
            stack: "a".into(),
            stack_name: "x-ci-a".into(),
            wave: 0,
            status: "NOT_FOUND".into(),
            action: Action::Create,
            security_additions: additions,
        }];
        let approval = crate::plan::gate(&stacks, false, false);
        let plan = Plan {
            stage: "ci".into(),
            stacks,
            approval,
        };
        let lines = plan_lines(&plan);
        assert_eq!(lines[3], "    + SG Sg: ingress tcp port 22 from 0.0.0.0/0");
        assert!(
            lines[4].starts_with("security: x-ci-a broadens IAM or security-group access"),
            "{lines:?}"
        );
    }
}
