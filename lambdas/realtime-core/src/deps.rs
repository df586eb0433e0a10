//! What the realtime handlers that send messages share: the connection store, the
//! management API clients and the fan-out width; built once per cold start.

use aws_config::SdkConfig;
use aws_lambda_events::event::apigw::ApiGatewayWebsocketProxyRequestContext;

use crate::broadcaster::Broadcaster;
use crate::config::RealtimeConfig;
use crate::history::HistoryStore;
use crate::management::{ManagementApi, ManagementClients, ManagementError};
use crate::rate_limit::RateSettings;
use crate::store::ConnectionStore;

#[derive(Debug)]
pub struct Deps {
    pub store: ConnectionStore,
    pub clients: ManagementClients,
    pub concurrency: usize,
    pub history: Option<HistoryStore>,
    pub rate: Option<RateSettings>,
}

impl Deps {
    pub fn new(sdk: &SdkConfig, config: &RealtimeConfig) -> Self {
        let history = config.history_table.as_ref().map(|t| {
            HistoryStore::new(
                aws_sdk_dynamodb::Client::new(sdk),
                t.clone(),
                config.history_ttl,
            )
        });
        Self {
            store: ConnectionStore::from_sdk_config(sdk, &config.connections_table),
            clients: ManagementClients::new(sdk.clone(), config.management_endpoint.clone()),
            concurrency: config.broadcast_concurrency,
            history,
            rate: config.rate,
        }
    }

    /// A broadcaster that answers through the API the event came from.
    pub fn broadcaster_for(
        &self,
        ctx: &ApiGatewayWebsocketProxyRequestContext,
    ) -> Result<Broadcaster<ManagementApi>, ManagementError> {
        Ok(Broadcaster::new(
            self.store.clone(),
            self.clients.for_request(ctx)?,
            self.concurrency,
        )
        .with_history(self.history.clone()))
    }

    /// A broadcaster on the configured endpoint, for events not sent by the API.
    pub fn broadcaster(&self) -> Result<Broadcaster<ManagementApi>, ManagementError> {
        Ok(Broadcaster::new(
            self.store.clone(),
            self.clients.configured()?,
            self.concurrency,
        )
        .with_history(self.history.clone()))
    }
}
