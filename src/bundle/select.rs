//! Which functions to bundle: every function of some stacks, or functions named
//! on the command line as `stack.function`, `function` or a crate name.

use std::path::PathBuf;

use super::Error;
use crate::project::{Architecture, Project, Stage};

/// One function of one stack, as the build needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionRef {
    pub stack: String,
    /// The key in the stack file (`connect`).
    pub key: String,
    pub crate_name: String,
    /// The stack file, relative to the project root, for errors.
    pub stack_file: PathBuf,
    /// What the stack files declare for the stage being built.
    pub architecture: Architecture,
}

impl FunctionRef {
    /// `realtime.connect`
    pub fn label(&self) -> String {
        format!("{}.{}", self.stack, self.key)
    }
}

/// Every function of the named stacks at `stage`, in stack then key order.
pub fn functions_of(
    project: &Project,
    stage: &Stage,
    stacks: &[String],
) -> Result<Vec<FunctionRef>, Error> {
    let mut out = Vec::new();
    for name in stacks {
        let Some(stack) = project.stacks.get(name) else {
            return Err(Error::UnknownStack {
                name: name.clone(),
                known: project
                    .stacks
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        out.extend(stack.functions.values().map(|f| FunctionRef {
            stack: stack.name.clone(),
            key: f.key.clone(),
            crate_name: f.crate_name.clone(),
            stack_file: stack.file.clone(),
            architecture: project.architecture_of(stage, f),
        }));
    }
    Ok(out)
}

/// Every function of the project at `stage`.
pub fn all_functions(project: &Project, stage: &Stage) -> Vec<FunctionRef> {
    let names: Vec<String> = project.stacks.keys().cloned().collect();
    functions_of(project, stage, &names).unwrap_or_default()
}

/// The functions `names` select (all when empty). A name is `stack.function`, a
/// function key (every stack's function with that key) or a crate name.
pub fn select(
    project: &Project,
    stage: &Stage,
    names: &[String],
) -> Result<Vec<FunctionRef>, Error> {
    let all = all_functions(project, stage);
    if names.is_empty() {
        return Ok(all);
    }
    let mut out: Vec<FunctionRef> = Vec::new();
    for name in names {
        let matches: Vec<&FunctionRef> = all
            .iter()
            .filter(|f| match name.split_once('.') {
                Some((stack, key)) => f.stack == stack && f.key == key,
                None => f.key == *name || f.crate_name == *name,
            })
            .collect();
        if matches.is_empty() {
            return Err(Error::UnknownFunction {
                name: name.clone(),
                known: if all.is_empty() {
                    "(none: no stack declares functions)".to_string()
                } else {
                    all.iter()
                        .map(|f| format!("{} ({})", f.label(), f.crate_name))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            });
        }
        for f in matches {
            if !out.contains(f) {
                out.push(f.clone());
            }
        }
    }
    Ok(out)
}
