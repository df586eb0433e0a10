//! `$default`: actions, and client mistakes answered with `error` messages.

use crate::common::*;
use realtime_core::store::MAX_CHANNELS_PER_CONNECTION;
use realtime_core::MAX_FRAME_BYTES;
use realtime_message::handler;
use serde_json::{json, Value};

async fn send(env: &TestEnv, id: &str, body: &str) -> Vec<Value> {
    env.sink.clear();
    let res = handler(ws_event("message.json", id, Some(body)), &env.deps).await;
    assert_eq!(
        res.status_code, 200,
        "client messages never fail the invocation"
    );
    env.sink.delivered_to(id)
}

#[tokio::test]
async fn ping_gets_pong_and_mistakes_get_error_messages() {
    let env = env().await;
    seed(
        &env.store,
        "L0SM9cOFvHcCIhw=",
        "user-1",
        "tenant-1",
        "viewer",
    )
    .await;
    let id = "L0SM9cOFvHcCIhw=";

    // The fixture's own body is a ping.
    env.sink.clear();
    handler(ws_event("message.json", id, None), &env.deps).await;
    let got = env.sink.delivered_to(id);
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0]["type"].as_str(), &got[0]["data"]),
        (Some("pong"), &json!({}))
    );

    let too_big = format!(
        r#"{{"action":"ping","pad":"{}"}}"#,
        "x".repeat(MAX_FRAME_BYTES)
    );
    let cases = [
        (r#"{"action":"dance"}"#, "unknown_action"),
        ("{not json", "invalid_json"),
        (r#"{"channel":"x"}"#, "invalid_request"),
        (r#"["action","ping"]"#, "invalid_request"),
        (too_big.as_str(), "payload_too_large"),
        (
            r#"{"action":"subscribe","channel":"bad#name"}"#,
            "invalid_channel",
        ),
        (r#"{"action":"subscribe"}"#, "invalid_request"),
    ];
    for (body, code) in cases {
        let got = send(&env, id, body).await;
        assert_eq!(got.len(), 1, "one answer for {code}");
        assert_eq!(got[0]["type"], "error", "{code}");
        assert_eq!(got[0]["data"]["code"], code);
        assert!(got[0]["data"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
}

#[tokio::test]
async fn subscribe_unsubscribe_and_the_channel_limit() {
    let env = env().await;
    seed(&env.store, "c1", "user-1", "tenant-1", "viewer").await;
    assert!(
        send(&env, "c1", r#"{"action":"subscribe","channel":"metrics"}"#)
            .await
            .is_empty()
    );
    assert_eq!(
        env.store
            .channel_subscribers("metrics")
            .await
            .expect("query"),
        vec!["c1"]
    );
    assert_eq!(
        env.store
            .get("c1")
            .await
            .expect("get")
            .expect("stored")
            .channels,
        vec!["metrics"]
    );
    // Subscribing twice is not an error and does not count twice.
    assert!(
        send(&env, "c1", r#"{"action":"subscribe","channel":"metrics"}"#)
            .await
            .is_empty()
    );

    for i in 1..MAX_CHANNELS_PER_CONNECTION {
        let body = json!({"action": "subscribe", "channel": format!("ch-{i}")}).to_string();
        assert!(
            send(&env, "c1", &body).await.is_empty(),
            "channel {i} accepted"
        );
    }
    let over = send(
        &env,
        "c1",
        r#"{"action":"subscribe","channel":"one-too-many"}"#,
    )
    .await;
    assert_eq!(over[0]["data"]["code"], "too_many_channels");
    assert!(env
        .store
        .channel_subscribers("one-too-many")
        .await
        .expect("query")
        .is_empty());

    assert!(send(
        &env,
        "c1",
        r#"{"action":"unsubscribe","channel":"metrics"}"#
    )
    .await
    .is_empty());
    assert!(env
        .store
        .channel_subscribers("metrics")
        .await
        .expect("query")
        .is_empty());
    let channels = env
        .store
        .get("c1")
        .await
        .expect("get")
        .expect("stored")
        .channels;
    assert_eq!(channels.len(), MAX_CHANNELS_PER_CONNECTION - 1);
    assert!(!channels.contains(&"metrics".to_string()));
}

#[tokio::test]
async fn presence_lists_who_of_my_tenant_is_online() {
    let env = env().await;
    seed(&env.store, "me", "user-1", "tenant-1", "viewer").await;
    seed(&env.store, "me-2", "user-1", "tenant-1", "viewer").await;
    seed(&env.store, "other", "user-2", "tenant-1", "staff").await;
    seed(&env.store, "elsewhere", "user-9", "tenant-2", "admin").await;
    let got = send(&env, "me", r#"{"action":"presence"}"#).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["type"], "presence");
    assert_eq!(
        got[0]["data"],
        json!({"online": [
            {"userId": "user-1", "role": "viewer", "connections": 2},
            {"userId": "user-2", "role": "staff", "connections": 1}
        ]})
    );
}

#[tokio::test]
async fn broadcast_action_is_refused_for_viewers_and_delivered_for_staff() {
    let env = env().await;
    seed(&env.store, "viewer", "user-1", "tenant-1", "viewer").await;
    seed(&env.store, "staff", "user-2", "tenant-1", "staff").await;
    seed(&env.store, "peer", "user-3", "tenant-1", "viewer").await;
    seed(&env.store, "outsider", "user-4", "tenant-2", "viewer").await;
    let body = json!({
        "action": "broadcast",
        "target": {"type": "tenant", "tenantId": "tenant-1"},
        "message": {"type": "notification", "data": {"title": "Kennel 4", "message": "Cleaning done", "severity": "success"}}
    })
    .to_string();

    let refused = send(&env, "viewer", &body).await;
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["data"]["code"], "forbidden");
    assert_eq!(
        env.sink.received().len(),
        1,
        "nothing but the refusal was sent"
    );

    env.sink.clear();
    let res = handler(ws_event("message.json", "staff", Some(&body)), &env.deps).await;
    assert_eq!(
        serde_json::from_str::<Value>(&body_text(&res)).expect("report"),
        json!({"targeted": 3, "delivered": 3, "gone": 0, "failed": 0})
    );
    let mut ids: Vec<String> = env
        .sink
        .received()
        .into_iter()
        .map(|r| r.connection_id)
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        vec!["peer", "staff", "viewer"],
        "tenant-2 is not reached"
    );
    assert_eq!(
        env.sink.delivered_to("peer")[0]["data"]["severity"],
        "success"
    );
}
