//! Lambda entry point of `$default` (client messages), and of the replays `$connect`
//! asks for (`{"resume": ...}`).

use aws_config::BehaviorVersion;
use aws_lambda_events::event::apigw::ApiGatewayWebsocketProxyRequest;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use realtime_core::{Deps, RealtimeConfig};
use realtime_message::{handler, resume_event};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = RealtimeConfig::from_env()?;
    let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
    let deps = Deps::new(&sdk, &config);
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        if event.payload.get("resume").is_some() {
            return resume_event(&event.payload, deps)
                .await
                .map_err(Error::from);
        }
        let req: ApiGatewayWebsocketProxyRequest = serde_json::from_value(event.payload)?;
        Ok::<Value, Error>(serde_json::to_value(handler(req, deps).await)?)
    }))
    .await
}
