//! `cargo bench --bench dev_runtime`: the local Lambda runtime of `barkctl dev`.
//! Prints figures, asserts nothing about speed.
//!
//! - warm invoke latency of a trivial function (ticker-tick) through the Runtime
//!   API: 1,000 sequential calls, p50 / p99 / max;
//! - cold start of each handler binary found under target/{release,debug}: from
//!   process start to its first `/invocation/next`, median of 5. realtime-connect
//!   reads its JWT key from Secrets Manager before that: `AWS_ENDPOINT_URL` is a
//!   stand-in on 127.0.0.1 that answers every request with one GetSecretValue
//!   result, so its figure includes one SDK call over loopback (AWS: a regional
//!   call, more); nothing else calls out before its first `/next`.
//!
//! `DEV_RUNTIME_BIN_DIR=DIR` looks for the binaries in DIR only (another profile or
//! target triple: `scripts/bench.sh` measures the `lambda` profile so); the warm
//! figure is then skipped when DIR has no ticker-tick.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use barkctl::dev::runtime::{FunctionSpec, Runtime, RuntimeEvent};
use barkctl::dev::Invoke;

const HANDLERS: &[&str] = &[
    "ticker-tick",
    "realtime-connect",
    "realtime-disconnect",
    "realtime-message",
    "realtime-broadcast",
    "realtime-sweeper",
    "stream-processor",
    "db-healthcheck",
    "jobs-migration",
    "jobs-property-archival",
    "jobs-property-deletion",
];

/// The directory named by `DEV_RUNTIME_BIN_DIR`, if any.
fn bin_dir() -> Option<PathBuf> {
    std::env::var_os("DEV_RUNTIME_BIN_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
}

/// The handler's binary and a label for the build it comes from.
fn binary(name: &str) -> Option<(PathBuf, String)> {
    if let Some(dir) = bin_dir() {
        let b = dir.join(name);
        let label = dir.display().to_string();
        return b.is_file().then_some((b, label));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    ["release", "debug"]
        .into_iter()
        .map(|p| (target.join(p).join(name), p.to_string()))
        .find(|(b, _)| b.is_file())
}

/// A stand-in for Secrets Manager on 127.0.0.1 (until the bench ends): every
/// request gets one GetSecretValue answer. Returns its URL.
async fn secrets_endpoint() -> String {
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let io = hyper_util::rt::TokioIo::new(stream);
            tokio::spawn(http1::Builder::new().serve_connection(
                io,
                service_fn(|_req| async {
                    let body = r#"{"ARN":"arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt","Name":"jwt","SecretString":"{\"secret\":\"bench-signing-key-of-forty-eight-bytes-0123456\"}"}"#;
                    hyper::Response::builder()
                        .header("content-type", "application/x-amz-json-1.1")
                        .body(http_body_util::Full::new(bytes::Bytes::from_static(
                            body.as_bytes(),
                        )))
                }),
            ));
        }
    });
    format!("http://{addr}")
}

/// What the handlers read at init; values only need to parse. `endpoint` is
/// `secrets_endpoint`'s.
fn environment(endpoint: &str) -> BTreeMap<String, String> {
    [
        ("PATH", "/usr/bin:/bin"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_ENDPOINT_URL", endpoint),
        ("CONNECTIONS_TABLE", "connections"),
        ("METRICS_TABLE", "metrics"),
        ("WEBSOCKET_MANAGEMENT_ENDPOINT", "http://127.0.0.1:9/local"),
        (
            "JWT_SECRET_ARN",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt",
        ),
        ("JWT_ALGORITHM", "HS256"),
        (
            "DB_SECRET_ARN",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:db",
        ),
        ("DB_HOST", "127.0.0.1"),
        ("DB_PORT", "9"),
        ("DB_NAME", "bench"),
        ("STAGE", "bench"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn spec(name: &str, binary: PathBuf, endpoint: &str) -> FunctionSpec {
    FunctionSpec {
        name: name.to_string(),
        arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{name}"),
        binary,
        environment: environment(endpoint),
        timeout: Duration::from_secs(10),
        memory_mb: 512,
        concurrency: 1,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    println!(
        "load: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    match binary("ticker-tick") {
        Some((tick, profile)) => warm(tick, &profile).await,
        None if bin_dir().is_some() => println!("warm invoke: ticker-tick is not in the directory"),
        None => {
            eprintln!("ticker-tick is not built: run `cargo build --workspace` first");
            std::process::exit(1);
        }
    }
    cold_starts().await;
}

/// Warm latency: 1,000 sequential invokes of ticker-tick.
async fn warm(tick: PathBuf, profile: &str) {
    let runtime = Runtime::start(
        vec![spec("tick", tick, "http://127.0.0.1:9")],
        0,
        Arc::new(|_| {}),
    )
    .await
    .expect("runtime");
    let _ = runtime.invoke("tick", b"{}".to_vec()).await;
    let mut times = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let t = Instant::now();
        let inv = runtime
            .invoke("tick", b"{\"n\":1}".to_vec())
            .await
            .expect("invoke");
        times.push(t.elapsed());
        assert!(inv.outcome.error().is_none(), "{:?}", inv.outcome);
    }
    runtime.shutdown().await;
    times.sort();
    println!(
        "warm invoke, ticker-tick ({profile} build), 1000 sequential calls: p50 {} p99 {} max {}",
        ms(percentile(&times, 0.50)),
        ms(percentile(&times, 0.99)),
        ms(times[times.len() - 1])
    );
}

/// Cold starts: process start to first /next, per handler.
async fn cold_starts() {
    let endpoint = secrets_endpoint().await;
    for name in HANDLERS {
        let Some((bin, profile)) = binary(name) else {
            println!("cold start {name}: not built");
            continue;
        };
        let mut inits = Vec::new();
        let mut failure = None;
        for _ in 0..5 {
            let seen: Arc<Mutex<Option<Duration>>> = Arc::new(Mutex::new(None));
            let s = seen.clone();
            let on_event = Arc::new(move |e: RuntimeEvent| {
                if let RuntimeEvent::InstanceReady { init, .. } = e {
                    *s.lock().expect("lock") = Some(init);
                }
            });
            let rt = Runtime::start(vec![spec(name, bin.clone(), &endpoint)], 0, on_event)
                .await
                .expect("runtime");
            // A cheap event; handlers may answer with an error, only init counts.
            let inv = rt.invoke(name, b"{}".to_vec()).await.expect("invoke");
            rt.shutdown().await;
            let init = *seen.lock().expect("lock");
            match init {
                Some(d) => inits.push(d),
                None => failure = inv.outcome.error().map(|(t, m)| format!("{t}: {m}")),
            }
        }
        inits.sort();
        let size = std::fs::metadata(&bin).map_or(0, |m| m.len());
        match inits.get(inits.len() / 2) {
            Some(median) => println!(
                "cold start {name} ({profile}, {:.1} MB): median {} min {} of {}",
                size as f64 / 1e6,
                ms(*median),
                ms(inits[0]),
                inits.len()
            ),
            None => println!("cold start {name}: never reached /next: {failure:?}"),
        }
    }
}
