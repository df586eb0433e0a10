//! The values a template sees. Documented in README.md ("Template context").

use serde_json::{json, Map, Value};

use super::registry::pascal_case;
use crate::project::{Project, Stack, Stage};

/// The parameter holding the asset bucket's name, in every stack with functions.
pub const ASSETS_BUCKET_PARAM: &str = "AssetsBucket";

/// network.VpcId -> `NetworkVpcId`
pub fn needs_param(upstream: &str, output: &str) -> String {
    format!("{}{}", pascal_case(upstream), output)
}

/// connect -> `ConnectCodeKey`
pub fn code_key_param(function: &str) -> String {
    format!("{}CodeKey", pascal_case(function))
}

/// connect -> `ConnectFunction`
pub fn function_logical_id(function: &str) -> String {
    format!("{}Function", pascal_case(function))
}

pub fn build(project: &Project, stage: &Stage, stack: &Stack) -> Value {
    let mut functions = Map::new();
    for (key, f) in &stack.functions {
        let arch = project.architecture_of(stage, f);
        functions.insert(
            key.clone(),
            json!({
                "key": key,
                "name": project.function_name(&stage.name, &stack.name, key),
                "logical_id": function_logical_id(key),
                "crate": f.crate_name,
                "memory": f.memory,
                "timeout": f.timeout,
                "architecture": arch.as_str(),
                "description": f.description.clone().unwrap_or_default(),
                "code_bucket_param": ASSETS_BUCKET_PARAM,
                "code_key_param": code_key_param(key),
            }),
        );
    }
    let mut needs = Map::new();
    for (upstream, outputs) in &stack.needs {
        let params: Map<String, Value> = outputs
            .iter()
            .map(|o| (o.clone(), Value::String(needs_param(upstream, o))))
            .collect();
        needs.insert(upstream.clone(), Value::Object(params));
    }
    json!({
        "app": project.app,
        "stage": stage.name,
        "region": project.region_for(stage),
        "is_local": stage.local,
        "stack": stack.name,
        "stack_name": project.stack_name(&stage.name, &stack.name),
        "description": stack.description.clone().unwrap_or_default(),
        "params": project.params_for(stack, stage),
        "tags": project.tags_for(stack, stage),
        "functions": functions,
        "needs": needs,
    })
}
