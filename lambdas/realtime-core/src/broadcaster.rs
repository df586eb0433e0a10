//! Fan-out: resolve a [`Target`] to connection ids through the table's indexes, then
//! post one frame to each with bounded concurrency. A 410 deletes the stale
//! connection, throttling is retried with exponential backoff, and one failing
//! connection never stops the others.
//!
//! Every broadcast has a [`Scope`]: one tenant, or all tenants when a service says so
//! explicitly (`allTenants: true`). Whatever the target, no connection outside the
//! scope is reached; channels exist only inside a tenant.

use std::collections::HashSet;
use std::time::Duration;

use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::envelope::{Envelope, EnvelopeError, Payload};
use crate::history::{channel_stream, user_stream, HistoryStore};
use crate::management::{ConnectionSender, PostError};
use crate::store::{ConnectionStore, StoreError};

/// Which tenants a broadcast may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Tenant(String),
    /// Only a service invoking the broadcast function, saying `allTenants: true`.
    AllTenants,
}

/// Who a broadcast goes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Target {
    Connection {
        #[serde(rename = "connectionId")]
        connection_id: String,
    },
    User {
        #[serde(rename = "userId")]
        user_id: String,
    },
    /// Roles are only meaningful inside a tenant, and the table has no role index:
    /// the tenant's connections are queried and filtered by role.
    Role {
        role: String,
        #[serde(rename = "tenantId")]
        tenant_id: String,
    },
    Tenant {
        #[serde(rename = "tenantId")]
        tenant_id: String,
    },
    Channel {
        channel: String,
    },
    All,
}

/// The message part of a broadcast request: a type and its payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct OutgoingMessage {
    #[serde(rename = "type")]
    pub kind: String,
    pub data: Value,
}

/// What the broadcast function is invoked with (directly, or as the body of the
/// `broadcast` route with an extra `action` field). A direct invocation names its
/// tenant (`tenantId`, implied by a `tenant` or `role` target) or says
/// `allTenants: true`; a client's broadcast is always scoped to the client's tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BroadcastRequest {
    pub target: Target,
    pub message: OutgoingMessage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_tenants: bool,
}

impl BroadcastRequest {
    pub fn envelope(&self) -> Result<Envelope, EnvelopeError> {
        Envelope::new(Payload::parse(
            &self.message.kind,
            self.message.data.clone(),
        )?)
    }

    /// The scope of a service's (direct) broadcast.
    pub fn service_scope(&self) -> Result<Scope, BroadcastError> {
        let implied = match &self.target {
            Target::Tenant { tenant_id } | Target::Role { tenant_id, .. } => Some(tenant_id),
            _ => None,
        };
        match (&self.tenant_id, self.all_tenants, implied) {
            (Some(_), true, _) => Err(BroadcastError::Forbidden(
                "`tenantId` and `allTenants` exclude each other".into(),
            )),
            (Some(t), false, _) => Ok(Scope::Tenant(t.clone())),
            (None, true, _) => Ok(Scope::AllTenants),
            (None, false, Some(t)) => Ok(Scope::Tenant(t.clone())),
            (None, false, None) => Err(BroadcastError::Forbidden(
                "a broadcast names its tenant (`tenantId`) or says `allTenants: true`".into(),
            )),
        }
    }
}

/// The delivery counts (the `broadcast_result` payload).
pub type BroadcastReport = crate::envelope::BroadcastResult;

/// A report plus the ids that failed for reasons other than 410.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    pub report: BroadcastReport,
    pub failed_ids: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BroadcastError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error("{0}")]
    Forbidden(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt, for throttled posts only.
    pub retries: u32,
    pub base_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            retries: 4,
            base_delay: Duration::from_millis(25),
        }
    }
}

enum Outcome {
    Delivered,
    Gone,
    Failed(String),
}

pub struct Broadcaster<S> {
    store: ConnectionStore,
    sender: S,
    concurrency: usize,
    retry: RetryPolicy,
    history: Option<HistoryStore>,
}

impl<S: ConnectionSender> Broadcaster<S> {
    pub fn new(store: ConnectionStore, sender: S, concurrency: usize) -> Self {
        Self {
            store,
            sender,
            concurrency: concurrency.max(1),
            retry: RetryPolicy::default(),
            history: None,
        }
    }

    /// Gives broadcast messages ids and keeps user and channel messages.
    pub fn with_history(mut self, history: Option<HistoryStore>) -> Self {
        self.history = history;
        self
    }

    pub fn history(&self) -> Option<&HistoryStore> {
        self.history.as_ref()
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn store(&self) -> &ConnectionStore {
        &self.store
    }

    pub fn sender(&self) -> &S {
        &self.sender
    }

    /// The connection ids a target names, inside `scope`.
    pub async fn resolve(
        &self,
        target: &Target,
        scope: &Scope,
    ) -> Result<Vec<String>, BroadcastError> {
        let in_scope = |tenant: &str| match scope {
            Scope::AllTenants => true,
            Scope::Tenant(t) => t == tenant,
        };
        let outside =
            || BroadcastError::Forbidden("the target is outside the broadcast's tenant".into());
        let ids: Vec<String> = match target {
            Target::Connection { connection_id } => match self.store.get(connection_id).await? {
                Some(c) if in_scope(&c.tenant_id) => vec![c.connection_id],
                _ => Vec::new(),
            },
            Target::User { user_id } => self
                .store
                .by_user(user_id)
                .await?
                .into_iter()
                .filter(|c| in_scope(&c.tenant_id))
                .map(|c| c.connection_id)
                .collect(),
            Target::Role { role, tenant_id } => {
                if !in_scope(tenant_id) {
                    return Err(outside());
                }
                self.store
                    .by_tenant(tenant_id)
                    .await?
                    .into_iter()
                    .filter(|c| &c.role == role)
                    .map(|c| c.connection_id)
                    .collect()
            }
            Target::Tenant { tenant_id } => {
                if !in_scope(tenant_id) {
                    return Err(outside());
                }
                self.tenant_ids(tenant_id).await?
            }
            Target::Channel { channel } => match scope {
                Scope::Tenant(t) => self.store.channel_subscribers(t, channel).await?,
                Scope::AllTenants => {
                    return Err(BroadcastError::Forbidden(
                        "channels belong to a tenant: name it with `tenantId`".into(),
                    ))
                }
            },
            Target::All => match scope {
                Scope::Tenant(t) => self.tenant_ids(t).await?,
                Scope::AllTenants => self.store.all_connection_ids().await?,
            },
        };
        let mut seen = HashSet::with_capacity(ids.len());
        Ok(ids
            .into_iter()
            .filter(|id| seen.insert(id.clone()))
            .collect())
    }

    async fn tenant_ids(&self, tenant_id: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .store
            .by_tenant(tenant_id)
            .await?
            .into_iter()
            .map(|c| c.connection_id)
            .collect())
    }

    /// Resolves `target` and sends `envelope` to it. An oversized message is refused
    /// before any lookup. With history, the message gets the stage's next `id`, and a
    /// message to a user or a channel of one tenant is kept for `resume`.
    pub async fn broadcast(
        &self,
        target: &Target,
        envelope: &Envelope,
        scope: &Scope,
    ) -> Result<BroadcastReport, BroadcastError> {
        envelope.to_bytes()?;
        let ids = self.resolve(target, scope).await?;
        let mut envelope = envelope.clone();
        let mut id = None;
        if let Some(history) = &self.history {
            let next = history.next_id().await?;
            envelope = envelope.with_id(next);
            id = Some(next);
        }
        let frame = envelope.to_bytes()?;
        if let (Some(history), Some(id), Scope::Tenant(tenant)) = (&self.history, id, scope) {
            let stream = match target {
                Target::User { user_id } => Some(user_stream(tenant, user_id)),
                Target::Channel { channel } => Some(channel_stream(tenant, channel)),
                _ => None,
            };
            if let Some(stream) = stream {
                history
                    .record(&stream, id, envelope.timestamp(), &frame)
                    .await?;
            }
        }
        let mut report = self.send_to(&ids, &frame).await.report;
        report.id = id;
        Ok(report)
    }

    /// Posts `frame` to every id, at most `concurrency` in flight.
    pub async fn send_to(&self, ids: &[String], frame: &[u8]) -> Delivery {
        let outcomes: Vec<(&String, Outcome)> = stream::iter(ids)
            .map(|id| async move { (id, self.deliver_one(id, frame).await) })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let mut delivery = Delivery {
            report: BroadcastReport {
                targeted: ids.len(),
                ..BroadcastReport::default()
            },
            failed_ids: Vec::new(),
        };
        for (id, outcome) in outcomes {
            match outcome {
                Outcome::Delivered => delivery.report.delivered += 1,
                Outcome::Gone => delivery.report.gone += 1,
                Outcome::Failed(reason) => {
                    tracing::warn!(connection_id = %id, %reason, "post to connection failed");
                    delivery.report.failed += 1;
                    delivery.failed_ids.push(id.clone());
                }
            }
        }
        delivery
    }

    async fn deliver_one(&self, id: &str, frame: &[u8]) -> Outcome {
        let mut attempt = 0;
        loop {
            match self.sender.post(id, frame).await {
                Ok(()) => return Outcome::Delivered,
                Err(PostError::Gone) => {
                    // Counted as gone even if the delete fails: the TTL removes the
                    // item later, and the client is not there either way.
                    if let Err(e) = self.store.remove(id).await {
                        tracing::warn!(connection_id = %id, error = %e, "deleting a gone connection failed");
                    }
                    return Outcome::Gone;
                }
                Err(PostError::Throttled(reason)) => {
                    if attempt >= self.retry.retries {
                        return Outcome::Failed(format!(
                            "throttled after {} attempts: {reason}",
                            attempt + 1
                        ));
                    }
                    tokio::time::sleep(self.retry.base_delay * 2u32.pow(attempt)).await;
                    attempt += 1;
                }
                Err(PostError::Other(reason)) => return Outcome::Failed(reason),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn targets_parse_from_their_documented_shapes() {
        let cases = [
            (
                json!({"type": "connection", "connectionId": "c1"}),
                Target::Connection {
                    connection_id: "c1".into(),
                },
            ),
            (
                json!({"type": "user", "userId": "u1"}),
                Target::User {
                    user_id: "u1".into(),
                },
            ),
            (
                json!({"type": "role", "role": "staff", "tenantId": "t1"}),
                Target::Role {
                    role: "staff".into(),
                    tenant_id: "t1".into(),
                },
            ),
            (
                json!({"type": "tenant", "tenantId": "t1"}),
                Target::Tenant {
                    tenant_id: "t1".into(),
                },
            ),
            (
                json!({"type": "channel", "channel": "metrics"}),
                Target::Channel {
                    channel: "metrics".into(),
                },
            ),
            (json!({"type": "all"}), Target::All),
        ];
        for (v, want) in cases {
            assert_eq!(
                serde_json::from_value::<Target>(v).expect("valid target"),
                want
            );
        }
        assert!(
            serde_json::from_value::<Target>(json!({"type": "role", "role": "staff"})).is_err()
        );
    }
}
