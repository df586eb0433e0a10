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
            .channel_subscribers("tenant-1", "metrics")
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
        .channel_subscribers("tenant-1", "one-too-many")
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
        .channel_subscribers("tenant-1", "metrics")
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
async fn broadcast_is_not_a_default_action() {
    // API Gateway routes `broadcast` to its own route; a `$default` broadcast arm
    // would be code nothing reaches.
    let env = env().await;
    seed(&env.store, "staff", "user-2", "tenant-1", "staff").await;
    let body = json!({"action": "broadcast", "target": {"type": "tenant", "tenantId": "tenant-1"}, "message": {}}).to_string();
    let got = send(&env, "staff", &body).await;
    assert_eq!(got[0]["data"]["code"], "unknown_action");
}

#[tokio::test]
async fn over_the_rate_a_client_gets_rate_limited_and_then_is_closed() {
    let env = env_with(&[
        ("MESSAGE_RATE_PER_SECOND", "2"),
        ("MESSAGE_BURST", "3"),
        ("RATE_LIMIT_STRIKES", "4"),
    ])
    .await;
    seed(&env.store, "fast", "user-1", "tenant-1", "viewer").await;
    let mut codes = Vec::new();
    for _ in 0..10 {
        let got = send(&env, "fast", r#"{"action":"ping"}"#).await;
        codes.push(
            got[0]["data"]["code"]
                .as_str()
                .unwrap_or("pong")
                .to_string(),
        );
        if !env.sink.closed().is_empty() {
            break;
        }
    }
    assert_eq!(&codes[..3], ["pong", "pong", "pong"], "{codes:?}");
    assert!(codes[3..].iter().all(|c| c == "RATE_LIMITED"), "{codes:?}");
    assert_eq!(codes.len(), 7, "the 4th strike closes: {codes:?}");
    assert_eq!(env.sink.closed(), vec!["fast"]);
}

#[tokio::test]
async fn resume_replays_the_users_and_channels_messages_after_since_in_order() {
    let env = env().await;
    seed(&env.store, "me", "user-1", "tenant-1", "viewer").await;
    env.store
        .subscribe("me", "kennels")
        .await
        .expect("subscribed");
    let note = |n: usize| json!({"type": "notification", "data": {"title": format!("n{n}"), "message": "m", "severity": "info"}});
    let mut ids = Vec::new();
    for n in 0..6 {
        let target = if n % 2 == 0 {
            json!({"type": "user", "userId": "user-1"})
        } else {
            json!({"type": "channel", "channel": "kennels"})
        };
        let report = realtime_broadcast::handler(
            json!({"target": target, "tenantId": "tenant-1", "message": note(n)}),
            &env.deps,
        )
        .await
        .expect("broadcast");
        ids.push(report["id"].as_u64().expect("id"));
    }
    // Not the caller's: another tenant's channel of the same name, another user.
    for request in [
        json!({"target": {"type": "channel", "channel": "kennels"}, "tenantId": "tenant-2", "message": note(90)}),
        json!({"target": {"type": "user", "userId": "user-2"}, "tenantId": "tenant-1", "message": note(91)}),
    ] {
        realtime_broadcast::handler(request, &env.deps)
            .await
            .expect("broadcast");
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    let since = ids[0];
    let got = send(
        &env,
        "me",
        &json!({"action": "resume", "since": since}).to_string(),
    )
    .await;
    let titles: Vec<&str> = got
        .iter()
        .filter_map(|m| m["data"]["title"].as_str())
        .collect();
    assert_eq!(titles, ["n1", "n2", "n3", "n4", "n5"]);
    let last = got.last().expect("resumed");
    assert_eq!(last["type"], "resumed");
    assert_eq!(last["data"], json!({"count": 5, "lastId": ids[5]}));

    let bad = send(&env, "me", r#"{"action":"resume","since":"yesterday"}"#).await;
    assert_eq!(bad[0]["data"]["code"], "invalid_request");
}

#[tokio::test]
async fn an_expired_connection_is_refused_and_closed() {
    let env = env().await;
    env.store
        .put(&realtime_core::Connection {
            connection_id: "old".into(),
            user_id: "user-1".into(),
            tenant_id: "tenant-1".into(),
            role: "viewer".into(),
            connected_at: "2026-11-21T12:00:00Z".into(),
            expires_at: chrono::Utc::now().timestamp() - 1,
            source_ip: None,
            user_agent: None,
            channels: vec![],
            token_exp: None,
        })
        .await
        .expect("stored");
    let got = send(&env, "old", r#"{"action":"ping"}"#).await;
    assert_eq!(got[0]["data"]["code"], "token_expired");
    assert_eq!(env.sink.closed(), vec!["old"]);
}
