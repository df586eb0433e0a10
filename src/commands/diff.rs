//! `barkctl diff`: what a deploy would change, per stack.

use super::Ctx;
use crate::cli::DiffArgs;
use crate::Result;

pub fn run(_ctx: &Ctx, _args: &DiffArgs) -> Result<i32> {
    Err(super::not_available("diff"))
}
