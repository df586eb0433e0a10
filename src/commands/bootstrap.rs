//! `barkctl bootstrap`: create the toolkit stack (asset bucket, stage lock table)
//! for the app and region.

use super::Ctx;
use crate::aws;
use crate::report::progress;
use crate::Result;

pub fn run(ctx: &Ctx) -> Result<i32> {
    let session = ctx.session()?;
    let stage = session.stage()?.clone();
    let target = super::deploy::target(&session, &stage)?;
    let reporter = progress::reporter(ctx.term, crate::cli::ProgressMode::Auto);
    let app = session.project.app.clone();
    let toolkit = super::block_on(async {
        let sdk = aws::sdk_config(&target).await;
        super::deploy::ensure_toolkit(
            &aws::cloudformation(&sdk),
            &aws::s3(&sdk),
            &target,
            &app,
            reporter,
        )
        .await
    })??;
    let bucket = toolkit.bucket(&app)?;
    ctx.term.info(&format!(
        "toolkit stack `{}` ready in {}",
        crate::deploy::assets::toolkit_stack_name(&app),
        target.region
    ));
    ctx.term.data(&bucket);
    Ok(crate::exit::OK)
}
