//! The project's cargo workspace (`cargo metadata --no-deps`) and one
//! `cargo build` (or `cargo zigbuild` for a cross build) for a set of Lambda crates, read through cargo's JSON
//! messages to learn where each executable landed.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cargo_metadata::{Message, MetadataCommand, TargetKind};

use super::{BuildReporter, Error};
use crate::toolchain::{Linker, TargetSupport};

/// The workspace as far as bundles care: where `target/` is, and the bin
/// targets of each member package.
#[derive(Debug)]
pub(crate) struct Workspace {
    pub target_dir: PathBuf,
    /// The workspace's `[profile.*]` names (from its root Cargo.toml).
    pub profiles: BTreeSet<String>,
    pub packages: BTreeMap<String, Package>,
}

#[derive(Debug)]
pub(crate) struct Package {
    pub id: String,
    pub bins: Vec<String>,
}

impl Package {
    /// The bin target to ship: the only one, else one named `bootstrap` or
    /// after the package.
    pub fn lambda_bin(&self, crate_name: &str) -> Option<&str> {
        match self.bins.as_slice() {
            [only] => Some(only.as_str()),
            bins => bins
                .iter()
                .find(|b| *b == "bootstrap")
                .or_else(|| bins.iter().find(|b| *b == crate_name))
                .map(String::as_str),
        }
    }
}

/// The cargo cargo itself would run: `CARGO` is set when barkctl runs under cargo.
fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

pub(crate) fn workspace(root: &Path) -> Result<Workspace, Error> {
    let mut cmd = MetadataCommand::new();
    if let Some(c) = std::env::var_os("CARGO") {
        cmd.cargo_path(c);
    }
    let meta = cmd
        .current_dir(root)
        .no_deps()
        .exec()
        .map_err(|source| Error::Metadata {
            root: root.to_path_buf(),
            source: Box::new(source),
        })?;
    let members: BTreeSet<_> = meta.workspace_members.iter().collect();
    let packages = meta
        .packages
        .iter()
        .filter(|p| members.contains(&p.id))
        .map(|p| {
            let bins = p
                .targets
                .iter()
                .filter(|t| t.is_kind(TargetKind::Bin))
                .map(|t| t.name.clone())
                .collect();
            (
                p.name.to_string(),
                Package {
                    id: p.id.repr.clone(),
                    bins,
                },
            )
        })
        .collect();
    let manifest =
        std::fs::read_to_string(meta.workspace_root.join("Cargo.toml")).unwrap_or_default();
    Ok(Workspace {
        profiles: manifest
            .lines()
            .filter_map(|l| l.trim().strip_prefix("[profile.")?.strip_suffix(']'))
            .filter(|p| !p.contains('.'))
            .map(str::to_string)
            .collect(),
        target_dir: meta.target_directory.into_std_path_buf(),
        packages,
    })
}

/// One crate to build: its package id and the bin target to pick up.
#[derive(Debug, Clone)]
pub(crate) struct Wanted {
    pub crate_name: String,
    pub package_id: String,
    pub bin: String,
}

/// How cargo is asked to print.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CargoOutput {
    pub quiet: bool,
    pub color: bool,
}

/// The cargo profile bundles are built with: the stage's (`build_profile`,
/// else `dev` for local stages and `lambda` for others), unless
/// `BARKCTL_CARGO_PROFILE` names another. The deploy test sets `dev`: it checks
/// what gets deployed, not how fast the handlers run, and a cold optimised build
/// of nine SDK-heavy crates costs CI about ten minutes on two cores. A
/// workspace that does not define the default `lambda` profile gets `release`.
pub(crate) fn profile(stage: &crate::project::Stage, ws: &Workspace) -> String {
    if let Some(p) = std::env::var("BARKCTL_CARGO_PROFILE")
        .ok()
        .filter(|p| !p.trim().is_empty())
    {
        return p;
    }
    let p = stage.build_profile();
    if stage.build_profile.is_none()
        && p == crate::project::CLOUD_BUILD_PROFILE
        && !ws.profiles.contains(p)
    {
        return "release".to_string();
    }
    p.to_string()
}

/// What to pass after `--target`: the cross target, else the host triple when
/// the profile is named like the bundles' directory. A host build with the
/// `lambda` profile lands in `target/lambda/<crate>`, the path of the crate's
/// bundle directory (`target/lambda/<crate>/bootstrap.zip`): one of the two
/// cannot be created. Naming the host triple moves the binary to
/// `target/<triple>/lambda/`; nothing else builds with that profile, so no
/// dependency build is lost.
fn target_arg<'a>(support: &'a TargetSupport, profile: &str) -> Option<&'a str> {
    match &support.cargo_target {
        Some(t) => Some(t),
        None if profile == super::BUNDLES_DIR => Some(support.triple),
        None => None,
    }
}

/// Run one `cargo build --release` of `packages` (a superset of the wanted
/// crates): wanted crate name -> executable path, and how many compile units
/// cargo reported.
pub(crate) fn build(
    root: &Path,
    packages: &[String],
    wanted: &[Wanted],
    support: &TargetSupport,
    profile: &str,
    output: CargoOutput,
    reporter: &dyn BuildReporter,
) -> Result<(BTreeMap<String, PathBuf>, u64), Error> {
    let mut cmd = cargo();
    cmd.current_dir(root);
    let program = match &support.linker {
        Linker::Native => "cargo build",
        Linker::Zigbuild(zig) => {
            // `cargo-zigbuild zigbuild` is what `cargo zigbuild` runs; called
            // directly, it needs no PATH entry, and finds cargo through `CARGO`.
            cmd = Command::new(&zig.cargo_zigbuild);
            cmd.current_dir(root).arg("zigbuild");
            if let Some(c) = std::env::var_os("CARGO") {
                cmd.env("CARGO", c);
            }
            let path = std::env::var_os("PATH").unwrap_or_default();
            let joined = std::env::join_paths(
                std::iter::once(zig.bin_dir.clone()).chain(std::env::split_paths(&path)),
            )
            .unwrap_or(path);
            cmd.env("PATH", joined);
            "cargo zigbuild"
        }
    };
    if matches!(support.linker, Linker::Native) {
        cmd.arg("build");
    }
    cmd.args(["--profile", profile]);
    if let Some(target) = target_arg(support, profile) {
        cmd.args(["--target", target]);
    }
    for p in packages {
        cmd.args(["-p", p]);
    }
    cmd.arg("--message-format=json-render-diagnostics");
    cmd.arg(if output.color {
        "--color=always"
    } else {
        "--color=never"
    });
    if output.quiet {
        cmd.arg("--quiet");
    }
    let piped = reporter.takes_cargo_output();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(if piped {
            Stdio::piped()
        } else {
            Stdio::inherit()
        });
    let program = program.to_string();
    let mut child = cmd.spawn().map_err(|source| Error::Spawn {
        program: program.clone(),
        source,
    })?;

    let by_id: BTreeMap<&str, &Wanted> =
        wanted.iter().map(|w| (w.package_id.as_str(), w)).collect();
    let mut found: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut units = 0u64;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let status = std::thread::scope(|scope| {
        if let Some(err) = stderr {
            scope.spawn(move || {
                // Lines, not bytes: rendered diagnostics are line-oriented and the
                // reporter prints them above a live bar.
                for line in BufReader::new(err).split(b'\n').map_while(Result::ok) {
                    let line = String::from_utf8_lossy(&line);
                    reporter.cargo_line(line.trim_end_matches('\r'));
                }
            });
        }
        if let Some(out) = stdout {
            for message in Message::parse_stream(BufReader::new(out)).map_while(Result::ok) {
                match message {
                    Message::CompilerArtifact(a) => {
                        units += 1;
                        reporter.unit_finished(&a.target.name, a.fresh);
                        let Some(w) = by_id.get(a.package_id.repr.as_str()) else {
                            continue;
                        };
                        if a.target.is_kind(TargetKind::Bin) && a.target.name == w.bin {
                            if let Some(exe) = a.executable {
                                found.insert(w.crate_name.clone(), exe.into_std_path_buf());
                            }
                        }
                    }
                    Message::TextLine(line) if piped => reporter.cargo_line(&line),
                    _ => {}
                }
            }
        }
        child.wait()
    })
    .map_err(|source| Error::Spawn {
        program: program.clone(),
        source,
    })?;
    if !status.success() {
        return Err(Error::CargoFailed {
            program,
            status: status.to_string(),
        });
    }
    for w in wanted {
        if !found.contains_key(&w.crate_name) {
            return Err(Error::MissingArtifact {
                crate_name: w.crate_name.clone(),
                bin: w.bin.clone(),
            });
        }
    }
    Ok((found, units))
}
