//! Broadcasts asked for by a connected client (the `broadcast` route): role gate,
//! tenant scoping, the server's reserved message types, the `from` the server fills
//! in, and the error frames the caller gets back.

use serde_json::Value;

use crate::broadcaster::{
    BroadcastError, BroadcastReport, BroadcastRequest, Broadcaster, Scope, Target,
};
use crate::envelope::{is_reserved, Envelope, EnvelopeError, From};
use crate::management::ConnectionSender;
use crate::store::Connection;

/// Roles allowed to broadcast from a WebSocket client.
pub const BROADCAST_ROLES: [&str; 2] = ["admin", "staff"];

/// A refusal, sent to the caller as an `error` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    pub fn envelope(&self) -> Envelope {
        Envelope::error(self.code, self.message.clone())
    }
}

/// Checks the caller's role and keeps the broadcast inside the caller's tenant:
/// `tenant` and `role` targets must name the caller's tenant, and `all` (every
/// tenant) is refused: an `admin` is a tenant's admin, and only services invoking
/// the broadcast function directly may reach everyone.
pub fn authorize(caller: &Connection, target: &Target) -> Result<(), Refusal> {
    let forbidden = |message: String| Refusal {
        code: "forbidden",
        message,
    };
    if !BROADCAST_ROLES.contains(&caller.role.as_str()) {
        return Err(forbidden(format!(
            "role `{}` may not broadcast",
            caller.role
        )));
    }
    match target {
        Target::Tenant { tenant_id } | Target::Role { tenant_id, .. }
            if tenant_id != &caller.tenant_id =>
        {
            Err(forbidden(
                "broadcasts are limited to your own tenant".into(),
            ))
        }
        Target::All => Err(forbidden(
            "broadcasts to all tenants are not available to clients".into(),
        )),
        _ => Ok(()),
    }
}

/// A client may not send the server's own message types, name another tenant, or
/// reach every tenant.
pub fn check_request(caller: &Connection, request: &BroadcastRequest) -> Result<(), Refusal> {
    if is_reserved(&request.message.kind) {
        return Err(Refusal {
            code: "reserved_type",
            message: format!(
                "`{}` messages are sent by the server only",
                request.message.kind
            ),
        });
    }
    if request.all_tenants
        || request
            .tenant_id
            .as_ref()
            .is_some_and(|t| t != &caller.tenant_id)
    {
        return Err(Refusal {
            code: "forbidden",
            message: "broadcasts are limited to your own tenant".into(),
        });
    }
    authorize(caller, &request.target)
}

/// Parses the request body (`{action, target, message}`), authorizes it and sends it.
pub async fn run<S: ConnectionSender>(
    caller: &Connection,
    body: &Value,
    broadcaster: &Broadcaster<S>,
) -> Result<BroadcastReport, Refusal> {
    let mut body = body.clone();
    if let Some(obj) = body.as_object_mut() {
        obj.remove("action");
    }
    let request: BroadcastRequest = serde_json::from_value(body).map_err(|e| Refusal {
        code: "invalid_request",
        message: format!("invalid broadcast request: {e}"),
    })?;
    check_request(caller, &request)?;
    let envelope = request
        .envelope()
        .map_err(envelope_refusal)?
        .with_from(From {
            user_id: caller.user_id.clone(),
            role: caller.role.clone(),
        });
    broadcaster
        .broadcast(
            &request.target,
            &envelope,
            &Scope::Tenant(caller.tenant_id.clone()),
        )
        .await
        .map_err(|e| match e {
            BroadcastError::Envelope(e) => envelope_refusal(e),
            BroadcastError::Forbidden(m) => Refusal {
                code: "forbidden",
                message: m,
            },
            BroadcastError::Store(e) => {
                tracing::error!(error = %e, "broadcast lookup failed");
                Refusal {
                    code: "internal_error",
                    message: "the broadcast could not be completed".into(),
                }
            }
        })
}

fn envelope_refusal(e: EnvelopeError) -> Refusal {
    let code = match e {
        EnvelopeError::TooLarge { .. } => "payload_too_large",
        _ => "invalid_message",
    };
    Refusal {
        code,
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(role: &str) -> Connection {
        Connection {
            connection_id: "c".into(),
            user_id: "u".into(),
            tenant_id: "t1".into(),
            role: role.into(),
            connected_at: "2026-11-21T00:00:00Z".into(),
            expires_at: 0,
            source_ip: None,
            user_agent: None,
            channels: vec![],
            token_exp: None,
        }
    }

    #[test]
    fn only_admin_and_staff_broadcast_and_only_inside_their_tenant() {
        let t1 = Target::Tenant {
            tenant_id: "t1".into(),
        };
        let t2 = Target::Tenant {
            tenant_id: "t2".into(),
        };
        assert!(authorize(&conn("staff"), &t1).is_ok());
        assert_eq!(
            authorize(&conn("viewer"), &t1).map_err(|r| r.code),
            Err("forbidden")
        );
        assert!(authorize(&conn("admin"), &t2).is_err());
        assert!(authorize(&conn("staff"), &Target::All).is_err());
        assert!(authorize(&conn("admin"), &Target::All).is_err());
        assert!(authorize(
            &conn("admin"),
            &Target::Channel {
                channel: "kennels".into()
            }
        )
        .is_ok());
    }

    #[test]
    fn reserved_types_other_tenants_and_all_tenants_are_refused() {
        let request = |kind: &str, extra: serde_json::Value| {
            let mut v = serde_json::json!({
                "target": {"type": "channel", "channel": "kennels"},
                "message": {"type": kind, "data": {}},
            });
            if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
                o.extend(e.clone());
            }
            serde_json::from_value::<BroadcastRequest>(v).expect("valid request")
        };
        let staff = conn("staff");
        for kind in crate::envelope::RESERVED_TYPES {
            assert_eq!(
                check_request(&staff, &request(kind, serde_json::json!({}))).map_err(|r| r.code),
                Err("reserved_type"),
                "{kind}"
            );
        }
        assert!(check_request(&staff, &request("notification", serde_json::json!({}))).is_ok());
        assert!(check_request(
            &staff,
            &request("notification", serde_json::json!({"tenantId": "t1"}))
        )
        .is_ok());
        for extra in [
            serde_json::json!({"tenantId": "t2"}),
            serde_json::json!({"allTenants": true}),
        ] {
            assert_eq!(
                check_request(&staff, &request("notification", extra)).map_err(|r| r.code),
                Err("forbidden")
            );
        }
    }
}
