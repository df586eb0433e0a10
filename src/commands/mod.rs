//! One module per command: each loads what it needs, calls the pure core, and
//! returns what `main` reports.

pub mod bootstrap;
pub mod build;
pub mod deploy;
pub mod destroy;
pub mod dev;
pub mod diff;
pub mod graph;
pub mod invoke;
pub mod local;
pub mod outputs;
pub mod synth;
pub mod validate;
pub mod watch;

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::cli::GlobalArgs;
use crate::graph::Graph;
use crate::project::{self, Project, Stage};
use crate::render::{self, Rendered, Renderer};
use crate::report::Term;
use crate::{Error, Result};

/// What every command gets: the global flags and the terminal. The project is
/// loaded on demand (`local` works outside a project's stage selection).
pub struct Ctx {
    pub global: GlobalArgs,
    pub term: Term,
}

impl Ctx {
    pub fn session(&self) -> Result<Session> {
        Session::load(self.global.clone(), self.term)
    }
}

/// Run an async command body on a fresh multi-threaded runtime.
pub fn block_on<F: std::future::Future>(fut: F) -> Result<F::Output> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Failed(format!("cannot start the async runtime: {e}")))?;
    Ok(rt.block_on(fut))
}

/// A loaded project and the global flags: what every command starts from.
pub struct Session {
    pub project: Project,
    pub global: GlobalArgs,
    pub term: Term,
}

impl Session {
    pub fn load(global: GlobalArgs, term: Term) -> Result<Self> {
        let root = match &global.project {
            Some(dir) => {
                if !dir.join("stacks").join("project.yaml").is_file() {
                    return Err(project::Error::NotFound { start: dir.clone() }.into());
                }
                dir.clone()
            }
            None => {
                let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
                project::find_root(&cwd)?
            }
        };
        let project = project::load(&root)?;
        Ok(Session {
            project,
            global,
            term,
        })
    }

    pub fn stage(&self) -> Result<&Stage> {
        Ok(self.project.select_stage(self.global.stage.as_deref())?)
    }

    pub fn graph(&self) -> Graph {
        Graph::from_project(&self.project)
    }

    /// Named stacks (all when none are named), plus what they need unless
    /// `exclusively`. Unknown names are an error.
    pub fn select(&self, names: &[String], exclusively: bool) -> Result<BTreeSet<String>> {
        for n in names {
            self.project.stack(n)?;
        }
        if names.is_empty() {
            return Ok(self.project.stacks.keys().cloned().collect());
        }
        if exclusively {
            return Ok(names.iter().cloned().collect());
        }
        Ok(self.graph().with_dependencies(names))
    }

    /// Selected stacks in deploy order (waves flattened).
    pub fn ordered(&self, selected: &BTreeSet<String>) -> Result<Vec<String>> {
        Ok(self
            .graph()
            .waves_of(selected)?
            .into_iter()
            .flatten()
            .collect())
    }

    /// Render and check `names` (in the given order) for the current stage.
    pub fn render(&self, names: &[String]) -> Result<Vec<Rendered>> {
        let renderer = Renderer::new(&self.project.root)?;
        let stage = self.stage()?;
        Ok(render::render_all(&renderer, &self.project, stage, names)?)
    }
}

/// Commands that are part of the surface but have no body yet.
pub fn not_available(command: &'static str) -> Error {
    Error::NotAvailable { command }
}
