//! Terminal output for `barkctl diff`: coloured on a TTY, plain otherwise.
//! The diff text and `--json` go to stdout (they are the command's data); the
//! per-stack summary lines follow the text, or go to stderr with `--json`.

use serde_json::{json, Value};

use super::{Style, Term};
use crate::diff::security::{IamStatement, SgRule};
use crate::diff::show;
use crate::diff::text::{self, Line};
use crate::diff::{
    ChangeKind, EntryChange, Impact, ParameterChange, PathChange, Replacement, ResourceChange,
    StackDiff, StackStatus,
};

/// Print every stack's diff as text, then one summary line per stack.
pub fn print_text(term: &Term, diffs: &[StackDiff], context: usize) {
    for d in diffs {
        for line in stack_lines(term, d, context) {
            term.data(&line);
        }
    }
    for d in diffs {
        term.data(&summary(term, d));
    }
}

/// One JSON document: `{"stacks": [...]}`.
pub fn to_json(diffs: &[StackDiff]) -> String {
    let stacks: Vec<Value> = diffs
        .iter()
        .map(|d| {
            let mut v = serde_json::to_value(d).unwrap_or(Value::Null);
            if let Some(m) = v.as_object_mut() {
                m.insert(
                    "counts".into(),
                    serde_json::to_value(d.counts()).unwrap_or(Value::Null),
                );
            }
            v
        })
        .collect();
    serde_json::to_string_pretty(&json!({ "stacks": stacks })).unwrap_or_default()
}

/// `barkbase-dev-realtime: changed (1 in place, 1 to replace [1 stateful!]; 1 parameter)`
pub fn summary(term: &Term, d: &StackDiff) -> String {
    let status = match d.status {
        StackStatus::New => term.paint(Style::Green, "new"),
        StackStatus::Changed => term.paint(Style::Yellow, "changed"),
        StackStatus::Unchanged => term.paint(Style::Dim, "unchanged"),
    };
    let c = d.counts();
    let mut parts = Vec::new();
    for (n, label) in [
        (c.create, "to create"),
        (c.in_place, "in place"),
        (c.may_replace, "may replace"),
        (c.replace, "to replace"),
        (c.destroy, "to destroy"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {label}"));
        }
    }
    let mut line = format!("{}: {status}", d.name);
    if d.status == StackStatus::Unchanged {
        return line;
    }
    let mut extra = Vec::new();
    if c.stateful_at_risk > 0 {
        extra.push(term.paint(
            Style::Red,
            &format!(
                "{} stateful resource(s) replaced or removed",
                c.stateful_at_risk
            ),
        ));
    }
    let count = |n: usize, what: &str| {
        (n > 0).then(|| format!("{n} {what}{}", if n == 1 { "" } else { "s" }))
    };
    extra.extend(count(d.parameters.len(), "parameter"));
    extra.extend(count(d.outputs.len(), "output"));
    extra.extend(count(d.conditions.len(), "condition"));
    extra.extend(count(d.tags.len(), "tag"));
    let sec = &d.security;
    extra.extend(count(
        sec.iam_added.len() + sec.iam_removed.len() + sec.sg_added.len() + sec.sg_removed.len(),
        "security change",
    ));
    if parts.is_empty() && extra.is_empty() {
        return line;
    }
    let resources = if parts.is_empty() {
        "no resource changes".to_string()
    } else {
        parts.join(", ")
    };
    line.push_str(&format!(" ({resources}"));
    if !extra.is_empty() {
        line.push_str(&format!("; {}", extra.join(", ")));
    }
    line.push(')');
    line
}

fn stack_lines(term: &Term, d: &StackDiff, context: usize) -> Vec<String> {
    let mut out = Vec::new();
    let status = match d.status {
        StackStatus::New => "new (not deployed)",
        StackStatus::Changed => "changed",
        StackStatus::Unchanged => "unchanged",
    };
    out.push(term.paint(
        Style::Bold,
        &format!("Stack {} ({}): {status}", d.name, d.stack),
    ));
    for n in &d.notes {
        out.push(term.paint(Style::Dim, &format!("  note: {n}")));
    }
    if d.status == StackStatus::Unchanged {
        out.push(String::new());
        return out;
    }
    if d.status == StackStatus::Changed {
        out.push(term.paint(
            Style::Dim,
            &format!("  classified by: {}", d.method.label()),
        ));
    }
    if !d.parameters.is_empty() {
        out.push(term.paint(Style::Bold, "Parameters"));
        for p in &d.parameters {
            parameter(term, p, context, &mut out);
        }
    }
    entries(term, "Conditions", &d.conditions, context, &mut out);
    if !d.resources.is_empty() {
        out.push(term.paint(Style::Bold, "Resources"));
        for r in &d.resources {
            resource(term, r, d.status == StackStatus::New, context, &mut out);
        }
    }
    entries(term, "Outputs", &d.outputs, context, &mut out);
    entries(term, "Other sections", &d.other, context, &mut out);
    if !d.tags.is_empty() {
        out.push(term.paint(Style::Bold, "Stack tags"));
        for t in &d.tags {
            let side = |v: &Option<String>| v.clone().unwrap_or_else(|| "(absent)".into());
            out.push(format!(
                "  {} {}: {} -> {}",
                marker(term, t.change),
                t.key,
                side(&t.old),
                side(&t.new)
            ));
        }
    }
    security(term, d, &mut out);
    out.push(String::new());
    out
}

fn marker(term: &Term, kind: ChangeKind) -> String {
    let style = match kind {
        ChangeKind::Added => Style::Green,
        ChangeKind::Removed => Style::Red,
        ChangeKind::Modified => Style::Yellow,
    };
    term.paint(style, kind.marker())
}

fn parameter(term: &Term, p: &ParameterChange, context: usize, out: &mut Vec<String>) {
    let new = if p.known_after_deploy {
        term.paint(Style::Cyan, "(known after deploy)")
    } else {
        p.new_value.clone().unwrap_or_default()
    };
    let line = match p.change {
        ChangeKind::Added => format!("  {} {}: {new}", marker(term, p.change), p.name),
        ChangeKind::Removed => format!(
            "  {} {}: {}",
            marker(term, p.change),
            p.name,
            p.old_value.clone().unwrap_or_default()
        ),
        ChangeKind::Modified => {
            let old = p.old_value.clone().unwrap_or_else(|| "(none)".into());
            if old == new || (p.new_value.as_deref() == Some(old.as_str())) {
                format!("  {} {}", marker(term, p.change), p.name)
            } else {
                format!("  {} {}: {old} -> {new}", marker(term, p.change), p.name)
            }
        }
    };
    out.push(line);
    for c in &p.declaration {
        path_change(term, c, context, out);
    }
}

fn resource(
    term: &Term,
    r: &ResourceChange,
    whole_stack_new: bool,
    context: usize,
    out: &mut Vec<String>,
) {
    let impact_style = match r.impact {
        Impact::Create => Style::Green,
        Impact::InPlace => Style::Yellow,
        Impact::MayReplace | Impact::Replace | Impact::Destroy => Style::Red,
    };
    let mut line = format!(
        "  {} {} {}",
        marker(term, r.change),
        r.resource_type,
        r.logical_id
    );
    if !whole_stack_new {
        let label = match r.impact {
            Impact::Replace | Impact::MayReplace | Impact::Destroy => {
                r.impact.label().to_uppercase()
            }
            _ => r.impact.label().to_string(),
        };
        line.push_str(&format!("  {}", term.paint(impact_style, &label)));
    }
    if r.is_dangerous() {
        let retained = r.note.as_deref().is_some_and(|n| n.contains("Retain"));
        let warning = match (r.impact, retained) {
            (Impact::Destroy, true) => "stateful: kept in the account, no longer managed",
            (_, true) => "!! stateful: the replacement starts empty (the old one is kept)",
            _ => "!! stateful: its data goes with it",
        };
        line.push_str(&format!("  {}", term.paint(Style::Red, warning)));
    } else if r.stateful {
        line.push_str(&format!("  {}", term.paint(Style::Dim, "(stateful)")));
    }
    if r.classified_by == crate::diff::Method::ChangeSet && !r.scope.is_empty() {
        line.push_str(&term.paint(
            Style::Dim,
            &format!("  [change set: {}]", r.scope.join(", ")),
        ));
    }
    out.push(line);
    if let Some(n) = &r.note {
        out.push(term.paint(Style::Dim, &format!("      note: {n}")));
    }
    for c in &r.properties {
        path_change(term, c, context, out);
    }
}

fn path_change(term: &Term, c: &PathChange, context: usize, out: &mut Vec<String>) {
    let mut label = format!("      {}", c.path);
    match c.replacement {
        Replacement::Always => label.push_str(&term.paint(Style::Red, " (create-only: replaces)")),
        Replacement::Conditional => label.push_str(&term.paint(Style::Red, " (may replace)")),
        Replacement::Never => {}
    }
    if let Some(p) = &c.via_parameter {
        label.push_str(&term.paint(Style::Dim, &format!(" (via parameter {p})")));
    }
    let long =
        c.old.as_ref().is_some_and(show::is_long) || c.new.as_ref().is_some_and(show::is_long);
    if !long {
        let side = |v: &Option<Value>| {
            v.as_ref()
                .map_or_else(|| "(absent)".to_string(), show::inline)
        };
        let (old, new) = match (c.old.is_none() && c.new.is_none(), &c.old, &c.new) {
            (true, ..) => (String::new(), String::new()),
            (false, o, n) => (side(o), side(n)),
        };
        if old.is_empty() && new.is_empty() {
            out.push(label);
        } else {
            out.push(format!(
                "{label}: {} -> {}",
                term.paint(Style::Red, &old),
                term.paint(Style::Green, &new)
            ));
        }
        return;
    }
    out.push(format!("{label}:"));
    let block = |v: &Option<Value>| v.as_ref().map(show::block).unwrap_or_default();
    for l in text::unified(&block(&c.old), &block(&c.new), context) {
        out.push(match l {
            Line::Hunk(h) => term.paint(Style::Cyan, &format!("        {h}")),
            Line::Same(s) => format!("         {s}"),
            Line::Removed(s) => term.paint(Style::Red, &format!("        -{s}")),
            Line::Added(s) => term.paint(Style::Green, &format!("        +{s}")),
        });
    }
}

fn entries(term: &Term, title: &str, list: &[EntryChange], context: usize, out: &mut Vec<String>) {
    if list.is_empty() {
        return;
    }
    out.push(term.paint(Style::Bold, title));
    for e in list {
        let name = if e.section == e.name || title != "Other sections" {
            e.name.clone()
        } else {
            format!("{}.{}", e.section, e.name)
        };
        match e.change {
            ChangeKind::Modified => {
                out.push(format!("  {} {name}", marker(term, e.change)));
                for p in &e.paths {
                    path_change(term, p, context, out);
                }
            }
            kind => {
                let whole = e.new.as_ref().or(e.old.as_ref());
                // An output reads best as its value (and export name).
                let v = match whole {
                    Some(o) if e.section == "Outputs" && o.get("Value").is_some() => {
                        let mut v = o.get("Value").map(show::inline).unwrap_or_default();
                        if let Some(x) = o.get("Export").and_then(|x| x.get("Name")) {
                            v.push_str(&format!(" (export {})", show::inline(x)));
                        }
                        v
                    }
                    other => other.map(show::inline).unwrap_or_default(),
                };
                let shown: String = if v.chars().count() > 100 {
                    format!("{}…", v.chars().take(100).collect::<String>())
                } else {
                    v
                };
                out.push(format!("  {} {name}: {shown}", marker(term, kind)));
            }
        }
    }
}

fn security(term: &Term, d: &StackDiff, out: &mut Vec<String>) {
    let s = &d.security;
    if s.is_empty() {
        return;
    }
    out.push(term.paint(Style::Bold, "Security changes"));
    if !s.iam_added.is_empty() || !s.iam_removed.is_empty() {
        out.push("  IAM statements".into());
        let mut rows = vec![row(&[
            "",
            "Holder",
            "Effect",
            "Action",
            "Resource",
            "Principal",
            "Condition",
        ])];
        let iam_row = |sign: &str, x: &IamStatement| {
            vec![
                sign.to_string(),
                x.resource.clone(),
                x.effect.clone(),
                x.actions.join("\n"),
                x.resources.join("\n"),
                x.principals.join("\n"),
                x.condition.clone().unwrap_or_default(),
            ]
        };
        rows.extend(s.iam_added.iter().map(|x| iam_row("+", x)));
        rows.extend(s.iam_removed.iter().map(|x| iam_row("-", x)));
        table(term, &rows, out);
    }
    if !s.sg_added.is_empty() || !s.sg_removed.is_empty() {
        out.push("  Security group rules".into());
        let mut rows = vec![row(&[
            "",
            "Group",
            "Dir",
            "Protocol",
            "Ports",
            "Peer",
            "Description",
        ])];
        let sg_row = |sign: &str, x: &SgRule| {
            vec![
                sign.to_string(),
                x.group.clone(),
                x.direction.clone(),
                x.protocol.clone(),
                x.ports.clone(),
                x.peer.clone(),
                x.description.clone().unwrap_or_default(),
            ]
        };
        rows.extend(s.sg_added.iter().map(|x| sg_row("+", x)));
        rows.extend(s.sg_removed.iter().map(|x| sg_row("-", x)));
        table(term, &rows, out);
    }
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

/// Columns padded to their widest line; the first row is the header. A cell may
/// hold several lines (one action or resource each): the row grows downwards.
/// Colour is applied after padding so escape codes do not count as width.
fn table(term: &Term, rows: &[Vec<String>], out: &mut Vec<String>) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .flat_map(|c| c.lines().map(|l| l.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for (n, r) in rows.iter().enumerate() {
        let style = match r.first().map(String::as_str) {
            _ if n == 0 => Style::Bold,
            Some("+") => Style::Green,
            Some("-") => Style::Red,
            _ => Style::Dim,
        };
        let height = r
            .iter()
            .map(|c| c.lines().count())
            .max()
            .unwrap_or(1)
            .max(1);
        for k in 0..height {
            let cells: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    // The sign repeats so that each line says what it is.
                    let text = if i == 0 {
                        c.as_str()
                    } else {
                        c.lines().nth(k).unwrap_or("")
                    };
                    format!("{text:<w$}", w = widths[i])
                })
                .collect();
            out.push(term.paint(style, &format!("    {}", cells.join(" │ ").trim_end())));
        }
        if n == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "─".repeat(*w)).collect();
            out.push(format!("    {}", rule.join("─┼─")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::compare::{compare, New, Old};
    use crate::diff::NewValue;
    use std::collections::BTreeMap;

    fn plain() -> Term {
        Term {
            color: false,
            quiet: false,
            verbose: 0,
            stderr_tty: false,
            live: false,
        }
    }

    #[test]
    fn text_shows_markers_paths_and_a_policy_text_diff() {
        let old = json!({"Resources": {
            "T": {"Type": "AWS::DynamoDB::Table", "Properties": {"TableName": "a"}},
            "R": {"Type": "AWS::IAM::Role", "Properties": {"Policies": [{"PolicyName": "p", "PolicyDocument": {"Statement": [
                {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": "*"}]}}]}}
        }});
        let new = json!({"Resources": {
            "T": {"Type": "AWS::DynamoDB::Table", "Properties": {"TableName": "b"}},
            "R": {"Type": "AWS::IAM::Role", "Properties": {"Policies": [{"PolicyName": "p", "PolicyDocument": {"Statement": [
                {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": "*"},
                {"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": "*"}]}}]}}
        }});
        let none = BTreeMap::new();
        let values: BTreeMap<String, NewValue> = BTreeMap::new();
        let d = compare(
            "app-dev-s",
            "s",
            Some(Old {
                template: &old,
                parameters: &none,
                tags: &BTreeMap::new(),
            }),
            New {
                template: &new,
                parameters: &values,
                tags: &BTreeMap::new(),
            },
        );
        let text = stack_lines(&plain(), &d, 3).join("\n");
        assert!(
            text.contains("[~] AWS::DynamoDB::Table T  REPLACE  !! stateful"),
            "{text}"
        );
        assert!(
            text.contains("Properties.TableName (create-only: replaces): \"a\" -> \"b\""),
            "{text}"
        );
        assert!(
            text.contains("+    \"Action\": \"dynamodb:PutItem\","),
            "{text}"
        );
        assert!(
            text.contains("+ │ R      │ Allow  │ dynamodb:PutItem │ *"),
            "{text}"
        );
        assert_eq!(
            summary(&plain(), &d),
            "app-dev-s: changed (1 in place, 1 to replace; 1 stateful resource(s) replaced or removed, 1 security change)"
        );
        let j: Value = serde_json::from_str(&to_json(&[d])).expect("valid JSON");
        assert_eq!(j["stacks"][0]["status"], "changed");
        assert_eq!(j["stacks"][0]["resources"][0]["impact"], "replace");
        assert_eq!(j["stacks"][0]["counts"]["replace"], 1);
    }
}
