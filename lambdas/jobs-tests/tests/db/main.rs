//! Database and jobs handlers against a real PostgreSQL (a throwaway cluster per
//! test, or `DATABASE_URL`), and Secrets Manager on a moto server.

mod archival;
mod deletion;
mod healthcheck;
mod migration;
mod secrets;
mod tls;

use db_core::Database;
use jobs_tests::database_at;
use jobs_tests::postgres::{PgServer, TestDb};
use serde_json::{json, Value};

/// A fresh database with every migration applied.
async fn migrated(pg: &PgServer) -> (TestDb, Database) {
    let db = pg.create_database().await;
    let database = database_at(&db.url());
    jobs_migration::run(&database, jobs_migration::MIGRATIONS)
        .await
        .expect("migrations apply");
    (db, database)
}

/// EventBridge's scheduled event, as the rule delivers it.
fn scheduled_event() -> Value {
    json!({
        "version": "0",
        "id": "89d1a02d-5ec7-412e-82f5-13505f849b41",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-11-21T02:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/barkbase-dev-property-archival-schedule"],
        "detail": {}
    })
}

async fn tenant(c: &tokio_postgres::Client, slug: &str) -> i64 {
    c.query_one(
        "INSERT INTO tenants (name, slug) VALUES ($1, $1) RETURNING id",
        &[&slug],
    )
    .await
    .expect("insert tenant")
    .get(0)
}

/// A property last active `inactive_days` ago, archived `archived_days_ago` ago if given.
async fn property(
    c: &tokio_postgres::Client,
    tenant: i64,
    name: &str,
    marked: bool,
    inactive_days: i32,
    archived_days_ago: Option<i32>,
) -> i64 {
    c.query_one(
        "INSERT INTO properties (tenant_id, name, marked_for_archival, last_activity_at, archived_at)
         VALUES ($1, $2, $3, now() - make_interval(days => $4),
                 now() - make_interval(days => $5::int))
         RETURNING id",
        &[&tenant, &name, &marked, &inactive_days, &archived_days_ago],
    )
    .await
    .expect("insert property")
    .get(0)
}
