//! Identifiers as API Gateway writes them: connection, request and message ids are
//! 16 characters of standard base64 ending in `=` (11 random bytes,
//! `R1kmxc2VNjMCFIA=`); trace ids are `Root=1-{8 hex}-{24 hex}`.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Makes unique, unpredictable ids: SHA-256 of a per-gateway random seed and a
/// counter (no RNG crate needed; the seed comes from std's randomly keyed hasher).
pub(crate) struct IdGenerator {
    seed: [u8; 32],
    counter: AtomicU64,
}

impl IdGenerator {
    pub(crate) fn new() -> Self {
        let mut hasher = Sha256::new();
        for i in 0u64..4 {
            let mut h = RandomState::new().build_hasher();
            h.write_u64(i);
            hasher.update(h.finish().to_le_bytes());
        }
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        hasher.update(nanos.to_le_bytes());
        hasher.update(std::process::id().to_le_bytes());
        IdGenerator {
            seed: hasher.finalize().into(),
            counter: AtomicU64::new(0),
        }
    }

    fn digest(&self) -> [u8; 32] {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut hasher = Sha256::new();
        hasher.update(self.seed);
        hasher.update(n.to_le_bytes());
        hasher.finalize().into()
    }

    /// A connection, request or message id: `R1kmxc2VNjMCFIA=`.
    pub(crate) fn next_id(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.digest()[..11])
    }

    /// An X-Ray trace header value for the CONNECT event's `X-Amzn-Trace-Id`.
    pub(crate) fn trace_id(&self, epoch_seconds: i64) -> String {
        let digest = self.digest();
        let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        format!("Root=1-{epoch_seconds:08x}-{hex}")
    }
}
