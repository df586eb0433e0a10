//! jobs-migration: applies the project's SQL migrations, embedded in the binary,
//! in version order, each in its own transaction, under an advisory lock.

mod catalog;
mod runner;

pub use catalog::{Migration, MIGRATIONS};
pub use runner::{run, AppliedMigration, MigrationError, MigrationReport, LOCK_KEY};

use db_core::job_event::{parse_overrides, JobEventError};
use db_core::Database;
use serde::Deserialize;
use serde_json::Value;

/// A manual invocation takes no options yet; unknown keys are refused so that a
/// caller expecting an option learns it does not exist.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MigrationEvent {}

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error(transparent)]
    Event(#[from] JobEventError),
    #[error(transparent)]
    Migration(#[from] MigrationError),
}

/// The Lambda handler: `{applied: [...], alreadyApplied: n, durationMs}`.
pub async fn handler(db: &Database, event: Value) -> Result<Value, HandlerError> {
    let MigrationEvent {} = parse_overrides(event)?;
    let report = run(db, MIGRATIONS).await?;
    Ok(serde_json::to_value(&report).unwrap_or_default())
}
