//! How this machine builds Lambda bundles for a declared architecture, and
//! getting it ready to: the rustup target, and zig + `cargo-zigbuild` for cross
//! builds (installed from PyPI into barkctl's tools venv on first use, as moto is).
//!
//! Only building asks: what is rendered comes from the stack files alone
//! (`Project::architecture_of`), so `synth`, `validate` and `diff` never reach
//! this module.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::project::Architecture;

/// The glibc of `provided.al2023`: cross builds link against it (zig's
/// `<triple>.2.34` target), so a binary never needs a newer one.
pub const LAMBDA_GLIBC: &str = "2.34";

/// The pins barkctl installs for cross builds (keep in step with
/// `.ci/requirements.txt`, from which the tests take them).
pub const ZIGLANG_PIN: &str = "ziglang==0.17.0";
pub const CARGO_ZIGBUILD_PIN: &str = "cargo-zigbuild==0.24.0";

/// How cargo links for a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Linker {
    /// The target is the host: cargo's default linker works.
    Native,
    /// `cargo-zigbuild zigbuild` instead of `cargo build`: zig links for any
    /// target and against the glibc version the target names.
    Zigbuild(ZigTools),
}

/// Where the cross tools live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZigTools {
    /// The `cargo-zigbuild` executable.
    pub cargo_zigbuild: PathBuf,
    /// Put first on the build's `PATH`: the venv's `python3` gives
    /// `cargo-zigbuild` its zig (`python3 -m ziglang`).
    pub bin_dir: PathBuf,
}

/// A target this machine can build Lambda binaries for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSupport {
    pub architecture: Architecture,
    pub triple: &'static str,
    /// What to pass after `--target`. `None` for the host, so bundles share
    /// `target/<profile>` with a plain `cargo build` instead of compiling every
    /// dependency a second time into `target/<triple>/<profile>`. Cross builds
    /// name the glibc ceiling: `aarch64-unknown-linux-gnu.2.34`.
    pub cargo_target: Option<String>,
    pub linker: Linker,
}

/// What getting ready to build did, for the reporter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    AddingTarget(&'static str),
    InstallingZig(PathBuf),
}

/// The host's target triple, from the compile-time target (no process).
pub fn host_triple() -> Option<String> {
    (std::env::consts::OS == "linux")
        .then(|| format!("{}-unknown-linux-gnu", std::env::consts::ARCH))
}

/// How to build for `arch` in the project at `root`, installing what is
/// missing: the rustup target, then zig and cargo-zigbuild into the tools venv.
pub fn prepare(
    arch: Architecture,
    root: &Path,
    on_event: &dyn Fn(Event),
) -> Result<TargetSupport, Error> {
    let triple = arch.rust_target();
    if host_triple().as_deref() == Some(triple) {
        return Ok(TargetSupport {
            architecture: arch,
            triple,
            cargo_target: None,
            linker: Linker::Native,
        });
    }
    if !target_installed(triple) {
        add_target(triple, on_event)?;
    }
    let zig = match zig_tools(root) {
        Some(z) => z,
        None => {
            let venv = venv_dir(root);
            on_event(Event::InstallingZig(venv.clone()));
            install_zig(&venv)?;
            zig_tools(root).ok_or_else(|| Error::Install {
                step: format!("pip install {ZIGLANG_PIN} {CARGO_ZIGBUILD_PIN}"),
                detail: format!("left no `cargo-zigbuild` in `{}`", venv.display()),
            })?
        }
    };
    Ok(TargetSupport {
        architecture: arch,
        triple,
        cargo_target: Some(format!("{triple}.{LAMBDA_GLIBC}")),
        linker: Linker::Zigbuild(zig),
    })
}

/// The tools venv: `BARKCTL_TOOLS_VENV` when set, else the project's
/// `.barkctl/local/venv` (the one moto runs from).
fn venv_dir(root: &Path) -> PathBuf {
    std::env::var_os(crate::local::ENV_TOOLS_VENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".barkctl/local/venv"))
}

/// cargo-zigbuild and ziglang in the tools venv (else the project's venv).
fn zig_tools(root: &Path) -> Option<ZigTools> {
    [venv_dir(root), root.join(".barkctl/local/venv")]
        .into_iter()
        .map(|v| v.join("bin"))
        .find(|bin| bin.join("cargo-zigbuild").is_file() && has_ziglang(bin))
        .map(|bin| ZigTools {
            cargo_zigbuild: bin.join("cargo-zigbuild"),
            bin_dir: bin,
        })
}

/// The `ziglang` wheel is installed next to `bin/` (read from dist-info
/// folders: no interpreter start).
fn has_ziglang(bin: &Path) -> bool {
    let Some(venv) = bin.parent() else {
        return false;
    };
    let Ok(libs) = std::fs::read_dir(venv.join("lib")) else {
        return false;
    };
    libs.flatten().any(|lib| {
        std::fs::read_dir(lib.path().join("site-packages")).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                let n = e.file_name().to_string_lossy().to_lowercase();
                n.starts_with("ziglang-") && n.ends_with(".dist-info")
            })
        })
    })
}

fn install_zig(venv: &Path) -> Result<(), Error> {
    if !venv.join("bin/python").is_file() {
        run(
            Command::new("python3").arg("-m").arg("venv").arg(venv),
            "python3 -m venv",
        )?;
    }
    run(
        Command::new(venv.join("bin/python")).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            ZIGLANG_PIN,
            CARGO_ZIGBUILD_PIN,
        ]),
        &format!("pip install {ZIGLANG_PIN} {CARGO_ZIGBUILD_PIN}"),
    )
}

fn add_target(triple: &'static str, on_event: &dyn Fn(Event)) -> Result<(), Error> {
    let rustup = which::which("rustup").map_err(|_| Error::NoRustup { triple })?;
    on_event(Event::AddingTarget(triple));
    run(
        Command::new(rustup).args(["target", "add", triple]),
        &format!("rustup target add {triple}"),
    )
}

/// Run one setup step; its output is kept for the error only.
fn run(cmd: &mut Command, step: &str) -> Result<(), Error> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Install {
            step: step.to_string(),
            detail: e.to_string(),
        })?;
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = text.lines().rev().take(10).collect();
    Err(Error::Install {
        step: step.to_string(),
        detail: format!(
            "{}\n{}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ),
    })
}

/// The `rustc` cargo would use (`RUSTC` wins, as it does for cargo).
fn rustc() -> Command {
    Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
}

fn sysroot() -> Option<PathBuf> {
    let out = rustc()
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    Some(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Same answer as `rustup target list --installed`, without needing rustup:
/// an installed target has its standard library under the sysroot.
fn target_installed(triple: &str) -> bool {
    sysroot().is_some_and(|s| s.join("lib/rustlib").join(triple).join("lib").is_dir())
}

/// Getting the machine ready to build failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the Rust target `{triple}` is not installed, and `rustup` is not on PATH to add it")]
    NoRustup { triple: &'static str },
    #[error("`{step}` failed: {detail}")]
    Install { step: String, detail: String },
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::NoRustup { triple } => Some(format!(
                "install the standard library for `{triple}` into your Rust toolchain (with rustup: `rustup target add {triple}`), or declare `architecture: x86_64` for the function or stage"
            )),
            Error::Install { .. } => Some(
                "cross builds need `python3` with `venv` and PyPI (ziglang, cargo-zigbuild)".into(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_target_needs_no_tools_and_no_explicit_target() {
        let Some(host) = host_triple() else {
            return; // not a Linux host: nothing builds natively
        };
        for arch in [Architecture::X86_64, Architecture::Arm64] {
            if arch.rust_target() == host {
                let s = prepare(arch, Path::new("/nonexistent"), &|e| {
                    panic!("nothing to install for the host: {e:?}")
                })
                .expect("the host target is always buildable");
                assert_eq!(s.cargo_target, None);
                assert_eq!(s.linker, Linker::Native);
            }
        }
    }
}
