//! db-healthcheck: `SELECT now()` through the same path the jobs use (secret,
//! TLS, pool). It never fails the invocation: the outcome is the answer,
//! `{ok, database: {connected, serverTime | error}, timestamp}`.

use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use db_core::job_event::millis;
use db_core::{Database, DbError};
use serde_json::{json, Value};

/// Well inside the function's 30 s timeout, so a hung database still gets a
/// `connected: false` answer instead of a Lambda timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn handler(db: &Database, timeout: Duration) -> Value {
    let started = Instant::now();
    let check = async {
        let client = db.client().await?;
        let row = client.query_one("SELECT now()", &[]).await?;
        Ok::<DateTime<Utc>, DbError>(row.get(0))
    };
    let outcome = match tokio::time::timeout(timeout, check).await {
        Ok(Ok(server_time)) => Ok(server_time),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "no answer from the database within {} s",
            timeout.as_secs_f32()
        )),
    };
    let timestamp = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    let latency_ms = millis(started.elapsed());
    match outcome {
        Ok(server_time) => json!({
            "ok": true,
            "database": {
                "connected": true,
                "serverTime": server_time.to_rfc3339_opts(SecondsFormat::Micros, true),
                "latencyMs": latency_ms,
            },
            "timestamp": timestamp,
        }),
        Err(error) => failure(&error, latency_ms),
    }
}

/// The answer when the check cannot succeed; also used by `main` when the
/// settings themselves are invalid, so a misconfigured function still answers.
pub fn failure(error: &str, latency_ms: u64) -> Value {
    tracing::error!(%error, "database health check failed");
    json!({
        "ok": false,
        "database": { "connected": false, "error": error, "latencyMs": latency_ms },
        "timestamp": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_answer_shape() {
        let answer = failure("no database configured", 0);
        assert_eq!(answer["ok"], false);
        assert_eq!(
            answer["database"],
            json!({"connected": false, "error": "no database configured", "latencyMs": 0})
        );
        assert!(answer["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')));
    }
}
