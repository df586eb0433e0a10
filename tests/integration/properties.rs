//! Property tests (proptest) of the parts that take arbitrary input: the stack-file
//! loader (mutated copies of BarkBase's stack files), the rendered-template checks
//! (random documents and dangling references) and the semantic diff (a template
//! against itself, reordered, and with one leaf mutated).
//!
//! Bounded in CI: `PROPTEST_CASES` cases per property (default 256). By hand, run
//! longer: `PROPTEST_CASES=20000 cargo test --workspace --test integration -- properties`.
//! Each property prints how many cases it ran.

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Map, Value};

use barkctl::diff::compare::{compare, New, Old};
use barkctl::diff::model::NewValue;
use barkctl::render::{check::check, render_all, Renderer};

use super::harness::{copy_barkbase, repo_root};

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// Runs `test` on `strategy` for [`cases`] cases and prints the count.
fn run<S: Strategy>(name: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let ran = std::sync::atomic::AtomicU32::new(0);
    let result = runner.run(&strategy, |v| {
        ran.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        test(v)
    });
    eprintln!(
        "property {name}: {} cases run (PROPTEST_CASES={})",
        ran.into_inner(),
        cases()
    );
    if let Err(e) = result {
        panic!("property {name}: {e}");
    }
}

/// One edit of a stack file's text.
#[derive(Debug, Clone)]
enum Edit {
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    /// Replace `len` bytes at `at` (char-aligned) with `with`.
    Splice {
        at: usize,
        len: usize,
        with: String,
    },
    IndentLine(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<usize>().prop_map(Edit::DeleteLine),
        any::<usize>().prop_map(Edit::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        (
            any::<usize>(),
            0usize..12,
            "[-a-z0-9:{}\\[\\],'\"#&*!|> \t\n.$]{0,12}"
        )
            .prop_map(|(at, len, with)| Edit::Splice { at, len, with }),
        (any::<usize>(), 0usize..7).prop_map(|(l, n)| Edit::IndentLine(l, n)),
    ]
}

fn apply(text: &str, e: &Edit) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let n = lines.len().max(1);
    match e {
        Edit::DeleteLine(i) if !lines.is_empty() => {
            lines.remove(i % n);
        }
        Edit::DuplicateLine(i) if !lines.is_empty() => {
            let l = lines[i % n].clone();
            lines.insert(i % n, l);
        }
        Edit::SwapLines(a, b) if !lines.is_empty() => lines.swap(a % n, b % n),
        Edit::IndentLine(i, k) if !lines.is_empty() => {
            let l = &mut lines[i % n];
            *l = format!("{}{l}", " ".repeat(*k));
        }
        Edit::Splice { at, len, with } => {
            let chars: Vec<char> = text.chars().collect();
            let at = at % (chars.len() + 1);
            let end = (at + len).min(chars.len());
            let mut s: String = chars[..at].iter().collect();
            s.push_str(with);
            s.extend(&chars[end..]);
            return s;
        }
        _ => {}
    }
    let mut s = lines.join("\n");
    s.push('\n');
    s
}

/// The loader never panics on mutated stack files, and what it refuses it refuses
/// naming the file; what it accepts renders (or is refused) without a panic too.
#[test]
fn the_loader_and_renderer_survive_mutated_stack_files() {
    let (_tmp, root) = copy_barkbase();
    let files: Vec<String> = [
        "project",
        "network",
        "database",
        "realtime",
        "jobs",
        "experience",
    ]
    .iter()
    .map(|s| format!("stacks/{s}.yaml"))
    .collect();
    let originals: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(root.join(f)).expect("stack file"))
        .collect();
    let accepted = std::sync::atomic::AtomicU32::new(0);
    run(
        "loader",
        (0..files.len(), prop::collection::vec(edit(), 1..4)),
        |(which, edits)| {
            let mut text = originals[which].clone();
            for e in &edits {
                text = apply(&text, e);
            }
            let path = root.join(&files[which]);
            std::fs::write(&path, &text).expect("write");
            let outcome = load_and_render(&root);
            std::fs::write(&path, &originals[which]).expect("restore");
            match outcome {
                Ok(()) => {
                    accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Err(message) => {
                    prop_assert!(
                        message.contains(".yaml") || message.contains(".hbs"),
                        "an error that names no file: {message}"
                    );
                }
            }
            Ok(())
        },
    );
    eprintln!(
        "loader: {} mutated projects still loaded and rendered",
        accepted.into_inner()
    );
}

fn load_and_render(root: &Path) -> Result<(), String> {
    let project = barkctl::project::load(root).map_err(|e| e.to_string())?;
    let renderer = Renderer::new(root).map_err(|e| e.to_string())?;
    let names: Vec<String> = project.stacks.keys().cloned().collect();
    for stage in project.stages.values() {
        render_all(&renderer, &project, stage, &names).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn name() -> impl Strategy<Value = String> {
    "[A-Z][A-Za-z0-9]{0,8}"
}

/// A JSON value of bounded depth, with intrinsics mixed in.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        "[ -~]{0,10}".prop_map(Value::String),
        name().prop_map(|n| json!({"Ref": n})),
        (name(), name()).prop_map(|(r, a)| json!({"Fn::GetAtt": [r, a]})),
        "[a-z${}A-Z.:]{0,16}".prop_map(|s| json!({"Fn::Sub": s})),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("[A-Za-z:]{1,10}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A template: some parameters, resources with random properties, outputs.
fn template() -> impl Strategy<Value = Value> {
    (
        prop::collection::btree_set(name(), 0..4),
        prop::collection::btree_map(name(), ("AWS::[A-Z][a-z]{2,6}::[A-Z][a-z]{2,8}", prop::collection::btree_map("[A-Z][A-Za-z]{1,10}", value(), 0..5)), 1..5),
        prop::collection::btree_map(name(), value(), 0..3),
    )
        .prop_map(|(params, resources, outputs)| {
            let mut t = Map::new();
            t.insert("AWSTemplateFormatVersion".into(), json!("2010-09-09"));
            if !params.is_empty() {
                t.insert(
                    "Parameters".into(),
                    Value::Object(params.into_iter().map(|p| (p, json!({"Type": "String"}))).collect()),
                );
            }
            t.insert(
                "Resources".into(),
                Value::Object(
                    resources
                        .into_iter()
                        .map(|(id, (ty, props))| {
                            (id, json!({"Type": ty, "Properties": Value::Object(props.into_iter().collect())}))
                        })
                        .collect(),
                ),
            );
            if !outputs.is_empty() {
                t.insert(
                    "Outputs".into(),
                    Value::Object(outputs.into_iter().map(|(k, v)| (k, json!({"Value": v}))).collect()),
                );
            }
            Value::Object(t)
        })
}

/// The checks never panic, on any document, and a `Ref` to a name the document does
/// not declare is always reported with that name.
#[test]
fn template_checks_never_panic_and_always_find_a_dangling_ref() {
    run("check-any-document", value(), |doc| {
        let _ = check(&doc);
        Ok(())
    });
    run(
        "check-dangling-ref",
        (template(), name()),
        |(mut t, missing)| {
            let missing = format!("Zz{missing}Missing");
            let resources = t["Resources"].as_object_mut().expect("resources");
            let first = resources.keys().next().cloned().expect("a resource");
            resources[&first]["Properties"]["Dangling"] = json!({"Ref": missing});
            let problems = check(&t);
            prop_assert!(
                problems
                    .iter()
                    .any(|p| p.name.as_deref() == Some(missing.as_str())),
                "{missing} not reported: {problems:?}"
            );
            Ok(())
        },
    );
}

/// The diff of two templates deployed with the same value for every parameter.
fn diff_of(old: &Value, new: &Value) -> barkctl::diff::model::StackDiff {
    let names: Vec<String> = old
        .get("Parameters")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let params: BTreeMap<String, String> = names
        .iter()
        .map(|n| (n.clone(), format!("value-of-{n}")))
        .collect();
    let new_params: BTreeMap<String, NewValue> = params
        .iter()
        .map(|(k, v)| (k.clone(), NewValue::Known(v.clone())))
        .collect();
    let tags = BTreeMap::new();
    compare(
        "barkbase-dev-x",
        "x",
        Some(Old {
            template: old,
            parameters: &params,
            tags: &tags,
        }),
        New {
            template: new,
            parameters: &new_params,
            tags: &tags,
        },
    )
}

/// Reverses the key order of every mapping (order never matters to CloudFormation).
fn reordered(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .rev()
                .map(|(k, v)| (k.clone(), reordered(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(reordered).collect()),
        other => other.clone(),
    }
}

/// Every scalar leaf under `Resources.*.Properties`, as (resource, path, pointer).
fn leaves(t: &Value) -> Vec<(String, String, String)> {
    fn walk(v: &Value, shown: String, pointer: String, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) => {
                for (k, w) in m {
                    let s = if shown.is_empty() {
                        k.clone()
                    } else {
                        format!("{shown}.{k}")
                    };
                    walk(
                        w,
                        s,
                        format!("{pointer}/{}", k.replace('~', "~0").replace('/', "~1")),
                        out,
                    );
                }
            }
            Value::Array(a) => {
                for (i, w) in a.iter().enumerate() {
                    walk(w, format!("{shown}[{i}]"), format!("{pointer}/{i}"), out);
                }
            }
            Value::Null => {}
            _ => out.push((shown, pointer)),
        }
    }
    let mut all = Vec::new();
    if let Some(resources) = t.get("Resources").and_then(Value::as_object) {
        for (id, r) in resources {
            let mut out = Vec::new();
            if let Some(p) = r.get("Properties") {
                walk(
                    p,
                    "Properties".into(),
                    format!(
                        "/Resources/{}/Properties",
                        id.replace('~', "~0").replace('/', "~1")
                    ),
                    &mut out,
                );
            }
            all.extend(out.into_iter().map(|(s, p)| (id.clone(), s, p)));
        }
    }
    all
}

fn mutated(v: &Value) -> Value {
    match v {
        Value::Bool(b) => Value::Bool(!b),
        Value::Number(n) => json!(n.as_f64().unwrap_or(0.0) + 1.0),
        Value::String(s) => Value::String(format!("{s}-mutated")),
        other => other.clone(),
    }
}

fn check_mutation(t: &Value, pick: usize) -> Result<(), TestCaseError> {
    let d = diff_of(t, t);
    prop_assert!(!d.has_changes(), "a template differs from itself: {d:?}");
    let d = diff_of(t, &reordered(t));
    prop_assert!(!d.has_changes(), "key order made a difference: {d:?}");
    let all = leaves(t);
    if all.is_empty() {
        return Ok(());
    }
    let (id, shown, pointer) = &all[pick % all.len()];
    let mut m = t.clone();
    let leaf = m.pointer_mut(pointer).expect("the leaf");
    *leaf = mutated(leaf);
    let d = diff_of(t, &m);
    prop_assert!(d.has_changes(), "mutating {id} {shown} went unseen");
    let r = d.resources.iter().find(|r| &r.logical_id == id);
    prop_assert!(
        r.is_some(),
        "mutating {id} {shown}: resource not named: {d:?}"
    );
    let r = r.expect("checked");
    // The path shown is the mutated one, or the intrinsic / list that holds it.
    prop_assert!(
        r.properties.iter().any(|p| shown == &p.path
            || shown.starts_with(&format!("{}.", p.path))
            || shown.starts_with(&format!("{}[", p.path))),
        "mutating {id} {shown}: paths {:?}",
        r.properties.iter().map(|p| &p.path).collect::<Vec<_>>()
    );
    Ok(())
}

/// The semantic diff: a template against itself (and reordered) is empty; with one
/// leaf mutated it is not, and names the resource and the mutated path. On random
/// templates and on BarkBase's own rendered ones.
#[test]
fn the_diff_of_a_template_with_itself_is_empty_and_a_mutation_is_named() {
    run("diff-random", (template(), any::<usize>()), |(t, pick)| {
        check_mutation(&t, pick)
    });
    let root = repo_root();
    let project = barkctl::project::load(&root).expect("BarkBase loads");
    let renderer = Renderer::new(&root).expect("renderer");
    let names: Vec<String> = project.stacks.keys().cloned().collect();
    let rendered: Vec<Value> = render_all(&renderer, &project, &project.stages["dev"], &names)
        .expect("BarkBase renders")
        .into_iter()
        .map(|r| r.template)
        .collect();
    run(
        "diff-barkbase",
        (0..rendered.len(), any::<usize>()),
        |(which, pick)| check_mutation(&rendered[which], pick),
    );
}
