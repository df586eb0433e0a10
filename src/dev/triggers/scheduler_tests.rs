//! Tests of the scheduler: what a fire sends, which rules fire, shutdown.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::sync::watch;

use super::events::{OutcomeSummary, TriggerEvent};
use super::scheduler::{describe_next_at, fire_at, fire_now, run_schedules, run_schedules_from};
use super::test_support::{failure, recorder, FakeInvoker};
use crate::dev::deployed::{RuleTarget, ScheduleRule};
use crate::dev::invoke::Outcome;

fn rule(name: &str, expr: &str, enabled: bool) -> ScheduleRule {
    ScheduleRule {
        name: name.into(),
        arn: format!("arn:aws:events:us-east-1:123456789012:rule/{name}"),
        schedule_expression: expr.into(),
        enabled,
        targets: vec![RuleTarget {
            id: "t1".into(),
            function_name: format!("fn-{name}"),
            input: None,
        }],
    }
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[tokio::test]
async fn a_fire_sends_the_scheduled_event_or_the_constant_input() {
    let mut r = rule("nightly", "cron(0 2 * * ? *)", true);
    r.targets.push(RuleTarget {
        id: "t2".into(),
        function_name: "fn-other".into(),
        input: Some(r#"{"job":"archive"}"#.into()),
    });
    let inv = FakeInvoker::new(|_, f, _| {
        Ok(if f == "fn-other" {
            failure()
        } else {
            Outcome::Response(b"{}".to_vec())
        })
    });
    let (sink, events) = recorder();
    let time = t("2026-12-03T02:00:00Z");
    let fires = fire_at(&r, "us-east-1", time, inv.as_ref(), &sink).await;
    assert_eq!(fires.len(), 2);
    assert_eq!(fires[0].outcome, OutcomeSummary::Ok);
    assert!(matches!(
        fires[1].outcome,
        OutcomeSummary::FunctionError { .. }
    ));
    let mut calls = inv.calls();
    calls.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(calls[0].0, "fn-nightly");
    let e = &calls[0].1;
    assert_eq!(e["detail-type"], "Scheduled Event");
    assert_eq!(e["source"], "aws.events");
    assert_eq!(e["account"], "123456789012");
    assert_eq!(e["time"], "2026-12-03T02:00:00Z");
    assert_eq!(e["region"], "us-east-1");
    assert_eq!(e["resources"], json!([r.arn]));
    assert_eq!(
        calls[1],
        ("fn-other".to_string(), json!({"job": "archive"}))
    );
    let events = events.lock().unwrap().clone();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| matches!(
        e,
        TriggerEvent::Fired { rule, scheduled_time, .. } if rule == "nightly" && *scheduled_time == time
    )));
}

#[tokio::test]
async fn fire_now_ignores_the_state() {
    let r = rule("off", "rate(1 day)", false);
    let inv = FakeInvoker::ok();
    let (sink, events) = recorder();
    let fires = fire_now(&r, "us-east-1", inv.as_ref(), &sink).await;
    assert_eq!(fires.len(), 1);
    assert_eq!(inv.calls()[0].0, "fn-off");
    let now = Utc::now();
    let events = events.lock().unwrap().clone();
    assert!(matches!(
        &events[..],
        [TriggerEvent::Fired { scheduled_time, .. }] if (now - *scheduled_time).num_seconds() < 5
    ));
}

#[tokio::test]
async fn disabled_invalid_and_targetless_rules_never_fire() {
    let mut bare = rule("bare", "rate(1 minute)", true);
    bare.targets.clear();
    let rules = vec![
        rule("off", "rate(1 minute)", false),
        rule("bad", "cron(0 25 * * ? *)", true),
        bare,
    ];
    let inv = FakeInvoker::ok();
    let (sink, events) = recorder();
    let (_tx, rx) = watch::channel(false);
    // Nothing to run: returns at once.
    tokio::time::timeout(
        Duration::from_secs(5),
        run_schedules(rules, "us-east-1".into(), inv.clone(), sink, rx),
    )
    .await
    .expect("returns when no rule can fire");
    assert!(inv.calls().is_empty());
    let events = events.lock().unwrap().clone();
    assert!(
        matches!(
            &events[..],
            [
                TriggerEvent::Skipped { rule: a, reason: ra },
                TriggerEvent::Invalid { rule: b, reason: rb },
                TriggerEvent::Skipped { rule: c, .. },
            ] if a == "off" && ra.contains("DISABLED") && b == "bad" && rb.contains("hours") && c == "bare"
        ),
        "{events:?}"
    );
}

#[tokio::test]
async fn an_enabled_rate_fires_on_its_grid_and_stops_at_shutdown() {
    // Counted from a start 59.5 s ago: the first fire is due in half a second.
    let start = Utc::now() - chrono::Duration::milliseconds(59_500);
    let inv = FakeInvoker::ok();
    let (sink, events) = recorder();
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(run_schedules_from(
        start,
        vec![
            rule("often", "rate(1 minute)", true),
            rule("off", "rate(1 minute)", false),
        ],
        "us-east-1".into(),
        inv.clone(),
        sink,
        rx,
    ));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while inv.calls().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = tx.send(true);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("stops at shutdown")
        .expect("no panic");
    let calls = inv.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].0, "fn-often");
    let expected = start + chrono::Duration::minutes(1);
    assert_eq!(
        calls[0].1["time"],
        expected.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    );
    let events = events.lock().unwrap().clone();
    assert!(events.iter().any(|e| matches!(
        e,
        TriggerEvent::Fired { rule, scheduled_time, .. } if rule == "often" && *scheduled_time == expected
    )));
}

#[test]
fn startup_lines() {
    let now = t("2026-12-02T13:00:00Z");
    assert_eq!(
        describe_next_at(&rule("nightly", "cron(0 2 * * ? *)", true), now),
        "nightly cron(0 2 * * ? *): next 2026-12-03T02:00:00Z -> fn-nightly"
    );
    assert_eq!(
        describe_next_at(&rule("often", "rate(5 minutes)", true), now),
        "often rate(5 minutes): next 2026-12-02T13:05:00Z -> fn-often"
    );
    assert_eq!(
        describe_next_at(&rule("off", "rate(5 minutes)", false), now),
        "off rate(5 minutes): disabled"
    );
    assert!(describe_next_at(&rule("bad", "rate(5 minute)", true), now)
        .starts_with("bad rate(5 minute): invalid"));
}
