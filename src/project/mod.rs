//! Stack files (`stacks/project.yaml` and `stacks/<name>.yaml`) -> a validated
//! `Project`. Pure: reads files, makes no AWS call.

mod error;
mod load;
mod raw;
mod yaml_lines;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

pub use error::{Error, Location};
pub use load::{find_root, load};

/// Lambda CPU architecture, spelled as CloudFormation spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Architecture {
    #[serde(rename = "x86_64")]
    X86_64,
    #[serde(rename = "arm64")]
    Arm64,
}

impl Architecture {
    pub fn as_str(self) -> &'static str {
        match self {
            Architecture::X86_64 => "x86_64",
            Architecture::Arm64 => "arm64",
        }
    }

    /// The architecture of the machine barkctl runs on, from the compile-time
    /// target (no process): what a local stage's functions are built for,
    /// because `barkctl dev` runs them here. Hosts other than aarch64 count as
    /// x86_64 (the only other architecture Lambda has).
    pub fn host() -> Self {
        match std::env::consts::ARCH {
            "aarch64" => Architecture::Arm64,
            _ => Architecture::X86_64,
        }
    }

    /// The Rust target triple a bundle for this architecture is built for.
    pub fn rust_target(self) -> &'static str {
        match self {
            Architecture::X86_64 => "x86_64-unknown-linux-gnu",
            Architecture::Arm64 => "aarch64-unknown-linux-gnu",
        }
    }
}

/// The architecture functions get when neither the function, its stage nor
/// `defaults.function` declares one: Graviton is cheaper and starts Rust
/// handlers faster.
pub const DEFAULT_ARCHITECTURE: Architecture = Architecture::Arm64;

/// The cargo profile of a local stage's bundles when it names none: shares its
/// dependency builds with a debug barkctl and skips a cold optimised build.
pub const LOCAL_BUILD_PROFILE: &str = "dev";

/// The cargo profile of a cloud stage's bundles when it names none: the lean
/// one, where the workspace defines it (else `release`, see `bundle::cargo`).
pub const CLOUD_BUILD_PROFILE: &str = "lambda";

#[derive(Debug, Clone)]
pub struct Project {
    /// The folder holding `stacks/` and `templates/`.
    pub root: PathBuf,
    pub app: String,
    pub region: String,
    pub tags: BTreeMap<String, String>,
    pub stages: BTreeMap<String, Stage>,
    /// Stacks by short name (`network`, `realtime`, ...).
    pub stacks: BTreeMap<String, Stack>,
    /// `defaults.function.architecture`, else `DEFAULT_ARCHITECTURE`.
    pub default_architecture: Architecture,
}

#[derive(Debug, Clone)]
pub struct Stage {
    pub name: String,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub profile: Option<String>,
    pub local: bool,
    pub termination_protection: bool,
    pub params: Map<String, Value>,
    pub tags: BTreeMap<String, String>,
    /// The stage's `architecture`: wins over the project default, not over a
    /// function's own. Not used by local stages (they build for the host).
    pub architecture: Option<Architecture>,
    /// The stage's `build_profile` (a cargo profile name).
    pub build_profile: Option<String>,
}

impl Stage {
    /// The cargo profile this stage's bundles are built with: the stage's
    /// `build_profile`, else `dev` for local stages and `lambda` for others.
    pub fn build_profile(&self) -> &str {
        match &self.build_profile {
            Some(p) => p,
            None if self.local => LOCAL_BUILD_PROFILE,
            None => CLOUD_BUILD_PROFILE,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Stack {
    pub name: String,
    /// The stack file, relative to the project root (`stacks/realtime.yaml`).
    pub file: PathBuf,
    pub description: Option<String>,
    /// The template file, relative to the project root (`templates/realtime.yaml.hbs`).
    pub template: PathBuf,
    /// Upstream stack -> the outputs of it this stack receives as parameters.
    pub needs: BTreeMap<String, Vec<String>>,
    pub depends_on: Vec<String>,
    pub functions: BTreeMap<String, Function>,
    /// Default parameters (project defaults merged under the stack's own).
    pub params: Map<String, Value>,
    /// Per-stage parameter overrides.
    pub stage_params: BTreeMap<String, Map<String, Value>>,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct Function {
    /// The key in the stack file (`connect`).
    pub key: String,
    pub crate_name: String,
    /// The crate's folder, relative to the project root.
    pub crate_dir: PathBuf,
    pub memory: u32,
    pub timeout: u32,
    /// The function's own `architecture`, when its stack file declares one.
    pub architecture: Option<Architecture>,
    pub description: Option<String>,
}

impl Project {
    pub fn stage(&self, name: &str) -> Result<&Stage, Error> {
        self.stages.get(name).ok_or_else(|| Error::UnknownStage {
            stage: name.to_string(),
            known: self.stage_names(),
        })
    }

    /// The stage from `--stage`, or the only stage when there is one.
    pub fn select_stage(&self, wanted: Option<&str>) -> Result<&Stage, Error> {
        match wanted {
            Some(name) => self.stage(name),
            None if self.stages.len() == 1 => Ok(self.stages.values().next().expect("one stage")),
            None => Err(Error::NoStage {
                known: self.stage_names(),
            }),
        }
    }

    fn stage_names(&self) -> String {
        self.stages.keys().cloned().collect::<Vec<_>>().join(", ")
    }

    pub fn stack(&self, name: &str) -> Result<&Stack, Error> {
        self.stacks.get(name).ok_or_else(|| Error::UnknownStack {
            name: name.to_string(),
            known: self.stacks.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    /// The architecture `function` is rendered and built with at `stage`, from
    /// the stack files alone: the host's on a local stage (`barkctl dev` runs
    /// it here); otherwise the function's own, else the stage's, else the
    /// project default.
    pub fn architecture_of(&self, stage: &Stage, function: &Function) -> Architecture {
        if stage.local {
            return Architecture::host();
        }
        function
            .architecture
            .or(stage.architecture)
            .unwrap_or(self.default_architecture)
    }

    pub fn region_for(&self, stage: &Stage) -> String {
        stage.region.clone().unwrap_or_else(|| self.region.clone())
    }

    /// `{app}-{stage}-{stack}`
    pub fn stack_name(&self, stage: &str, stack: &str) -> String {
        format!("{}-{}-{}", self.app, stage, stack)
    }

    /// `{app}-{stage}-{stack}-{function}`
    pub fn function_name(&self, stage: &str, stack: &str, function: &str) -> String {
        format!("{}-{}-{}-{}", self.app, stage, stack, function)
    }

    /// Parameters of `stack` at `stage`, later wins: project `defaults.params`, the
    /// stack's `params`, the project stage's `params`, the stack's `stages.<stage>.params`.
    pub fn params_for(&self, stack: &Stack, stage: &Stage) -> Map<String, Value> {
        let mut merged = stack.params.clone();
        merged.extend(stage.params.clone());
        if let Some(overrides) = stack.stage_params.get(&stage.name) {
            merged.extend(overrides.clone());
        }
        merged
    }

    /// Tags for every resource of `stack` at `stage`.
    pub fn tags_for(&self, stack: &Stack, stage: &Stage) -> BTreeMap<String, String> {
        let mut tags = BTreeMap::new();
        tags.insert("barkctl:app".to_string(), self.app.clone());
        tags.insert("barkctl:stage".to_string(), stage.name.clone());
        tags.insert("barkctl:stack".to_string(), stack.name.clone());
        tags.extend(self.tags.clone());
        tags.extend(stage.tags.clone());
        tags.extend(stack.tags.clone());
        tags
    }

    pub fn path(&self, relative: &Path) -> PathBuf {
        self.root.join(relative)
    }
}

/// The line of a key path in a YAML file on disk, for errors found after loading.
pub fn line_in_file(path: &Path, key: &[&str]) -> Option<usize> {
    let text = std::fs::read_to_string(path).ok()?;
    yaml_lines::line_of(&text, key)
}
