//! `barkctl local up|down|status`: the local AWS emulator.
//!
//! The endpoint is `--endpoint-url` when given, else `BARKCTL_LOCAL_PORT` on
//! 127.0.0.1, else the `endpoint_url` of the project's local stage (`--stage`
//! picks one when there are several), else `http://127.0.0.1:4566`.

use std::path::{Path, PathBuf};

use super::Ctx;
use crate::cli::{LocalArgs, LocalCommand};
use crate::error::exit;
use crate::local::{self, Down, Endpoint, Event, Status};
use crate::{project, Result};

pub fn run(ctx: &Ctx, args: &LocalArgs) -> Result<i32> {
    let root = project_root(ctx)?;
    match args.command {
        LocalCommand::Up => {
            let endpoint = endpoint(ctx, &root)?;
            let term = ctx.term;
            let on_event = |e: Event| match e {
                Event::Installing(venv) => term.info(&format!(
                    "installing moto {} into `{}` (first use; takes a minute)",
                    local::MOTO_VERSION,
                    relative(&root, &venv)
                )),
                Event::Starting(at) => term.info(&format!("starting moto on {at}")),
                Event::StalePidFile(pid) => {
                    term.info(&format!("removed a stale pid file (process {pid} is gone)"))
                }
                Event::UsingVenv(_) => {}
            };
            let up = local::up(&root, &endpoint, &on_event)?;
            if !up.started && matches!(up.status, Status::Running { .. }) {
                term.info("already running");
            }
            ctx.term.data(&describe(&root, &up.status));
        }
        LocalCommand::Down => match local::down(&root)? {
            Down::Stopped { pid, endpoint } => {
                ctx.term.data(&format!("stopped: pid {pid} at {endpoint}"));
            }
            Down::NotRunning => ctx
                .term
                .data("not running: this project has no emulator to stop"),
        },
        LocalCommand::Status => {
            let endpoint = endpoint(ctx, &root)?;
            ctx.term
                .data(&describe(&root, &local::status(&root, &endpoint)?));
        }
    }
    Ok(exit::OK)
}

/// One line a script can read: the state first, then pid and endpoint.
fn describe(root: &Path, status: &Status) -> String {
    match status {
        Status::Running { pid, endpoint, log } => format!(
            "running: pid {pid} at {endpoint} (log: {})",
            relative(root, log)
        ),
        Status::External { endpoint } => {
            format!("running: a moto server this project did not start answers at {endpoint}")
        }
        Status::Stopped { endpoint } => format!("stopped: nothing answers at {endpoint}"),
    }
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// `--project`, else the nearest folder upward with `stacks/project.yaml`: the
/// emulator's state lives in that project's `.barkctl/local/`.
fn project_root(ctx: &Ctx) -> Result<PathBuf> {
    if let Some(dir) = &ctx.global.project {
        if !dir.join("stacks").join("project.yaml").is_file() {
            return Err(project::Error::NotFound { start: dir.clone() }.into());
        }
        return Ok(dir.clone());
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    Ok(project::find_root(&cwd)?)
}

fn endpoint(ctx: &Ctx, root: &Path) -> Result<Endpoint> {
    if let Some(url) = &ctx.global.endpoint_url {
        return Ok(Endpoint::parse(url)?);
    }
    if std::env::var_os(local::ENV_LOCAL_PORT).is_some_and(|v| !v.is_empty()) {
        return Ok(local::default_endpoint()?);
    }
    // The stack files only matter for a local stage's `endpoint_url`; `local
    // down`/`status` must work even while someone is mid-edit on them.
    if let Ok(project) = project::load(root) {
        let wanted = ctx.global.stage.as_deref();
        let stage = project
            .stages
            .values()
            .filter(|s| s.local)
            .find(|s| wanted.is_none_or(|w| w == s.name));
        if let Some(url) = stage.and_then(|s| s.endpoint_url.as_deref()) {
            return Ok(Endpoint::parse(url)?);
        }
    }
    Ok(local::default_endpoint()?)
}
