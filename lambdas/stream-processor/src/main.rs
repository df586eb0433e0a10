//! Lambda entry point of the metrics stream processor (experience stack).

use aws_config::BehaviorVersion;
use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use realtime_core::{Deps, RealtimeConfig};
use stream_processor::handler;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = RealtimeConfig::from_env()?;
    let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
    // Stream events name no API, so the endpoint must be configured: fail at cold start.
    let broadcaster = Deps::new(&sdk, &config).broadcaster()?;
    let broadcaster = &broadcaster;
    let channel = config.metrics_channel.as_str();
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| async move {
        Ok::<_, Error>(handler(event.payload, broadcaster, channel).await)
    }))
    .await
}
