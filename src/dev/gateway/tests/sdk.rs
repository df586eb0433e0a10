//! The management API through aws-sdk-apigatewaymanagement, as handlers call it.

use aws_sdk_apigatewaymanagement::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_apigatewaymanagement::operation::delete_connection::DeleteConnectionError;
use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use aws_sdk_apigatewaymanagement::Client as Sdk;
use tokio_tungstenite::tungstenite::Message;

use super::{close_code, next_message, Harness, Setup};

fn sdk_client(endpoint: String) -> Sdk {
    let config = aws_sdk_apigatewaymanagement::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .build();
    Sdk::from_conf(config)
}

#[tokio::test]
async fn the_sdk_gets_typed_errors_and_delivers_frames() {
    let mut h = Harness::start(Setup::default()).await;
    let sdk = sdk_client(h.gateway.management_endpoint());
    let err = sdk
        .post_to_connection()
        .connection_id("R1kmxc2VNjMCFIA=")
        .data(Blob::new("x"))
        .send()
        .await
        .expect_err("gone");
    assert!(
        matches!(
            err.as_service_error(),
            Some(PostToConnectionError::GoneException(_))
        ),
        "{err:?}"
    );

    let (mut client, id) = h.connect_with_id().await;
    sdk.post_to_connection()
        .connection_id(&id)
        .data(Blob::new(r#"{"n":1}"#))
        .send()
        .await
        .expect("posted");
    assert_eq!(next_message(&mut client).await, Message::text(r#"{"n":1}"#));

    let err = sdk
        .post_to_connection()
        .connection_id(&id)
        .data(Blob::new(vec![b'a'; 131_073]))
        .send()
        .await
        .expect_err("too large");
    assert!(
        matches!(
            err.as_service_error(),
            Some(PostToConnectionError::PayloadTooLargeException(_))
        ),
        "{err:?}"
    );

    let got = sdk
        .get_connection()
        .connection_id(&id)
        .send()
        .await
        .expect("got");
    assert!(got.connected_at().is_some());
    assert!(
        aws_sdk_apigatewaymanagement::operation::RequestId::request_id(&got).is_some(),
        "the SDK reads x-amzn-RequestId"
    );
    assert!(got.last_active_at().is_some());
    assert_eq!(
        got.identity().and_then(|i| i.source_ip()),
        Some("127.0.0.1")
    );

    sdk.delete_connection()
        .connection_id(&id)
        .send()
        .await
        .expect("deleted");
    assert_eq!(close_code(&mut client).await.0, 1005);
    h.call("fn-disconnect").await;
    let err = sdk
        .delete_connection()
        .connection_id(&id)
        .send()
        .await
        .expect_err("gone");
    assert!(
        matches!(
            err.as_service_error(),
            Some(DeleteConnectionError::GoneException(_))
        ),
        "{err:?}"
    );

    // Without the stage segment: ForbiddenException.
    let (mut other, other_id) = h.connect_with_id().await;
    let err = sdk_client(format!("http://{}", h.gateway.local_addr()))
        .post_to_connection()
        .connection_id(&other_id)
        .data(Blob::new("x"))
        .send()
        .await
        .expect_err("forbidden");
    assert!(
        matches!(
            err.as_service_error(),
            Some(PostToConnectionError::ForbiddenException(_))
        ),
        "{err:?}"
    );
    other.close(None).await.unwrap();
    h.call("fn-disconnect").await;
    h.gateway.shutdown().await;
}
