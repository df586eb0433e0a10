//! `barkctl validate`: load, order and render every stack for one stage (or all
//! stages), and check each document, including its secret grants
//! (`render::secret_grants`). No AWS.

use super::{Ctx, Session};
use crate::cli::ValidateArgs;
use crate::render::{self, secret_grants, Renderer};
use crate::Result;

pub fn run(ctx: &Ctx, args: &ValidateArgs) -> Result<i32> {
    for line in validate(&ctx.session()?, args)? {
        ctx.term.info(&line);
    }
    Ok(crate::exit::OK)
}

/// One line per stage: `stage: N stacks, M resources: ok`.
pub fn validate(session: &Session, args: &ValidateArgs) -> Result<Vec<String>> {
    let all: Vec<String> = session.project.stacks.keys().cloned().collect();
    let selected = all.iter().cloned().collect();
    let names = session.ordered(&selected)?;
    let stages: Vec<_> = if args.all_stages || session.global.stage.is_none() {
        session.project.stages.values().collect()
    } else {
        vec![session.stage()?]
    };
    let renderer = Renderer::new(&session.project.root)?;
    let mut lines = Vec::new();
    let mut unused_grants = Vec::new();
    for stage in stages {
        let rendered = render::render_all(&renderer, &session.project, stage, &names)?;
        for r in &rendered {
            unused_grants.extend(secret_grants::check(&r.stack_name, &r.template));
        }
        let resources: usize = rendered
            .iter()
            .map(|r| r.template["Resources"].as_object().map_or(0, |m| m.len()))
            .sum();
        lines.push(format!(
            "{}: {} stacks, {} resources: ok",
            stage.name,
            rendered.len(),
            resources
        ));
    }
    if !unused_grants.is_empty() {
        return Err(secret_grants::UnusedSecretGrants(unused_grants).into());
    }
    Ok(lines)
}
