//! `@connections` over raw HTTP/1.1: paths, status codes, error types.

use std::time::Duration;

use futures::SinkExt;
use tokio_tungstenite::tungstenite::Message;

use super::{close_code, encode_id, http, next_message, Harness, Setup};
use crate::dev::gateway::GatewayEvent;

#[tokio::test]
async fn post_delivers_text_and_binary_frames_to_the_client() {
    let mut h = Harness::start(Setup::default()).await;
    let (mut client, id) = h.connect_with_id().await;
    // As the SDK sends it: `@` and `=` percent-encoded.
    let path = format!("/local/%40connections/{}", encode_id(&id));
    let answer = http(&h.gateway, "POST", &path, br#"{"hello":"world"}"#).await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        next_message(&mut client).await,
        Message::text(r#"{"hello":"world"}"#)
    );
    let answer = http(&h.gateway, "POST", &path, &[0xff, 0x00, 0xfe]).await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        next_message(&mut client).await,
        Message::binary(vec![0xffu8, 0x00, 0xfe])
    );
    assert!(h.events().iter().any(|e| matches!(
        e,
        GatewayEvent::Management { method, status: 200, connection_id } if method == "POST" && *connection_id == id
    )));
    client.close(None).await.unwrap();
    h.call("fn-disconnect").await;
    h.gateway.shutdown().await;
}

#[tokio::test]
async fn get_answers_connected_at_identity_and_last_active_at() {
    let mut h = Harness::start(Setup::default()).await;
    let (mut client, id) = h.connect_with_id().await;
    let path = format!("/local/@connections/{}", encode_id(&id));
    let first = http(&h.gateway, "GET", &path, b"").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("content-type"), Some("application/json"));
    let body = first.json();
    let connected_at = body["connectedAt"].as_str().unwrap().to_string();
    assert!(
        chrono::DateTime::parse_from_rfc3339(&connected_at).is_ok(),
        "{connected_at}"
    );
    assert!(connected_at.ends_with('Z'));
    assert_eq!(body["identity"]["sourceIp"], "127.0.0.1");
    assert!(body["identity"].get("userAgent").is_some());
    assert_eq!(body["lastActiveAt"], connected_at.as_str());
    tokio::time::sleep(Duration::from_millis(20)).await;
    client.send(Message::text("x")).await.unwrap();
    h.call("fn-default").await;
    let second = http(&h.gateway, "GET", &path, b"").await.json();
    let last = second["lastActiveAt"].as_str().unwrap();
    assert!(last > connected_at.as_str(), "{last} after {connected_at}");
    assert_eq!(second["connectedAt"], connected_at.as_str());
    client.close(None).await.unwrap();
    h.call("fn-disconnect").await;
    h.gateway.shutdown().await;
}

#[tokio::test]
async fn delete_closes_the_socket_and_runs_disconnect() {
    let mut h = Harness::start(Setup::default()).await;
    let (mut client, id) = h.connect_with_id().await;
    let path = format!("/local/@connections/{}", encode_id(&id));
    let answer = http(&h.gateway, "DELETE", &path, b"").await;
    assert_eq!(answer.status, 204);
    assert_eq!(http(&h.gateway, "GET", &path, b"").await.status, 410);
    assert_eq!(close_code(&mut client).await.0, 1005);
    let event = h.call("fn-disconnect").await;
    assert_eq!(event["requestContext"]["connectionId"], id.as_str());
    assert_eq!(http(&h.gateway, "DELETE", &path, b"").await.status, 410);
    h.gateway.shutdown().await;
}

#[tokio::test]
async fn unknown_ids_are_gone_and_missing_stages_forbidden() {
    let mut h = Harness::start(Setup::default()).await;
    for method in ["POST", "GET", "DELETE"] {
        let answer = http(
            &h.gateway,
            method,
            "/local/@connections/R1kmxc2VNjMCFIA%3D",
            b"x",
        )
        .await;
        assert_eq!(answer.status, 410, "{method}");
        assert_eq!(answer.header("x-amzn-errortype"), Some("GoneException"));
        assert_eq!(answer.json()["__type"], "GoneException");
    }
    let (mut client, id) = h.connect_with_id().await;
    for path in [
        format!("/@connections/{}", encode_id(&id)),
        format!("/%40connections/{}", encode_id(&id)),
        format!("/prod/@connections/{}", encode_id(&id)),
    ] {
        let answer = http(&h.gateway, "POST", &path, b"x").await;
        assert_eq!(answer.status, 403, "{path}");
        assert_eq!(
            answer.header("x-amzn-errortype"),
            Some("ForbiddenException")
        );
    }
    assert_eq!(http(&h.gateway, "GET", "/somewhere", b"").await.status, 403);
    client.close(None).await.unwrap();
    h.call("fn-disconnect").await;
    h.gateway.shutdown().await;
}

#[tokio::test]
async fn posts_over_128_kib_are_413() {
    let mut h = Harness::start(Setup::default()).await;
    let (mut client, id) = h.connect_with_id().await;
    let path = format!("/local/@connections/{}", encode_id(&id));
    let answer = http(&h.gateway, "POST", &path, &vec![b'a'; 131_073]).await;
    assert_eq!(answer.status, 413);
    assert_eq!(
        answer.header("x-amzn-errortype"),
        Some("PayloadTooLargeException")
    );
    let answer = http(&h.gateway, "POST", &path, &vec![b'a'; 131_072]).await;
    assert_eq!(answer.status, 200);
    let Message::Text(text) = next_message(&mut client).await else {
        panic!("expected text");
    };
    assert_eq!(text.len(), 131_072);
    client.close(None).await.unwrap();
    h.call("fn-disconnect").await;
    h.gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_to_a_client_that_does_not_read_end_in_429() {
    let mut h = Harness::start(Setup::default()).await;
    let (client, id) = h.connect_with_id().await;
    let path = format!("/local/@connections/{}", encode_id(&id));
    let big = vec![b'a'; 128 * 1024];
    let started = std::time::Instant::now();
    let mut limited = None;
    // The socket's TCP buffers fill first, then its queue of 256 frames.
    for i in 0..2_000 {
        let body: &[u8] = if i < 200 { &big } else { b"x" };
        let answer = http(&h.gateway, "POST", &path, body).await;
        if answer.status == 429 {
            limited = Some(answer);
            break;
        }
        assert_eq!(answer.status, 200);
    }
    let answer = limited.expect("a 429 before 2,000 posts");
    assert_eq!(
        answer.header("x-amzn-errortype"),
        Some("LimitExceededException")
    );
    eprintln!("429 after {:?}", started.elapsed());
    drop(client);
    h.call("fn-disconnect").await;
    h.gateway.shutdown().await;
}
