//! The sweeper: run every minute, it closes the connections whose token expired
//! (`expiresAt` = min(token `exp`, connect + 2 h)) through `DELETE @connections`,
//! removes their items and tells the tenant when a user's last connection went.
//! DynamoDB's TTL would delete the items too, but hours late and without closing
//! the socket.

use chrono::Utc;
use realtime_core::{presence, Broadcaster, ManagementApi, PostError, StoreError};
use serde::Serialize;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Expired connections found.
    pub expired: usize,
    /// Closed through `DELETE @connections`.
    pub closed: usize,
    /// Already gone from the gateway (410); their items were removed all the same.
    pub gone: usize,
    /// Could not be closed; left for the next run.
    pub failed: usize,
}

/// Closes what expired at or before `now` (epoch seconds).
pub async fn sweep(
    broadcaster: &Broadcaster<ManagementApi>,
    now: i64,
) -> Result<SweepReport, StoreError> {
    let store = broadcaster.store();
    let expired = store.expired(now).await?;
    let mut report = SweepReport {
        expired: expired.len(),
        ..SweepReport::default()
    };
    let mut removed_all = Vec::new();
    for conn in expired {
        match broadcaster.sender().close(&conn.connection_id).await {
            Ok(()) => report.closed += 1,
            Err(PostError::Gone) => report.gone += 1,
            Err(e) => {
                tracing::warn!(connection_id = %conn.connection_id, error = %e, "closing an expired connection failed");
                report.failed += 1;
                continue;
            }
        }
        // `$disconnect` may race us to it; whichever removes the item announces.
        if let Some(removed) = store.remove(&conn.connection_id).await? {
            removed_all.push(removed);
        }
        tracing::info!(connection_id = %conn.connection_id, user_id = %conn.user_id, expires_at = conn.expires_at, "closed an expired connection");
    }
    // Announced once every expired connection is gone, so no announcement goes to a
    // connection that is about to be closed.
    for removed in &removed_all {
        if let Err(e) = presence::announce_offline(broadcaster, removed).await {
            tracing::warn!(connection_id = %removed.connection_id, error = %e, "presence announcement failed");
        }
    }
    Ok(report)
}

/// [`sweep`] at the current time.
pub async fn handler(broadcaster: &Broadcaster<ManagementApi>) -> Result<SweepReport, StoreError> {
    let report = sweep(broadcaster, Utc::now().timestamp()).await?;
    tracing::info!(?report, "sweep");
    Ok(report)
}
