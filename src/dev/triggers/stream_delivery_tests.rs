//! Tests of batch delivery: retries, drops, bisection, partial batch responses.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;

use super::events::{EventSink, TriggerEvent};
use super::stream_delivery::{deliver, DeliveryConfig, DeliveryReport};
use super::stream_record::StreamRecord;
use super::test_support::{failure, recorder, seqs_of, FakeInvoker};
use crate::dev::invoke::{InvokeError, Outcome};

fn records(n: u32) -> Vec<StreamRecord> {
    (1..=n)
        .map(|i| {
            let seq = format!("{}", 100 + i);
            StreamRecord::new(
                seq.clone(),
                json!({"eventName": "INSERT", "dynamodb": {"SequenceNumber": seq}}),
            )
        })
        .collect()
}

fn cfg(max_retries: Option<u32>, bisect: bool, partial: bool) -> DeliveryConfig {
    DeliveryConfig {
        mapping: "m-1".into(),
        function: "fn".into(),
        max_retries,
        bisect_on_error: bisect,
        report_batch_item_failures: partial,
        retry_delay: Duration::ZERO,
    }
}

async fn run(
    recs: &[StreamRecord],
    cfg: &DeliveryConfig,
    invoker: &Arc<FakeInvoker>,
) -> (DeliveryReport, Vec<TriggerEvent>) {
    let (sink, events): (EventSink, _) = recorder();
    let (_tx, rx) = watch::channel(false);
    let report = deliver(recs, cfg, invoker.as_ref(), &sink, &rx).await;
    let events = events.lock().map(|e| e.clone()).unwrap_or_default();
    (report, events)
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn success_is_one_invocation() {
    let inv = FakeInvoker::ok();
    let (report, events) = run(&records(3), &cfg(Some(2), false, false), &inv).await;
    assert_eq!(
        report,
        DeliveryReport {
            invocations: 1,
            dropped: 0,
            completed: true
        }
    );
    assert_eq!(inv.batches(), [strs(&["101", "102", "103"])]);
    assert_eq!(inv.calls()[0].0, "fn");
    assert!(matches!(
        &events[..],
        [TriggerEvent::Batch { records: 3, attempt: 1, first_seq, last_seq, .. }]
            if first_seq == "101" && last_seq == "103"
    ));
}

#[tokio::test]
async fn retry_then_success() {
    let inv = FakeInvoker::new(|n, _, _| {
        if n < 2 {
            Ok(Outcome::Timeout { seconds: 3 })
        } else {
            Ok(Outcome::Response(b"{}".to_vec()))
        }
    });
    let (report, events) = run(&records(2), &cfg(Some(5), false, false), &inv).await;
    assert_eq!(report.invocations, 3);
    assert_eq!(report.dropped, 0);
    assert!(report.completed);
    assert_eq!(inv.batches(), vec![strs(&["101", "102"]); 3]);
    let attempts: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            TriggerEvent::Batch { attempt, .. } => Some(*attempt),
            _ => None,
        })
        .collect();
    assert_eq!(attempts, [1, 2, 3]);
    let retried = events
        .iter()
        .filter(|e| matches!(e, TriggerEvent::Retried { .. }))
        .count();
    assert_eq!(retried, 2);
}

#[tokio::test]
async fn retries_exhausted_reports_the_drop() {
    let inv = FakeInvoker::new(|_, _, _| Ok(failure()));
    let (report, events) = run(&records(3), &cfg(Some(2), false, false), &inv).await;
    // The first attempt and two retries.
    assert_eq!(report.invocations, 3);
    assert_eq!(report.dropped, 3);
    assert!(report.completed);
    let dropped: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            TriggerEvent::BatchDropped {
                first_seq,
                last_seq,
                records,
                reason,
                mapping,
            } => Some((
                mapping.clone(),
                first_seq.clone(),
                last_seq.clone(),
                *records,
                reason.clone(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0].0, "m-1");
    assert_eq!(
        (dropped[0].1.as_str(), dropped[0].2.as_str(), dropped[0].3),
        ("101", "103", 3)
    );
    assert!(dropped[0].4.contains("Boom: poisoned"), "{}", dropped[0].4);
    assert!(dropped[0].4.contains("after 2 retries"), "{}", dropped[0].4);
}

#[tokio::test]
async fn zero_retries_drops_after_one_attempt() {
    let inv = FakeInvoker::new(|_, _, _| {
        Ok(Outcome::Crashed {
            message: "exit 1".into(),
        })
    });
    let (report, _) = run(&records(1), &cfg(Some(0), false, false), &inv).await;
    assert_eq!((report.invocations, report.dropped), (1, 1));
}

#[tokio::test]
async fn unlimited_retries_keep_going_until_success() {
    let inv = FakeInvoker::new(|n, _, _| {
        if n < 50 {
            Ok(failure())
        } else {
            Ok(Outcome::Response(Vec::new()))
        }
    });
    let (report, _) = run(&records(1), &cfg(None, false, false), &inv).await;
    assert_eq!((report.invocations, report.dropped), (51, 0));
}

#[tokio::test]
async fn bisect_isolates_the_poisoned_record() {
    // Any batch holding 106 fails.
    let inv = FakeInvoker::new(|_, _, p| {
        if seqs_of(p).iter().any(|s| s == "106") {
            Ok(failure())
        } else {
            Ok(Outcome::Response(b"{}".to_vec()))
        }
    });
    let (report, events) = run(&records(8), &cfg(Some(1), true, false), &inv).await;
    assert_eq!(
        inv.batches(),
        vec![
            strs(&["101", "102", "103", "104", "105", "106", "107", "108"]),
            strs(&["101", "102", "103", "104"]),
            strs(&["105", "106", "107", "108"]),
            strs(&["105", "106"]),
            strs(&["105"]),
            strs(&["106"]),
            // One retry of the single record, then it is dropped.
            strs(&["106"]),
            strs(&["107", "108"]),
        ]
    );
    assert_eq!(report.dropped, 1);
    assert!(report.completed);
    let bisected = events
        .iter()
        .filter(|e| matches!(e, TriggerEvent::Bisected { .. }))
        .count();
    assert_eq!(bisected, 3);
    assert!(events.iter().any(|e| matches!(
        e,
        TriggerEvent::BatchDropped { first_seq, last_seq, records: 1, .. }
            if first_seq == "106" && last_seq == "106"
    )));
}

fn item_failures(ids: &[&str]) -> Outcome {
    let list: Vec<_> = ids
        .iter()
        .map(|id| json!({ "itemIdentifier": id }))
        .collect();
    Outcome::Response(
        json!({ "batchItemFailures": list })
            .to_string()
            .into_bytes(),
    )
}

#[tokio::test]
async fn partial_failure_resumes_from_the_lowest_reported_record() {
    let inv = FakeInvoker::new(|n, _, _| {
        Ok(match n {
            // 104 and 103 failed: resume at 103.
            0 => item_failures(&["104", "103"]),
            _ => item_failures(&[]),
        })
    });
    let (report, events) = run(&records(5), &cfg(Some(3), false, true), &inv).await;
    assert_eq!(
        inv.batches(),
        vec![
            strs(&["101", "102", "103", "104", "105"]),
            strs(&["103", "104", "105"])
        ]
    );
    assert_eq!((report.invocations, report.dropped), (2, 0));
    assert!(events.iter().any(|e| matches!(
        e,
        TriggerEvent::PartialFailure { failed, .. } if failed == &strs(&["104", "103"])
    )));
    assert!(events.iter().any(|e| matches!(
        e,
        TriggerEvent::Retried { first_seq, records: 3, attempt: 2, .. } if first_seq == "103"
    )));
}

#[tokio::test]
async fn partial_failure_retries_are_counted_and_dropped() {
    let inv = FakeInvoker::new(|_, _, _| Ok(item_failures(&["105"])));
    let (report, events) = run(&records(5), &cfg(Some(1), false, true), &inv).await;
    assert_eq!(
        inv.batches(),
        vec![strs(&["101", "102", "103", "104", "105"]), strs(&["105"])]
    );
    assert_eq!(report.dropped, 1);
    assert!(events.iter().any(|e| matches!(
        e,
        TriggerEvent::BatchDropped { first_seq, records: 1, .. } if first_seq == "105"
    )));
}

#[tokio::test]
async fn item_failure_responses_success_and_whole_failure() {
    // Success: no key, null, empty list, not JSON; and without the setting.
    for body in [
        &b"{}"[..],
        b"{\"batchItemFailures\":null}",
        b"{\"batchItemFailures\":[]}",
        b"ok",
    ] {
        let inv = FakeInvoker::new(move |_, _, _| Ok(Outcome::Response(body.to_vec())));
        let (report, _) = run(&records(2), &cfg(Some(0), false, true), &inv).await;
        assert_eq!(
            (report.invocations, report.dropped),
            (1, 0),
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
    let inv = FakeInvoker::new(|_, _, _| Ok(item_failures(&["101"])));
    let (report, _) = run(&records(2), &cfg(Some(0), false, false), &inv).await;
    assert_eq!(report.dropped, 0, "ignored without ReportBatchItemFailures");
    // Whole failure: unknown, empty, missing identifiers; a non-list.
    for body in [
        json!({"batchItemFailures": [{"itemIdentifier": "999"}]}),
        json!({"batchItemFailures": [{"itemIdentifier": ""}]}),
        json!({"batchItemFailures": [{"itemIdentifier": 102}]}),
        json!({"batchItemFailures": [{}]}),
        json!({"batchItemFailures": "102"}),
    ] {
        let b = body.to_string().into_bytes();
        let inv = FakeInvoker::new(move |_, _, _| Ok(Outcome::Response(b.clone())));
        let (report, _) = run(&records(2), &cfg(Some(1), false, true), &inv).await;
        assert_eq!(inv.batches(), vec![strs(&["101", "102"]); 2], "{body}");
        assert_eq!(report.dropped, 2, "{body}");
    }
}

#[tokio::test]
async fn unknown_function_drops_at_once_and_stopped_runtime_stops() {
    let inv = FakeInvoker::new(|_, f, _| {
        Err(InvokeError::UnknownFunction {
            name: f.to_string(),
        })
    });
    let (report, events) = run(&records(2), &cfg(None, true, false), &inv).await;
    assert_eq!((report.invocations, report.dropped), (1, 2));
    assert!(events.iter().any(|e| matches!(
        e,
        TriggerEvent::BatchDropped { reason, .. } if reason.contains("not deployed")
    )));
    let inv = FakeInvoker::new(|_, _, _| Err(InvokeError::Stopped));
    let (report, _) = run(&records(2), &cfg(None, false, false), &inv).await;
    assert_eq!(
        (report.invocations, report.dropped, report.completed),
        (1, 0, false)
    );
}

#[tokio::test]
async fn shutdown_interrupts_retries() {
    let inv = FakeInvoker::new(|_, _, _| Ok(failure()));
    let (sink, _events) = recorder();
    let (tx, rx) = watch::channel(false);
    let mut c = cfg(None, false, false);
    c.retry_delay = Duration::from_secs(3600);
    let recs = records(1);
    let task = {
        let inv = inv.clone();
        tokio::spawn(async move { deliver(&recs, &c, inv.as_ref(), &sink, &rx).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _ = tx.send(true);
    let report = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("deliver stops at shutdown")
        .expect("no panic");
    assert!(!report.completed);
    assert_eq!(report.invocations, 1);
}

#[tokio::test]
async fn partial_failure_with_bisect_splits_the_rest() {
    // 107 always fails; the function reports it as the only failed item.
    let inv = FakeInvoker::new(|_, _, p| {
        Ok(if seqs_of(p).iter().any(|s| s == "107") {
            item_failures(&["107"])
        } else {
            item_failures(&[])
        })
    });
    let (report, _) = run(&records(8), &cfg(Some(0), true, true), &inv).await;
    assert_eq!(
        inv.batches(),
        vec![
            strs(&["101", "102", "103", "104", "105", "106", "107", "108"]),
            // Checkpointed before 107: the rest is split.
            strs(&["107"]),
            strs(&["108"]),
        ]
    );
    assert_eq!(report.dropped, 1);
}
