//! The lines `barkctl dev` and `barkctl invoke` print: instance output prefixed
//! with the function, one line per invocation, trigger and connection.

use std::time::Duration;

use crate::dev::runtime::{RuntimeEvent, Stream};

/// `barkbase-local-realtime-connect` -> `realtime-connect` when the prefix is the stage's.
pub fn short<'a>(name: &'a str, prefix: &str) -> &'a str {
    name.strip_prefix(prefix).unwrap_or(name)
}

pub fn ms(d: Duration) -> String {
    if d < Duration::from_secs(10) {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// One line for a runtime event.
pub fn runtime_line(e: &RuntimeEvent, prefix: &str) -> Option<String> {
    match e {
        RuntimeEvent::Log {
            function,
            stream,
            line,
            ..
        } => Some(match stream {
            Stream::Stdout => format!("[{}] {line}", short(function, prefix)),
            Stream::Stderr => format!("[{}] stderr: {line}", short(function, prefix)),
        }),
        RuntimeEvent::InstanceStarted {
            function,
            instance,
            pid,
        } => Some(format!(
            "[{}] instance {instance} started (pid {pid})",
            short(function, prefix)
        )),
        RuntimeEvent::InstanceReady {
            function,
            instance,
            init,
        } => Some(format!(
            "[{}] instance {instance} ready (init {})",
            short(function, prefix),
            ms(*init)
        )),
        RuntimeEvent::InstanceExited {
            function,
            instance,
            how,
        } => Some(format!(
            "[{}] instance {instance} {how}",
            short(function, prefix)
        )),
        RuntimeEvent::Invoked {
            function,
            request_id,
            error,
            duration,
        } => Some(match error {
            None => format!(
                "[{}] REPORT RequestId: {request_id} Duration: {}",
                short(function, prefix),
                ms(*duration)
            ),
            Some((t, m)) => format!(
                "[{}] REPORT RequestId: {request_id} Duration: {} Error: {t}: {}",
                short(function, prefix),
                ms(*duration),
                m.lines().next().unwrap_or_default()
            ),
        }),
    }
}

/// One line for a trigger event.
pub fn trigger_line(e: &crate::dev::triggers::TriggerEvent, prefix: &str) -> String {
    use crate::dev::triggers::TriggerEvent as T;
    match e {
        T::Fired {
            rule,
            function,
            scheduled_time,
            outcome,
            duration,
            ..
        } => format!(
            "schedule {rule} fired {} for {}: {outcome} in {}",
            short(function, prefix),
            scheduled_time.to_rfc3339(),
            ms(*duration)
        ),
        T::Skipped { rule, reason } => format!("schedule {rule}: {reason}"),
        T::Invalid { rule, reason } => format!("schedule {rule}: invalid: {reason}"),
        T::Batch {
            function,
            records,
            first_seq,
            last_seq,
            attempt,
            outcome,
            duration,
            ..
        } => format!(
            "stream -> {}: batch of {records} record(s) {first_seq}..{last_seq}, attempt {attempt}: {outcome} in {}",
            short(function, prefix),
            ms(*duration)
        ),
        T::Retried {
            records, attempt, ..
        } => format!("stream: retrying {records} record(s), attempt {attempt}"),
        T::Bisected { left, right, .. } => {
            format!("stream: bisecting the failed batch into {left} + {right}")
        }
        T::PartialFailure { failed, .. } => format!(
            "stream: the function reported {} failed item(s): {}",
            failed.len(),
            failed.join(", ")
        ),
        T::BatchDropped {
            mapping,
            first_seq,
            last_seq,
            records,
            reason,
        } => format!(
            "stream {mapping}: DROPPED {records} record(s) {first_seq}..{last_seq} after the last retry: {reason}"
        ),
        T::StreamError { mapping, message } => format!("stream {mapping}: {message}"),
    }
}
