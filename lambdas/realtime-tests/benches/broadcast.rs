//! Broadcast benchmark: one message to 10,000 stored connections through the
//! broadcaster, against moto (lookup) and the local management API sink (send), at
//! concurrency 1 and 32. Prints figures; asserts nothing about speed.
//!
//!     cargo bench -p realtime-tests --bench broadcast
//!
//! `BENCH_CONNECTIONS` changes the count; `BENCH_LATENCY_MS` (default 1) is the
//! per-request delay of the second send round, standing in for the network.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use futures::stream::{self, StreamExt, TryStreamExt};
use realtime_core::envelope::{Envelope, Notification, Payload, Severity};
use realtime_core::{Broadcaster, ConnectionStore, ManagementApi, Target};
use realtime_tests::{create_connections_table, sdk_config, ManagementSink, MotoServer};

const TABLE: &str = "bench-connections";
const TENANT: &str = "bench-tenant";

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn seed(client: &aws_sdk_dynamodb::Client, n: usize) -> Result<(), String> {
    let expires = (chrono::Utc::now().timestamp() + 7200).to_string();
    let requests: Vec<WriteRequest> = (0..n)
        .map(|i| {
            let item = HashMap::from([
                (
                    "connectionId".to_string(),
                    AttributeValue::S(format!("bench-{i:05}=")),
                ),
                ("userId".to_string(), AttributeValue::S(format!("user-{i}"))),
                ("tenantId".to_string(), AttributeValue::S(TENANT.into())),
                ("role".to_string(), AttributeValue::S("viewer".into())),
                (
                    "connectedAt".to_string(),
                    AttributeValue::S("2026-11-21T12:00:00Z".into()),
                ),
                ("expiresAt".to_string(), AttributeValue::N(expires.clone())),
            ]);
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(|e| e.to_string())?;
            Ok(WriteRequest::builder().put_request(put).build())
        })
        .collect::<Result<_, String>>()?;
    stream::iter(requests.chunks(25).map(|c| c.to_vec()))
        .map(|chunk| async move {
            let out = client
                .batch_write_item()
                .request_items(TABLE, chunk)
                .send()
                .await
                .map_err(|e| aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string())?;
            match out.unprocessed_items() {
                Some(u) if !u.is_empty() => Err("moto left items unprocessed".to_string()),
                _ => Ok(()),
            }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

fn per_second(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(f64::EPSILON)
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let n = env_number("BENCH_CONNECTIONS", 10_000) as usize;
    let latency = Duration::from_millis(env_number("BENCH_LATENCY_MS", 1));
    let moto = MotoServer::start()?;
    let sdk = sdk_config(&moto.endpoint).await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    create_connections_table(&client, TABLE).await?;
    let t = Instant::now();
    seed(&client, n).await?;
    println!(
        "seeded {n} connections into moto in {:.2} s (BatchWriteItem)",
        t.elapsed().as_secs_f64()
    );

    let sink = ManagementSink::start().await?;
    let store = ConnectionStore::new(client, TABLE);
    let frame = Envelope::new(Payload::Notification(Notification {
        title: "Kennel 4".into(),
        message: "Cleaning done".into(),
        severity: Severity::Success,
        action_url: None,
    }))
    .and_then(|e| e.to_bytes())
    .map_err(|e| e.to_string())?;
    println!("message: {} bytes", frame.len());

    let api = ManagementApi::new(&sdk, &sink.endpoint);
    let lookup = Broadcaster::new(store.clone(), api.clone(), 32);
    let t = Instant::now();
    let ids = lookup
        .resolve(
            &Target::Tenant {
                tenant_id: TENANT.into(),
            },
            &realtime_core::Scope::Tenant(TENANT.into()),
        )
        .await
        .map_err(|e| e.to_string())?;
    let tenant_lookup = t.elapsed();
    let t = Instant::now();
    let all = lookup
        .resolve(&Target::All, &realtime_core::Scope::AllTenants)
        .await
        .map_err(|e| e.to_string())?;
    let scan_lookup = t.elapsed();
    if ids.len() != n || all.len() != n {
        return Err(format!(
            "lookup found {} (tenant) / {} (all), expected {n}",
            ids.len(),
            all.len()
        ));
    }
    println!(
        "lookup: tenant-index query {:.3} s, paged scan (`all`) {:.3} s, {n} ids each",
        tenant_lookup.as_secs_f64(),
        scan_lookup.as_secs_f64()
    );

    println!(
        "{:<12} {:>11} {:>12} {:>12} {:>10}",
        "sink delay", "concurrency", "send (s)", "msgs/s", "delivered"
    );
    for delay in [Duration::ZERO, latency] {
        sink.set_latency(delay);
        for concurrency in [1, 32] {
            sink.clear();
            let b = Broadcaster::new(store.clone(), api.clone(), concurrency);
            let t = Instant::now();
            let delivery = b.send_to(&ids, &frame).await;
            let took = t.elapsed();
            println!(
                "{:<12} {:>11} {:>12.3} {:>12.0} {:>10}",
                format!("{} ms", delay.as_millis()),
                concurrency,
                took.as_secs_f64(),
                per_second(delivery.report.delivered, took),
                delivery.report.delivered
            );
            if delivery.report.delivered != n {
                return Err(format!(
                    "only {} of {n} delivered",
                    delivery.report.delivered
                ));
            }
        }
    }
    Ok(())
}
