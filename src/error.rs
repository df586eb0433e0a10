//! The top-level error type: one variant per layer, and the exit code each maps to.

use std::path::PathBuf;

use crate::exit;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Project(#[from] Box<crate::project::Error>),
    #[error(transparent)]
    Graph(#[from] crate::graph::Error),
    #[error(transparent)]
    Render(#[from] Box<crate::render::Error>),
    /// `validate`: functions that may read secrets they are never handed.
    #[error(transparent)]
    SecretGrants(#[from] crate::render::secret_grants::UnusedSecretGrants),
    #[error(transparent)]
    Bundle(#[from] crate::bundle::Error),
    #[error(transparent)]
    Deploy(#[from] crate::deploy::Error),
    #[error(transparent)]
    Diff(#[from] crate::diff::Error),
    #[error(transparent)]
    Local(#[from] crate::local::Error),
    #[error(transparent)]
    Dev(#[from] crate::dev::Error),
    /// Bad command-line input that clap could not catch (unknown stack name, ...).
    #[error("{message}")]
    Usage { message: String },
    /// A command that exists in the CLI surface but has no body yet.
    #[error("`barkctl {command}` is not available yet")]
    NotAvailable { command: &'static str },
    #[error("cannot write `{}`: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// AWS, build or deploy failures (exit code 3).
    #[error("{0}")]
    Failed(String),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Project(_)
            | Error::Graph(_)
            | Error::Render(_)
            | Error::SecretGrants(_)
            | Error::Usage { .. }
            | Error::NotAvailable { .. } => exit::INVALID_INPUT,
            Error::Bundle(e) => e.exit_code(),
            Error::Deploy(e) => e.exit_code(),
            Error::Diff(e) => e.exit_code(),
            Error::Local(e) => e.exit_code(),
            Error::Dev(e) => e.exit_code(),
            Error::Write { .. } | Error::Failed(_) => exit::DEPLOY_FAILED,
        }
    }

    /// An optional hint printed after a blank line.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Project(e) => e.hint(),
            Error::Deploy(e) => e.hint(),
            Error::Local(e) => e.hint(),
            Error::Dev(e) => e.hint(),
            Error::Bundle(e) => e.hint(),
            Error::SecretGrants(e) => Some(e.hint()),
            Error::NotAvailable { .. } => Some(
                "this command is part of barkctl's surface; its body lands in a later release"
                    .into(),
            ),
            // AWS access problems (credentials, SSO, DNS) name their own remedy.
            _ => crate::aws::hint_for(&self.to_string()),
        }
    }
}

impl From<crate::project::Error> for Error {
    fn from(e: crate::project::Error) -> Self {
        Error::Project(Box::new(e))
    }
}

impl From<crate::render::Error> for Error {
    fn from(e: crate::render::Error) -> Self {
        Error::Render(Box::new(e))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
