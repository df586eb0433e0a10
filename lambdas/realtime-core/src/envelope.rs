//! The message envelope `{type, data, timestamp, id?, from?}` and its typed payloads.
//!
//! Every message a client receives is built here, so a payload is validated once
//! before it is sent and its encoded size is checked against the WebSocket frame limit.
//! `METRICS_UPDATE` keeps the dashboard's established wire shape
//! `{type, updates, timestamp}` (its updates at the top level, not under `data`).
//!
//! Some types are the server's own ([`RESERVED_TYPES`]): a client broadcast may not
//! send them, so a client can trust that a `presence` or `error` came from the
//! server. A client broadcast carries `from` (the sender's user id and role, filled in
//! by the server, never by the client); a message that went through a broadcast
//! carries `id`, increasing across the stage, which `resume` and `?since=` use.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// API Gateway's maximum WebSocket frame (and PostToConnection payload): 128 KB.
pub const MAX_FRAME_BYTES: usize = 128 * 1024;

/// Message types only the server sends.
pub const RESERVED_TYPES: [&str; 7] = [
    "presence",
    "error",
    "pong",
    "METRICS_UPDATE",
    "broadcast_result",
    "refreshed",
    "resumed",
];

pub fn is_reserved(kind: &str) -> bool {
    RESERVED_TYPES.contains(&kind)
}

/// A link a client may follow: `https://...` with a host, or a path on the app's own
/// origin (`/x`, never the scheme-relative `//host` or a backslash trick).
pub fn is_safe_url(url: &str) -> bool {
    if let Some(rest) = url.strip_prefix("https://") {
        return !rest.is_empty() && !rest.starts_with('/') && !url.contains('\\');
    }
    url.starts_with('/') && !url.starts_with("//") && !url.contains('\\')
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EnvelopeError {
    #[error("unknown message type `{0}`")]
    UnknownType(String),
    #[error("invalid `{kind}` payload: {reason}")]
    InvalidPayload { kind: &'static str, reason: String },
    #[error("message is {size} bytes, over the {MAX_FRAME_BYTES}-byte WebSocket frame limit")]
    TooLarge { size: usize },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UploadProgress {
    pub upload_id: String,
    pub file_name: String,
    pub progress: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_row: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_rows: Option<u64>,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Success,
    Warning,
    Error,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Notification {
    pub title: String,
    pub message: String,
    pub severity: Severity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ErrorPayload {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

impl ErrorPayload {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_string(),
            message: message.into(),
            details: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum PresenceStatus {
    Online,
    Offline,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OnlineUser {
    pub user_id: String,
    pub role: String,
    pub connections: u32,
}

/// Either one user's change (`{userId, status}`) or the answer to a presence query
/// (`{online: [...]}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum Presence {
    Change {
        #[serde(rename = "userId")]
        user_id: String,
        status: PresenceStatus,
    },
    Online {
        online: Vec<OnlineUser>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Pong {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricsUpdate {
    /// INSERT, MODIFY or REMOVE.
    pub event_type: String,
    /// Epoch milliseconds of the stream record.
    pub timestamp: i64,
    pub data: Value,
}

/// What the caller of a client broadcast gets back: the delivery counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct BroadcastResult {
    pub targeted: usize,
    pub delivered: usize,
    pub gone: usize,
    pub failed: usize,
    /// The broadcast message's `id`, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
}

/// The answer to `refresh`: the connection now ends at `expiresAt` (epoch seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Refreshed {
    pub expires_at: i64,
}

/// Sent after the messages a `resume` (or `?since=`) replayed: how many, and the
/// `id` of the last one (the next `since`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resumed {
    pub count: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_id: Option<u64>,
}

/// Who sent a client broadcast; filled in by the server from the stored connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct From {
    pub user_id: String,
    pub role: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    UploadProgress(UploadProgress),
    Notification(Notification),
    Error(ErrorPayload),
    Presence(Presence),
    Pong(Pong),
    MetricsUpdate(Vec<MetricsUpdate>),
    BroadcastResult(BroadcastResult),
    Refreshed(Refreshed),
    Resumed(Resumed),
}

impl Payload {
    pub fn type_name(&self) -> &'static str {
        match self {
            Payload::UploadProgress(_) => "upload_progress",
            Payload::Notification(_) => "notification",
            Payload::Error(_) => "error",
            Payload::Presence(_) => "presence",
            Payload::Pong(_) => "pong",
            Payload::MetricsUpdate(_) => "METRICS_UPDATE",
            Payload::BroadcastResult(_) => "broadcast_result",
            Payload::Refreshed(_) => "refreshed",
            Payload::Resumed(_) => "resumed",
        }
    }

    /// Parses `data` as the payload of message type `kind` (what a broadcast request
    /// carries) and validates it.
    pub fn parse(kind: &str, data: Value) -> Result<Self, EnvelopeError> {
        fn de<T: serde::de::DeserializeOwned>(
            kind: &'static str,
            data: Value,
        ) -> Result<T, EnvelopeError> {
            serde_json::from_value(data).map_err(|e| EnvelopeError::InvalidPayload {
                kind,
                reason: e.to_string(),
            })
        }
        let payload = match kind {
            "upload_progress" => Payload::UploadProgress(de("upload_progress", data)?),
            "notification" => Payload::Notification(de("notification", data)?),
            "error" => Payload::Error(de("error", data)?),
            "presence" => Payload::Presence(de("presence", data)?),
            "pong" => Payload::Pong(de("pong", data)?),
            "METRICS_UPDATE" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Updates {
                    updates: Vec<MetricsUpdate>,
                }
                Payload::MetricsUpdate(de::<Updates>("METRICS_UPDATE", data)?.updates)
            }
            "broadcast_result" => Payload::BroadcastResult(de("broadcast_result", data)?),
            "refreshed" => Payload::Refreshed(de("refreshed", data)?),
            "resumed" => Payload::Resumed(de("resumed", data)?),
            other => return Err(EnvelopeError::UnknownType(other.to_string())),
        };
        payload.validate()?;
        Ok(payload)
    }

    pub fn validate(&self) -> Result<(), EnvelopeError> {
        let kind = self.type_name();
        let bad = |reason: &str| {
            Err(EnvelopeError::InvalidPayload {
                kind,
                reason: reason.to_string(),
            })
        };
        match self {
            Payload::UploadProgress(p) => {
                if p.upload_id.trim().is_empty() {
                    return bad("`uploadId` is empty");
                }
                if p.file_name.trim().is_empty() {
                    return bad("`fileName` is empty");
                }
                if !(0.0..=100.0).contains(&p.progress) {
                    return bad("`progress` must be between 0 and 100");
                }
                if let (Some(cur), Some(total)) = (p.current_row, p.total_rows) {
                    if cur > total {
                        return bad("`currentRow` exceeds `totalRows`");
                    }
                }
            }
            Payload::Notification(n) => {
                if n.title.trim().is_empty() {
                    return bad("`title` is empty");
                }
                if let Some(url) = &n.action_url {
                    // Relative app links or https only: a notification must not carry
                    // a `javascript:`, plain-http or scheme-relative (`//host`) link.
                    if !is_safe_url(url) {
                        return bad("`actionUrl` must be a relative path or an https URL");
                    }
                }
            }
            Payload::Error(e) => {
                if e.code.trim().is_empty() {
                    return bad("`code` is empty");
                }
            }
            Payload::Presence(Presence::Change { user_id, .. }) => {
                if user_id.trim().is_empty() {
                    return bad("`userId` is empty");
                }
            }
            Payload::Presence(Presence::Online { .. })
            | Payload::Pong(_)
            | Payload::BroadcastResult(_)
            | Payload::Refreshed(_)
            | Payload::Resumed(_) => {}
            Payload::MetricsUpdate(updates) => {
                if let Some(u) = updates
                    .iter()
                    .find(|u| !matches!(u.event_type.as_str(), "INSERT" | "MODIFY" | "REMOVE"))
                {
                    return Err(EnvelopeError::InvalidPayload {
                        kind,
                        reason: format!("unknown `eventType` `{}`", u.event_type),
                    });
                }
            }
        }
        Ok(())
    }
}

/// A validated message, ready to encode.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    payload: Payload,
    timestamp: DateTime<Utc>,
    id: Option<u64>,
    from: Option<From>,
}

impl Envelope {
    pub fn new(payload: Payload) -> Result<Self, EnvelopeError> {
        Self::at(payload, Utc::now())
    }

    pub fn at(payload: Payload, timestamp: DateTime<Utc>) -> Result<Self, EnvelopeError> {
        payload.validate()?;
        Ok(Self {
            payload,
            timestamp,
            id: None,
            from: None,
        })
    }

    pub fn error(code: &str, message: impl Into<String>) -> Self {
        Self {
            payload: Payload::Error(ErrorPayload::new(code, message)),
            timestamp: Utc::now(),
            id: None,
            from: None,
        }
    }

    pub fn payload(&self) -> &Payload {
        &self.payload
    }

    pub fn id(&self) -> Option<u64> {
        self.id
    }

    pub fn timestamp(&self) -> DateTime<Utc> {
        self.timestamp
    }

    pub fn with_id(mut self, id: u64) -> Self {
        self.id = Some(id);
        self
    }

    pub fn with_from(mut self, from: From) -> Self {
        self.from = Some(from);
        self
    }

    pub fn to_json(&self) -> Value {
        let ts = self.timestamp.to_rfc3339_opts(SecondsFormat::Millis, true);
        let kind = self.payload.type_name();
        // Payload structs serialize infallibly (no maps with non-string keys).
        let data = match &self.payload {
            Payload::UploadProgress(p) => serde_json::to_value(p),
            Payload::Notification(p) => serde_json::to_value(p),
            Payload::Error(p) => serde_json::to_value(p),
            Payload::Presence(p) => serde_json::to_value(p),
            Payload::Pong(p) => serde_json::to_value(p),
            Payload::BroadcastResult(p) => serde_json::to_value(p),
            Payload::Refreshed(p) => serde_json::to_value(p),
            Payload::Resumed(p) => serde_json::to_value(p),
            Payload::MetricsUpdate(updates) => serde_json::to_value(updates),
        }
        .unwrap_or(Value::Null);
        let mut v = if matches!(self.payload, Payload::MetricsUpdate(_)) {
            json!({"type": kind, "updates": data, "timestamp": ts})
        } else {
            json!({"type": kind, "data": data, "timestamp": ts})
        };
        if let Some(id) = self.id {
            v["id"] = json!(id);
        }
        if let Some(from) = &self.from {
            v["from"] = serde_json::to_value(from).unwrap_or(Value::Null);
        }
        v
    }

    /// The frame to send, refused when it would exceed the WebSocket limit.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EnvelopeError> {
        let bytes = self.to_json().to_string().into_bytes();
        if bytes.len() > MAX_FRAME_BYTES {
            return Err(EnvelopeError::TooLarge { size: bytes.len() });
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn fixed() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0)
            .single()
            .expect("valid date")
    }

    #[test]
    fn upload_progress_encodes_as_type_data_timestamp() {
        let p = Payload::parse(
            "upload_progress",
            json!({"uploadId": "u1", "fileName": "pets.csv", "progress": 40, "currentRow": 40, "totalRows": 100, "message": "importing"}),
        )
        .expect("valid");
        let env = Envelope::at(p, fixed()).expect("valid");
        assert_eq!(
            env.to_json(),
            json!({"type": "upload_progress", "data": {"uploadId": "u1", "fileName": "pets.csv", "progress": 40.0, "currentRow": 40, "totalRows": 100, "message": "importing"}, "timestamp": "2026-11-21T12:00:00.000Z"})
        );
    }

    #[test]
    fn invalid_payloads_are_rejected_before_sending() {
        let cases = [
            (
                "upload_progress",
                json!({"uploadId": "u", "fileName": "f", "progress": 101, "message": ""}),
            ),
            (
                "upload_progress",
                json!({"uploadId": "u", "fileName": "f", "progress": 5}),
            ),
            (
                "notification",
                json!({"title": "t", "message": "m", "severity": "fatal"}),
            ),
            (
                "notification",
                json!({"title": "t", "message": "m", "severity": "info", "actionUrl": "javascript:alert(1)"}),
            ),
            ("error", json!({"code": "", "message": "m"})),
            ("presence", json!({"userId": "u", "status": "away"})),
        ];
        for (kind, data) in cases {
            assert!(
                matches!(
                    Payload::parse(kind, data.clone()),
                    Err(EnvelopeError::InvalidPayload { .. })
                ),
                "{kind} {data} should be invalid"
            );
        }
        assert_eq!(
            Payload::parse("shout", json!({})),
            Err(EnvelopeError::UnknownType("shout".into()))
        );
    }

    #[test]
    fn only_https_and_same_origin_paths_are_links() {
        for ok in ["/bookings/1", "https://app.example/x", "/"] {
            assert!(is_safe_url(ok), "{ok}");
        }
        for bad in [
            "//evil.example",
            "//evil.example/x",
            "/\\evil.example",
            "http://app.example",
            "https://",
            "https:///x",
            "javascript:alert(1)",
            "evil.example",
        ] {
            assert!(!is_safe_url(bad), "{bad}");
            let n = json!({"title": "t", "message": "m", "severity": "info", "actionUrl": bad});
            assert!(Payload::parse("notification", n).is_err(), "{bad}");
        }
    }

    #[test]
    fn id_and_from_travel_in_the_envelope() {
        let env = Envelope::at(
            Payload::parse(
                "notification",
                json!({"title": "t", "message": "m", "severity": "info"}),
            )
            .expect("valid"),
            fixed(),
        )
        .expect("valid")
        .with_id(42)
        .with_from(From {
            user_id: "u1".into(),
            role: "staff".into(),
        });
        let v = env.to_json();
        assert_eq!(v["id"], 42);
        assert_eq!(v["from"], json!({"userId": "u1", "role": "staff"}));
        for kind in RESERVED_TYPES {
            assert!(is_reserved(kind));
        }
        assert!(!is_reserved("notification"));
    }

    #[test]
    fn metrics_update_keeps_updates_at_the_top_level() {
        let env = Envelope::at(
            Payload::MetricsUpdate(vec![MetricsUpdate {
                event_type: "INSERT".into(),
                timestamp: 1_699_123_456_000,
                data: json!({"entity_id": "stream-001"}),
            }]),
            fixed(),
        )
        .expect("valid");
        let v = env.to_json();
        assert_eq!(v["type"], "METRICS_UPDATE");
        assert_eq!(v["updates"][0]["eventType"], "INSERT");
        assert!(v.get("data").is_none());
    }

    #[test]
    fn oversized_message_is_refused_with_its_size() {
        let big = "x".repeat(MAX_FRAME_BYTES);
        let env = Envelope::new(Payload::Error(ErrorPayload::new("big", big))).expect("valid");
        match env.to_bytes() {
            Err(EnvelopeError::TooLarge { size }) => assert!(size > MAX_FRAME_BYTES),
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }
}
