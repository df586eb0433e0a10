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
