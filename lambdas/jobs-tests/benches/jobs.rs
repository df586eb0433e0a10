//! Benchmark (not a test): seeds N properties (default 1,000,000; `BENCH_PROPERTIES`)
//! with one kennel and one booking each, 10% qualifying for archival and another
//! 10% archived past retention, then times the archival and deletion jobs at the
//! default batch size (500) and prints rows per second and the longest batch.
//!
//! Run: `cargo bench -p jobs-tests --bench jobs`. Uses a throwaway cluster with
//! default durability (fsync on), or `DATABASE_URL`.

use std::time::Instant;

use jobs_property_archival::{archive, ArchivalConfig};
use jobs_property_deletion::{delete, DeletionConfig};
use jobs_tests::database_at;
use jobs_tests::postgres::{PgOptions, PgServer};

const SEED: &str = "
INSERT INTO tenants (id, name, slug)
SELECT g, 'tenant ' || g, 'tenant-' || g FROM generate_series(1, 1000) g;

-- g % 20 = 1: marked for archival (5%); g % 20 = 2: inactive 200 days (5%);
-- g % 10 = 5: archived 120 days ago, past the 90-day retention (10%);
-- everyone else active within the last 90 days.
INSERT INTO properties (id, tenant_id, name, marked_for_archival, last_activity_at, archived_at)
SELECT g,
       g % 1000 + 1,
       'property ' || g,
       g % 20 = 1,
       CASE WHEN g % 20 = 2 OR g % 10 = 5 THEN now() - interval '200 days'
            ELSE now() - (g % 90) * interval '1 day' END,
       CASE WHEN g % 10 = 5 THEN now() - interval '120 days' END
FROM generate_series(1, $N) g;

INSERT INTO kennels (id, property_id, name)
SELECT g, g, 'kennel ' || g FROM generate_series(1, $N) g;

INSERT INTO bookings (property_id, kennel_id, pet_name, starts_at, ends_at)
SELECT g, g, 'pet ' || g, now(), now() + interval '2 days' FROM generate_series(1, $N) g;

ANALYZE;
";

#[tokio::main]
async fn main() {
    let n: u64 = std::env::var("BENCH_PROPERTIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let pg = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => PgServer::start(),
        _ => PgServer::cluster(PgOptions {
            durable: true,
            tls: false,
        }),
    };
    let db = pg.create_database().await;
    let database = database_at(&db.url());
    jobs_migration::run(&database, jobs_migration::MIGRATIONS)
        .await
        .expect("migrate");

    let client = db.connect().await;
    let started = Instant::now();
    client
        .batch_execute(&SEED.replace("$N", &n.to_string()))
        .await
        .expect("seed");
    println!(
        "seeded {n} properties (+{n} kennels, +{n} bookings) in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let archival = archive(
        &database,
        ArchivalConfig {
            archive_after_days: 180,
            batch_size: 500,
        },
    )
    .await
    .expect("archival");
    report(
        "archival",
        archival.archived,
        archival.batches,
        archival.duration_ms,
        archival.longest_batch_ms,
    );
    assert_eq!(archival.archived, n / 10, "10% qualify for archival");

    let rerun = archive(
        &database,
        ArchivalConfig {
            archive_after_days: 180,
            batch_size: 500,
        },
    )
    .await
    .expect("archival rerun");
    println!(
        "archival rerun: {} archived in {} ms (idempotent)",
        rerun.archived, rerun.duration_ms
    );

    let dry = delete(
        &database,
        DeletionConfig {
            retention_days: 90,
            batch_size: 500,
            dry_run: true,
        },
    )
    .await
    .expect("dry run");
    println!(
        "deletion dry run: {:?} in {} ms",
        dry.would_delete, dry.duration_ms
    );

    let deletion = delete(
        &database,
        DeletionConfig {
            retention_days: 90,
            batch_size: 500,
            dry_run: false,
        },
    )
    .await
    .expect("deletion");
    report(
        "deletion",
        deletion.deleted,
        deletion.batches,
        deletion.duration_ms,
        deletion.longest_batch_ms,
    );
    assert_eq!(deletion.deleted, n / 10, "10% are archived past retention");

    let left: i64 = client
        .query_one("SELECT (SELECT count(*) FROM properties) + (SELECT count(*) FROM kennels) + (SELECT count(*) FROM bookings)", &[])
        .await
        .expect("count")
        .get(0);
    println!("rows left (properties + kennels + bookings): {left}");
}

fn report(job: &str, rows: u64, batches: u64, duration_ms: u64, longest_batch_ms: u64) {
    let per_second = rows as f64 / (duration_ms.max(1) as f64 / 1000.0);
    println!(
        "{job}: {rows} rows in {batches} batches, {duration_ms} ms, {per_second:.0} rows/s, longest batch {longest_batch_ms} ms"
    );
}
