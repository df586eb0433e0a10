//! What the installed Rust toolchain can build Lambda bundles for, and how.
//!
//! Detection spawns `rustc` at most twice per process (host triple, sysroot);
//! the answers are cached because `build`, `synth` and `deploy` all ask.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use crate::project::Architecture;

/// How cargo links for a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Linker {
    /// The target is the host: cargo's default linker works.
    Native,
    /// A cross gcc, passed as `CARGO_TARGET_<TRIPLE>_LINKER`.
    Gcc(String),
    /// `cargo zigbuild` instead of `cargo build`: zig links for any target.
    Zigbuild,
}

/// A target this machine can build Lambda binaries for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSupport {
    pub architecture: Architecture,
    pub triple: &'static str,
    /// Pass `--target`. Left out when the target is the host, so bundles share
    /// `target/release` with a plain `cargo build --release` instead of compiling
    /// every dependency a second time into `target/<triple>/release`.
    pub explicit_target: bool,
    pub linker: Linker,
}

/// arm64 when this machine can build aarch64 Linux binaries (the target is
/// installed and a linker for it exists, or it is the host); x86_64 otherwise.
/// `BARKCTL_ARCH=x86_64|arm64` forces a choice.
pub fn default_architecture() -> Architecture {
    match std::env::var("BARKCTL_ARCH").as_deref() {
        Ok("x86_64") => return Architecture::X86_64,
        Ok("arm64") => return Architecture::Arm64,
        _ => {}
    }
    if support(Architecture::Arm64).is_some() {
        Architecture::Arm64
    } else {
        Architecture::X86_64
    }
}

/// How to build for `arch` here, or `None` when this machine cannot.
pub fn support(arch: Architecture) -> Option<TargetSupport> {
    let triple = arch.rust_target();
    if host_triple().as_deref() == Some(triple) {
        return Some(TargetSupport {
            architecture: arch,
            triple,
            explicit_target: false,
            linker: Linker::Native,
        });
    }
    if !target_installed(triple) {
        return None;
    }
    let gcc = match arch {
        Architecture::X86_64 => "x86_64-linux-gnu-gcc",
        Architecture::Arm64 => "aarch64-linux-gnu-gcc",
    };
    let linker = if on_path(gcc) {
        Linker::Gcc(gcc.to_string())
    } else if on_path("cargo-zigbuild") {
        Linker::Zigbuild
    } else {
        return None;
    };
    Some(TargetSupport {
        architecture: arch,
        triple,
        explicit_target: true,
        linker,
    })
}

/// The linker that can produce aarch64 Linux binaries here, if any.
pub fn cross_linker() -> Option<&'static str> {
    ["aarch64-linux-gnu-gcc", "cargo-zigbuild"]
        .into_iter()
        .find(|tool| on_path(tool))
}

/// The `rustc` cargo would use (`RUSTC` wins, as it does for cargo).
fn rustc() -> Command {
    Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
}

/// `host:` from `rustc -vV` (`x86_64-unknown-linux-gnu`).
pub fn host_triple() -> Option<String> {
    static HOST: OnceLock<Option<String>> = OnceLock::new();
    HOST.get_or_init(|| {
        let out = rustc()
            .arg("-vV")
            .output()
            .ok()
            .filter(|o| o.status.success())?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("host: "))
            .map(|h| h.trim().to_string())
    })
    .clone()
}

fn sysroot() -> Option<PathBuf> {
    static SYSROOT: OnceLock<Option<PathBuf>> = OnceLock::new();
    SYSROOT
        .get_or_init(|| {
            let out = rustc()
                .args(["--print", "sysroot"])
                .output()
                .ok()
                .filter(|o| o.status.success())?;
            Some(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        })
        .clone()
}

/// Same answer as `rustup target list --installed`, without needing rustup:
/// an installed target has its standard library under the sysroot.
fn target_installed(triple: &str) -> bool {
    sysroot().is_some_and(|s| s.join("lib/rustlib").join(triple).join("lib").is_dir())
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_target_is_supported_without_an_explicit_target() {
        let Some(host) = host_triple() else {
            panic!("rustc -vV gave no host triple");
        };
        for arch in [Architecture::X86_64, Architecture::Arm64] {
            if arch.rust_target() == host {
                let s = support(arch).expect("the host target is always buildable");
                assert!(!s.explicit_target);
                assert_eq!(s.linker, Linker::Native);
            }
        }
    }
}
