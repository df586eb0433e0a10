//! What a deploy or destroy tells the person watching: events sent to a
//! [`Reporter`]. `report::progress` renders them as bars or lines.

use std::time::Duration;

/// How one stack ended in a run (the summary table's "action" column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Created,
    Updated,
    /// `deploy --hotswap`: functions updated through the Lambda API.
    Hotswapped,
    Unchanged,
    Failed,
    NotStarted,
    Deleted,
    /// Destroy: the stack did not exist.
    Absent,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Updated => "updated",
            Outcome::Hotswapped => "hotswapped",
            Outcome::Unchanged => "unchanged",
            Outcome::Failed => "failed",
            Outcome::NotStarted => "not started",
            Outcome::Deleted => "deleted",
            Outcome::Absent => "absent",
        }
    }
}

/// One stack's line in the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackResult {
    pub stack: String,
    pub stack_name: String,
    pub outcome: Outcome,
    pub duration: Duration,
    /// Extra words for the summary (`recreated after ROLLBACK_COMPLETE`, kept resources).
    pub note: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Event {
    /// A wave of independent stacks starts.
    Wave {
        index: usize,
        stacks: Vec<String>,
    },
    /// Work on a stack starts; `action` is the plan's label (create, update, ...).
    Started {
        stack: String,
        stack_name: String,
        action: String,
        resources: usize,
    },
    /// A note about a stack (deleting a stack left by a failed create, waiting...).
    Note {
        stack: String,
        text: String,
    },
    /// A resource or stack event from DescribeStackEvents.
    Resource {
        stack: String,
        timestamp: String,
        logical_id: String,
        resource_type: String,
        status: String,
        reason: Option<String>,
        /// Resources finished so far / total resources in the template.
        done: usize,
        total: usize,
    },
    /// A bundle or template was uploaded (or found already present).
    Asset {
        key: String,
        uploaded: bool,
        bytes: u64,
    },
    Finished(StackResult),
}

/// Receives events; implementations must be cheap and never fail the deploy.
pub trait Reporter: Send + Sync {
    fn event(&self, event: &Event);
}

/// A reporter that drops every event.
pub struct NoReport;

impl Reporter for NoReport {
    fn event(&self, _event: &Event) {}
}
