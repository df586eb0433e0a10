//! What every client message passes before it is handled: the connection is stored,
//! its token has not expired (the sweeper closes such connections every minute; a
//! message in between is refused here), and the message is within the connection's
//! rate limit.

use chrono::Utc;

use crate::client_broadcast::Refusal;
use crate::rate_limit::{RateSettings, Verdict};
use crate::store::{Connection, ConnectionStore, StoreError};

/// The outcome for one client message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Admitted(Connection),
    /// Answer with `refusal`; with `close`, then close the connection.
    Refused {
        refusal: Refusal,
        close: bool,
    },
}

pub async fn admit(
    store: &ConnectionStore,
    connection_id: &str,
    rate: Option<&RateSettings>,
) -> Result<Admission, StoreError> {
    let now = Utc::now();
    let (conn, verdict) = match rate {
        Some(settings) => match store
            .take_token(connection_id, now.timestamp_millis(), settings)
            .await?
        {
            Some(found) => found,
            None => return Ok(unknown()),
        },
        None => match store.get(connection_id).await? {
            Some(c) => (c, Verdict::Allowed),
            None => return Ok(unknown()),
        },
    };
    if conn.expires_at <= now.timestamp() {
        return Ok(Admission::Refused {
            refusal: Refusal {
                code: "token_expired",
                message: "the connection's token has expired; reconnect with a new one".into(),
            },
            close: true,
        });
    }
    Ok(match verdict {
        Verdict::Allowed => Admission::Admitted(conn),
        Verdict::Limited { strikes } => Admission::Refused {
            refusal: limited(
                rate,
                format!(
                    "strike {strikes} of {}",
                    rate.map_or(strikes, |r| r.strikes)
                ),
            ),
            close: false,
        },
        Verdict::Close => Admission::Refused {
            refusal: limited(rate, "the connection is closed".into()),
            close: true,
        },
    })
}

fn limited(rate: Option<&RateSettings>, what: String) -> Refusal {
    let (per_second, burst) = rate.map_or((0.0, 0.0), |r| (r.per_second, r.burst));
    Refusal {
        code: "RATE_LIMITED",
        message: format!(
            "over the limit of {per_second} messages per second (burst {burst}): {what}"
        ),
    }
}

fn unknown() -> Admission {
    Admission::Refused {
        refusal: Refusal {
            code: "unknown_connection",
            message: "this connection is not registered; reconnect".into(),
        },
        close: false,
    }
}

/// Sends the refusal to the caller and, when asked, closes the connection (API
/// Gateway then runs `$disconnect`, which removes the item).
pub async fn answer(
    broadcaster: &crate::Broadcaster<crate::ManagementApi>,
    connection_id: &str,
    refusal: &Refusal,
    close: bool,
) {
    match refusal.envelope().to_bytes() {
        Ok(frame) => {
            broadcaster
                .send_to(&[connection_id.to_string()], &frame)
                .await;
        }
        Err(e) => tracing::error!(error = %e, "refusal not encodable"),
    }
    if close {
        match broadcaster.sender().close(connection_id).await {
            Ok(()) | Err(crate::PostError::Gone) => {
                tracing::info!(%connection_id, code = refusal.code, "connection closed")
            }
            Err(e) => tracing::warn!(%connection_id, error = %e, "closing the connection failed"),
        }
    }
}
