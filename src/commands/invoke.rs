//! `barkctl invoke FUNCTION --stage local`: run one deployed function with a
//! payload and print its response. Goes through a running `barkctl dev` when
//! there is one (its warm instances), else starts the runtime for this call.

use std::sync::Arc;

use super::Ctx;
use crate::cli::InvokeArgs;
use crate::dev::runtime::{Runtime, RuntimeEvent};
use crate::dev::stage::Rewrites;
use crate::dev::{self, engine, Invoke, Outcome};
use crate::exit;
use crate::{aws, Result};

pub fn run(ctx: &Ctx, args: &InvokeArgs) -> Result<i32> {
    let session = ctx.session()?;
    let stage = session.stage()?.clone();
    if !stage.local {
        return Err(dev::Error::NotLocal {
            stage: stage.name.clone(),
            command: "invoke",
        }
        .into());
    }
    let payload = read_payload(args.payload.as_deref())?;
    let target = super::deploy::target(&session, &stage)?;
    let root = session.project.root.clone();
    let app = session.project.app.clone();
    let term = ctx.term;
    super::block_on(async move {
        let sdk = aws::sdk_config(&target).await;
        let deployed = engine::load(&sdk, &app, &stage.name).await?;
        let f = dev::stage::find(&deployed, &args.function).ok_or_else(|| {
            dev::Error::UnknownFunction {
                wanted: args.function.clone(),
                stage: stage.name.clone(),
                deployed: deployed
                    .functions
                    .iter()
                    .map(|f| format!("{}.{} ({})", f.stack, f.key, f.name))
                    .collect(),
            }
        })?;
        if let Some(record) = engine::running(&root, &stage.name) {
            let (body, failed) = engine::invoke_remote(&record.runtime, &f.name, &payload).await?;
            if failed {
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let text = |k: &str| {
                    v.get(k)
                        .and_then(|x| x.as_str())
                        .unwrap_or_default()
                        .to_string()
                };
                return Err(dev::Error::FunctionFailed {
                    function: f.name.clone(),
                    error_type: text("errorType"),
                    error_message: text("errorMessage"),
                }
                .into());
            }
            term.data(&String::from_utf8_lossy(&body));
            return Ok(exit::OK);
        }
        let rewrites: Rewrites =
            super::dev::local_rewrites(&root, &sdk, &deployed, Vec::new()).await?;
        let specs = engine::specs(
            &sdk,
            &app,
            &deployed,
            &[f],
            &rewrites,
            &engine::cache_dir(&root),
            1,
        )
        .await?;
        let prefix = format!("{app}-{}-", stage.name);
        let verbose = term.verbose > 0;
        let on_event = Arc::new(move |e: RuntimeEvent| {
            // Only the function's own output and failures: the response is the data.
            let show = match &e {
                RuntimeEvent::Log { .. } => true,
                // The runtime stops its instance after the call: not news.
                RuntimeEvent::InstanceExited { how, .. } => how != "killed" || verbose,
                _ => verbose,
            };
            if show {
                if let Some(line) = crate::report::dev::runtime_line(&e, &prefix) {
                    term.info(&line);
                }
            }
        });
        let runtime = Runtime::start(specs, 0, on_event)
            .await
            .map_err(dev::Error::from)?;
        let result = runtime.invoke(&f.name, payload).await;
        runtime.shutdown().await;
        let invocation = result.map_err(|e| dev::Error::FunctionFailed {
            function: f.name.clone(),
            error_type: "Runtime".into(),
            error_message: e.to_string(),
        })?;
        match invocation.outcome {
            Outcome::Response(body) => {
                term.data(&String::from_utf8_lossy(&body));
                Ok(exit::OK)
            }
            other => {
                let (error_type, error_message) = other.error().unwrap_or_default();
                Err(dev::Error::FunctionFailed {
                    function: f.name.clone(),
                    error_type,
                    error_message,
                }
                .into())
            }
        }
    })?
}

/// `--payload JSON` or `--payload @file`, checked to be JSON before anything runs.
fn read_payload(arg: Option<&str>) -> Result<Vec<u8>> {
    let (origin, text) = match arg {
        None => return Ok(b"{}".to_vec()),
        Some(a) => match a.strip_prefix('@') {
            Some(path) => (
                format!("in `{path}`"),
                std::fs::read_to_string(path).map_err(|e| dev::Error::PayloadFile {
                    path: path.to_string(),
                    reason: e.to_string(),
                })?,
            ),
            None => ("given with --payload".to_string(), a.to_string()),
        },
    };
    if let Err(e) = serde_json::from_str::<serde_json::Value>(&text) {
        return Err(dev::Error::BadPayload {
            origin,
            offset: dev::error::byte_offset(&text, e.line(), e.column()),
            line: e.line(),
            column: e.column(),
            reason: e.to_string(),
        }
        .into());
    }
    Ok(text.into_bytes())
}
