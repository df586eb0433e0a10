//! The events the scheduled jobs accept: EventBridge's scheduled event (no
//! overrides) or a manual invocation whose JSON object holds overrides.

use serde::de::DeserializeOwned;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum JobEventError {
    #[error("invalid job event: {0}")]
    Shape(String),
    #[error("invalid override `{name}`: {reason}")]
    Override { name: &'static str, reason: String },
}

/// Overrides from the event; `T::default()` (no overrides) for a scheduled event,
/// `null` or `{}`. `T` should deny unknown fields so a typo is an error, not a no-op.
pub fn parse_overrides<T: DeserializeOwned + Default>(event: Value) -> Result<T, JobEventError> {
    match &event {
        Value::Null => return Ok(T::default()),
        Value::Object(map) => {
            // EventBridge: {"source": "aws.events", "detail-type": "Scheduled Event", ...}
            if map.contains_key("detail-type")
                || map.get("source") == Some(&Value::from("aws.events"))
            {
                return Ok(T::default());
            }
        }
        other => {
            return Err(JobEventError::Shape(format!(
                "expected a JSON object, got {}",
                kind(other)
            )))
        }
    }
    serde_json::from_value(event).map_err(|e| JobEventError::Shape(e.to_string()))
}

/// A range check for an override, with the name the caller used in the event.
pub fn check_range(
    name: &'static str,
    value: Option<u64>,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Option<u64>, JobEventError> {
    match value {
        Some(v) if !range.contains(&v) => Err(JobEventError::Override {
            name,
            reason: format!("{v} is outside {}..={}", range.start(), range.end()),
        }),
        other => Ok(other),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// What a scheduled job's handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Event(#[from] JobEventError),
    #[error(transparent)]
    Db(#[from] crate::DbError),
}

impl From<tokio_postgres::Error> for JobError {
    fn from(e: tokio_postgres::Error) -> Self {
        JobError::Db(crate::DbError::Query(e))
    }
}

/// Milliseconds for reports; saturates instead of panicking on absurd durations.
pub fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Overrides {
        archive_after_days: Option<u64>,
    }

    #[test]
    fn scheduled_event_means_no_overrides() {
        let event = json!({
            "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
            "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2026-11-21T02:00:00Z", "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/barkbase-dev-property-archival-schedule"],
            "detail": {}
        });
        assert_eq!(
            parse_overrides::<Overrides>(event).expect("ok"),
            Overrides::default()
        );
        assert_eq!(
            parse_overrides::<Overrides>(json!({})).expect("ok"),
            Overrides::default()
        );
    }

    #[test]
    fn manual_overrides_are_strict() {
        let o: Overrides = parse_overrides(json!({"archiveAfterDays": 30})).expect("ok");
        assert_eq!(o.archive_after_days, Some(30));
        let err = parse_overrides::<Overrides>(json!({"archiveAfterDay": 30})).expect_err("typo");
        assert!(
            err.to_string().contains("unknown field `archiveAfterDay`"),
            "{err}"
        );
        let err =
            parse_overrides::<Overrides>(json!({"archiveAfterDays": -1})).expect_err("negative");
        assert!(err.to_string().starts_with("invalid job event"), "{err}");
        let err = parse_overrides::<Overrides>(json!("30")).expect_err("string");
        assert_eq!(
            err.to_string(),
            "invalid job event: expected a JSON object, got a string"
        );
    }
}
