//! `barkctl outputs`: deployed stacks' outputs as a table, JSON or env lines.

use serde_json::{Map, Value};

use super::Ctx;
use crate::aws;
use crate::cli::{OutputsArgs, OutputsFormat};
use crate::deploy::outputs::{env_name, read};
use crate::Result;

pub fn run(ctx: &Ctx, args: &OutputsArgs) -> Result<i32> {
    let session = ctx.session()?;
    let stage = session.stage()?.clone();
    let selected = session.select(&args.stacks, true)?;
    let ordered = session.ordered(&selected)?;
    let target = super::deploy::target(&session, &stage)?;
    let stacks: Vec<(String, String)> = ordered
        .iter()
        .map(|s| (s.clone(), session.project.stack_name(&stage.name, s)))
        .collect();
    let mut outputs = super::block_on(async {
        let sdk = aws::sdk_config(&target).await;
        read(&aws::cloudformation(&sdk), &stacks).await
    })??;
    // While `barkctl dev` serves a local stage, its WebSocket URLs are outputs too.
    if stage.local {
        if let Some(dev) = crate::dev::engine::running(&session.project.root, &stage.name) {
            for gw in dev.gateways {
                if let Some(Some(outs)) = outputs.get_mut(&gw.stack) {
                    outs.insert("LocalWebSocketUrl".into(), gw.url);
                    outs.insert("LocalManagementEndpoint".into(), gw.management_endpoint);
                }
            }
        }
    }
    let format = if args.json {
        OutputsFormat::Json
    } else {
        args.format
    };
    match format {
        OutputsFormat::Json => {
            // Stacks that are not deployed are left out: scripts read what exists.
            let doc: Map<String, Value> = outputs
                .iter()
                .filter_map(|(stack, outs)| {
                    let outs = outs.as_ref()?;
                    Some((
                        stack.clone(),
                        Value::Object(
                            outs.iter()
                                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                                .collect(),
                        ),
                    ))
                })
                .collect();
            ctx.term
                .data(&serde_json::to_string_pretty(&Value::Object(doc)).unwrap_or_default());
        }
        OutputsFormat::Env => {
            for (stack, outs) in &outputs {
                for (k, v) in outs.iter().flatten() {
                    ctx.term.data(&format!("{}={v}", env_name(stack, k)));
                }
            }
        }
        OutputsFormat::Table => {
            let w_stack = stacks
                .iter()
                .map(|(_, f)| f.len())
                .max()
                .unwrap_or(5)
                .max(5);
            let w_key = outputs
                .values()
                .flatten()
                .flat_map(|o| o.keys().map(String::len))
                .max()
                .unwrap_or(6)
                .max(6);
            ctx.term.data(&format!(
                "{:<w_stack$}  {:<w_key$}  value",
                "stack", "output"
            ));
            for (short, full) in &stacks {
                match outputs.get(short).and_then(|o| o.as_ref()) {
                    None => ctx.term.data(&format!("{full:<w_stack$}  (not deployed)")),
                    Some(outs) => {
                        for (k, v) in outs {
                            ctx.term
                                .data(&format!("{full:<w_stack$}  {k:<w_key$}  {v}"));
                        }
                    }
                }
            }
        }
    }
    Ok(crate::exit::OK)
}
