//! Carrying out a plan: assets, change sets, waiting, events, outputs hand-off, destroy.
//!
//! Everything here is effectful and reports through the [`Reporter`] trait; only
//! `report/` turns events into lines or bars. What to do with each stack is decided
//! by the pure `plan` module.

pub mod assets;
pub mod cfn;
pub mod destroy;
mod hotswap;
pub mod lock;
pub mod outputs;
mod reporter;
mod run;
pub mod upload;

use std::time::Duration;

pub use cfn::TemplateSource;
pub use reporter::{Event, NoReport, Outcome, Reporter, StackResult};
pub use run::{deploy, dry_run, prefetch, DeployInput, InFlight, Prefetched, StackInput};

/// The end of a hotswapped stack's note, after the functions' names.
pub const HOTSWAP_NOTE: &str =
    " through the Lambda API; the stack is drifted until the next full deploy";

/// A failed resource: what the stack events name as the cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootCause {
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: String,
}

/// Errors of this layer. Each variant carries its context (stack, AWS code).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An AWS call failed outside a stack operation (or before it started).
    #[error("{operation} failed{}: {message}", stack.as_deref().map(|s| format!(" for `{s}`")).unwrap_or_default())]
    Aws {
        stack: Option<String>,
        operation: &'static str,
        message: String,
    },
    /// A stack operation failed; `causes` are the first failed resources.
    #[error("{}", failed_message(stack_name, summary, causes, not_started))]
    StackFailed {
        stack_name: String,
        summary: String,
        causes: Vec<RootCause>,
        /// Stacks of the run that were not started because of this failure.
        not_started: Vec<String>,
    },
    /// The review gates refused the change set.
    #[error(
        "refusing to deploy `{stack_name}`: {}",
        refusals.join(", ")
    )]
    Refused {
        stack_name: String,
        refusals: Vec<String>,
        /// Every refusal is one `--allow-replace` lets through.
        overridable: bool,
    },
    /// The broadening gate: these stacks add IAM statements or security-group
    /// rules that nobody approved (no `--yes`, and no TTY to ask on).
    #[error("{}", unapproved_message(stacks))]
    Unapproved {
        stacks: Vec<crate::plan::Broadening>,
    },
    /// The stack is in a state only a person can repair.
    #[error("stack `{stack_name}` is {status}: barkctl cannot deploy it")]
    Blocked {
        stack_name: String,
        status: String,
        hint: String,
    },
    #[error("stack `{stack_name}` is still {status} after waiting {}s", waited.as_secs())]
    WaitTimeout {
        stack_name: String,
        status: String,
        waited: Duration,
    },
    /// A rendered template over CloudFormation's 1,000,000-byte limit.
    #[error("the template of `{stack_name}` is {bytes} bytes: over CloudFormation's limit of 1,000,000 bytes for a template")]
    TemplateTooLarge { stack_name: String, bytes: usize },
    /// Ctrl-C: barkctl stopped; CloudFormation carries on with these operations.
    #[error("{}", interrupted_message(in_progress))]
    Interrupted {
        in_progress: Vec<(String, String)>,
        /// `deploy` or `destroy`: what to run again.
        command: &'static str,
    },
    /// Another process holds the stage lock and did not let go within
    /// `--lock-timeout`.
    #[error("stage `{stage}` is locked by {holder}: gave up after waiting {}s", waited.as_secs())]
    Locked {
        stage: String,
        /// [`lock::Holder::describe`]
        holder: String,
        /// When the lock expires unless its holder renews it (RFC 3339).
        expires: String,
        waited: Duration,
    },
    /// `deploy --hotswap` on a stage with termination protection, without `--force`.
    #[error("stage `{stage}` has termination protection: refusing to hotswap it")]
    ProtectedHotswap { stage: String },
    /// The stage is protected against deletion.
    #[error("stage `{stage}` has termination protection: refusing to destroy it")]
    Protected { stage: String },
    /// Destroy without a TTY to confirm on and without `--yes`.
    #[error("destroying stacks needs confirmation")]
    NeedsConfirmation,
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` is not a JSON object of stacks: {message}", path.display())]
    OutputsFile {
        path: std::path::PathBuf,
        message: String,
    },
    /// An upstream output a stack needs is missing from the deployed upstream stack.
    #[error("stack `{stack}` needs output `{output}` of `{upstream}`, which {}", if *deployed { "does not have it" } else { "is not deployed" })]
    MissingUpstream {
        stack: String,
        upstream: String,
        output: String,
        deployed: bool,
    },
    /// A function's bundle is missing from the build result.
    #[error("no bundle for function `{stack}.{function}` (crate `{crate_name}`)")]
    MissingBundle {
        stack: String,
        function: String,
        crate_name: String,
    },
}

fn unapproved_message(stacks: &[crate::plan::Broadening]) -> String {
    let names: Vec<String> = stacks
        .iter()
        .map(|b| format!("`{}`", b.stack_name))
        .collect();
    let mut s = format!(
        "refusing to deploy {} without approval: it broadens IAM or security-group access",
        names.join(", ")
    );
    for b in stacks {
        s.push_str(&format!("\n  {}:", b.stack_name));
        for line in b.additions.lines() {
            s.push_str(&format!("\n    + {line}"));
        }
    }
    s
}

fn interrupted_message(in_progress: &[(String, String)]) -> String {
    if in_progress.is_empty() {
        return "interrupted: no stack operation was running".into();
    }
    let list: Vec<String> = in_progress
        .iter()
        .map(|(s, op)| format!("`{s}` ({op}_IN_PROGRESS)"))
        .collect();
    format!(
        "interrupted: CloudFormation keeps running {}",
        list.join(", ")
    )
}

fn failed_message(
    stack_name: &str,
    summary: &str,
    causes: &[RootCause],
    not_started: &[String],
) -> String {
    let mut s = format!("deploy of `{stack_name}` failed: {summary}");
    for c in causes {
        s.push_str(&format!(
            "\n  {} ({}) {}: {}",
            c.logical_id, c.resource_type, c.status, c.reason
        ));
    }
    if !not_started.is_empty() {
        s.push_str(&format!(
            "\nnot started: {}",
            not_started
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    s
}

impl Error {
    /// The process exit code for this error (see README "Exit codes").
    /// Ctrl-C during `command`: the operations `in_flight` says CloudFormation
    /// still runs.
    pub fn interrupted(in_flight: &InFlight, command: &'static str) -> Self {
        let in_progress = in_flight
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        Error::Interrupted {
            in_progress,
            command,
        }
    }

    pub fn exit_code(&self) -> i32 {
        use crate::exit;
        match self {
            Error::NeedsConfirmation
            | Error::Unapproved { .. }
            | Error::Protected { .. }
            | Error::ProtectedHotswap { .. }
            | Error::OutputsFile { .. }
            | Error::TemplateTooLarge { .. } => exit::INVALID_INPUT,
            Error::Interrupted { .. } => exit::INTERRUPTED,
            _ => exit::DEPLOY_FAILED,
        }
    }

    /// The hint printed after a blank line.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Blocked { hint, .. } => Some(hint.clone()),
            Error::Refused {
                overridable: true, ..
            } => Some(
                "these changes lose data; deploy with `--allow-replace` if that is intended".into(),
            ),
            Error::Refused { .. } => Some(
                "barkctl cannot judge this change set; look at it with `barkctl diff --method change-set` and apply it by hand if it is intended".into(),
            ),
            Error::Unapproved { .. } => Some(
                "rerun with --yes to approve (or run it in a terminal to answer the prompt)".into(),
            ),
            Error::Protected { .. } => Some("pass `--force` to destroy it anyway".into()),
            Error::ProtectedHotswap { .. } => Some(
                "deploy without `--hotswap`, or pass `--force` to hotswap it anyway (the stack drifts from its template)".into(),
            ),
            Error::Locked { expires, .. } => Some(format!(
                "wait for that run to end and try again, or wait longer with `--lock-timeout SECONDS`; if that process is gone, its lock expires at {expires}"
            )),
            Error::Interrupted {
                in_progress,
                command,
            } if !in_progress.is_empty() => Some(format!(
                "run the same {command} again: it waits for these operations, then continues"
            )),
            Error::TemplateTooLarge { .. } => Some(
                "split the stack, or move large inline content (policies, code) out of the template".into(),
            ),
            Error::NeedsConfirmation => {
                Some("run it in a terminal to confirm, or pass `--yes`".into())
            }
            Error::WaitTimeout { .. } => {
                Some("another operation is running on the stack; deploy again when it ends".into())
            }
            Error::MissingUpstream { upstream, .. } => Some(format!(
                "deploy `{upstream}` first, or drop `--exclusively`"
            )),
            Error::Aws { message, .. } => crate::aws::hint_for(message),
            Error::StackFailed { causes, .. } => causes
                .iter()
                .find_map(|c| crate::aws::hint_for(&c.reason)),
            _ => None,
        }
    }
}
