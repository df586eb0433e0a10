//! `barkctl destroy`: delete stacks in reverse dependency order, holding the
//! stage lock (see `deploy::lock`).

use std::io::{BufRead, IsTerminal, Write};

use super::Ctx;
use crate::aws;
use crate::cli::{DestroyArgs, ProgressMode};
use crate::deploy::destroy::{destroy, Target};
use crate::deploy::{Error as DeployError, InFlight};
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
            return Ok(crate::exit::OK);
        }
    }

    let target = super::deploy::target(&session, &stage)?;
    let reporter = progress::reporter(ctx.term, ProgressMode::Auto);
    let app = session.project.app.clone();
    let (results, error) = super::block_on(async {
        let sdk = aws::sdk_config(&target).await;
        let cfn = aws::cloudformation(&sdk);
        // The stage lock lives in the toolkit stack, as for deploy.
        let toolkit =
            super::deploy::ensure_toolkit(&cfn, &aws::s3(&sdk), &target, &app, reporter.clone())
                .await?;
        let interrupted = tokio::signal::ctrl_c();
        tokio::pin!(interrupted);
        let lock = tokio::select! {
            l = super::deploy::lock_stage(ctx, &sdk, &toolkit, &stage.name, "destroy", args.lock_timeout) => l?,
            _ = &mut interrupted => {
                return Err(DeployError::Interrupted { in_progress: Vec::new(), command: "destroy" }.into());
            }
        };
        let in_flight: InFlight = Default::default();
        let finished = tokio::select! {
            r = destroy(&cfn, &targets, args.force, reporter.as_ref(), &in_flight) => Some(r),
            _ = &mut interrupted => None,
        };
        super::deploy::unlock_stage(ctx, lock, &stage.name).await;
        match finished {
            Some(r) => Ok(r),
            None => {
                progress::finish(reporter.as_ref());
                Err(Error::from(DeployError::interrupted(&in_flight, "destroy")))
            }
        }
    })??;
    for line in summary::table(&ctx.term, &results) {
        ctx.term.info(&line);
    }
    match error {
        Some(e) => Err(e.into()),
        None => Ok(crate::exit::OK),
    }
}
