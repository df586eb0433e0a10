//! `barkctl destroy`: delete stacks in reverse dependency order.

use std::io::{BufRead, IsTerminal, Write};

use super::Ctx;
use crate::aws;
use crate::cli::{DestroyArgs, ProgressMode};
use crate::deploy::destroy::{destroy, Target};
use crate::deploy::Error as DeployError;
use crate::report::{progress, summary};
use crate::{Error, Result};

pub fn run(ctx: &Ctx, args: &DestroyArgs) -> Result<i32> {
    let session = ctx.session()?;
    let stage = session.stage()?.clone();
    if stage.termination_protection && !args.force {
        return Err(DeployError::Protected {
            stage: stage.name.clone(),
        }
        .into());
    }
    // Destroying a stack destroys what needs it first: select dependents, not
    // dependencies.
    let graph = session.graph();
    for n in &args.stacks {
        session.project.stack(n)?;
    }
    let selected = if args.stacks.is_empty() {
        session.project.stacks.keys().cloned().collect()
    } else {
        graph.with_dependents(&args.stacks)
    };
    let mut order = session.ordered(&selected)?;
    order.reverse();
    let targets: Vec<Target> = order
        .iter()
        .map(|s| Target {
            stack: s.clone(),
            stack_name: session.project.stack_name(&stage.name, s),
        })
        .collect();

    if !args.yes {
        let names: Vec<&str> = targets.iter().map(|t| t.stack_name.as_str()).collect();
        if !std::io::stdin().is_terminal() {
            return Err(DeployError::NeedsConfirmation.into());
        }
        eprint!(
            "delete {} stack{} ({})? [y/N] ",
            names.len(),
            if names.len() == 1 { "" } else { "s" },
            names.join(", ")
        );
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .map_err(|e| Error::Failed(format!("cannot read the answer: {e}")))?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            ctx.term.info("nothing deleted");
            return Ok(crate::error::exit::OK);
        }
    }

    let target = super::deploy::target(&session, &stage)?;
    let reporter = progress::reporter(ctx.term, ProgressMode::Auto);
    let (results, error) = super::block_on(async {
        let sdk = aws::sdk_config(&target).await;
        destroy(
            &aws::cloudformation(&sdk),
            &targets,
            args.force,
            reporter.as_ref(),
        )
        .await
    })?;
    for line in summary::table(&ctx.term, &results) {
        ctx.term.info(&line);
    }
    match error {
        Some(e) => Err(e.into()),
        None => Ok(crate::error::exit::OK),
    }
}
