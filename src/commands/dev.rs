//! `barkctl dev --stage local`: run what the local stage deployed until Ctrl-C.
//!
//! Deploys the stage first when nothing of it is on the emulator, then reads it
//! back (never `stacks/`), starts the local PostgreSQL server behind its RDS
//! instances, the Lambda runtime, one WebSocket gateway per API, the stream
//! pollers and the schedules.

use std::sync::Arc;

use super::Ctx;
use crate::cli::{DeployArgs, DevArgs, ProgressMode};
use crate::dev::deployed::DeployedStage;
use crate::dev::gateway::{Gateway, GatewayConfig, GatewayEvent};
use crate::dev::runtime::{Runtime, RuntimeEvent};
use crate::dev::stage::{LocalDatabase, LocalGateway, Rewrites};
use crate::dev::{self, engine, triggers, Invoke};
use crate::exit;
use crate::{aws, Result};

pub fn run(ctx: &Ctx, args: &DevArgs) -> Result<i32> {
    let session = ctx.session()?;
    let stage = session.stage()?.clone();
    if !stage.local {
        return Err(dev::Error::NotLocal {
            stage: stage.name.clone(),
            command: "dev",
        }
        .into());
    }
    let target = super::deploy::target(&session, &stage)?;
    let app = session.project.app.clone();
    let root = session.project.root.clone();
    let deployed_already = super::block_on(async {
        let sdk = aws::sdk_config(&target).await;
        !engine::deployed_stacks(&sdk, &app, &stage.name)
            .await
            .is_empty()
    })?;
    if !deployed_already {
        ctx.term.info(&format!(
            "stage `{}` is not deployed on the emulator: deploying it first",
            stage.name
        ));
        super::deploy::run(ctx, &default_deploy())?;
    }
    let term = ctx.term;
    let project = session.project.clone();
    super::block_on(async move {
        let sdk = aws::sdk_config(&target).await;
        let deployed = engine::load(&sdk, &app, &stage.name).await?;
        // Ports are chosen before anything starts: the functions' environment
        // names the gateways' management endpoints.
        let mut ports = Vec::new();
        for i in 0..deployed.websocket_apis.len() {
            ports.push(match args.port {
                0 => free_port()?,
                p => p.saturating_add(i as u16),
            });
        }
        let gateways: Vec<LocalGateway> = deployed
            .websocket_apis
            .iter()
            .zip(&ports)
            .map(|(api, port)| LocalGateway {
                api_id: api.api_id.clone(),
                management_endpoint: format!("http://127.0.0.1:{port}/{}", api.stage),
            })
            .collect();
        let mut rewrites = local_rewrites(&root, &sdk, &deployed, gateways).await?;
        // The runtime's port is fixed before the functions' environments are built,
        // so they can invoke each other through it.
        let runtime_port = match args.runtime_port {
            0 => free_port()?,
            p => p,
        };
        rewrites.lambda_endpoint = Some(format!("http://127.0.0.1:{runtime_port}"));
        let all: Vec<_> = deployed.functions.iter().collect();
        let specs = engine::specs(
            &sdk,
            &app,
            &deployed,
            &all,
            &rewrites,
            &engine::cache_dir(&root),
            args.concurrency as usize,
        )
        .await?;
        let prefix = format!("{app}-{}-", stage.name);
        let p = prefix.clone();
        let on_event = Arc::new(move |e: RuntimeEvent| {
            if let Some(line) = crate::report::dev::runtime_line(&e, &p) {
                term.info(&line);
            }
        });
        let runtime = Arc::new(
            Runtime::start(specs, runtime_port, on_event)
                .await
                .map_err(dev::Error::from)?,
        );
        for name in &args.fire {
            if !deployed.rules.iter().any(|r| &r.name == name) {
                return Err(dev::Error::UnknownRule {
                    wanted: name.clone(),
                    stage: stage.name.clone(),
                    deployed: deployed.rules.iter().map(|r| r.name.clone()).collect(),
                }
                .into());
            }
        }
        let invoker: Arc<dyn Invoke> = runtime.clone();
        let p = prefix.clone();
        let sink: triggers::EventSink = Arc::new(move |e| {
            term.info(&crate::report::dev::trigger_line(&e, &p));
        });
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let (streams_started, streams_ready) = tokio::sync::oneshot::channel();
        let mut tasks = vec![
            tokio::spawn(triggers::run_schedules(
                deployed.rules.clone(),
                deployed.region.clone(),
                invoker.clone(),
                sink.clone(),
                stopped.clone(),
            )),
            tokio::spawn(triggers::run_mappings(
                deployed.mappings.clone(),
                aws_sdk_dynamodbstreams::Client::new(&sdk),
                deployed.region.clone(),
                invoker.clone(),
                sink.clone(),
                stopped.clone(),
                streams_started,
            )),
        ];
        let mut servers = Vec::new();
        let mut records = Vec::new();
        for (api, port) in deployed.websocket_apis.iter().zip(&ports) {
            let mut config = GatewayConfig::new(api.clone(), *port);
            config.idle_timeout = std::time::Duration::from_secs(args.idle_timeout.max(1));
            config.max_lifetime =
                std::time::Duration::from_secs(args.max_connection_seconds.max(1));
            let p = prefix.clone();
            let on_event = Arc::new(move |e: GatewayEvent| {
                term.info(&crate::report::dev::gateway_line(&e, &p));
            });
            let gw = Gateway::start(config, invoker.clone(), on_event)
                .await
                .map_err(dev::Error::from)?;
            term.info(&format!(
                "websocket: {} ({}) at {} (management API {})",
                api.name,
                api.api_id,
                gw.url(),
                gw.management_endpoint()
            ));
            records.push(engine::GatewayRecord {
                api_id: api.api_id.clone(),
                stack: api_stack(&deployed, api),
                url: gw.url(),
                management_endpoint: gw.management_endpoint(),
            });
            servers.push(gw);
        }
        if args.watch {
            tasks.push(tokio::spawn(watch(
                project,
                stage.clone(),
                deployed.clone(),
                runtime.clone(),
                term,
                stopped.clone(),
            )));
        }
        let record = engine::DevRecord {
            pid: std::process::id(),
            stage: stage.name.clone(),
            runtime: runtime.local_addr().to_string(),
            gateways: records,
        };
        let _ = engine::write_record(&root, &record);
        term.info(&format!(
            "runtime: {} functions at http://{} (Lambda Invoke API: aws lambda invoke --endpoint-url http://{} ...)",
            deployed.functions.len(),
            runtime.local_addr(),
            runtime.local_addr()
        ));
        announce(&term, &deployed);
        // Streams read from LATEST start where their iterator opens: "ready" only
        // once every mapping has opened its shards, so no write after it is missed.
        if tokio::time::timeout(std::time::Duration::from_secs(30), streams_ready)
            .await
            .is_err()
        {
            term.info(
                "stream: shards not open after 30 s; writes before they open are not delivered",
            );
        }
        term.info("ready: Ctrl-C stops");
        for name in &args.fire {
            if let Some(rule) = deployed.rules.iter().find(|r| &r.name == name) {
                triggers::fire_now(rule, &deployed.region, invoker.as_ref(), &sink).await;
            }
        }
        wait_for_stop().await;
        term.info("stopping");
        let _ = stop.send(true);
        // Sockets close with 1001 and their $disconnect runs while the runtime is up.
        for gw in servers {
            gw.shutdown().await;
        }
        for t in tasks {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), t).await;
        }
        drop(invoker);
        engine::remove_record(&root, &stage.name);
        runtime.shutdown().await;
        Ok(exit::OK)
    })?
}

fn announce(term: &crate::report::Term, deployed: &DeployedStage) {
    for m in &deployed.mappings {
        term.info(&format!("stream: {}", triggers::describe_mapping(m)));
    }
    for r in &deployed.rules {
        term.info(&format!("schedule: {}", triggers::describe_next(r)));
    }
}

async fn wait_for_stop() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// `--watch`: when the tree under `lambdas/` changes, build every function crate
/// (cargo rebuilds what changed) and hand the runtime each binary whose sha256
/// differs from the one running; connections and triggers stay as they are.
async fn watch(
    project: crate::project::Project,
    stage: crate::project::Stage,
    deployed: DeployedStage,
    runtime: Arc<Runtime>,
    term: crate::report::Term,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let dir = project.root.join("lambdas");
    // What runs now: the deployed bundles, whose code keys name their sha256.
    let mut running: std::collections::BTreeMap<String, String> = deployed
        .functions
        .iter()
        .filter_map(|f| {
            let key = f.code_key.as_deref()?;
            let sha = std::path::Path::new(key).file_stem()?.to_str()?;
            Some((f.name.clone(), sha.to_string()))
        })
        .collect();
    let mut last = dev::watch::fingerprint(&dir);
    term.info(&format!("watch: {}", dir.display()));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
            _ = stop.changed() => return,
        }
        let now = dev::watch::fingerprint(&dir);
        if now == last {
            continue;
        }
        // Editors write in bursts: wait for the tree to settle.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        last = dev::watch::fingerprint(&dir);
        let started = std::time::Instant::now();
        term.info("watch: change under lambdas/, building");
        let p = project.clone();
        let s = stage.clone();
        let built = tokio::task::spawn_blocking(move || {
            // A local stage: the host's architecture and the stage's profile,
            // the same build its deploy made.
            let functions = crate::bundle::all_functions(&p, &s);
            let mut options = crate::bundle::BuildOptions::new(&s);
            options.quiet = true;
            crate::bundle::build_functions(&p, &functions, &options, &crate::bundle::NoReport)
        })
        .await;
        let bundles = match built {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                term.info(&format!(
                    "watch: build failed, the running binaries stay: {e}"
                ));
                continue;
            }
            Err(e) => {
                term.info(&format!("watch: build failed: {e}"));
                continue;
            }
        };
        let mut swapped = Vec::new();
        for bundle in bundles.values() {
            for label in &bundle.functions {
                let Some((stack, key)) = label.split_once('.') else {
                    continue;
                };
                let Some(f) = deployed
                    .functions
                    .iter()
                    .find(|f| f.stack == stack && f.key == key)
                else {
                    continue;
                };
                if running.get(&f.name) == Some(&bundle.sha256) {
                    continue;
                }
                if runtime.replace_binary(&f.name, bundle.binary.clone()) {
                    running.insert(f.name.clone(), bundle.sha256.clone());
                    swapped.push(format!("{stack}.{key}"));
                }
            }
        }
        term.info(&format!(
            "watch: rebuilt in {:.1} s; new binaries for: {}",
            started.elapsed().as_secs_f64(),
            if swapped.is_empty() {
                "none".to_string()
            } else {
                swapped.join(", ")
            }
        ));
    }
}

/// The stack whose functions the API's routes call (for `outputs`).
fn api_stack(deployed: &DeployedStage, api: &crate::dev::deployed::WebSocketApi) -> String {
    api.routes
        .values()
        .find_map(|f| deployed.functions.iter().find(|x| &x.name == f))
        .map(|f| f.stack.clone())
        .unwrap_or_default()
}

fn free_port() -> std::result::Result<u16, dev::Error> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| dev::Error::NoPort(e.to_string()))
}

fn default_deploy() -> DeployArgs {
    DeployArgs {
        stacks: Vec::new(),
        exclusively: false,
        concurrency: 4,
        yes: false,
        allow_replace: false,
        dry_run: false,
        json: false,
        outputs_file: None,
        progress: ProgressMode::Auto,
        hotswap: false,
        force: false,
        lock_timeout: 300,
    }
}

/// The endpoint rewrites for the stage: the local PostgreSQL server behind each
/// RDS instance (started when needed, given the database and the user of the
/// instance's secret as the emulator's Secrets Manager holds them), and the
/// gateways `dev` serves.
pub(crate) async fn local_rewrites(
    root: &std::path::Path,
    sdk: &aws_config::SdkConfig,
    deployed: &DeployedStage,
    gateways: Vec<LocalGateway>,
) -> std::result::Result<Rewrites, dev::Error> {
    let mut databases = Vec::new();
    for db in &deployed.databases {
        let root = root.to_path_buf();
        let (server, _) =
            tokio::task::spawn_blocking(move || crate::local::postgres::up(&root, &|_| {}))
                .await
                .map_err(|e| dev::Error::Database(e.to_string()))?
                .map_err(|e| dev::Error::Database(e.to_string()))?;
        if let Some(secret) = &db.secret_arn {
            let (user, password) = credentials(sdk, secret).await?;
            let name = db.db_name.clone().unwrap_or_else(|| user.clone());
            crate::local::postgres::ensure_database(&server, &name, &user, &password)
                .await
                .map_err(|e| dev::Error::Database(e.to_string()))?;
        }
        databases.push(LocalDatabase {
            instance_id: db.instance_id.clone(),
            port: db.port,
            local_port: server.port,
            tls: server.tls,
        });
    }
    Ok(Rewrites {
        databases,
        gateways,
        lambda_endpoint: None,
    })
}

/// `username` and `password` of a database secret on the emulator.
async fn credentials(
    sdk: &aws_config::SdkConfig,
    secret: &str,
) -> std::result::Result<(String, String), dev::Error> {
    let sm = aws_sdk_secretsmanager::Client::new(sdk);
    let value = sm
        .get_secret_value()
        .secret_id(secret)
        .send()
        .await
        .map_err(|e| {
            dev::Error::Database(format!(
                "cannot read the secret `{secret}`: {}",
                crate::aws::describe_error(&e)
            ))
        })?;
    let v: serde_json::Value =
        serde_json::from_str(value.secret_string().unwrap_or_default()).unwrap_or_default();
    let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    match (text("username"), text("password")) {
        (Some(u), Some(p)) => Ok((u, p)),
        _ => Err(dev::Error::Database(format!(
            "the secret `{secret}` has no `username` and `password`"
        ))),
    }
}
