//! What the installed Rust toolchain can build Lambda bundles for.

use std::path::Path;
use std::process::Command;

use crate::project::Architecture;

/// arm64 when the aarch64 Linux target is installed and a way to link for it
/// exists (a cross gcc, or zig through cargo-zigbuild); x86_64 otherwise.
pub fn default_architecture() -> Architecture {
    if std::env::var("BARKCTL_ARCH").as_deref() == Ok("x86_64") {
        return Architecture::X86_64;
    }
    let target = Architecture::Arm64.rust_target();
    let installed = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .is_some_and(|sysroot| {
            Path::new(&sysroot)
                .join("lib/rustlib")
                .join(target)
                .is_dir()
        });
    if installed && cross_linker().is_some() {
        Architecture::Arm64
    } else {
        Architecture::X86_64
    }
}

/// The linker that can produce aarch64 Linux binaries here, if any.
pub fn cross_linker() -> Option<&'static str> {
    ["aarch64-linux-gnu-gcc", "cargo-zigbuild"]
        .into_iter()
        .find(|tool| on_path(tool))
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
}
