//! stream-processor: METRICS_UPDATE fan-out, chunking and partial batch failures.

use aws_lambda_events::event::dynamodb::Event;
use realtime_core::MAX_FRAME_BYTES;
use serde_json::{json, Value};
use stream_processor::handler;

use crate::common::*;

fn failures(res: &aws_lambda_events::event::streams::DynamoDbEventResponse) -> Vec<String> {
    res.batch_item_failures
        .iter()
        .filter_map(|f| f.item_identifier.clone())
        .collect()
}

#[tokio::test]
async fn updates_reach_only_the_metrics_subscribers_of_their_tenant() {
    let env = env().await;
    seed(&env.store, "sub-t9", "user-1", "tenant-9", "viewer").await;
    seed(&env.store, "sub-t1", "user-2", "tenant-1", "viewer").await;
    seed(&env.store, "t1", "user-3", "tenant-1", "viewer").await;
    for id in ["sub-t9", "sub-t1"] {
        env.store
            .subscribe(id, "metrics")
            .await
            .expect("subscribed");
    }
    let broadcaster = env.deps.broadcaster().expect("configured endpoint");

    // Three records; only the INSERT's item says its tenant (tenant-1).
    let event: Event =
        serde_json::from_value(fixture("stream_metrics.json")).expect("stream event");
    let res = handler(event, &broadcaster, "metrics").await;
    assert!(
        failures(&res).is_empty(),
        "untenanted records are not retried"
    );

    let got = env.sink.delivered_to("sub-t1");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["type"], "METRICS_UPDATE");
    let updates = got[0]["updates"].as_array().expect("updates");
    assert_eq!(updates.len(), 1, "only the record of tenant-1");
    assert_eq!(
        updates[0],
        json!({"eventType": "INSERT", "timestamp": 1_763_726_400_000_i64, "data": {
            "entity_id": "stream-001", "entity_type": "stream", "metric_value": 1234,
            "timestamp": "2026-11-21T12:00:00Z", "tenantId": "tenant-1"}})
    );
    assert!(
        env.sink.delivered_to("sub-t9").is_empty(),
        "another tenant's subscriber gets nothing"
    );
    assert!(
        env.sink.delivered_to("t1").is_empty(),
        "a connection of the tenant that did not subscribe gets nothing"
    );
}

/// A stream batch of `n` INSERTs with ~2 KB images, from the fixture's first record.
fn big_batch(n: usize, tenant_every: Option<usize>) -> Event {
    let fixture = fixture("stream_metrics.json");
    let template = fixture["Records"][0].clone();
    let records: Vec<Value> = (0..n)
        .map(|i| {
            let mut r = template.clone();
            r["eventID"] = json!(format!("event-{i:03}"));
            r["dynamodb"]["SequenceNumber"] = json!(format!("{:021}", 1000 + i));
            let image = &mut r["dynamodb"]["NewImage"];
            image["entity_id"] = json!({"S": format!("stream-{i:03}")});
            image["samples"] = json!({"S": "s".repeat(2000)});
            match tenant_every {
                Some(k) if i % k == 0 => image["tenantId"] = json!({"S": "tenant-1"}),
                _ => {
                    image.as_object_mut().expect("image").remove("tenantId");
                }
            }
            r
        })
        .collect();
    serde_json::from_value(json!({"Records": records})).expect("stream event")
}

#[tokio::test]
async fn a_200_record_batch_is_chunked_into_messages_under_128_kb() {
    let env = env().await;
    seed(&env.store, "sub", "user-1", "tenant-1", "viewer").await;
    env.store
        .subscribe("sub", "metrics")
        .await
        .expect("subscribed");
    let broadcaster = env.deps.broadcaster().expect("configured endpoint");

    let res = handler(big_batch(200, Some(1)), &broadcaster, "metrics").await;
    assert!(failures(&res).is_empty());
    let received = env.sink.received();
    assert!(
        received.len() >= 4,
        "400 KB of updates need several messages, got {}",
        received.len()
    );
    let mut seen = Vec::new();
    for r in &received {
        assert!(
            r.body.len() <= MAX_FRAME_BYTES,
            "message of {} bytes",
            r.body.len()
        );
        for u in r.json()["updates"].as_array().expect("updates") {
            seen.push(u["data"]["entity_id"].as_str().expect("id").to_string());
        }
    }
    let want: Vec<String> = (0..200).map(|i| format!("stream-{i:03}")).collect();
    assert_eq!(seen, want, "every update once, in stream order");
}

#[tokio::test]
async fn only_records_undelivered_for_reasons_other_than_gone_are_reported() {
    let env = env().await;
    seed(&env.store, "sub-gone", "user-1", "tenant-1", "viewer").await;
    seed(&env.store, "sub-ok", "user-2", "tenant-1", "viewer").await;
    seed(&env.store, "t1-broken", "user-3", "tenant-1", "viewer").await;
    for id in ["sub-gone", "sub-ok", "t1-broken"] {
        env.store
            .subscribe(id, "metrics")
            .await
            .expect("subscribed");
    }
    env.sink.mark_gone("sub-gone");
    env.sink.mark_failing("t1-broken");
    let broadcaster = env.deps.broadcaster().expect("configured endpoint");

    // Every 10th record carries tenant-1, one of whose subscribers answers 500; the
    // others carry no tenant and go nowhere.
    let res = handler(big_batch(30, Some(10)), &broadcaster, "metrics").await;
    let want: Vec<String> = [0, 10, 20]
        .iter()
        .map(|i| format!("{:021}", 1000 + i))
        .collect();
    assert_eq!(failures(&res), want);
    assert!(
        env.store.get("sub-gone").await.expect("get").is_none(),
        "gone subscriber deleted"
    );
    assert_eq!(
        env.sink
            .delivered_to("sub-ok")
            .iter()
            .map(|m| m["updates"].as_array().map_or(0, Vec::len))
            .sum::<usize>(),
        3
    );
}

#[tokio::test]
async fn a_failed_lookup_reports_the_whole_batch() {
    let env = env().await;
    let store = realtime_core::ConnectionStore::from_sdk_config(&env.sdk, "no-such-table");
    let client = realtime_core::ManagementApi::new(&env.sdk, &env.sink.endpoint);
    let broadcaster = realtime_core::Broadcaster::new(store, client, 8);
    let event: Event =
        serde_json::from_value(fixture("stream_metrics.json")).expect("stream event");
    let res = handler(event, &broadcaster, "metrics").await;
    assert_eq!(
        failures(&res),
        vec![
            "111000000000000000001",
            "111000000000000000002",
            "111000000000000000003"
        ]
    );
}
