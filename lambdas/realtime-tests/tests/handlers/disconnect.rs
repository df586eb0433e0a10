//! `$disconnect`: idempotent delete and the offline announcement.

use crate::common::*;
use realtime_disconnect::handler;
use serde_json::json;

#[tokio::test]
async fn disconnect_of_an_unknown_id_succeeds_and_sends_nothing() {
    let env = env().await;
    let res = handler(
        ws_event("disconnect.json", "never-connected=", None),
        &env.deps,
    )
    .await;
    assert_eq!(res.status_code, 200);
    assert!(env.sink.received().is_empty());
}

#[tokio::test]
async fn last_connection_of_a_user_announces_offline_to_the_rest_of_the_tenant_only() {
    let env = env().await;
    seed(&env.store, "a", "user-1", "tenant-1", "staff").await;
    seed(&env.store, "b", "user-1", "tenant-1", "staff").await;
    seed(&env.store, "c", "user-2", "tenant-1", "viewer").await;
    seed(&env.store, "d", "user-3", "tenant-2", "viewer").await;
    env.store
        .subscribe("a", "kennels")
        .await
        .expect("subscribed");

    // user-1 still has `b`: nobody hears about it.
    assert_eq!(
        handler(ws_event("disconnect.json", "a", None), &env.deps)
            .await
            .status_code,
        200
    );
    assert!(env.store.get("a").await.expect("get").is_none());
    assert!(
        env.store
            .channel_subscribers("tenant-1", "kennels")
            .await
            .expect("query")
            .is_empty(),
        "subscription items go with the connection"
    );
    assert!(env.sink.received().is_empty());

    assert_eq!(
        handler(ws_event("disconnect.json", "b", None), &env.deps)
            .await
            .status_code,
        200
    );
    let received = env.sink.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].connection_id, "c");
    let msg = received[0].json();
    assert_eq!(msg["type"], "presence");
    assert_eq!(
        msg["data"],
        json!({"userId": "user-1", "status": "offline"})
    );

    // A repeated $disconnect (retries happen) is harmless.
    assert_eq!(
        handler(ws_event("disconnect.json", "b", None), &env.deps)
            .await
            .status_code,
        200
    );
    assert_eq!(env.sink.received().len(), 1);
}
