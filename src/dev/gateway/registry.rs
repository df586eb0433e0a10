//! The connected sockets by connection id: what `@connections` reaches. A
//! connection is in it only from the end of a successful `$connect` until it
//! closes (it leaves before `$disconnect` runs).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// How many frames posted through `@connections` may wait for one socket before
/// further posts answer 429 LimitExceededException.
pub(crate) const COMMAND_QUEUE: usize = 256;

/// What the management API asks of a connection's socket task.
#[derive(Debug)]
pub(crate) enum Command {
    /// Send a frame (text or binary) to the client.
    Send(Message),
    /// DeleteConnection: close the socket.
    Close,
}

/// The fixed facts of one connection plus its last activity.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) id: String,
    pub(crate) connected_at: DateTime<Utc>,
    pub(crate) source_ip: String,
    pub(crate) user_agent: Option<String>,
    last_active_ms: AtomicI64,
}

impl Connection {
    pub(crate) fn new(
        id: String,
        connected_at: DateTime<Utc>,
        source_ip: String,
        user_agent: Option<String>,
    ) -> Self {
        let ms = connected_at.timestamp_millis();
        Connection {
            id,
            connected_at,
            source_ip,
            user_agent,
            last_active_ms: AtomicI64::new(ms),
        }
    }

    /// Record activity (a client frame, a successful post) now.
    pub(crate) fn touch(&self) {
        self.last_active_ms
            .store(Utc::now().timestamp_millis(), Ordering::Relaxed);
    }

    pub(crate) fn last_active_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.last_active_ms.load(Ordering::Relaxed))
            .unwrap_or(self.connected_at)
    }
}

/// A registered connection: its facts and the way to its socket task.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionHandle {
    pub(crate) connection: Arc<Connection>,
    pub(crate) commands: mpsc::Sender<Command>,
}

/// Connection id -> handle.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    inner: RwLock<HashMap<String, ConnectionHandle>>,
}

impl Registry {
    pub(crate) fn insert(&self, handle: ConnectionHandle) {
        let mut map = self.inner.write().unwrap_or_else(|e| e.into_inner());
        map.insert(handle.connection.id.clone(), handle);
    }

    pub(crate) fn get(&self, id: &str) -> Option<ConnectionHandle> {
        let map = self.inner.read().unwrap_or_else(|e| e.into_inner());
        map.get(id).cloned()
    }

    pub(crate) fn remove(&self, id: &str) -> Option<ConnectionHandle> {
        let mut map = self.inner.write().unwrap_or_else(|e| e.into_inner());
        map.remove(id)
    }

    pub(crate) fn len(&self) -> usize {
        let map = self.inner.read().unwrap_or_else(|e| e.into_inner());
        map.len()
    }
}
