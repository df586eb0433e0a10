//! The handshake: `$connect` decides, the CONNECT event's fields.

use std::time::Duration;

use base64::Engine as _;
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Error as WsError;

use super::{encode_id, http, Harness, Setup};
use crate::dev::gateway::{GatewayEvent, Summary};
use crate::dev::invoke::Outcome;

#[tokio::test]
async fn a_2xx_connect_completes_the_upgrade_with_the_connect_event() {
    let mut h = Harness::start(Setup::default()).await;
    let url = format!("{}?token=abc%20d&x=1&x=2", h.gateway.url());
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Authorization", "Bearer t0k".parse().unwrap());
    let before = chrono::Utc::now().timestamp_millis();
    let (mut client, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.status(), 101);
    let event = h.call("fn-connect").await;
    let ctx = &event["requestContext"];
    let id = ctx["connectionId"].as_str().unwrap();
    assert_eq!(id.len(), 16, "{id}");
    assert!(id.ends_with('='), "{id}");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(id)
        .unwrap();
    assert_eq!(raw.len(), 11);
    assert_eq!(ctx["routeKey"], "$connect");
    assert_eq!(ctx["eventType"], "CONNECT");
    assert_eq!(ctx["messageDirection"], "IN");
    assert_eq!(ctx["stage"], "local");
    assert_eq!(ctx["apiId"], "a1b2c3d4e5");
    let port = h.gateway.local_addr().port();
    assert_eq!(ctx["domainName"], format!("127.0.0.1:{port}"));
    let connected_at = ctx["connectedAt"].as_i64().unwrap();
    assert!(connected_at >= before && connected_at < before + 5_000);
    let epoch = ctx["requestTimeEpoch"].as_i64().unwrap();
    assert!(epoch >= connected_at && epoch < before + 5_000);
    let time = ctx["requestTime"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_str(time, "%d/%b/%Y:%H:%M:%S %z").is_ok(),
        "{time}"
    );
    assert_eq!(ctx["requestId"], ctx["extendedRequestId"]);
    assert_eq!(ctx["requestId"].as_str().unwrap().len(), 16);
    assert_eq!(ctx["identity"]["sourceIp"], "127.0.0.1");
    assert!(ctx.get("messageId").is_none());
    assert_eq!(event["isBase64Encoded"], false);
    assert_eq!(event["queryStringParameters"]["token"], "abc d");
    assert_eq!(event["queryStringParameters"]["x"], "2");
    assert_eq!(
        event["multiValueQueryStringParameters"]["x"],
        json!(["1", "2"])
    );
    let headers = &event["headers"];
    assert_eq!(headers["Authorization"], "Bearer t0k");
    assert_eq!(headers["Host"], format!("127.0.0.1:{port}"));
    assert!(headers["Sec-WebSocket-Key"].is_string(), "{headers}");
    assert_eq!(headers["Sec-WebSocket-Version"], "13");
    assert_eq!(headers["X-Forwarded-For"], "127.0.0.1");
    assert!(headers["X-Amzn-Trace-Id"]
        .as_str()
        .unwrap()
        .starts_with("Root=1-"));
    assert!(headers.get("Connection").is_none());
    assert_eq!(
        event["multiValueHeaders"]["Authorization"],
        json!(["Bearer t0k"])
    );
    assert!(h.events().iter().any(|e| matches!(
        e,
        GatewayEvent::Connected { status: 200, function: Some(f), .. } if f == "fn-connect"
    )));
    assert_eq!(h.gateway.connections(), 1);
    client.close(None).await.unwrap();
    h.call("fn-disconnect").await;
    h.gateway.shutdown().await;
}

#[tokio::test]
async fn a_401_from_connect_refuses_the_upgrade_with_401_and_the_body() {
    let mut setup = Setup::default();
    setup.handlers[0].1 = Box::new(|_| {
        Outcome::Response(
            json!({"statusCode": 401, "body": "Unauthorized", "headers": {"X-Secret": "no"}})
                .to_string()
                .into_bytes(),
        )
    });
    let mut h = Harness::start(setup).await;
    let err = tokio_tungstenite::connect_async(h.gateway.url())
        .await
        .expect_err("refused");
    match err {
        WsError::Http(response) => {
            assert_eq!(response.status(), 401);
            assert!(response.headers().get("x-secret").is_none());
            assert_eq!(response.body().as_deref(), Some(&b"Unauthorized"[..]));
        }
        other => panic!("expected an HTTP error, got {other:?}"),
    }
    let event = h.call("fn-connect").await;
    // Never connected: no $disconnect.
    h.no_call(Duration::from_millis(200)).await;
    assert_eq!(h.gateway.connections(), 0);
    let id = event["requestContext"]["connectionId"].as_str().unwrap();
    let get = http(
        &h.gateway,
        "GET",
        &format!("/local/@connections/{}", encode_id(id)),
        b"",
    )
    .await;
    assert_eq!(get.status, 410);
    assert!(h.events().iter().any(|e| matches!(
        e,
        GatewayEvent::Refused {
            status: 401,
            summary: Summary::Ok,
            ..
        }
    )));
    h.gateway.shutdown().await;
}

async fn refused_status(h: &Harness) -> u16 {
    match tokio_tungstenite::connect_async(h.gateway.url()).await {
        Err(WsError::Http(response)) => response.status().as_u16(),
        other => panic!("expected a refused upgrade, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn a_failing_connect_function_is_a_502() {
    let mut setup = Setup::default();
    setup.handlers[0].1 = Box::new(|_| Outcome::FunctionError {
        error_type: "Boom".into(),
        error_message: "boom".into(),
    });
    let h = Harness::start(setup).await;
    assert_eq!(refused_status(&h).await, 502);
    assert!(h.events().iter().any(|e| matches!(
        e,
        GatewayEvent::Refused { status: 502, summary: Summary::Failed { error_type, .. }, .. }
            if error_type == "Boom"
    )));
    h.gateway.shutdown().await;
}

#[tokio::test]
async fn a_connect_without_status_code_crash_or_timeout_is_a_502() {
    let mut setup = Setup::default();
    setup.handlers[0].1 = Box::new(|_| Outcome::Response(b"null".to_vec()));
    let h = Harness::start(setup).await;
    assert_eq!(refused_status(&h).await, 502);
    h.gateway.shutdown().await;

    let mut setup = Setup::default();
    setup.handlers[0].1 = Box::new(|_| Outcome::Crashed {
        message: "exit 101".into(),
    });
    let h = Harness::start(setup).await;
    assert_eq!(refused_status(&h).await, 502);
    h.gateway.shutdown().await;

    let setup = Setup {
        delays: vec![("fn-connect", Duration::from_secs(5))],
        tweak: |c| c.integration_timeout = Duration::from_millis(200),
        ..Default::default()
    };
    let h = Harness::start(setup).await;
    assert_eq!(refused_status(&h).await, 502);
    assert!(h.events().iter().any(|e| matches!(
        e,
        GatewayEvent::Refused { summary: Summary::Failed { error_type, .. }, .. }
            if error_type == "Gateway.IntegrationTimeout"
    )));
    h.gateway.shutdown().await;
}

#[tokio::test]
async fn without_a_connect_route_the_upgrade_is_accepted() {
    let mut setup = Setup::default();
    setup.routes.retain(|(k, _)| *k != "$connect");
    let mut h = Harness::start(setup).await;
    let mut client = h.connect().await;
    client.close(None).await.unwrap();
    let event = h.call("fn-disconnect").await;
    assert_eq!(event["requestContext"]["disconnectStatusCode"], 1005);
    h.gateway.shutdown().await;
}

#[tokio::test]
async fn only_the_subprotocol_header_of_the_connect_answer_is_passed_on() {
    let mut setup = Setup::default();
    setup.handlers[0].1 = Box::new(|_| {
        Outcome::Response(
            json!({"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": "chat", "X-Other": "1"}})
                .to_string()
                .into_bytes(),
        )
    });
    let mut h = Harness::start(setup).await;
    let mut request = h.gateway.url().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "chat, v2".parse().unwrap());
    let (mut client, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "chat");
    assert!(response.headers().get("x-other").is_none());
    let event = h.call("fn-connect").await;
    assert_eq!(event["headers"]["Sec-WebSocket-Protocol"], "chat, v2");
    client.close(None).await.unwrap();
    h.call("fn-disconnect").await;
    h.gateway.shutdown().await;
}

#[tokio::test]
async fn a_connection_is_gone_until_its_connect_finished() {
    let setup = Setup {
        delays: vec![("fn-connect", Duration::from_millis(400))],
        ..Default::default()
    };
    let mut h = Harness::start(setup).await;
    let url = h.gateway.url();
    let connecting = tokio::spawn(async move { tokio_tungstenite::connect_async(url).await });
    let event = h.call("fn-connect").await;
    let id = event["requestContext"]["connectionId"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/local/@connections/{}", encode_id(&id));
    assert_eq!(http(&h.gateway, "POST", &path, b"early").await.status, 410);
    assert_eq!(http(&h.gateway, "GET", &path, b"").await.status, 410);
    let (mut client, _) = connecting.await.unwrap().unwrap();
    assert_eq!(http(&h.gateway, "GET", &path, b"").await.status, 200);
    client.close(None).await.unwrap();
    h.call("fn-disconnect").await;
    h.gateway.shutdown().await;
}

#[tokio::test]
async fn plain_http_on_the_stage_path_is_426() {
    let h = Harness::start(Setup::default()).await;
    assert_eq!(http(&h.gateway, "GET", "/local", b"").await.status, 426);
    h.gateway.shutdown().await;
}
