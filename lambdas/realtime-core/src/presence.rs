//! Presence announcements: when a user's last connection goes away (`$disconnect`, or
//! the sweeper closing an expired one), the rest of the user's tenant is told.

use crate::broadcaster::Broadcaster;
use crate::envelope::{Envelope, Payload, Presence, PresenceStatus};
use crate::management::ConnectionSender;
use crate::store::Connection;

pub type PresenceError = Box<dyn std::error::Error + Send + Sync>;

/// Sends `presence {userId, status: offline}` to the tenant when `gone` was the
/// user's last connection. Returns how many connections were told.
pub async fn announce_offline<S: ConnectionSender>(
    broadcaster: &Broadcaster<S>,
    gone: &Connection,
) -> Result<usize, PresenceError> {
    let store = broadcaster.store();
    if !store.by_user(&gone.user_id).await?.is_empty() {
        return Ok(0);
    }
    let recipients: Vec<String> = store
        .by_tenant(&gone.tenant_id)
        .await?
        .into_iter()
        .map(|c| c.connection_id)
        .collect();
    if recipients.is_empty() {
        return Ok(0);
    }
    let frame = Envelope::new(Payload::Presence(Presence::Change {
        user_id: gone.user_id.clone(),
        status: PresenceStatus::Offline,
    }))?
    .to_bytes()?;
    let delivery = broadcaster.send_to(&recipients, &frame).await;
    tracing::info!(user_id = %gone.user_id, report = ?delivery.report, "announced offline");
    Ok(delivery.report.delivered)
}
