//! barkctl: stack files -> validated project -> rendered CloudFormation -> deployed
//! stacks. The binary in `main.rs` parses arguments and dispatches to `commands`.

pub mod aws;
pub mod bundle;
pub mod cli;
pub mod commands;
pub mod deploy;
pub mod dev;
pub mod diff;
pub mod error;
pub mod exit;
pub mod graph;
pub mod local;
pub mod plan;
pub mod project;
pub mod render;
pub mod report;
pub mod toolchain;

pub use error::{Error, Result};
