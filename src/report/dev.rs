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
