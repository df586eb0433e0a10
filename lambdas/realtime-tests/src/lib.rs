//! Test harness of the realtime crates: a moto server for DynamoDB (and Secrets
//! Manager), the connections table as the realtime stack declares it, and an HTTP
//! server that plays the API Gateway management API (`@connections/{id}`) and records
//! what it receives. The handler tests (`tests/handlers`) and the broadcast benchmark
//! (`benches/broadcast.rs`) use it; everything started here stops in `Drop`.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

pub type HarnessResult<T> = Result<T, String>;

/// `moto_server` from the tools venv (`BARKCTL_TOOLS_VENV`, else the repo's
/// `.barkctl/local/venv`), else from PATH.
pub fn moto_server_bin() -> PathBuf {
    if let Some(venv) = std::env::var_os("BARKCTL_TOOLS_VENV") {
        let p = PathBuf::from(venv).join("bin/moto_server");
        if p.exists() {
            return p;
        }
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let p = repo.join(".barkctl/local/venv/bin/moto_server");
    if p.exists() {
        return p;
    }
    PathBuf::from("moto_server")
}

fn free_port() -> HarnessResult<u16> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("binding a free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// A moto server on 127.0.0.1 and a free port, killed when dropped.
pub struct MotoServer {
    child: Child,
    pub endpoint: String,
}

impl MotoServer {
    pub fn start() -> HarnessResult<Self> {
        let bin = moto_server_bin();
        // The port may be taken between probing and binding; retry a few times.
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port()?;
            let child = Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| {
                    format!(
                        "starting `{}`: {e} (run `bash scripts/test.sh`)",
                        bin.display()
                    )
                })?;
            let mut server = MotoServer {
                child,
                endpoint: format!("http://127.0.0.1:{port}"),
            };
            match server.wait_ready(port) {
                Ok(()) => return Ok(server),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn wait_ready(&mut self, port: u16) -> HarnessResult<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("moto_server exited early: {status}"));
            }
            if probe(port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err("moto_server did not answer GET /moto-api/ within 30 s".into())
    }
}

fn probe(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /moto-api/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// SDK settings pointed at `endpoint` with fixed test credentials (nothing read from
/// the developer's AWS profile).
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "realtime-tests",
        ))
        .load()
        .await
}

/// Creates the connections table as `templates/realtime.yaml.hbs` declares it.
pub async fn create_connections_table(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> HarnessResult<()> {
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| e.to_string())
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(|e| e.to_string())
    };
    let all = Projection::builder()
        .projection_type(ProjectionType::All)
        .build();
    let gsi = |name: &str, keys: Vec<KeySchemaElement>| {
        GlobalSecondaryIndex::builder()
            .index_name(name)
            .set_key_schema(Some(keys))
            .projection(all.clone())
            .build()
            .map_err(|e| e.to_string())
    };
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("connectionId")?)
        .attribute_definitions(attr("userId")?)
        .attribute_definitions(attr("tenantId")?)
        .attribute_definitions(attr("channel")?)
        .key_schema(key("connectionId", KeyType::Hash)?)
        .global_secondary_indexes(gsi("userId-index", vec![key("userId", KeyType::Hash)?])?)
        .global_secondary_indexes(gsi(
            "tenantId-index",
            vec![key("tenantId", KeyType::Hash)?],
        )?)
        .global_secondary_indexes(gsi(
            "channel-index",
            vec![
                key("channel", KeyType::Hash)?,
                key("connectionId", KeyType::Range)?,
            ],
        )?)
        .send()
        .await
        .map_err(|e| {
            format!(
                "CreateTable: {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(&e)
            )
        })?;
    Ok(())
}

/// Creates the history table as `templates/realtime.yaml.hbs` declares it
/// (`stream` + `id`).
pub async fn create_history_table(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> HarnessResult<()> {
    let attr = |name: &str, t: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(t)
            .build()
            .map_err(|e| e.to_string())
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(|e| e.to_string())
    };
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("stream", ScalarAttributeType::S)?)
        .attribute_definitions(attr("id", ScalarAttributeType::N)?)
        .key_schema(key("stream", KeyType::Hash)?)
        .key_schema(key("id", KeyType::Range)?)
        .send()
        .await
        .map_err(|e| {
            format!(
                "CreateTable: {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(&e)
            )
        })?;
    Ok(())
}

/// One request the sink received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub method: String,
    pub connection_id: String,
    pub body: Vec<u8>,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Default)]
struct SinkState {
    received: Vec<Received>,
    gone: HashSet<String>,
    failing: HashSet<String>,
    throttle: HashMap<String, u32>,
    latency: Duration,
    in_flight: usize,
    max_in_flight: usize,
}

/// A local stand-in for the API Gateway management API: `POST /{stage}/@connections/{id}`
/// answers 200 and records the body; ids marked gone answer 410 (`GoneException`),
/// failing ids 500, throttled ids 429 (`LimitExceededException`) a given number of
/// times. `DELETE` answers 204. Stops when dropped.
pub struct ManagementSink {
    /// What `WEBSOCKET_MANAGEMENT_ENDPOINT` would hold.
    pub endpoint: String,
    state: Arc<Mutex<SinkState>>,
    task: tokio::task::JoinHandle<()>,
}

fn lock(state: &Mutex<SinkState>) -> MutexGuard<'_, SinkState> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl ManagementSink {
    pub async fn start() -> HarnessResult<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("binding the sink: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let state = Arc::new(Mutex::new(SinkState::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            // Connection tasks live in the set, so aborting the accept loop stops them.
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                conns.spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(req, state.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                while conns.try_join_next().is_some() {}
            }
        });
        Ok(Self {
            endpoint: format!("http://127.0.0.1:{port}/dev"),
            state,
            task,
        })
    }

    pub fn mark_gone(&self, id: &str) {
        lock(&self.state).gone.insert(id.to_string());
    }

    pub fn mark_failing(&self, id: &str) {
        lock(&self.state).failing.insert(id.to_string());
    }

    /// The next `times` posts to `id` answer 429.
    pub fn throttle(&self, id: &str, times: u32) {
        lock(&self.state).throttle.insert(id.to_string(), times);
    }

    /// Delay before each answer, to stand in for the network.
    pub fn set_latency(&self, latency: Duration) {
        lock(&self.state).latency = latency;
    }

    pub fn received(&self) -> Vec<Received> {
        lock(&self.state).received.clone()
    }

    /// Bodies of the posts delivered (answered 200) to `id`, as JSON.
    pub fn delivered_to(&self, id: &str) -> Vec<serde_json::Value> {
        let state = lock(&self.state);
        state
            .received
            .iter()
            .filter(|r| {
                r.method == "POST"
                    && r.connection_id == id
                    && !state.gone.contains(id)
                    && !state.failing.contains(id)
            })
            .map(Received::json)
            .collect()
    }

    /// The ids closed with `DELETE @connections/{id}`, in order.
    pub fn closed(&self) -> Vec<String> {
        lock(&self.state)
            .received
            .iter()
            .filter(|r| r.method == "DELETE")
            .map(|r| r.connection_id.clone())
            .collect()
    }

    /// The most requests the sink has had open at once.
    pub fn max_in_flight(&self) -> usize {
        lock(&self.state).max_in_flight
    }

    pub fn clear(&self) {
        lock(&self.state).received.clear();
    }
}

impl Drop for ManagementSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn reply(status: StatusCode, error_type: Option<&str>) -> Response<Full<Bytes>> {
    let mut builder = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    let body = match error_type {
        Some(t) => {
            builder = builder.header("x-amzn-errortype", t);
            format!(r#"{{"message":"{t}"}}"#)
        }
        None => String::new(),
    };
    builder
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<Mutex<SinkState>>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let Some((_, raw_id)) = path.split_once("/@connections/") else {
        return Ok(reply(StatusCode::NOT_FOUND, Some("NotFoundException")));
    };
    let connection_id = percent_decode(raw_id);
    let body = req.into_body().collect().await?.to_bytes().to_vec();
    let (latency, status) = {
        let mut s = lock(&state);
        s.in_flight += 1;
        s.max_in_flight = s.max_in_flight.max(s.in_flight);
        s.received.push(Received {
            method: method.to_string(),
            connection_id: connection_id.clone(),
            body,
        });
        let status = if s.gone.contains(&connection_id) {
            Some((StatusCode::GONE, "GoneException"))
        } else if s.failing.contains(&connection_id) {
            Some((
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerErrorException",
            ))
        } else if let Some(n) = s.throttle.get_mut(&connection_id).filter(|n| **n > 0) {
            *n -= 1;
            Some((StatusCode::TOO_MANY_REQUESTS, "LimitExceededException"))
        } else {
            None
        };
        (s.latency, status)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    lock(&state).in_flight -= 1;
    Ok(match (method, status) {
        (_, Some((code, kind))) => reply(code, Some(kind)),
        (Method::DELETE, None) => reply(StatusCode::NO_CONTENT, None),
        (_, None) => reply(StatusCode::OK, None),
    })
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn connection_ids_are_percent_decoded() {
        assert_eq!(percent_decode("L0SM9cOFvHcCIhw%3D"), "L0SM9cOFvHcCIhw=");
        assert_eq!(percent_decode("abc%"), "abc%");
    }
}
