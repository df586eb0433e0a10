//! Handlebars templates -> CloudFormation documents (JSON values), with the
//! parameters barkctl adds (upstream outputs, code locations) and the checks that
//! make a rendered document fit to deploy.

pub mod cfn_yaml;
pub mod check;
mod context;
mod error;
mod registry;
pub mod secret_grants;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Map, Value};

use crate::project::{Project, Stack, Stage};

pub use context::{code_key_param, function_logical_id, needs_param, ASSETS_BUCKET_PARAM};
pub use error::Error;
pub use registry::Renderer;

/// One stack's rendered template.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub stack: String,
    /// `{app}-{stage}-{stack}`
    pub stack_name: String,
    pub template: Value,
    /// Parameters barkctl fills at deploy time: name -> where the value comes from.
    pub parameters: BTreeMap<String, ParamSource>,
}

/// Where a parameter that barkctl added gets its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamSource {
    /// An upstream stack's output.
    Output { stack: String, output: String },
    /// The asset bucket's name.
    AssetsBucket,
    /// The S3 key of a function's bundle.
    CodeKey { function: String },
}

impl Rendered {
    /// Output names the template declares.
    pub fn outputs(&self) -> Vec<String> {
        self.template
            .get("Outputs")
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    pub fn to_pretty_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(&self.template).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// Render one stack and check the document on its own.
pub fn render_stack(
    renderer: &Renderer,
    project: &Project,
    stage: &Stage,
    stack: &Stack,
) -> Result<Rendered, Error> {
    // Everything the template sees comes from the stack files: rendering never
    // asks the machine (no toolchain probe, no process), so one commit renders
    // the same bytes everywhere.
    let ctx = context::build(project, stage, stack);
    let text = renderer.render(&stack.template, &ctx)?;
    let mut template = cfn_yaml::parse(&text).map_err(|e| Error::RenderedYaml {
        template: stack.template.clone(),
        line: e.line,
        column: e.column,
        snippet: e
            .line
            .and_then(|l| text.lines().nth(l.saturating_sub(1)))
            .map(|s| s.trim().to_string()),
        message: e.message,
    })?;

    let mut parameters = BTreeMap::new();
    for (upstream, outputs) in &stack.needs {
        for output in outputs {
            parameters.insert(
                needs_param(upstream, output),
                ParamSource::Output {
                    stack: upstream.clone(),
                    output: output.clone(),
                },
            );
        }
    }
    if !stack.functions.is_empty() {
        parameters.insert(ASSETS_BUCKET_PARAM.to_string(), ParamSource::AssetsBucket);
        for key in stack.functions.keys() {
            parameters.insert(
                code_key_param(key),
                ParamSource::CodeKey {
                    function: key.clone(),
                },
            );
        }
    }
    add_parameters(&mut template, &parameters, stack).map_err(|(name, message)| {
        Error::Invalid {
            template: stack.template.clone(),
            path: format!("Parameters.{name}"),
            line: line_of_name(project, &stack.template, &name),
            message,
        }
    })?;

    canonical_order(&mut template);

    if let Some(p) = check::check(&template).into_iter().next() {
        let line = p
            .name
            .as_deref()
            .and_then(|n| line_of_name(project, &stack.template, n));
        return Err(Error::Invalid {
            template: stack.template.clone(),
            path: p.path,
            line,
            message: p.message,
        });
    }

    Ok(Rendered {
        stack: stack.name.clone(),
        stack_name: project.stack_name(&stage.name, &stack.name),
        template,
        parameters,
    })
}

/// Render every stack of `names` and check what crosses stacks: each `needs`
/// output is declared in the upstream template's Outputs. Upstream stacks that
/// are not in `names` are rendered for the check too.
pub fn render_all(
    renderer: &Renderer,
    project: &Project,
    stage: &Stage,
    names: &[String],
) -> Result<Vec<Rendered>, Error> {
    let mut cache: BTreeMap<String, Rendered> = BTreeMap::new();
    let mut order = Vec::new();
    for name in names {
        let stack = &project.stacks[name];
        if !cache.contains_key(name) {
            cache.insert(name.clone(), render_stack(renderer, project, stage, stack)?);
        }
        order.push(name.clone());
        for (upstream, outputs) in &stack.needs {
            if !cache.contains_key(upstream) {
                let up = &project.stacks[upstream];
                cache.insert(
                    upstream.clone(),
                    render_stack(renderer, project, stage, up)?,
                );
            }
            let declared = cache[upstream].outputs();
            for output in outputs {
                if !declared.contains(output) {
                    return Err(Error::MissingOutput {
                        file: stack.file.clone(),
                        line: crate::project::line_in_file(
                            &project.path(&stack.file),
                            &["needs", upstream, output],
                        ),
                        stack: stack.name.clone(),
                        upstream: upstream.clone(),
                        output: output.clone(),
                        upstream_template: project.stacks[upstream].template.clone(),
                        declared: declared.join(", "),
                    });
                }
            }
        }
    }
    Ok(order
        .into_iter()
        .map(|n| cache.remove(&n).expect("rendered above"))
        .collect())
}

fn add_parameters(
    template: &mut Value,
    parameters: &BTreeMap<String, ParamSource>,
    stack: &Stack,
) -> Result<(), (String, String)> {
    if parameters.is_empty() {
        return Ok(());
    }
    let Some(top) = template.as_object_mut() else {
        return Ok(()); // `check` reports the shape
    };
    let section = top
        .entry("Parameters")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(section) = section.as_object_mut() else {
        return Err(("".into(), "`Parameters` must be a mapping".into()));
    };
    for (name, source) in parameters {
        if section.contains_key(name) {
            return Err((
                name.clone(),
                format!("parameter `{name}` is added by barkctl; remove it from the template"),
            ));
        }
        let description = match source {
            ParamSource::Output { stack: up, output } => {
                format!("Output {output} of stack {up} (filled by barkctl)")
            }
            ParamSource::AssetsBucket => "Bucket holding Lambda bundles (filled by barkctl)".into(),
            ParamSource::CodeKey { function } => format!(
                "S3 key of the {}.{function} bundle (filled by barkctl)",
                stack.name
            ),
        };
        section.insert(
            name.clone(),
            json!({"Type": "String", "Description": description}),
        );
    }
    Ok(())
}

/// Top-level sections in the order the CloudFormation docs use, so that the
/// added `Parameters` sit near the top of synthesized templates.
fn canonical_order(template: &mut Value) {
    const ORDER: &[&str] = &[
        "AWSTemplateFormatVersion",
        "Description",
        "Metadata",
        "Transform",
        "Parameters",
        "Rules",
        "Mappings",
        "Conditions",
        "Resources",
        "Outputs",
    ];
    let Some(top) = template.as_object_mut() else {
        return;
    };
    let mut old = std::mem::take(top);
    for key in ORDER {
        if let Some(v) = old.remove(*key) {
            top.insert((*key).to_string(), v);
        }
    }
    top.append(&mut old);
}

/// The first line of a template file that mentions `name`, for errors found
/// after rendering (a best guess: rendered lines differ from template lines).
fn line_of_name(project: &Project, template: &Path, name: &str) -> Option<usize> {
    let text = std::fs::read_to_string(project.path(template)).ok()?;
    text.lines()
        .position(|l| {
            l.match_indices(name).any(|(i, _)| {
                let before = l[..i].chars().next_back();
                let after = l[i + name.len()..].chars().next();
                let ident = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
                !ident(before) && !ident(after)
            })
        })
        .map(|i| i + 1)
}
