use db_healthcheck::{handler, DEFAULT_TIMEOUT};
use jobs_tests::database_from;
use jobs_tests::postgres::{make_ca, PgOptions, PgServer};

/// True when the handle's connection is encrypted (pg_stat_ssl of its backend).
async fn encrypted(database: &db_core::Database) -> bool {
    let client = database.client().await.expect("connect");
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl")
        .get(0)
}

#[tokio::test]
async fn sslmode_require_encrypts_and_verify_full_checks_the_chain() {
    let pg = PgServer::cluster(PgOptions {
        tls: true,
        ..PgOptions::default()
    });
    let a = pg.admin();
    let url = |host: &str| {
        format!(
            "postgresql://{}:{}@{host}:{}/postgres",
            a.user, a.password, a.port
        )
    };
    let ca = pg.ca_cert.clone().expect("ca");

    let require = database_from(
        &[
            ("DATABASE_URL", &url("127.0.0.1")),
            ("DB_SSLMODE", "require"),
        ],
        None,
    );
    assert!(encrypted(&require).await);

    let ca_path = ca.display().to_string();
    let verified = database_from(
        &[
            ("DATABASE_URL", &url("localhost")),
            ("DB_SSLMODE", "verify-full"),
            ("DB_SSL_ROOT_CERT", &ca_path),
        ],
        None,
    );
    assert!(encrypted(&verified).await);

    // Another CA: the certificate does not verify, and the health check says so.
    let other = tempfile::tempdir().expect("tempdir");
    let other_ca = make_ca(other.path()).display().to_string();
    let untrusted = database_from(
        &[
            ("DATABASE_URL", &url("localhost")),
            ("DB_SSLMODE", "verify-full"),
            ("DB_SSL_ROOT_CERT", &other_ca),
        ],
        None,
    );
    let answer = handler(&untrusted, DEFAULT_TIMEOUT).await;
    assert_eq!(answer["database"]["connected"], false);
    let error = answer["database"]["error"].as_str().expect("error");
    assert!(error.contains("certificate"), "{error}");

    // Plain TCP is refused by nothing here, but `disable` really is plain.
    let plain = database_from(
        &[
            ("DATABASE_URL", &url("127.0.0.1")),
            ("DB_SSLMODE", "disable"),
        ],
        None,
    );
    assert!(!encrypted(&plain).await);
}

/// `require` never falls back to plain TCP (libpq semantics), unlike the
/// `prefer` a bare `DATABASE_URL` gets.
#[tokio::test]
async fn sslmode_require_refuses_a_server_without_tls() {
    let pg = PgServer::cluster(PgOptions::default());
    let a = pg.admin();
    let url = format!(
        "postgresql://{}:{}@127.0.0.1:{}/postgres",
        a.user, a.password, a.port
    );
    let answer = handler(
        &database_from(&[("DATABASE_URL", &url), ("DB_SSLMODE", "require")], None),
        DEFAULT_TIMEOUT,
    )
    .await;
    let error = answer["database"]["error"].as_str().expect("error");
    assert!(error.contains("server does not support TLS"), "{error}");

    let prefer = database_from(&[("DATABASE_URL", &url)], None);
    assert!(!encrypted(&prefer).await);
}
