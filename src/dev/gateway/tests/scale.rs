//! Many concurrent connections: one task and one queue each, a shared registry.

use super::{Harness, Setup};

/// `BARKCTL_GATEWAY_CONNECTIONS` (default 500) clients at once; 10,000 works
/// with `ulimit -n` above 20,500 (two descriptors per connection in-process).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_connections_are_served() {
    let n: usize = std::env::var("BARKCTL_GATEWAY_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let mut setup = Setup::default();
    setup.routes.retain(|(k, _)| *k == "$default");
    let h = Harness::start(setup).await;
    let started = std::time::Instant::now();
    let mut clients = Vec::with_capacity(n);
    let batch_size = 500;
    for chunk in 0..n.div_ceil(batch_size) {
        let batch = (chunk * batch_size..n.min((chunk + 1) * batch_size)).map(|_| {
            let url = h.gateway.url();
            tokio::spawn(async move { tokio_tungstenite::connect_async(url).await })
        });
        for task in futures::future::join_all(batch).await {
            let (client, _) = task.unwrap().expect("connected");
            clients.push(client);
        }
    }
    let connected = started.elapsed();
    assert_eq!(h.gateway.connections(), n);
    for client in &mut clients {
        client.close(None).await.unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while h.gateway.connections() > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(h.gateway.connections(), 0);
    eprintln!(
        "{n} connections in {connected:?}, all closed after {:?}",
        started.elapsed()
    );
    h.gateway.shutdown().await;
}
