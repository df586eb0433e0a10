//! `deploy --hotswap`: can a stack's change be carried out through the Lambda API
//! alone? Pure: the deployed template and parameters against the rendered ones.
//!
//! Hotswappable means every difference is a Lambda function's `Code` or
//! `Environment`, or a parameter referenced nowhere else (the bundle keys feed
//! `Code.S3Key` only). Anything else (another property, another resource, tags,
//! a parameter used elsewhere, a value barkctl cannot resolve without
//! CloudFormation) needs a full deploy, and the reason says which.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

const FUNCTION: &str = "AWS::Lambda::Function";
/// The properties a hotswap may change.
const SWAPPABLE: [&str; 2] = ["Code", "Environment"];

/// One function a hotswap updates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FunctionSwap {
    pub logical_id: String,
    /// The template's literal `FunctionName`; `None`: the stack's physical id.
    pub function_name: Option<String>,
    /// New code (UpdateFunctionCode), when it changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<CodeLocation>,
    /// New environment variables (UpdateFunctionConfiguration), when they changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<BTreeMap<String, EnvValue>>,
}

impl FunctionSwap {
    /// `code`, `environment` or `code, environment`.
    pub fn what(&self) -> String {
        let mut w = Vec::new();
        if self.code.is_some() {
            w.push("code");
        }
        if self.environment.is_some() {
            w.push("environment");
        }
        w.join(", ")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CodeLocation {
    pub s3_bucket: String,
    pub s3_key: String,
}

/// An environment variable's new value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum EnvValue {
    Value(String),
    /// Unchanged, and only CloudFormation can resolve it (`!GetAtt`, `!Ref` of a
    /// resource): the function's current value is kept.
    Deployed,
}

/// Why a stack needs a full deploy instead (the words after `no hotswap: `).
pub type NotSwappable = String;

/// The functions to update, or why a hotswap cannot do it. `parameters` are the
/// rendered stack's (defaults included), `deployed_parameters` DescribeStacks'.
/// An empty list means nothing differs.
pub fn plan(
    deployed_template: &Value,
    deployed_parameters: &BTreeMap<String, String>,
    template: &Value,
    parameters: &BTreeMap<String, String>,
) -> Result<Vec<FunctionSwap>, NotSwappable> {
    let changed: BTreeSet<&str> = parameters
        .keys()
        .chain(deployed_parameters.keys())
        .filter(|k| parameters.get(*k) != deployed_parameters.get(*k))
        .map(String::as_str)
        .collect();
    // A changed parameter may only feed the swappable properties of functions.
    let outside = without_swappable(template);
    for p in &changed {
        if !parameters.contains_key(*p) {
            return Err(format!("parameter `{p}` was removed"));
        }
        if refers_to(&outside, p) {
            return Err(format!(
                "parameter `{p}` is used beyond function code and environment"
            ));
        }
    }
    if without_swappable(deployed_template) != outside {
        return Err(match first_difference(deployed_template, template) {
            Some(what) => format!("{what} changed beyond function code and environment"),
            None => "the template changed beyond function code and environment".into(),
        });
    }

    let resources = |t: &Value| t.get("Resources").and_then(Value::as_object).cloned();
    let new = resources(template).unwrap_or_default();
    let old = resources(deployed_template).unwrap_or_default();
    let mut swaps = Vec::new();
    for (id, r) in &new {
        if r.get("Type").and_then(Value::as_str) != Some(FUNCTION) {
            continue;
        }
        let prop = |res: Option<&Value>, name: &str| {
            res.and_then(|r| r.pointer(&format!("/Properties/{name}")))
                .cloned()
        };
        let differs = |name: &str| {
            let now = prop(Some(r), name);
            now != prop(old.get(id), name)
                || now
                    .as_ref()
                    .is_some_and(|v| changed.iter().any(|p| refers_to(v, p)))
        };
        let code = if differs("Code") {
            Some(code_location(id, prop(Some(r), "Code"), parameters)?)
        } else {
            None
        };
        let environment = if differs("Environment") {
            Some(environment(
                id,
                prop(Some(r), "Environment"),
                prop(old.get(id), "Environment"),
                parameters,
                &changed,
            )?)
        } else {
            None
        };
        if code.is_none() && environment.is_none() {
            continue;
        }
        swaps.push(FunctionSwap {
            logical_id: id.clone(),
            function_name: r
                .pointer("/Properties/FunctionName")
                .and_then(Value::as_str)
                .map(str::to_string),
            code,
            environment,
        });
    }
    Ok(swaps)
}

/// The template with each function's swappable properties taken out.
fn without_swappable(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(resources) = t.get_mut("Resources").and_then(Value::as_object_mut) {
        for r in resources.values_mut() {
            if r.get("Type").and_then(Value::as_str) != Some(FUNCTION) {
                continue;
            }
            if let Some(props) = r.get_mut("Properties").and_then(Value::as_object_mut) {
                for p in SWAPPABLE {
                    props.remove(p);
                }
            }
        }
    }
    t
}

/// The first top-level section or resource that differs, for the reason:
/// `` resource `TickSchedule` ``, `` section `Outputs` ``.
fn first_difference(old: &Value, new: &Value) -> Option<String> {
    let (old, new) = (without_swappable(old), without_swappable(new));
    let empty = serde_json::Map::new();
    let old_r = old
        .get("Resources")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let new_r = new
        .get("Resources")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let ids: BTreeSet<&String> = old_r.keys().chain(new_r.keys()).collect();
    if let Some(id) = ids.into_iter().find(|id| old_r.get(*id) != new_r.get(*id)) {
        return Some(format!("resource `{id}`"));
    }
    let sections: BTreeSet<&String> = old
        .as_object()
        .into_iter()
        .flat_map(|o| o.keys())
        .chain(new.as_object().into_iter().flat_map(|o| o.keys()))
        .collect();
    let found = sections
        .into_iter()
        .find(|s| old.get(*s) != new.get(*s))
        .map(|s| format!("section `{s}`"));
    found
}

/// Does `v` reference parameter `name` (`Ref`, or `${name}` in `Fn::Sub`)?
fn refers_to(v: &Value, name: &str) -> bool {
    match v {
        Value::Object(m) => {
            if m.get("Ref").and_then(Value::as_str) == Some(name) {
                return true;
            }
            if let Some(sub) = m.get("Fn::Sub") {
                let text = match sub {
                    Value::String(s) => Some(s.as_str()),
                    Value::Array(a) => a.first().and_then(Value::as_str),
                    _ => None,
                };
                if text.is_some_and(|s| s.contains(&format!("${{{name}}}"))) {
                    return true;
                }
            }
            m.values().any(|x| refers_to(x, name))
        }
        Value::Array(a) => a.iter().any(|x| refers_to(x, name)),
        _ => false,
    }
}

/// A literal, or a `Ref` to a parameter: what barkctl can resolve itself.
fn resolve(v: &Value, parameters: &BTreeMap<String, String>) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Object(m) if m.len() == 1 => {
            let name = m.get("Ref")?.as_str()?;
            parameters.get(name).cloned()
        }
        _ => None,
    }
}

fn code_location(
    id: &str,
    code: Option<Value>,
    parameters: &BTreeMap<String, String>,
) -> Result<CodeLocation, NotSwappable> {
    let code = code.unwrap_or(Value::Null);
    let part = |name: &str| {
        code.get(name)
            .and_then(|v| resolve(v, parameters))
            .ok_or_else(|| {
                format!("the code of `{id}` is not an S3 bucket and key barkctl can resolve")
            })
    };
    Ok(CodeLocation {
        s3_bucket: part("S3Bucket")?,
        s3_key: part("S3Key")?,
    })
}

fn environment(
    id: &str,
    new: Option<Value>,
    old: Option<Value>,
    parameters: &BTreeMap<String, String>,
    changed: &BTreeSet<&str>,
) -> Result<BTreeMap<String, EnvValue>, NotSwappable> {
    let vars = |e: &Option<Value>| {
        e.as_ref()
            .and_then(|e| e.get("Variables"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let (new, old) = (vars(&new), vars(&old));
    let mut out = BTreeMap::new();
    for (k, v) in &new {
        let value = match resolve(v, parameters) {
            Some(s) => EnvValue::Value(s),
            // Unchanged and fed by no changed parameter: Lambda holds its value.
            None if old.get(k) == Some(v) && !changed.iter().any(|p| refers_to(v, p)) => {
                EnvValue::Deployed
            }
            None => {
                return Err(format!(
                    "environment variable `{k}` of `{id}` needs CloudFormation to resolve it"
                ))
            }
        };
        out.insert(k.clone(), value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(greeting: &str, schedule: &str) -> Value {
        json!({
            "Parameters": {
                "AssetsBucket": {"Type": "String"},
                "TickCodeKey": {"Type": "String"}
            },
            "Resources": {
                "Role": {"Type": "AWS::IAM::Role", "Properties": {"Path": "/"}},
                "TickFunction": {"Type": FUNCTION, "Properties": {
                    "FunctionName": "app-local-clock-tick",
                    "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                    "Code": {"S3Bucket": {"Ref": "AssetsBucket"}, "S3Key": {"Ref": "TickCodeKey"}},
                    "Environment": {"Variables": {
                        "GREETING": greeting,
                        "ROLE": {"Fn::GetAtt": ["Role", "Arn"]}
                    }}
                }},
                "Rule": {"Type": "AWS::Events::Rule", "Properties": {"ScheduleExpression": schedule}}
            }
        })
    }

    fn params(key: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("AssetsBucket".to_string(), "assets".to_string()),
            ("TickCodeKey".to_string(), key.to_string()),
        ])
    }

    #[test]
    fn a_new_bundle_key_swaps_the_code_of_the_functions_it_feeds() {
        let t = template("hi", "rate(1 minute)");
        let swaps = plan(&t, &params("a.zip"), &t, &params("b.zip")).expect("swappable");
        assert_eq!(
            swaps,
            vec![FunctionSwap {
                logical_id: "TickFunction".into(),
                function_name: Some("app-local-clock-tick".into()),
                code: Some(CodeLocation {
                    s3_bucket: "assets".into(),
                    s3_key: "b.zip".into()
                }),
                environment: None,
            }]
        );
        assert_eq!(swaps[0].what(), "code");
        // Nothing differs: nothing to swap.
        assert_eq!(plan(&t, &params("a.zip"), &t, &params("a.zip")), Ok(vec![]));
    }

    #[test]
    fn an_environment_change_keeps_values_only_cloudformation_resolves() {
        let old = template("hi", "rate(1 minute)");
        let new = template("hello", "rate(1 minute)");
        let swaps = plan(&old, &params("a.zip"), &new, &params("a.zip")).expect("swappable");
        assert_eq!(swaps.len(), 1);
        assert!(swaps[0].code.is_none());
        assert_eq!(
            swaps[0].environment,
            Some(BTreeMap::from([
                ("GREETING".into(), EnvValue::Value("hello".into())),
                ("ROLE".into(), EnvValue::Deployed),
            ]))
        );
    }

    #[test]
    fn any_other_change_needs_a_full_deploy_and_says_what_changed() {
        let old = template("hi", "rate(1 minute)");
        let new = template("hi", "rate(5 minutes)");
        assert_eq!(
            plan(&old, &params("a.zip"), &new, &params("b.zip")),
            Err("resource `Rule` changed beyond function code and environment".into())
        );
        // Another property of the function itself.
        let mut other = old.clone();
        other["Resources"]["TickFunction"]["Properties"]["MemorySize"] = json!(256);
        assert!(plan(&old, &params("a.zip"), &other, &params("a.zip"))
            .expect_err("full deploy")
            .contains("`TickFunction`"));
        // An environment variable that only CloudFormation can resolve, changed.
        let mut env = old.clone();
        env["Resources"]["TickFunction"]["Properties"]["Environment"]["Variables"]["ROLE"] =
            json!({"Fn::GetAtt": ["Role", "RoleId"]});
        assert!(plan(&old, &params("a.zip"), &env, &params("a.zip"))
            .expect_err("full deploy")
            .contains("`ROLE`"));
    }

    #[test]
    fn a_changed_parameter_used_elsewhere_needs_a_full_deploy() {
        let mut t = template("hi", "rate(1 minute)");
        t["Outputs"] = json!({"Key": {"Value": {"Fn::Sub": "s3://${AssetsBucket}/x"}}});
        let mut moved = params("a.zip");
        moved.insert("AssetsBucket".into(), "other".into());
        assert_eq!(
            plan(&t, &params("a.zip"), &t, &moved),
            Err("parameter `AssetsBucket` is used beyond function code and environment".into())
        );
        // The bundle key is only in `Code`: still swappable.
        assert!(plan(&t, &params("a.zip"), &t, &params("b.zip")).is_ok());
    }
}
