//! The connections table: one item per WebSocket connection, one item per channel
//! subscription (`sub#{tenantId}#{channel}#{connectionId}`), looked up through the
//! `userId-index`, `tenantId-index` and `channel-index` GSIs. Channels belong to a
//! tenant: the subscription item's `channel` attribute is `{tenantId}#{channel}`, so
//! a channel name means nothing outside its tenant. Only
//! [`ConnectionStore::all_connection_ids`] and [`ConnectionStore::expired`] scan, and
//! they page.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;

pub const USER_INDEX: &str = "userId-index";
pub const TENANT_INDEX: &str = "tenantId-index";
pub const CHANNEL_INDEX: &str = "channel-index";
pub const MAX_CHANNELS_PER_CONNECTION: usize = 50;
pub const MAX_CHANNEL_LEN: usize = 128;

/// A channel name: 1–128 characters of letters, digits and `-_.:/`. `#` is excluded
/// because it separates the parts of the table's keys.
pub fn valid_channel(channel: &str) -> bool {
    !channel.is_empty()
        && channel.len() <= MAX_CHANNEL_LEN
        && channel
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/'))
}

type Item = HashMap<String, AttributeValue>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("DynamoDB {operation} on `{table}` failed: {message}")]
    Dynamo {
        operation: &'static str,
        table: String,
        message: String,
    },
    #[error("item `{connection_id}` in `{table}` is malformed: {reason}")]
    Malformed {
        table: String,
        connection_id: String,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub connection_id: String,
    pub user_id: String,
    pub tenant_id: String,
    pub role: String,
    /// ISO-8601 UTC.
    pub connected_at: String,
    /// Epoch seconds; the table's TTL attribute.
    pub expires_at: i64,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    /// The channel names the client subscribed to (without the tenant).
    pub channels: Vec<String>,
    /// The `exp` of the token the connection was opened (or last refreshed) with.
    pub token_exp: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeOutcome {
    Subscribed,
    AlreadySubscribed,
    LimitReached,
    UnknownConnection,
}

#[derive(Debug, Clone)]
pub struct ConnectionStore {
    client: Client,
    table: String,
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

/// The `channel` attribute of a subscription item: the channel inside its tenant.
pub fn channel_key(tenant_id: &str, channel: &str) -> String {
    format!("{tenant_id}#{channel}")
}

pub fn subscription_key(tenant_id: &str, channel: &str, connection_id: &str) -> String {
    format!("sub#{tenant_id}#{channel}#{connection_id}")
}

impl ConnectionStore {
    pub fn from_sdk_config(sdk: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self::new(Client::new(sdk), table)
    }

    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn err<E: std::error::Error + 'static>(
        &self,
        operation: &'static str,
        e: E,
    ) -> StoreError {
        StoreError::Dynamo {
            operation,
            table: self.table.clone(),
            message: DisplayErrorContext(&e).to_string(),
        }
    }

    pub async fn put(&self, c: &Connection) -> Result<(), StoreError> {
        let mut item: Item = HashMap::from([
            ("connectionId".into(), s(&c.connection_id)),
            ("userId".into(), s(&c.user_id)),
            ("tenantId".into(), s(&c.tenant_id)),
            ("role".into(), s(&c.role)),
            ("connectedAt".into(), s(&c.connected_at)),
            (
                "expiresAt".into(),
                AttributeValue::N(c.expires_at.to_string()),
            ),
        ]);
        if let Some(ip) = &c.source_ip {
            item.insert("sourceIp".into(), s(ip));
        }
        if let Some(ua) = &c.user_agent {
            item.insert("userAgent".into(), s(ua));
        }
        if let Some(exp) = c.token_exp {
            item.insert("tokenExp".into(), AttributeValue::N(exp.to_string()));
        }
        // DynamoDB refuses empty sets, so no subscriptions means no attribute.
        if !c.channels.is_empty() {
            item.insert("channels".into(), AttributeValue::Ss(c.channels.clone()));
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| self.err("PutItem", e))?;
        Ok(())
    }

    pub async fn get(&self, connection_id: &str) -> Result<Option<Connection>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("connectionId", s(connection_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.err("GetItem", e))?;
        out.item().map(|i| self.connection_from(i)).transpose()
    }

    /// Deletes a connection and its subscription items; returns what was stored.
    /// An unknown id is not an error: `$disconnect` and 410 Gone may race.
    pub async fn remove(&self, connection_id: &str) -> Result<Option<Connection>, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("connectionId", s(connection_id))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| self.err("DeleteItem", e))?;
        let Some(old) = out.attributes() else {
            return Ok(None);
        };
        let conn = self.connection_from(old)?;
        for ch in &conn.channels {
            self.delete_key(&subscription_key(&conn.tenant_id, ch, connection_id))
                .await?;
        }
        Ok(Some(conn))
    }

    async fn delete_key(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("connectionId", s(key))
            .send()
            .await
            .map_err(|e| self.err("DeleteItem", e))?;
        Ok(())
    }

    pub async fn by_user(&self, user_id: &str) -> Result<Vec<Connection>, StoreError> {
        self.query_index(USER_INDEX, "userId", user_id)
            .await?
            .iter()
            .map(|i| self.connection_from(i))
            .collect()
    }

    pub async fn by_tenant(&self, tenant_id: &str) -> Result<Vec<Connection>, StoreError> {
        self.query_index(TENANT_INDEX, "tenantId", tenant_id)
            .await?
            .iter()
            .map(|i| self.connection_from(i))
            .collect()
    }

    /// Connection ids subscribed to `channel` of `tenant_id`.
    pub async fn channel_subscribers(
        &self,
        tenant_id: &str,
        channel: &str,
    ) -> Result<Vec<String>, StoreError> {
        Ok(self
            .query_index(CHANNEL_INDEX, "channel", &channel_key(tenant_id, channel))
            .await?
            .iter()
            .filter_map(|i| match i.get("subscriberId") {
                Some(AttributeValue::S(id)) => Some(id.clone()),
                _ => None,
            })
            .collect())
    }

    /// Every connection id, by a paged scan that skips subscription items. Only the
    /// `all` broadcast target uses this.
    pub async fn all_connection_ids(&self) -> Result<Vec<String>, StoreError> {
        let mut ids = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("attribute_exists(userId)")
                .projection_expression("connectionId")
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.err("Scan", e))?;
            ids.extend(
                out.items()
                    .iter()
                    .filter_map(|i| match i.get("connectionId") {
                        Some(AttributeValue::S(id)) => Some(id.clone()),
                        _ => None,
                    }),
            );
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(ids),
            }
        }
    }

    /// Connections whose `expiresAt` is at or before `now` (epoch seconds): what the
    /// sweeper closes. A paged scan; subscription items are skipped.
    pub async fn expired(&self, now: i64) -> Result<Vec<Connection>, StoreError> {
        let mut found = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("attribute_exists(userId) AND expiresAt <= :now")
                .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.err("Scan", e))?;
            for item in out.items() {
                found.push(self.connection_from(item)?);
            }
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(found),
            }
        }
    }

    /// A refreshed token: the connection (and its subscription items) now expire at
    /// `expires_at`, with the new token's role and `exp`. False when the connection
    /// is gone.
    pub async fn refresh(
        &self,
        conn: &Connection,
        role: &str,
        token_exp: i64,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("connectionId", s(&conn.connection_id))
            .update_expression("SET #r = :r, tokenExp = :x, expiresAt = :e")
            .condition_expression("attribute_exists(userId)")
            .expression_attribute_names("#r", "role")
            .expression_attribute_values(":r", s(role))
            .expression_attribute_values(":x", AttributeValue::N(token_exp.to_string()))
            .expression_attribute_values(":e", AttributeValue::N(expires_at.to_string()))
            .send()
            .await;
        match res {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                return Ok(false)
            }
            Err(e) => return Err(self.err("UpdateItem", e)),
        }
        for ch in &conn.channels {
            self.client
                .update_item()
                .table_name(&self.table)
                .key(
                    "connectionId",
                    s(&subscription_key(&conn.tenant_id, ch, &conn.connection_id)),
                )
                .update_expression("SET expiresAt = :e")
                .condition_expression("attribute_exists(connectionId)")
                .expression_attribute_values(":e", AttributeValue::N(expires_at.to_string()))
                .send()
                .await
                .map_or_else(
                    |e| {
                        if e.as_service_error()
                            .is_some_and(|se| se.is_conditional_check_failed_exception())
                        {
                            Ok(())
                        } else {
                            Err(self.err("UpdateItem", e))
                        }
                    },
                    |_| Ok(()),
                )?;
        }
        Ok(true)
    }

    async fn query_index(
        &self,
        index: &'static str,
        attr: &str,
        value: &str,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(index)
                .key_condition_expression("#k = :v")
                .expression_attribute_names("#k", attr)
                .expression_attribute_values(":v", s(value))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.err("Query", e))?;
            items.extend_from_slice(out.items());
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(items),
            }
        }
    }

    /// Adds `channel` to the connection's `channels` set (at most
    /// [`MAX_CHANNELS_PER_CONNECTION`]) and writes the subscription item the
    /// `channel-index` finds.
    pub async fn subscribe(
        &self,
        connection_id: &str,
        channel: &str,
    ) -> Result<SubscribeOutcome, StoreError> {
        let Some(conn) = self.get(connection_id).await? else {
            return Ok(SubscribeOutcome::UnknownConnection);
        };
        if conn.channels.iter().any(|c| c == channel) {
            return Ok(SubscribeOutcome::AlreadySubscribed);
        }
        if conn.channels.len() >= MAX_CHANNELS_PER_CONNECTION {
            return Ok(SubscribeOutcome::LimitReached);
        }
        // The condition keeps the limit under concurrent subscribes of one connection.
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("connectionId", s(connection_id))
            .update_expression("ADD channels :c")
            .condition_expression("attribute_exists(connectionId) AND (attribute_not_exists(channels) OR size(channels) < :max)")
            .expression_attribute_values(":c", AttributeValue::Ss(vec![channel.to_string()]))
            .expression_attribute_values(":max", AttributeValue::N(MAX_CHANNELS_PER_CONNECTION.to_string()))
            .send()
            .await;
        if let Err(e) = res {
            let conditional = e
                .as_service_error()
                .is_some_and(|se| se.is_conditional_check_failed_exception());
            if conditional {
                return Ok(SubscribeOutcome::LimitReached);
            }
            return Err(self.err("UpdateItem", e));
        }
        let item: Item = HashMap::from([
            (
                "connectionId".into(),
                s(&subscription_key(&conn.tenant_id, channel, connection_id)),
            ),
            ("channel".into(), s(&channel_key(&conn.tenant_id, channel))),
            ("subscriberId".into(), s(connection_id)),
            (
                "expiresAt".into(),
                AttributeValue::N(conn.expires_at.to_string()),
            ),
        ]);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| self.err("PutItem", e))?;
        Ok(SubscribeOutcome::Subscribed)
    }

    /// Removes the subscription; returns whether it existed.
    pub async fn unsubscribe(
        &self,
        tenant_id: &str,
        connection_id: &str,
        channel: &str,
    ) -> Result<bool, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("connectionId", s(connection_id))
            .update_expression("DELETE channels :c")
            .condition_expression("attribute_exists(connectionId)")
            .expression_attribute_values(":c", AttributeValue::Ss(vec![channel.to_string()]))
            .return_values(ReturnValue::UpdatedOld)
            .send()
            .await;
        let existed = match out {
            Ok(o) => matches!(
                o.attributes().and_then(|a| a.get("channels")),
                Some(AttributeValue::Ss(set)) if set.iter().any(|c| c == channel)
            ),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                false
            }
            Err(e) => return Err(self.err("UpdateItem", e)),
        };
        self.delete_key(&subscription_key(tenant_id, channel, connection_id))
            .await?;
        Ok(existed)
    }

    pub(crate) fn connection_from(&self, item: &Item) -> Result<Connection, StoreError> {
        let id = match item.get("connectionId") {
            Some(AttributeValue::S(id)) => id.clone(),
            _ => String::from("?"),
        };
        let malformed = |reason: String| StoreError::Malformed {
            table: self.table.clone(),
            connection_id: id.clone(),
            reason,
        };
        let req = |name: &str| match item.get(name) {
            Some(AttributeValue::S(v)) => Ok(v.clone()),
            _ => Err(malformed(format!("`{name}` is missing or not a string"))),
        };
        let opt = |name: &str| match item.get(name) {
            Some(AttributeValue::S(v)) => Some(v.clone()),
            _ => None,
        };
        let expires_at = match item.get("expiresAt") {
            Some(AttributeValue::N(n)) => n
                .parse::<i64>()
                .map_err(|_| malformed(format!("`expiresAt` `{n}` is not an integer")))?,
            _ => return Err(malformed("`expiresAt` is missing".into())),
        };
        let channels = match item.get("channels") {
            Some(AttributeValue::Ss(set)) => set.clone(),
            _ => Vec::new(),
        };
        let token_exp = match item.get("tokenExp") {
            Some(AttributeValue::N(n)) => n.parse::<i64>().ok(),
            _ => None,
        };
        Ok(Connection {
            connection_id: req("connectionId")?,
            user_id: req("userId")?,
            tenant_id: req("tenantId")?,
            role: req("role")?,
            connected_at: req("connectedAt")?,
            expires_at,
            source_ip: opt("sourceIp"),
            user_agent: opt("userAgent"),
            channels,
            token_exp,
        })
    }
}
