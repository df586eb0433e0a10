//! The Python virtual environment the emulator runs from: reuse one that has
//! the pinned moto, else create `.barkctl/local/venv` and pip-install it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::state::Paths;
use super::{Error, Event, ENV_TOOLS_VENV, MOTO_VERSION};

/// How long another barkctl waits on the start lock while one installs.
pub const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);

pub struct Venv {
    pub dir: PathBuf,
}

impl Venv {
    pub fn python(&self) -> PathBuf {
        self.dir.join("bin").join("python")
    }
}

/// `BARKCTL_TOOLS_VENV` when it has the pinned moto, then the project's own
/// venv when it has it, else the project's venv freshly (re)installed.
pub fn find_or_create(paths: &Paths, on_event: &dyn Fn(Event)) -> Result<Venv, Error> {
    if let Some(dir) = std::env::var_os(ENV_TOOLS_VENV).filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(dir);
        if has_pinned_moto(&dir) {
            on_event(Event::UsingVenv(dir.clone()));
            return Ok(Venv { dir });
        }
    }
    if has_pinned_moto(&paths.venv) {
        on_event(Event::UsingVenv(paths.venv.clone()));
        return Ok(Venv {
            dir: paths.venv.clone(),
        });
    }
    on_event(Event::Installing(paths.venv.clone()));
    install(paths)?;
    Ok(Venv {
        dir: paths.venv.clone(),
    })
}

/// The venv has a python and moto `MOTO_VERSION` with its server extras
/// (flask, flask-cors). Read from the dist-info folders: no interpreter start.
pub fn has_pinned_moto(dir: &Path) -> bool {
    if !dir.join("bin").join("python").is_file() {
        return false;
    }
    let Ok(libs) = std::fs::read_dir(dir.join("lib")) else {
        return false;
    };
    let moto = format!("moto-{MOTO_VERSION}.dist-info");
    for lib in libs.flatten() {
        let site = lib.path().join("site-packages");
        let Ok(entries) = std::fs::read_dir(&site) else {
            continue;
        };
        let names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_lowercase())
            .collect();
        let dist = |prefix: &str| {
            names
                .iter()
                .any(|n| n.starts_with(prefix) && n.ends_with(".dist-info"))
        };
        if names.contains(&moto) && dist("flask-") && dist("flask_cors-") {
            return true;
        }
    }
    false
}

/// `python3 -m venv` then `pip install moto[server]==MOTO_VERSION`, output in
/// `.barkctl/local/pip.log`. An existing venv with another moto is upgraded in
/// place (scripts/test.sh shares this venv and adds cfn-lint to it).
fn install(paths: &Paths) -> Result<(), Error> {
    let log = std::fs::File::create(&paths.pip_log).map_err(|source| Error::Io {
        action: "create",
        path: paths.pip_log.clone(),
        source,
    })?;
    let venv_arg = paths.venv.as_os_str();
    run_step(
        paths,
        &log,
        Command::new("python3").args(["-m".as_ref(), "venv".as_ref(), venv_arg]),
        "python3 -m venv",
    )?;
    let pin = format!("moto[server]=={MOTO_VERSION}");
    run_step(
        paths,
        &log,
        Command::new(paths.venv.join("bin").join("python")).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &pin,
        ]),
        &format!("pip install {pin}"),
    )?;
    if has_pinned_moto(&paths.venv) {
        Ok(())
    } else {
        Err(Error::Install {
            venv: paths.venv.clone(),
            step: format!("pip install {pin}"),
            status: format!("left no moto {MOTO_VERSION} with flask in the venv"),
            tail: super::state::tail(&paths.pip_log, 15),
        })
    }
}

fn run_step(
    paths: &Paths,
    log: &std::fs::File,
    cmd: &mut Command,
    step: &str,
) -> Result<(), Error> {
    let io = |source| Error::Io {
        action: "write",
        path: paths.pip_log.clone(),
        source,
    };
    let status = cmd
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io)?)
        .stderr(log.try_clone().map_err(io)?)
        .status()
        .map_err(|source| Error::Spawn {
            program: step.to_string(),
            source,
        })?;
    if status.success() {
        return Ok(());
    }
    Err(Error::Install {
        venv: paths.venv.clone(),
        step: step.to_string(),
        status: status.to_string(),
        tail: super::state::tail(&paths.pip_log, 15),
    })
}
