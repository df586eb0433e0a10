use std::net::TcpListener;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use db_healthcheck::{handler, DEFAULT_TIMEOUT};
use jobs_tests::postgres::PgServer;
use jobs_tests::{database_at, database_from, free_port};

#[tokio::test]
async fn reports_connected_with_the_server_time() {
    let pg = PgServer::start();
    let db = pg.create_database().await;
    let answer = handler(&database_at(&db.url()), DEFAULT_TIMEOUT).await;
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["database"]["connected"], true);
    let server_time: DateTime<Utc> = answer["database"]["serverTime"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("serverTime is RFC 3339");
    assert!(
        (Utc::now() - server_time).num_seconds().abs() < 60,
        "{server_time}"
    );
    assert!(answer["timestamp"]
        .as_str()
        .is_some_and(|t| t.parse::<DateTime<Utc>>().is_ok()));
}

#[tokio::test]
async fn reports_the_reason_when_nothing_listens() {
    let port = free_port();
    let started = Instant::now();
    let answer = handler(
        &database_at(&format!("postgresql://app:pw@127.0.0.1:{port}/barkbase")),
        DEFAULT_TIMEOUT,
    )
    .await;
    assert_eq!(answer["ok"], false);
    assert_eq!(answer["database"]["connected"], false);
    let error = answer["database"]["error"].as_str().expect("error text");
    assert!(
        error.starts_with("connecting to the database:") && error.contains("refused"),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A server that accepts TCP connections and never answers: the connect timeout
/// bounds the health check.
#[tokio::test]
async fn a_silent_server_answers_connected_false_within_the_connect_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let held = std::thread::spawn(move || listener.accept().map(|(socket, _)| socket));
    let url = format!("postgresql://app:pw@127.0.0.1:{port}/barkbase");
    let database = database_from(
        &[
            ("DATABASE_URL", &url),
            ("DB_SSLMODE", "disable"),
            ("DB_CONNECT_TIMEOUT_SECONDS", "1"),
        ],
        None,
    );
    let started = Instant::now();
    let answer = handler(&database, DEFAULT_TIMEOUT).await;
    let elapsed = started.elapsed();
    assert_eq!(answer["database"]["connected"], false, "{answer}");
    let error = answer["database"]["error"].as_str().expect("error text");
    assert!(error.contains("timed out"), "{error}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    drop(held);

    // And the handler's own limit, when it is the shorter one.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let _held = std::thread::spawn(move || listener.accept().map(|(socket, _)| socket));
    let started = Instant::now();
    let answer = handler(
        &database_at(&format!("postgresql://app:pw@127.0.0.1:{port}/barkbase")),
        Duration::from_millis(500),
    )
    .await;
    assert_eq!(
        answer["database"]["error"],
        "no answer from the database within 0.5 s"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}
