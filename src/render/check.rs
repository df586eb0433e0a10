//! Structural checks of a rendered CloudFormation document: the sections are
//! known, Resources exist, and every `Ref`, `Fn::GetAtt`, `Fn::Sub`, condition
//! and `DependsOn` names something the document declares.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// One problem, at a dotted key path inside the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
    /// The undeclared name, when the problem is a dangling reference.
    pub name: Option<String>,
}

const SECTIONS: &[&str] = &[
    "AWSTemplateFormatVersion",
    "Description",
    "Metadata",
    "Parameters",
    "Rules",
    "Mappings",
    "Conditions",
    "Transform",
    "Resources",
    "Outputs",
];

pub const PSEUDO_PARAMETERS: &[&str] = &[
    "AWS::AccountId",
    "AWS::NotificationARNs",
    "AWS::NoValue",
    "AWS::Partition",
    "AWS::Region",
    "AWS::StackId",
    "AWS::StackName",
    "AWS::URLSuffix",
];

struct Names<'a> {
    params: BTreeSet<&'a str>,
    resources: BTreeSet<&'a str>,
    conditions: BTreeSet<&'a str>,
}

impl Names<'_> {
    fn is_refable(&self, n: &str) -> bool {
        self.params.contains(n) || self.resources.contains(n) || PSEUDO_PARAMETERS.contains(&n)
    }
}

/// Every problem found, in document order.
pub fn check(doc: &Value) -> Vec<Problem> {
    let mut out = Vec::new();
    let Some(top) = doc.as_object() else {
        out.push(problem(
            "",
            "a template must be a mapping at the top level",
            None,
        ));
        return out;
    };
    for key in top.keys() {
        if !SECTIONS.contains(&key.as_str()) {
            out.push(problem(
                key,
                format!("unknown top-level section `{key}`"),
                None,
            ));
        }
    }
    let empty = Map::new();
    let section = |name: &str| top.get(name).and_then(Value::as_object).unwrap_or(&empty);
    let resources = section("Resources");
    if resources.is_empty() {
        out.push(problem(
            "Resources",
            "a template needs at least one resource",
            None,
        ));
    }
    let names = Names {
        params: section("Parameters").keys().map(String::as_str).collect(),
        resources: resources.keys().map(String::as_str).collect(),
        conditions: section("Conditions").keys().map(String::as_str).collect(),
    };

    for (id, res) in resources {
        let path = format!("Resources.{id}");
        let Some(r) = res.as_object() else {
            out.push(problem(&path, "a resource must be a mapping", None));
            continue;
        };
        match r.get("Type").and_then(Value::as_str) {
            Some(t) if !t.is_empty() => {}
            _ => out.push(problem(&path, "a resource needs a `Type`", None)),
        }
        if let Some(c) = r.get("Condition").and_then(Value::as_str) {
            if !names.conditions.contains(c) {
                out.push(problem(
                    format!("{path}.Condition"),
                    format!("condition `{c}` is not declared in Conditions"),
                    Some(c),
                ));
            }
        }
        let depends: Vec<&str> = match r.get("DependsOn") {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        for d in depends {
            if !names.resources.contains(d) {
                out.push(problem(
                    format!("{path}.DependsOn"),
                    format!("`DependsOn` names undeclared resource `{d}`"),
                    Some(d),
                ));
            }
        }
        walk(res, &path, &names, &mut out);
    }
    for (name, c) in section("Conditions") {
        walk(c, &format!("Conditions.{name}"), &names, &mut out);
    }
    for (name, o) in section("Outputs") {
        let path = format!("Outputs.{name}");
        match o.get("Value") {
            Some(_) => walk(o, &path, &names, &mut out),
            None => out.push(problem(&path, "an output needs a `Value`", None)),
        }
    }
    out
}

fn problem(path: impl Into<String>, message: impl Into<String>, name: Option<&str>) -> Problem {
    Problem {
        path: path.into(),
        message: message.into(),
        name: name.map(str::to_string),
    }
}

fn walk(v: &Value, path: &str, names: &Names, out: &mut Vec<Problem>) {
    match v {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &format!("{path}.{i}"), names, out);
            }
        }
        Value::Object(m) => {
            if m.len() == 1 {
                let (k, arg) = m.iter().next().expect("one entry");
                let here = format!("{path}.{k}");
                match k.as_str() {
                    "Ref" => check_ref(arg, &here, names, out),
                    "Fn::GetAtt" => check_getatt(arg, &here, names, out),
                    "Fn::Sub" => check_sub(arg, &here, names, out),
                    "Fn::If" => {
                        if let Some(c) = arg.get(0).and_then(Value::as_str) {
                            if !names.conditions.contains(c) {
                                out.push(problem(
                                    &here,
                                    format!("`Fn::If` names undeclared condition `{c}`"),
                                    Some(c),
                                ));
                            }
                        }
                    }
                    "Condition" if arg.is_string() && path.starts_with("Conditions") => {
                        let c = arg.as_str().unwrap_or_default();
                        if !names.conditions.contains(c) {
                            out.push(problem(
                                &here,
                                format!("undeclared condition `{c}`"),
                                Some(c),
                            ));
                        }
                    }
                    _ => {}
                }
            }
            for (k, item) in m {
                walk(item, &format!("{path}.{k}"), names, out);
            }
        }
        _ => {}
    }
}

fn check_ref(arg: &Value, path: &str, names: &Names, out: &mut Vec<Problem>) {
    match arg.as_str() {
        Some(n) if names.is_refable(n) => {}
        Some(n) => out.push(problem(
            path,
            format!(
                "`Ref` to undeclared name `{n}` (not a parameter, resource or pseudo parameter)"
            ),
            Some(n),
        )),
        None => out.push(problem(path, "`Ref` takes a name", None)),
    }
}

fn check_getatt(arg: &Value, path: &str, names: &Names, out: &mut Vec<Problem>) {
    let target = match arg {
        Value::Array(a) if a.len() == 2 => a[0].as_str(),
        Value::String(s) => s.split_once('.').map(|(r, _)| r),
        _ => None,
    };
    match target {
        Some(r) if names.resources.contains(r) => {}
        Some(r) => out.push(problem(
            path,
            format!("`Fn::GetAtt` on undeclared resource `{r}`"),
            Some(r),
        )),
        None => out.push(problem(
            path,
            "`Fn::GetAtt` takes [Resource, Attribute]",
            None,
        )),
    }
}

fn check_sub(arg: &Value, path: &str, names: &Names, out: &mut Vec<Problem>) {
    let (text, vars): (&str, BTreeSet<&str>) = match arg {
        Value::String(s) => (s, BTreeSet::new()),
        Value::Array(a) if a.len() == 2 => (
            a[0].as_str().unwrap_or_default(),
            a[1].as_object()
                .map(|m| m.keys().map(String::as_str).collect())
                .unwrap_or_default(),
        ),
        _ => {
            out.push(problem(
                path,
                "`Fn::Sub` takes a string or [string, variables]",
                None,
            ));
            return;
        }
    };
    for var in sub_variables(text) {
        let head = var.split_once('.').map(|(r, _)| r).unwrap_or(var);
        let ok = vars.contains(var)
            || names.is_refable(var)
            || (var.contains('.') && names.resources.contains(head));
        if !ok {
            out.push(problem(
                path,
                format!("`Fn::Sub` variable `${{{var}}}` is not declared"),
                Some(head),
            ));
        }
    }
}

/// The `${Name}` variables of a `Fn::Sub` string; `${!Literal}` is skipped.
pub fn sub_variables(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else { break };
        let var = after[..end].trim();
        if !var.starts_with('!') && !var.is_empty() {
            out.push(var);
        }
        rest = &after[end + 1..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dangling_references_are_found() {
        let doc = json!({
            "Parameters": {"P": {"Type": "String"}},
            "Resources": {
                "T": {"Type": "AWS::DynamoDB::Table", "Properties": {"TableName": {"Ref": "P"}}},
                "F": {"Type": "AWS::Lambda::Function", "DependsOn": ["T", "Nope"], "Properties": {
                    "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                    "Env": {"Fn::Sub": "${T.Arn}/${AWS::Region}/${Missing}/${!Literal}"},
                    "X": {"Ref": "Ghost"}
                }}
            },
            "Outputs": {"O": {"Value": {"Ref": "T"}}}
        });
        let names: Vec<_> = check(&doc)
            .into_iter()
            .map(|p| p.name.unwrap_or_default())
            .collect();
        assert_eq!(names, vec!["Nope", "Role", "Missing", "Ghost"]);
    }

    #[test]
    fn a_clean_document_has_no_problems() {
        let doc = json!({
            "Conditions": {"IsProd": {"Fn::Equals": [{"Ref": "AWS::StackName"}, "x"]}},
            "Resources": {"Q": {"Type": "AWS::SQS::Queue", "Condition": "IsProd",
                "Properties": {"QueueName": {"Fn::Sub": ["${A}-q", {"A": "x"}]}}}},
            "Outputs": {"Q": {"Value": {"Fn::If": ["IsProd", {"Ref": "Q"}, ""]}}}
        });
        assert_eq!(check(&doc), vec![]);
    }
}
