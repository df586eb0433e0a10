//! The pure comparison: a deployed template and its parameter values against a
//! rendered template and the values a deploy would pass. No AWS, no printing.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::classify;
use super::model::{
    ChangeKind, EntryChange, Impact, Method, NewValue, ParameterChange, PathChange, Replacement,
    ResourceChange, StackDiff, StackStatus, TagChange,
};
use super::path;
use super::security;

/// What is deployed: the template (GetTemplate, parsed) and parameter values.
#[derive(Debug, Clone, Copy)]
pub struct Old<'a> {
    pub template: &'a Value,
    pub parameters: &'a BTreeMap<String, String>,
    pub tags: &'a BTreeMap<String, String>,
}

/// What a deploy would submit.
#[derive(Debug, Clone, Copy)]
pub struct New<'a> {
    pub template: &'a Value,
    pub parameters: &'a BTreeMap<String, NewValue>,
    pub tags: &'a BTreeMap<String, String>,
}

/// What CloudFormation shows for a `NoEcho` parameter: its value cannot be compared.
const MASKED: &str = "****";

/// Sections compared entry by entry besides Parameters, Conditions, Resources and
/// Outputs; the scalar ones are one entry named after the section.
const OTHER_SECTIONS: &[&str] = &[
    "AWSTemplateFormatVersion",
    "Description",
    "Transform",
    "Mappings",
    "Metadata",
    "Rules",
];

/// Compare `new` with `old` (`None`: the stack is not deployed).
pub fn compare(name: &str, stack: &str, old: Option<Old>, new: New) -> StackDiff {
    let old_t = old.map(|o| o.template);
    let parameters = parameters(old, new);
    let mut resources = resources(old_t, new.template);
    if let Some(o) = old {
        through_parameters(o, new, &parameters, &mut resources);
    }
    let mut other = Vec::new();
    for section in OTHER_SECTIONS {
        let (a, b) = (
            old_t.and_then(|t| t.get(*section)),
            new.template.get(*section),
        );
        let keyed = matches!(*section, "Mappings" | "Metadata" | "Rules");
        if keyed {
            other.extend(entries(section, a, b));
        } else if let Some(e) = entry(section, section, a, b) {
            other.push(e);
        }
    }
    let mut diff = StackDiff {
        name: name.to_string(),
        stack: stack.to_string(),
        status: StackStatus::Unchanged,
        method: Method::Template,
        notes: Vec::new(),
        parameters,
        conditions: entries(
            "Conditions",
            old_t.and_then(|t| t.get("Conditions")),
            new.template.get("Conditions"),
        ),
        resources,
        outputs: entries(
            "Outputs",
            old_t.and_then(|t| t.get("Outputs")),
            new.template.get("Outputs"),
        ),
        other,
        tags: old.map(|o| tags(o.tags, new.tags)).unwrap_or_default(),
        security: security::compare(old_t, new.template),
    };
    diff.status = match old {
        None => StackStatus::New,
        Some(_) if diff.has_changes() => StackStatus::Changed,
        Some(_) => StackStatus::Unchanged,
    };
    diff
}

fn section<'a>(t: Option<&'a Value>, name: &str) -> Option<&'a Map<String, Value>> {
    t.and_then(|t| t.get(name)).and_then(Value::as_object)
}

/// Names of both maps: old order first, then names only the new one has.
fn union<'a>(
    a: Option<&'a Map<String, Value>>,
    b: Option<&'a Map<String, Value>>,
) -> Vec<&'a String> {
    let mut names: Vec<&String> = a.map(|m| m.keys().collect()).unwrap_or_default();
    if let Some(b) = b {
        names.extend(b.keys().filter(|k| !a.is_some_and(|a| a.contains_key(*k))));
    }
    names
}

fn parameters(old: Option<Old>, new: New) -> Vec<ParameterChange> {
    let old_decl = section(old.map(|o| o.template), "Parameters");
    let new_decl = section(Some(new.template), "Parameters");
    let mut out = Vec::new();
    for name in union(old_decl, new_decl) {
        let old_value = old.and_then(|o| o.parameters.get(name)).cloned();
        let (new_value, after_deploy) = match new.parameters.get(name) {
            Some(NewValue::Known(v)) => (Some(v.clone()), false),
            Some(NewValue::KnownAfterDeploy) => (None, true),
            // Declared without a value barkctl passes and without a Default.
            None => (None, new_decl.is_some_and(|d| d.contains_key(name))),
        };
        let (a, b) = (
            old_decl.and_then(|d| d.get(name)),
            new_decl.and_then(|d| d.get(name)),
        );
        let change = match (a, b) {
            (None, Some(_)) => ChangeKind::Added,
            (Some(_), None) => ChangeKind::Removed,
            _ => ChangeKind::Modified,
        };
        let mut declaration = Vec::new();
        if change == ChangeKind::Modified {
            let mut leaves = Vec::new();
            path::diff(&mut Vec::new(), a, b, &mut leaves);
            declaration = leaves
                .into_iter()
                .map(|l| plain(l, Replacement::Never))
                .collect();
        }
        let value_differs = match (&old_value, &new_value) {
            (Some(o), _) if o == MASKED => false,
            (Some(o), Some(n)) => o != n,
            (_, None) => after_deploy,
            (None, Some(_)) => true,
        };
        if change != ChangeKind::Modified || !declaration.is_empty() || value_differs {
            out.push(ParameterChange {
                name: name.clone(),
                change,
                old_value,
                new_value: if change == ChangeKind::Removed {
                    None
                } else {
                    new_value
                },
                known_after_deploy: after_deploy && change != ChangeKind::Removed,
                declaration,
            });
        }
    }
    out
}

fn tags(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Vec<TagChange> {
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let (a, b) = (old.get(k), new.get(k));
            let change = match (a, b) {
                (Some(x), Some(y)) if x == y => return None,
                (None, None) => return None,
                (None, Some(_)) => ChangeKind::Added,
                (Some(_), None) => ChangeKind::Removed,
                (Some(_), Some(_)) => ChangeKind::Modified,
            };
            Some(TagChange {
                key: k.clone(),
                change,
                old: a.cloned(),
                new: b.cloned(),
            })
        })
        .collect()
}

fn plain((p, old, new): path::Leaf, replacement: Replacement) -> PathChange {
    PathChange {
        path: path::display(&p),
        old,
        new,
        replacement,
        via_parameter: None,
    }
}

fn type_of(v: &Value) -> String {
    v.get("Type")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string()
}

fn resources(old: Option<&Value>, new: &Value) -> Vec<ResourceChange> {
    let (a, b) = (section(old, "Resources"), section(Some(new), "Resources"));
    let mut out = Vec::new();
    for id in union(a, b) {
        let (o, n) = (a.and_then(|m| m.get(id)), b.and_then(|m| m.get(id)));
        let (change, ty) = match (o, n) {
            (None, Some(n)) => (ChangeKind::Added, type_of(n)),
            (Some(o), None) => (ChangeKind::Removed, type_of(o)),
            (Some(o), Some(n)) if path::same(o, n) => continue,
            (Some(_), Some(n)) => (ChangeKind::Modified, type_of(n)),
            (None, None) => continue,
        };
        let mut properties = Vec::new();
        if change == ChangeKind::Modified {
            let mut leaves = Vec::new();
            path::diff(&mut Vec::new(), o, n, &mut leaves);
            // A changed Type is judged by the old type's rules: that is what goes.
            let judge = o.map(type_of).unwrap_or_else(|| ty.clone());
            properties = leaves
                .into_iter()
                .map(|l| {
                    let r = classify::replacement(&judge, &l.0);
                    plain(l, r)
                })
                .collect();
        }
        let mut r = ResourceChange {
            logical_id: id.clone(),
            stateful: classify::is_stateful(&ty)
                || o.is_some_and(|o| classify::is_stateful(&type_of(o))),
            resource_type: ty,
            change,
            impact: Impact::Create,
            properties,
            classified_by: Method::Template,
            scope: Vec::new(),
            note: None,
        };
        settle(&mut r, o);
        out.push(r);
    }
    out
}

/// Impact and note of `r` from its change and its property replacements.
fn settle(r: &mut ResourceChange, old: Option<&Value>) {
    r.impact = match r.change {
        ChangeKind::Added => Impact::Create,
        ChangeKind::Removed => Impact::Destroy,
        ChangeKind::Modified => Impact::from_replacement(
            r.properties
                .iter()
                .map(|p| p.replacement)
                .max()
                .unwrap_or(Replacement::Never),
        ),
    };
    let retained =
        |key: &str| old.and_then(|o| o.get(key)).and_then(Value::as_str) == Some("Retain");
    r.note = match r.impact {
        Impact::Destroy if retained("DeletionPolicy") => {
            Some("DeletionPolicy Retain: the resource is kept in the account, only removed from the stack".into())
        }
        Impact::Replace | Impact::MayReplace if retained("UpdateReplacePolicy") => {
            Some("UpdateReplacePolicy Retain: the old resource is kept when replaced".into())
        }
        _ if r.change == ChangeKind::Modified && !classify::has_schema(&r.resource_type) => {
            Some(format!("no resource schema for {} here: property changes may replace", r.resource_type))
        }
        _ => None,
    };
}

/// Resources whose template text is unchanged but that reference a parameter
/// whose value changes are updated too: list them with the parameter's values.
fn through_parameters(
    old: Old,
    new: New,
    params: &[ParameterChange],
    out: &mut Vec<ResourceChange>,
) {
    let (Some(a), Some(b)) = (
        section(Some(old.template), "Resources"),
        section(Some(new.template), "Resources"),
    ) else {
        return;
    };
    for p in params.iter().filter(|p| {
        p.change == ChangeKind::Modified && (p.new_value.is_some() || p.known_after_deploy)
    }) {
        let masked = p.old_value.as_deref() == Some(MASKED);
        if masked || (p.old_value.as_deref() == p.new_value.as_deref() && !p.known_after_deploy) {
            continue;
        }
        for (id, res) in b {
            let Some(prev) = a.get(id) else { continue };
            let mut hits = Vec::new();
            path::references(&mut Vec::new(), res, &p.name, &mut hits);
            if hits.is_empty() {
                continue;
            }
            let ty = type_of(res);
            let idx = match out.iter().position(|r| &r.logical_id == id) {
                Some(i) => i,
                None => {
                    out.push(ResourceChange {
                        logical_id: id.clone(),
                        stateful: classify::is_stateful(&ty),
                        resource_type: ty.clone(),
                        change: ChangeKind::Modified,
                        impact: Impact::InPlace,
                        properties: Vec::new(),
                        classified_by: Method::Template,
                        scope: Vec::new(),
                        note: None,
                    });
                    out.len() - 1
                }
            };
            let r = &mut out[idx];
            for hit in hits {
                let shown = path::display(&hit);
                // A path the template itself changes already shows both values.
                if r.properties
                    .iter()
                    .any(|c| c.path == shown || shown.starts_with(&format!("{}.", c.path)))
                {
                    continue;
                }
                r.properties.push(PathChange {
                    path: shown,
                    old: p.old_value.clone().map(Value::String),
                    new: p.new_value.clone().map(Value::String),
                    replacement: classify::replacement(&ty, &hit),
                    via_parameter: Some(p.name.clone()),
                });
            }
            settle(r, Some(prev));
        }
    }
}

fn entries(section_name: &str, a: Option<&Value>, b: Option<&Value>) -> Vec<EntryChange> {
    let (a, b) = (a.and_then(Value::as_object), b.and_then(Value::as_object));
    union(a, b)
        .into_iter()
        .filter_map(|k| {
            entry(
                section_name,
                k,
                a.and_then(|m| m.get(k)),
                b.and_then(|m| m.get(k)),
            )
        })
        .collect()
}

fn entry(
    section_name: &str,
    name: &str,
    a: Option<&Value>,
    b: Option<&Value>,
) -> Option<EntryChange> {
    let change = match (a, b) {
        (None, None) => return None,
        (Some(x), Some(y)) if path::same(x, y) => return None,
        (None, Some(_)) => ChangeKind::Added,
        (Some(_), None) => ChangeKind::Removed,
        (Some(_), Some(_)) => ChangeKind::Modified,
    };
    let mut paths = Vec::new();
    if change == ChangeKind::Modified {
        let mut leaves = Vec::new();
        path::diff(&mut Vec::new(), a, b, &mut leaves);
        paths = leaves
            .into_iter()
            .map(|l| plain(l, Replacement::Never))
            .collect();
    }
    let whole = change != ChangeKind::Modified;
    Some(EntryChange {
        section: section_name.to_string(),
        name: name.to_string(),
        change,
        old: a.filter(|_| whole).cloned(),
        new: b.filter(|_| whole).cloned(),
        paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::cfn_yaml::parse;
    use serde_json::json;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn known(pairs: &[(&str, &str)]) -> BTreeMap<String, NewValue> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), NewValue::Known(v.to_string())))
            .collect()
    }

    fn run(
        old: &Value,
        old_p: &BTreeMap<String, String>,
        new: &Value,
        new_p: &BTreeMap<String, NewValue>,
    ) -> StackDiff {
        compare(
            "app-dev-s",
            "s",
            Some(Old {
                template: old,
                parameters: old_p,
                tags: &BTreeMap::new(),
            }),
            New {
                template: new,
                parameters: new_p,
                tags: &BTreeMap::new(),
            },
        )
    }

    const YAML: &str = r#"
Parameters:
  Retention: {Type: Number, Default: 7}
Conditions:
  IsProd: !Equals [!Ref AWS::StackName, prod]
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    DeletionPolicy: Retain
    Properties:
      TableName: !Sub '${AWS::StackName}-connections'
      BillingMode: PAY_PER_REQUEST
      KeySchema: [{AttributeName: connectionId, KeyType: HASH}]
  Logs:
    Type: AWS::Logs::LogGroup
    Properties:
      RetentionInDays: !Ref Retention
  Fn:
    Type: AWS::Lambda::Function
    Properties:
      MemorySize: 512
      Role: !GetAtt Role.Arn
      Environment: {Variables: {TABLE: !Ref Table}}
Outputs:
  TableArn:
    Value: !GetAtt Table.Arn
"#;

    const JSON_LONG: &str = r#"{
  "Outputs": {"TableArn": {"Value": {"Fn::GetAtt": ["Table", "Arn"]}}},
  "Resources": {
    "Fn": {"Type": "AWS::Lambda::Function", "Properties": {
      "Environment": {"Variables": {"TABLE": {"Ref": "Table"}}},
      "Role": {"Fn::GetAtt": "Role.Arn"}, "MemorySize": "512"}},
    "Logs": {"Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": {"Ref": "Retention"}}},
    "Table": {"Properties": {"BillingMode": "PAY_PER_REQUEST", "TableName": {"Fn::Sub": "${AWS::StackName}-connections"},
      "KeySchema": [{"KeyType": "HASH", "AttributeName": "connectionId"}]},
      "Type": "AWS::DynamoDB::Table", "DeletionPolicy": "Retain"}
  },
  "Conditions": {"IsProd": {"Fn::Equals": [{"Ref": "AWS::StackName"}, "prod"]}},
  "Parameters": {"Retention": {"Default": 7, "Type": "Number"}}
}"#;

    fn base() -> Value {
        parse(YAML).expect("fixture parses")
    }

    fn set(v: &mut Value, pointer: &str, to: Value) {
        *v.pointer_mut(pointer).expect("pointer exists") = to;
    }

    #[test]
    fn json_and_yaml_long_and_short_forms_are_equal() {
        let long = parse(JSON_LONG).expect("JSON parses");
        let p = params(&[("Retention", "7")]);
        let d = run(&base(), &p, &long, &known(&[("Retention", "7")]));
        assert_eq!(d.status, StackStatus::Unchanged, "{d:#?}");
        assert!(!d.has_changes());
    }

    #[test]
    fn a_changed_table_name_replaces_a_stateful_table() {
        let mut new = base();
        set(
            &mut new,
            "/Resources/Table/Properties/TableName",
            json!("connections-v2"),
        );
        let p = params(&[("Retention", "7")]);
        let d = run(&base(), &p, &new, &known(&[("Retention", "7")]));
        assert_eq!(d.status, StackStatus::Changed);
        assert_eq!(d.resources.len(), 1, "{:#?}", d.resources);
        let r = &d.resources[0];
        assert_eq!(
            (r.logical_id.as_str(), r.impact, r.stateful),
            ("Table", Impact::Replace, true)
        );
        assert!(r.is_dangerous());
        assert_eq!(r.properties[0].path, "Properties.TableName");
        assert_eq!(r.properties[0].replacement, Replacement::Always);
        assert_eq!(r.properties[0].new, Some(json!("connections-v2")));
    }

    #[test]
    fn a_changed_memory_size_is_in_place() {
        let mut new = base();
        set(&mut new, "/Resources/Fn/Properties/MemorySize", json!(1024));
        let p = params(&[("Retention", "7")]);
        let d = run(&base(), &p, &new, &known(&[("Retention", "7")]));
        let r = &d.resources[0];
        assert_eq!(
            (r.logical_id.as_str(), r.impact, r.stateful),
            ("Fn", Impact::InPlace, false)
        );
        assert_eq!(
            (r.properties[0].old.clone(), r.properties[0].new.clone()),
            (Some(json!(512)), Some(json!(1024)))
        );
    }

    #[test]
    fn a_removed_resource_is_destroyed_and_retain_is_noted() {
        let mut new = base();
        new["Resources"]
            .as_object_mut()
            .expect("map")
            .remove("Table");
        new["Resources"]["Fn"]["Properties"]["Environment"] =
            json!({"Variables": {"TABLE": "fixed"}});
        new.as_object_mut().expect("map").remove("Outputs");
        let p = params(&[("Retention", "7")]);
        let d = run(&base(), &p, &new, &known(&[("Retention", "7")]));
        let t = d
            .resources
            .iter()
            .find(|r| r.logical_id == "Table")
            .expect("table listed");
        assert_eq!(
            (t.change, t.impact, t.stateful),
            (ChangeKind::Removed, Impact::Destroy, true)
        );
        assert!(t.note.as_deref().unwrap_or("").contains("Retain"));
        assert_eq!(d.outputs.len(), 1);
        assert_eq!(d.outputs[0].change, ChangeKind::Removed);
    }

    #[test]
    fn parameter_value_changes_are_shown_with_what_they_touch() {
        let p = params(&[("Retention", "7")]);
        let d = run(&base(), &p, &base(), &known(&[("Retention", "14")]));
        assert_eq!(d.status, StackStatus::Changed);
        assert_eq!(d.parameters.len(), 1);
        let pc = &d.parameters[0];
        assert_eq!(
            (pc.old_value.as_deref(), pc.new_value.as_deref()),
            (Some("7"), Some("14"))
        );
        assert_eq!(d.resources.len(), 1, "{:#?}", d.resources);
        let r = &d.resources[0];
        assert_eq!((r.logical_id.as_str(), r.impact), ("Logs", Impact::InPlace));
        assert_eq!(r.properties[0].via_parameter.as_deref(), Some("Retention"));
    }

    #[test]
    fn unknown_and_masked_values() {
        let p = params(&[("Retention", "****")]);
        let d = run(&base(), &p, &base(), &known(&[("Retention", "14")]));
        assert_eq!(
            d.status,
            StackStatus::Unchanged,
            "masked values are not compared"
        );
        let mut after: BTreeMap<String, NewValue> = BTreeMap::new();
        after.insert("Retention".into(), NewValue::KnownAfterDeploy);
        let d = run(&base(), &params(&[("Retention", "7")]), &base(), &after);
        assert!(d.parameters[0].known_after_deploy);
        assert_eq!(d.status, StackStatus::Changed);
    }

    #[test]
    fn changed_stack_tags_are_a_change() {
        let p = params(&[("Retention", "7")]);
        let old_tags: BTreeMap<String, String> = [("team".to_string(), "a".to_string())].into();
        let new_tags: BTreeMap<String, String> = [("team".to_string(), "b".to_string())].into();
        let (t, values) = (base(), known(&[("Retention", "7")]));
        let d = compare(
            "app-dev-s",
            "s",
            Some(Old {
                template: &t,
                parameters: &p,
                tags: &old_tags,
            }),
            New {
                template: &t,
                parameters: &values,
                tags: &new_tags,
            },
        );
        assert_eq!(d.status, StackStatus::Changed);
        assert_eq!(d.tags[0].new.as_deref(), Some("b"));
    }

    #[test]
    fn a_new_stack_is_all_added() {
        let new = base();
        let mut after: BTreeMap<String, NewValue> = BTreeMap::new();
        after.insert("Retention".into(), NewValue::KnownAfterDeploy);
        let d = compare(
            "app-dev-s",
            "s",
            None,
            New {
                template: &new,
                parameters: &after,
                tags: &BTreeMap::new(),
            },
        );
        assert_eq!(d.status, StackStatus::New);
        assert_eq!(d.resources.len(), 3);
        assert!(d.resources.iter().all(|r| r.impact == Impact::Create));
        assert!(d.parameters[0].known_after_deploy);
    }

    #[test]
    fn an_added_iam_statement_shows_in_the_security_section() {
        let role = |extra: bool| {
            let mut statements = vec![
                json!({"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": {"Fn::GetAtt": ["Table", "Arn"]}}),
            ];
            if extra {
                statements.push(
                    json!({"Effect": "Allow", "Action": "dynamodb:DeleteItem", "Resource": "*"}),
                );
            }
            json!({"Resources": {"Role": {"Type": "AWS::IAM::Role", "Properties": {
                "AssumeRolePolicyDocument": {"Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
                "Policies": [{"PolicyName": "p", "PolicyDocument": {"Statement": statements}}]}}}})
        };
        let d = run(&role(false), &params(&[]), &role(true), &known(&[]));
        assert_eq!(d.security.iam_added.len(), 1);
        assert_eq!(d.security.iam_added[0].actions, ["dynamodb:DeleteItem"]);
        assert!(d.security.iam_removed.is_empty());
        assert_eq!(d.resources[0].impact, Impact::InPlace);
    }
}
