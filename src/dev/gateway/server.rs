//! The one HTTP/1 server on 127.0.0.1: accepts TCP connections and sends each
//! request to the WebSocket handshake (`/{stage}`) or the management API
//! (`/{stage}/@connections/{id}`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use percent_encoding::percent_decode_str;
use tokio::net::{TcpListener, TcpStream};

use super::event::GatewayEvent;
use super::handshake;
use super::http::{forbidden, Body};
use super::management;
use super::shared::{shutdown_signal, Shared};

pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve_connection(stream, peer, shared.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    shared.emit(GatewayEvent::Failure {
                        message: format!("cannot accept a connection: {e}"),
                    });
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = shutdown_signal(&mut shutdown) => break,
        }
    }
}

async fn serve_connection(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let service_shared = shared.clone();
    let service = service_fn(move |req| {
        let shared = service_shared.clone();
        async move { Ok::<_, Infallible>(dispatch(shared, peer, req).await) }
    });
    let connection = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    let mut shutdown = shared.shutdown.clone();
    // Errors here are clients going away mid-request: nothing to report.
    tokio::select! {
        _ = connection.as_mut() => {}
        () = shutdown_signal(&mut shutdown) => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.as_mut().await;
        }
    }
}

/// The path's segments, each percent-decoded (`%40connections` -> `@connections`,
/// `R0oXAdfD0kwCH6w%3D` -> `R0oXAdfD0kwCH6w=`); `None` if one is not UTF-8.
pub(crate) fn segments(path: &str) -> Option<Vec<String>> {
    path.trim_start_matches('/')
        .split('/')
        .map(|s| {
            percent_decode_str(s)
                .decode_utf8()
                .ok()
                .map(|c| c.into_owned())
        })
        .collect()
}

async fn dispatch(shared: Arc<Shared>, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let Some(segments) = segments(req.uri().path()) else {
        return forbidden();
    };
    let stage = shared.api.stage.as_str();
    match segments.as_slice() {
        [s] if s == stage => handshake::handle(shared, peer, req).await,
        [s, empty] if s == stage && empty.is_empty() => handshake::handle(shared, peer, req).await,
        [s, c, id] if s == stage && c == "@connections" => {
            let id = id.clone();
            management::handle(&shared, req, &id).await
        }
        _ => {
            if let Some(i) = segments.iter().position(|s| s == "@connections") {
                let id = segments.get(i + 1).cloned().unwrap_or_default();
                shared.emit(GatewayEvent::Management {
                    method: req.method().to_string(),
                    connection_id: id,
                    status: 403,
                });
            }
            forbidden()
        }
    }
}
