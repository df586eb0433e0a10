//! A local API Gateway WebSocket API (built in `barkctl dev`, part 2).
//!
//! One HTTP/1 server on 127.0.0.1 serves the WebSocket endpoint at `/{stage}`
//! and the management API at `/{stage}/@connections/{id}`, and calls the
//! deployed functions through [`Invoke`] with the events API Gateway sends:
//! `$connect` decides the handshake, text frames are routed by the API's route
//! selection expression (one-way), `$disconnect` runs once per connection.
//! Limits as on AWS: 32 KiB frames and 128 KiB messages (close 1009), binary
//! frames refused (1003), idle timeout and maximum lifetime (1001).
//!
//! Routes are one-way: a route's answer is dropped; when its integration fails
//! the client gets `{"message": "Internal server error", "connectionId",
//! "requestId"}`, and a message no route takes (no `$default`) gets
//! `{"message": "Forbidden", ...}`, as on AWS. Posts wait in a per-connection
//! queue of 256 frames; a full queue answers 429 LimitExceededException.
//!
//! Choices where AWS is not documented: the events' `domainName` is
//! `127.0.0.1:{port}`; a `$connect` that fails, times out or answers without a
//! valid `statusCode` refuses the upgrade with 502; a dropped TCP connection is a
//! disconnect with 1006 `Connection closed abnormally`; DeleteConnection sends a
//! close frame without a code (1005, empty reason); invalid UTF-8 closes with
//! 1007; the idle timer counts client frames only (posts do not keep a
//! connection alive).

mod error;
mod event;
mod handshake;
mod http;
mod ids;
mod management;
mod payload;
mod registry;
mod route;
mod server;
mod shared;
mod socket;
mod worker;

#[cfg(test)]
mod tests;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use error::GatewayError;
pub use event::{GatewayEvent, Summary};
pub use management::MAX_POST_SIZE;
pub use socket::{MAX_FRAME_SIZE, MAX_MESSAGE_SIZE};

use crate::dev::deployed::WebSocketApi;
use crate::dev::invoke::Invoke;
use ids::IdGenerator;
use registry::Registry;
use shared::Shared;

/// Pending connections the kernel queues for the accept loop (std and mio use
/// 128: a burst of a few hundred clients would overflow it and wait for SYN
/// retransmits).
const LISTEN_BACKLOG: u32 = 4096;

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// What one gateway serves and its limits.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub api: WebSocketApi,
    /// 0 = any free port.
    pub port: u16,
    /// Close (1001) after this long without a client frame (AWS: 10 minutes).
    pub idle_timeout: Duration,
    /// Close (1001) this long after connecting (AWS: 2 hours).
    pub max_lifetime: Duration,
    /// How long an integration may take (AWS: 29 s).
    pub integration_timeout: Duration,
}

impl GatewayConfig {
    /// AWS's limits for `api` on `port`.
    pub fn new(api: WebSocketApi, port: u16) -> Self {
        GatewayConfig {
            api,
            port,
            idle_timeout: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(2 * 60 * 60),
            integration_timeout: Duration::from_secs(29),
        }
    }
}

/// A running gateway. Dropping it stops it without waiting; [`Gateway::shutdown`]
/// waits for every socket to close and every `$disconnect` to run.
pub struct Gateway {
    local_addr: SocketAddr,
    stage: String,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    finished: mpsc::Receiver<()>,
    accept: JoinHandle<()>,
    drain_limit: Duration,
}

impl Gateway {
    /// Listen on 127.0.0.1:`config.port` and serve `config.api`.
    pub async fn start(
        config: GatewayConfig,
        invoker: Arc<dyn Invoke>,
        on_event: Arc<dyn Fn(GatewayEvent) + Send + Sync>,
    ) -> Result<Gateway, GatewayError> {
        if config.api.stage.is_empty() || config.api.stage.contains('/') {
            return Err(GatewayError::EmptyStage {
                api: config.api.name.clone(),
            });
        }
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, config.port));
        let listener = listen(addr).map_err(|source| GatewayError::Bind { addr, source })?;
        let local_addr = listener.local_addr().map_err(GatewayError::LocalAddr)?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (alive, finished) = mpsc::channel(1);
        let stage = config.api.stage.clone();
        let drain_limit = config.integration_timeout + Duration::from_secs(5);
        let shared = Arc::new(Shared {
            api: config.api,
            domain_name: format!("127.0.0.1:{}", local_addr.port()),
            port: local_addr.port(),
            idle_timeout: config.idle_timeout,
            max_lifetime: config.max_lifetime,
            integration_timeout: config.integration_timeout,
            invoker,
            on_event,
            registry: Registry::default(),
            ids: IdGenerator::new(),
            shutdown: shutdown_rx,
            _alive: alive,
        });
        let accept = tokio::spawn(server::accept_loop(listener, shared.clone()));
        Ok(Gateway {
            local_addr,
            stage,
            shared,
            shutdown,
            finished,
            accept,
            drain_limit,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// What clients connect to: `ws://127.0.0.1:{port}/{stage}`.
    pub fn url(&self) -> String {
        format!("ws://{}/{}", self.local_addr, self.stage)
    }

    /// What `WEBSOCKET_MANAGEMENT_ENDPOINT` of the functions is set to:
    /// `http://127.0.0.1:{port}/{stage}`.
    pub fn management_endpoint(&self) -> String {
        format!("http://{}/{}", self.local_addr, self.stage)
    }

    /// How many connections are connected now.
    pub fn connections(&self) -> usize {
        self.shared.registry.len()
    }

    /// Stop listening, close every socket with 1001 and wait for their
    /// `$disconnect` (at most the integration timeout and a few seconds).
    pub async fn shutdown(self) {
        let Gateway {
            shutdown,
            shared,
            mut finished,
            accept,
            drain_limit,
            ..
        } = self;
        let _ = shutdown.send(true);
        let _ = accept.await;
        drop(shared);
        let _ = tokio::time::timeout(drain_limit, finished.recv()).await;
    }
}
