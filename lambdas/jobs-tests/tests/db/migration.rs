use std::sync::Arc;
use std::time::{Duration, Instant};

use jobs_migration::{run, Migration, MigrationError, LOCK_KEY, MIGRATIONS};
use jobs_tests::database_at;
use jobs_tests::postgres::PgServer;
use serde_json::json;

async fn recorded(c: &tokio_postgres::Client) -> Vec<(i64, String, String)> {
    c.query(
        "SELECT version, name, checksum FROM schema_migrations ORDER BY applied_at, version",
        &[],
    )
    .await
    .expect("read schema_migrations")
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

async fn table_exists(c: &tokio_postgres::Client, name: &str) -> bool {
    c.query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
        .await
        .expect("to_regclass")
        .get(0)
}

#[tokio::test]
async fn migrations_apply_in_order_and_a_second_run_applies_nothing() {
    let pg = PgServer::start();
    let db = pg.create_database().await;
    let database = database_at(&db.url());

    let first = jobs_migration::handler(&database, json!({}))
        .await
        .expect("first run");
    assert_eq!(
        first["applied"]
            .as_array()
            .expect("applied")
            .iter()
            .map(|m| m["version"].as_i64())
            .collect::<Vec<_>>(),
        MIGRATIONS
            .iter()
            .map(|m| Some(m.version))
            .collect::<Vec<_>>()
    );
    assert_eq!(first["alreadyApplied"], 0);

    let c = db.connect().await;
    let rows = recorded(&c).await;
    let expected: Vec<(i64, String, String)> = MIGRATIONS
        .iter()
        .map(|m| (m.version, m.name.to_owned(), m.checksum()))
        .collect();
    assert_eq!(
        rows, expected,
        "recorded in version order with sha256 checksums"
    );
    for table in ["tenants", "properties", "kennels", "bookings", "users"] {
        assert!(table_exists(&c, table).await, "{table} exists");
    }

    let second = jobs_migration::handler(&database, super::scheduled_event())
        .await
        .expect("second run");
    assert_eq!(second["applied"], json!([]));
    assert_eq!(second["alreadyApplied"], MIGRATIONS.len());
    assert_eq!(recorded(&c).await.len(), MIGRATIONS.len());
}

#[tokio::test]
async fn a_tampered_checksum_is_refused_before_anything_is_applied() {
    let pg = PgServer::start();
    let db = pg.create_database().await;
    let database = database_at(&db.url());
    run(&database, MIGRATIONS).await.expect("first run");

    // The embedded SQL of an applied migration changed, and a new one is pending:
    // the run refuses and applies nothing.
    let mut edited: Vec<Migration> = MIGRATIONS.to_vec();
    edited[1].sql = "CREATE TABLE properties (id bigint);";
    edited.push(Migration {
        version: 99,
        name: "create_t4",
        sql: "CREATE TABLE t4 (id int);",
    });
    let err = run(&database, &edited).await.expect_err("edited migration");
    match &err {
        MigrationError::ChecksumMismatch {
            version,
            recorded,
            embedded,
            ..
        } => {
            assert_eq!(*version, 2);
            assert_eq!(recorded, &MIGRATIONS[1].checksum());
            assert_eq!(embedded, &edited[1].checksum());
        }
        other => panic!("expected a checksum mismatch, got {other}"),
    }
    assert!(err
        .to_string()
        .starts_with("migration 2 (`create_properties`) was changed after it was applied"));
    let c = db.connect().await;
    assert!(!table_exists(&c, "t4").await);

    // The recorded checksum changed (someone edited the table by hand).
    c.execute(
        "UPDATE schema_migrations SET checksum = 'deadbeef' WHERE version = 3",
        &[],
    )
    .await
    .expect("tamper");
    let err = jobs_migration::handler(&database, json!({}))
        .await
        .expect_err("tampered record");
    assert!(
        err.to_string().contains("recorded checksum deadbeef"),
        "{err}"
    );
}

#[tokio::test]
async fn two_concurrent_runs_wait_on_the_lock_and_exactly_one_applies() {
    let pg = PgServer::start();
    let db = pg.create_database().await;
    let holder = db.connect().await;
    holder
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await
        .expect("hold lock");

    let a = Arc::new(database_at(&db.url()));
    let b = Arc::new(database_at(&db.url()));
    let run_a = tokio::spawn(async move { run(&a, MIGRATIONS).await });
    let run_b = tokio::spawn(async move { run(&b, MIGRATIONS).await });

    // Both runs are blocked on the advisory lock, and neither has touched the schema.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = holder
            .query_one(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
                &[],
            )
            .await
            .expect("pg_locks")
            .get(0);
        if waiting == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "both runs should wait on the lock (waiting: {waiting})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!table_exists(&holder, "schema_migrations").await);
    holder
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await
        .expect("release");

    let a = run_a.await.expect("join").expect("run a");
    let b = run_b.await.expect("join").expect("run b");
    let mut applied = [a.applied.len(), b.applied.len()];
    applied.sort();
    assert_eq!(
        applied,
        [0, MIGRATIONS.len()],
        "exactly one run applies: {a:?} {b:?}"
    );
    let mut already = [a.already_applied, b.already_applied];
    already.sort();
    assert_eq!(already, [0, MIGRATIONS.len()]);
    assert_eq!(recorded(&holder).await.len(), MIGRATIONS.len());
}

#[tokio::test]
async fn a_failing_migration_rolls_back_and_keeps_the_earlier_ones() {
    let pg = PgServer::start();
    let db = pg.create_database().await;
    let database = database_at(&db.url());
    let mut list: Vec<Migration> = MIGRATIONS.to_vec();
    list.push(Migration {
        version: 99,
        name: "broken",
        sql: "CREATE TABLE t4 (id int); SELECT 1/0;",
    });

    let err = run(&database, &list).await.expect_err("division by zero");
    assert!(
        err.to_string()
            .starts_with("migration 99 (`broken`) failed, rolled back:")
            && err.to_string().contains("division by zero"),
        "{err}"
    );
    let c = db.connect().await;
    assert!(
        !table_exists(&c, "t4").await,
        "the failed migration's DDL is rolled back"
    );
    assert_eq!(
        recorded(&c).await.len(),
        MIGRATIONS.len(),
        "the earlier ones stay applied"
    );
    // The lock was released: a correct list runs at once.
    let again = run(&database, MIGRATIONS).await.expect("rerun");
    assert_eq!(
        (again.applied.len(), again.already_applied),
        (0, MIGRATIONS.len())
    );
}

#[tokio::test]
async fn unknown_event_keys_are_refused() {
    // Never connects: the event is checked first.
    let database = database_at("postgresql://nobody:x@127.0.0.1:1/none");
    let err = jobs_migration::handler(&database, json!({"force": true}))
        .await
        .expect_err("unknown key");
    assert!(err.to_string().contains("unknown field `force`"), "{err}");
}
