//! jobs-property-archival (daily 02:00 UTC): sets `archived_at` on properties that
//! are marked for archival or have had no activity for `ARCHIVE_AFTER_DAYS`.
//!
//! Batches of `BATCH_SIZE` rows, each one short statement (its own transaction),
//! walking the primary key upwards so a run reads the table once and never holds
//! row locks for long. Rows locked by someone else are skipped (SKIP LOCKED) and
//! picked up by the next run. Archived rows no longer qualify: a rerun archives
//! nothing new.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use db_core::job_event::{check_range, millis, parse_overrides, JobError};
use db_core::{env_number, Database, DbError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Defaults from the environment, validated once per container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchivalConfig {
    pub archive_after_days: u32,
    pub batch_size: u32,
}

pub const DAYS_RANGE: std::ops::RangeInclusive<u64> = 1..=36_500;
pub const BATCH_RANGE: std::ops::RangeInclusive<u64> = 1..=50_000;

impl ArchivalConfig {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, DbError> {
        Ok(ArchivalConfig {
            archive_after_days: to_u32(env_number("ARCHIVE_AFTER_DAYS", &lookup, 180, DAYS_RANGE)?),
            batch_size: to_u32(env_number("BATCH_SIZE", &lookup, 500, BATCH_RANGE)?),
        })
    }

    pub fn from_env() -> Result<Self, DbError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }
}

// The ranges above keep every value far below u32::MAX.
fn to_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// `{"archiveAfterDays": 30, "batchSize": 100}` on a manual invocation.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ArchivalOverrides {
    archive_after_days: Option<u64>,
    batch_size: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchivalReport {
    pub archived: u64,
    pub batches: u64,
    pub duration_ms: u64,
    /// The slowest batch: how long one statement held its row locks.
    pub longest_batch_ms: u64,
    pub archive_after_days: u32,
    pub cutoff: DateTime<Utc>,
}

/// The Lambda handler: defaults from the environment, overrides from the event.
pub async fn handler(
    db: &Database,
    defaults: ArchivalConfig,
    event: Value,
) -> Result<Value, JobError> {
    let overrides: ArchivalOverrides = parse_overrides(event)?;
    let config = ArchivalConfig {
        archive_after_days: check_range(
            "archiveAfterDays",
            overrides.archive_after_days,
            DAYS_RANGE,
        )?
        .map_or(defaults.archive_after_days, to_u32),
        batch_size: check_range("batchSize", overrides.batch_size, BATCH_RANGE)?
            .map_or(defaults.batch_size, to_u32),
    };
    let report = archive(db, config).await?;
    tracing::info!(
        archived = report.archived,
        batches = report.batches,
        "archival done"
    );
    Ok(serde_json::to_value(&report).unwrap_or_default())
}

const ARCHIVE_BATCH: &str = "
WITH batch AS (
    SELECT id FROM properties
    WHERE archived_at IS NULL
      AND id > $3
      AND (marked_for_archival OR last_activity_at < $1)
    ORDER BY id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE properties p
SET archived_at = now(), updated_at = now()
FROM batch
WHERE p.id = batch.id
RETURNING p.id";

/// Archives every qualifying property, batch by batch.
pub async fn archive(db: &Database, config: ArchivalConfig) -> Result<ArchivalReport, JobError> {
    let started = Instant::now();
    let client = db.client().await?;
    // One cutoff for the whole run, from the database clock, so batches agree.
    let cutoff: DateTime<Utc> = client
        .query_one(
            "SELECT now() - make_interval(days => $1)",
            &[&i32::try_from(config.archive_after_days).unwrap_or(i32::MAX)],
        )
        .await?
        .get(0);
    let statement = client.prepare_cached(ARCHIVE_BATCH).await?;
    let limit = i64::from(config.batch_size);
    let (mut archived, mut batches, mut after_id) = (0u64, 0u64, 0i64);
    let mut longest = Duration::ZERO;
    loop {
        let batch_started = Instant::now();
        let rows = client
            .query(&statement, &[&cutoff, &limit, &after_id])
            .await?;
        longest = longest.max(batch_started.elapsed());
        if rows.is_empty() {
            break;
        }
        batches += 1;
        archived += rows.len() as u64;
        after_id = rows
            .iter()
            .map(|r| r.get::<_, i64>(0))
            .max()
            .unwrap_or(after_id);
        // Fewer rows than the limit: nothing unlocked qualifies above `after_id`.
        if (rows.len() as i64) < limit {
            break;
        }
    }
    Ok(ArchivalReport {
        archived,
        batches,
        duration_ms: millis(started.elapsed()),
        longest_batch_ms: millis(longest),
        archive_after_days: config.archive_after_days,
        cutoff,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn config_defaults_and_env() {
        let none = ArchivalConfig::from_lookup(|_| None).expect("defaults");
        assert_eq!(
            none,
            ArchivalConfig {
                archive_after_days: 180,
                batch_size: 500
            }
        );
        let vars: HashMap<&str, &str> = [("ARCHIVE_AFTER_DAYS", "30"), ("BATCH_SIZE", "0")].into();
        let err = ArchivalConfig::from_lookup(|k| vars.get(k).map(|v| v.to_string()))
            .expect_err("zero batch");
        assert_eq!(
            err.to_string(),
            "invalid `BATCH_SIZE`: 0 is outside 1..=50000"
        );
    }
}
