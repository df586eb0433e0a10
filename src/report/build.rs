//! Terminal output for `barkctl build`: an indicatif bar while cargo compiles
//! (live terminals only; cargo's own lines pass straight through otherwise, plus
//! a heartbeat line every 15 s saying how far the build is), and the table of
//! bundles at the end.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{Style, Term};
use crate::bundle::{BuildReporter, Bundle, FunctionRef};

/// How often a build without a live terminal says how far it is: a log (CI,
/// a pipe) must not go silent for the minutes a cold optimised build takes.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// What the heartbeat reports: compile units done so far of the cargo run.
#[derive(Debug, Default)]
struct Units {
    done: u64,
    /// Units the same build had last time, when known.
    total: Option<u64>,
    last: String,
    target: String,
}

/// `build: 143/310 compile units (46%) for aarch64-unknown-linux-gnu, last: aws-sdk-s3, 45s`
fn heartbeat_line(u: &Units, elapsed: Duration) -> String {
    let count = match u.total {
        Some(t) if t > 0 => format!(
            "{}/{t} compile units ({}%)",
            u.done,
            (u.done * 100 / t).min(100)
        ),
        _ => format!("{} compile units", u.done),
    };
    let last = if u.last.is_empty() {
        String::new()
    } else {
        format!(", last: {}", u.last)
    };
    format!(
        "build: {count} for {}{last}, {}s",
        u.target,
        elapsed.as_secs()
    )
}

/// Build progress on stderr.
pub struct BuildProgress {
    term: Term,
    bar: Mutex<Option<ProgressBar>>,
    /// Inside a rustc warning block (dropped under `--quiet`).
    skipping_warning: Mutex<bool>,
    units: Arc<Mutex<Units>>,
    /// Set to stop the running heartbeat thread.
    beat_stop: Mutex<Option<Arc<AtomicBool>>>,
}

impl BuildProgress {
    pub fn new(term: Term) -> Self {
        BuildProgress {
            term,
            bar: Mutex::new(None),
            skipping_warning: Mutex::new(false),
            units: Arc::new(Mutex::new(Units::default())),
            beat_stop: Mutex::new(None),
        }
    }

    /// Without a live bar: one line per `HEARTBEAT` until the cargo run ends.
    fn start_heartbeat(&self, target: &str, total: Option<u64>) {
        if let Ok(mut u) = self.units.lock() {
            *u = Units {
                total,
                target: target.to_string(),
                ..Units::default()
            };
        }
        let stop = Arc::new(AtomicBool::new(false));
        if let Ok(mut slot) = self.beat_stop.lock() {
            *slot = Some(stop.clone());
        }
        let units = self.units.clone();
        let started = Instant::now();
        std::thread::spawn(move || {
            let mut next = started + HEARTBEAT;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                if Instant::now() < next || stop.load(Ordering::Relaxed) {
                    continue;
                }
                next += HEARTBEAT;
                if let Ok(u) = units.lock() {
                    eprintln!("{}", heartbeat_line(&u, started.elapsed()));
                }
            }
        });
    }

    /// Under `--quiet`, cargo (run with `--quiet`) still prints rustc's
    /// warnings. A rendered diagnostic is a block that starts with its level at
    /// column 0, so warning blocks are dropped until the next `error` line.
    fn errors_only<'a>(&self, line: &'a str) -> Option<&'a str> {
        let plain = strip_ansi(line);
        let mut skipping = self.skipping_warning.lock().ok()?;
        if plain.starts_with("warning") {
            *skipping = true;
        } else if plain.starts_with("error") {
            *skipping = false;
        }
        (!*skipping).then_some(line)
    }

    fn with_bar(&self, f: impl FnOnce(&ProgressBar)) {
        if let Ok(guard) = self.bar.lock() {
            if let Some(bar) = guard.as_ref() {
                f(bar);
            }
        }
    }
}

impl BuildReporter for BuildProgress {
    fn build_started(&self, crates: &[String], target: &str, units: Option<u64>) {
        if self.term.quiet {
            return;
        }
        let what = format!(
            "building {} crate{} for {target}: {}",
            crates.len(),
            if crates.len() == 1 { "" } else { "s" },
            crates.join(", ")
        );
        if !self.term.live {
            // Cargo's own stderr follows, unfiltered (nothing under `--quiet`,
            // as deploy runs it): the heartbeat says how far it is.
            self.term.info(&what);
            self.start_heartbeat(target, units);
            return;
        }
        let bar = match units {
            Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
        };
        let template = if units.is_some() {
            "{spinner} Compiling {pos}/{len} [{bar:25}] {wide_msg}"
        } else {
            "{spinner} Compiling {pos} {wide_msg}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.enable_steady_tick(Duration::from_millis(100));
        bar.println(what);
        if let Ok(mut guard) = self.bar.lock() {
            *guard = Some(bar);
        }
    }

    fn preparing(&self, what: &str) {
        if !self.term.quiet {
            self.term.info(what);
        }
    }

    fn takes_cargo_output(&self) -> bool {
        // A live bar needs cargo's lines routed around it; `--quiet` needs
        // rustc's warnings held back. Otherwise cargo writes to stderr itself.
        self.term.quiet || self.term.live
    }

    fn cargo_line(&self, line: &str) {
        if self.term.quiet {
            if let Some(line) = self.errors_only(line) {
                eprintln!("{line}");
            }
            return;
        }
        let plain = strip_ansi(line);
        let word = plain.split_whitespace().next().unwrap_or("");
        let status = plain.starts_with(' ')
            && matches!(
                word,
                "Compiling"
                    | "Checking"
                    | "Fresh"
                    | "Downloading"
                    | "Downloaded"
                    | "Locking"
                    | "Updating"
                    | "Adding"
                    | "Blocking"
                    | "Building"
                    | "Finished"
            );
        let mut shown = false;
        self.with_bar(|bar| {
            if status {
                bar.set_message(plain.trim().to_string());
            } else {
                bar.println(line);
            }
            shown = true;
        });
        if !shown {
            eprintln!("{line}");
        }
    }

    fn unit_finished(&self, name: &str, _fresh: bool) {
        if let Ok(mut u) = self.units.lock() {
            u.done += 1;
            u.last.clear();
            u.last.push_str(name);
        }
        self.with_bar(|bar| {
            bar.inc(1);
            bar.set_message(name.to_string());
        });
    }

    fn cargo_finished(&self, _success: bool) {
        if let Ok(mut slot) = self.beat_stop.lock() {
            if let Some(stop) = slot.take() {
                stop.store(true, Ordering::Relaxed);
            }
        }
        if let Ok(mut guard) = self.bar.lock() {
            if let Some(bar) = guard.take() {
                bar.finish_and_clear();
            }
        }
    }
}

/// One row per function: function, crate, sha256 prefix, zip size, ELF
/// architecture, newest glibc needed, rebuilt/reused.
pub fn print_table(
    term: &Term,
    functions: &[FunctionRef],
    bundles: &BTreeMap<String, Bundle>,
    elapsed: Duration,
) {
    if term.quiet {
        return;
    }
    if functions.is_empty() {
        term.info("no functions to build: no stack declares `functions`");
        return;
    }
    let mut rows: Vec<[String; 7]> = vec![[
        "FUNCTION".into(),
        "CRATE".into(),
        "SHA256".into(),
        "ZIP".into(),
        "ARCH".into(),
        "GLIBC".into(),
        "BUNDLE".into(),
    ]];
    let mut sorted: Vec<&FunctionRef> = functions.iter().collect();
    sorted.sort_by_key(|f| f.label());
    for f in sorted {
        let Some(b) = bundles.get(&f.crate_name) else {
            continue;
        };
        rows.push([
            f.label(),
            b.crate_name.clone(),
            b.sha256.chars().take(12).collect(),
            human_size(b.zip_bytes),
            b.architecture.as_str().into(),
            b.glibc.map_or_else(
                || "-".to_string(),
                |(major, minor)| format!("{major}.{minor}"),
            ),
            if b.rezipped { "rebuilt" } else { "reused" }.into(),
        ]);
    }
    let mut widths = [0usize; 7];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for (i, row) in rows.iter().enumerate() {
        let line = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        let line = line.trim_end();
        if i == 0 {
            term.info(&term.paint(Style::Bold, line));
        } else {
            term.info(line);
        }
    }
    for b in bundles.values().filter(|b| !b.runs_on_al2023()) {
        if let Some((major, minor)) = b.glibc {
            let (al_major, al_minor) = crate::bundle::AL2023_GLIBC;
            term.info(&format!(
                "{} `{}` needs GLIBC_{major}.{minor}, newer than the {al_major}.{al_minor} of Lambda's provided.al2023: it will not start there; build on an older glibc, or with cargo-zigbuild",
                term.paint(Style::Yellow, "warning:"),
                b.crate_name
            ));
        }
    }
    let rebuilt = bundles.values().filter(|b| b.rezipped).count();
    term.info(&term.paint(
        Style::Dim,
        &format!(
            "{} bundle{} ({rebuilt} rebuilt, {} reused) in {:.2}s",
            bundles.len(),
            if bundles.len() == 1 { "" } else { "s" },
            bundles.len() - rebuilt,
            elapsed.as_secs_f64()
        ),
    ));
}

/// `1536` -> `1.5 KiB`
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Cargo colours its status words when asked to; classification needs the text.
fn strip_ansi(s: &str) -> String {
    anstream::adapter::strip_str(s).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heartbeat_says_what_was_compiled_and_how_far_it_is() {
        let mut u = Units {
            done: 143,
            total: Some(310),
            last: "aws-sdk-s3".into(),
            target: "aarch64-unknown-linux-gnu".into(),
        };
        assert_eq!(
            heartbeat_line(&u, Duration::from_secs(45)),
            "build: 143/310 compile units (46%) for aarch64-unknown-linux-gnu, last: aws-sdk-s3, 45s"
        );
        u.total = None;
        u.last.clear();
        assert_eq!(
            heartbeat_line(&u, Duration::from_secs(15)),
            "build: 143 compile units for aarch64-unknown-linux-gnu, 15s"
        );
    }

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human_size(900), "900 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 * 1024 * 1024 + 1024 * 512), "3.5 MiB");
    }

    #[test]
    fn quiet_keeps_compile_errors_and_drops_warning_blocks() {
        let term = Term {
            color: false,
            quiet: true,
            verbose: 0,
            stderr_tty: false,
            live: false,
        };
        let p = BuildProgress::new(term);
        let cargo_output = [
            "warning: unused variable: `x`",
            " --> src/main.rs:2:9",
            "",
            "\x1b[1m\x1b[31merror[E0308]\x1b[0m: mismatched types",
            " --> src/main.rs:3:18",
            "",
            "warning: `hello` (bin \"hello\") generated 1 warning",
            "error: could not compile `hello` (bin \"hello\") due to 1 previous error",
        ];
        let kept: Vec<&str> = cargo_output
            .iter()
            .filter_map(|l| p.errors_only(l))
            .collect();
        assert_eq!(
            kept,
            [
                "\x1b[1m\x1b[31merror[E0308]\x1b[0m: mismatched types",
                " --> src/main.rs:3:18",
                "",
                "error: could not compile `hello` (bin \"hello\") due to 1 previous error",
            ]
        );
    }

    #[test]
    fn colour_codes_are_stripped_from_cargo_status_lines() {
        assert_eq!(
            strip_ansi("\x1b[1m\x1b[32m   Compiling\x1b[0m hello v0.1.0"),
            "   Compiling hello v0.1.0"
        );
    }
}
