use std::collections::BTreeSet;

use jobs_property_deletion::{handler, DeletionConfig};
use jobs_tests::database_at;
use jobs_tests::postgres::PgServer;
use serde_json::json;

use super::{migrated, property, scheduled_event, tenant};

const DEFAULTS: DeletionConfig = DeletionConfig {
    retention_days: 90,
    batch_size: 500,
    dry_run: false,
};

async fn children(
    c: &tokio_postgres::Client,
    property: i64,
    kennels: i64,
    bookings_per_kennel: i64,
) {
    for k in 0..kennels {
        let kennel: i64 = c
            .query_one(
                "INSERT INTO kennels (property_id, name) VALUES ($1, $2) RETURNING id",
                &[&property, &format!("kennel {k}")],
            )
            .await
            .expect("insert kennel")
            .get(0);
        for b in 0..bookings_per_kennel {
            c.execute(
                "INSERT INTO bookings (property_id, kennel_id, pet_name, starts_at, ends_at)
                 VALUES ($1, $2, $3, now(), now() + interval '1 day')",
                &[&property, &kennel, &format!("pet {b}")],
            )
            .await
            .expect("insert booking");
        }
    }
}

async fn ids(c: &tokio_postgres::Client, sql: &str) -> BTreeSet<i64> {
    c.query(sql, &[])
        .await
        .expect("query ids")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn count(c: &tokio_postgres::Client, table: &str, property: i64) -> i64 {
    c.query_one(
        &format!("SELECT count(*) FROM {table} WHERE property_id = $1"),
        &[&property],
    )
    .await
    .expect("count")
    .get(0)
}

struct Seeded {
    expired: [i64; 2],
    kept: [i64; 3],
}

/// Two properties past retention (one with 2 kennels x 2 bookings, plus one
/// booking without a kennel), three that must survive (each with children).
async fn seed(c: &tokio_postgres::Client) -> Seeded {
    let t = tenant(c, "acme").await;
    let expired_with_children =
        property(c, t, "archived 100 days ago", false, 400, Some(100)).await;
    children(c, expired_with_children, 2, 2).await;
    c.execute(
        "INSERT INTO bookings (property_id, pet_name, starts_at, ends_at) VALUES ($1, 'walk-in', now(), now() + interval '1 hour')",
        &[&expired_with_children],
    )
    .await
    .expect("booking without kennel");
    let expired = property(c, t, "archived 91 days ago", true, 400, Some(91)).await;
    let inside_retention = property(c, t, "archived 89 days ago", false, 400, Some(89)).await;
    let not_archived_old =
        property(c, t, "never archived, inactive 1000 days", true, 1000, None).await;
    let live = property(c, t, "live", false, 1, None).await;
    for p in [inside_retention, not_archived_old, live] {
        children(c, p, 1, 1).await;
    }
    Seeded {
        expired: [expired_with_children, expired],
        kept: [inside_retention, not_archived_old, live],
    }
}

#[tokio::test]
async fn deletes_only_archived_rows_past_retention_with_their_children() {
    let pg = PgServer::start();
    let (db, database) = migrated(&pg).await;
    let c = db.connect().await;
    let s = seed(&c).await;

    let report = handler(&database, DEFAULTS, scheduled_event())
        .await
        .expect("deletion");
    assert_eq!(
        (report["deleted"].as_u64(), report["batches"].as_u64()),
        (Some(2), Some(1)),
        "{report}"
    );
    assert_eq!(report["dryRun"], false);
    assert_eq!(
        ids(&c, "SELECT id FROM properties").await,
        BTreeSet::from(s.kept)
    );
    for p in s.expired {
        assert_eq!(
            (
                count(&c, "kennels", p).await,
                count(&c, "bookings", p).await
            ),
            (0, 0),
            "children of {p} cascade"
        );
    }
    for p in s.kept {
        assert_eq!(
            (
                count(&c, "kennels", p).await,
                count(&c, "bookings", p).await
            ),
            (1, 1),
            "children of {p} kept"
        );
    }
    let rerun = handler(&database, DEFAULTS, json!({}))
        .await
        .expect("rerun");
    assert_eq!(rerun["deleted"], 0);
}

#[tokio::test]
async fn dry_run_reports_and_deletes_nothing_then_a_real_run_uses_batches() {
    let pg = PgServer::start();
    let (db, database) = migrated(&pg).await;
    let c = db.connect().await;
    let s = seed(&c).await;
    let all = ids(&c, "SELECT id FROM properties").await;
    let kennels = ids(&c, "SELECT id FROM kennels").await;
    let bookings = ids(&c, "SELECT id FROM bookings").await;

    let dry = handler(&database, DEFAULTS, json!({"dryRun": true}))
        .await
        .expect("dry run");
    assert_eq!(dry["dryRun"], true);
    assert_eq!(dry["deleted"], 0);
    assert_eq!(
        dry["wouldDelete"],
        json!({"properties": 2, "kennels": 2, "bookings": 5})
    );
    assert_eq!(ids(&c, "SELECT id FROM properties").await, all);
    assert_eq!(ids(&c, "SELECT id FROM kennels").await, kennels);
    assert_eq!(ids(&c, "SELECT id FROM bookings").await, bookings);

    let real = handler(&database, DEFAULTS, json!({"batchSize": 1}))
        .await
        .expect("real run");
    assert_eq!(
        (real["deleted"].as_u64(), real["batches"].as_u64()),
        (Some(2), Some(2)),
        "{real}"
    );
    assert!(real.get("wouldDelete").is_none());
    assert_eq!(
        ids(&c, "SELECT id FROM properties").await,
        BTreeSet::from(s.kept)
    );

    // A shorter retention on a manual run reaches the 89-day-old archive too.
    let shorter = handler(&database, DEFAULTS, json!({"retentionDays": 30}))
        .await
        .expect("30 days");
    assert_eq!(shorter["deleted"], 1);
    assert_eq!(
        ids(&c, "SELECT id FROM properties").await,
        BTreeSet::from([s.kept[1], s.kept[2]])
    );
}

#[tokio::test]
async fn bad_overrides_are_clear_errors() {
    let database = database_at("postgresql://nobody:x@127.0.0.1:1/none");
    let cases = [
        (
            json!({"retentionDays": -5}),
            "invalid job event: invalid value: integer `-5`, expected u64",
        ),
        (
            json!({"dryRun": "yes"}),
            "invalid job event: invalid type: string \"yes\", expected a boolean",
        ),
        (
            json!({"retentionDays": 0}),
            "invalid override `retentionDays`: 0 is outside 1..=36500",
        ),
    ];
    for (event, expected) in cases {
        let err = handler(&database, DEFAULTS, event.clone())
            .await
            .expect_err("bad event");
        assert!(err.to_string().starts_with(expected), "{event}: {err}");
    }
}
