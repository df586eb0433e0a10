use db_healthcheck::{handler, DEFAULT_TIMEOUT};
use jobs_property_archival::ArchivalConfig;
use jobs_tests::database_from;
use jobs_tests::moto::MotoServer;
use jobs_tests::postgres::PgServer;
use serde_json::json;

/// The production path: `DB_SECRET_ARN` -> GetSecretValue -> the secret's host,
/// port, dbname and password -> connect -> `SELECT now()`.
#[tokio::test]
async fn credentials_from_secrets_manager_reach_the_database_and_are_fetched_once() {
    let moto = MotoServer::start();
    let pg = PgServer::start();
    let (db, _) = super::migrated(&pg).await;
    let secrets = moto.secrets_client().await;
    let secret_value = json!({
        "username": db.user, "password": db.password, "engine": "postgres",
        "host": db.host, "port": db.port, "dbname": db.dbname,
    });
    let arn = secrets
        .create_secret()
        .name("barkbase/test/postgres/credentials")
        .secret_string(secret_value.to_string())
        .send()
        .await
        .expect("create secret")
        .arn
        .expect("arn");

    let database = database_from(
        &[("DB_SECRET_ARN", &arn), ("DB_SSLMODE", "disable")],
        Some(secrets.clone()),
    );
    let answer = handler(&database, DEFAULT_TIMEOUT).await;
    assert_eq!(answer["database"]["connected"], true, "{answer}");
    // A job on the same handle (a warm container) does not read the secret again.
    let defaults = ArchivalConfig {
        archive_after_days: 180,
        batch_size: 500,
    };
    jobs_property_archival::handler(&database, defaults, json!({}))
        .await
        .expect("archival");
    assert_eq!(handler(&database, DEFAULT_TIMEOUT).await["ok"], true);
    assert_eq!(database.secret_fetches(), 1);

    // Wrong password: the reason is the server's.
    let wrong = json!({"username": db.user, "password": "not-it", "host": db.host, "port": db.port, "dbname": db.dbname});
    secrets
        .create_secret()
        .name("barkbase/test/wrong")
        .secret_string(wrong.to_string())
        .send()
        .await
        .expect("create secret");
    let database = database_from(
        &[
            ("DB_SECRET_ARN", "barkbase/test/wrong"),
            ("DB_SSLMODE", "disable"),
        ],
        Some(secrets.clone()),
    );
    let answer = handler(&database, DEFAULT_TIMEOUT).await;
    let error = answer["database"]["error"].as_str().expect("error");
    assert!(error.contains("password authentication failed"), "{error}");

    // Missing secret: Secrets Manager's error code and message.
    let database = database_from(
        &[
            ("DB_SECRET_ARN", "barkbase/test/missing"),
            ("DB_SSLMODE", "disable"),
        ],
        Some(secrets),
    );
    let answer = handler(&database, DEFAULT_TIMEOUT).await;
    let error = answer["database"]["error"].as_str().expect("error");
    assert!(
        error.starts_with("reading secret `barkbase/test/missing`: ResourceNotFoundException"),
        "{error}"
    );
}

/// Password rotation: the server rejects the cached password, the handle reads
/// the secret again once and carries on.
#[tokio::test]
async fn a_rotated_password_is_picked_up_from_the_secret() {
    let moto = MotoServer::start();
    let pg = PgServer::start();
    let db = pg.create_database().await;
    let admin = db.connect().await;
    admin
        .batch_execute("CREATE ROLE rotating_app LOGIN PASSWORD 'first-password'")
        .await
        .expect("create role");
    let secrets = moto.secrets_client().await;
    let secret = |password: &str| {
        json!({"username": "rotating_app", "password": password, "host": db.host, "port": db.port, "dbname": db.dbname})
            .to_string()
    };
    secrets
        .create_secret()
        .name("barkbase/test/rotating")
        .secret_string(secret("first-password"))
        .send()
        .await
        .expect("create secret");
    let database = database_from(
        &[
            ("DB_SECRET_ARN", "barkbase/test/rotating"),
            ("DB_SSLMODE", "disable"),
        ],
        Some(secrets.clone()),
    );
    assert_eq!(handler(&database, DEFAULT_TIMEOUT).await["ok"], true);

    // Rotate: new password in the database and in the secret, old sessions gone.
    admin
        .batch_execute("ALTER ROLE rotating_app PASSWORD 'second-password'")
        .await
        .expect("alter role");
    secrets
        .put_secret_value()
        .secret_id("barkbase/test/rotating")
        .secret_string(secret("second-password"))
        .send()
        .await
        .expect("put secret value");
    admin
        .batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'rotating_app'",
        )
        .await
        .expect("terminate sessions");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let answer = handler(&database, DEFAULT_TIMEOUT).await;
    assert_eq!(answer["database"]["connected"], true, "{answer}");
    assert_eq!(database.secret_fetches(), 2);
}
