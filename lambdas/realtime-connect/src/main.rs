//! Lambda entry point of `$connect` (and the `refresh` route): settings, clients and
//! the verifier are built once per cold start.

use aws_config::BehaviorVersion;
use aws_lambda_events::event::apigw::ApiGatewayWebsocketProxyRequest;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use realtime_connect::{handler, ConnectDeps, Resumer, UserDirectory};
use realtime_core::config::JwtSettings;
use realtime_core::{ConnectionStore, JwtVerifier, ManagementClients, RealtimeConfig};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = RealtimeConfig::from_env()?;
    let jwt = JwtSettings::from_env()?;
    let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
    let users = if config.verify_user_active {
        Some(UserDirectory {
            db: db_core::Database::from_env("barkbase-realtime-connect").await?,
        })
    } else {
        None
    };
    let deps = ConnectDeps {
        store: ConnectionStore::from_sdk_config(&sdk, &config.connections_table),
        verifier: JwtVerifier::from_settings(&jwt, &sdk).await?,
        ttl_seconds: i64::try_from(config.connection_ttl.as_secs()).unwrap_or(i64::MAX),
        clients: ManagementClients::new(sdk.clone(), config.management_endpoint.clone()),
        max_connections_per_user: config.max_connections_per_user,
        users,
        resumer: config.resume_function.clone().map(|function| Resumer {
            client: aws_sdk_lambda::Client::new(&sdk),
            function,
        }),
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            Ok::<_, Error>(handler(event.payload, deps).await)
        },
    ))
    .await
}
