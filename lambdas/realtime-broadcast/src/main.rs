//! Lambda entry point of the broadcast function (WebSocket route and direct invocation).

use aws_config::BehaviorVersion;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use realtime_broadcast::handler;
use realtime_core::{Deps, RealtimeConfig};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = RealtimeConfig::from_env()?;
    let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
    let deps = Deps::new(&sdk, &config);
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        handler(event.payload, deps).await.map_err(Error::from)
    }))
    .await
}
