//! barkctl's entry point: parse, dispatch, print the error once, choose the exit code.

use std::process::ExitCode;

use barkctl::cli::{Cli, Command};
use barkctl::commands::{self, synth::SynthOutput, Session};
use barkctl::error::exit;
use barkctl::report::Term;
use barkctl::Result;
use clap::Parser;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::INVALID_INPUT
            } else {
                exit::OK
            } as u8);
        }
    };
    let term = Term::new(cli.global.color, cli.global.quiet, cli.global.verbose);
    match run(cli, term) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            term.error(&e.to_string(), e.hint().as_deref());
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

fn run(cli: Cli, term: Term) -> Result<i32> {
    let session = || Session::load(cli.global.clone(), term);
    match &cli.command {
        Command::Synth(args) => {
            let s = session()?;
            match commands::synth::run(&s, args)? {
                SynthOutput::Stdout(json) => print!("{json}"),
                SynthOutput::Files(paths) => {
                    for p in paths {
                        term.data(&p.display().to_string());
                    }
                }
            }
        }
        Command::Graph(args) => {
            let s = session()?;
            print!("{}", commands::graph::run(&s, args)?);
        }
        Command::Validate(args) => {
            let s = session()?;
            for line in commands::validate::run(&s, args)? {
                term.info(&line);
            }
        }
        Command::Build(_) => return Err(commands::not_available("build")),
        Command::Deploy(_) => return Err(commands::not_available("deploy")),
        Command::Diff(_) => return Err(commands::not_available("diff")),
        Command::Outputs(_) => return Err(commands::not_available("outputs")),
        Command::Destroy(_) => return Err(commands::not_available("destroy")),
        Command::Bootstrap => return Err(commands::not_available("bootstrap")),
        Command::Local(_) => return Err(commands::not_available("local")),
    }
    Ok(exit::OK)
}
