//! Reading and validating stack files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::raw::{RawProject, RawStack};
use super::yaml_lines::line_of;
use super::{Architecture, Error, Function, Location, Project, Stack, Stage};

const DEFAULT_MEMORY: u32 = 128;
const DEFAULT_TIMEOUT: u32 = 3;

/// The nearest folder at or above `start` that has `stacks/project.yaml`.
pub fn find_root(start: &Path) -> Result<PathBuf, Error> {
    let mut dir = Some(start);
    while let Some(d) = dir {
        if d.join("stacks").join("project.yaml").is_file() {
            return Ok(d.to_path_buf());
        }
        dir = d.parent();
    }
    Err(Error::NotFound {
        start: start.to_path_buf(),
    })
}

/// Load `root/stacks/*.yaml` into a validated project.
pub fn load(root: &Path) -> Result<Project, Error> {
    let project_rel = PathBuf::from("stacks/project.yaml");
    let project_text = read(root, &project_rel)?;
    let raw: RawProject = parse(&project_rel, &project_text)?;

    check_name(&project_rel, &project_text, &["app"], &raw.app)?;
    if raw.stages.is_empty() {
        return Err(Error::invalid(
            &project_rel,
            "stages",
            line_of(&project_text, &["stages"]),
            "at least one stage is required",
        ));
    }
    let mut stages = BTreeMap::new();
    for (name, s) in raw.stages {
        check_name(
            &project_rel,
            &project_text,
            &["stages", name.as_str()],
            &name,
        )?;
        let architecture = match &s.architecture {
            Some(a) => Some(parse_arch(a).map_err(|m| {
                Error::invalid(
                    &project_rel,
                    format!("stages.{name}.architecture"),
                    line_of(&project_text, &["stages", name.as_str(), "architecture"]),
                    m,
                )
            })?),
            None => None,
        };
        if let Some(profile) = &s.build_profile {
            if !valid_profile(profile) {
                return Err(Error::invalid(
                    &project_rel,
                    format!("stages.{name}.build_profile"),
                    line_of(&project_text, &["stages", name.as_str(), "build_profile"]),
                    format!("`{profile}` is not a cargo profile name"),
                ));
            }
        }
        stages.insert(
            name.clone(),
            Stage {
                name,
                region: s.region,
                endpoint_url: s.endpoint_url,
                profile: s.profile,
                local: s.local,
                termination_protection: s.termination_protection,
                params: s.params,
                tags: s.tags,
                architecture,
                build_profile: s.build_profile,
            },
        );
    }

    let fn_defaults = &raw.defaults.function;
    let default_arch = match &fn_defaults.architecture {
        Some(a) => parse_arch(a).map_err(|m| {
            Error::invalid(
                &project_rel,
                "defaults.function.architecture",
                line_of(&project_text, &["defaults", "function", "architecture"]),
                m,
            )
        })?,
        None => super::DEFAULT_ARCHITECTURE,
    };

    let crates = workspace_crates(root);
    let mut stacks = BTreeMap::new();
    let mut texts = BTreeMap::new();
    for rel in stack_files(root)? {
        let name = rel
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let text = read(root, &rel)?;
        check_name(&rel, &text, &[], &name)?;
        let raw: RawStack = parse(&rel, &text)?;

        let template = PathBuf::from("templates").join(&raw.template);
        if !root.join(&template).is_file() {
            return Err(Error::invalid(
                &rel,
                "template",
                line_of(&text, &["template"]),
                format!("template `{}` does not exist", template.display()),
            ));
        }
        for stage in raw.stages.keys() {
            if !stages.contains_key(stage) {
                return Err(Error::invalid(
                    &rel,
                    format!("stages.{stage}"),
                    line_of(&text, &["stages", stage]),
                    format!(
                        "unknown stage `{stage}`; project.yaml declares: {}",
                        stages.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }

        let mut functions = BTreeMap::new();
        for (key, f) in raw.functions {
            check_name(&rel, &text, &["functions", key.as_str()], &key)?;
            let at = |field: &str| {
                (
                    format!("functions.{key}.{field}"),
                    line_of(&text, &["functions", key.as_str(), field])
                        .or_else(|| line_of(&text, &["functions", key.as_str()])),
                )
            };
            let Some(crate_dir) = crates.get(&f.crate_name) else {
                let (k, line) = at("crate");
                let known = if crates.is_empty() {
                    "none found under `lambdas/`".to_string()
                } else {
                    crates.keys().cloned().collect::<Vec<_>>().join(", ")
                };
                return Err(Error::invalid(
                    &rel,
                    k,
                    line,
                    format!("crate `{}` does not exist; crates: {known}", f.crate_name),
                ));
            };
            let architecture = match &f.architecture {
                Some(a) => Some(parse_arch(a).map_err(|m| {
                    let (k, line) = at("architecture");
                    Error::invalid(&rel, k, line, m)
                })?),
                None => None,
            };
            let memory = f.memory.or(fn_defaults.memory).unwrap_or(DEFAULT_MEMORY);
            if !(128..=10240).contains(&memory) {
                let (k, line) = at("memory");
                return Err(Error::invalid(
                    &rel,
                    k,
                    line,
                    format!("memory must be 128 to 10240 MB, got {memory}"),
                ));
            }
            let timeout = f.timeout.or(fn_defaults.timeout).unwrap_or(DEFAULT_TIMEOUT);
            if !(1..=900).contains(&timeout) {
                let (k, line) = at("timeout");
                return Err(Error::invalid(
                    &rel,
                    k,
                    line,
                    format!("timeout must be 1 to 900 seconds, got {timeout}"),
                ));
            }
            functions.insert(
                key.clone(),
                Function {
                    key,
                    crate_name: f.crate_name,
                    crate_dir: crate_dir.clone(),
                    memory,
                    timeout,
                    architecture,
                    description: f.description,
                },
            );
        }

        let params = raw.params;
        let stack = Stack {
            name: name.clone(),
            file: rel.clone(),
            description: raw.description,
            template,
            needs: raw.needs,
            depends_on: raw.depends_on,
            functions,
            params,
            stage_params: raw.stages.into_iter().map(|(k, v)| (k, v.params)).collect(),
            tags: raw.tags,
        };
        texts.insert(name.clone(), (rel, text));
        stacks.insert(name, stack);
    }
    // Project-wide default params sit under every stack's own.
    for stack in stacks.values_mut() {
        let mut merged = raw.defaults.params.clone();
        merged.extend(std::mem::take(&mut stack.params));
        stack.params = merged;
    }

    if stacks.is_empty() {
        return Err(Error::invalid(
            &project_rel,
            "",
            None,
            "no stack files found: add `stacks/<name>.yaml` next to project.yaml",
        ));
    }

    // References between stacks.
    for stack in stacks.values() {
        let (rel, text) = &texts[&stack.name];
        for (upstream, outputs) in &stack.needs {
            if !stacks.contains_key(upstream) {
                return Err(Error::invalid(
                    rel,
                    format!("needs.{upstream}"),
                    line_of(text, &["needs", upstream]),
                    format!(
                        "needs unknown stack `{upstream}`; stacks are: {}",
                        stacks.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            if upstream == &stack.name {
                return Err(Error::invalid(
                    rel,
                    format!("needs.{upstream}"),
                    line_of(text, &["needs", upstream]),
                    "a stack cannot need its own outputs",
                ));
            }
            if outputs.is_empty() {
                return Err(Error::invalid(
                    rel,
                    format!("needs.{upstream}"),
                    line_of(text, &["needs", upstream]),
                    "list at least one output",
                ));
            }
        }
        for dep in &stack.depends_on {
            if !stacks.contains_key(dep) {
                return Err(Error::invalid(
                    rel,
                    "depends_on",
                    line_of(text, &["depends_on", dep]),
                    format!("depends on unknown stack `{dep}`"),
                ));
            }
        }
    }

    Ok(Project {
        root: root.to_path_buf(),
        app: raw.app,
        region: raw.region.unwrap_or_else(|| "us-east-1".to_string()),
        tags: raw.tags,
        stages,
        stacks,
        default_architecture: default_arch,
    })
}

fn read(root: &Path, rel: &Path) -> Result<String, Error> {
    std::fs::read_to_string(root.join(rel)).map_err(|source| Error::Read {
        path: rel.to_path_buf(),
        source,
    })
}

/// Deserialize YAML, keeping serde's line and column and the key path.
fn parse<T: DeserializeOwned>(rel: &Path, text: &str) -> Result<T, Error> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let key = err.path().to_string();
        let inner = err.into_inner();
        let loc = inner.location();
        let mut message = inner.to_string();
        // serde_yaml_ng appends " at line L column C"; the location says it already.
        if let Some(i) = message.find(" at line ") {
            message.truncate(i);
        }
        let key = (key != "." && !key.is_empty()).then_some(key);
        // serde_yaml_ng prefixes nested errors with their path: the key says it.
        if let Some((head, rest)) = message.split_once(": ") {
            if key.as_deref().is_some_and(|k| k.starts_with(head)) {
                message = rest.to_string();
            }
        }
        let line = loc.as_ref().map(|l| l.line()).or_else(|| {
            key.as_deref()
                .and_then(|k| line_of(text, &k.split('.').collect::<Vec<_>>()))
        });
        Error::Invalid {
            path: rel.to_path_buf(),
            location: Location {
                line,
                column: loc.map(|l| l.column()),
                key,
            },
            message,
        }
    })
}

/// Stack names become parts of CloudFormation stack names: keep them simple.
fn check_name(rel: &Path, text: &str, key: &[&str], name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        return Ok(());
    }
    let what = if key.is_empty() {
        "stack file name"
    } else {
        "name"
    };
    Err(Error::invalid(
        rel,
        key.join("."),
        if key.is_empty() { None } else { line_of(text, key) },
        format!("{what} `{name}` must be lowercase letters, digits and `-`, starting with a letter (at most 40)"),
    ))
}

fn parse_arch(s: &str) -> Result<Architecture, String> {
    match s {
        "x86_64" => Ok(Architecture::X86_64),
        "arm64" => Ok(Architecture::Arm64),
        // `auto` chose from the installed toolchain, so one commit rendered
        // differently on different machines.
        "auto" => Err("architecture `auto` is no longer accepted: declare `x86_64` or `arm64` (the default is arm64; local stages always build for this machine)".to_string()),
        other => Err(format!("architecture `{other}` is not one of: x86_64, arm64")),
    }
}

/// What cargo accepts after `--profile`: letters, digits, `-` and `_`.
fn valid_profile(p: &str) -> bool {
    !p.is_empty()
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Every `stacks/*.yaml` except project.yaml, sorted.
fn stack_files(root: &Path) -> Result<Vec<PathBuf>, Error> {
    let dir = root.join("stacks");
    let entries = std::fs::read_dir(&dir).map_err(|source| Error::Read {
        path: PathBuf::from("stacks"),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            let ext = p.extension().and_then(|e| e.to_str());
            matches!(ext, Some("yaml") | Some("yml"))
                && p.file_stem().and_then(|s| s.to_str()) != Some("project")
        })
        .filter_map(|p| p.file_name().map(|n| PathBuf::from("stacks").join(n)))
        .collect();
    files.sort();
    Ok(files)
}

/// Package name -> crate folder for every `lambdas/*/Cargo.toml`. A light scan
/// (no `cargo metadata`): validation must stay fast and work without cargo.
fn workspace_crates(root: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(root.join("lambdas")) else {
        return out;
    };
    for e in entries.filter_map(|e| e.ok()) {
        let manifest = e.path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        if let Some(name) = package_name(&text) {
            out.insert(name, PathBuf::from("lambdas").join(e.file_name()));
        }
    }
    out
}

fn package_name(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            in_package = t == "[package]";
            continue;
        }
        if in_package {
            if let Some(rest) = t.strip_prefix("name") {
                let v = rest.trim_start().strip_prefix('=')?.trim();
                return Some(v.trim_matches('"').to_string());
            }
        }
    }
    None
}
