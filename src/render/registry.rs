//! The handlebars registry: strict mode, no HTML escaping, the project's
//! partials (`templates/partials/*.hbs`) and a few helpers for YAML.

use std::path::{Path, PathBuf};

use handlebars::{
    handlebars_helper, no_escape, Handlebars, RenderError, RenderErrorReason, TemplateError,
};
use serde_json::Value;

use super::Error;

pub struct Renderer {
    hb: Handlebars<'static>,
}

handlebars_helper!(json: |v: Value| serde_json::to_string(&v).unwrap_or_default());
handlebars_helper!(pascal: |s: str| pascal_case(s));
handlebars_helper!(upper: |s: str| s.to_uppercase());
// `{{sub needs.store.TableName}}` -> `${StoreTableName}`: a `Fn::Sub` variable,
// which handlebars' own braces make awkward to write.
handlebars_helper!(sub: |s: str| format!("${{{s}}}"));
handlebars_helper!(join: |v: Value, sep: str| match v {
    Value::Array(items) => items
        .iter()
        .map(|i| match i { Value::String(s) => s.clone(), other => other.to_string() })
        .collect::<Vec<_>>()
        .join(sep),
    other => other.to_string(),
});

/// `realtime-connect` / `property_archival` -> `RealtimeConnect` / `PropertyArchival`
/// (`heck`'s upper camel case; stack and function names are lower case, so no
/// acronym is folded).
pub fn pascal_case(s: &str) -> String {
    heck::ToUpperCamelCase::to_upper_camel_case(s)
}

impl Renderer {
    /// A registry for the project at `root`, with its partials registered.
    pub fn new(root: &Path) -> Result<Self, Error> {
        let mut hb = Handlebars::new();
        hb.set_strict_mode(true);
        hb.register_escape_fn(no_escape);
        hb.register_helper("json", Box::new(json));
        hb.register_helper("pascal", Box::new(pascal));
        hb.register_helper("upper", Box::new(upper));
        hb.register_helper("sub", Box::new(sub));
        hb.register_helper("join", Box::new(join));
        let partials = root.join("templates").join("partials");
        if let Ok(entries) = std::fs::read_dir(&partials) {
            let mut files: Vec<PathBuf> =
                entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
            files.sort();
            for path in files {
                let Some(name) = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_suffix(".hbs"))
                else {
                    continue;
                };
                let name = name.trim_end_matches(".yaml").to_string();
                let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
                let text = std::fs::read_to_string(&path).map_err(|source| Error::Read {
                    path: rel.clone(),
                    source,
                })?;
                hb.register_partial(&name, text)
                    .map_err(|e| template_error(&rel, &e))?;
            }
        }
        // Every top-level template, named by its path relative to the root.
        let dir = root.join("templates");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|p| p.is_file() && p.extension().is_some_and(|e| e == "hbs"));
        files.sort();
        for path in files {
            let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            let text = std::fs::read_to_string(&path).map_err(|source| Error::Read {
                path: rel.clone(),
                source,
            })?;
            hb.register_template_string(&rel.to_string_lossy(), text)
                .map_err(|e| template_error(&rel, &e))?;
        }
        Ok(Renderer { hb })
    }

    /// Render `template` (relative to the project root) with `ctx`.
    pub fn render(&self, template: &Path, ctx: &Value) -> Result<String, Error> {
        let name = template.to_string_lossy();
        if !self.hb.has_template(&name) {
            return Err(Error::Read {
                path: template.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such template"),
            });
        }
        self.hb
            .render(&name, ctx)
            .map_err(|e| render_error(template, &e))
    }
}

fn template_error(template: &Path, e: &TemplateError) -> Error {
    Error::Template {
        template: template.to_path_buf(),
        line: e.pos().map(|(l, _)| l),
        message: e.reason().to_string(),
    }
}

fn render_error(template: &Path, e: &RenderError) -> Error {
    let message = match e.reason() {
        RenderErrorReason::MissingVariable(Some(v)) => format!("undefined variable `{v}`"),
        RenderErrorReason::MissingVariable(None) => "undefined variable".to_string(),
        RenderErrorReason::PartialNotFound(p) => {
            format!("partial `{p}` not found in templates/partials/")
        }
        RenderErrorReason::HelperNotFound(h) => format!("unknown helper `{h}`"),
        other => other.to_string(),
    };
    // Errors inside a partial name the partial's file.
    let file = match &e.template_name {
        Some(n) if n.as_str() != template.to_string_lossy() => {
            PathBuf::from("templates/partials").join(format!("{n}.hbs"))
        }
        _ => template.to_path_buf(),
    };
    Error::Template {
        template: file,
        line: e.line_no,
        message,
    }
}
