//! The emulator's files under `<project>/.barkctl/local/`: pid file, log,
//! launcher script and the start lock.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::process::PidRecord;
use super::Error;

pub struct Paths {
    pub dir: PathBuf,
    pub pid_file: PathBuf,
    pub log: PathBuf,
    pub script: PathBuf,
    pub lock: PathBuf,
    pub venv: PathBuf,
    pub pip_log: PathBuf,
}

impl Paths {
    pub fn new(project_root: &Path) -> Self {
        let dir = project_root.join(".barkctl").join("local");
        Paths {
            pid_file: dir.join("moto.pid"),
            log: dir.join("moto.log"),
            script: dir.join("moto_ext.py"),
            lock: dir.join("start.lock"),
            venv: dir.join("venv"),
            pip_log: dir.join("pip.log"),
            dir,
        }
    }
}

/// The recorded server, if any. An unreadable or foreign pid file counts as
/// none: it is a leftover, and the process check protects against misuse.
pub fn read_pid_file(paths: &Paths) -> Result<Option<PidRecord>, Error> {
    read_json(&paths.pid_file)
}

/// A JSON record file: `None` when it is missing or unreadable as JSON.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(serde_json::from_str(&text).ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        }),
    }
}

pub fn write_pid_file(paths: &Paths, record: &PidRecord) -> Result<(), Error> {
    let text = serde_json::to_string(record).unwrap_or_default();
    write_file(&paths.pid_file, &format!("{text}\n"))
}

pub fn remove_pid_file(paths: &Paths) -> Result<(), Error> {
    remove(&paths.pid_file)
}

fn remove(path: &Path) -> Result<(), Error> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Io {
            action: "remove",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Write `text` to `path` through a temp file and a rename, so that a reader
/// (another barkctl, or python importing the script) never sees half a file.
pub fn write_file(path: &Path, text: &str) -> Result<(), Error> {
    let io = |action, source| Error::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io("create the folder of", e))?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, text).map_err(|e| io("write", e))?;
    std::fs::rename(&tmp, path).map_err(|e| io("write", e))
}

/// The last `n` lines of a log file (empty when it cannot be read).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A lock file held while one barkctl creates the venv and starts the server.
/// It holds the owner's pid: a lock whose owner died is broken, not waited for.
pub struct Lock {
    path: PathBuf,
}

impl Lock {
    pub fn acquire(paths: &Paths, patience: Duration) -> Result<Lock, Error> {
        std::fs::create_dir_all(&paths.dir).map_err(|source| Error::Io {
            action: "create",
            path: paths.dir.clone(),
            source,
        })?;
        let started = Instant::now();
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&paths.lock)
            {
                Ok(mut f) => {
                    let _ = writeln!(f, "{}", std::process::id());
                    return Ok(Lock {
                        path: paths.lock.clone(),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = std::fs::read_to_string(&paths.lock)
                        .ok()
                        .and_then(|t| t.trim().parse::<u32>().ok());
                    // An empty file is a lock being written right now: wait.
                    if let Some(pid) = owner {
                        if !super::process::is_alive(pid) {
                            remove(&paths.lock)?;
                            continue;
                        }
                    }
                    if started.elapsed() > patience {
                        return Err(Error::Locked {
                            path: paths.lock.clone(),
                            waited: patience,
                        });
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(source) => {
                    return Err(Error::Io {
                        action: "create",
                        path: paths.lock.clone(),
                        source,
                    })
                }
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
