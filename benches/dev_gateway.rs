//! `cargo bench --bench dev_gateway`: the local API Gateway WebSocket API of
//! `barkctl dev`, behind a fake runtime that answers at once. Prints one JSON
//! document to stdout (progress goes to stderr) and asserts nothing about speed.
//!
//! - connect latency: 200 sequential connects, then 1,000 concurrent ones;
//! - ping -> pong round trip over one connection, 1,000 messages: the fake
//!   `$default` posts `{"type":"pong"}` back through the management API
//!   (`POST /{stage}/@connections/{id}`, a keep-alive HTTP/1.1 client on a
//!   `TcpStream`), as the real handlers do;
//! - broadcast fan-out to 10, 100, 1,000 and 10,000 connections (as many as the
//!   open-file limit allows: two descriptors per connection in-process), POSTs
//!   32 in flight like the real broadcaster: first POST to last frame received;
//! - resident memory before the connections are opened and with them open
//!   (clients and gateway share this process).
//!
//! Everything binds 127.0.0.1 and is closed at the end.

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use barkctl::dev::deployed::WebSocketApi;
use barkctl::dev::gateway::{Gateway, GatewayConfig, GatewayEvent};
use barkctl::dev::invoke::{Invocation, Invoke, InvokeFuture, Outcome};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

const SEQUENTIAL_CONNECTS: usize = 200;
const CONCURRENT_CONNECTS: usize = 1_000;
const ROUND_TRIPS: usize = 1_000;
const WARMUP_ROUND_TRIPS: usize = 20;
const FAN_OUT: [usize; 4] = [10, 100, 1_000, 10_000];
/// Rounds per fan-out size (the median is the figure).
const FAN_OUT_ROUNDS: usize = 3;
/// POSTs in flight, as the real broadcaster.
const POSTS_IN_FLIGHT: usize = 32;
/// Clients opened at once when growing the fan-out population.
const CONNECT_BATCH: usize = 500;
const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// The management API client: plain HTTP/1.1 with keep-alive, pooled.

struct HttpConnection {
    stream: BufReader<TcpStream>,
}

impl HttpConnection {
    async fn open(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(HttpConnection {
            stream: BufReader::new(stream),
        })
    }

    /// One request; the answer's status (its body is read and dropped).
    async fn post(&mut self, host: &str, path: &str, body: &[u8]) -> io::Result<u16> {
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        self.stream.get_mut().write_all(&request).await?;
        let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
        let mut line = String::new();
        if self.stream.read_line(&mut line).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid(&line))?;
        let mut length = 0usize;
        loop {
            line.clear();
            if self.stream.read_line(&mut line).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().map_err(|_| invalid(header))?;
                }
            }
        }
        let mut rest = vec![0; length];
        self.stream.read_exact(&mut rest).await?;
        Ok(status)
    }
}

/// `POST {management_endpoint}/@connections/{id}` over pooled connections.
struct Management {
    addr: SocketAddr,
    host: String,
    stage: String,
    idle: Mutex<Vec<HttpConnection>>,
}

impl Management {
    fn new(gateway: &Gateway, stage: &str) -> Self {
        Management {
            addr: gateway.local_addr(),
            host: gateway.local_addr().to_string(),
            stage: stage.to_string(),
            idle: Mutex::new(Vec::new()),
        }
    }

    async fn post(&self, connection_id: &str, body: &[u8]) -> io::Result<u16> {
        let id = percent_encoding::utf8_percent_encode(
            connection_id,
            percent_encoding::NON_ALPHANUMERIC,
        );
        let path = format!("/{}/@connections/{id}", self.stage);
        let pooled = self.idle.lock().expect("pool").pop();
        if let Some(mut connection) = pooled {
            if let Ok(status) = connection.post(&self.host, &path, body).await {
                self.idle.lock().expect("pool").push(connection);
                return Ok(status);
            }
        }
        let mut connection = HttpConnection::open(self.addr).await?;
        let status = connection.post(&self.host, &path, body).await?;
        self.idle.lock().expect("pool").push(connection);
        Ok(status)
    }
}

// ---------------------------------------------------------------------------
// The fake runtime: every function answers `{"statusCode":200}` at once;
// `$default` answers `{"action":"ping"}` with a pong through the management API.

#[derive(Default)]
struct Fake {
    management: OnceLock<Arc<Management>>,
    pong_failures: AtomicUsize,
}

const PING: &str = r#"{"action":"ping"}"#;
const PONG: &[u8] = br#"{"type":"pong"}"#;

impl Invoke for Fake {
    fn invoke<'a>(&'a self, function: &'a str, payload: Vec<u8>) -> InvokeFuture<'a> {
        Box::pin(async move {
            if function == "fn-default" {
                let event: Value = serde_json::from_slice(&payload).unwrap_or(Value::Null);
                let body: Value = event["body"]
                    .as_str()
                    .and_then(|b| serde_json::from_str(b).ok())
                    .unwrap_or(Value::Null);
                if body["action"] == "ping" {
                    let id = event["requestContext"]["connectionId"]
                        .as_str()
                        .unwrap_or_default();
                    let posted = match self.management.get() {
                        Some(management) => management.post(id, PONG).await.ok(),
                        None => None,
                    };
                    if posted != Some(200) {
                        self.pong_failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Ok(Invocation {
                request_id: "bench".into(),
                outcome: Outcome::Response(br#"{"statusCode":200}"#.to_vec()),
                duration: Duration::ZERO,
            })
        })
    }
}

/// What the gateway reported: the connections open now, and anything that failed.
#[derive(Default)]
struct Tracker {
    live: Mutex<HashSet<String>>,
    failures: AtomicUsize,
}

impl Tracker {
    fn record(&self, event: GatewayEvent) {
        match event {
            GatewayEvent::Connected { connection_id, .. } => {
                self.live.lock().expect("live").insert(connection_id);
            }
            GatewayEvent::Disconnected { connection_id, .. } => {
                self.live.lock().expect("live").remove(&connection_id);
            }
            GatewayEvent::Refused { .. } | GatewayEvent::Failure { .. } => {
                self.failures.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    fn live(&self) -> Vec<String> {
        self.live.lock().expect("live").iter().cloned().collect()
    }

    fn live_count(&self) -> usize {
        self.live.lock().expect("live").len()
    }
}

fn api() -> WebSocketApi {
    WebSocketApi {
        api_id: "b3nchb3nch".into(),
        name: "barkbase-bench-realtime".into(),
        route_selection_expression: "$request.body.action".into(),
        stage: "bench".into(),
        routes: [
            ("$connect", "fn-connect"),
            ("$disconnect", "fn-disconnect"),
            ("$default", "fn-default"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<BTreeMap<_, _>>(),
    }
}

// ---------------------------------------------------------------------------
// Clients.

/// Small client buffers: 10,000 clients live in this process beside the gateway.
async fn connect(url: &str) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
    let config = WebSocketConfig::default().read_buffer_size(4 * 1024);
    tokio_tungstenite::connect_async_with_config(url, Some(config), true)
        .await
        .map(|(client, _)| client)
}

/// Close as a client does: send a close, read to the end.
async fn close(mut client: Client) {
    let _ = client.close(None).await;
    let _ = tokio::time::timeout(WAIT, async {
        while let Some(Ok(_)) = client.next().await {}
    })
    .await;
}

async fn close_all(clients: Vec<Client>) {
    futures::stream::iter(clients)
        .for_each_concurrent(CONNECT_BATCH, close)
        .await;
}

/// A fan-out receiver: reports each text frame with the moment it arrived, and
/// closes when told.
async fn receiver(
    mut client: Client,
    frames: mpsc::UnboundedSender<(Instant, Utf8Bytes)>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            frame = client.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    let _ = frames.send((Instant::now(), text));
                }
                Some(Ok(_)) => {}
                _ => return,
            },
            _ = stop.wait_for(|stop| *stop) => break,
        }
    }
    close(client).await;
}

async fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        if Instant::now() > deadline {
            eprintln!("dev_gateway: gave up waiting for {what}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// ---------------------------------------------------------------------------
// Figures.

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

fn latencies(mut times: Vec<Duration>) -> Value {
    times.sort();
    json!({
        "n": times.len(),
        "p50_ms": ms(percentile(&times, 0.50)),
        "p99_ms": ms(percentile(&times, 0.99)),
        "max_ms": ms(times[times.len() - 1]),
    })
}

fn with_goal(mut figures: Value, goal: &str, met: bool) -> Value {
    figures["goal"] = json!(goal);
    figures["goal_met"] = json!(met);
    figures
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// VmRSS of this process, in KiB.
fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// KiB -> MB (10^6 bytes), one decimal.
fn mb(kib: u64) -> f64 {
    (kib as f64 * 1024.0 / 100_000.0).round() / 10.0
}

/// The open-file limit (soft, hard) from /proc/self/limits. barkctl's nix has no
/// `resource` feature and unsafe code is forbidden, so the limit is not raised:
/// the fan-out uses as many connections as fit under the soft limit.
fn open_file_limit() -> (Option<u64>, Option<u64>) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let Some(line) = limits.lines().find(|l| l.starts_with("Max open files")) else {
        return (None, None);
    };
    let mut fields = line.split_whitespace().skip(3).map(|v| v.parse().ok());
    (fields.next().flatten(), fields.next().flatten())
}

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------

#[tokio::main]
async fn main() {
    let run_started = Instant::now();
    let load_before = loadavg();
    let rss_at_start = vm_rss_kib();
    let fake = Arc::new(Fake::default());
    let tracker = Arc::new(Tracker::default());
    let sink = tracker.clone();
    let api = api();
    let stage = api.stage.clone();
    let gateway = Gateway::start(
        GatewayConfig::new(api, 0),
        fake.clone(),
        Arc::new(move |e| sink.record(e)),
    )
    .await
    .expect("the gateway starts");
    let management = Arc::new(Management::new(&gateway, &stage));
    let _ = fake.management.set(management.clone());
    let url = gateway.url();

    // Sequential connects.
    eprintln!("dev_gateway: {SEQUENTIAL_CONNECTS} sequential connects");
    let mut times = Vec::with_capacity(SEQUENTIAL_CONNECTS);
    let mut clients = Vec::with_capacity(SEQUENTIAL_CONNECTS);
    for _ in 0..SEQUENTIAL_CONNECTS {
        let started = Instant::now();
        let client = connect(&url).await.expect("connected");
        times.push(started.elapsed());
        clients.push(client);
    }
    let sequential = latencies(times);
    close_all(clients).await;
    wait_until("the sequential clients to leave", || {
        gateway.connections() == 0
    })
    .await;

    // Concurrent connects.
    eprintln!("dev_gateway: {CONCURRENT_CONNECTS} concurrent connects");
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENT_CONNECTS)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let client = connect(&url).await;
                (started.elapsed(), client)
            })
        })
        .collect();
    let mut times = Vec::with_capacity(CONCURRENT_CONNECTS);
    let mut clients = Vec::with_capacity(CONCURRENT_CONNECTS);
    for task in futures::future::join_all(tasks).await {
        let (took, client) = task.expect("a connect task");
        times.push(took);
        clients.push(client.expect("connected"));
    }
    let concurrent_wall = started.elapsed();
    let mut concurrent = latencies(times);
    concurrent["all_connected_ms"] = json!(ms(concurrent_wall));
    close_all(clients).await;
    wait_until("the concurrent clients to leave", || {
        gateway.connections() == 0
    })
    .await;

    // Ping -> pong through $default and the management API.
    eprintln!("dev_gateway: {ROUND_TRIPS} ping -> pong round trips");
    let mut client = connect(&url).await.expect("connected");
    let mut times = Vec::with_capacity(ROUND_TRIPS);
    let mut unexpected = 0usize;
    for i in 0..WARMUP_ROUND_TRIPS + ROUND_TRIPS {
        let started = Instant::now();
        client.send(Message::text(PING)).await.expect("ping sent");
        loop {
            let frame = tokio::time::timeout(WAIT, client.next())
                .await
                .expect("a pong in time")
                .expect("the socket is open")
                .expect("a valid frame");
            match frame {
                Message::Text(text) if text.as_bytes() == PONG => break,
                Message::Ping(_) | Message::Pong(_) => {}
                _ => unexpected += 1,
            }
        }
        if i >= WARMUP_ROUND_TRIPS {
            times.push(started.elapsed());
        }
    }
    let mut round_trip = latencies(times);
    round_trip["warmup_messages"] = json!(WARMUP_ROUND_TRIPS);
    round_trip["unexpected_frames"] = json!(unexpected);
    round_trip["pong_post_failures"] = json!(fake.pong_failures.load(Ordering::Relaxed));
    close(client).await;
    wait_until("the ping client to leave", || gateway.connections() == 0).await;

    // Broadcast fan-out and memory.
    let (soft, hard) = open_file_limit();
    let fds_before = open_fds();
    // Two descriptors per connection; the management pool and a margin besides.
    let reserve = fds_before + 2 * (POSTS_IN_FLIGHT as u64 + 2) + 64;
    let fit = soft
        .map(|soft| (soft.saturating_sub(reserve) / 2) as usize)
        .unwrap_or(usize::MAX);
    let most = FAN_OUT[FAN_OUT.len() - 1].min(fit);
    let mut sizes: Vec<usize> = FAN_OUT.iter().map(|&n| n.min(most)).collect();
    sizes.dedup();
    let rss_before = vm_rss_kib();
    let (frames_tx, mut frames_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut receivers = Vec::with_capacity(most);
    let mut open = 0usize;
    let mut fan_out = Vec::new();
    let mut round_no = 0usize;
    for &size in &sizes {
        eprintln!("dev_gateway: broadcast to {size} connections");
        let growing = Instant::now();
        while open < size {
            let batch = CONNECT_BATCH.min(size - open);
            let tasks = (0..batch).map(|_| {
                let url = url.clone();
                tokio::spawn(async move { connect(&url).await })
            });
            for task in futures::future::join_all(tasks).await {
                let client = task.expect("a connect task").expect("connected");
                receivers.push(tokio::spawn(receiver(
                    client,
                    frames_tx.clone(),
                    stop_rx.clone(),
                )));
            }
            open += batch;
        }
        let grown = growing.elapsed();
        wait_until("every connection to register", || {
            gateway.connections() == size && tracker.live_count() == size
        })
        .await;
        let ids = tracker.live();
        let mut rounds = Vec::with_capacity(FAN_OUT_ROUNDS);
        let mut failed_posts = 0usize;
        let mut missing = 0usize;
        for _ in 0..FAN_OUT_ROUNDS {
            round_no += 1;
            let body = json!({"type": "broadcast", "round": round_no}).to_string();
            let started = Instant::now();
            let statuses: Vec<io::Result<u16>> = futures::stream::iter(ids.iter())
                .map(|id| management.post(id, body.as_bytes()))
                .buffer_unordered(POSTS_IN_FLIGHT)
                .collect()
                .await;
            let posted = started.elapsed();
            failed_posts += statuses.iter().filter(|s| !matches!(s, Ok(200))).count();
            let mut received = 0usize;
            let mut last = started;
            while received < ids.len() {
                match tokio::time::timeout(WAIT, frames_rx.recv()).await {
                    Ok(Some((at, text))) => {
                        if text.as_str() == body {
                            received += 1;
                            last = last.max(at);
                        }
                    }
                    _ => break,
                }
            }
            missing += ids.len() - received;
            rounds.push((last - started, posted));
        }
        let mut by_fan_out: Vec<Duration> = rounds.iter().map(|r| r.0).collect();
        by_fan_out.sort();
        let goal = match size {
            10 => Some(("< 50 ms", Duration::from_millis(50))),
            n if n == most && n > 1_000 => Some(("< 3 s", Duration::from_secs(3))),
            _ => None,
        };
        let mut figures = json!({
            "connections": size,
            "fan_out_ms_median": ms(by_fan_out[by_fan_out.len() / 2]),
            "fan_out_ms_rounds": rounds.iter().map(|r| ms(r.0)).collect::<Vec<_>>(),
            "all_posts_answered_ms_rounds": rounds.iter().map(|r| ms(r.1)).collect::<Vec<_>>(),
            "failed_posts": failed_posts,
            "frames_missing": missing,
            "connecting_took_ms": ms(grown),
        });
        if let Some((text, limit)) = goal {
            let met = by_fan_out[by_fan_out.len() / 2] < limit && failed_posts + missing == 0;
            figures = with_goal(figures, text, met);
        }
        fan_out.push(figures);
    }
    let rss_with = vm_rss_kib();
    let fds_with = open_fds();

    // Close everything.
    eprintln!("dev_gateway: closing");
    let _ = stop_tx.send(true);
    for task in futures::future::join_all(receivers).await {
        task.expect("a receiver task");
    }
    wait_until("every connection to leave", || gateway.connections() == 0).await;
    let left_open = gateway.connections();
    management.idle.lock().expect("pool").clear();
    gateway.shutdown().await;

    let memory_goal_kib = 100_000_000 / 1024;
    let report = json!({
        "bench": "dev_gateway",
        "profile": if cfg!(debug_assertions) { "dev (unoptimised, debug assertions)" } else { "optimised (bench/release)" },
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "loadavg_before": load_before,
        "connect": {
            "sequential": with_goal(sequential.clone(), "p99 < 50 ms", sequential["p99_ms"].as_f64().unwrap_or(f64::MAX) < 50.0),
            "concurrent": with_goal(concurrent.clone(), "p99 < 50 ms", concurrent["p99_ms"].as_f64().unwrap_or(f64::MAX) < 50.0),
        },
        "round_trip_ping_pong": with_goal(round_trip.clone(), "p99 < 10 ms", round_trip["p99_ms"].as_f64().unwrap_or(f64::MAX) < 10.0),
        "broadcast": {
            "posts_in_flight": POSTS_IN_FLIGHT,
            "open_file_limit": {"soft": soft, "hard": hard, "raised": false},
            "connections_used": most,
            "connections_wanted": FAN_OUT[FAN_OUT.len() - 1],
            "sizes": fan_out,
        },
        "memory": with_goal(json!({
            "note": "VmRSS of the whole process: gateway and its clients together",
            "connections_open": most,
            "rss_at_start_mb": mb(rss_at_start),
            "rss_before_connections_mb": mb(rss_before),
            "rss_with_connections_mb": mb(rss_with),
            "difference_mb": mb(rss_with.saturating_sub(rss_before)),
            "per_connection_kib": if most > 0 { ((rss_with.saturating_sub(rss_before)) as f64 / most as f64 * 10.0).round() / 10.0 } else { 0.0 },
            "open_fds_with_connections": fds_with,
        }), "< 100 MB", rss_with < memory_goal_kib),
        "gateway_failures": tracker.failures.load(Ordering::Relaxed),
        "connections_left_open": left_open,
        "loadavg_after": loadavg(),
        "elapsed_s": (run_started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&report).expect("a JSON report")
    );
}
