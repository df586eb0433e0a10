//! `barkctl destroy`: delete stacks in reverse dependency order.

use super::Ctx;
use crate::cli::DestroyArgs;
use crate::Result;

pub fn run(_ctx: &Ctx, _args: &DestroyArgs) -> Result<i32> {
    Err(super::not_available("destroy"))
}
