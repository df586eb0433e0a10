//! The broadcast function: targets, 410 Gone, throttling, limits, concurrency.

use std::time::Duration;

use crate::common::*;
use realtime_broadcast::handler;
use serde_json::{json, Value};

#[tokio::test]
async fn user_with_three_connections_of_which_one_is_gone() {
    let env = env().await;
    for id in ["u1-a", "u1-b", "u1-gone"] {
        seed(&env.store, id, "user-1", "tenant-1", "viewer").await;
    }
    seed(&env.store, "u2", "user-2", "tenant-1", "viewer").await;
    env.store
        .subscribe("u1-gone", "metrics")
        .await
        .expect("subscribed");
    env.sink.mark_gone("u1-gone");

    let report = handler(fixture("broadcast_direct.json"), &env.deps)
        .await
        .expect("broadcast");
    assert_eq!(
        report,
        json!({"targeted": 3, "delivered": 2, "gone": 1, "failed": 0})
    );
    assert!(
        env.store.get("u1-gone").await.expect("get").is_none(),
        "gone connection deleted"
    );
    assert!(env
        .store
        .channel_subscribers("metrics")
        .await
        .expect("query")
        .is_empty());
    assert!(env.store.get("u1-a").await.expect("get").is_some());
    let got = env.sink.delivered_to("u1-a");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["type"], "upload_progress");
    assert_eq!(got[0]["data"]["uploadId"], "upl-42");
    assert!(got[0]["timestamp"].as_str().is_some());
    assert!(env.sink.delivered_to("u2").is_empty());
}

#[tokio::test]
async fn route_is_role_gated_and_scoped_to_the_callers_tenant() {
    let env = env().await;
    seed(
        &env.store,
        "L0SM9cOFvHcCIhw=",
        "user-1",
        "tenant-1",
        "viewer",
    )
    .await;
    seed(&env.store, "staff-conn", "user-2", "tenant-1", "staff").await;
    seed(&env.store, "t2", "user-3", "tenant-2", "staff").await;

    // The fixture is sent by a viewer.
    let res = handler(fixture("broadcast_route.json"), &env.deps)
        .await
        .expect("route answer");
    assert_eq!(res["statusCode"], 200);
    let got = env.sink.delivered_to("L0SM9cOFvHcCIhw=");
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0]["type"].as_str(), got[0]["data"]["code"].as_str()),
        (Some("error"), Some("forbidden"))
    );
    assert_eq!(env.sink.received().len(), 1);

    env.sink.clear();
    let mut by_staff = fixture("broadcast_route.json");
    by_staff["requestContext"]["connectionId"] = json!("staff-conn");
    let res = handler(by_staff.clone(), &env.deps)
        .await
        .expect("route answer");
    let report: Value = serde_json::from_str(res["body"].as_str().expect("body")).expect("report");
    assert_eq!(
        report,
        json!({"targeted": 2, "delivered": 2, "gone": 0, "failed": 0})
    );

    // Staff may not reach another tenant.
    env.sink.clear();
    let body: Value = serde_json::from_str(by_staff["body"].as_str().expect("body")).expect("json");
    let mut other = body.clone();
    other["target"]["tenantId"] = json!("tenant-2");
    by_staff["body"] = json!(other.to_string());
    handler(by_staff, &env.deps).await.expect("route answer");
    assert!(env.sink.delivered_to("t2").is_empty());
    assert_eq!(
        env.sink.delivered_to("staff-conn")[0]["data"]["code"],
        "forbidden"
    );
}

#[tokio::test]
async fn every_target_kind_resolves_through_its_index() {
    let env = env().await;
    seed(&env.store, "a1", "user-1", "tenant-1", "admin").await;
    seed(&env.store, "s1", "user-2", "tenant-1", "staff").await;
    seed(&env.store, "s2", "user-3", "tenant-1", "staff").await;
    seed(&env.store, "x1", "user-4", "tenant-2", "staff").await;
    env.store
        .subscribe("s1", "kennels")
        .await
        .expect("subscribed");
    env.store
        .subscribe("x1", "kennels")
        .await
        .expect("subscribed");
    let message =
        json!({"type": "notification", "data": {"title": "t", "message": "m", "severity": "info"}});
    let cases = [
        (json!({"type": "connection", "connectionId": "s2"}), 1),
        (json!({"type": "connection", "connectionId": "unknown"}), 0),
        (
            json!({"type": "role", "role": "staff", "tenantId": "tenant-1"}),
            2,
        ),
        (json!({"type": "tenant", "tenantId": "tenant-1"}), 3),
        (json!({"type": "channel", "channel": "kennels"}), 2),
        // Subscription items are not connections.
        (json!({"type": "all"}), 4),
    ];
    for (target, n) in cases {
        let report = handler(
            json!({"target": target.clone(), "message": message.clone()}),
            &env.deps,
        )
        .await
        .expect("broadcast");
        assert_eq!(
            report,
            json!({"targeted": n, "delivered": n, "gone": 0, "failed": 0}),
            "{target}"
        );
    }
}

#[tokio::test]
async fn invalid_and_oversized_messages_are_refused_before_sending() {
    let env = env().await;
    seed(&env.store, "c1", "user-1", "tenant-1", "viewer").await;
    let big = "x".repeat(130 * 1024);
    let err = handler(
        json!({"target": {"type": "user", "userId": "user-1"}, "message": {"type": "notification", "data": {"title": "t", "message": big, "severity": "info"}}}),
        &env.deps,
    )
    .await
    .expect_err("too large");
    assert!(
        err.to_string()
            .contains("131072-byte WebSocket frame limit"),
        "{err}"
    );
    let err = handler(
        json!({"target": {"type": "user", "userId": "user-1"}, "message": {"type": "upload_progress", "data": {"uploadId": "u", "fileName": "f", "progress": 120, "message": "m"}}}),
        &env.deps,
    )
    .await
    .expect_err("invalid payload");
    assert!(err.to_string().contains("progress"), "{err}");
    let err = handler(json!({"target": {"type": "galaxy"}}), &env.deps)
        .await
        .expect_err("bad request");
    assert!(
        err.to_string().starts_with("invalid broadcast request"),
        "{err}"
    );
    assert!(env.sink.received().is_empty());
}

#[tokio::test]
async fn throttling_is_retried_and_one_failing_connection_does_not_stop_the_others() {
    let env = env().await;
    for id in ["ok-1", "ok-2", "throttled", "broken"] {
        seed(&env.store, id, id, "tenant-1", "viewer").await;
    }
    env.sink.throttle("throttled", 2);
    env.sink.mark_failing("broken");
    let message = json!({"type": "notification", "data": {"title": "t", "message": "m", "severity": "warning"}});
    let report = handler(
        json!({"target": {"type": "tenant", "tenantId": "tenant-1"}, "message": message}),
        &env.deps,
    )
    .await
    .expect("broadcast");
    assert_eq!(
        report,
        json!({"targeted": 4, "delivered": 3, "gone": 0, "failed": 1})
    );
    let posts_to_throttled = env
        .sink
        .received()
        .iter()
        .filter(|r| r.connection_id == "throttled")
        .count();
    assert_eq!(posts_to_throttled, 3, "two 429s, then delivered");
    assert!(
        env.store.get("broken").await.expect("get").is_some(),
        "only 410 deletes"
    );
}

#[tokio::test]
async fn no_more_than_the_configured_number_of_posts_are_in_flight() {
    let env = env_with_concurrency(4).await;
    for i in 0..24 {
        seed(
            &env.store,
            &format!("c{i:02}"),
            &format!("user-{i}"),
            "tenant-1",
            "viewer",
        )
        .await;
    }
    env.sink.set_latency(Duration::from_millis(20));
    let message =
        json!({"type": "notification", "data": {"title": "t", "message": "m", "severity": "info"}});
    let report = handler(
        json!({"target": {"type": "tenant", "tenantId": "tenant-1"}, "message": message}),
        &env.deps,
    )
    .await
    .expect("broadcast");
    assert_eq!(report["delivered"], 24);
    let max = env.sink.max_in_flight();
    assert!((2..=4).contains(&max), "max in flight {max}");
}
