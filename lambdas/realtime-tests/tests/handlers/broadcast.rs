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
        counts(&report),
        json!({"targeted": 3, "delivered": 2, "gone": 1, "failed": 0})
    );
    assert!(report["id"].as_u64().is_some(), "{report}");
    assert!(
        env.store.get("u1-gone").await.expect("get").is_none(),
        "gone connection deleted"
    );
    assert!(env
        .store
        .channel_subscribers("tenant-1", "metrics")
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
        counts(&report),
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
    let t1 = json!({"tenantId": "tenant-1"});
    let every = json!({"allTenants": true});
    let cases = [
        (json!({"type": "connection", "connectionId": "s2"}), &t1, 1),
        (json!({"type": "connection", "connectionId": "x1"}), &t1, 0),
        (
            json!({"type": "connection", "connectionId": "unknown"}),
            &t1,
            0,
        ),
        (
            json!({"type": "role", "role": "staff", "tenantId": "tenant-1"}),
            &t1,
            2,
        ),
        (json!({"type": "tenant", "tenantId": "tenant-1"}), &t1, 3),
        // Channels are per tenant: x1's `kennels` is another channel.
        (json!({"type": "channel", "channel": "kennels"}), &t1, 1),
        (json!({"type": "all"}), &t1, 3),
        // Subscription items are not connections.
        (json!({"type": "all"}), &every, 4),
        (json!({"type": "user", "userId": "user-4"}), &every, 1),
    ];
    for (target, scope, n) in cases {
        let mut request = json!({"target": target.clone(), "message": message.clone()});
        if let (Some(r), Some(s)) = (request.as_object_mut(), scope.as_object()) {
            r.extend(s.clone());
        }
        let report = handler(request, &env.deps).await.expect("broadcast");
        assert_eq!(
            counts(&report),
            json!({"targeted": n, "delivered": n, "gone": 0, "failed": 0}),
            "{target} {scope}"
        );
    }
    // A service names the tenant or says all; a channel needs a tenant.
    for (request, why) in [
        (
            json!({"target": {"type": "user", "userId": "user-1"}, "message": message.clone()}),
            "names its tenant",
        ),
        (
            json!({"target": {"type": "channel", "channel": "kennels"}, "allTenants": true, "message": message.clone()}),
            "channels belong to a tenant",
        ),
        (
            json!({"target": {"type": "tenant", "tenantId": "tenant-2"}, "tenantId": "tenant-1", "message": message.clone()}),
            "outside",
        ),
    ] {
        let err = handler(request, &env.deps).await.expect_err(why);
        assert!(err.to_string().contains(why), "{err}");
    }
}

#[tokio::test]
async fn client_broadcasts_carry_from_stay_in_the_tenant_and_cannot_use_server_types() {
    let env = env().await;
    seed(&env.store, "staff-conn", "user-2", "tenant-1", "staff").await;
    seed(&env.store, "peer", "user-3", "tenant-1", "viewer").await;
    seed(&env.store, "outsider", "user-4", "tenant-2", "viewer").await;
    for id in ["peer", "outsider"] {
        env.store
            .subscribe(id, "kennels")
            .await
            .expect("subscribed");
    }
    let route = |body: Value| {
        let mut v = fixture("broadcast_route.json");
        v["requestContext"]["connectionId"] = json!("staff-conn");
        v["body"] = json!(body.to_string());
        v
    };
    let note =
        json!({"type": "notification", "data": {"title": "t", "message": "m", "severity": "info"}});
    handler(
        route(json!({"action": "broadcast", "target": {"type": "channel", "channel": "kennels"}, "message": note})),
        &env.deps,
    )
    .await
    .expect("route answer");
    let got = env.sink.delivered_to("peer");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["from"], json!({"userId": "user-2", "role": "staff"}));
    assert!(got[0]["id"].as_u64().is_some());
    assert!(
        env.sink.delivered_to("outsider").is_empty(),
        "tenant-2's `kennels` subscriber is not reached"
    );
    let result = env.sink.delivered_to("staff-conn");
    assert_eq!(result[0]["type"], "broadcast_result");
    assert_eq!(result[0]["data"]["delivered"], 1);

    for kind in [
        "presence",
        "error",
        "pong",
        "METRICS_UPDATE",
        "broadcast_result",
    ] {
        env.sink.clear();
        let spoof = json!({"action": "broadcast", "target": {"type": "tenant", "tenantId": "tenant-1"},
            "message": {"type": kind, "data": {"userId": "user-1", "status": "offline"}}});
        handler(route(spoof), &env.deps)
            .await
            .expect("route answer");
        assert!(env.sink.delivered_to("peer").is_empty(), "{kind} not sent");
        assert_eq!(
            env.sink.delivered_to("staff-conn")[0]["data"]["code"],
            "reserved_type",
            "{kind}"
        );
    }
    // `from` cannot be forged: the request has no such field.
    env.sink.clear();
    let forged = json!({"action": "broadcast", "target": {"type": "tenant", "tenantId": "tenant-1"},
        "message": note, "from": {"userId": "admin", "role": "admin"}});
    handler(route(forged), &env.deps)
        .await
        .expect("route answer");
    assert!(env.sink.delivered_to("peer").is_empty());
    assert_eq!(
        env.sink.delivered_to("staff-conn")[0]["data"]["code"],
        "invalid_request"
    );
}

#[tokio::test]
async fn invalid_and_oversized_messages_are_refused_before_sending() {
    let env = env().await;
    seed(&env.store, "c1", "user-1", "tenant-1", "viewer").await;
    let big = "x".repeat(130 * 1024);
    let err = handler(
        json!({"target": {"type": "user", "userId": "user-1"}, "tenantId": "tenant-1", "message": {"type": "notification", "data": {"title": "t", "message": big, "severity": "info"}}}),
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
        json!({"target": {"type": "user", "userId": "user-1"}, "tenantId": "tenant-1", "message": {"type": "upload_progress", "data": {"uploadId": "u", "fileName": "f", "progress": 120, "message": "m"}}}),
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
        counts(&report),
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
