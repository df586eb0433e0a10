//! Everything a person sees: colour choice, stdout for data, stderr for the rest.
//! Core modules never print; they return values that land here.

use std::io::{IsTerminal, Write};

use crate::cli::ColorChoice;

/// Where and how to print.
#[derive(Debug, Clone, Copy)]
pub struct Term {
    pub color: bool,
    pub quiet: bool,
    pub verbose: u8,
    pub stderr_tty: bool,
    /// Live progress bars are allowed (a TTY on stderr, and not under `CI`).
    pub live: bool,
}

impl Term {
    pub fn new(choice: ColorChoice, quiet: bool, verbose: u8) -> Self {
        let stderr_tty = std::io::stderr().is_terminal();
        // anstream's choice: NO_COLOR, CLICOLOR / CLICOLOR_FORCE, TERM=dumb, a TTY.
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never
            }
        };
        // Live bars are not colour: `CI=false` (some runners set it) still allows them.
        let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
        Term {
            color,
            quiet,
            verbose,
            stderr_tty,
            live: stderr_tty && !ci,
        }
    }

    pub fn paint(&self, style: Style, text: &str) -> String {
        if !self.color {
            return text.to_string();
        }
        use anstyle::AnsiColor;
        let fg = |c: AnsiColor| anstyle::Style::new().fg_color(Some(c.into()));
        let st = match style {
            Style::Red => fg(AnsiColor::Red),
            Style::Green => fg(AnsiColor::Green),
            Style::Yellow => fg(AnsiColor::Yellow),
            Style::Cyan => fg(AnsiColor::Cyan),
            Style::Bold => anstyle::Style::new().bold(),
            Style::Dim => anstyle::Style::new().dimmed(),
        };
        format!("{st}{text}{st:#}")
    }

    /// A line of data on stdout. A closed pipe (`| head`) is not an error.
    pub fn data(&self, line: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
    }

    /// A line for people on stderr, unless `--quiet`.
    pub fn info(&self, line: &str) {
        if !self.quiet {
            eprintln!("{line}");
        }
    }

    /// The one place an error is printed: `error: …`, then causes, then a hint.
    pub fn error(&self, message: &str, hint: Option<&str>) {
        eprintln!("{} {message}", self.paint(Style::Red, "error:"));
        if let Some(h) = hint {
            eprintln!("\n{} {h}", self.paint(Style::Cyan, "hint:"));
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Style {
    Red,
    Green,
    Yellow,
    Cyan,
    Bold,
    Dim,
}

pub mod build;
pub mod dev;
pub mod diff;
pub mod progress;
pub mod summary;
