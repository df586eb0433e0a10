//! The local AWS emulator's lifecycle (`barkctl local up|down|status`).

/// Errors of this layer. Each variant carries its context (stack, file, AWS code).
#[derive(Debug, thiserror::Error)]
pub enum Error {}

impl Error {
    /// The process exit code for this error (see README "Exit codes").
    pub fn exit_code(&self) -> i32 {
        match *self {}
    }
}
