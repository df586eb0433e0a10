//! Polls the DynamoDB streams of the stage's event source mappings on the
//! emulator and invokes the mapped functions with batches of records, like
//! Lambda's event source mapping.
//!
//! Per mapping: DescribeStream finds the shards (again every
//! [`PollerOptions::rediscover_every`] and whenever a shard closes),
//! GetShardIterator opens each at the mapping's starting position (`LATEST` only
//! when the mapping says so, else `TRIM_HORIZON`; shards found later always from
//! `TRIM_HORIZON`, and a child shard only once its parent is read to the end),
//! GetRecords reads every [`PollerOptions::poll_interval`] following
//! `NextShardIterator`. Records go through a [`Batcher`] and [`deliver`]. One
//! mapping runs its shards one after the other in one task: records of a shard
//! are strictly in order, with one batch in flight per mapping (so per shard).

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodbstreams::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use aws_sdk_dynamodbstreams::Client;
use tokio::sync::{oneshot, watch};

use super::events::{EventSink, TriggerEvent};
use super::stream_batch::Batcher;
use super::stream_delivery::{deliver, DeliveryConfig};
use super::stream_record::StreamRecord;
use crate::dev::deployed::StreamMapping;
use crate::dev::invoke::Invoke;

/// Timing knobs of the poller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollerOptions {
    /// Between GetRecords calls on a shard.
    pub poll_interval: Duration,
    /// Between DescribeStream calls looking for new shards.
    pub rediscover_every: Duration,
    /// Before retrying a failed batch.
    pub retry_delay: Duration,
    /// After the stream could not be read.
    pub error_backoff: Duration,
}

impl Default for PollerOptions {
    fn default() -> Self {
        PollerOptions {
            poll_interval: Duration::from_millis(200),
            rediscover_every: Duration::from_secs(10),
            retry_delay: Duration::from_millis(500),
            error_backoff: Duration::from_secs(2),
        }
    }
}

/// One shard being read.
#[derive(Debug)]
struct ShardState {
    id: String,
    parent: Option<String>,
    /// Where to open the shard when nothing was read from it yet.
    initial: ShardIteratorType,
    iterator: Option<String>,
    /// The last sequence number read (into the batcher): an expired iterator is
    /// reopened after it.
    read_pos: Option<String>,
    /// No `NextShardIterator`: read to the end.
    closed: bool,
    /// Closed and every record delivered.
    done: bool,
    batcher: Batcher,
}

struct Poller {
    mapping: StreamMapping,
    client: Client,
    region: String,
    invoker: Arc<dyn Invoke>,
    on_event: EventSink,
    options: PollerOptions,
    delivery: DeliveryConfig,
    shards: Vec<ShardState>,
    view_type: Option<String>,
    discovered: bool,
    last_error: Option<String>,
    /// Told after the first pass; see [`run_mapping_with`].
    started: Option<oneshot::Sender<()>>,
}

fn sdk_message<E, R>(e: &aws_sdk_dynamodbstreams::error::SdkError<E, R>) -> String
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    DisplayErrorContext(e).to_string()
}

impl Poller {
    /// Report a stream error once (until the next success).
    fn error(&mut self, message: String) {
        if self.last_error.as_deref() != Some(&message) {
            (self.on_event)(TriggerEvent::StreamError {
                mapping: self.mapping.uuid.clone(),
                message: message.clone(),
            });
            self.last_error = Some(message);
        }
    }

    async fn discover(&mut self) -> Result<(), String> {
        let mut start: Option<String> = None;
        let mut found = Vec::new();
        loop {
            let out = self
                .client
                .describe_stream()
                .stream_arn(&self.mapping.stream_arn)
                .set_exclusive_start_shard_id(start.take())
                .send()
                .await
                .map_err(|e| format!("DescribeStream: {}", sdk_message(&e)))?;
            let Some(desc) = out.stream_description() else {
                break;
            };
            if let Some(v) = desc.stream_view_type() {
                self.view_type = Some(v.as_str().to_string());
            }
            for s in desc.shards() {
                if let Some(id) = s.shard_id() {
                    found.push((id.to_string(), s.parent_shard_id().map(str::to_string)));
                }
            }
            match desc.last_evaluated_shard_id() {
                Some(last) => start = Some(last.to_string()),
                None => break,
            }
        }
        let initial = if !self.discovered && self.mapping.starting_position == "LATEST" {
            ShardIteratorType::Latest
        } else {
            ShardIteratorType::TrimHorizon
        };
        for (id, parent) in found {
            if !self.shards.iter().any(|s| s.id == id) {
                self.shards.push(ShardState {
                    id,
                    parent,
                    initial: initial.clone(),
                    iterator: None,
                    read_pos: None,
                    closed: false,
                    done: false,
                    batcher: Batcher::new(self.mapping.batch_size, self.mapping.batching_window),
                });
            }
        }
        self.discovered = true;
        Ok(())
    }

    async fn open(&self, i: usize) -> Result<Option<String>, String> {
        let shard = &self.shards[i];
        let (kind, seq) = match &shard.read_pos {
            Some(seq) => (ShardIteratorType::AfterSequenceNumber, Some(seq.clone())),
            None => (shard.initial.clone(), None),
        };
        let out = self
            .client
            .get_shard_iterator()
            .stream_arn(&self.mapping.stream_arn)
            .shard_id(&shard.id)
            .shard_iterator_type(kind)
            .set_sequence_number(seq)
            .send()
            .await
            .map_err(|e| format!("GetShardIterator {}: {}", shard.id, sdk_message(&e)))?;
        Ok(out.shard_iterator().map(str::to_string))
    }

    /// Read once from shard `i` into its batcher. `Err` = the stream could not be read.
    async fn read(&mut self, i: usize) -> Result<(), String> {
        if self.shards[i].iterator.is_none() {
            match self.open(i).await? {
                Some(it) => self.shards[i].iterator = Some(it),
                None => {
                    self.shards[i].closed = true;
                    return Ok(());
                }
            }
        }
        let Some(iterator) = self.shards[i].iterator.clone() else {
            return Ok(());
        };
        let out = match self
            .client
            .get_records()
            .shard_iterator(iterator)
            .limit(1000)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                // Reopen after what was read, next time.
                self.shards[i].iterator = None;
                match e.code() {
                    Some("ExpiredIteratorException") => return Ok(()),
                    // What was after `read_pos` is gone: go on from the oldest
                    // record left (the lost ones cannot be delivered anyway).
                    Some("TrimmedDataAccessException") => {
                        self.shards[i].read_pos = None;
                        self.shards[i].initial = ShardIteratorType::TrimHorizon;
                    }
                    _ => {}
                }
                return Err(format!(
                    "GetRecords {}: {}",
                    self.shards[i].id,
                    sdk_message(&e)
                ));
            }
        };
        let records: Vec<StreamRecord> = out
            .records()
            .iter()
            .filter_map(|r| {
                StreamRecord::from_sdk(
                    r,
                    &self.mapping.stream_arn,
                    &self.region,
                    self.view_type.as_deref(),
                )
            })
            .collect();
        let shard = &mut self.shards[i];
        if let Some(last) = records.last() {
            shard.read_pos = Some(last.sequence_number.clone());
        }
        shard.batcher.push(records, Instant::now());
        match out.next_shard_iterator() {
            Some(next) => shard.iterator = Some(next.to_string()),
            None => {
                shard.iterator = None;
                shard.closed = true;
            }
        }
        Ok(())
    }

    /// Deliver what shard `i` has due; `false` when delivery was cut short.
    async fn flush(&mut self, i: usize, shutdown: &watch::Receiver<bool>) -> bool {
        loop {
            let shard = &mut self.shards[i];
            let batch = if shard.closed {
                shard.batcher.flush()
            } else {
                shard.batcher.ready(Instant::now())
            };
            let Some(batch) = batch else {
                shard.done = shard.closed;
                return true;
            };
            let report = deliver(
                &batch,
                &self.delivery,
                self.invoker.as_ref(),
                &self.on_event,
                shutdown,
            )
            .await;
            if !report.completed {
                return false;
            }
        }
    }

    fn parent_pending(&self, i: usize) -> bool {
        self.shards[i]
            .parent
            .as_ref()
            .is_some_and(|p| self.shards.iter().any(|s| &s.id == p && !s.done))
    }

    async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut last_discovery: Option<Instant> = None;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let mut failed = false;
            let due = last_discovery.is_none_or(|t| t.elapsed() >= self.options.rediscover_every);
            if due {
                match self.discover().await {
                    Ok(()) => last_discovery = Some(Instant::now()),
                    Err(e) => {
                        self.error(e);
                        failed = true;
                    }
                }
            }
            let mut any_closed = false;
            for i in 0..self.shards.len() {
                if self.shards[i].done || self.parent_pending(i) {
                    continue;
                }
                if !self.shards[i].closed {
                    if let Err(e) = self.read(i).await {
                        self.error(e);
                        failed = true;
                    }
                }
                if !self.flush(i, &shutdown).await {
                    return;
                }
                any_closed |= self.shards[i].done;
            }
            if !failed {
                self.last_error = None;
            }
            // The first pass is over (iterators open, or the failure reported).
            if let Some(started) = self.started.take() {
                let _ = started.send(());
            }
            if any_closed {
                // Look for the children now. Finished shards stay listed, so
                // rediscovery does not read them again.
                last_discovery = None;
            }
            let mut wait = if failed {
                self.options.error_backoff
            } else {
                self.options.poll_interval
            };
            let now = Instant::now();
            for s in &self.shards {
                if let Some(d) = s.batcher.deadline() {
                    wait = wait.min(d.saturating_duration_since(now));
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                r = shutdown.changed() => if r.is_err() || *shutdown.borrow() { return; },
            }
        }
    }
}

/// Poll `mapping`'s stream and invoke its function until `shutdown` turns true
/// (or its sender is dropped), with the default [`PollerOptions`]. A disabled
/// mapping returns at once.
pub async fn run_mapping(
    mapping: StreamMapping,
    client: Client,
    region: String,
    invoker: Arc<dyn Invoke>,
    on_event: EventSink,
    shutdown: watch::Receiver<bool>,
    started: Option<oneshot::Sender<()>>,
) {
    run_mapping_with(
        mapping,
        client,
        region,
        invoker,
        on_event,
        PollerOptions::default(),
        shutdown,
        started,
    )
    .await;
}

/// [`run_mapping`] with explicit timing. `started` is told once the first pass has
/// opened the shards' iterators: from then on no write is missed (`LATEST` starts
/// at the iterator, not at the mapping's creation).
#[allow(clippy::too_many_arguments)]
pub async fn run_mapping_with(
    mapping: StreamMapping,
    client: Client,
    region: String,
    invoker: Arc<dyn Invoke>,
    on_event: EventSink,
    options: PollerOptions,
    shutdown: watch::Receiver<bool>,
    started: Option<oneshot::Sender<()>>,
) {
    if !mapping.enabled {
        return;
    }
    let delivery = DeliveryConfig::from_mapping(&mapping, options.retry_delay);
    Poller {
        mapping,
        client,
        region,
        invoker,
        on_event,
        options,
        delivery,
        shards: Vec::new(),
        view_type: None,
        discovered: false,
        last_error: None,
        started,
    }
    .run(shutdown)
    .await;
}

/// A startup line for `mapping`: what it reads, what it invokes, how.
pub fn describe_mapping(m: &StreamMapping) -> String {
    let table = m
        .stream_arn
        .split(":table/")
        .nth(1)
        .and_then(|t| t.split('/').next())
        .unwrap_or(&m.stream_arn);
    if !m.enabled {
        return format!("{table} stream -> {}: disabled", m.function_name);
    }
    let retries = m
        .max_retries
        .map_or_else(|| "until expiry".to_string(), |r| r.to_string());
    let mut line = format!(
        "{table} stream -> {} (from {}, batch {}, window {}s, retries {retries}",
        m.function_name,
        m.starting_position,
        m.batch_size,
        m.batching_window.as_secs_f64()
    );
    if m.bisect_on_error {
        line.push_str(", bisect on error");
    }
    if m.report_batch_item_failures {
        line.push_str(", partial batch responses");
    }
    line.push(')');
    line
}

/// Run every enabled mapping of `mappings` concurrently until shutdown.
pub async fn run_mappings(
    mappings: Vec<StreamMapping>,
    client: Client,
    region: String,
    invoker: Arc<dyn Invoke>,
    on_event: EventSink,
    shutdown: watch::Receiver<bool>,
    started: oneshot::Sender<()>,
) {
    let mut waits = Vec::new();
    let runs: Vec<_> = mappings
        .into_iter()
        .filter(|m| m.enabled)
        .map(|m| {
            let (tx, rx) = oneshot::channel();
            waits.push(rx);
            run_mapping(
                m,
                client.clone(),
                region.clone(),
                invoker.clone(),
                on_event.clone(),
                shutdown.clone(),
                Some(tx),
            )
        })
        .collect();
    let all_started = async move {
        for rx in waits {
            let _ = rx.await;
        }
        let _ = started.send(());
    };
    futures::future::join(futures::future::join_all(runs), all_started).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_line() {
        let mut m = StreamMapping {
            uuid: "u".into(),
            function_name: "fn-stream".into(),
            stream_arn: "arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-12-02T00:00:00.000"
                .into(),
            batch_size: 100,
            batching_window: Duration::from_millis(1500),
            max_retries: None,
            bisect_on_error: true,
            report_batch_item_failures: true,
            enabled: true,
            starting_position: "LATEST".into(),
        };
        assert_eq!(
            describe_mapping(&m),
            "orders stream -> fn-stream (from LATEST, batch 100, window 1.5s, retries until expiry, bisect on error, partial batch responses)"
        );
        m.enabled = false;
        assert_eq!(describe_mapping(&m), "orders stream -> fn-stream: disabled");
    }
}
