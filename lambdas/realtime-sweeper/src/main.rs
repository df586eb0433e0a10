//! Lambda entry point of the sweeper (an EventBridge schedule; any event will do).

use aws_config::BehaviorVersion;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use realtime_core::{Deps, RealtimeConfig};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = RealtimeConfig::from_env()?;
    let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
    let deps = Deps::new(&sdk, &config);
    let broadcaster = deps.broadcaster()?;
    let broadcaster = &broadcaster;
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<Value>| async move {
        let report = realtime_sweeper::handler(broadcaster).await?;
        Ok::<Value, Error>(serde_json::to_value(report)?)
    }))
    .await
}
