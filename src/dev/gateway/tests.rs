//! The gateway's tests: a fake [`Invoke`] that records the events it gets, real
//! WebSocket clients (tokio-tungstenite), raw HTTP/1.1 and the AWS SDK for the
//! management API. Every gateway binds 127.0.0.1 port 0 and is shut down.

mod connect;
mod management;
mod messages;
mod scale;
mod sdk;
mod units;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{Gateway, GatewayConfig, GatewayEvent};
use crate::dev::deployed::WebSocketApi;
use crate::dev::invoke::{Invocation, Invoke, InvokeError, InvokeFuture, Outcome};

pub(super) type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Handler = Box<dyn Fn(&Value) -> Outcome + Send + Sync>;

/// How long a test waits for anything before failing.
pub(super) const WAIT: Duration = Duration::from_secs(3);

/// A fake runtime: function name -> handler, optional delay; every call recorded.
pub(super) struct Fake {
    handlers: HashMap<String, Handler>,
    delays: HashMap<String, Duration>,
    calls: mpsc::UnboundedSender<(String, Value)>,
}

impl Invoke for Fake {
    fn invoke<'a>(&'a self, function: &'a str, payload: Vec<u8>) -> InvokeFuture<'a> {
        Box::pin(async move {
            let event: Value = serde_json::from_slice(&payload).unwrap_or(Value::Null);
            let _ = self.calls.send((function.to_string(), event.clone()));
            if let Some(delay) = self.delays.get(function) {
                tokio::time::sleep(*delay).await;
            }
            match self.handlers.get(function) {
                Some(handler) => Ok(Invocation {
                    request_id: "fake".into(),
                    outcome: handler(&event),
                    duration: Duration::ZERO,
                }),
                None => Err(InvokeError::UnknownFunction {
                    name: function.to_string(),
                }),
            }
        })
    }
}

pub(super) fn status(code: u16) -> Outcome {
    Outcome::Response(json!({ "statusCode": code }).to_string().into_bytes())
}

pub(super) fn ok() -> Handler {
    Box::new(|_| status(200))
}

pub(super) fn api(routes: &[(&str, &str)]) -> WebSocketApi {
    WebSocketApi {
        api_id: "a1b2c3d4e5".into(),
        name: "barkbase-local-realtime".into(),
        route_selection_expression: "$request.body.action".into(),
        stage: "local".into(),
        routes: routes
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// A gateway with the fake runtime behind it.
pub(super) struct Harness {
    pub(super) gateway: Gateway,
    calls: mpsc::UnboundedReceiver<(String, Value)>,
    pub(super) events: Arc<Mutex<Vec<GatewayEvent>>>,
}

pub(super) struct Setup {
    pub(super) routes: Vec<(&'static str, &'static str)>,
    pub(super) handlers: Vec<(&'static str, Handler)>,
    pub(super) delays: Vec<(&'static str, Duration)>,
    pub(super) tweak: fn(&mut GatewayConfig),
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            routes: vec![
                ("$connect", "fn-connect"),
                ("$disconnect", "fn-disconnect"),
                ("$default", "fn-default"),
                ("sendMessage", "fn-send"),
            ],
            handlers: vec![
                ("fn-connect", ok()),
                ("fn-disconnect", ok()),
                ("fn-default", ok()),
                ("fn-send", ok()),
            ],
            delays: vec![],
            tweak: |_| {},
        }
    }
}

impl Harness {
    pub(super) async fn start(setup: Setup) -> Harness {
        let (calls_tx, calls) = mpsc::unbounded_channel();
        let fake = Fake {
            handlers: setup
                .handlers
                .into_iter()
                .map(|(k, h)| (k.to_string(), h))
                .collect(),
            delays: setup
                .delays
                .into_iter()
                .map(|(k, d)| (k.to_string(), d))
                .collect(),
            calls: calls_tx,
        };
        let mut config = GatewayConfig::new(api(&setup.routes), 0);
        (setup.tweak)(&mut config);
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        let gateway = Gateway::start(
            config,
            Arc::new(fake),
            Arc::new(move |e| sink.lock().unwrap().push(e)),
        )
        .await
        .expect("gateway starts");
        Harness {
            gateway,
            calls,
            events,
        }
    }

    /// The next invocation; it must be of `function`.
    pub(super) async fn call(&mut self, function: &str) -> Value {
        let (name, event) = tokio::time::timeout(WAIT, self.calls.recv())
            .await
            .expect("an invocation in time")
            .expect("the fake is alive");
        assert_eq!(
            name, function,
            "invoked {name}, expected {function}: {event}"
        );
        event
    }

    /// No invocation within `within`.
    pub(super) async fn no_call(&mut self, within: Duration) {
        if let Ok(Some((name, event))) = tokio::time::timeout(within, self.calls.recv()).await {
            panic!("unexpected invocation of {name}: {event}");
        }
    }

    pub(super) async fn connect(&self) -> Client {
        let (client, _) = tokio_tungstenite::connect_async(self.gateway.url())
            .await
            .expect("the upgrade succeeds");
        client
    }

    /// Connect and return the connection id from the `$connect` event.
    pub(super) async fn connect_with_id(&mut self) -> (Client, String) {
        let client = self.connect().await;
        let event = self.call("fn-connect").await;
        let id = event["requestContext"]["connectionId"]
            .as_str()
            .expect("a connection id")
            .to_string();
        (client, id)
    }

    pub(super) fn events(&self) -> Vec<GatewayEvent> {
        self.events.lock().unwrap().clone()
    }
}

/// The next data frame the client gets (pings/pongs skipped).
pub(super) async fn next_message(client: &mut Client) -> Message {
    loop {
        let message = tokio::time::timeout(WAIT, client.next())
            .await
            .expect("a frame in time")
            .expect("the socket is open")
            .expect("a valid frame");
        if !matches!(message, Message::Ping(_) | Message::Pong(_)) {
            return message;
        }
    }
}

/// The close code (and reason) the client gets; then the client answers the
/// close and reads to the end, as real clients do.
pub(super) async fn close_code(client: &mut Client) -> (u16, String) {
    let code = loop {
        let frame = tokio::time::timeout(WAIT, client.next())
            .await
            .expect("a close in time");
        match frame {
            Some(Ok(Message::Close(Some(frame)))) => {
                break (u16::from(frame.code), frame.reason.to_string())
            }
            Some(Ok(Message::Close(None))) => break (1005, String::new()),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    let _ = tokio::time::timeout(WAIT, async {
        while let Some(Ok(_)) = client.next().await {}
    })
    .await;
    code
}

/// A raw HTTP/1.1 answer.
#[derive(Debug)]
pub(super) struct HttpAnswer {
    pub(super) status: u16,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
}

impl HttpAnswer {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// One request over a fresh TCP connection (`Connection: close`).
pub(super) async fn http(gateway: &Gateway, method: &str, path: &str, body: &[u8]) -> HttpAnswer {
    let mut stream = TcpStream::connect(gateway.local_addr()).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        gateway.local_addr(),
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // The server may answer (413) before reading everything: ignore write errors.
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("an answer in time")
        .unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    HttpAnswer {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// `R1kmxc2VNjMCFIA=` -> `R1kmxc2VNjMCFIA%3D` (and `+`, `/`).
pub(super) fn encode_id(id: &str) -> String {
    percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC).to_string()
}
