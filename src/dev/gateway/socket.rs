//! One connected socket: reads client frames (routing text, refusing binary),
//! writes posted frames, enforces the size limits, idle timeout and maximum
//! lifetime, and on close hands `$disconnect` to the connection's worker.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::event::GatewayEvent;
use super::registry::{Command, Connection};
use super::route;
use super::shared::{shutdown_signal, Shared};
use super::worker::{self, error_message, Job};

/// API Gateway's limits: 32 KB per frame, 128 KB per message.
pub const MAX_FRAME_SIZE: usize = 32 * 1024;
pub const MAX_MESSAGE_SIZE: usize = 128 * 1024;

/// The read buffer's starting size (tungstenite's 128 KiB default, times 10,000
/// connections, is a lot of memory for mostly small messages); it grows as needed.
const READ_BUFFER: usize = 16 * 1024;

/// How long a close handshake may take before the socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// How a connection ended: what `$disconnect` is told.
struct Ended {
    code: u16,
    reason: String,
}

impl Ended {
    fn new(code: u16, reason: &str) -> Self {
        Ended {
            code,
            reason: reason.to_string(),
        }
    }

    fn abnormal() -> Self {
        Ended::new(1006, "Connection closed abnormally")
    }
}

pub(crate) async fn run(
    shared: Arc<Shared>,
    connection: Arc<Connection>,
    on_upgrade: OnUpgrade,
    commands_tx: mpsc::Sender<Command>,
    mut commands: mpsc::Receiver<Command>,
) {
    let started = Instant::now();
    let (jobs_tx, jobs_rx) = mpsc::unbounded_channel();
    let worker = tokio::spawn(worker::run(
        shared.clone(),
        connection.clone(),
        jobs_rx,
        commands_tx,
    ));
    let ended = match on_upgrade.await {
        Ok(upgraded) => {
            let config = WebSocketConfig::default()
                .read_buffer_size(READ_BUFFER)
                .max_frame_size(Some(MAX_FRAME_SIZE))
                .max_message_size(Some(MAX_MESSAGE_SIZE));
            let mut socket = WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                Role::Server,
                Some(config),
            )
            .await;
            pump(&shared, &connection, &mut socket, &mut commands, &jobs_tx).await
        }
        Err(e) => {
            shared.emit(GatewayEvent::Failure {
                message: format!("connection {}: upgrade failed: {e}", connection.id),
            });
            Ended::abnormal()
        }
    };
    shared.registry.remove(&connection.id);
    let _ = jobs_tx.send(Job::Disconnect {
        code: ended.code,
        reason: ended.reason,
        connected_for: started.elapsed(),
    });
    drop(jobs_tx);
    let _ = worker.await;
}

/// Serve the socket until it closes.
async fn pump(
    shared: &Shared,
    connection: &Connection,
    socket: &mut Socket,
    commands: &mut mpsc::Receiver<Command>,
    jobs: &mpsc::UnboundedSender<Job>,
) -> Ended {
    let idle = tokio::time::sleep(shared.idle_timeout);
    tokio::pin!(idle);
    let lifetime = tokio::time::sleep(shared.max_lifetime);
    tokio::pin!(lifetime);
    let mut shutdown = shared.shutdown.clone();
    loop {
        tokio::select! {
            frame = socket.next() => {
                let message = match frame {
                    Some(Ok(message)) => message,
                    Some(Err(WsError::Capacity(_))) => {
                        return close_after_error(socket, 1009, "Message too big").await;
                    }
                    Some(Err(WsError::Utf8(_))) => {
                        return close_after_error(socket, 1007, "Invalid frame payload data").await;
                    }
                    Some(Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)))
                    | Some(Err(WsError::Io(_)))
                    | None => return Ended::abnormal(),
                    Some(Err(WsError::Protocol(_))) => {
                        return close_after_error(socket, 1002, "Protocol error").await;
                    }
                    Some(Err(_)) => return Ended::abnormal(),
                };
                connection.touch();
                idle.as_mut().reset(tokio::time::Instant::now() + shared.idle_timeout);
                match message {
                    Message::Text(text) => {
                        if !on_text(shared, connection, socket, jobs, text.as_str()).await {
                            return Ended::abnormal();
                        }
                    }
                    Message::Binary(_) => {
                        return close(socket, 1003, "Binary frames are not supported").await;
                    }
                    Message::Close(frame) => {
                        let ended = match frame {
                            Some(frame) => Ended {
                                code: u16::from(frame.code),
                                reason: frame.reason.to_string(),
                            },
                            None => Ended::new(1005, ""),
                        };
                        // Let tungstenite echo the close and end the stream.
                        drain(socket).await;
                        return ended;
                    }
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                }
            }
            command = commands.recv() => match command {
                Some(Command::Send(message)) => {
                    if socket.send(message).await.is_err() {
                        return Ended::abnormal();
                    }
                }
                Some(Command::Close) => {
                    // DeleteConnection carries no close code or reason.
                    let _ = socket.send(Message::Close(None)).await;
                    drain(socket).await;
                    return Ended::new(1005, "");
                }
                None => return close(socket, 1001, "Going away").await,
            },
            () = &mut idle => return close(socket, 1001, "Going away").await,
            () = &mut lifetime => return close(socket, 1001, "Going away").await,
            () = shutdown_signal(&mut shutdown) => return close(socket, 1001, "Going away").await,
        }
    }
}

/// Route a text frame; `false` when the socket failed.
async fn on_text(
    shared: &Shared,
    connection: &Connection,
    socket: &mut Socket,
    jobs: &mpsc::UnboundedSender<Job>,
    body: &str,
) -> bool {
    let selection = route::select(
        &shared.api.route_selection_expression,
        body,
        &shared.api.routes,
    );
    match selection.route {
        Some((route_key, function)) => {
            let _ = jobs.send(Job::Message {
                route_key,
                function,
                body: body.to_string(),
            });
            true
        }
        None => {
            shared.emit(GatewayEvent::Unrouted {
                connection_id: connection.id.clone(),
                selected: selection.selected,
            });
            let request_id = shared.ids.next_id();
            let reply = error_message("Forbidden", &connection.id, &request_id);
            socket.send(reply).await.is_ok()
        }
    }
}

fn close_frame(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    }))
}

/// Close with `code` and wait (briefly) for the client's close.
async fn close(socket: &mut Socket, code: u16, reason: &str) -> Ended {
    let _ = socket.send(close_frame(code, reason)).await;
    drain(socket).await;
    Ended::new(code, reason)
}

/// Read until the stream ends (the close handshake completes) or the grace ends.
async fn drain(socket: &mut Socket) {
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(_)) = socket.next().await {}
    })
    .await;
}

/// After a read error tungstenite's stream is over, but the sink still works:
/// send the close frame, then read raw bytes off the socket so closing it sends a
/// FIN (not a reset that could beat the close frame to the client).
async fn close_after_error(socket: &mut Socket, code: u16, reason: &str) -> Ended {
    let _ = socket.send(close_frame(code, reason)).await;
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let read =
                tokio::time::timeout(Duration::from_millis(200), socket.get_mut().read(&mut buf))
                    .await;
            match read {
                Ok(Ok(n)) if n > 0 => continue,
                _ => break,
            }
        }
    })
    .await;
    Ended::new(code, reason)
}
