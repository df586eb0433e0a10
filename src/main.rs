//! barkctl's entry point: parse, dispatch, print the error once, choose the exit code.

use std::process::ExitCode;

use barkctl::cli::{Cli, Command};
use barkctl::commands::{self, Ctx};
use barkctl::exit;
use barkctl::report::Term;
use clap::Parser;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            let code = if e.use_stderr() {
                exit::INVALID_INPUT
            } else {
                exit::OK
            };
            return ExitCode::from(code as u8);
        }
    };
    let term = Term::new(cli.global.color, cli.global.quiet, cli.global.verbose);
    let ctx = Ctx {
        global: cli.global,
        term,
    };
    let result = match &cli.command {
        Command::Synth(a) => commands::synth::run(&ctx, a),
        Command::Build(a) => commands::build::run(&ctx, a),
        Command::Deploy(a) => commands::deploy::run(&ctx, a),
        Command::Diff(a) => commands::diff::run(&ctx, a),
        Command::Outputs(a) => commands::outputs::run(&ctx, a),
        Command::Destroy(a) => commands::destroy::run(&ctx, a),
        Command::Bootstrap => commands::bootstrap::run(&ctx),
        Command::Graph(a) => commands::graph::run(&ctx, a),
        Command::Validate(a) => commands::validate::run(&ctx, a),
        Command::Local(a) => commands::local::run(&ctx, a),
        Command::Dev(a) => commands::dev::run(&ctx, a),
        Command::Invoke(a) => commands::invoke::run(&ctx, a),
        Command::Watch(a) => commands::watch::run(&ctx, a),
    };
    match result {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            term.error(&e.to_string(), e.hint().as_deref());
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
