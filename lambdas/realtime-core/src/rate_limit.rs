//! Per-connection rate limit: a token bucket kept in the connection's own item
//! (`rlTokens`, `rlAt`, `rlStrikes`), so every function instance that handles the
//! connection's messages sees the same bucket. A message takes one token; tokens come
//! back at `per_second` up to `burst`. A message over the limit is a strike. Strikes
//! are forgiven only when the bucket has refilled to `burst` (the client kept quiet
//! for `burst / per_second` seconds), not by the odd message that gets through: a
//! client that keeps sending above the rate, at any multiple of it, collects
//! `strikes` strikes and is closed, while one burst over the limit followed by calm
//! is not.
//!
//! The bucket is read and written with an optimistic condition on `rlAt`, so two
//! concurrent messages cannot both spend the last token.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::store::{Connection, ConnectionStore, StoreError};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateSettings {
    pub per_second: f64,
    pub burst: f64,
    /// Over-limit messages since the bucket was last full before the connection is
    /// closed.
    pub strikes: u32,
}

impl Default for RateSettings {
    fn default() -> Self {
        Self {
            per_second: 10.0,
            burst: 20.0,
            strikes: 10,
        }
    }
}

/// The bucket as stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub tokens: f64,
    /// Epoch milliseconds of the last update.
    pub at_ms: i64,
    pub strikes: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Over the limit; `strikes` since the bucket was last full.
    Limited {
        strikes: u32,
    },
    /// Over the limit `strikes` times since the bucket was last full: close the
    /// connection.
    Close,
}

/// One message at `now_ms`: the bucket after it and the verdict. A missing bucket
/// starts full.
pub fn take(bucket: Option<Bucket>, now_ms: i64, s: &RateSettings) -> (Bucket, Verdict) {
    let b = bucket.unwrap_or(Bucket {
        tokens: s.burst,
        at_ms: now_ms,
        strikes: 0,
    });
    let elapsed = (now_ms - b.at_ms).max(0) as f64 / 1000.0;
    let tokens = (b.tokens + elapsed * s.per_second).min(s.burst);
    // A full bucket forgives the strikes.
    let strikes = if tokens >= s.burst { 0 } else { b.strikes };
    if tokens >= 1.0 {
        let next = Bucket {
            tokens: tokens - 1.0,
            at_ms: now_ms,
            strikes,
        };
        return (next, Verdict::Allowed);
    }
    let strikes = strikes.saturating_add(1);
    let next = Bucket {
        tokens,
        at_ms: now_ms,
        strikes,
    };
    if strikes >= s.strikes.max(1) {
        (next, Verdict::Close)
    } else {
        (next, Verdict::Limited { strikes })
    }
}

fn bucket_of(item: &HashMap<String, AttributeValue>) -> Option<Bucket> {
    let n = |k: &str| match item.get(k) {
        Some(AttributeValue::N(v)) => v.parse::<f64>().ok(),
        _ => None,
    };
    Some(Bucket {
        tokens: n("rlTokens")?,
        at_ms: n("rlAt")? as i64,
        strikes: n("rlStrikes").unwrap_or(0.0) as u32,
    })
}

const ATTEMPTS: usize = 5;

impl ConnectionStore {
    /// Spends one token of the connection's bucket. `None`: the connection is not
    /// stored (gone, or never connected).
    pub async fn take_token(
        &self,
        connection_id: &str,
        now_ms: i64,
        settings: &RateSettings,
    ) -> Result<Option<(Connection, Verdict)>, StoreError> {
        for _ in 0..ATTEMPTS {
            let out = self
                .client()
                .get_item()
                .table_name(self.table())
                .key("connectionId", AttributeValue::S(connection_id.to_string()))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| self.err("GetItem", e))?;
            let Some(item) = out.item() else {
                return Ok(None);
            };
            let conn = self.connection_from(item)?;
            let old = bucket_of(item);
            let (next, verdict) = take(old, now_ms, settings);
            let mut update = self
                .client()
                .update_item()
                .table_name(self.table())
                .key("connectionId", AttributeValue::S(connection_id.to_string()))
                .update_expression("SET rlTokens = :t, rlAt = :now, rlStrikes = :s")
                .expression_attribute_values(":t", AttributeValue::N(format!("{:.3}", next.tokens)))
                .expression_attribute_values(":now", AttributeValue::N(next.at_ms.to_string()))
                .expression_attribute_values(":s", AttributeValue::N(next.strikes.to_string()));
            update = match old {
                Some(b) => update
                    .condition_expression("attribute_exists(userId) AND rlAt = :old")
                    .expression_attribute_values(":old", AttributeValue::N(b.at_ms.to_string())),
                None => update.condition_expression(
                    "attribute_exists(userId) AND attribute_not_exists(rlAt)",
                ),
            };
            match update.send().await {
                Ok(_) => return Ok(Some((conn, verdict))),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
                {
                    // Another message updated the bucket (or the connection left):
                    // read it again.
                    continue;
                }
                Err(e) => return Err(self.err("UpdateItem", e)),
            }
        }
        Err(StoreError::Dynamo {
            operation: "UpdateItem",
            table: self.table().to_string(),
            message: format!("rate-limit bucket still contended after {ATTEMPTS} attempts"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> RateSettings {
        RateSettings {
            per_second: 10.0,
            burst: 20.0,
            strikes: 3,
        }
    }

    #[test]
    fn a_full_bucket_allows_the_burst_then_limits() {
        let s = settings();
        let mut b = None;
        for i in 0..20 {
            let (next, v) = take(b, 1_000, &s);
            assert_eq!(v, Verdict::Allowed, "message {i}");
            b = Some(next);
        }
        let (next, v) = take(b, 1_000, &s);
        assert_eq!(v, Verdict::Limited { strikes: 1 });
        let (next, v) = take(Some(next), 1_000, &s);
        assert_eq!(v, Verdict::Limited { strikes: 2 });
        let (_, v) = take(Some(next), 1_000, &s);
        assert_eq!(v, Verdict::Close);
    }

    #[test]
    fn tokens_come_back_at_the_rate_and_only_a_full_bucket_forgives_strikes() {
        let s = settings();
        let empty = Bucket {
            tokens: 0.0,
            at_ms: 0,
            strikes: 2,
        };
        // 50 ms at 10/s is half a token: still limited.
        assert_eq!(take(Some(empty), 50, &s).1, Verdict::Close);
        // A token came back: allowed, but the strikes stay.
        let (next, v) = take(Some(empty), 100, &s);
        assert_eq!(v, Verdict::Allowed);
        assert_eq!(next.strikes, 2);
        assert_eq!(take(Some(next), 100, &s).1, Verdict::Close);
        // 2 s of quiet refill the bucket to the burst (not beyond): strikes forgiven.
        let (next, v) = take(Some(empty), 60_000, &s);
        assert_eq!(v, Verdict::Allowed);
        assert_eq!(next.strikes, 0);
        assert!((next.tokens - 19.0).abs() < 1e-9, "{}", next.tokens);
    }

    #[test]
    fn a_client_at_any_multiple_of_the_rate_is_closed_one_burst_is_not() {
        let s = RateSettings {
            strikes: 10,
            ..settings()
        };
        for multiple in [1.5_f64, 2.0, 3.0, 10.0] {
            let gap = 1000.0 / (10.0 * multiple);
            let mut b = None;
            let closed = (0..2000).find(|&i| {
                let (next, v) = take(b, (i as f64 * gap) as i64, &s);
                b = Some(next);
                v == Verdict::Close
            });
            assert!(closed.is_some(), "{multiple}x the rate was never closed");
        }
        // 25 messages at once (5 over the burst), then one a second: never closed.
        let mut b = None;
        for _ in 0..25 {
            b = Some(take(b, 0, &s).0);
        }
        for t in 1..100 {
            let (next, v) = take(b, t * 1000, &s);
            assert_eq!(v, Verdict::Allowed, "at {t} s");
            b = Some(next);
        }
        assert_eq!(b.map(|b| b.strikes), Some(0));
    }

    #[test]
    fn three_times_the_rate_is_limited_about_two_thirds_of_the_time() {
        let s = RateSettings {
            strikes: u32::MAX,
            ..settings()
        };
        let mut b = None;
        let mut allowed = 0;
        // 30 messages a second for 10 s.
        for i in 0..300 {
            let (next, v) = take(b, i * 1000 / 30, &s);
            b = Some(next);
            allowed += usize::from(v == Verdict::Allowed);
        }
        // burst 20 + 10 s x 10/s = 120 (one token of slack for the last refill).
        assert!((119..=121).contains(&allowed), "{allowed}");
    }
}
