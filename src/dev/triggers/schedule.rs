//! EventBridge schedule expressions (`rate(...)`, `cron(...)`) and the
//! `Scheduled Event` a rule hands its targets.

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

use super::cron::{CronError, CronExpr};

/// Why a schedule expression cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "`{expr}` is not a schedule expression: expected `rate(value unit)` or `cron(fields)`"
    )]
    Syntax { expr: String },
    #[error("`{expr}`: {reason}")]
    Rate { expr: String, reason: String },
    #[error("`{expr}`: {source}")]
    Cron {
        expr: String,
        #[source]
        source: CronError,
    },
}

/// A parsed schedule expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// `rate(N unit)`: every `period`, counted from a start instant. AWS counts
    /// from the rule's creation; locally the start is when the scheduler starts
    /// (`barkctl dev`), so `rate(5 minutes)` first fires 5 minutes after it.
    Rate { period: Duration },
    /// `cron(...)`: the minutes (UTC) the fields match.
    Cron(CronExpr),
}

impl Schedule {
    /// Parse `rate(1 minute)`, `rate(5 minutes)`, `rate(2 hours)`, `rate(1 day)`,
    /// `cron(0 2 * * ? *)`. As AWS: the singular unit only for 1, the plural
    /// only for more.
    pub fn parse(expr: &str) -> Result<Schedule, ScheduleError> {
        let trimmed = expr.trim();
        if let Some(body) = trimmed
            .strip_prefix("rate(")
            .and_then(|b| b.strip_suffix(')'))
        {
            return parse_rate(expr, body).map(|period| Schedule::Rate { period });
        }
        if let Some(body) = trimmed
            .strip_prefix("cron(")
            .and_then(|b| b.strip_suffix(')'))
        {
            return CronExpr::parse(body).map(Schedule::Cron).map_err(|source| {
                ScheduleError::Cron {
                    expr: expr.to_string(),
                    source,
                }
            });
        }
        Err(ScheduleError::Syntax {
            expr: expr.to_string(),
        })
    }

    /// The first instant strictly after `t` the schedule fires. A rate counts
    /// from `t` itself here (`t + period`); the scheduler counts from its start
    /// with [`Schedule::next_after_anchored`].
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.next_after_anchored(t, t)
    }

    /// The first instant strictly after `t` the schedule fires, rates counting
    /// `start + k * period` (k >= 1) so fires never drift; crons ignore `start`.
    pub fn next_after_anchored(
        &self,
        start: DateTime<Utc>,
        t: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Cron(c) => c.next_after(t),
            Schedule::Rate { period } => {
                let p = period.num_milliseconds();
                if p <= 0 {
                    return None;
                }
                let elapsed = (t - start).num_milliseconds();
                let k = if elapsed < 0 { 1 } else { elapsed / p + 1 };
                start.checked_add_signed(Duration::milliseconds(k.checked_mul(p)?))
            }
        }
    }
}

fn parse_rate(expr: &str, body: &str) -> Result<Duration, ScheduleError> {
    let err = |reason: &str| ScheduleError::Rate {
        expr: expr.to_string(),
        reason: reason.to_string(),
    };
    let parts: Vec<&str> = body.split_whitespace().collect();
    let [value, unit] = parts[..] else {
        return Err(err("a rate is `rate(value unit)`, e.g. `rate(5 minutes)`"));
    };
    let n: i64 = value
        .parse()
        .map_err(|_| err("the rate value must be a positive whole number"))?;
    if n <= 0 {
        return Err(err("the rate value must be a positive whole number"));
    }
    let (singular, minutes_per) = match unit {
        "minute" => (true, 1),
        "minutes" => (false, 1),
        "hour" => (true, 60),
        "hours" => (false, 60),
        "day" => (true, 1440),
        "days" => (false, 1440),
        _ => return Err(err("the rate unit must be minute(s), hour(s) or day(s)")),
    };
    if singular != (n == 1) {
        return Err(err(if singular {
            "a singular unit only goes with 1 (`rate(1 minute)`)"
        } else {
            "a value of 1 takes the singular unit (`rate(1 minute)`)"
        }));
    }
    n.checked_mul(minutes_per)
        .filter(|m| *m <= 1_000_000_000)
        .map(Duration::minutes)
        .ok_or_else(|| err("the rate is too long"))
}

/// The account id in a rule ARN (`arn:aws:events:<region>:<account>:rule/<name>`),
/// else the emulator's usual `123456789012`.
pub fn account_of(rule_arn: &str) -> String {
    rule_arn
        .split(':')
        .nth(4)
        .filter(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or("123456789012")
        .to_string()
}

/// A UUID-shaped id derived from the rule, the scheduled time and a salt (the
/// target id): stable for one fire, different across fires.
fn event_id(rule_arn: &str, time: &DateTime<Utc>, salt: &str) -> String {
    let mut h = Sha256::new();
    h.update(rule_arn.as_bytes());
    h.update([0]);
    h.update(time.to_rfc3339().as_bytes());
    h.update([0]);
    h.update(salt.as_bytes());
    let hex = hex::encode(&h.finalize()[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The event EventBridge sends a rule's targets when the schedule fires.
pub fn scheduled_event(
    rule_arn: &str,
    region: &str,
    time: DateTime<Utc>,
    salt: &str,
) -> serde_json::Value {
    serde_json::json!({
        "version": "0",
        "id": event_id(rule_arn, &time, salt),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account_of(rule_arn),
        "time": time.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    })
}
