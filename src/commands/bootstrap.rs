//! `barkctl bootstrap`: create the toolkit stack (asset bucket) for the app and region.

use super::Ctx;
use crate::Result;

pub fn run(_ctx: &Ctx) -> Result<i32> {
    Err(super::not_available("bootstrap"))
}
