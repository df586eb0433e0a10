//! Semantic template diff, replacement and security classification.
//!
//! `compare` is pure: a deployed template and parameter values against a rendered
//! template and the values a deploy would pass, giving a [`StackDiff`] per stack.
//! `fetch` reads what is deployed and, with `--method change-set`, lets a
//! CloudFormation change set's `Replacement` override the local classification
//! (the change set is always deleted again: diff never changes a stack).

mod classify;
pub mod compare;
mod fetch;
pub mod model;
mod path;
mod resolve;
pub mod security;
pub mod show;
pub mod text;

pub use fetch::{diff_stacks, Request};
pub use model::*;
pub use security::SecurityChanges;

use crate::exit;

/// Errors of this layer. Each variant carries its context (stack, file, AWS code).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An AWS call failed (after the SDK's retries).
    #[error("cannot {operation} `{stack}`: {message}")]
    Aws {
        stack: String,
        operation: &'static str,
        message: String,
    },
    /// The deployed template is not CloudFormation JSON or YAML barkctl can read.
    #[error("the deployed template of `{stack}` cannot be read: {message}")]
    DeployedTemplate { stack: String, message: String },
    /// A change set diff created could not be deleted: the one way diff could
    /// leave a trace, so it is never downgraded to a note.
    #[error("change set `{change_set}` of `{stack}` was not deleted: {message}")]
    ChangeSetLeft {
        stack: String,
        change_set: String,
        message: String,
    },
    /// A change set did not settle, or failed for a reason other than "no changes".
    #[error("change set `{change_set}` of `{stack}` {problem}")]
    ChangeSet {
        stack: String,
        change_set: String,
        problem: String,
    },
}

impl Error {
    /// The process exit code for this error (see README "Exit codes").
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Aws { .. }
            | Error::DeployedTemplate { .. }
            | Error::ChangeSet { .. }
            | Error::ChangeSetLeft { .. } => exit::DEPLOY_FAILED,
        }
    }
}
