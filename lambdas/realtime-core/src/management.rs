//! PostToConnection: the [`ConnectionSender`] trait the broadcaster sends through, its
//! implementation on the API Gateway management API SDK client, and the choice of
//! that API's endpoint.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use aws_config::SdkConfig;
use aws_lambda_events::event::apigw::ApiGatewayWebsocketProxyRequestContext;
use aws_sdk_apigatewaymanagement::config::retry::RetryConfig;
use aws_sdk_apigatewaymanagement::error::DisplayErrorContext;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use aws_sdk_apigatewaymanagement::Client;

/// The outcome of one post that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    /// 410: the client went away; its item should be deleted.
    #[error("connection is gone")]
    Gone,
    /// 429: worth retrying after a pause.
    #[error("throttled: {0}")]
    Throttled(String),
    #[error("{0}")]
    Other(String),
}

/// Sends one frame to one connection.
pub trait ConnectionSender: Send + Sync {
    fn post(
        &self,
        connection_id: &str,
        data: &[u8],
    ) -> impl Future<Output = Result<(), PostError>> + Send;
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManagementError {
    #[error(
        "no management API endpoint: `WEBSOCKET_MANAGEMENT_ENDPOINT` is unset and the event has no `domainName` and `stage`"
    )]
    NoEndpoint,
}

/// The SDK client for one management API endpoint.
#[derive(Debug, Clone)]
pub struct ManagementApi {
    client: Client,
    endpoint: String,
}

impl ManagementApi {
    pub fn new(sdk: &SdkConfig, endpoint: &str) -> Self {
        let config = aws_sdk_apigatewaymanagement::config::Builder::from(sdk)
            .endpoint_url(endpoint)
            // The broadcaster retries throttled posts itself, with its own backoff, so
            // the SDK's retries would only multiply the delay.
            .retry_config(RetryConfig::disabled())
            .build();
        Self {
            client: Client::from_conf(config),
            endpoint: endpoint.to_string(),
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// `DELETE @connections/{id}`: closes the socket (API Gateway then sends
    /// `$disconnect`). A connection already gone is `Err(PostError::Gone)`.
    pub async fn close(&self, connection_id: &str) -> Result<(), PostError> {
        let res = self
            .client
            .delete_connection()
            .connection_id(connection_id)
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                if e.as_service_error()
                    .is_some_and(|se| se.is_gone_exception())
                    || status == Some(410)
                {
                    return Err(PostError::Gone);
                }
                Err(PostError::Other(DisplayErrorContext(&e).to_string()))
            }
        }
    }
}

impl ConnectionSender for ManagementApi {
    async fn post(&self, connection_id: &str, data: &[u8]) -> Result<(), PostError> {
        let res = self
            .client
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(data))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                if let Some(se) = e.as_service_error() {
                    if se.is_gone_exception() {
                        return Err(PostError::Gone);
                    }
                    if se.is_limit_exceeded_exception() {
                        return Err(PostError::Throttled(se.to_string()));
                    }
                }
                match status {
                    Some(410) => Err(PostError::Gone),
                    Some(429) => Err(PostError::Throttled(DisplayErrorContext(&e).to_string())),
                    _ => Err(PostError::Other(DisplayErrorContext(&e).to_string())),
                }
            }
        }
    }
}

/// `https://{domainName}/{stage}`: the management endpoint of the API that sent the
/// event (the default execute-api domain maps the stage as the first path segment).
pub fn derive_endpoint(domain_name: &str, stage: &str) -> String {
    format!("https://{domain_name}/{stage}")
}

/// Management API clients, built once per endpoint and reused across invocations.
#[derive(Debug)]
pub struct ManagementClients {
    sdk: SdkConfig,
    configured: Option<String>,
    cache: Mutex<HashMap<String, ManagementApi>>,
}

impl ManagementClients {
    /// `configured` is `WEBSOCKET_MANAGEMENT_ENDPOINT`; when it is unset, a
    /// process-wide endpoint override (`AWS_ENDPOINT_URL`, the local emulator) is used,
    /// else the endpoint is derived from each event.
    pub fn new(sdk: SdkConfig, configured: Option<String>) -> Self {
        let configured = configured.or_else(|| sdk.endpoint_url().map(str::to_string));
        Self {
            sdk,
            configured,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn for_request(
        &self,
        ctx: &ApiGatewayWebsocketProxyRequestContext,
    ) -> Result<ManagementApi, ManagementError> {
        let endpoint = match (
            &self.configured,
            ctx.domain_name.as_deref(),
            ctx.stage.as_deref(),
        ) {
            (Some(url), _, _) => url.clone(),
            (None, Some(domain), Some(stage)) if !domain.is_empty() && !stage.is_empty() => {
                derive_endpoint(domain, stage)
            }
            _ => return Err(ManagementError::NoEndpoint),
        };
        Ok(self.client_for(&endpoint))
    }

    /// The configured endpoint's client, for events that carry no API (streams).
    pub fn configured(&self) -> Result<ManagementApi, ManagementError> {
        let endpoint = self.configured.clone().ok_or(ManagementError::NoEndpoint)?;
        Ok(self.client_for(&endpoint))
    }

    fn client_for(&self, endpoint: &str) -> ManagementApi {
        // A poisoned lock only means another invocation panicked mid-insert; the map
        // itself is still usable.
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .entry(endpoint.to_string())
            .or_insert_with(|| ManagementApi::new(&self.sdk, endpoint))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_is_derived_from_domain_and_stage() {
        assert_eq!(
            derive_endpoint("abc123.execute-api.us-east-1.amazonaws.com", "dev"),
            "https://abc123.execute-api.us-east-1.amazonaws.com/dev"
        );
    }

    #[test]
    fn configured_endpoint_wins_and_missing_one_is_an_error() {
        let sdk = SdkConfig::builder().build();
        let mut ctx = ApiGatewayWebsocketProxyRequestContext::default();
        ctx.domain_name = Some("abc.execute-api.us-east-1.amazonaws.com".into());
        ctx.stage = Some("dev".into());
        let derived = ManagementClients::new(sdk.clone(), None);
        assert_eq!(
            derived.for_request(&ctx).map(|c| c.endpoint().to_string()),
            Ok("https://abc.execute-api.us-east-1.amazonaws.com/dev".to_string())
        );
        assert_eq!(
            derived.configured().map(|_| ()),
            Err(ManagementError::NoEndpoint)
        );
        let fixed = ManagementClients::new(sdk, Some("http://127.0.0.1:9/x".into()));
        assert_eq!(
            fixed.for_request(&ctx).map(|c| c.endpoint().to_string()),
            Ok("http://127.0.0.1:9/x".to_string())
        );
    }
}
