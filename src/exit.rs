//! The exit codes (README "Exit codes"): `main.rs` picks one per error, and each
//! layer's error type says which of its variants maps to which. Their own module,
//! so that the layers need nothing else from `error.rs`, which wraps their errors.

pub const OK: i32 = 0;
pub const DIFFERENCES: i32 = 1;
pub const INVALID_INPUT: i32 = 2;
pub const DEPLOY_FAILED: i32 = 3;
/// Ctrl-C (128 + SIGINT, as shells report it).
pub const INTERRUPTED: i32 = 130;
