//! Lambda crates (found with cargo_metadata) -> one release build -> reproducible zips keyed by the sha256 of the binary; asset upload.

/// Errors of this layer. Each variant carries its context (stack, file, AWS code).
#[derive(Debug, thiserror::Error)]
pub enum Error {}

impl Error {
    /// The process exit code for this error (see README "Exit codes").
    pub fn exit_code(&self) -> i32 {
        match *self {}
    }
}
