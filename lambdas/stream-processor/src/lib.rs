//! DynamoDB stream batches of the metrics table -> `METRICS_UPDATE` messages.
//!
//! An update goes to the subscribers of the metrics channel of the item's tenant
//! (its `tenantId` attribute) and to no one else: channels are per tenant. An item
//! without a `tenantId` goes nowhere; such records are counted in the log line of the
//! batch (`untenanted`) and not retried. Updates are chunked so that every frame
//! stays within 128 KB. The partial batch response names the records of any chunk that could not
//! be delivered to some connection for a reason other than 410 Gone.

use std::collections::{BTreeMap, BTreeSet};

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use chrono::{TimeZone, Utc};
use realtime_core::envelope::{Envelope, MetricsUpdate, Payload, MAX_FRAME_BYTES};
use realtime_core::{Broadcaster, ConnectionSender};
use serde_json::Value;

/// One record, converted.
struct Update {
    record: usize,
    update: MetricsUpdate,
    /// Length of the update's JSON, for chunking without re-encoding.
    encoded_len: usize,
    tenant: Option<String>,
}

pub async fn handler<S: ConnectionSender>(
    event: Event,
    broadcaster: &Broadcaster<S>,
    metrics_channel: &str,
) -> DynamoDbEventResponse {
    let records = &event.records;
    let mut failed: BTreeSet<usize> = BTreeSet::new();
    let mut updates = Vec::with_capacity(records.len());
    for (i, record) in records.iter().enumerate() {
        match convert(i, record) {
            Ok(u) => updates.push(u),
            Err(reason) => {
                tracing::error!(event_id = %record.event_id, %reason, "record cannot be sent");
                failed.insert(i);
            }
        }
    }

    match deliver(&updates, broadcaster, metrics_channel).await {
        Ok(undelivered) => failed.extend(undelivered),
        Err(e) => {
            // Without the recipients nothing was sent: the whole batch is retried.
            tracing::error!(error = %e, "recipient lookup failed");
            failed.extend(0..records.len());
        }
    }

    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures = failed
        .into_iter()
        .map(|i| {
            let r = &records[i];
            let mut f = DynamoDbBatchItemFailure::default();
            f.item_identifier = Some(
                r.change
                    .sequence_number
                    .clone()
                    .unwrap_or_else(|| r.event_id.clone()),
            );
            f
        })
        .collect();
    response
}

fn convert(index: usize, record: &EventRecord) -> Result<Update, String> {
    // REMOVE carries only the old image; everything else is shown as it is now.
    let image = if record.event_name == "REMOVE" {
        &record.change.old_image
    } else {
        &record.change.new_image
    };
    // serde_dynamo turns the image (attribute values) into the plain item.
    let data: Value = serde_json::Value::Object(
        serde_dynamo::from_item(image.clone()).map_err(|e| format!("image: {e}"))?,
    );
    let tenant = data
        .get("tenantId")
        .and_then(Value::as_str)
        .map(str::to_string);
    let update = MetricsUpdate {
        event_type: record.event_name.clone(),
        timestamp: record
            .change
            .approximate_creation_date_time
            .timestamp_millis(),
        data,
    };
    let encoded_len = serde_json::to_string(&update)
        .map_err(|e| e.to_string())?
        .len();
    Ok(Update {
        record: index,
        update,
        encoded_len,
        tenant,
    })
}

/// Sends every update to its recipients; returns the records that some recipient did
/// not get.
async fn deliver<S: ConnectionSender>(
    updates: &[Update],
    broadcaster: &Broadcaster<S>,
    metrics_channel: &str,
) -> Result<BTreeSet<usize>, realtime_core::StoreError> {
    let mut failed = BTreeSet::new();
    if updates.is_empty() {
        return Ok(failed);
    }
    let store = broadcaster.store();
    let mut by_tenant: BTreeMap<&str, Vec<&Update>> = BTreeMap::new();
    let mut untenanted = 0usize;
    for u in updates {
        match &u.tenant {
            Some(t) => by_tenant.entry(t.as_str()).or_default().push(u),
            None => untenanted += 1,
        }
    }
    if untenanted > 0 {
        tracing::warn!(
            untenanted,
            "records without a `tenantId` were sent to no one"
        );
    }
    let mut groups: Vec<(Vec<String>, Vec<&Update>)> = Vec::new();
    for (tenant, tenant_updates) in by_tenant {
        let ids = store.channel_subscribers(tenant, metrics_channel).await?;
        groups.push((ids, tenant_updates));
    }

    for (ids, group_updates) in groups {
        if ids.is_empty() {
            continue;
        }
        for chunk in chunks(&group_updates, &mut failed) {
            let payload = Payload::MetricsUpdate(chunk.iter().map(|u| u.update.clone()).collect());
            let frame = match Envelope::new(payload).and_then(|e| e.to_bytes()) {
                Ok(f) => f,
                Err(e) => {
                    tracing::error!(error = %e, "chunk not encodable");
                    failed.extend(chunk.iter().map(|u| u.record));
                    continue;
                }
            };
            let delivery = broadcaster.send_to(&ids, &frame).await;
            if !delivery.failed_ids.is_empty() {
                failed.extend(chunk.iter().map(|u| u.record));
            }
        }
    }
    Ok(failed)
}

/// Bytes of a `METRICS_UPDATE` frame with no updates (its timestamp has a fixed width).
fn envelope_overhead() -> usize {
    let epoch = Utc.timestamp_opt(0, 0).single().unwrap_or_default();
    Envelope::at(Payload::MetricsUpdate(Vec::new()), epoch)
        .map(|e| e.to_json().to_string().len())
        .unwrap_or(128)
}

/// Splits updates, in order, into runs whose frame fits the limit. An update too big
/// for a frame on its own is marked failed.
fn chunks<'a>(updates: &[&'a Update], failed: &mut BTreeSet<usize>) -> Vec<Vec<&'a Update>> {
    let overhead = envelope_overhead();
    let mut out: Vec<Vec<&Update>> = Vec::new();
    let mut current: Vec<&Update> = Vec::new();
    let mut size = overhead;
    for &u in updates {
        if overhead + u.encoded_len > MAX_FRAME_BYTES {
            tracing::error!(
                record = u.record,
                bytes = u.encoded_len,
                "update alone exceeds the frame limit"
            );
            failed.insert(u.record);
            continue;
        }
        // One comma between array elements.
        let added = u.encoded_len + usize::from(!current.is_empty());
        if size + added > MAX_FRAME_BYTES {
            out.push(std::mem::take(&mut current));
            size = overhead;
            current.push(u);
            size += u.encoded_len;
        } else {
            current.push(u);
            size += added;
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod conversion_tests {
    use super::*;
    use serde_json::json;

    fn record(image: Value) -> EventRecord {
        serde_json::from_value(json!({
            "eventID": "1", "eventName": "INSERT", "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
            "dynamodb": {"ApproximateCreationDateTime": 1763726400, "Keys": {},
                "NewImage": image, "SequenceNumber": "1", "SizeBytes": 1,
                "StreamViewType": "NEW_IMAGE"},
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x"
        }))
        .expect("record")
    }

    #[test]
    fn every_attribute_type_becomes_plain_json() {
        let r = record(json!({
            "id": {"S": "stream-001"}, "value": {"N": "1234"}, "ratio": {"N": "0.5"},
            "neg": {"N": "-3"}, "ok": {"BOOL": true}, "none": {"NULL": true},
            "tags": {"SS": ["a", "b"]}, "sizes": {"NS": ["1", "2.5"]},
            "list": {"L": [{"S": "x"}, {"N": "-3"}]}, "map": {"M": {"inner": {"S": "y"}}},
            "tenantId": {"S": "t1"}
        }));
        let u = convert(0, &r).expect("converts");
        assert_eq!(u.tenant.as_deref(), Some("t1"));
        assert_eq!(
            u.update.data,
            json!({
                "id": "stream-001", "value": 1234, "ratio": 0.5, "neg": -3, "ok": true,
                "none": null, "tags": ["a", "b"], "sizes": [1, 2.5], "list": ["x", -3],
                "map": {"inner": "y"}, "tenantId": "t1"
            })
        );
    }
}
