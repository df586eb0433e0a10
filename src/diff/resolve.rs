//! The parameter values a deploy would pass, as far as they can be known
//! without deploying or building: upstream outputs as deployed now, code keys and
//! the asset bucket as deployed (diff never builds a bundle), template defaults.

use std::collections::BTreeMap;

use serde_json::Value;

use super::model::NewValue;
use crate::render::{ParamSource, Rendered};

/// A deployed stack as diff needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeployedStack {
    pub status: String,
    pub template: Value,
    pub parameters: BTreeMap<String, String>,
    pub outputs: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
}

/// The value of every parameter the rendered template declares. `own` is this
/// stack as deployed; `bucket` the toolkit stack's asset bucket, when deployed;
/// `upstream(stack)` an upstream stack as deployed (`None`: not deployed).
pub fn new_values<'a>(
    rendered: &Rendered,
    own: Option<&DeployedStack>,
    bucket: Option<&str>,
    upstream: impl Fn(&str) -> Option<&'a DeployedStack>,
) -> BTreeMap<String, NewValue> {
    let deployed_value = |name: &str| own.and_then(|d| d.parameters.get(name)).cloned();
    let mut out = BTreeMap::new();
    let declared = rendered
        .template
        .get("Parameters")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (name, decl) in &declared {
        let value = match rendered.parameters.get(name) {
            Some(ParamSource::Output { stack, output }) => match upstream(stack) {
                Some(up) => match up.outputs.get(output) {
                    Some(v) => Some(v.clone()),
                    // The upstream is deployed but does not report the output (an
                    // emulator that drops outputs of resources it skips): a deploy
                    // cannot do better than what it passed last time.
                    None => deployed_value(name),
                },
                None => None,
            },
            // Bundles are content-addressed and only known after a build; diff
            // does not build, so the deployed key stands (code changes show once
            // `barkctl deploy` has built them).
            Some(ParamSource::CodeKey { .. }) => deployed_value(name),
            Some(ParamSource::AssetsBucket) => {
                bucket.map(str::to_string).or_else(|| deployed_value(name))
            }
            None => decl
                .get("Default")
                .map(default_string)
                .or_else(|| deployed_value(name)),
        };
        out.insert(
            name.clone(),
            value.map_or(NewValue::KnownAfterDeploy, NewValue::Known),
        );
    }
    out
}

/// A parameter Default as CloudFormation passes it: lists comma-joined.
fn default_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(default_string).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rendered() -> Rendered {
        let mut parameters = BTreeMap::new();
        parameters.insert(
            "NetworkVpcId".to_string(),
            ParamSource::Output {
                stack: "network".into(),
                output: "VpcId".into(),
            },
        );
        parameters.insert("AssetsBucket".to_string(), ParamSource::AssetsBucket);
        parameters.insert(
            "ConnectCodeKey".to_string(),
            ParamSource::CodeKey {
                function: "connect".into(),
            },
        );
        Rendered {
            stack: "realtime".into(),
            stack_name: "app-dev-realtime".into(),
            template: json!({"Parameters": {
                "NetworkVpcId": {"Type": "String"}, "AssetsBucket": {"Type": "String"},
                "ConnectCodeKey": {"Type": "String"}, "Subnets": {"Type": "CommaDelimitedList", "Default": ["a", "b"]}
            }}),
            parameters,
        }
    }

    fn deployed(params: &[(&str, &str)], outputs: &[(&str, &str)]) -> DeployedStack {
        DeployedStack {
            status: "CREATE_COMPLETE".into(),
            template: json!({}),
            parameters: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            outputs: outputs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            tags: BTreeMap::new(),
        }
    }

    #[test]
    fn a_new_stack_with_a_new_upstream_is_known_after_deploy() {
        let v = new_values(&rendered(), None, None, |_| None);
        assert_eq!(v["NetworkVpcId"], NewValue::KnownAfterDeploy);
        assert_eq!(v["ConnectCodeKey"], NewValue::KnownAfterDeploy);
        assert_eq!(v["Subnets"], NewValue::Known("a,b".into()));
    }

    #[test]
    fn deployed_outputs_and_code_keys_are_used() {
        let own = deployed(
            &[
                ("ConnectCodeKey", "k1"),
                ("AssetsBucket", "b"),
                ("NetworkVpcId", "vpc-old"),
            ],
            &[],
        );
        let net = deployed(&[], &[("VpcId", "vpc-new")]);
        let v = new_values(&rendered(), Some(&own), Some("toolkit-bucket"), |s| {
            (s == "network").then_some(&net)
        });
        assert_eq!(v["NetworkVpcId"], NewValue::Known("vpc-new".into()));
        assert_eq!(v["ConnectCodeKey"], NewValue::Known("k1".into()));
        assert_eq!(v["AssetsBucket"], NewValue::Known("toolkit-bucket".into()));
    }
}
