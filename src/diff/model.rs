//! What `barkctl diff` finds, as plain data: per stack, the parameter, condition,
//! resource and output changes with their replacement impact, and the security
//! changes. Serialised as is for `--json`; `report::diff` prints it for people.

use serde::Serialize;
use serde_json::Value;

use super::security::SecurityChanges;

/// A stack as a whole, compared with what is deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StackStatus {
    /// Not deployed yet: everything in it is created.
    New,
    Changed,
    Unchanged,
}

/// Whether an entry (parameter, resource, output, ...) appears, goes or changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Added,
    Removed,
    Modified,
}

impl ChangeKind {
    /// `[+]`, `[-]`, `[~]`
    pub fn marker(self) -> &'static str {
        match self {
            ChangeKind::Added => "[+]",
            ChangeKind::Removed => "[-]",
            ChangeKind::Modified => "[~]",
        }
    }
}

/// Whether changing one property makes CloudFormation replace the resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Replacement {
    Never,
    /// The schema lists the property as conditionally create-only, or the change
    /// covers a create-only sub-property, or the type has no schema here.
    Conditional,
    Always,
}

/// What a deploy does to a resource. Ordered from harmless to harmful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Impact {
    Create,
    InPlace,
    MayReplace,
    Replace,
    Destroy,
}

impl Impact {
    pub fn label(self) -> &'static str {
        match self {
            Impact::Create => "create",
            Impact::InPlace => "in place",
            Impact::MayReplace => "may replace",
            Impact::Replace => "replace",
            Impact::Destroy => "destroy",
        }
    }

    pub fn from_replacement(r: Replacement) -> Self {
        match r {
            Replacement::Never => Impact::InPlace,
            Replacement::Conditional => Impact::MayReplace,
            Replacement::Always => Impact::Replace,
        }
    }
}

/// Which method decided a resource's impact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// The resource types' create-only properties (local, no AWS call).
    Template,
    /// The `Replacement` field of a CloudFormation change set.
    ChangeSet,
}

impl Method {
    pub fn label(self) -> &'static str {
        match self {
            Method::Template => "template",
            Method::ChangeSet => "change-set",
        }
    }
}

/// One changed value at a path inside an entry (`Properties.MemorySize`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PathChange {
    pub path: String,
    /// Absent on the deployed side (the path is added).
    pub old: Option<Value>,
    /// Absent on the new side (the path is removed).
    pub new: Option<Value>,
    pub replacement: Replacement,
    /// Set when the template text is the same but a parameter it references
    /// takes a new value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via_parameter: Option<String>,
}

/// A resource added, removed or modified.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResourceChange {
    pub logical_id: String,
    #[serde(rename = "type")]
    pub resource_type: String,
    pub change: ChangeKind,
    pub impact: Impact,
    /// Holds data (table, database, secret, bucket, log group): its replacement or
    /// removal loses that data.
    pub stateful: bool,
    pub properties: Vec<PathChange>,
    pub classified_by: Method,
    /// The change set's `Scope` (Properties, Tags, Metadata, ...), when one was read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scope: Vec<String>,
    /// E.g. "DeletionPolicy Retain: the resource is kept, only detached".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl ResourceChange {
    /// Replacing or removing a stateful resource: what a reviewer must not miss.
    pub fn is_dangerous(&self) -> bool {
        self.stateful
            && matches!(
                self.impact,
                Impact::Replace | Impact::MayReplace | Impact::Destroy
            )
    }
}

/// A parameter's value after deploy, as far as it can be known without deploying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NewValue {
    Known(String),
    /// An upstream stack that is not deployed yet, or a bundle that is not built.
    KnownAfterDeploy,
}

/// A parameter whose declaration or value differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParameterChange {
    pub name: String,
    pub change: ChangeKind,
    /// The deployed value.
    pub old_value: Option<String>,
    /// The value a deploy would pass (`None` when the parameter is removed).
    pub new_value: Option<String>,
    pub known_after_deploy: bool,
    /// Changes of the declaration itself (Type, Default, AllowedValues, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub declaration: Vec<PathChange>,
}

/// An entry of Conditions, Outputs or another top-level section.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntryChange {
    pub section: String,
    pub name: String,
    pub change: ChangeKind,
    /// For added and removed entries: the whole value; modified ones list paths.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<PathChange>,
}

/// A stack-level tag (CloudFormation copies them onto every resource) that
/// appears, goes or changes value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagChange {
    pub key: String,
    pub change: ChangeKind,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// One stack's comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StackDiff {
    /// The CloudFormation stack name (`barkbase-dev-realtime`).
    pub name: String,
    /// The short name (`realtime`).
    pub stack: String,
    pub status: StackStatus,
    pub method: Method,
    /// Things a reader should know about how this diff was made.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub parameters: Vec<ParameterChange>,
    pub conditions: Vec<EntryChange>,
    pub resources: Vec<ResourceChange>,
    pub outputs: Vec<EntryChange>,
    /// Description, Mappings, Metadata, Rules, Transform.
    pub other: Vec<EntryChange>,
    /// Stack tags (deploy updates a stack whose tags differ).
    pub tags: Vec<TagChange>,
    pub security: SecurityChanges,
}

/// Counts for the one-line summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub create: usize,
    pub in_place: usize,
    pub may_replace: usize,
    pub replace: usize,
    pub destroy: usize,
    /// Replacements and removals of stateful resources (included above too).
    pub stateful_at_risk: usize,
}

impl StackDiff {
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for r in &self.resources {
            match r.impact {
                Impact::Create => c.create += 1,
                Impact::InPlace => c.in_place += 1,
                Impact::MayReplace => c.may_replace += 1,
                Impact::Replace => c.replace += 1,
                Impact::Destroy => c.destroy += 1,
            }
            if r.is_dangerous() {
                c.stateful_at_risk += 1;
            }
        }
        c
    }

    /// Anything at all differs (resources, parameters, outputs, sections).
    pub fn has_changes(&self) -> bool {
        !(self.parameters.is_empty()
            && self.conditions.is_empty()
            && self.resources.is_empty()
            && self.outputs.is_empty()
            && self.other.is_empty()
            && self.tags.is_empty())
    }
}
