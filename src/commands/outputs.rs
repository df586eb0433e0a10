//! `barkctl outputs`: deployed stacks' outputs as a table, JSON or env lines.

use super::Ctx;
use crate::cli::OutputsArgs;
use crate::Result;

pub fn run(_ctx: &Ctx, _args: &OutputsArgs) -> Result<i32> {
    Err(super::not_available("outputs"))
}
