//! Deployed stacks' outputs: reading them, naming them as environment
//! variables, and merging them into an outputs file.

use std::collections::BTreeMap;
use std::path::Path;

use aws_sdk_cloudformation::Client;
use serde_json::{Map, Value};

use super::{cfn, Error};
use crate::plan::StackState;

/// Outputs of each stack (short name -> output -> value); `None` when the stack
/// is not deployed.
pub async fn read(
    client: &Client,
    stacks: &[(String, String)],
) -> Result<BTreeMap<String, Option<BTreeMap<String, String>>>, Error> {
    let mut out = BTreeMap::new();
    for (short, full) in stacks {
        let stack = cfn::describe(client, full).await?;
        let outputs = stack
            .filter(|s| !matches!(cfn::state_of(Some(s)), StackState::NotFound))
            .map(|s| cfn::outputs_of(&s));
        out.insert(short.clone(), outputs);
    }
    Ok(out)
}

/// `network` + `PrivateSubnetIds` -> `NETWORK_PRIVATE_SUBNET_IDS`: upper snake
/// case (`heck`), words split where a lower-case letter or digit meets an
/// upper-case one and before the last capital of an acronym (`DBSecret`).
pub fn env_name(stack: &str, output: &str) -> String {
    use heck::ToShoutySnakeCase;
    format!(
        "{}_{}",
        stack.to_shouty_snake_case(),
        output.to_shouty_snake_case()
    )
}

/// Merge `outputs` (stack -> outputs) into the JSON object in `path`, keeping
/// every other stack already there. A missing file starts empty.
pub fn merge_file(
    path: &Path,
    outputs: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<(), Error> {
    let mut doc = match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => Map::new(),
        Ok(text) => match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(m)) => m,
            Ok(_) => {
                return Err(Error::OutputsFile {
                    path: path.to_path_buf(),
                    message: "the top level is not an object".into(),
                })
            }
            Err(e) => {
                return Err(Error::OutputsFile {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
        Err(source) => {
            return Err(Error::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    for (stack, outs) in outputs {
        doc.insert(
            stack.clone(),
            Value::Object(
                outs.iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            ),
        );
    }
    let mut text = serde_json::to_string_pretty(&Value::Object(doc)).unwrap_or_default();
    text.push('\n');
    // Write next to the target, then rename: a reader never sees half a file.
    let tmp = path.with_extension("barkctl-tmp");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_are_upper_snake_case() {
        assert_eq!(env_name("network", "VpcId"), "NETWORK_VPC_ID");
        assert_eq!(
            env_name("network", "PrivateSubnetIds"),
            "NETWORK_PRIVATE_SUBNET_IDS"
        );
        assert_eq!(
            env_name("realtime", "WebSocketURL"),
            "REALTIME_WEB_SOCKET_URL"
        );
        assert_eq!(env_name("db-x", "DBSecretArn"), "DB_X_DB_SECRET_ARN");
        assert_eq!(env_name("jobs", "Rule2Arn"), "JOBS_RULE2_ARN");
    }

    #[test]
    fn merging_keeps_other_stacks_and_replaces_deployed_ones() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("outputs.json");
        std::fs::write(
            &path,
            r#"{"other": {"A": "1"}, "network": {"VpcId": "old", "Gone": "x"}}"#,
        )
        .expect("write");
        let outputs = BTreeMap::from([(
            "network".to_string(),
            BTreeMap::from([("VpcId".to_string(), "vpc-new".to_string())]),
        )]);
        merge_file(&path, &outputs).expect("merge");
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        assert_eq!(v["other"]["A"], "1");
        assert_eq!(v["network"]["VpcId"], "vpc-new");
        assert!(v["network"].get("Gone").is_none());
    }

    #[test]
    fn merging_into_a_non_object_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("o.json");
        std::fs::write(&path, "[1]").expect("write");
        assert!(matches!(
            merge_file(&path, &BTreeMap::new()),
            Err(Error::OutputsFile { .. })
        ));
    }
}
