//! `barkctl dev` and `barkctl invoke`: run what a local stage deployed.
//!
//! Reads the deployed stage from the emulator (never `stacks/`): functions and
//! their configuration, event source mappings, EventBridge rules and targets,
//! WebSocket APIs. Then runs it: each function's host-arch binary behind a Lambda
//! Runtime API on 127.0.0.1 ([`runtime`]), API Gateway WebSocket semantics in
//! front of the functions ([`gateway`]), DynamoDB stream polling and schedules as
//! triggers ([`triggers`]). The handlers run unchanged: only endpoints differ.

pub mod bundles;
pub mod deployed;
pub mod engine;
pub mod error;
pub mod gateway;
pub mod invoke;
pub mod runtime;
pub mod stage;
pub mod triggers;
pub mod watch;

pub use error::Error;
pub use invoke::{Invocation, Invoke, Outcome};
