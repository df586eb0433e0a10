//! Shared setup: one moto server, connections table and management sink per test.

use aws_config::SdkConfig;
use aws_lambda_events::event::apigw::ApiGatewayWebsocketProxyRequest;
use realtime_core::store::Connection;
use realtime_core::{ConnectionStore, Deps, RealtimeConfig};
use realtime_tests::{
    create_connections_table, create_history_table, sdk_config, ManagementSink, MotoServer,
};
use serde_json::Value;

pub const TABLE: &str = "barkbase-test-realtime-connections";
pub const HISTORY: &str = "barkbase-test-realtime-history";
pub const SECRET: &str = "test-signing-secret-0123456789abcdef";

pub struct TestEnv {
    pub deps: Deps,
    pub store: ConnectionStore,
    pub sdk: SdkConfig,
    pub sink: ManagementSink,
    pub _moto: MotoServer,
}

pub async fn env() -> TestEnv {
    env_with_concurrency(32).await
}

pub async fn env_with_concurrency(concurrency: usize) -> TestEnv {
    env_with(&[("BROADCAST_CONCURRENCY", &concurrency.to_string())]).await
}

/// The tables, the sink and `Deps` from the settings the template gives the message
/// and broadcast functions, with `extra` on top (e.g. a rate limit).
pub async fn env_with(extra: &[(&str, &str)]) -> TestEnv {
    let moto = MotoServer::start().expect("moto server starts");
    let sdk = sdk_config(&moto.endpoint).await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    create_connections_table(&dynamo, TABLE)
        .await
        .expect("table created");
    create_history_table(&dynamo, HISTORY)
        .await
        .expect("history table created");
    let sink = ManagementSink::start().await.expect("sink starts");
    let endpoint = sink.endpoint.clone();
    let extra: Vec<(String, String)> = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let config = RealtimeConfig::from_lookup(|k| {
        if let Some((_, v)) = extra.iter().find(|(name, _)| name == k) {
            return Some(v.clone());
        }
        match k {
            "CONNECTIONS_TABLE" => Some(TABLE.to_string()),
            "HISTORY_TABLE" => Some(HISTORY.to_string()),
            "WEBSOCKET_MANAGEMENT_ENDPOINT" => Some(endpoint.clone()),
            _ => None,
        }
    })
    .expect("valid config");
    let deps = Deps::new(&sdk, &config);
    TestEnv {
        store: deps.store.clone(),
        deps,
        sdk,
        sink,
        _moto: moto,
    }
}

pub fn fixture_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn fixture(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture_path(name)).expect("fixture readable");
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// A WebSocket event from `name` with its connection id and body replaced.
pub fn ws_event(
    name: &str,
    connection_id: &str,
    body: Option<&str>,
) -> ApiGatewayWebsocketProxyRequest {
    let mut v = fixture(name);
    v["requestContext"]["connectionId"] = Value::from(connection_id);
    if let Some(b) = body {
        v["body"] = Value::from(b);
    }
    serde_json::from_value(v).expect("fixture is a WebSocket event")
}

pub async fn seed(store: &ConnectionStore, id: &str, user: &str, tenant: &str, role: &str) {
    store
        .put(&Connection {
            connection_id: id.into(),
            user_id: user.into(),
            tenant_id: tenant.into(),
            role: role.into(),
            connected_at: "2026-11-21T12:00:00Z".into(),
            expires_at: chrono::Utc::now().timestamp() + 7200,
            source_ip: Some("203.0.113.10".into()),
            user_agent: None,
            channels: vec![],
            token_exp: None,
        })
        .await
        .expect("seeded");
}

pub fn body_text(res: &aws_lambda_events::event::apigw::ApiGatewayProxyResponse) -> String {
    match &res.body {
        Some(aws_lambda_events::encodings::Body::Text(t)) => t.clone(),
        other => panic!("expected a text body, got {other:?}"),
    }
}

/// A broadcast report without its message `id` (which depends on the order tests run
/// their broadcasts in).
pub fn counts(report: &Value) -> Value {
    let mut r = report.clone();
    if let Some(o) = r.as_object_mut() {
        o.remove("id");
    }
    r
}
