//! A small harness: copy a fixture project into a temp dir, run the real
//! `barkctl` binary there, and look at stdout, stderr and the exit code.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// The workspace root (this repository).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(name: &str) -> PathBuf {
    repo_root().join("tests").join("fixtures").join(name)
}

/// What one run of barkctl gave.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(out: Output) -> Self {
        Run {
            // A signal (a panic abort) gives no code: never a pass.
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Exit code 2 with an error that mentions every one of `needles`, and no panic.
    pub fn assert_invalid(&self, needles: &[&str]) {
        assert_eq!(
            self.code, 2,
            "expected exit 2, got {}: {self:#?}",
            self.code
        );
        assert!(!self.stderr.contains("panicked"), "panic: {}", self.stderr);
        assert!(
            self.stderr.starts_with("error: "),
            "stderr: {}",
            self.stderr
        );
        for n in needles {
            assert!(
                self.stderr.contains(n),
                "stderr lacks {n:?}:\n{}",
                self.stderr
            );
        }
    }

    pub fn assert_ok(&self) {
        assert_eq!(self.code, 0, "expected success: {self:#?}");
    }
}

/// A command for the real binary, with a clean environment for barkctl's own
/// variables and no colour.
pub fn barkctl(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_barkctl"));
    cmd.current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("BARKCTL_PROJECT")
        .env_remove("BARKCTL_STAGE");
    cmd
}

pub fn run(dir: &Path, args: &[&str]) -> Run {
    let out = barkctl(dir).args(args).output().expect("barkctl runs");
    Run::from(out)
}

/// A copy of `src` in a fresh temp dir (kept alive by the returned guard).
pub fn copy_project(src: &Path) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dst = tmp.path().join("project");
    copy_dir(src, &dst);
    (tmp, dst)
}

/// The repository's own project (stacks/, templates/, lambdas manifests) in a temp
/// dir: safe to edit. Lambda sources are not copied, only their Cargo.toml.
pub fn copy_barkbase() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dst = tmp.path().join("barkbase");
    let root = repo_root();
    copy_dir(&root.join("stacks"), &dst.join("stacks"));
    copy_dir(&root.join("templates"), &dst.join("templates"));
    if let Ok(entries) = std::fs::read_dir(root.join("lambdas")) {
        for e in entries.flatten() {
            let manifest = e.path().join("Cargo.toml");
            if manifest.is_file() {
                let to = dst.join("lambdas").join(e.file_name());
                std::fs::create_dir_all(&to).expect("mkdir");
                std::fs::copy(&manifest, to.join("Cargo.toml")).expect("copy manifest");
            }
        }
    }
    (tmp, dst)
}

pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("mkdir");
    for e in std::fs::read_dir(src).expect("read fixture dir").flatten() {
        // State a developer's own runs leave behind is not part of a project.
        if matches!(e.file_name().to_str(), Some(".barkctl" | "target")) {
            continue;
        }
        let to = dst.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), &to).expect("copy");
        }
    }
}

pub fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, text).expect("write");
}

/// An executable from the tools venv (`scripts/test.sh` prepares it), else PATH.
pub fn tool(name: &str) -> PathBuf {
    if let Some(venv) = std::env::var_os("BARKCTL_TOOLS_VENV") {
        let p = PathBuf::from(venv).join("bin").join(name);
        if p.is_file() {
            return p;
        }
    }
    let local = repo_root().join(".barkctl/local/venv/bin").join(name);
    if local.is_file() {
        return local;
    }
    PathBuf::from(name)
}

/// A loopback port that no other test of this process has been given. The OS may
/// hand a port just released by one `bind(0)` to the next, and two tests whose
/// servers race for one port end up talking to the same server (seen: a deploy
/// that met another test's stage lock, then that test's emulator going away).
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        if GIVEN.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return port;
        }
    }
}
