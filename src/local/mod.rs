//! The local AWS emulator's lifecycle (`barkctl local up|down|status`).
//!
//! The emulator is a moto server run from a Python virtual environment under
//! `<project>/.barkctl/local/venv` (created on first use with a pinned moto), or
//! from an existing venv named by `BARKCTL_TOOLS_VENV` that already has that moto.
//! It is started through `moto_ext.py`, a small launcher shipped inside barkctl
//! that first teaches moto's CloudFormation the resource types it skips
//! (ApiGatewayV2, SecretsManager Secret, CloudWatch Alarm, Lambda
//! EventInvokeConfig), then runs `moto.server.main` in the same process.
//!
//! State lives in `<project>/.barkctl/local/`: `moto.pid` (pid, port and the
//! launcher path, so that `down` never signals a process that is not ours),
//! `moto.log` (the server's output) and `moto_ext.py` (the launcher, rewritten
//! at every start so that it always matches this binary).
//!
//! Local stages also get a PostgreSQL server, managed the same way under
//! `<project>/.barkctl/local/postgres/`: see [`postgres`].

mod endpoint;
mod error;
pub mod postgres;
mod process;
mod state;
mod venv;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use endpoint::Endpoint;
pub use error::Error;
pub use postgres::{PgEvent, PgServer, PgStatus};

/// The pinned moto version; `.ci/requirements.txt` pins the same one.
pub const MOTO_VERSION: &str = "5.2.5";

/// The port of `http://127.0.0.1:4566`, the endpoint of `local: true` stages.
pub const DEFAULT_PORT: u16 = 4566;

/// An existing venv to reuse when it already has the pinned moto (tests and
/// `scripts/test.sh` point it at the shared tools venv to skip a pip install).
pub const ENV_TOOLS_VENV: &str = "BARKCTL_TOOLS_VENV";

/// Overrides the port `barkctl local up|status` uses when no `--endpoint-url` is
/// given (tests use a free port so that they do not collide with each other).
pub const ENV_LOCAL_PORT: &str = "BARKCTL_LOCAL_PORT";

/// The launcher and CloudFormation extension, written next to the pid file.
const MOTO_EXT_PY: &str = include_str!("moto_ext.py");

/// How long a start may take before it is reported as failed. A cold start
/// imports all of moto (about 1 s here); the margin is for slow CI machines.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// What runs at an endpoint, as far as this project can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Started by this project: the pid file, the process and the endpoint agree.
    Running {
        pid: u32,
        endpoint: Endpoint,
        log: PathBuf,
    },
    /// A moto server answers on the endpoint, but this project did not start it
    /// (another checkout, or one started by hand): usable, not ours to stop.
    External { endpoint: Endpoint },
    /// Nothing answers on the endpoint.
    Stopped { endpoint: Endpoint },
}

impl Status {
    pub fn is_running(&self) -> bool {
        !matches!(self, Status::Stopped { .. })
    }

    pub fn endpoint(&self) -> &Endpoint {
        match self {
            Status::Running { endpoint, .. }
            | Status::External { endpoint }
            | Status::Stopped { endpoint } => endpoint,
        }
    }
}

/// Steps of a start that take long enough for a person to want to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Reusing the venv at this path.
    UsingVenv(PathBuf),
    /// Creating a venv and installing the pinned moto into it (tens of seconds).
    Installing(PathBuf),
    /// Starting the server on this endpoint.
    Starting(Endpoint),
    /// A previous pid file pointed at a process that is gone; it was removed.
    StalePidFile(u32),
}

/// The result of `up`: where it runs, and whether this call started it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Up {
    pub status: Status,
    pub started: bool,
}

/// The result of `down`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Down {
    /// Stopped the server with this pid.
    Stopped { pid: u32, endpoint: Endpoint },
    /// No server recorded for this project (a stale pid file is removed).
    NotRunning,
}

/// Start the emulator for `project_root` at `endpoint` unless it already runs
/// there; idempotent, and one probe when it is up. Deploy, diff, outputs and
/// destroy call this for stages marked `local: true`.
pub fn ensure_running(
    project_root: &Path,
    endpoint: &str,
    on_event: &dyn Fn(Event),
) -> Result<Status, Error> {
    let endpoint = Endpoint::parse(endpoint)?;
    Ok(up(project_root, &endpoint, on_event)?.status)
}

/// `barkctl local up`: reuse a running server or start one, reporting slow
/// steps to `on_event`.
pub fn up(project_root: &Path, endpoint: &Endpoint, on_event: &dyn Fn(Event)) -> Result<Up, Error> {
    let paths = state::Paths::new(project_root);
    if let Some(up) = already_up(&paths, endpoint, on_event)? {
        return Ok(up);
    }
    // Two barkctl processes of one project (two deploys) may get here at once;
    // one creates the venv and starts the server, the other waits and reuses it.
    let _lock = state::Lock::acquire(&paths, START_TIMEOUT + venv::INSTALL_TIMEOUT)?;
    if let Some(up) = already_up(&paths, endpoint, on_event)? {
        return Ok(up);
    }
    match process::probe(endpoint) {
        process::Probe::Moto => {
            return Ok(Up {
                status: Status::External {
                    endpoint: endpoint.clone(),
                },
                started: false,
            })
        }
        process::Probe::Other => {
            return Err(Error::PortBusy {
                endpoint: endpoint.clone(),
            })
        }
        process::Probe::Closed => {}
    }
    let venv = venv::find_or_create(&paths, on_event)?;
    on_event(Event::Starting(endpoint.clone()));
    let pid = start(&paths, &venv, endpoint)?;
    Ok(Up {
        status: Status::Running {
            pid,
            endpoint: endpoint.clone(),
            log: paths.log.clone(),
        },
        started: true,
    })
}

/// `barkctl local down`: stop exactly the server this project recorded.
pub fn down(project_root: &Path) -> Result<Down, Error> {
    let paths = state::Paths::new(project_root);
    let Some(record) = state::read_pid_file(&paths)? else {
        return Ok(Down::NotRunning);
    };
    if !process::is_our_server(record.pid, &record) {
        state::remove_pid_file(&paths)?;
        return Ok(Down::NotRunning);
    }
    process::stop(record.pid, &record)?;
    state::remove_pid_file(&paths)?;
    Ok(Down::Stopped {
        pid: record.pid,
        endpoint: Endpoint::loopback(record.port),
    })
}

/// `barkctl local status`: the recorded server if it is alive, else whatever
/// answers at `endpoint`. Read-only: a stale pid file is left for `up`/`down`.
pub fn status(project_root: &Path, endpoint: &Endpoint) -> Result<Status, Error> {
    let paths = state::Paths::new(project_root);
    if let Some(record) = state::read_pid_file(&paths)? {
        if process::is_our_server(record.pid, &record) {
            return Ok(Status::Running {
                pid: record.pid,
                endpoint: Endpoint::loopback(record.port),
                log: paths.log.clone(),
            });
        }
    }
    if process::probe(endpoint) == process::Probe::Moto {
        return Ok(Status::External {
            endpoint: endpoint.clone(),
        });
    }
    Ok(Status::Stopped {
        endpoint: endpoint.clone(),
    })
}

/// The endpoint `barkctl local` acts on when none is given: `BARKCTL_LOCAL_PORT`
/// on 127.0.0.1, else `http://127.0.0.1:4566`.
pub fn default_endpoint() -> Result<Endpoint, Error> {
    match std::env::var(ENV_LOCAL_PORT) {
        Ok(v) if !v.trim().is_empty() => {
            let port = v
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or(Error::BadPort {
                    value: v.clone(),
                    source_name: ENV_LOCAL_PORT,
                })?;
            Ok(Endpoint::loopback(port))
        }
        _ => Ok(Endpoint::loopback(DEFAULT_PORT)),
    }
}

/// The recorded server when it is alive and answers at `endpoint`. A pid file
/// whose process is gone is removed; one for another port is a conflict, since
/// one project runs one server.
fn already_up(
    paths: &state::Paths,
    endpoint: &Endpoint,
    on_event: &dyn Fn(Event),
) -> Result<Option<Up>, Error> {
    let Some(record) = state::read_pid_file(paths)? else {
        return Ok(None);
    };
    if !process::is_our_server(record.pid, &record) {
        state::remove_pid_file(paths)?;
        on_event(Event::StalePidFile(record.pid));
        return Ok(None);
    }
    if record.port != endpoint.port {
        return Err(Error::OtherPort {
            pid: record.pid,
            running: Endpoint::loopback(record.port),
            wanted: endpoint.clone(),
        });
    }
    // Alive but not answering: it may still be starting (another barkctl's
    // start); give it the same grace a fresh start gets.
    wait_ready(endpoint, record.pid, None, &paths.log)?;
    Ok(Some(Up {
        status: Status::Running {
            pid: record.pid,
            endpoint: endpoint.clone(),
            log: paths.log.clone(),
        },
        started: false,
    }))
}

/// Write the launcher, spawn it detached, record its pid, wait for `/moto-api/`.
fn start(paths: &state::Paths, venv: &venv::Venv, endpoint: &Endpoint) -> Result<u32, Error> {
    state::write_file(&paths.script, MOTO_EXT_PY)?;
    let mut child = process::spawn(&venv.python(), &paths.script, endpoint.port, &paths.log)?;
    let pid = child.id();
    let record = process::PidRecord {
        pid,
        port: endpoint.port,
        script: paths.script.clone(),
    };
    if let Err(e) = state::write_pid_file(paths, &record) {
        process::kill_child(&mut child);
        return Err(e);
    }
    if let Err(e) = wait_ready(endpoint, pid, Some(&mut child), &paths.log) {
        process::kill_child(&mut child);
        let _ = state::remove_pid_file(paths);
        return Err(e);
    }
    Ok(pid)
}

/// Poll `/moto-api/` until it answers 200. With the child at hand an early
/// exit is noticed at once; otherwise the pid is watched through /proc.
fn wait_ready(
    endpoint: &Endpoint,
    pid: u32,
    mut child: Option<&mut std::process::Child>,
    log: &Path,
) -> Result<(), Error> {
    let started = Instant::now();
    loop {
        if process::probe(endpoint) == process::Probe::Moto {
            return Ok(());
        }
        let exited = match child.as_deref_mut() {
            Some(c) => c.try_wait().ok().flatten().map(|s| s.to_string()),
            None => (!process::is_alive(pid)).then(|| "it exited".to_string()),
        };
        if let Some(how) = exited {
            return Err(Error::Exited {
                endpoint: endpoint.clone(),
                how,
                log: log.to_path_buf(),
                tail: state::tail(log, 15),
            });
        }
        if started.elapsed() > START_TIMEOUT {
            return Err(Error::NotReady {
                endpoint: endpoint.clone(),
                waited: START_TIMEOUT,
                log: log.to_path_buf(),
                tail: state::tail(log, 15),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// scripts/test.sh and CI install `.ci/requirements.txt` into the same venv
    /// barkctl reuses: a different moto pin there would make barkctl reinstall
    /// moto on every `local up` (and test.sh reinstall it back).
    #[test]
    fn moto_pin_matches_ci_requirements() {
        let requirements = include_str!("../../.ci/requirements.txt");
        let pin = format!("moto[server]=={MOTO_VERSION}");
        assert!(
            requirements.lines().any(|l| l.trim() == pin),
            "`.ci/requirements.txt` does not pin `{pin}`"
        );
    }

    #[test]
    fn local_port_comes_from_the_environment_variable() {
        // One test owns the variable: the process environment is shared by the
        // unit tests running in parallel, and no other test reads it.
        std::env::set_var(ENV_LOCAL_PORT, "4599");
        assert_eq!(default_endpoint().ok(), Some(Endpoint::loopback(4599)));
        std::env::set_var(ENV_LOCAL_PORT, "http://x");
        assert!(matches!(default_endpoint(), Err(Error::BadPort { .. })));
        std::env::remove_var(ENV_LOCAL_PORT);
        assert_eq!(
            default_endpoint().ok(),
            Some(Endpoint::loopback(DEFAULT_PORT))
        );
    }
}
