//! The stage lock: one deploy or destroy of a stage at a time.
//!
//! The lock is an item in the toolkit stack's DynamoDB table (`barkctl-<app>-locks`,
//! key `pk` = the stage), written with a conditional PutItem that succeeds only when
//! no item exists, the existing one has expired, or this process holds it. The item
//! names its holder (host, pid, start time, command) and carries `expiresAt`, a
//! lease that a heartbeat task renews every third of the lease while the command
//! runs. A process that dies without releasing (SIGKILL, a lost machine) stops
//! renewing, so its lock expires after one lease. Release deletes the item,
//! conditional on still holding it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::Error;
use crate::aws::describe_error;

/// How long a lock lasts without renewal: `BARKCTL_LOCK_LEASE_SECONDS`, else 120 s.
pub const LEASE_ENV: &str = "BARKCTL_LOCK_LEASE_SECONDS";
const DEFAULT_LEASE: Duration = Duration::from_secs(120);
/// The longest pause between two attempts while waiting for the lock.
const MAX_POLL: Duration = Duration::from_secs(2);

/// The toolkit's lock table: named, so that a lock can be found without reading
/// the toolkit stack's outputs.
pub fn table_name(app: &str) -> String {
    format!("barkctl-{app}-locks")
}

/// The lease from the environment (whole seconds, at least 1), else the default.
pub fn lease() -> Duration {
    std::env::var(LEASE_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.max(1)))
        .unwrap_or(DEFAULT_LEASE)
}

/// Who holds (or asks for) a stage's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    /// RFC 3339, UTC.
    pub started: String,
    /// `deploy` or `destroy`.
    pub command: String,
}

impl Holder {
    /// This process, starting `command` now.
    pub fn this_process(command: &str) -> Self {
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unknown-host".into());
        Holder {
            host,
            pid: std::process::id(),
            started: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            command: command.to_string(),
        }
    }

    /// What makes this holder unique: two runs of one pid on one host start at
    /// different times.
    fn owner(&self) -> String {
        format!("{}/{}/{}", self.host, self.pid, self.started)
    }

    /// `pid 123 on host `ci-7` (`barkctl deploy`, since 2026-12-03T12:00:00.000Z)`
    pub fn describe(&self) -> String {
        format!(
            "pid {} on host `{}` (`barkctl {}`, since {})",
            self.pid, self.host, self.command, self.started
        )
    }

    /// How long it has held the lock, by this machine's clock.
    pub fn held_for(&self) -> Duration {
        chrono::DateTime::parse_from_rfc3339(&self.started)
            .ok()
            .and_then(|t| {
                (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
                    .to_std()
                    .ok()
            })
            .unwrap_or_default()
    }
}

/// The lock as read from the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub holder: Holder,
    /// Epoch milliseconds after which the lock is free to take.
    pub expires_at_ms: i64,
}

impl Held {
    /// The expiry as RFC 3339, UTC.
    pub fn expires(&self) -> String {
        chrono::DateTime::from_timestamp_millis(self.expires_at_ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_else(|| self.expires_at_ms.to_string())
    }
}

/// A lock this process holds. Release it with [`StageLock::release`]; until then
/// a heartbeat task renews it.
pub struct StageLock {
    client: Client,
    table: String,
    stage: String,
    owner: String,
    heartbeat: tokio::task::JoinHandle<()>,
    lost: Arc<AtomicBool>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

fn aws_error(operation: &'static str, message: String) -> Error {
    Error::Aws {
        stack: None,
        operation,
        message,
    }
}

/// Take the lock of `stage` in `table` for `me`, waiting up to `timeout` while
/// another process holds it. `on_wait` is called once per holder waited for
/// (not when `timeout` is zero: then a held lock fails at once).
pub async fn acquire(
    client: &Client,
    table: &str,
    stage: &str,
    me: &Holder,
    lease: Duration,
    timeout: Duration,
    on_wait: &(dyn Fn(&Held) + Sync),
) -> Result<StageLock, Error> {
    let started = std::time::Instant::now();
    let poll = (lease / 4).clamp(Duration::from_millis(100), MAX_POLL);
    let mut announced: Option<String> = None;
    loop {
        if try_put(client, table, stage, me, lease).await? {
            return Ok(StageLock::start(client, table, stage, me, lease));
        }
        // Someone holds it; it may be gone by now (released between the two calls).
        let Some(held) = read(client, table, stage).await? else {
            continue;
        };
        let waited = started.elapsed();
        if waited >= timeout {
            return Err(Error::Locked {
                stage: stage.to_string(),
                holder: held.holder.describe(),
                expires: held.expires(),
                waited,
            });
        }
        let owner = held.holder.owner();
        if announced.as_deref() != Some(owner.as_str()) {
            on_wait(&held);
            announced = Some(owner);
        }
        tokio::time::sleep(poll.min(timeout - waited)).await;
    }
}

fn item_key(stage: &str) -> (String, AttributeValue) {
    ("pk".to_string(), AttributeValue::S(stage.to_string()))
}

/// One conditional PutItem: `Ok(true)` when this process holds the lock now.
async fn try_put(
    client: &Client,
    table: &str,
    stage: &str,
    me: &Holder,
    lease: Duration,
) -> Result<bool, Error> {
    let now = now_ms();
    let (k, v) = item_key(stage);
    let res = client
        .put_item()
        .table_name(table)
        .item(k, v)
        .item("owner", AttributeValue::S(me.owner()))
        .item("host", AttributeValue::S(me.host.clone()))
        .item("pid", AttributeValue::N(me.pid.to_string()))
        .item("started", AttributeValue::S(me.started.clone()))
        .item("command", AttributeValue::S(me.command.clone()))
        .item(
            "expiresAt",
            AttributeValue::N((now + lease.as_millis() as i64).to_string()),
        )
        .condition_expression("attribute_not_exists(#pk) OR #exp < :now OR #owner = :owner")
        .expression_attribute_names("#pk", "pk")
        .expression_attribute_names("#exp", "expiresAt")
        .expression_attribute_names("#owner", "owner")
        .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
        .expression_attribute_values(":owner", AttributeValue::S(me.owner()))
        .send()
        .await;
    match res {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
        {
            Ok(false)
        }
        Err(e) => Err(aws_error("PutItem (stage lock)", describe_error(&e))),
    }
}

/// The lock item of `stage`, if there is one.
pub async fn read(client: &Client, table: &str, stage: &str) -> Result<Option<Held>, Error> {
    let (k, v) = item_key(stage);
    let out = client
        .get_item()
        .table_name(table)
        .key(k, v)
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| aws_error("GetItem (stage lock)", describe_error(&e)))?;
    let Some(item) = out.item() else {
        return Ok(None);
    };
    let s = |k: &str| {
        item.get(k)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    };
    let n = |k: &str| {
        item.get(k)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok())
            .unwrap_or_default()
    };
    Ok(Some(Held {
        holder: Holder {
            host: s("host"),
            pid: u32::try_from(n("pid")).unwrap_or_default(),
            started: s("started"),
            command: s("command"),
        },
        expires_at_ms: n("expiresAt"),
    }))
}

impl StageLock {
    fn start(client: &Client, table: &str, stage: &str, me: &Holder, lease: Duration) -> Self {
        let lost = Arc::new(AtomicBool::new(false));
        let heartbeat = tokio::spawn(heartbeat(
            client.clone(),
            table.to_string(),
            stage.to_string(),
            me.owner(),
            lease,
            lost.clone(),
        ));
        StageLock {
            client: client.clone(),
            table: table.to_string(),
            stage: stage.to_string(),
            owner: me.owner(),
            heartbeat,
            lost,
        }
    }

    /// Stop renewing and delete the item (only if this process still holds it).
    /// Returns `false` when the lock was lost while held (a renewal found another
    /// holder: this process stalled for longer than the lease). A failed delete
    /// is not an error: the lock expires after its lease anyway.
    pub async fn release(self) -> bool {
        self.heartbeat.abort();
        let (k, v) = item_key(&self.stage);
        let _ = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(k, v)
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", AttributeValue::S(self.owner.clone()))
            .send()
            .await;
        !self.lost.load(Ordering::Relaxed)
    }
}

/// Renew the lease every third of it, conditional on still being the holder.
/// Transient failures are tried again at the next beat (two more before the
/// lease runs out); a failed condition means the lock is gone.
async fn heartbeat(
    client: Client,
    table: String,
    stage: String,
    owner: String,
    lease: Duration,
    lost: Arc<AtomicBool>,
) {
    let (k, v) = item_key(&stage);
    loop {
        tokio::time::sleep(lease / 3).await;
        let res = client
            .update_item()
            .table_name(&table)
            .key(k.clone(), v.clone())
            .update_expression("SET #exp = :exp")
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#exp", "expiresAt")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(
                ":exp",
                AttributeValue::N((now_ms() + lease.as_millis() as i64).to_string()),
            )
            .expression_attribute_values(":owner", AttributeValue::S(owner.clone()))
            .send()
            .await;
        if let Err(e) = res {
            if e.as_service_error()
                .is_some_and(|se| se.is_conditional_check_failed_exception())
            {
                lost.store(true, Ordering::Relaxed);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_is_described_by_pid_host_command_and_start() {
        let h = Holder {
            host: "ci-7".into(),
            pid: 4242,
            started: "2026-12-03T12:00:00.000Z".into(),
            command: "deploy".into(),
        };
        assert_eq!(
            h.describe(),
            "pid 4242 on host `ci-7` (`barkctl deploy`, since 2026-12-03T12:00:00.000Z)"
        );
        let held = Held {
            holder: h,
            expires_at_ms: 1_796_299_320_000,
        };
        assert_eq!(held.expires(), "2026-12-03T12:02:00Z");
    }

    #[test]
    fn two_runs_of_one_pid_are_different_owners() {
        let a = Holder::this_process("deploy");
        let mut b = a.clone();
        b.started = "2026-12-03T12:00:00.001Z".into();
        assert_ne!(a.owner(), b.owner());
    }
}
