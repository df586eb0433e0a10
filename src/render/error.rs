//! Rendering errors: each names the template file and, where known, the line.

use std::path::PathBuf;

fn at(line: &Option<usize>) -> String {
    line.map(|l| format!(":{l}")).unwrap_or_default()
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Handlebars syntax errors and render-time failures (undefined variables).
    #[error("{}{}: {message}", template.display(), at(line))]
    Template {
        template: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error(
        "{}: the rendered template is not valid YAML{}: {message}{}",
        template.display(),
        line.map(|l| format!(" (rendered line {l}{})", column.map(|c| format!(", column {c}")).unwrap_or_default())).unwrap_or_default(),
        snippet.as_ref().map(|s| format!("\n  | {s}")).unwrap_or_default()
    )]
    RenderedYaml {
        template: PathBuf,
        line: Option<usize>,
        column: Option<usize>,
        snippet: Option<String>,
        message: String,
    },
    #[error("{}{} at `{path}`: {message}", template.display(), at(line))]
    Invalid {
        template: PathBuf,
        path: String,
        line: Option<usize>,
        message: String,
    },
    #[error(
        "{}{} at `needs.{upstream}`: stack `{stack}` needs output `{output}` of `{upstream}`, which `{}` does not declare (it declares: {declared})",
        file.display(), at(line), upstream_template.display()
    )]
    MissingOutput {
        file: PathBuf,
        line: Option<usize>,
        stack: String,
        upstream: String,
        output: String,
        upstream_template: PathBuf,
        declared: String,
    },
}
