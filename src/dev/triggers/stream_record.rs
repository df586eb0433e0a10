//! One DynamoDB stream record as Lambda hands it to a function: the
//! `Records[]` entry of a stream event, with the sequence number kept aside.

use aws_sdk_dynamodbstreams::types::Record;
use serde_json::{Map, Value};

use super::dynamo_json;

/// A stream record ready to be batched.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRecord {
    /// `dynamodb.SequenceNumber`: the record's place in its shard, and the
    /// `itemIdentifier` of `batchItemFailures`.
    pub sequence_number: String,
    /// The `Records[]` entry of the Lambda event.
    pub event: Value,
}

impl StreamRecord {
    /// A record with just a sequence number and a body (for tests and fakes).
    pub fn new(sequence_number: impl Into<String>, event: Value) -> Self {
        StreamRecord {
            sequence_number: sequence_number.into(),
            event,
        }
    }

    /// Lambda's view of a record read with GetRecords; `None` when the record has
    /// no sequence number (nothing to checkpoint it by).
    pub fn from_sdk(
        record: &Record,
        stream_arn: &str,
        region: &str,
        stream_view_type: Option<&str>,
    ) -> Option<StreamRecord> {
        let ddb = record.dynamodb()?;
        let seq = ddb.sequence_number()?.to_string();
        let mut d = Map::new();
        if let Some(t) = ddb.approximate_creation_date_time() {
            d.insert("ApproximateCreationDateTime".into(), Value::from(t.secs()));
        }
        let mut size = 0usize;
        for (name, image) in [
            ("Keys", ddb.keys()),
            ("NewImage", ddb.new_image()),
            ("OldImage", ddb.old_image()),
        ] {
            if let Some(m) = image {
                let v = dynamo_json::item(m);
                size += v.to_string().len();
                d.insert(name.into(), v);
            }
        }
        d.insert("SequenceNumber".into(), Value::from(seq.clone()));
        let size = ddb
            .size_bytes()
            .unwrap_or(i64::try_from(size).unwrap_or(i64::MAX));
        d.insert("SizeBytes".into(), Value::from(size));
        let view = ddb
            .stream_view_type()
            .map(|v| v.as_str().to_string())
            .or_else(|| stream_view_type.map(str::to_string));
        if let Some(v) = view {
            d.insert("StreamViewType".into(), Value::from(v));
        }
        let mut e = Map::new();
        if let Some(id) = record.event_id() {
            e.insert("eventID".into(), Value::from(id));
        }
        if let Some(name) = record.event_name() {
            e.insert("eventName".into(), Value::from(name.as_str()));
        }
        e.insert("eventVersion".into(), Value::from("1.1"));
        e.insert("eventSource".into(), Value::from("aws:dynamodb"));
        e.insert(
            "awsRegion".into(),
            Value::from(record.aws_region().unwrap_or(region)),
        );
        e.insert("dynamodb".into(), Value::Object(d));
        e.insert("eventSourceARN".into(), Value::from(stream_arn));
        if let Some(identity) = record.user_identity() {
            let mut i = Map::new();
            if let Some(p) = identity.principal_id() {
                i.insert("principalId".into(), Value::from(p));
            }
            if let Some(t) = identity.r#type() {
                i.insert("type".into(), Value::from(t));
            }
            e.insert("userIdentity".into(), Value::Object(i));
        }
        Some(StreamRecord {
            sequence_number: seq,
            event: Value::Object(e),
        })
    }
}

/// The Lambda event for a batch: `{"Records":[...]}`.
pub fn batch_event(records: &[StreamRecord]) -> Vec<u8> {
    let list: Vec<&Value> = records.iter().map(|r| &r.event).collect();
    serde_json::json!({ "Records": list })
        .to_string()
        .into_bytes()
}
