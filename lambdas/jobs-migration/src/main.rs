//! Lambda entry point of jobs-migration.

use db_core::Database;
use lambda_runtime::{service_fn, Diagnostic, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .without_time()
        .init();
    let db = Database::from_env("barkbase-jobs-migration").await?;
    let db = &db;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        // Boxed: the nested pool/TLS futures otherwise exceed the compiler's
        // layout depth limit inside the runtime's future.
        Box::pin(async move {
            jobs_migration::handler(db, event.payload)
                .await
                .map_err(|e| Diagnostic {
                    error_type: "MigrationError".into(),
                    error_message: e.to_string(),
                })
        })
    }))
    .await
}
