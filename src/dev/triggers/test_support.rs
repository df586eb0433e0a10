//! Test helpers: a fake invoker answering from a closure and recording every
//! call, and an event sink that keeps the events.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::events::{EventSink, TriggerEvent};
use crate::dev::invoke::{Invocation, Invoke, InvokeError, InvokeFuture, Outcome};

type Respond = dyn Fn(usize, &str, &Value) -> Result<Outcome, InvokeError> + Send + Sync;

/// Answers the n-th call (from 0) with `respond(n, function, payload)`.
pub struct FakeInvoker {
    pub calls: Mutex<Vec<(String, Value)>>,
    respond: Box<Respond>,
}

impl FakeInvoker {
    pub fn new(
        respond: impl Fn(usize, &str, &Value) -> Result<Outcome, InvokeError> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(FakeInvoker {
            calls: Mutex::new(Vec::new()),
            respond: Box::new(respond),
        })
    }

    pub fn ok() -> Arc<Self> {
        Self::new(|_, _, _| Ok(Outcome::Response(b"null".to_vec())))
    }

    pub fn calls(&self) -> Vec<(String, Value)> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// The sequence numbers of each call's `Records`.
    pub fn batches(&self) -> Vec<Vec<String>> {
        self.calls().iter().map(|(_, p)| seqs_of(p)).collect()
    }
}

/// The `dynamodb.SequenceNumber`s of a stream event.
pub fn seqs_of(payload: &Value) -> Vec<String> {
    payload["Records"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .filter_map(|r| r["dynamodb"]["SequenceNumber"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

impl Invoke for FakeInvoker {
    fn invoke<'a>(&'a self, function: &'a str, payload: Vec<u8>) -> InvokeFuture<'a> {
        Box::pin(async move {
            let value: Value = serde_json::from_slice(&payload).unwrap_or(Value::Null);
            let n = {
                let mut calls = self.calls.lock().map_err(|_| InvokeError::Stopped)?;
                calls.push((function.to_string(), value.clone()));
                calls.len() - 1
            };
            let outcome = (self.respond)(n, function, &value)?;
            Ok(Invocation {
                request_id: format!("req-{n}"),
                outcome,
                duration: Duration::from_millis(1),
            })
        })
    }
}

/// An event sink keeping everything it is given.
pub fn recorder() -> (EventSink, Arc<Mutex<Vec<TriggerEvent>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let e2 = events.clone();
    let sink: EventSink = Arc::new(move |e| {
        if let Ok(mut v) = e2.lock() {
            v.push(e);
        }
    });
    (sink, events)
}

pub fn failure() -> Outcome {
    Outcome::FunctionError {
        error_type: "Boom".into(),
        error_message: "poisoned".into(),
    }
}
