//! `barkctl local up|down|status`: the local AWS emulator.

use super::Ctx;
use crate::cli::LocalArgs;
use crate::Result;

pub fn run(_ctx: &Ctx, _args: &LocalArgs) -> Result<i32> {
    Err(super::not_available("local"))
}
