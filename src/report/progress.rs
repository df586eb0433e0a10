//! Live progress for deploys and destroys: one indicatif line per stack of the
//! current wave on a terminal; plain timestamped event lines without one (or
//! under `CI`); nothing with `--progress quiet` (the summary still prints).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{Style, Term};
use crate::cli::ProgressMode;
use crate::deploy::{Event, Outcome, Reporter};

/// The reporter for `mode` on `term`: `auto` means bars on a live terminal and
/// event lines otherwise; `--quiet` means quiet.
pub fn reporter(term: Term, mode: ProgressMode) -> Arc<dyn Reporter> {
    let mode = match mode {
        _ if term.quiet => ProgressMode::Quiet,
        ProgressMode::Auto if term.live => ProgressMode::Bar,
        ProgressMode::Auto => ProgressMode::Events,
        m => m,
    };
    match mode {
        ProgressMode::Bar => Arc::new(Bars::new(term)),
        ProgressMode::Events => Arc::new(Lines { term }),
        _ => Arc::new(crate::deploy::NoReport),
    }
}

/// Leave the terminal clean before the summary prints (bars finish themselves;
/// this is the hook for reporters that buffer).
pub fn finish(_reporter: &dyn Reporter) {}

/// Plain lines on stderr: `HH:MM:SS stack-name  logical-id  STATUS  reason`.
struct Lines {
    term: Term,
}

fn now() -> String {
    chrono::Utc::now().format("%H:%M:%S").to_string()
}

impl Reporter for Lines {
    fn event(&self, event: &Event) {
        let line = match event {
            Event::Wave { index, stacks } => {
                format!("{} wave {}: {}", now(), index + 1, stacks.join(", "))
            }
            Event::Started {
                stack_name, action, ..
            } => format!("{} {stack_name} {action}", now()),
            Event::Note { stack, text } => format!("{} {stack}: {text}", now()),
            Event::Resource {
                stack,
                logical_id,
                resource_type,
                status,
                reason,
                done,
                total,
                ..
            } => {
                let mut l = format!(
                    "{} {stack} {logical_id} ({resource_type}) {}",
                    now(),
                    paint_status(&self.term, status)
                );
                if *total > 0 {
                    l.push_str(&format!(" [{done}/{total}]"));
                }
                if let Some(r) = reason.as_deref().filter(|r| !r.is_empty()) {
                    l.push_str(&format!(": {r}"));
                }
                l
            }
            Event::Asset {
                key,
                uploaded,
                bytes,
            } => format!(
                "{} asset {key} ({}) {}",
                now(),
                super::build::human_size(*bytes),
                if *uploaded {
                    "uploaded"
                } else {
                    "already present"
                }
            ),
            Event::Finished(r) => format!(
                "{} {} {} in {}",
                now(),
                r.stack_name,
                paint_outcome(&self.term, r.outcome),
                duration(r.duration)
            ),
        };
        eprintln!("{line}");
    }
}

pub fn paint_status(term: &Term, status: &str) -> String {
    let style = if status.ends_with("_FAILED") || status.contains("ROLLBACK") {
        Style::Red
    } else if status.ends_with("_COMPLETE") {
        Style::Green
    } else {
        Style::Yellow
    };
    term.paint(style, status)
}

pub fn paint_outcome(term: &Term, outcome: Outcome) -> String {
    let style = match outcome {
        Outcome::Failed => Style::Red,
        Outcome::Created | Outcome::Updated | Outcome::Hotswapped | Outcome::Deleted => {
            Style::Green
        }
        Outcome::NotStarted => Style::Yellow,
        Outcome::Unchanged | Outcome::Absent => Style::Dim,
    };
    term.paint(style, outcome.label())
}

/// `1.2s`, `2m05s`.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let s = d.as_secs();
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// One bar per stack of the current wave: status, resources done / total, elapsed.
struct Bars {
    term: Term,
    multi: MultiProgress,
    bars: Mutex<BTreeMap<String, ProgressBar>>,
}

impl Bars {
    fn new(term: Term) -> Self {
        Bars {
            term,
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(BTreeMap::new()),
        }
    }

    fn style() -> ProgressStyle {
        ProgressStyle::with_template(
            "{spinner} {prefix:<28} {wide_msg} {pos}/{len} resources {elapsed:>4}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
    }

    fn bar(&self, stack: &str) -> Option<ProgressBar> {
        self.bars.lock().ok()?.get(stack).cloned()
    }
}

impl Reporter for Bars {
    fn event(&self, event: &Event) {
        match event {
            Event::Wave { .. } => {}
            Event::Started {
                stack,
                stack_name,
                action,
                resources,
            } => {
                let bar = self.multi.add(ProgressBar::new(*resources as u64));
                bar.set_style(Self::style());
                bar.set_prefix(stack_name.clone());
                bar.set_message(action.clone());
                bar.enable_steady_tick(Duration::from_millis(120));
                if let Ok(mut m) = self.bars.lock() {
                    m.insert(stack.clone(), bar);
                }
            }
            Event::Note { stack, text } => {
                let _ = self.multi.println(format!("{stack}: {text}"));
            }
            Event::Resource {
                stack,
                logical_id,
                status,
                reason,
                done,
                ..
            } => {
                if let Some(bar) = self.bar(stack) {
                    bar.set_position(*done as u64);
                    bar.set_message(format!("{logical_id} {}", paint_status(&self.term, status)));
                }
                if status.ends_with("_FAILED") {
                    let _ = self.multi.println(format!(
                        "{stack} {logical_id} {}: {}",
                        paint_status(&self.term, status),
                        reason.as_deref().unwrap_or("")
                    ));
                }
            }
            Event::Asset { key, uploaded, .. } => {
                if *uploaded {
                    let _ = self.multi.println(format!("uploaded {key}"));
                }
            }
            Event::Finished(r) => {
                if let Some(bar) = self.bar(&r.stack) {
                    if let Some(len) = bar.length() {
                        if r.outcome != Outcome::Failed {
                            bar.set_position(len);
                        }
                    }
                    bar.finish_with_message(paint_outcome(&self.term, r.outcome));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(duration(Duration::from_millis(1234)), "1.2s");
        assert_eq!(duration(Duration::from_secs(125)), "2m05s");
    }
}
