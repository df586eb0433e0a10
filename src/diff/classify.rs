//! Which property changes replace a resource, and which resources hold data.
//!
//! The create-only property lists come from the public CloudFormation resource
//! provider schemas (`createOnlyProperties`, `conditionalCreateOnlyProperties`),
//! compacted into `create_only.json` by `scripts/gen-create-only.py`.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Deserialize;

use super::model::Replacement;
use super::path::Seg;

/// Types whose replacement or removal loses data: deploy's list
/// ([`crate::plan::STATEFUL_TYPES`]), so the two cannot disagree.
pub fn is_stateful(resource_type: &str) -> bool {
    crate::plan::is_stateful(resource_type)
}

#[derive(Debug, Default, Deserialize)]
struct Table {
    types: HashMap<String, TypeRule>,
}

#[derive(Debug, Default, Deserialize)]
struct TypeRule {
    create_only: Vec<String>,
    conditional: Vec<String>,
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    // The file is compiled in and checked by a unit test; an unreadable table
    // would only make every change "may replace", never hide one.
    TABLE.get_or_init(|| serde_json::from_str(include_str!("create_only.json")).unwrap_or_default())
}

/// Whether the schema knows `resource_type`.
pub fn has_schema(resource_type: &str) -> bool {
    table().types.contains_key(resource_type)
}

/// How changing the value at `path` (segments of a resource entry, starting with
/// `Properties`, `Type`, `Metadata`, ...) affects a resource of `resource_type`.
pub fn replacement(resource_type: &str, path: &[Seg]) -> Replacement {
    let Some((first, rest)) = path.split_first() else {
        return Replacement::Conditional;
    };
    match first {
        Seg::Key(k) if k == "Type" => return Replacement::Always,
        // A changed condition may create or delete the resource.
        Seg::Key(k) if k == "Condition" => return Replacement::Conditional,
        Seg::Key(k) if k == "Properties" => {}
        // DependsOn, Metadata, DeletionPolicy, UpdateReplacePolicy, policies.
        _ => return Replacement::Never,
    }
    if resource_type.starts_with("Custom::")
        || resource_type == "AWS::CloudFormation::CustomResource"
    {
        // A custom resource's handler decides; CloudFormation itself sends an update.
        return Replacement::Never;
    }
    let Some(rule) = table().types.get(resource_type) else {
        return Replacement::Conditional;
    };
    if rest.is_empty() {
        // The whole Properties block appears or goes.
        return if rule.create_only.is_empty() && rule.conditional.is_empty() {
            Replacement::Never
        } else {
            Replacement::Conditional
        };
    }
    let mut worst = Replacement::Never;
    for pattern in &rule.create_only {
        worst = worst.max(match relation(pattern, rest) {
            Relation::Covers => Replacement::Always,
            Relation::Inside => Replacement::Conditional,
            Relation::Apart => Replacement::Never,
        });
    }
    for pattern in &rule.conditional {
        worst = worst.max(match relation(pattern, rest) {
            Relation::Covers | Relation::Inside => Replacement::Conditional,
            Relation::Apart => Replacement::Never,
        });
    }
    worst
}

enum Relation {
    /// The create-only path is the changed path or one of its parents.
    Covers,
    /// The changed path is a parent of the create-only path: the change may or
    /// may not touch it.
    Inside,
    Apart,
}

fn relation(pattern: &str, path: &[Seg]) -> Relation {
    let parts: Vec<&str> = pattern.split('/').filter(|p| !p.is_empty()).collect();
    for (i, part) in parts.iter().enumerate() {
        let Some(seg) = path.get(i) else {
            return Relation::Inside;
        };
        let matches = match seg {
            Seg::Key(k) => k == part,
            Seg::Index(_) => *part == "*",
        };
        if !matches {
            return Relation::Apart;
        }
    }
    Relation::Covers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(keys: &[&str]) -> Vec<Seg> {
        std::iter::once(Seg::Key("Properties".into()))
            .chain(keys.iter().map(|k| match k.parse::<usize>() {
                Ok(i) => Seg::Index(i),
                Err(_) => Seg::Key((*k).to_string()),
            }))
            .collect()
    }

    #[test]
    fn the_committed_table_parses_and_knows_the_stack_types() {
        let t: Table = serde_json::from_str(include_str!("create_only.json")).expect("valid JSON");
        for ty in [
            "AWS::DynamoDB::Table",
            "AWS::Lambda::Function",
            "AWS::Logs::LogGroup",
            "AWS::IAM::Role",
        ] {
            assert!(t.types.contains_key(ty), "{ty}");
        }
    }

    #[test]
    fn create_only_properties_replace_and_others_do_not() {
        assert_eq!(
            replacement("AWS::DynamoDB::Table", &props(&["TableName"])),
            Replacement::Always
        );
        assert_eq!(
            replacement(
                "AWS::DynamoDB::Table",
                &props(&["KeySchema", "0", "AttributeName"])
            ),
            Replacement::Conditional
        );
        assert_eq!(
            replacement("AWS::DynamoDB::Table", &props(&["BillingMode"])),
            Replacement::Never
        );
        assert_eq!(
            replacement("AWS::Lambda::Function", &props(&["MemorySize"])),
            Replacement::Never
        );
        assert_eq!(
            replacement("AWS::Logs::LogGroup", &props(&["LogGroupName"])),
            Replacement::Always
        );
        assert_eq!(
            replacement(
                "AWS::EC2::SecurityGroup",
                &props(&["SecurityGroupIngress", "0", "CidrIp"])
            ),
            Replacement::Never
        );
        assert_eq!(
            replacement("AWS::EC2::SecurityGroup", &props(&["VpcId"])),
            Replacement::Always
        );
    }

    #[test]
    fn type_changes_replace_and_unknown_types_may() {
        assert_eq!(
            replacement("AWS::Lambda::Function", &[Seg::Key("Type".into())]),
            Replacement::Always
        );
        assert_eq!(
            replacement("AWS::Lambda::Function", &[Seg::Key("DependsOn".into())]),
            Replacement::Never
        );
        assert_eq!(
            replacement("AWS::Made::Up", &props(&["Anything"])),
            Replacement::Conditional
        );
    }
}
