//! What can go wrong when the gateway starts.

use std::net::SocketAddr;

/// The gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the address the gateway listens on: {0}")]
    LocalAddr(#[source] std::io::Error),
    #[error(
        "the WebSocket API `{api}` has an empty stage name: its URL would have no stage segment"
    )]
    EmptyStage { api: String },
}
