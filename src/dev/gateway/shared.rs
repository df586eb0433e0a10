//! The state every task of one gateway shares: the API, limits, the invoker, the
//! event callback, the registry, and the shutdown signal.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, watch};

use super::event::{GatewayEvent, IntegrationError};
use super::ids::IdGenerator;
use super::payload::Api;
use super::registry::Registry;
use crate::dev::deployed::WebSocketApi;
use crate::dev::invoke::{Invocation, Invoke};

pub(crate) type EventSink = Arc<dyn Fn(GatewayEvent) + Send + Sync>;

pub(crate) struct Shared {
    pub(crate) api: WebSocketApi,
    /// `127.0.0.1:{port}`: the events' `domainName` and the DISCONNECT `Host`.
    pub(crate) domain_name: String,
    pub(crate) port: u16,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_lifetime: Duration,
    pub(crate) integration_timeout: Duration,
    pub(crate) invoker: Arc<dyn Invoke>,
    pub(crate) on_event: EventSink,
    pub(crate) registry: Registry,
    pub(crate) ids: IdGenerator,
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Dropped with the last `Arc<Shared>`: `Gateway::shutdown` waits for that,
    /// i.e. for every task (and every `$disconnect`) to finish.
    pub(crate) _alive: mpsc::Sender<()>,
}

impl Shared {
    pub(crate) fn emit(&self, event: GatewayEvent) {
        (self.on_event)(event);
    }

    pub(crate) fn api_ref(&self) -> Api<'_> {
        Api {
            api_id: &self.api.api_id,
            stage: &self.api.stage,
            domain_name: &self.domain_name,
        }
    }

    /// Invoke `function` with `event`, bounded by the integration timeout.
    pub(crate) async fn integrate(
        &self,
        function: &str,
        event: &Value,
    ) -> Result<Invocation, IntegrationError> {
        let payload = serde_json::to_vec(event).unwrap_or_default();
        match tokio::time::timeout(
            self.integration_timeout,
            self.invoker.invoke(function, payload),
        )
        .await
        {
            Ok(result) => result.map_err(IntegrationError::from),
            Err(_) => Err(IntegrationError::Timeout(self.integration_timeout)),
        }
    }
}

/// Resolves once shutdown is signalled (or the gateway was dropped).
pub(crate) async fn shutdown_signal(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}
