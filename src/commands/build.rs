//! `barkctl build`: build the Lambda bundles the selected stacks use.

use super::Ctx;
use crate::cli::BuildArgs;
use crate::Result;

pub fn run(_ctx: &Ctx, _args: &BuildArgs) -> Result<i32> {
    Err(super::not_available("build"))
}
