//! The ticker example's one function. Its event says what to do, so that the
//! local runtime's answers can be shown on a real process:
//! `{"sleep": 5}` sleeps, `{"fail": "why"}` returns an error, `{"panic": "why"}`
//! panics, a scheduled event logs a tick, anything else is echoed back.
//! With `EXIT_AT_INIT` set the process exits before asking for an event.

use std::time::Duration;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, context) = event.into_parts();
    if let Some(seconds) = payload.get("sleep").and_then(Value::as_f64) {
        tokio::time::sleep(Duration::from_secs_f64(seconds.max(0.0))).await;
        return Ok(json!({ "slept": seconds }));
    }
    if let Some(why) = payload.get("fail").and_then(Value::as_str) {
        return Err(format!("asked to fail: {why}").into());
    }
    if let Some(why) = payload.get("panic").and_then(Value::as_str) {
        panic!("asked to panic: {why}");
    }
    if payload.get("source").and_then(Value::as_str) == Some("aws.events") {
        let time = payload.get("time").cloned().unwrap_or(Value::Null);
        println!("tick: scheduled event for {time}");
        return Ok(json!({ "ticked": time }));
    }
    Ok(json!({
        "hello": "world",
        "requestId": context.request_id,
        "function": std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default(),
        "greeting": std::env::var("GREETING").unwrap_or_default(),
        "received": payload,
    }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    if std::env::var_os("EXIT_AT_INIT").is_some_and(|v| !v.is_empty()) {
        eprintln!("ticker-tick: EXIT_AT_INIT is set, exiting before the first invocation");
        std::process::exit(1);
    }
    lambda_runtime::run(service_fn(handler)).await
}
