//! Lambda crates (found with cargo_metadata) -> one release build -> reproducible
//! zips keyed by the sha256 of the binary.
//!
//! A bundle's key is the hash of the binary, not of the zip: the zip is a
//! function of the binary (fixed time and mode), so an unchanged binary is never
//! re-zipped, and its S3 object is never uploaded again.

mod archive;
mod cargo;
mod elf;
mod select;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

pub use elf::AL2023_GLIBC;
pub use select::{all_functions, functions_of, select, FunctionRef};

use crate::project::{Architecture, Project, Stage};
use crate::toolchain;

/// The directory under cargo's target dir that holds one directory per bundle.
const BUNDLES_DIR: &str = "lambda";

/// A built, zipped Lambda binary.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Bundle {
    pub crate_name: String,
    /// The executable cargo built (`target/release/realtime-connect`).
    pub binary: PathBuf,
    /// `target/lambda/<crate>/bootstrap.zip`
    pub zip: PathBuf,
    /// Hex sha256 of the binary.
    pub sha256: String,
    pub zip_bytes: u64,
    pub architecture: Architecture,
    /// The zip was written by this build (false: the existing zip was reused).
    pub rezipped: bool,
    /// The functions shipping this bundle, as `stack.function`.
    pub functions: Vec<String>,
    /// The newest glibc symbol version the binary needs (`None`: static, or no
    /// versioned glibc symbols).
    pub glibc: Option<(u32, u32)>,
}

impl Bundle {
    /// The S3 key of this bundle in the asset bucket: `{app}/{sha256}.zip`.
    pub fn s3_key(&self, app: &str) -> String {
        format!("{app}/{}.zip", self.sha256)
    }

    /// False when the binary needs a newer glibc than `provided.al2023` has: it
    /// would fail to start on Lambda ("version `GLIBC_2.xx' not found").
    pub fn runs_on_al2023(&self) -> bool {
        self.glibc.is_none_or(|v| v <= AL2023_GLIBC)
    }
}

/// Build events, for progress display. Every method has a do-nothing default.
pub trait BuildReporter: Send + Sync {
    /// One cargo invocation starts for `crates` (target triple `target`);
    /// `units` is how many compile units the same build had last time, if known.
    fn build_started(&self, _crates: &[String], _target: &str, _units: Option<u64>) {}
    /// True: cargo's stderr is piped to `cargo_line`. False: cargo writes to
    /// barkctl's stderr directly, so its errors show as they are.
    fn takes_cargo_output(&self) -> bool {
        false
    }
    /// One line cargo wrote to stderr (only when `takes_cargo_output`).
    fn cargo_line(&self, _line: &str) {}
    /// Getting ready to build for another architecture (adding the rustup
    /// target, installing zig): may take a while the first time.
    fn preparing(&self, _what: &str) {}
    /// Cargo finished (or found fresh) one compile unit.
    fn unit_finished(&self, _name: &str, _fresh: bool) {}
    /// The cargo invocation ended.
    fn cargo_finished(&self, _success: bool) {}
    /// A bundle was zipped or reused.
    fn bundle_ready(&self, _bundle: &Bundle) {}
    /// Every bundle is ready.
    fn done(&self, _bundles: &BTreeMap<String, Bundle>) {}
}

/// A reporter that shows nothing (cargo's own stderr still reaches the terminal).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoReport;

impl BuildReporter for NoReport {}

/// How to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The stage being built: its functions' architectures (see
    /// `Project::architecture_of`) and its cargo profile.
    pub stage: Stage,
    /// `cargo --quiet`: only warnings and errors.
    pub quiet: bool,
    /// Cargo's diagnostics in colour.
    pub color: bool,
}

impl BuildOptions {
    pub fn new(stage: &Stage) -> Self {
        BuildOptions {
            stage: stage.clone(),
            quiet: false,
            color: false,
        }
    }
}

/// Build every crate the functions of `stacks` name at `stage` (one cargo
/// invocation), zip, hash.
pub fn build(
    project: &Project,
    stage: &Stage,
    stacks: &[String],
    reporter: &dyn BuildReporter,
) -> Result<BTreeMap<String, Bundle>, Error> {
    let functions = functions_of(project, stage, stacks)?;
    build_functions(project, &functions, &BuildOptions::new(stage), reporter)
}

/// Build the crates of `functions`: one cargo invocation per architecture
/// (one in practice), then zip what changed. Crate name -> bundle.
pub fn build_functions(
    project: &Project,
    functions: &[FunctionRef],
    options: &BuildOptions,
    reporter: &dyn BuildReporter,
) -> Result<BTreeMap<String, Bundle>, Error> {
    let crates = crates_by_architecture(functions)?;
    if crates.is_empty() {
        let none = BTreeMap::new();
        reporter.done(&none);
        return Ok(none);
    }
    let ws = cargo::workspace(&project.root)?;
    let mut groups: BTreeMap<&'static str, Vec<cargo::Wanted>> = BTreeMap::new();
    for (crate_name, (arch, users)) in &crates {
        let first = users[0];
        let Some(pkg) = ws.packages.get(crate_name) else {
            return Err(Error::NotAMember {
                crate_name: crate_name.clone(),
                function: first.label(),
                stack_file: first.stack_file.clone(),
                root: project.root.clone(),
            });
        };
        let bin = match pkg.lambda_bin(crate_name) {
            Some(bin) => bin.to_string(),
            None if pkg.bins.is_empty() => {
                return Err(Error::NoBinary {
                    crate_name: crate_name.clone(),
                    function: first.label(),
                    stack_file: first.stack_file.clone(),
                })
            }
            None => {
                return Err(Error::AmbiguousBinary {
                    crate_name: crate_name.clone(),
                    function: first.label(),
                    stack_file: first.stack_file.clone(),
                    bins: pkg.bins.join(", "),
                })
            }
        };
        groups
            .entry(arch.as_str())
            .or_default()
            .push(cargo::Wanted {
                crate_name: crate_name.clone(),
                package_id: pkg.id.clone(),
                bin,
            });
    }

    let output = cargo::CargoOutput {
        quiet: options.quiet,
        color: options.color,
    };
    let profile = cargo::profile(&options.stage, &ws);
    let lambda_dir = ws.target_dir.join(BUNDLES_DIR);
    let mut binaries: Vec<(String, PathBuf, Architecture)> = Vec::new();
    for wanted in groups.values() {
        let (arch, _) = &crates[&wanted[0].crate_name];
        let support = toolchain::prepare(*arch, &project.root, &|e| match e {
            toolchain::Event::AddingTarget(t) => {
                reporter.preparing(&format!("adding the Rust target: rustup target add {t}"))
            }
            toolchain::Event::InstallingZig(venv) => reporter.preparing(&format!(
                "installing {} and {} into {} (first cross build)",
                toolchain::ZIGLANG_PIN,
                toolchain::CARGO_ZIGBUILD_PIN,
                venv.display()
            )),
        })?;
        let packages = packages_for(project, &options.stage, &ws, *arch, wanted);
        let units_key = format!("{} {profile} {}", support.triple, packages.join(" "));
        reporter.build_started(
            &packages,
            support.triple,
            units::last(&lambda_dir, &units_key),
        );
        let built = cargo::build(
            &project.root,
            &packages,
            wanted,
            &support,
            &profile,
            output,
            reporter,
        );
        reporter.cargo_finished(built.is_ok());
        let (exes, count) = built?;
        units::remember(&lambda_dir, &units_key, count);
        binaries.extend(exes.into_iter().map(|(c, exe)| (c, exe, *arch)));
    }

    let deflate = if options.stage.local {
        archive::Deflate::Fast
    } else {
        archive::Deflate::Small
    };
    let bundles = pack_all(&binaries, &lambda_dir, &crates, deflate, reporter)?;
    reporter.done(&bundles);
    Ok(bundles)
}

/// The packages to pass to cargo for `arch`: the wanted crates plus every
/// other function crate of the project built for the same architecture.
///
/// Cargo unifies features across the packages of one invocation, so building
/// `realtime-connect` alone resolves rustls, aws-lc-rs, serde, bytes ... with
/// other features than building it next to the jobs crates, and the binary
/// (its sha256, its S3 key) would depend on which functions were asked for.
/// Always building the same set keeps one source tree = one hash; on a warm
/// target the extra crates are fresh and cost nothing.
fn packages_for(
    project: &Project,
    stage: &Stage,
    ws: &cargo::Workspace,
    arch: Architecture,
    wanted: &[cargo::Wanted],
) -> Vec<String> {
    let mut names: std::collections::BTreeSet<String> =
        wanted.iter().map(|w| w.crate_name.clone()).collect();
    for f in all_functions(project, stage) {
        let same_arch = f.architecture == arch;
        let buildable = ws
            .packages
            .get(&f.crate_name)
            .is_some_and(|p| p.lambda_bin(&f.crate_name).is_some());
        if same_arch && buildable {
            names.insert(f.crate_name);
        }
    }
    names.into_iter().collect()
}

/// Crate name -> (architecture, the functions using it). A crate shipped by two
/// functions is built once; it cannot be both x86_64 and arm64.
fn crates_by_architecture(
    functions: &[FunctionRef],
) -> Result<BTreeMap<String, (Architecture, Vec<&FunctionRef>)>, Error> {
    let mut out: BTreeMap<String, (Architecture, Vec<&FunctionRef>)> = BTreeMap::new();
    for f in functions {
        let arch = f.architecture;
        let entry = out
            .entry(f.crate_name.clone())
            .or_insert_with(|| (arch, Vec::new()));
        if entry.0 != arch {
            return Err(Error::ArchitectureConflict {
                crate_name: f.crate_name.clone(),
                first: entry.1[0].label(),
                first_arch: entry.0.as_str(),
                second: f.label(),
                second_arch: arch.as_str(),
            });
        }
        entry.1.push(f);
    }
    Ok(out)
}

/// Hash and zip every binary, a few at a time: deflating a release binary is
/// CPU-bound, so one worker per core.
fn pack_all(
    binaries: &[(String, PathBuf, Architecture)],
    lambda_dir: &std::path::Path,
    crates: &BTreeMap<String, (Architecture, Vec<&FunctionRef>)>,
    deflate: archive::Deflate,
    reporter: &dyn BuildReporter,
) -> Result<BTreeMap<String, Bundle>, Error> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Result<Bundle, Error>>> = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(binaries.len())
        .max(1);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((crate_name, binary, arch)) = binaries.get(i) else {
                    break;
                };
                let users = crates.get(crate_name).map(|(_, u)| u.as_slice());
                let result = pack_one(crate_name, binary, *arch, lambda_dir, users, deflate);
                if let Ok(b) = &result {
                    reporter.bundle_ready(b);
                }
                if let Ok(mut all) = results.lock() {
                    all.push(result);
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_default();
    let mut out = BTreeMap::new();
    for r in results {
        let b = r?;
        out.insert(b.crate_name.clone(), b);
    }
    Ok(out)
}

fn pack_one(
    crate_name: &str,
    binary: &std::path::Path,
    arch: Architecture,
    lambda_dir: &std::path::Path,
    users: Option<&[&FunctionRef]>,
    deflate: archive::Deflate,
) -> Result<Bundle, Error> {
    let packed = archive::ensure_bundle(
        binary,
        &lambda_dir.join(crate_name),
        arch,
        crate_name,
        deflate,
    )?;
    Ok(Bundle {
        crate_name: crate_name.to_string(),
        binary: binary.to_path_buf(),
        zip: packed.zip,
        sha256: packed.sha256,
        zip_bytes: packed.zip_bytes,
        architecture: arch,
        rezipped: packed.rezipped,
        functions: users
            .unwrap_or_default()
            .iter()
            .map(|f| f.label())
            .collect(),
        glibc: elf::glibc_needed(binary)?,
    })
}

/// How many compile units a build had, so the next identical build can show a
/// bar with a length (cargo's JSON does not announce the total).
mod units {
    use std::path::Path;

    const FILE: &str = ".units";

    pub(super) fn last(lambda_dir: &Path, key: &str) -> Option<u64> {
        let text = std::fs::read_to_string(lambda_dir.join(FILE)).ok()?;
        let (k, n) = text.trim_end().rsplit_once('\t')?;
        (k == key).then(|| n.parse().ok()).flatten()
    }

    pub(super) fn remember(lambda_dir: &Path, key: &str, count: u64) {
        // Only a progress hint: failing to store it changes nothing else.
        let _ = std::fs::create_dir_all(lambda_dir);
        let _ = std::fs::write(lambda_dir.join(FILE), format!("{key}\t{count}\n"));
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn function(stack: &str, key: &str, krate: &str, arch: Architecture) -> FunctionRef {
        FunctionRef {
            stack: stack.into(),
            key: key.into(),
            crate_name: krate.into(),
            stack_file: PathBuf::from(format!("stacks/{stack}.yaml")),
            architecture: arch,
        }
    }

    #[test]
    fn a_crate_shared_by_two_functions_is_built_once() {
        let fs = [
            function("a", "one", "shared", Architecture::Arm64),
            function("b", "two", "shared", Architecture::Arm64),
            function("b", "three", "other", Architecture::X86_64),
        ];
        let crates = crates_by_architecture(&fs).expect("no conflict");
        assert_eq!(crates.len(), 2);
        assert_eq!(crates["shared"].0, Architecture::Arm64);
        assert_eq!(crates["shared"].1.len(), 2);
    }

    #[test]
    fn one_crate_cannot_ship_as_x86_64_and_arm64() {
        let fs = [
            function("a", "one", "shared", Architecture::X86_64),
            function("b", "two", "shared", Architecture::Arm64),
        ];
        let err = crates_by_architecture(&fs).expect_err("conflict");
        assert_eq!(err.exit_code(), 2);
        assert_eq!(
            err.to_string(),
            "crate `shared` is built for x86_64 by `a.one` and for arm64 by `b.two`; one binary cannot be both"
        );
    }

    #[test]
    fn the_s3_key_is_the_binary_hash_under_the_app() {
        let b = Bundle {
            crate_name: "c".into(),
            binary: PathBuf::from("target/release/c"),
            zip: PathBuf::from("target/lambda/c/bootstrap.zip"),
            sha256: "ab".repeat(32),
            zip_bytes: 1,
            architecture: Architecture::X86_64,
            rezipped: false,
            functions: vec!["s.c".into()],
            glibc: Some((2, 34)),
        };
        assert_eq!(
            b.s3_key("barkbase"),
            format!("barkbase/{}.zip", "ab".repeat(32))
        );
    }
}

/// Errors of this layer. Each variant carries its context (function, stack file, path).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown stack `{name}`; stacks: {known}")]
    UnknownStack { name: String, known: String },
    #[error("unknown function `{name}`; functions: {known}")]
    UnknownFunction { name: String, known: String },
    #[error("crate `{crate_name}` is built for {first_arch} by `{first}` and for {second_arch} by `{second}`; one binary cannot be both")]
    ArchitectureConflict {
        crate_name: String,
        first: String,
        first_arch: &'static str,
        second: String,
        second_arch: &'static str,
    },
    #[error(transparent)]
    Toolchain(#[from] toolchain::Error),
    #[error("cannot read the cargo workspace at `{}`: {source}", root.display())]
    Metadata {
        root: PathBuf,
        #[source]
        source: Box<cargo_metadata::Error>,
    },
    #[error("crate `{crate_name}` of function `{function}` ({}) is not a member of the cargo workspace at `{}`", stack_file.display(), root.display())]
    NotAMember {
        crate_name: String,
        function: String,
        stack_file: PathBuf,
        root: PathBuf,
    },
    #[error("crate `{crate_name}` of function `{function}` ({}) has no bin target; a Lambda handler needs a `src/main.rs`", stack_file.display())]
    NoBinary {
        crate_name: String,
        function: String,
        stack_file: PathBuf,
    },
    #[error("crate `{crate_name}` of function `{function}` ({}) has several bin targets ({bins}); name the handler `bootstrap` or `{crate_name}`", stack_file.display())]
    AmbiguousBinary {
        crate_name: String,
        function: String,
        stack_file: PathBuf,
        bins: String,
    },
    #[error("cannot run `{program}`: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{program}` failed ({status})")]
    CargoFailed { program: String, status: String },
    #[error("cargo reported no executable `{bin}` for crate `{crate_name}`")]
    MissingArtifact { crate_name: String, bin: String },
    #[error("the binary of `{crate_name}` (`{}`) is {found}, but its functions are declared {expected}", binary.display())]
    WrongBinary {
        crate_name: String,
        binary: PathBuf,
        expected: &'static str,
        found: String,
    },
    #[error("cannot read or write `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the zip `{}`: {source}", path.display())]
    Zip {
        path: PathBuf,
        #[source]
        source: zip::result::ZipError,
    },
}

impl Error {
    /// The process exit code for this error (see README "Exit codes"): 2 for
    /// what the user named or declared, 3 when building failed (a compile error
    /// included: the stack files were fine, the build was not).
    pub fn exit_code(&self) -> i32 {
        use crate::exit;
        match self {
            Error::UnknownStack { .. }
            | Error::UnknownFunction { .. }
            | Error::ArchitectureConflict { .. }
            | Error::NotAMember { .. }
            | Error::NoBinary { .. }
            | Error::AmbiguousBinary { .. } => exit::INVALID_INPUT,
            Error::Toolchain(_)
            | Error::Metadata { .. }
            | Error::Spawn { .. }
            | Error::CargoFailed { .. }
            | Error::MissingArtifact { .. }
            | Error::WrongBinary { .. }
            | Error::Io { .. }
            | Error::Zip { .. } => exit::DEPLOY_FAILED,
        }
    }

    /// What to do about it, printed after a blank line.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Toolchain(e) => e.hint(),
            Error::CargoFailed { .. } => Some("cargo's errors are printed above".into()),
            Error::Spawn { .. } => Some("is cargo on PATH?".into()),
            _ => None,
        }
    }
}
