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

fn summary(s: &crate::dev::gateway::Summary) -> String {
    match s {
        crate::dev::gateway::Summary::Ok => "ok".into(),
        crate::dev::gateway::Summary::Failed {
            error_type,
            error_message,
        } => format!(
            "{error_type}: {}",
            error_message.lines().next().unwrap_or_default()
        ),
    }
}

/// One line per connect, route, disconnect and management call.
pub fn gateway_line(e: &crate::dev::gateway::GatewayEvent, prefix: &str) -> String {
    use crate::dev::gateway::GatewayEvent as G;
    let f = |name: &Option<String>| {
        name.as_deref()
            .map_or("-".to_string(), |n| short(n, prefix).to_string())
    };
    match e {
        G::Connected {
            connection_id,
            function,
            status,
            duration,
        } => format!(
            "ws {connection_id} $connect -> {} {status} in {}",
            f(function),
            ms(*duration)
        ),
        G::Refused {
            connection_id,
            function,
            status,
            summary: s,
            duration,
        } => format!(
            "ws {connection_id} $connect -> {} refused {status} ({}) in {}",
            short(function, prefix),
            summary(s),
            ms(*duration)
        ),
        G::Routed {
            connection_id,
            route_key,
            function,
            summary: s,
            duration,
        } => format!(
            "ws {connection_id} {route_key} -> {} {} in {}",
            short(function, prefix),
            summary(s),
            ms(*duration)
        ),
        G::Unrouted {
            connection_id,
            selected,
        } => format!(
            "ws {connection_id} no route for {} and no $default",
            selected.as_deref().unwrap_or("the message")
        ),
        G::Disconnected {
            connection_id,
            code,
            reason,
            function,
            summary: s,
            connected_for,
        } => format!(
            "ws {connection_id} $disconnect -> {} code {code} {reason:?} {} after {}",
            f(function),
            s.as_ref().map(summary).unwrap_or_default(),
            ms(*connected_for)
        ),
        G::Management {
            method,
            connection_id,
            status,
        } => format!("ws {connection_id} @connections {method} {status}"),
        G::Failure { message } => format!("ws: {message}"),
    }
}
