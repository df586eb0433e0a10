//! Lambda entry point of db-healthcheck.

use db_core::Database;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .without_time()
        .init();
    // Invalid settings are reported by every invocation rather than failing the
    // cold start: the health check's job is to say what is wrong.
    let db = Database::from_env("barkbase-db-healthcheck")
        .await
        .map_err(|e| e.to_string());
    let db = &db;
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<Value>| {
        // Boxed to keep the runtime's future within the compiler's layout depth.
        Box::pin(async move {
            Ok::<Value, Error>(match db {
                Ok(db) => db_healthcheck::handler(db, db_healthcheck::DEFAULT_TIMEOUT).await,
                Err(error) => db_healthcheck::failure(error, 0),
            })
        })
    }))
    .await
}
