//! `barkctl watch --stage S`: deploy with `--hotswap`, then poll `lambdas/`,
//! `stacks/` and `templates/` every 0.5 s (the fingerprint `dev --watch` uses)
//! and deploy again on each change, one line per round. Ctrl-C ends it (130).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Ctx;
use crate::cli::{DeployArgs, ProgressMode, WatchArgs};
use crate::deploy::{self, Outcome, StackResult};
use crate::dev::watch::{fingerprint, Fingerprint};
use crate::exit;
use crate::report::Term;
use crate::Result;

/// What is watched, under the project root.
const WATCHED: [&str; 3] = ["lambdas", "stacks", "templates"];

pub fn run(ctx: &Ctx, args: &WatchArgs) -> Result<i32> {
    let session = ctx.session()?;
    let stage = session.stage()?.clone();
    if stage.termination_protection && !args.force {
        return Err(deploy::Error::ProtectedHotswap { stage: stage.name }.into());
    }
    let dirs: Vec<PathBuf> = WATCHED
        .iter()
        .map(|d| session.project.root.join(d))
        .collect();
    let stop = on_ctrl_c();
    // Each round's own output stays quiet: the round line says what happened.
    let inner = Ctx {
        global: ctx.global.clone(),
        term: Term {
            quiet: true,
            ..ctx.term
        },
    };
    let deploy_args = DeployArgs {
        stacks: args.stacks.clone(),
        exclusively: false,
        concurrency: 4,
        yes: args.yes,
        allow_replace: false,
        dry_run: false,
        json: false,
        outputs_file: None,
        progress: ProgressMode::Quiet,
        hotswap: true,
        force: args.force,
        lock_timeout: args.lock_timeout,
    };
    ctx.term.info(&format!(
        "watch: stage `{}`: {} (Ctrl-C stops)",
        stage.name,
        WATCHED.map(|d| format!("{d}/")).join(", ")
    ));
    let mut last = fingerprints(&dirs);
    let mut round = 0;
    loop {
        round += 1;
        let started = Instant::now();
        match super::deploy::execute(&inner, &deploy_args) {
            Ok(results) => ctx
                .term
                .info(&round_line(round, &results, started.elapsed())),
            Err(e) if e.exit_code() == exit::INTERRUPTED => return Err(e),
            Err(e) => ctx.term.info(&format!(
                "watch: round {round}: failed in {:.1} s: {e}",
                started.elapsed().as_secs_f64()
            )),
        }
        // Wait for a change; editors write in bursts, so let the tree settle.
        loop {
            if stop.load(Ordering::SeqCst) {
                ctx.term.info("watch: stopped");
                return Ok(exit::INTERRUPTED);
            }
            std::thread::sleep(Duration::from_millis(500));
            if fingerprints(&dirs) != last {
                std::thread::sleep(Duration::from_millis(300));
                last = fingerprints(&dirs);
                break;
            }
        }
        if stop.load(Ordering::SeqCst) {
            ctx.term.info("watch: stopped");
            return Ok(exit::INTERRUPTED);
        }
    }
}

fn fingerprints(dirs: &[PathBuf]) -> Vec<Fingerprint> {
    dirs.iter().map(|d| fingerprint(d)).collect()
}

/// A flag set by Ctrl-C (or SIGTERM). Between rounds the loop checks it; a
/// deploy that is running stops on the same signal by itself.
fn on_ctrl_c() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            let _ = ready_tx.send(());
            return;
        };
        rt.block_on(async {
            let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
            let int = tokio::signal::ctrl_c();
            let _ = ready_tx.send(());
            match term {
                Ok(mut term) => tokio::select! {
                    _ = int => {}
                    _ = term.recv() => {}
                },
                Err(_) => {
                    let _ = int.await;
                }
            }
        });
        flag.store(true, Ordering::SeqCst);
    });
    // The handlers are in place before the first round starts.
    let _ = ready_rx.recv_timeout(Duration::from_secs(2));
    stop
}

/// `watch: round 2: hotswapped clock: app-local-clock-tick (1 function) in 0.4 s`
pub fn round_line(round: usize, results: &[StackResult], took: Duration) -> String {
    let parts: Vec<String> = results
        .iter()
        .filter_map(|r| {
            let note = r.note.as_deref().unwrap_or("");
            Some(match r.outcome {
                Outcome::Unchanged => return None,
                Outcome::Hotswapped => {
                    let names = note.strip_suffix(deploy::HOTSWAP_NOTE).unwrap_or(note);
                    let n = names.split(", ").filter(|s| !s.is_empty()).count();
                    format!(
                        "hotswapped {}: {names} ({n} function{})",
                        r.stack,
                        if n == 1 { "" } else { "s" }
                    )
                }
                Outcome::Updated => {
                    let why = note.strip_prefix("no hotswap: ").unwrap_or("full deploy");
                    format!("deployed {} ({why})", r.stack)
                }
                other => format!("{} {}", other.label(), r.stack),
            })
        })
        .collect();
    format!(
        "watch: round {round}: {} in {:.2} s",
        if parts.is_empty() {
            "no changes".to_string()
        } else {
            parts.join("; ")
        },
        took.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(stack: &str, outcome: Outcome, note: Option<String>) -> StackResult {
        StackResult {
            stack: stack.into(),
            stack_name: format!("app-local-{stack}"),
            outcome,
            duration: Duration::ZERO,
            note,
        }
    }

    #[test]
    fn a_round_line_names_hotswapped_functions_and_why_a_stack_deployed() {
        let results = vec![
            result("network", Outcome::Unchanged, None),
            result(
                "clock",
                Outcome::Hotswapped,
                Some(format!("app-local-clock-tick{}", deploy::HOTSWAP_NOTE)),
            ),
            result(
                "api",
                Outcome::Updated,
                Some(
                    "no hotswap: resource `Rule` changed beyond function code and environment"
                        .into(),
                ),
            ),
        ];
        assert_eq!(
            round_line(3, &results, Duration::from_millis(420)),
            "watch: round 3: hotswapped clock: app-local-clock-tick (1 function); deployed api (resource `Rule` changed beyond function code and environment) in 0.42 s"
        );
        assert_eq!(
            round_line(1, &results[..1], Duration::from_secs(1)),
            "watch: round 1: no changes in 1.00 s"
        );
    }
}
