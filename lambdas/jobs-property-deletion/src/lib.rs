//! jobs-property-deletion (daily 03:00 UTC): hard-deletes properties archived
//! longer than `RETENTION_DAYS`, with their kennels and bookings (ON DELETE CASCADE).
//!
//! Only `archived_at < now() - retention` qualifies, so a property that is not
//! archived, or archived recently, is never touched. Each batch is one transaction
//! with a statement timeout, so a batch cannot hold its locks for long.
//! `{"dryRun": true}` counts what would go and deletes nothing.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use db_core::job_event::{check_range, millis, parse_overrides, JobError};
use db_core::{env_number, Database, DbError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletionConfig {
    pub retention_days: u32,
    pub batch_size: u32,
    pub dry_run: bool,
}

pub const DAYS_RANGE: std::ops::RangeInclusive<u64> = 1..=36_500;
pub const BATCH_RANGE: std::ops::RangeInclusive<u64> = 1..=50_000;

/// Upper bound for one batch's statement; a batch that needs longer is rolled back
/// and the run fails loudly rather than blocking the application.
const BATCH_STATEMENT_TIMEOUT: &str = "SET LOCAL statement_timeout = '60s'";

impl DeletionConfig {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, DbError> {
        Ok(DeletionConfig {
            retention_days: to_u32(env_number("RETENTION_DAYS", &lookup, 90, DAYS_RANGE)?),
            batch_size: to_u32(env_number("BATCH_SIZE", &lookup, 500, BATCH_RANGE)?),
            dry_run: false,
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

/// `{"retentionDays": 30, "batchSize": 100, "dryRun": true}` on a manual invocation.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DeletionOverrides {
    retention_days: Option<u64>,
    batch_size: Option<u64>,
    dry_run: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletionReport {
    pub dry_run: bool,
    /// Properties deleted (0 on a dry run).
    pub deleted: u64,
    pub batches: u64,
    pub duration_ms: u64,
    pub longest_batch_ms: u64,
    pub retention_days: u32,
    pub cutoff: DateTime<Utc>,
    /// Dry run only: what a real run would delete now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub would_delete: Option<WouldDelete>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WouldDelete {
    pub properties: u64,
    pub kennels: u64,
    pub bookings: u64,
}

pub async fn handler(
    db: &Database,
    defaults: DeletionConfig,
    event: Value,
) -> Result<Value, JobError> {
    let overrides: DeletionOverrides = parse_overrides(event)?;
    let config = DeletionConfig {
        retention_days: check_range("retentionDays", overrides.retention_days, DAYS_RANGE)?
            .map_or(defaults.retention_days, to_u32),
        batch_size: check_range("batchSize", overrides.batch_size, BATCH_RANGE)?
            .map_or(defaults.batch_size, to_u32),
        dry_run: overrides.dry_run.unwrap_or(defaults.dry_run),
    };
    let report = delete(db, config).await?;
    tracing::info!(
        deleted = report.deleted,
        batches = report.batches,
        dry_run = report.dry_run,
        "deletion done"
    );
    Ok(serde_json::to_value(&report).unwrap_or_default())
}

const DELETE_BATCH: &str = "
WITH batch AS (
    SELECT id FROM properties
    WHERE archived_at < $1
      AND id > $3
    ORDER BY id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
DELETE FROM properties p
USING batch
WHERE p.id = batch.id
RETURNING p.id";

const COUNT_QUALIFYING: &str = "
WITH doomed AS (SELECT id FROM properties WHERE archived_at < $1)
SELECT
    (SELECT count(*) FROM doomed),
    (SELECT count(*) FROM kennels WHERE property_id IN (SELECT id FROM doomed)),
    (SELECT count(*) FROM bookings WHERE property_id IN (SELECT id FROM doomed))";

pub async fn delete(db: &Database, config: DeletionConfig) -> Result<DeletionReport, JobError> {
    let started = Instant::now();
    let mut client = db.client().await?;
    let cutoff: DateTime<Utc> = client
        .query_one(
            "SELECT now() - make_interval(days => $1)",
            &[&i32::try_from(config.retention_days).unwrap_or(i32::MAX)],
        )
        .await?
        .get(0);
    let mut report = DeletionReport {
        dry_run: config.dry_run,
        deleted: 0,
        batches: 0,
        duration_ms: 0,
        longest_batch_ms: 0,
        retention_days: config.retention_days,
        cutoff,
        would_delete: None,
    };
    if config.dry_run {
        let row = client.query_one(COUNT_QUALIFYING, &[&cutoff]).await?;
        let count = |i: usize| u64::try_from(row.get::<_, i64>(i)).unwrap_or(0);
        report.would_delete = Some(WouldDelete {
            properties: count(0),
            kennels: count(1),
            bookings: count(2),
        });
        report.duration_ms = millis(started.elapsed());
        return Ok(report);
    }

    let statement = client.prepare_cached(DELETE_BATCH).await?;
    let limit = i64::from(config.batch_size);
    let mut after_id = 0i64;
    let mut longest = Duration::ZERO;
    loop {
        let batch_started = Instant::now();
        let tx = client.transaction().await?;
        tx.batch_execute(BATCH_STATEMENT_TIMEOUT).await?;
        let rows = tx.query(&statement, &[&cutoff, &limit, &after_id]).await?;
        tx.commit().await?;
        longest = longest.max(batch_started.elapsed());
        if rows.is_empty() {
            break;
        }
        report.batches += 1;
        report.deleted += rows.len() as u64;
        after_id = rows
            .iter()
            .map(|r| r.get::<_, i64>(0))
            .max()
            .unwrap_or(after_id);
        if (rows.len() as i64) < limit {
            break;
        }
    }
    report.longest_batch_ms = millis(longest);
    report.duration_ms = millis(started.elapsed());
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults() {
        let c = DeletionConfig::from_lookup(|_| None).expect("defaults");
        assert_eq!(
            c,
            DeletionConfig {
                retention_days: 90,
                batch_size: 500,
                dry_run: false
            }
        );
        let err = DeletionConfig::from_lookup(|k| (k == "RETENTION_DAYS").then(|| "ninety".into()))
            .expect_err("not a number");
        assert_eq!(
            err.to_string(),
            "invalid `RETENTION_DAYS`: `ninety` is not a whole number"
        );
    }
}
