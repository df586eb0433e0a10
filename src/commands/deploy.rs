//! `barkctl deploy`: plan, then carry the plan out wave by wave.

use super::Ctx;
use crate::cli::DeployArgs;
use crate::Result;

pub fn run(_ctx: &Ctx, _args: &DeployArgs) -> Result<i32> {
    Err(super::not_available("deploy"))
}
