use std::collections::BTreeSet;

use jobs_property_archival::{handler, ArchivalConfig};
use jobs_tests::database_at;
use jobs_tests::postgres::PgServer;
use serde_json::json;

use super::{migrated, property, scheduled_event, tenant};

const DEFAULTS: ArchivalConfig = ArchivalConfig {
    archive_after_days: 180,
    batch_size: 500,
};

/// (id, archived_at as text) of every property, to compare before and after.
async fn archive_state(c: &tokio_postgres::Client) -> Vec<(i64, Option<String>)> {
    c.query(
        "SELECT id, archived_at::text FROM properties ORDER BY id",
        &[],
    )
    .await
    .expect("read properties")
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

async fn archived_just_now(c: &tokio_postgres::Client) -> BTreeSet<i64> {
    c.query(
        "SELECT id FROM properties WHERE archived_at > now() - interval '5 minutes'",
        &[],
    )
    .await
    .expect("read archived")
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[tokio::test]
async fn archives_exactly_the_qualifying_rows_and_a_rerun_archives_nothing() {
    let pg = PgServer::start();
    let (db, database) = migrated(&pg).await;
    let c = db.connect().await;
    let t = tenant(&c, "acme").await;
    let marked = property(&c, t, "marked, active yesterday", true, 1, None).await;
    let stale = property(&c, t, "inactive 200 days", false, 200, None).await;
    let _fresh = property(&c, t, "active yesterday", false, 1, None).await;
    let _almost = property(&c, t, "inactive 179 days", false, 179, None).await;
    let _old_archive = property(&c, t, "archived 30 days ago", false, 400, Some(30)).await;
    let _marked_archived = property(&c, t, "marked, archived 5 days ago", true, 10, Some(5)).await;
    let before = archive_state(&c).await;

    let report = handler(&database, DEFAULTS, scheduled_event())
        .await
        .expect("archival");
    assert_eq!(
        (report["archived"].as_u64(), report["batches"].as_u64()),
        (Some(2), Some(1)),
        "{report}"
    );
    assert!(report["durationMs"].is_u64());
    assert_eq!(archived_just_now(&c).await, BTreeSet::from([marked, stale]));
    // Rows that did not qualify, or were archived before, are untouched.
    let after = archive_state(&c).await;
    for (old, new) in before.iter().zip(&after) {
        if old.0 != marked && old.0 != stale {
            assert_eq!(old, new, "property {} changed", old.0);
        }
    }

    let rerun = handler(&database, DEFAULTS, scheduled_event())
        .await
        .expect("rerun");
    assert_eq!(
        (rerun["archived"].as_u64(), rerun["batches"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(archive_state(&c).await, after, "idempotent");
}

#[tokio::test]
async fn manual_overrides_set_the_threshold_and_the_batch_size() {
    let pg = PgServer::start();
    let (db, database) = migrated(&pg).await;
    let c = db.connect().await;
    let t = tenant(&c, "acme").await;
    let mut qualifying = BTreeSet::new();
    for i in 0..7 {
        qualifying
            .insert(property(&c, t, &format!("inactive 40 days #{i}"), false, 40, None).await);
    }
    let _recent = property(&c, t, "inactive 20 days", false, 20, None).await;

    let report = handler(
        &database,
        DEFAULTS,
        json!({"archiveAfterDays": 30, "batchSize": 3}),
    )
    .await
    .expect("archival");
    assert_eq!(
        (report["archived"].as_u64(), report["batches"].as_u64()),
        (Some(7), Some(3)),
        "{report}"
    );
    assert_eq!(report["archiveAfterDays"], 30);
    assert_eq!(archived_just_now(&c).await, qualifying);
}

#[tokio::test]
async fn rows_locked_by_another_transaction_are_skipped_until_the_next_run() {
    let pg = PgServer::start();
    let (db, database) = migrated(&pg).await;
    let mut c = db.connect().await;
    let t = tenant(&c, "acme").await;
    let a = property(&c, t, "a", true, 1, None).await;
    let b = property(&c, t, "b", true, 1, None).await;

    let tx = c.transaction().await.expect("begin");
    tx.execute("SELECT 1 FROM properties WHERE id = $1 FOR UPDATE", &[&b])
        .await
        .expect("lock b");
    let first = handler(&database, DEFAULTS, json!({}))
        .await
        .expect("first run");
    assert_eq!(first["archived"], 1, "b is locked, not waited for");
    tx.commit().await.expect("commit");
    let second = handler(&database, DEFAULTS, json!({}))
        .await
        .expect("second run");
    assert_eq!(second["archived"], 1);
    assert_eq!(archived_just_now(&c).await, BTreeSet::from([a, b]));
}

#[tokio::test]
async fn bad_overrides_are_clear_errors_before_any_database_work() {
    let database = database_at("postgresql://nobody:x@127.0.0.1:1/none");
    let cases = [
        (
            json!({"archiveAfterDays": 0}),
            "invalid override `archiveAfterDays`: 0 is outside 1..=36500",
        ),
        (
            json!({"batchSize": 100000}),
            "invalid override `batchSize`: 100000 is outside 1..=50000",
        ),
        (
            json!({"archiveAfterDays": "30"}),
            "invalid job event: invalid type: string \"30\", expected u64",
        ),
        (
            json!({"archiveAfterDay": 30}),
            "invalid job event: unknown field `archiveAfterDay`",
        ),
        (
            json!([1]),
            "invalid job event: expected a JSON object, got an array",
        ),
    ];
    for (event, expected) in cases {
        let err = handler(&database, DEFAULTS, event.clone())
            .await
            .expect_err("bad event");
        assert!(err.to_string().starts_with(expected), "{event}: {err}");
    }
}
