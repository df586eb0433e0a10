//! The stack files exactly as written: serde structs that reject unknown keys.
//! `load.rs` turns them into the validated `Project`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

/// `stacks/project.yaml`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProject {
    pub app: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub defaults: RawDefaults,
    pub stages: BTreeMap<String, RawStage>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDefaults {
    /// Parameters every stack's template sees (a stack's own params win).
    #[serde(default)]
    pub params: Map<String, Value>,
    #[serde(default)]
    pub function: RawFunctionDefaults,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFunctionDefaults {
    pub memory: Option<u32>,
    pub timeout: Option<u32>,
    pub architecture: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStage {
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub profile: Option<String>,
    /// A stage served by the local AWS emulator.
    #[serde(default)]
    pub local: bool,
    #[serde(default)]
    pub termination_protection: bool,
    #[serde(default)]
    pub params: Map<String, Value>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub architecture: Option<String>,
    pub build_profile: Option<String>,
}

/// `stacks/<name>.yaml`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStack {
    #[serde(default)]
    pub description: Option<String>,
    pub template: String,
    #[serde(default)]
    pub needs: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub depends_on: Vec<String>,
    #[serde(default)]
    pub functions: BTreeMap<String, RawFunction>,
    #[serde(default)]
    pub params: Map<String, Value>,
    #[serde(default)]
    pub stages: BTreeMap<String, RawStackStage>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFunction {
    #[serde(rename = "crate")]
    pub crate_name: String,
    pub memory: Option<u32>,
    pub timeout: Option<u32>,
    pub architecture: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStackStage {
    #[serde(default)]
    pub params: Map<String, Value>,
}
