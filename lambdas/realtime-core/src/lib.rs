//! Shared code of the realtime handlers: the connections table (`store`), the message
//! envelope and its typed payloads (`envelope`), token verification (`jwt`), the
//! PostToConnection client (`management`), fan-out (`broadcaster`), the role gate of
//! client-originated broadcasts (`client_broadcast`) and environment settings (`config`).

pub mod admission;
pub mod broadcaster;
pub mod client_broadcast;
pub mod config;
pub mod deps;
pub mod envelope;
pub mod history;
pub mod jwt;
pub mod management;
pub mod presence;
pub mod rate_limit;
pub mod response;
pub mod store;

pub use broadcaster::{
    BroadcastError, BroadcastReport, BroadcastRequest, Broadcaster, Scope, Target,
};
pub use config::{ConfigError, RealtimeConfig};
pub use deps::Deps;
pub use envelope::{Envelope, EnvelopeError, Payload, MAX_FRAME_BYTES};
pub use history::{HistoryStore, Since};
pub use jwt::{JwtVerifier, TokenError};
pub use management::{ConnectionSender, ManagementApi, ManagementClients, PostError};
pub use rate_limit::{RateSettings, Verdict};
pub use store::{Connection, ConnectionStore, StoreError};
