//! The JSON Schemas in `schemas/` are generated from the Rust message types; this
//! test fails when they drift (run with `BARKCTL_WRITE_SCHEMAS=1` to rewrite them).

use std::path::PathBuf;

use realtime_core::broadcaster::{BroadcastRequest, OutgoingMessage, Target};
use realtime_core::envelope::{
    BroadcastResult, ErrorPayload, From, MetricsUpdate, Notification, Pong, Presence, Refreshed,
    Resumed, UploadProgress,
};
use schemars::{schema_for, Schema};
use serde_json::json;

fn schemas() -> Vec<(&'static str, Schema)> {
    vec![
        ("server/upload_progress", schema_for!(UploadProgress)),
        ("server/notification", schema_for!(Notification)),
        ("server/error", schema_for!(ErrorPayload)),
        ("server/presence", schema_for!(Presence)),
        ("server/pong", schema_for!(Pong)),
        ("server/METRICS_UPDATE", schema_for!(Vec<MetricsUpdate>)),
        ("server/broadcast_result", schema_for!(BroadcastResult)),
        ("server/refreshed", schema_for!(Refreshed)),
        ("server/resumed", schema_for!(Resumed)),
        ("server/from", schema_for!(From)),
        ("client/broadcast", schema_for!(BroadcastRequest)),
        ("client/target", schema_for!(Target)),
        ("client/message", schema_for!(OutgoingMessage)),
    ]
}

/// The client actions routed by `action` (no Rust type of their own: the handlers
/// read them field by field).
fn client_actions() -> Vec<(&'static str, serde_json::Value)> {
    let action = |name: &str, props: serde_json::Value, required: &[&str]| {
        let mut properties = json!({"action": {"const": name}});
        if let (Some(p), Some(extra)) = (properties.as_object_mut(), props.as_object()) {
            p.extend(extra.clone());
        }
        let mut req = vec!["action"];
        req.extend_from_slice(required);
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": name,
            "type": "object",
            "properties": properties,
            "required": req,
        })
    };
    let channel = json!({"channel": {"type": "string", "pattern": "^[A-Za-z0-9_.:/-]{1,128}$"}});
    vec![
        ("client/ping", action("ping", json!({}), &[])),
        (
            "client/subscribe",
            action("subscribe", channel.clone(), &["channel"]),
        ),
        (
            "client/unsubscribe",
            action("unsubscribe", channel, &["channel"]),
        ),
        ("client/presence", action("presence", json!({}), &[])),
        (
            "client/resume",
            action(
                "resume",
                json!({"since": {"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string"}]}}),
                &["since"],
            ),
        ),
        (
            "client/refresh",
            action("refresh", json!({"token": {"type": "string"}}), &["token"]),
        ),
    ]
}

#[test]
fn committed_schemas_match_the_message_types() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/realtime");
    let write = std::env::var_os("BARKCTL_WRITE_SCHEMAS").is_some();
    let mut all: Vec<(&str, serde_json::Value)> = schemas()
        .into_iter()
        .map(|(n, s)| (n, serde_json::to_value(s).expect("schema is JSON")))
        .collect();
    all.extend(client_actions());
    let mut stale = Vec::new();
    for (name, schema) in all {
        let path = dir.join(format!("{name}.schema.json"));
        let text = serde_json::to_string_pretty(&schema).expect("encodes") + "\n";
        if write {
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, &text).expect("write");
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "schemas out of date (rerun with BARKCTL_WRITE_SCHEMAS=1): {stale:?}"
    );
}
