//! `barkctl build`: build the Lambda bundles the selected functions use.

use std::time::Instant;

use super::Ctx;
use crate::bundle::{self, BuildOptions};
use crate::cli::BuildArgs;
use crate::exit;
use crate::report::build::{print_table, BuildProgress};
use crate::Result;

pub fn run(ctx: &Ctx, args: &BuildArgs) -> Result<i32> {
    let started = Instant::now();
    let session = ctx.session()?;
    // `--stage` (or the only stage) decides the architectures and the profile,
    // as it decides what `synth` renders for `Architectures`.
    let stage = session.stage()?;
    let functions = bundle::select(&session.project, stage, &args.functions)?;
    let options = BuildOptions {
        stage: stage.clone(),
        quiet: ctx.term.quiet,
        color: ctx.term.color,
    };
    let reporter = BuildProgress::new(ctx.term);
    let bundles = bundle::build_functions(&session.project, &functions, &options, &reporter)?;
    print_table(&ctx.term, &functions, &bundles, started.elapsed());
    Ok(exit::OK)
}
