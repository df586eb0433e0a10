//! Errors found while loading stack files. Each names the file, and the line,
//! column and key path where the parser knows them.

use std::fmt;
use std::path::PathBuf;

/// Where in a file something went wrong.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Dotted key path, such as `stages.prod.params`.
    pub key: Option<String>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        if let Some(key) = &self.key {
            write!(f, " at `{key}`")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no `stacks/project.yaml` found in `{}` or any folder above it", start.display())]
    NotFound { start: PathBuf },
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}{location}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        location: Location,
        message: String,
    },
    #[error("unknown stage `{stage}`; project.yaml declares: {known}")]
    UnknownStage { stage: String, known: String },
    #[error("no stage given")]
    NoStage { known: String },
    #[error("unknown stack `{name}`; stacks are: {known}")]
    UnknownStack { name: String, known: String },
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::NotFound { .. } => {
                Some("run barkctl inside a project, or pass `--project DIR`".into())
            }
            Error::NoStage { known } => Some(format!("pass `--stage NAME`, one of: {known}")),
            _ => None,
        }
    }

    pub(crate) fn invalid(
        path: impl Into<PathBuf>,
        key: impl Into<String>,
        line: Option<usize>,
        message: impl Into<String>,
    ) -> Self {
        Error::Invalid {
            path: path.into(),
            location: Location {
                line,
                column: None,
                key: Some(key.into()),
            },
            message: message.into(),
        }
    }
}
