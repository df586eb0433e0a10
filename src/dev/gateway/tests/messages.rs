//! Text frames and their routes, the limits, and how connections end.

use std::time::Duration;

use bytes::Bytes;
use futures::SinkExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use super::{close_code, next_message, Harness, Setup};
use crate::dev::gateway::GatewayEvent;
use crate::dev::invoke::Outcome;

#[tokio::test]
async fn text_frames_are_routed_by_the_selection_expression_with_default_fallback() {
    let mut h = Harness::start(Setup::default()).await;
    let (mut client, id) = h.connect_with_id().await;
    let body = r#"{"action":"sendMessage","data":"hi"}"#;
    client.send(Message::text(body)).await.unwrap();
    let event = h.call("fn-send").await;
    let ctx = &event["requestContext"];
    assert_eq!(ctx["routeKey"], "sendMessage");
    assert_eq!(ctx["eventType"], "MESSAGE");
    assert_eq!(ctx["connectionId"], id.as_str());
    assert_eq!(ctx["messageDirection"], "IN");
    assert_eq!(ctx["messageId"].as_str().unwrap().len(), 16);
    assert_eq!(ctx["requestId"], ctx["extendedRequestId"]);
    assert!(ctx["connectedAt"].is_i64() && ctx["requestTimeEpoch"].is_i64());
    assert!(ctx["requestTime"].is_string() && ctx["domainName"].is_string());
    assert_eq!(ctx["identity"]["sourceIp"], "127.0.0.1");
    assert_eq!(event["body"], body);
    assert_eq!(event["isBase64Encoded"], false);
    assert!(event.get("headers").is_none());

    for other in [
        "not json",
        r#"{"action":"nope"}"#,
        r#"{"action":{"x":1}}"#,
        r#"{"action":"$connect"}"#,
    ] {
        client.send(Message::text(other)).await.unwrap();
        let event = h.call("fn-default").await;
        assert_eq!(event["requestContext"]["routeKey"], "$default");
        assert_eq!(event["body"], other);
    }
    client.close(None).await.unwrap();
    h.call("fn-disconnect").await;
    assert!(h.events().iter().any(|e| matches!(
        e,
        GatewayEvent::Routed { route_key, function, .. }
            if route_key == "sendMessage" && function == "fn-send"
    )));
    h.gateway.shutdown().await;
}

#[tokio::test]
async fn dotted_selection_paths_are_followed() {
    let setup = Setup {
        tweak: |c| c.api.route_selection_expression = "$request.body.meta.kind".into(),
        ..Default::default()
    };
    let mut h = Harness::start(setup).await;
    let (mut client, _) = h.connect_with_id().await;
    client
        .send(Message::text(r#"{"meta":{"kind":"sendMessage"}}"#))
        .await
        .unwrap();
    h.call("fn-send").await;
    client.close(None).await.unwrap();
    h.call("fn-disconnect").await;
    h.gateway.shutdown().await;
}

#[tokio::test]
async fn messages_of_one_connection_are_invoked_in_order() {
    let mut h = Harness::start(Setup::default()).await;
    let (mut client, _) = h.connect_with_id().await;
    for i in 0..20 {
        client.send(Message::text(format!("{i}"))).await.unwrap();
    }
    for i in 0..20 {
        assert_eq!(h.call("fn-default").await["body"], format!("{i}"));
    }
    client.close(None).await.unwrap();
    h.call("fn-disconnect").await;
    h.gateway.shutdown().await;
}

#[tokio::test]
async fn a_slow_function_does_not_block_other_connections() {
    let setup = Setup {
        delays: vec![("fn-send", Duration::from_millis(800))],
        ..Default::default()
    };
    let mut h = Harness::start(setup).await;
    let (mut slow, _) = h.connect_with_id().await;
    let (mut fast, _) = h.connect_with_id().await;
    slow.send(Message::text(r#"{"action":"sendMessage"}"#))
        .await
        .unwrap();
    h.call("fn-send").await;
    let started = std::time::Instant::now();
    fast.send(Message::text("x")).await.unwrap();
    h.call("fn-default").await;
    assert!(started.elapsed() < Duration::from_millis(400));
    fast.close(None).await.unwrap();
    h.call("fn-disconnect").await;
    slow.close(None).await.unwrap();
    h.call("fn-disconnect").await;
    h.gateway.shutdown().await;
}

#[tokio::test]
async fn without_default_an_unmatched_message_gets_forbidden() {
    let mut setup = Setup::default();
    setup.routes.retain(|(k, _)| *k != "$default");
    let mut h = Harness::start(setup).await;
    let (mut client, id) = h.connect_with_id().await;
    client.send(Message::text("hello")).await.unwrap();
    let Message::Text(reply) = next_message(&mut client).await else {
        panic!("expected a text reply");
    };
    let reply: Value = serde_json::from_str(reply.as_str()).unwrap();
    assert_eq!(reply["message"], "Forbidden");
    assert_eq!(reply["connectionId"], id.as_str());
    assert_eq!(reply["requestId"].as_str().unwrap().len(), 16);
    h.no_call(Duration::from_millis(100)).await;
    client.close(None).await.unwrap();
    h.call("fn-disconnect").await;
    h.gateway.shutdown().await;
}

#[tokio::test]
async fn a_failing_route_sends_internal_server_error_and_keeps_the_socket() {
    let mut setup = Setup::default();
    setup.handlers[2].1 = Box::new(|_| Outcome::Timeout { seconds: 3 });
    let mut h = Harness::start(setup).await;
    let (mut client, id) = h.connect_with_id().await;
    client.send(Message::text("x")).await.unwrap();
    h.call("fn-default").await;
    let Message::Text(reply) = next_message(&mut client).await else {
        panic!("expected a text reply");
    };
    let reply: Value = serde_json::from_str(reply.as_str()).unwrap();
    assert_eq!(reply["message"], "Internal server error");
    assert_eq!(reply["connectionId"], id.as_str());
    client
        .send(Message::text(r#"{"action":"sendMessage"}"#))
        .await
        .unwrap();
    h.call("fn-send").await;
    client.close(None).await.unwrap();
    h.call("fn-disconnect").await;
    h.gateway.shutdown().await;
}

#[tokio::test]
async fn a_binary_frame_closes_with_1003() {
    let mut h = Harness::start(Setup::default()).await;
    let (mut client, id) = h.connect_with_id().await;
    client.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(close_code(&mut client).await.0, 1003);
    let event = h.call("fn-disconnect").await;
    assert_eq!(event["requestContext"]["disconnectStatusCode"], 1003);
    assert_eq!(event["requestContext"]["connectionId"], id.as_str());
    h.gateway.shutdown().await;
}

#[tokio::test]
async fn a_129_kib_message_closes_with_1009() {
    let mut h = Harness::start(Setup::default()).await;
    let (mut client, _) = h.connect_with_id().await;
    let _ = client.send(Message::text("x".repeat(129 * 1024))).await;
    assert_eq!(close_code(&mut client).await.0, 1009);
    let event = h.call("fn-disconnect").await;
    assert_eq!(event["requestContext"]["disconnectStatusCode"], 1009);
    h.no_call(Duration::from_millis(100)).await;
    h.gateway.shutdown().await;
}

#[tokio::test]
async fn a_33_kib_frame_closes_with_1009_and_32_kib_passes() {
    let mut h = Harness::start(Setup::default()).await;
    let (mut client, _) = h.connect_with_id().await;
    client
        .send(Message::text("y".repeat(32 * 1024)))
        .await
        .unwrap();
    assert_eq!(
        h.call("fn-default").await["body"].as_str().unwrap().len(),
        32 * 1024
    );
    let _ = client.send(Message::text("x".repeat(33 * 1024))).await;
    assert_eq!(close_code(&mut client).await.0, 1009);
    h.call("fn-disconnect").await;
    h.gateway.shutdown().await;
}

fn fragment(data: &[u8], opcode: Data, fin: bool) -> Message {
    Message::Frame(Frame::message(
        Bytes::copy_from_slice(data),
        OpCode::Data(opcode),
        fin,
    ))
}

#[tokio::test]
async fn a_message_over_128_kib_in_small_frames_closes_with_1009() {
    let mut h = Harness::start(Setup::default()).await;
    let (mut client, _) = h.connect_with_id().await;
    // 100 KiB in 20 KiB frames passes...
    let chunk = vec![b'a'; 20 * 1024];
    client
        .send(fragment(&chunk, Data::Text, false))
        .await
        .unwrap();
    for _ in 0..3 {
        client
            .send(fragment(&chunk, Data::Continue, false))
            .await
            .unwrap();
    }
    client
        .send(fragment(&chunk, Data::Continue, true))
        .await
        .unwrap();
    assert_eq!(
        h.call("fn-default").await["body"].as_str().unwrap().len(),
        100 * 1024
    );
    // ... 140 KiB does not.
    client
        .send(fragment(&chunk, Data::Text, false))
        .await
        .unwrap();
    for _ in 0..6 {
        let _ = client.send(fragment(&chunk, Data::Continue, false)).await;
    }
    assert_eq!(close_code(&mut client).await.0, 1009);
    h.call("fn-disconnect").await;
    h.gateway.shutdown().await;
}

#[tokio::test]
async fn an_idle_connection_is_closed_with_1001() {
    let setup = Setup {
        tweak: |c| c.idle_timeout = Duration::from_millis(700),
        ..Default::default()
    };
    let mut h = Harness::start(setup).await;
    let (mut client, _) = h.connect_with_id().await;
    // Activity resets the timer.
    tokio::time::sleep(Duration::from_millis(400)).await;
    client.send(Message::Ping(Bytes::new())).await.unwrap();
    let started = std::time::Instant::now();
    assert_eq!(close_code(&mut client).await.0, 1001);
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    let event = h.call("fn-disconnect").await;
    assert_eq!(event["requestContext"]["disconnectStatusCode"], 1001);
    assert_eq!(event["requestContext"]["eventType"], "DISCONNECT");
    h.gateway.shutdown().await;
}

#[tokio::test]
async fn the_maximum_lifetime_closes_with_1001() {
    let setup = Setup {
        tweak: |c| c.max_lifetime = Duration::from_millis(300),
        ..Default::default()
    };
    let mut h = Harness::start(setup).await;
    let (mut client, _) = h.connect_with_id().await;
    assert_eq!(close_code(&mut client).await.0, 1001);
    assert_eq!(
        h.call("fn-disconnect").await["requestContext"]["disconnectStatusCode"],
        1001
    );
    h.gateway.shutdown().await;
}

#[tokio::test]
async fn a_client_close_hands_its_code_and_reason_to_disconnect() {
    let mut h = Harness::start(Setup::default()).await;
    let (mut client, id) = h.connect_with_id().await;
    client
        .close(Some(CloseFrame {
            code: CloseCode::from(4000),
            reason: "bye".into(),
        }))
        .await
        .unwrap();
    let event = h.call("fn-disconnect").await;
    let ctx = &event["requestContext"];
    assert_eq!(ctx["routeKey"], "$disconnect");
    assert_eq!(ctx["eventType"], "DISCONNECT");
    assert_eq!(ctx["disconnectStatusCode"], 4000);
    assert_eq!(ctx["disconnectReason"], "bye");
    assert_eq!(ctx["connectionId"], id.as_str());
    assert!(ctx["connectedAt"].is_i64() && ctx["requestTimeEpoch"].is_i64());
    let port = h.gateway.local_addr().port();
    assert_eq!(event["headers"]["Host"], format!("127.0.0.1:{port}"));
    assert_eq!(event["isBase64Encoded"], false);
    // The connection left the registry before $disconnect ran.
    assert_eq!(h.gateway.connections(), 0);
    h.no_call(Duration::from_millis(100)).await;
    assert!(h.events().iter().any(|e| matches!(
        e,
        GatewayEvent::Disconnected { code: 4000, reason, .. } if reason == "bye"
    )));
    h.gateway.shutdown().await;
}

#[tokio::test]
async fn a_dropped_tcp_connection_is_a_1006_disconnect() {
    let mut h = Harness::start(Setup::default()).await;
    let (client, _) = h.connect_with_id().await;
    drop(client);
    let event = h.call("fn-disconnect").await;
    assert_eq!(event["requestContext"]["disconnectStatusCode"], 1006);
    h.gateway.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_sockets_with_1001_after_disconnect_ran() {
    let mut h = Harness::start(Setup::default()).await;
    let (mut a, _) = h.connect_with_id().await;
    let (mut b, _) = h.connect_with_id().await;
    let events = h.events.clone();
    let url = h.gateway.url();
    let readers =
        tokio::spawn(async move { (close_code(&mut a).await.0, close_code(&mut b).await.0) });
    let started = std::time::Instant::now();
    h.gateway.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let disconnects = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, GatewayEvent::Disconnected { code: 1001, .. }))
        .count();
    assert_eq!(disconnects, 2);
    assert_eq!(readers.await.unwrap(), (1001, 1001));
    assert!(tokio_tungstenite::connect_async(url).await.is_err());
}

#[tokio::test]
async fn invalid_utf8_in_a_text_frame_closes_with_1007() {
    let mut h = Harness::start(Setup::default()).await;
    let (mut client, _) = h.connect_with_id().await;
    client
        .send(fragment(&[b'{', 0xff, 0xfe], Data::Text, true))
        .await
        .unwrap();
    assert_eq!(close_code(&mut client).await.0, 1007);
    assert_eq!(
        h.call("fn-disconnect").await["requestContext"]["disconnectStatusCode"],
        1007
    );
    h.gateway.shutdown().await;
}
