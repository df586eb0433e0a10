//! Applying migrations: one advisory lock per run, one transaction per migration.
//!
//! Concurrency contract (pinned by tests): a second run started while one is in
//! progress waits on the lock, then finds everything applied and applies nothing.

use std::collections::BTreeMap;
use std::time::Instant;

use db_core::deadpool_postgres::Object;
use db_core::{error_chain, Database, DbError};
use serde::Serialize;

use crate::Migration;

/// Fixed key of the session advisory lock ("barkmigr" in ASCII).
pub const LOCK_KEY: i64 = 0x6261_726b_6d69_6772;

const MIGRATION_LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '30s'";

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version     bigint PRIMARY KEY,
    name        text        NOT NULL,
    checksum    text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedMigration {
    pub version: i64,
    pub name: String,
    pub checksum: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationReport {
    pub applied: Vec<AppliedMigration>,
    pub already_applied: usize,
    pub duration_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error(transparent)]
    Db(#[from] DbError),

    #[error(
        "migration {version} (`{name}`) was changed after it was applied: recorded checksum {recorded}, embedded {embedded}\n\nhint: add a new migration instead of editing an applied one"
    )]
    ChecksumMismatch {
        version: i64,
        name: String,
        recorded: String,
        embedded: String,
    },

    #[error("migrations are not in ascending version order at version {0}")]
    Unordered(i64),

    #[error("migration {version} (`{name}`) failed, rolled back: {reason}")]
    Failed {
        version: i64,
        name: String,
        reason: String,
    },
}

impl From<db_core::tokio_postgres::Error> for MigrationError {
    fn from(e: db_core::tokio_postgres::Error) -> Self {
        MigrationError::Db(DbError::Query(e))
    }
}

/// Applies every migration of `migrations` not yet recorded, in version order.
pub async fn run(
    db: &Database,
    migrations: &[Migration],
) -> Result<MigrationReport, MigrationError> {
    let started = Instant::now();
    if let Some(w) = migrations.windows(2).find(|w| w[0].version >= w[1].version) {
        return Err(MigrationError::Unordered(w[1].version));
    }
    let mut client = db.client().await?;
    // Session lock: held across the per-migration transactions, waited for by a
    // concurrent run.
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await?;
    let result = apply_locked(&mut client, migrations).await;
    match client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await
    {
        Ok(_) => {}
        Err(e) => {
            // Closing the session is the other way to release the lock: take the
            // connection out of the pool so it is dropped, not reused.
            tracing::warn!(error = %error_chain(&e), "advisory unlock failed; closing the connection");
            drop(Object::take(client));
        }
    }
    let (applied, already_applied) = result?;
    Ok(MigrationReport {
        applied,
        already_applied,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

async fn apply_locked(
    client: &mut Object,
    migrations: &[Migration],
) -> Result<(Vec<AppliedMigration>, usize), MigrationError> {
    client.batch_execute(CREATE_TABLE).await?;
    let recorded: BTreeMap<i64, String> = client
        .query("SELECT version, checksum FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|row| (row.get::<_, i64>(0), row.get::<_, String>(1)))
        .collect();

    // Verify everything before changing anything.
    for m in migrations {
        if let Some(recorded) = recorded.get(&m.version) {
            let embedded = m.checksum();
            if *recorded != embedded {
                return Err(MigrationError::ChecksumMismatch {
                    version: m.version,
                    name: m.name.to_owned(),
                    recorded: recorded.clone(),
                    embedded,
                });
            }
        }
    }
    for version in recorded.keys() {
        if !migrations.iter().any(|m| m.version == *version) {
            // A newer binary ran before this one (e.g. a rolled-back deploy).
            tracing::warn!(
                version,
                "database has a migration this binary does not know"
            );
        }
    }

    let mut applied = Vec::new();
    let mut already = 0;
    for m in migrations {
        if recorded.contains_key(&m.version) {
            already += 1;
            continue;
        }
        let checksum = m.checksum();
        let tx = client.transaction().await?;
        let outcome = async {
            // DDL waiting for a busy table would queue every application query
            // behind it; give up instead (a migration may raise it with SET LOCAL).
            tx.batch_execute(MIGRATION_LOCK_TIMEOUT).await?;
            tx.batch_execute(m.sql).await?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                &[&m.version, &m.name, &checksum],
            )
            .await?;
            tx.commit().await
        }
        .await;
        // Dropping an uncommitted transaction rolls it back.
        outcome.map_err(|e| MigrationError::Failed {
            version: m.version,
            name: m.name.to_owned(),
            reason: error_chain(&e),
        })?;
        tracing::info!(version = m.version, name = m.name, "migration applied");
        applied.push(AppliedMigration {
            version: m.version,
            name: m.name.to_owned(),
            checksum,
        });
    }
    Ok((applied, already))
}
