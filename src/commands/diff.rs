//! `barkctl diff`: what a deploy would change, per stack.

use std::io::IsTerminal;

use super::Ctx;
use crate::cli::{ColorChoice, DiffArgs};
use crate::diff::{self, StackStatus};
use crate::exit;
use crate::report::diff as report;
use crate::Result;

pub fn run(ctx: &Ctx, args: &DiffArgs) -> Result<i32> {
    let session = ctx.session()?;
    let stage = session.stage()?;
    // Only the named stacks: their upstream stacks are read for outputs, not diffed.
    let selected = session.select(&args.stacks, true)?;
    let order = session.ordered(&selected)?;
    let rendered = session.render(&order)?;
    let g = &session.global;
    // Local stages get their emulator started, as deploy does.
    let target = super::deploy::target(&session, stage)?;
    let diffs = super::block_on(diff::diff_stacks(diff::Request {
        target: &target,
        project: &session.project,
        stage,
        rendered: &rendered,
        method: args.method,
    }))??;

    // The diff is data on stdout: colour follows stdout, not stderr.
    let mut term = ctx.term;
    term.color = match g.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => ctx.term.color && std::io::stdout().is_terminal(),
    };
    if args.json {
        term.data(&report::to_json(&diffs));
        for d in &diffs {
            ctx.term.info(&report::summary(&ctx.term, d));
        }
    } else {
        report::print_text(&term, &diffs, args.context);
    }
    let differs = diffs.iter().any(|d| d.status != StackStatus::Unchanged);
    Ok(if args.fail && differs {
        exit::DIFFERENCES
    } else {
        exit::OK
    })
}
