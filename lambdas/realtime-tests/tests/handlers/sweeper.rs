//! The sweeper: expired connections are closed, removed and announced.

use crate::common::*;
use realtime_core::Connection;

async fn put(env: &TestEnv, id: &str, user: &str, expires_at: i64) {
    env.store
        .put(&Connection {
            connection_id: id.into(),
            user_id: user.into(),
            tenant_id: "tenant-1".into(),
            role: "viewer".into(),
            connected_at: "2026-11-21T12:00:00Z".into(),
            expires_at,
            source_ip: None,
            user_agent: None,
            channels: vec![],
            token_exp: Some(expires_at),
        })
        .await
        .expect("stored");
}

#[tokio::test]
async fn expired_connections_are_closed_and_removed_and_live_ones_stay() {
    let env = env().await;
    let now = chrono::Utc::now().timestamp();
    put(&env, "expired", "user-1", now - 5).await;
    put(&env, "expired-gone", "user-2", now - 5).await;
    put(&env, "live", "user-3", now + 600).await;
    env.store
        .subscribe("expired", "kennels")
        .await
        .expect("subscribed");
    env.sink.mark_gone("expired-gone");
    let broadcaster = env.deps.broadcaster().expect("configured endpoint");

    let report = realtime_sweeper::sweep(&broadcaster, now)
        .await
        .expect("sweep");
    assert_eq!(
        (report.expired, report.closed, report.gone, report.failed),
        (2, 1, 1, 0)
    );
    let mut closed = env.sink.closed();
    closed.sort();
    assert_eq!(closed, ["expired", "expired-gone"]);
    for id in ["expired", "expired-gone"] {
        assert!(env.store.get(id).await.expect("get").is_none(), "{id}");
    }
    assert!(env
        .store
        .channel_subscribers("tenant-1", "kennels")
        .await
        .expect("query")
        .is_empty());
    assert!(env.store.get("live").await.expect("get").is_some());
    let told = env.sink.delivered_to("live");
    assert_eq!(told.len(), 2, "the tenant hears of both users: {told:?}");
    assert!(told.iter().all(|m| m["data"]["status"] == "offline"));

    let again = realtime_sweeper::sweep(&broadcaster, now)
        .await
        .expect("sweep");
    assert_eq!(again.expired, 0);
}
