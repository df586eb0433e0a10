//! Lambda entry point of jobs-property-deletion.

use db_core::Database;
use jobs_property_deletion::DeletionConfig;
use lambda_runtime::{service_fn, Diagnostic, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .without_time()
        .init();
    // Bad settings fail the cold start, before any event is accepted.
    let defaults = DeletionConfig::from_env()?;
    let db = Database::from_env("barkbase-jobs-property-deletion").await?;
    let db = &db;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        // Boxed to keep the runtime's future within the compiler's layout depth.
        Box::pin(async move {
            jobs_property_deletion::handler(db, defaults, event.payload)
                .await
                .map_err(|e| Diagnostic {
                    error_type: "PropertyDeletionError".into(),
                    error_message: e.to_string(),
                })
        })
    }))
    .await
}
