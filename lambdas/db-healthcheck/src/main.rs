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
    let db = Database::from_env("barkbase-db-healthcheck").await?;
    let db = &db;
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<Value>| {
        // Boxed to keep the runtime's future within the compiler's layout depth.
        Box::pin(async move {
            Ok::<Value, Error>(db_healthcheck::handler(db, db_healthcheck::DEFAULT_TIMEOUT).await)
        })
    }))
    .await
}
