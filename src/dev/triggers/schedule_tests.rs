//! Tests of schedule expressions: parsing, errors, and next fire times.

use chrono::{DateTime, Utc};

use super::cron::{CronError, CronField};
use super::schedule::{account_of, scheduled_event, Schedule, ScheduleError};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_else(|e| panic!("bad test time {s}: {e}"))
}

fn next(expr: &str, after: &str) -> Option<DateTime<Utc>> {
    Schedule::parse(expr)
        .unwrap_or_else(|e| panic!("{expr}: {e}"))
        .next_after(t(after))
}

fn nexts(expr: &str, after: &str, n: usize) -> Vec<String> {
    let s = Schedule::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
    let mut out = Vec::new();
    let mut at = t(after);
    for _ in 0..n {
        match s.next_after(at) {
            Some(x) => {
                out.push(x.format("%Y-%m-%dT%H:%MZ").to_string());
                at = x;
            }
            None => break,
        }
    }
    out
}

fn field_error(expr: &str) -> CronField {
    match Schedule::parse(expr) {
        Err(ScheduleError::Cron {
            source: CronError::Field { field, .. },
            ..
        }) => field,
        other => panic!("{expr}: expected a field error, got {other:?}"),
    }
}

#[test]
fn daily_at_two() {
    assert_eq!(
        next("cron(0 2 * * ? *)", "2026-12-02T13:00:00Z"),
        Some(t("2026-12-03T02:00:00Z"))
    );
    // Strictly after: at 02:00 exactly the next is tomorrow's.
    assert_eq!(
        next("cron(0 2 * * ? *)", "2026-12-03T02:00:00Z"),
        Some(t("2026-12-04T02:00:00Z"))
    );
    // Seconds are ignored: 01:59:30 -> 02:00.
    assert_eq!(
        next("cron(0 2 * * ? *)", "2026-12-03T01:59:30Z"),
        Some(t("2026-12-03T02:00:00Z"))
    );
}

#[test]
fn first_of_month() {
    assert_eq!(
        nexts("cron(0 4 1 * ? *)", "2026-12-02T13:00:00Z", 3),
        [
            "2027-01-01T04:00Z",
            "2027-02-01T04:00Z",
            "2027-03-01T04:00Z"
        ]
    );
}

#[test]
fn every_quarter_hour() {
    assert_eq!(
        nexts("cron(0/15 * * * ? *)", "2026-12-02T13:07:00Z", 4),
        [
            "2026-12-02T13:15Z",
            "2026-12-02T13:30Z",
            "2026-12-02T13:45Z",
            "2026-12-02T14:00Z"
        ]
    );
    assert_eq!(
        nexts("cron(*/20 * * * ? *)", "2026-12-02T23:50:00Z", 2),
        ["2026-12-03T00:00Z", "2026-12-03T00:20Z"]
    );
}

#[test]
fn weekdays_at_ten() {
    // 2026-12-04 is a Friday.
    assert_eq!(
        nexts("cron(0 10 ? * MON-FRI *)", "2026-12-04T11:00:00Z", 2),
        ["2026-12-07T10:00Z", "2026-12-08T10:00Z"]
    );
    // Numbers: 2-6 = MON-FRI.
    assert_eq!(
        nexts("cron(0 10 ? * 2-6 *)", "2026-12-04T11:00:00Z", 2),
        ["2026-12-07T10:00Z", "2026-12-08T10:00Z"]
    );
    // Lists of names, lower case, and a wrapping range.
    assert_eq!(
        nexts("cron(0 10 ? * sat,sun *)", "2026-12-04T11:00:00Z", 2),
        ["2026-12-05T10:00Z", "2026-12-06T10:00Z"]
    );
    assert_eq!(
        nexts("cron(0 10 ? * FRI-MON *)", "2026-12-04T11:00:00Z", 4),
        [
            "2026-12-05T10:00Z",
            "2026-12-06T10:00Z",
            "2026-12-07T10:00Z",
            "2026-12-11T10:00Z"
        ]
    );
}

#[test]
fn last_day_of_month() {
    assert_eq!(
        nexts("cron(0 12 L * ? *)", "2026-12-02T13:00:00Z", 4),
        [
            "2026-12-31T12:00Z",
            "2027-01-31T12:00Z",
            "2027-02-28T12:00Z",
            "2027-03-31T12:00Z"
        ]
    );
    // Leap year February, and L-1.
    assert_eq!(
        next("cron(0 12 L 2 ? *)", "2027-03-01T00:00:00Z"),
        Some(t("2028-02-29T12:00:00Z"))
    );
    assert_eq!(
        next("cron(0 12 L-1 * ? *)", "2026-12-02T13:00:00Z"),
        Some(t("2026-12-30T12:00:00Z"))
    );
}

#[test]
fn last_weekday_of_month() {
    // The last Friday (6L) of December 2026 is the 25th; of January 2027, the 29th.
    assert_eq!(
        nexts("cron(0 9 ? * 6L *)", "2026-12-02T13:00:00Z", 2),
        ["2026-12-25T09:00Z", "2027-01-29T09:00Z"]
    );
    // LW: the last weekday. 2027-01-31 is a Sunday -> Friday the 29th.
    assert_eq!(
        next("cron(0 9 LW * ? *)", "2027-01-01T00:00:00Z"),
        Some(t("2027-01-29T09:00:00Z"))
    );
    // L alone in day-of-week is Saturday.
    assert_eq!(
        next("cron(0 9 ? * L *)", "2026-12-02T13:00:00Z"),
        Some(t("2026-12-05T09:00:00Z"))
    );
}

#[test]
fn nth_weekday() {
    // The first Monday of each month: 2026-12-07, 2027-01-04, 2027-02-01.
    assert_eq!(
        nexts("cron(0 8 ? * 2#1 *)", "2026-12-02T13:00:00Z", 3),
        [
            "2026-12-07T08:00Z",
            "2027-01-04T08:00Z",
            "2027-02-01T08:00Z"
        ]
    );
    // The second Tuesday (3#2) of December 2026 is the 8th.
    assert_eq!(
        next("cron(0 8 ? * TUE#2 *)", "2026-12-02T13:00:00Z"),
        Some(t("2026-12-08T08:00:00Z"))
    );
}

#[test]
fn nearest_weekday() {
    // 2026-11-15 is a Sunday -> Monday the 16th; 2026-08-15 a Saturday -> the 14th.
    assert_eq!(
        next("cron(0 8 15W * ? *)", "2026-11-01T00:00:00Z"),
        Some(t("2026-11-16T08:00:00Z"))
    );
    assert_eq!(
        next("cron(0 8 15W * ? *)", "2026-08-01T00:00:00Z"),
        Some(t("2026-08-14T08:00:00Z"))
    );
    // 1W on Saturday 2026-08-01 stays in August: Monday the 3rd.
    assert_eq!(
        next("cron(0 8 1W * ? *)", "2026-07-31T00:00:00Z"),
        Some(t("2026-08-03T08:00:00Z"))
    );
    // 2026-12-15 is a Tuesday: itself.
    assert_eq!(
        next("cron(0 8 15W * ? *)", "2026-12-02T00:00:00Z"),
        Some(t("2026-12-15T08:00:00Z"))
    );
}

#[test]
fn huge_steps_do_not_overflow() {
    assert_eq!(
        nexts("cron(0/4294967295 * * * ? *)", "2026-12-02T13:07:00Z", 2),
        ["2026-12-02T14:00Z", "2026-12-02T15:00Z"]
    );
    assert_eq!(
        field_error("cron(0/4294967296 * * * ? *)"),
        CronField::Minutes
    );
}

#[test]
fn months_by_name_and_lists() {
    assert_eq!(
        nexts("cron(30 6 1 JAN,JUL ? *)", "2026-12-02T13:00:00Z", 2),
        ["2027-01-01T06:30Z", "2027-07-01T06:30Z"]
    );
    assert_eq!(
        nexts("cron(0 0,12 1-2 * ? *)", "2026-12-02T13:00:00Z", 3),
        [
            "2027-01-01T00:00Z",
            "2027-01-01T12:00Z",
            "2027-01-02T00:00Z"
        ]
    );
}

#[test]
fn year_field_bounds() {
    assert_eq!(
        next("cron(0 0 1 1 ? 2028)", "2026-12-02T13:00:00Z"),
        Some(t("2028-01-01T00:00:00Z"))
    );
    assert_eq!(
        nexts("cron(0 0 1 1 ? 2027-2029/2)", "2026-12-02T13:00:00Z", 3),
        ["2027-01-01T00:00Z", "2029-01-01T00:00Z"]
    );
    // All in the past: never again.
    assert_eq!(next("cron(0 0 1 1 ? 2025)", "2026-12-02T13:00:00Z"), None);
    // The last possible minute, then nothing.
    assert_eq!(
        next("cron(59 23 31 12 ? 2199)", "2199-12-31T23:58:00Z"),
        Some(t("2199-12-31T23:59:00Z"))
    );
    assert_eq!(next("cron(59 23 31 12 ? *)", "2199-12-31T23:59:00Z"), None);
    assert_eq!(field_error("cron(0 0 1 1 ? 2200)"), CronField::Year);
    assert_eq!(field_error("cron(0 0 1 1 ? 1969)"), CronField::Year);
    // February 30th never happens.
    assert_eq!(next("cron(0 0 30 2 ? *)", "2026-12-02T13:00:00Z"), None);
}

#[test]
fn rates() {
    let s = Schedule::parse("rate(1 minute)").unwrap();
    assert_eq!(
        s.next_after(t("2026-12-02T13:00:10Z")),
        Some(t("2026-12-02T13:01:10Z"))
    );
    let s = Schedule::parse("rate(5 minutes)").unwrap();
    let start = t("2026-12-02T13:00:10Z");
    // Anchored at the start: no drift however late we ask.
    assert_eq!(
        s.next_after_anchored(start, t("2026-12-02T13:05:10Z")),
        Some(t("2026-12-02T13:10:10Z"))
    );
    assert_eq!(
        s.next_after_anchored(start, t("2026-12-02T13:07:00Z")),
        Some(t("2026-12-02T13:10:10Z"))
    );
    assert_eq!(
        s.next_after_anchored(start, start),
        Some(t("2026-12-02T13:05:10Z"))
    );
    for (expr, minutes) in [
        ("rate(2 hours)", 120),
        ("rate(1 hour)", 60),
        ("rate(1 day)", 1440),
        ("rate(3 days)", 4320),
    ] {
        assert_eq!(
            Schedule::parse(expr).unwrap(),
            Schedule::Rate {
                period: chrono::Duration::minutes(minutes)
            }
        );
    }
}

#[test]
fn rate_errors() {
    for bad in [
        "rate(1 minutes)",
        "rate(5 minute)",
        "rate(0 minutes)",
        "rate(-1 minutes)",
        "rate(5 weeks)",
        "rate(five minutes)",
        "rate(5)",
    ] {
        assert!(
            matches!(Schedule::parse(bad), Err(ScheduleError::Rate { .. })),
            "{bad}: {:?}",
            Schedule::parse(bad)
        );
    }
    assert!(matches!(
        Schedule::parse("every 5 minutes"),
        Err(ScheduleError::Syntax { .. })
    ));
}

#[test]
fn cron_errors_name_the_field() {
    assert_eq!(field_error("cron(60 * * * ? *)"), CronField::Minutes);
    assert_eq!(field_error("cron(x * * * ? *)"), CronField::Minutes);
    assert_eq!(field_error("cron(0 24 * * ? *)"), CronField::Hours);
    assert_eq!(field_error("cron(0 0 32 * ? *)"), CronField::DayOfMonth);
    assert_eq!(field_error("cron(0 0 0 * ? *)"), CronField::DayOfMonth);
    assert_eq!(field_error("cron(0 0 * 13 ? *)"), CronField::Month);
    assert_eq!(field_error("cron(0 0 * FOO ? *)"), CronField::Month);
    assert_eq!(field_error("cron(0 0 ? * 8 *)"), CronField::DayOfWeek);
    assert_eq!(field_error("cron(0 0 ? * 3#6 *)"), CronField::DayOfWeek);
    assert_eq!(field_error("cron(0 0 ? * MON-XYZ *)"), CronField::DayOfWeek);
    assert_eq!(field_error("cron(0/0 * * * ? *)"), CronField::Minutes);
    assert_eq!(field_error("cron(0 ? * * ? *)"), CronField::Hours);
    assert_eq!(field_error("cron(0 L * * ? *)"), CronField::Hours);
    let err = Schedule::parse("cron(0 0 * * 1 *)").unwrap_err();
    assert!(
        matches!(
            err,
            ScheduleError::Cron {
                source: CronError::DayFields { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("must be `?`"), "{err}");
    assert!(matches!(
        Schedule::parse("cron(0 0 ? * ? *)"),
        Err(ScheduleError::Cron {
            source: CronError::DayFields { .. },
            ..
        })
    ));
    assert!(matches!(
        Schedule::parse("cron(0 0 * * ?)"),
        Err(ScheduleError::Cron {
            source: CronError::FieldCount { found: 5 },
            ..
        })
    ));
    let msg = Schedule::parse("cron(0 25 * * ? *)")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("hours field `25`"), "{msg}");
}

#[test]
fn the_scheduled_event() {
    let arn = "arn:aws:events:eu-west-1:000000000000:rule/nightly";
    let time = t("2026-12-03T02:00:00Z");
    let e = scheduled_event(arn, "eu-west-1", time, "t1");
    assert_eq!(e["version"], "0");
    assert_eq!(e["detail-type"], "Scheduled Event");
    assert_eq!(e["source"], "aws.events");
    assert_eq!(e["account"], "000000000000");
    assert_eq!(e["time"], "2026-12-03T02:00:00Z");
    assert_eq!(e["region"], "eu-west-1");
    assert_eq!(e["resources"], serde_json::json!([arn]));
    assert_eq!(e["detail"], serde_json::json!({}));
    let id = e["id"].as_str().unwrap();
    assert_eq!(
        id.split('-').map(str::len).collect::<Vec<_>>(),
        [8, 4, 4, 4, 12]
    );
    let other = scheduled_event(arn, "eu-west-1", t("2026-12-04T02:00:00Z"), "t1");
    assert_ne!(other["id"], e["id"]);
    assert_eq!(account_of("not-an-arn"), "123456789012");
}
