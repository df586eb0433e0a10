//! The stream poller against a real moto server: a table with a
//! NEW_AND_OLD_IMAGES stream, items put through the DynamoDB SDK, records
//! arriving at a recording fake invoker.
//!
//! moto comes from `$BARKCTL_TOOLS_VENV/bin/moto_server` when the variable is
//! set (CI), else `/work/main/.barkctl/local/venv/bin/moto_server`; the test
//! fails (does not skip) when neither exists.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, StreamSpecification, StreamViewType,
};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::events::TriggerEvent;
use super::stream::{run_mapping_with, PollerOptions};
use super::test_support::{recorder, FakeInvoker};
use crate::dev::deployed::StreamMapping;

const DEFAULT_VENV: &str = "/work/main/.barkctl/local/venv";
const REGION: &str = "us-east-1";

/// Kills the moto process when the test ends, passing or not.
struct Moto {
    child: Child,
    url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto_server() -> PathBuf {
    let venv = std::env::var_os("BARKCTL_TOOLS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_VENV));
    let bin = venv.join("bin").join("moto_server");
    assert!(
        bin.is_file(),
        "moto_server not found at {}: set BARKCTL_TOOLS_VENV to a venv with moto[server] installed",
        bin.display()
    );
    bin
}

async fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let req = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut head = [0u8; 64];
    let n = s.read(&mut head).await.ok()?;
    let line = String::from_utf8_lossy(&head[..n]).to_string();
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn start_moto() -> Moto {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let child = Command::new(moto_server())
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server starts");
    let moto = Moto {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_status(port, "/moto-api/").await != Some(200) {
        assert!(
            Instant::now() < deadline,
            "moto_server did not answer GET /moto-api/ on port {port} within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    moto
}

fn credentials() -> aws_sdk_dynamodb::config::Credentials {
    aws_sdk_dynamodb::config::Credentials::new("testing", "testing", None, None, "moto")
}

fn dynamodb(url: &str) -> aws_sdk_dynamodb::Client {
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new(REGION))
        .endpoint_url(url)
        .credentials_provider(credentials())
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

fn streams(url: &str) -> aws_sdk_dynamodbstreams::Client {
    let conf = aws_sdk_dynamodbstreams::Config::builder()
        .behavior_version(aws_sdk_dynamodbstreams::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodbstreams::config::Region::new(REGION))
        .endpoint_url(url)
        .credentials_provider(credentials())
        .build();
    aws_sdk_dynamodbstreams::Client::from_conf(conf)
}

fn records_seen(inv: &FakeInvoker) -> Vec<Value> {
    inv.calls()
        .into_iter()
        .flat_map(|(_, p)| p["Records"].as_array().cloned().unwrap_or_default())
        .collect()
}

async fn wait_for_records(inv: &FakeInvoker, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = records_seen(inv);
        if seen.len() >= n || Instant::now() >= deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn create_table(ddb: &aws_sdk_dynamodb::Client) -> String {
    let created = ddb
        .create_table()
        .table_name("orders")
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute definition"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .expect("key schema"),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .expect("stream specification"),
        )
        .send()
        .await
        .expect("CreateTable");
    created
        .table_description()
        .and_then(|t| t.latest_stream_arn())
        .expect("the table has a stream")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polls_a_moto_stream_into_lambda_events() {
    let moto = start_moto().await;
    let ddb = dynamodb(&moto.url);
    let stream_arn = create_table(&ddb).await;
    for i in 1..=3 {
        ddb.put_item()
            .table_name("orders")
            .item("pk", AttributeValue::S(format!("order-{i}")))
            .item("n", AttributeValue::N(i.to_string()))
            .item("tags", AttributeValue::Ss(vec!["a".into(), "b".into()]))
            .send()
            .await
            .expect("PutItem");
    }

    let mapping = StreamMapping {
        uuid: "mapping-1".into(),
        function_name: "barkbase-local-orders-stream".into(),
        stream_arn: stream_arn.clone(),
        batch_size: 10,
        batching_window: Duration::ZERO,
        max_retries: Some(2),
        bisect_on_error: false,
        report_batch_item_failures: false,
        enabled: true,
        starting_position: "TRIM_HORIZON".into(),
    };
    let inv = FakeInvoker::ok();
    let (sink, events) = recorder();
    let (tx, rx) = watch::channel(false);
    let options = PollerOptions {
        poll_interval: Duration::from_millis(100),
        ..PollerOptions::default()
    };
    let poller = tokio::spawn(run_mapping_with(
        mapping,
        streams(&moto.url),
        REGION.into(),
        inv.clone(),
        sink,
        options,
        rx,
        None,
    ));

    let seen = wait_for_records(&inv, 3).await;
    assert_eq!(
        seen.len(),
        3,
        "3 INSERT records within 10 s; events: {:?}",
        events.lock().map(|e| e.clone()).unwrap_or_default()
    );
    for (i, r) in seen.iter().enumerate() {
        let i = i + 1;
        assert_eq!(r["eventName"], "INSERT", "{r}");
        assert_eq!(r["eventSource"], "aws:dynamodb");
        assert_eq!(r["eventVersion"], "1.1");
        assert_eq!(r["awsRegion"], REGION);
        assert_eq!(r["eventSourceARN"], stream_arn.as_str());
        assert!(r["eventID"].is_string(), "{r}");
        let d = &r["dynamodb"];
        assert_eq!(d["Keys"], json!({"pk": {"S": format!("order-{i}")}}), "{r}");
        assert_eq!(
            d["NewImage"]["pk"],
            json!({"S": format!("order-{i}")}),
            "{r}"
        );
        assert_eq!(d["NewImage"]["n"], json!({"N": i.to_string()}), "{r}");
        let mut tags: Vec<String> = d["NewImage"]["tags"]["SS"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        tags.sort();
        assert_eq!(tags, ["a", "b"], "{r}");
        assert!(d.get("OldImage").is_none(), "{r}");
        assert_eq!(d["StreamViewType"], "NEW_AND_OLD_IMAGES", "{r}");
        assert!(d["SequenceNumber"].is_string(), "{r}");
        assert!(d["SizeBytes"].is_number(), "{r}");
        assert!(d["ApproximateCreationDateTime"].is_number(), "{r}");
    }

    // A later update arrives as MODIFY with both images, in order.
    ddb.put_item()
        .table_name("orders")
        .item("pk", AttributeValue::S("order-2".into()))
        .item("n", AttributeValue::N("20".into()))
        .send()
        .await
        .expect("PutItem");
    let seen = wait_for_records(&inv, 4).await;
    assert_eq!(seen.len(), 4, "the MODIFY record within 10 s");
    let m = &seen[3];
    assert_eq!(m["eventName"], "MODIFY", "{m}");
    assert_eq!(m["dynamodb"]["OldImage"]["n"], json!({"N": "2"}), "{m}");
    assert_eq!(m["dynamodb"]["NewImage"]["n"], json!({"N": "20"}), "{m}");

    let _ = tx.send(true);
    tokio::time::timeout(Duration::from_secs(5), poller)
        .await
        .expect("the poller stops at shutdown")
        .expect("no panic");
    let events = events.lock().map(|e| e.clone()).unwrap_or_default();
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, TriggerEvent::StreamError { .. })),
        "{events:?}"
    );
    assert!(inv
        .calls()
        .iter()
        .all(|(f, _)| f == "barkbase-local-orders-stream"));
}

async fn put(ddb: &aws_sdk_dynamodb::Client, pk: &str) {
    ddb.put_item()
        .table_name("orders")
        .item("pk", AttributeValue::S(pk.into()))
        .send()
        .await
        .expect("PutItem");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_starts_at_the_end_and_batches_by_size_then_window() {
    let moto = start_moto().await;
    let ddb = dynamodb(&moto.url);
    let stream_arn = create_table(&ddb).await;
    put(&ddb, "before-1").await;
    put(&ddb, "before-2").await;
    let mapping = StreamMapping {
        uuid: "mapping-2".into(),
        function_name: "fn".into(),
        stream_arn,
        batch_size: 2,
        batching_window: Duration::from_secs(1),
        max_retries: Some(0),
        bisect_on_error: false,
        report_batch_item_failures: false,
        enabled: true,
        starting_position: "LATEST".into(),
    };
    let inv = FakeInvoker::ok();
    let (sink, events) = recorder();
    let (tx, rx) = watch::channel(false);
    let options = PollerOptions {
        poll_interval: Duration::from_millis(50),
        ..PollerOptions::default()
    };
    let poller = tokio::spawn(run_mapping_with(
        mapping,
        streams(&moto.url),
        REGION.into(),
        inv.clone(),
        sink,
        options,
        rx,
        None,
    ));
    // Let the poller open the shard at LATEST.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let started = Instant::now();
    for pk in ["after-1", "after-2", "after-3"] {
        put(&ddb, pk).await;
    }
    let seen = wait_for_records(&inv, 3).await;
    let waited = started.elapsed();
    let _ = tx.send(true);
    tokio::time::timeout(Duration::from_secs(5), poller)
        .await
        .expect("the poller stops at shutdown")
        .expect("no panic");
    let pks: Vec<&str> = seen
        .iter()
        .filter_map(|r| r["dynamodb"]["Keys"]["pk"]["S"].as_str())
        .collect();
    assert_eq!(
        pks,
        ["after-1", "after-2", "after-3"],
        "{:?}",
        events.lock().map(|e| e.clone()).unwrap_or_default()
    );
    let sizes: Vec<usize> = inv
        .calls()
        .iter()
        .map(|(_, p)| p["Records"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(sizes, [2, 1]);
    // The third record waited for its batching window.
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
}
