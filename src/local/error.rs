//! Errors of the local emulator layer, each with what a person needs to act.

use std::path::PathBuf;
use std::time::Duration;

use super::Endpoint;
use crate::exit;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{endpoint}` is not a local emulator endpoint: barkctl starts moto on `http://127.0.0.1:<port>` only")]
    NotLocalEndpoint { endpoint: String },

    #[error("`{source_name}` must be a port number (1-65535), not `{value}`")]
    BadPort {
        value: String,
        source_name: &'static str,
    },

    #[error("another program listens on `{endpoint}` and it is not a moto server")]
    PortBusy { endpoint: Endpoint },

    #[error("this project's emulator already runs at `{running}` (pid {pid}), not at `{wanted}`")]
    OtherPort {
        pid: u32,
        running: Endpoint,
        wanted: Endpoint,
    },

    #[error("cannot {action} `{}`: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot run `{program}`: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },

    #[error("creating the emulator's venv `{}` failed: `{step}` {status}{}", venv.display(), indent(tail))]
    Install {
        venv: PathBuf,
        step: String,
        status: String,
        tail: String,
    },

    #[error("the moto server for `{endpoint}` stopped during start ({how}); see `{}`{}", log.display(), indent(tail))]
    Exited {
        endpoint: Endpoint,
        how: String,
        log: PathBuf,
        tail: String,
    },

    #[error("the moto server did not answer at `{endpoint}/moto-api/` within {} s; see `{}`{}", waited.as_secs(), log.display(), indent(tail))]
    NotReady {
        endpoint: Endpoint,
        waited: Duration,
        log: PathBuf,
        tail: String,
    },

    #[error("another barkctl is starting this project's emulator (lock `{}` held for {} s)", path.display(), waited.as_secs())]
    Locked { path: PathBuf, waited: Duration },

    #[error("cannot stop the moto server (pid {pid}): {detail}")]
    Stop { pid: u32, detail: String },

    #[error("no PostgreSQL server binaries: {detail}")]
    PgBinaries { detail: String },

    #[error("barkctl runs as root, and PostgreSQL refuses root; but there is neither a `postgres` nor a `nobody` OS user to run it as")]
    PgNoUser,

    #[error("local PostgreSQL: `{step}` failed ({status}); see `{}`{}", log.display(), indent(tail))]
    PgCommand {
        step: String,
        status: String,
        log: PathBuf,
        tail: String,
    },

    #[error("cannot stop the PostgreSQL server (pid {pid}): {detail}")]
    PgStop { pid: u32, detail: String },

    #[error("local PostgreSQL: cannot {action}: {detail}")]
    PgQuery { action: String, detail: String },

    #[error("`{name}` cannot be a PostgreSQL name: it must be 1 to 63 bytes without NUL")]
    PgBadName { name: String },
}

impl Error {
    /// The process exit code for this error (see README "Exit codes").
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::NotLocalEndpoint { .. } | Error::BadPort { .. } | Error::PgBadName { .. } => {
                exit::INVALID_INPUT
            }
            _ => exit::DEPLOY_FAILED,
        }
    }

    /// A next step for the person reading the error.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::PortBusy { .. } => Some(format!(
                "stop that program, or pick another port with `--endpoint-url http://127.0.0.1:<port>` or `{}`",
                super::ENV_LOCAL_PORT
            )),
            Error::OtherPort { .. } => {
                Some("run `barkctl local down` first, then start it on the new port".into())
            }
            Error::Install { .. } => Some(format!(
                "barkctl needs `python3` with the venv module and access to PyPI; or set `{}` to a venv that has `moto[server]=={}`",
                super::ENV_TOOLS_VENV,
                super::MOTO_VERSION
            )),
            Error::PgBinaries { .. } => Some(format!(
                "install PostgreSQL (Debian: `apt-get install postgresql`), or set `{}` to a folder with initdb, pg_ctl and postgres",
                super::postgres::ENV_PG_BIN
            )),
            _ => None,
        }
    }
}

/// The last lines of a log, indented under the message; nothing when empty.
fn indent(tail: &str) -> String {
    if tail.trim().is_empty() {
        return String::new();
    }
    let mut out = String::from("\n");
    for line in tail.lines() {
        out.push_str("  | ");
        out.push_str(line);
        out.push('\n');
    }
    out.truncate(out.trim_end().len());
    out
}
