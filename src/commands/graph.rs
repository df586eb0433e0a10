//! `barkctl graph`: the dependency waves as text, or Graphviz DOT.

use std::collections::BTreeMap;

use super::{Ctx, Session};
use crate::cli::{GraphArgs, GraphFormat};
use crate::Result;

pub fn run(ctx: &Ctx, args: &GraphArgs) -> Result<i32> {
    let text = render(&ctx.session()?, args)?;
    ctx.term.data(text.trim_end());
    Ok(crate::exit::OK)
}

pub fn render(session: &Session, args: &GraphArgs) -> Result<String> {
    let graph = session.graph();
    let waves = graph.waves()?;
    match args.format {
        GraphFormat::Dot => {
            let mut labels = BTreeMap::new();
            for s in session.project.stacks.values() {
                for (up, outs) in &s.needs {
                    labels.insert(format!("{}->{up}", s.name), outs.clone());
                }
            }
            Ok(graph.to_dot(&labels))
        }
        GraphFormat::Text => {
            let mut out = String::new();
            for (i, wave) in waves.iter().enumerate() {
                out.push_str(&format!("wave {}:\n", i + 1));
                for name in wave {
                    let deps: Vec<String> = graph.dependencies(name).cloned().collect();
                    if deps.is_empty() {
                        out.push_str(&format!("  {name}\n"));
                    } else {
                        out.push_str(&format!("  {name} (needs {})\n", deps.join(", ")));
                    }
                }
            }
            Ok(out)
        }
    }
}
