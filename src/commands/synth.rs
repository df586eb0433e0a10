//! `barkctl synth`: rendered templates to files (or one to stdout). No AWS.

use std::path::PathBuf;

use super::{Ctx, Session};
use crate::cli::SynthArgs;
use crate::{Error, Result};

pub enum SynthOutput {
    /// Paths written, in deploy order.
    Files(Vec<PathBuf>),
    /// One template's JSON.
    Stdout(String),
}

pub fn run(ctx: &Ctx, args: &SynthArgs) -> Result<i32> {
    let session = ctx.session()?;
    match synth(&session, args)? {
        SynthOutput::Stdout(json) => ctx.term.data(json.trim_end()),
        SynthOutput::Files(paths) => {
            for p in paths {
                ctx.term.data(&p.display().to_string());
            }
        }
    }
    Ok(crate::exit::OK)
}

pub fn synth(session: &Session, args: &SynthArgs) -> Result<SynthOutput> {
    let stage = session.stage()?;
    if args.stdout {
        let [name] = args.stacks.as_slice() else {
            return Err(Error::Usage {
                message: "`synth --stdout` prints exactly one stack: name it".into(),
            });
        };
        session.project.stack(name)?;
        let rendered = session.render(std::slice::from_ref(name))?;
        return Ok(SynthOutput::Stdout(rendered[0].to_pretty_json()));
    }
    let selected = session.select(&args.stacks, true)?;
    let names = session.ordered(&selected)?;
    let rendered = session.render(&names)?;
    let out_dir = args.out.clone().unwrap_or_else(|| {
        session
            .project
            .root
            .join(".barkctl")
            .join("synth")
            .join(&stage.name)
    });
    std::fs::create_dir_all(&out_dir).map_err(|source| Error::Write {
        path: out_dir.clone(),
        source,
    })?;
    let mut written = Vec::new();
    for r in rendered {
        let path = out_dir.join(format!("{}.template.json", r.stack_name));
        std::fs::write(&path, r.to_pretty_json()).map_err(|source| Error::Write {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(SynthOutput::Files(written))
}
