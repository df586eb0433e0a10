//! Message history, so a client that reconnects gets what it missed.
//!
//! Every message that goes through a broadcast gets an `id` from one counter per stage
//! (the `#seq` item of the history table, `ADD`ed atomically), so ids increase across
//! all streams and a client needs to remember one number. Messages to a user and to a
//! channel are kept, one item per message, in the stream `user#{tenantId}#{userId}` or
//! `chan#{tenantId}#{channel}` (key `stream` + `id`), with a TTL. `resume` (or
//! `?since=` on connect) reads the caller's user stream and the streams of its
//! channels after `since`, merges them by id, and replays the frames as they were sent.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};

use crate::store::{Connection, StoreError};

/// The most messages one resume replays (the oldest first); `resumed.lastId` tells the
/// client where to continue.
pub const MAX_REPLAY: usize = 1000;

const SEQ_STREAM: &str = "#seq";

/// Where a replay starts: after a message id, or after a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    Id(u64),
    Time(DateTime<Utc>),
}

impl Since {
    /// A message id (digits) or an ISO-8601 / RFC 3339 time.
    pub fn parse(value: &str) -> Result<Self, String> {
        let v = value.trim();
        if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
            return v
                .parse::<u64>()
                .map(Since::Id)
                .map_err(|e| format!("`since` id `{v}`: {e}"));
        }
        DateTime::parse_from_rfc3339(v)
            .map(|t| Since::Time(t.with_timezone(&Utc)))
            .map_err(|_| format!("`since` must be a message id or an RFC 3339 time, not `{value}`"))
    }

    /// From a JSON value: a number is an id, a string an id or a time.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, String> {
        match value {
            serde_json::Value::Number(n) => n
                .as_u64()
                .map(Since::Id)
                .ok_or_else(|| format!("`since` id `{n}` is not a non-negative integer")),
            serde_json::Value::String(s) => Self::parse(s),
            _ => Err("`since` must be a message id or an RFC 3339 time".into()),
        }
    }
}

pub fn user_stream(tenant_id: &str, user_id: &str) -> String {
    format!("user#{tenant_id}#{user_id}")
}

pub fn channel_stream(tenant_id: &str, channel: &str) -> String {
    format!("chan#{tenant_id}#{channel}")
}

/// The streams a connection may replay: its user's and its channels'.
pub fn streams_of(conn: &Connection) -> Vec<String> {
    let mut streams = vec![user_stream(&conn.tenant_id, &conn.user_id)];
    streams.extend(
        conn.channels
            .iter()
            .map(|c| channel_stream(&conn.tenant_id, c)),
    );
    streams
}

/// One kept message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub id: u64,
    pub frame: String,
}

#[derive(Debug, Clone)]
pub struct HistoryStore {
    client: Client,
    table: String,
    ttl: Duration,
}

impl HistoryStore {
    pub fn new(client: Client, table: impl Into<String>, ttl: Duration) -> Self {
        Self {
            client,
            table: table.into(),
            ttl,
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn err<E: std::error::Error + 'static>(&self, operation: &'static str, e: E) -> StoreError {
        StoreError::Dynamo {
            operation,
            table: self.table.clone(),
            message: DisplayErrorContext(&e).to_string(),
        }
    }

    /// The next message id of the stage.
    pub async fn next_id(&self) -> Result<u64, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("stream", AttributeValue::S(SEQ_STREAM.into()))
            .key("id", AttributeValue::N("0".into()))
            .update_expression("ADD seq :one")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| self.err("UpdateItem", e))?;
        match out.attributes().and_then(|a| a.get("seq")) {
            Some(AttributeValue::N(n)) => n.parse::<u64>().map_err(|_| StoreError::Malformed {
                table: self.table.clone(),
                connection_id: SEQ_STREAM.into(),
                reason: format!("`seq` `{n}` is not an integer"),
            }),
            _ => Err(StoreError::Malformed {
                table: self.table.clone(),
                connection_id: SEQ_STREAM.into(),
                reason: "UpdateItem returned no `seq`".into(),
            }),
        }
    }

    /// Keeps `frame` (the message as sent) in `stream`.
    pub async fn record(
        &self,
        stream: &str,
        id: u64,
        at: DateTime<Utc>,
        frame: &[u8],
    ) -> Result<(), StoreError> {
        let expires = at.timestamp() + i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX / 2);
        self.client
            .put_item()
            .table_name(&self.table)
            .item("stream", AttributeValue::S(stream.into()))
            .item("id", AttributeValue::N(id.to_string()))
            .item("ts", AttributeValue::N(at.timestamp_millis().to_string()))
            .item(
                "frame",
                AttributeValue::S(String::from_utf8_lossy(frame).into_owned()),
            )
            .item("expiresAt", AttributeValue::N(expires.to_string()))
            .send()
            .await
            .map_err(|e| self.err("PutItem", e))?;
        Ok(())
    }

    /// The kept messages of `streams` after `since`, oldest first, at most
    /// [`MAX_REPLAY`]. Items past their TTL that DynamoDB has not deleted yet are
    /// left out.
    pub async fn since(&self, streams: &[String], since: Since) -> Result<Vec<Kept>, StoreError> {
        let now = Utc::now().timestamp();
        let mut merged: BTreeMap<u64, String> = BTreeMap::new();
        for stream in streams {
            let mut start = None;
            loop {
                let mut q = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .expression_attribute_values(":s", AttributeValue::S(stream.clone()))
                    .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
                    .set_exclusive_start_key(start.take())
                    .consistent_read(true);
                q = match since {
                    Since::Id(id) => q
                        .key_condition_expression("#s = :s AND #i > :id")
                        .expression_attribute_names("#i", "id")
                        .expression_attribute_values(":id", AttributeValue::N(id.to_string()))
                        .filter_expression("expiresAt > :now"),
                    Since::Time(t) => q
                        .key_condition_expression("#s = :s")
                        .filter_expression("ts > :t AND expiresAt > :now")
                        .expression_attribute_values(
                            ":t",
                            AttributeValue::N(t.timestamp_millis().to_string()),
                        ),
                };
                q = q.expression_attribute_names("#s", "stream");
                let out = q.send().await.map_err(|e| self.err("Query", e))?;
                for item in out.items() {
                    let id = match item.get("id") {
                        Some(AttributeValue::N(n)) => n.parse::<u64>().ok(),
                        _ => None,
                    };
                    let frame = match item.get("frame") {
                        Some(AttributeValue::S(f)) => Some(f.clone()),
                        _ => None,
                    };
                    if let (Some(id), Some(frame)) = (id, frame) {
                        merged.insert(id, frame);
                    }
                }
                match out.last_evaluated_key() {
                    Some(k) if !k.is_empty() => start = Some(k.clone()),
                    _ => break,
                }
            }
        }
        Ok(merged
            .into_iter()
            .take(MAX_REPLAY)
            .map(|(id, frame)| Kept { id, frame })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn since_is_an_id_or_a_time() {
        assert_eq!(Since::parse("42"), Ok(Since::Id(42)));
        assert!(matches!(
            Since::parse("2026-12-02T10:00:00Z"),
            Ok(Since::Time(_))
        ));
        assert!(Since::parse("yesterday").is_err());
        assert!(Since::parse("-3").is_err());
        assert_eq!(Since::from_json(&json!(7)), Ok(Since::Id(7)));
        assert!(Since::from_json(&json!(-7)).is_err());
        assert!(Since::from_json(&json!(null)).is_err());
    }

    #[test]
    fn a_connection_replays_its_user_and_its_channels_inside_its_tenant() {
        let conn = Connection {
            connection_id: "c".into(),
            user_id: "u1".into(),
            tenant_id: "t1".into(),
            role: "viewer".into(),
            connected_at: String::new(),
            expires_at: 0,
            source_ip: None,
            user_agent: None,
            channels: vec!["metrics".into()],
            token_exp: None,
        };
        assert_eq!(
            streams_of(&conn),
            vec!["user#t1#u1".to_string(), "chan#t1#metrics".to_string()]
        );
    }
}
