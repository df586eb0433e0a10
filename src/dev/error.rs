//! What can stop `barkctl dev` or `barkctl invoke`, and the exit code of each.

use crate::exit;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("stage `{stage}` is not a local stage: `barkctl {command}` runs what a `local: true` stage deployed to the emulator")]
    NotLocal {
        stage: String,
        command: &'static str,
    },
    #[error("stage `{stage}` is not deployed on the emulator at {endpoint}: no stack `{prefix}*` exists")]
    NotDeployed {
        stage: String,
        endpoint: String,
        prefix: String,
    },
    #[error(
        "no deployed function `{wanted}` on stage `{stage}`; deployed: {}",
        list(deployed)
    )]
    UnknownFunction {
        wanted: String,
        stage: String,
        deployed: Vec<String>,
    },
    #[error(
        "no schedule rule `{wanted}` on stage `{stage}`; deployed: {}",
        list(deployed)
    )]
    UnknownRule {
        wanted: String,
        stage: String,
        deployed: Vec<String>,
    },
    #[error("the payload {origin} is not valid JSON at byte offset {offset} (line {line}, column {column}): {reason}")]
    BadPayload {
        origin: String,
        offset: usize,
        line: usize,
        column: usize,
        reason: String,
    },
    #[error("cannot read the payload file `{path}`: {reason}")]
    PayloadFile { path: String, reason: String },
    #[error("the toolkit stack `{stack}` has no asset bucket: deploy the stage first")]
    NoToolkit { stack: String },
    #[error(transparent)]
    Read(#[from] super::deployed::ReadError),
    #[error(transparent)]
    Bundle(#[from] super::bundles::BundleError),
    #[error(transparent)]
    Runtime(#[from] super::runtime::RuntimeError),
    #[error(transparent)]
    Gateway(#[from] super::gateway::GatewayError),
    #[error("no free port on 127.0.0.1: {0}")]
    NoPort(String),
    #[error("the local database: {0}")]
    Database(String),
    #[error("`{function}` failed: {error_type}: {error_message}")]
    FunctionFailed {
        function: String,
        error_type: String,
        error_message: String,
    },
    #[error("the running `barkctl dev` at {address} did not answer: {reason}")]
    DevUnreachable { address: String, reason: String },
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::NotLocal { .. }
            | Error::UnknownFunction { .. }
            | Error::UnknownRule { .. }
            | Error::BadPayload { .. }
            | Error::PayloadFile { .. } => exit::INVALID_INPUT,
            _ => exit::DEPLOY_FAILED,
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            Error::NotDeployed { stage, .. } => Some(format!(
                "run `barkctl deploy --stage {stage}` first (`barkctl dev --stage {stage}` deploys it for you)"
            )),
            Error::NotLocal { .. } => Some("use a stage with `local: true` in stacks/project.yaml".into()),
            _ => None,
        }
    }
}

/// serde_json's line/column -> a byte offset into `text`.
pub fn byte_offset(text: &str, line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            return offset + column.saturating_sub(1).min(l.len());
        }
        offset += l.len();
    }
    text.len()
}

#[cfg(test)]
mod tests {
    use super::byte_offset;

    #[test]
    fn offsets_count_bytes_across_lines() {
        let text = "{\n  \"a\": x}";
        let e = serde_json::from_str::<serde_json::Value>(text).unwrap_err();
        assert_eq!(byte_offset(text, e.line(), e.column()), 9);
        assert_eq!(&text[9..10], "x");
    }
}
