//! A `validate` check of rendered templates: a Lambda function whose role may read
//! a Secrets Manager secret (`secretsmanager:GetSecretValue`, also through
//! `secretsmanager:*`, `*` or another wildcard) that the function's environment
//! never names. Handlers learn which secret to read from their environment
//! (`JWT_SECRET_ARN`, `DB_SECRET_ARN`), so such a grant serves no code of that
//! function: it only widens what a compromised function can read.
//!
//! A granted secret counts as received when the environment holds the same value,
//! names every resource or parameter the grant's reference names (`!Ref X`,
//! `!GetAtt X.Id`, `${X}` in `!Sub`), or, for a literal ARN, holds a string the
//! ARN (or its secret name) matches, wildcards included. `Resource: "*"` and
//! `NotResource` are never received. Policies are read from the role's inline
//! `Policies` and from `AWS::IAM::Policy` / `AWS::IAM::ManagedPolicy` resources
//! attached to it through `Roles`; managed policies named by ARN and roles that are
//! not in the template cannot be read and are not checked.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;

use super::check::{sub_variables, PSEUDO_PARAMETERS};

const ACTION: &str = "secretsmanager:GetSecretValue";

/// One function that may read a secret its environment never names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `{app}-{stage}-{stack}`
    pub stack_name: String,
    /// The function's logical id.
    pub function: String,
    /// The logical id of the role it runs as.
    pub role: String,
    /// The secret as the policy names it: a logical id or parameter, or the ARN.
    pub secret: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stack `{}`: function `{}` (role `{}`) may read secret `{}`, which its environment never names",
            self.stack_name, self.function, self.role, self.secret
        )
    }
}

/// The error `validate` returns when any function has such a grant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct UnusedSecretGrants(pub Vec<Finding>);

impl fmt::Display for UnusedSecretGrants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [one] => write!(f, "{one}"),
            all => {
                write!(
                    f,
                    "{} grants on secrets that the function's environment never names:",
                    all.len()
                )?;
                for finding in all {
                    write!(f, "\n  {finding}")?;
                }
                Ok(())
            }
        }
    }
}

impl UnusedSecretGrants {
    pub fn hint(&self) -> String {
        format!(
            "grant `{ACTION}` only on the secrets a function is handed in its environment (one role per function where their secrets differ), or pass the secret's ARN to the function that reads it"
        )
    }
}

/// Every finding of one rendered template (long-form JSON), in resource order.
pub fn check(stack_name: &str, template: &Value) -> Vec<Finding> {
    let Some(resources) = template.get("Resources").and_then(Value::as_object) else {
        return Vec::new();
    };
    let grants = secret_grants_by_role(resources);
    let mut out = Vec::new();
    for (id, res) in resources {
        if res.get("Type").and_then(Value::as_str) != Some("AWS::Lambda::Function") {
            continue;
        }
        let props = res.get("Properties").unwrap_or(&Value::Null);
        let Some(role) = props.get("Role").and_then(role_id) else {
            continue;
        };
        let Some(granted) = grants.get(role.as_str()) else {
            continue;
        };
        let env = props
            .pointer("/Environment/Variables")
            .unwrap_or(&Value::Null);
        let env_view = EnvView::of(env);
        for secret in granted {
            if !env_view.receives(secret) {
                let finding = Finding {
                    stack_name: stack_name.to_string(),
                    function: id.clone(),
                    role: role.clone(),
                    secret: label(secret),
                };
                if !out.contains(&finding) {
                    out.push(finding);
                }
            }
        }
    }
    out
}

/// Role logical id -> the secret references its policies grant the action on.
fn secret_grants_by_role(resources: &serde_json::Map<String, Value>) -> BTreeMap<&str, Vec<Value>> {
    let mut out: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for (id, res) in resources {
        let props = res.get("Properties").unwrap_or(&Value::Null);
        match res.get("Type").and_then(Value::as_str) {
            Some("AWS::IAM::Role") => {
                let entry = out.entry(id.as_str()).or_default();
                for policy in branches(props.get("Policies").unwrap_or(&Value::Null)) {
                    granted_secrets(policy.get("PolicyDocument"), entry);
                }
            }
            Some("AWS::IAM::Policy" | "AWS::IAM::ManagedPolicy") => {
                let mut granted = Vec::new();
                granted_secrets(props.get("PolicyDocument"), &mut granted);
                if granted.is_empty() {
                    continue;
                }
                for role in branches(props.get("Roles").unwrap_or(&Value::Null)) {
                    let Some(name) = role.get("Ref").and_then(Value::as_str) else {
                        continue;
                    };
                    if let Some((key, _)) = resources.get_key_value(name) {
                        out.entry(key.as_str())
                            .or_default()
                            .extend(granted.iter().cloned());
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The resources of every Allow statement of `doc` that covers the action.
fn granted_secrets(doc: Option<&Value>, out: &mut Vec<Value>) {
    let Some(statements) = doc.and_then(|d| d.get("Statement")) else {
        return;
    };
    for st in branches(statements) {
        if st.get("Effect").and_then(Value::as_str) != Some("Allow") {
            continue;
        }
        let covers = match (st.get("Action"), st.get("NotAction")) {
            (Some(actions), _) => strings(actions).iter().any(|a| action_matches(a)),
            (None, Some(not)) => !strings(not).iter().any(|a| action_matches(a)),
            (None, None) => false,
        };
        if !covers {
            continue;
        }
        if st.get("NotResource").is_some() {
            // Everything but some resources: at least every other secret.
            out.push(Value::from("*"));
        }
        for r in branches(st.get("Resource").unwrap_or(&Value::Null)) {
            if !out.contains(r) {
                out.push(r.clone());
            }
        }
    }
}

fn action_matches(pattern: &str) -> bool {
    glob(&pattern.to_ascii_lowercase(), &ACTION.to_ascii_lowercase())
}

/// The logical id behind a function's `Role`: `!GetAtt R.Arn`, `!Ref R`,
/// `!Sub ${R.Arn}`.
fn role_id(role: &Value) -> Option<String> {
    if let Some(r) = role.get("Ref").and_then(Value::as_str) {
        return Some(r.to_string());
    }
    if let Some(a) = role.get("Fn::GetAtt") {
        return match a {
            Value::Array(parts) => parts.first().and_then(Value::as_str).map(str::to_string),
            Value::String(s) => s.split('.').next().map(str::to_string),
            _ => None,
        };
    }
    let text = role.get("Fn::Sub").and_then(Value::as_str)?;
    match sub_variables(text).as_slice() {
        [one] if text.trim() == format!("${{{one}}}") => one.split('.').next().map(str::to_string),
        _ => None,
    }
}

/// What an environment names: its values, the template names they reference and
/// the literal strings they hold.
struct EnvView<'a> {
    values: Vec<&'a Value>,
    names: BTreeSet<String>,
    literals: Vec<String>,
}

impl<'a> EnvView<'a> {
    fn of(env: &'a Value) -> Self {
        let values: Vec<&Value> = match env {
            Value::Object(m) => m.values().collect(),
            _ => Vec::new(),
        };
        let mut names = BTreeSet::new();
        let mut literals = Vec::new();
        for v in &values {
            referenced_names(v, &mut names);
            literal_strings(v, &mut literals);
        }
        EnvView {
            values,
            names,
            literals,
        }
    }

    fn receives(&self, secret: &Value) -> bool {
        if self.values.contains(&secret) {
            return true;
        }
        let mut names = BTreeSet::new();
        referenced_names(secret, &mut names);
        if !names.is_empty() {
            return names.is_subset(&self.names);
        }
        let Some(pattern) = literal_pattern(secret) else {
            return false;
        };
        if pattern.chars().all(|c| c == '*') {
            return false;
        }
        let name = secret_name(&pattern);
        self.literals
            .iter()
            .any(|l| glob(&pattern, l) || name.is_some_and(|n| glob(n, l)))
    }
}

/// Template names (resources, parameters) a value references; pseudo parameters
/// are not names.
fn referenced_names(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| referenced_names(i, out)),
        Value::Object(m) => {
            if let Some(r) = m.get("Ref").and_then(Value::as_str) {
                if !PSEUDO_PARAMETERS.contains(&r) {
                    out.insert(r.to_string());
                }
            }
            if let Some(a) = m.get("Fn::GetAtt") {
                let target = match a {
                    Value::Array(parts) => parts.first().and_then(Value::as_str),
                    Value::String(s) => s.split('.').next(),
                    _ => None,
                };
                if let Some(t) = target {
                    out.insert(t.to_string());
                }
            }
            if let Some(sub) = m.get("Fn::Sub") {
                let (text, vars) = match sub {
                    Value::String(s) => (s.as_str(), None),
                    Value::Array(a) => (
                        a.first().and_then(Value::as_str).unwrap_or_default(),
                        a.get(1).and_then(Value::as_object),
                    ),
                    _ => ("", None),
                };
                for var in sub_variables(text) {
                    if let Some(value) = vars.and_then(|vs| vs.get(var)) {
                        referenced_names(value, out);
                    } else if !PSEUDO_PARAMETERS.contains(&var) {
                        out.insert(var.split('.').next().unwrap_or(var).to_string());
                    }
                }
                return;
            }
            m.values().for_each(|i| referenced_names(i, out));
        }
        _ => {}
    }
}

fn literal_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| literal_strings(i, out)),
        Value::Object(m) => {
            if let Some(p) = literal_pattern(v) {
                out.push(p);
            } else if !["Ref", "Fn::GetAtt", "Fn::Sub"]
                .iter()
                .any(|k| m.contains_key(*k))
            {
                // Fn::Join, Fn::If, ...: their string arguments are literals.
                m.values().for_each(|i| literal_strings(i, out));
            }
        }
        _ => {}
    }
}

/// A literal ARN pattern: a string, or a `!Sub` whose only variables are pseudo
/// parameters (each becomes `*`).
fn literal_pattern(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(m) if m.len() == 1 => {
            let text = m.get("Fn::Sub")?.as_str()?;
            let vars = sub_variables(text);
            if !vars.iter().all(|v| PSEUDO_PARAMETERS.contains(v)) {
                return None;
            }
            let mut out = text.to_string();
            for var in vars {
                out = out.replace(&format!("${{{var}}}"), "*");
            }
            Some(out)
        }
        _ => None,
    }
}

/// `name-AbCdEf` from `arn:aws:secretsmanager:region:account:secret:name-AbCdEf`.
fn secret_name(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(7, ':');
    let (_, _, service, _, _, kind, name) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    (service == "secretsmanager" && kind == "secret").then_some(name)
}

/// How a finding names the secret.
fn label(secret: &Value) -> String {
    if let Some(r) = secret.get("Ref").and_then(Value::as_str) {
        return r.to_string();
    }
    if let Some(a) = secret.get("Fn::GetAtt") {
        return match a {
            Value::Array(parts) => parts
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("."),
            other => other.as_str().unwrap_or_default().to_string(),
        };
    }
    if let Some(text) = secret.get("Fn::Sub").and_then(|s| match s {
        Value::Array(a) => a.first(),
        other => Some(other),
    }) {
        return text.as_str().unwrap_or_default().to_string();
    }
    match secret {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A value, or both branches of an `Fn::If` (and the items of a list), without
/// `AWS::NoValue`.
fn branches(v: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    collect_branches(v, &mut out);
    out
}

fn collect_branches<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Null => {}
        Value::Array(items) => items.iter().for_each(|i| collect_branches(i, out)),
        Value::Object(m) if m.len() == 1 && m.contains_key("Fn::If") => {
            if let Some(arms) = m["Fn::If"].as_array() {
                arms.iter().skip(1).for_each(|i| collect_branches(i, out));
            }
        }
        Value::Object(m) if m.get("Ref").and_then(Value::as_str) == Some("AWS::NoValue") => {}
        other => out.push(other),
    }
}

fn strings(v: &Value) -> Vec<String> {
    branches(v)
        .into_iter()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

/// IAM wildcard matching: `*` any run of characters, `?` any one character.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A template with one role and the functions that run as it.
    fn template(statements: Value, functions: &[(&str, Value)]) -> Value {
        let mut resources = json!({
            "Key": {"Type": "AWS::SecretsManager::Secret"},
            "Other": {"Type": "AWS::SecretsManager::Secret"},
            "Role": {"Type": "AWS::IAM::Role", "Properties": {"Policies": [
                {"PolicyName": "access", "PolicyDocument": {"Statement": statements}}
            ]}}
        });
        for (id, env) in functions {
            resources[*id] = json!({"Type": "AWS::Lambda::Function", "Properties": {
                "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                "Environment": {"Variables": env}
            }});
        }
        json!({"Parameters": {"DbSecretArn": {"Type": "String"}}, "Resources": resources})
    }

    fn allow(action: Value, resource: Value) -> Value {
        json!({"Effect": "Allow", "Action": action, "Resource": resource})
    }

    fn secrets(t: &Value) -> Vec<(String, String)> {
        check("app-dev-s", t)
            .into_iter()
            .map(|f| (f.function, f.secret))
            .collect()
    }

    #[test]
    fn a_grant_on_a_secret_the_environment_names_is_fine() {
        let t = template(
            json!([allow(
                json!(ACTION),
                json!([{"Ref": "Key"}, {"Ref": "DbSecretArn"}])
            )]),
            &[(
                "F",
                json!({"KEY_ARN": {"Ref": "Key"}, "DB": {"Ref": "DbSecretArn"}}),
            )],
        );
        assert_eq!(check("app-dev-s", &t), vec![]);
    }

    #[test]
    fn a_grant_on_a_secret_the_environment_never_names_is_found() {
        let t = template(
            json!([allow(
                json!(ACTION),
                json!([{"Ref": "Key"}, {"Ref": "Other"}])
            )]),
            &[("F", json!({"KEY_ARN": {"Ref": "Key"}}))],
        );
        assert_eq!(
            check("app-dev-s", &t),
            vec![Finding {
                stack_name: "app-dev-s".into(),
                function: "F".into(),
                role: "Role".into(),
                secret: "Other".into(),
            }]
        );
        assert_eq!(
            check("app-dev-s", &t)[0].to_string(),
            "stack `app-dev-s`: function `F` (role `Role`) may read secret `Other`, which its environment never names"
        );
    }

    /// The over-privilege of issue 11: one realtime role for every function, each
    /// able to read the JWT and database secrets that only one of them receives.
    #[test]
    fn a_shared_role_is_checked_for_every_function_that_runs_as_it() {
        let t = template(
            json!([allow(
                json!(ACTION),
                json!([{"Ref": "Key"}, {"Ref": "DbSecretArn"}])
            )]),
            &[
                ("Connect", json!({"JWT_SECRET_ARN": {"Ref": "Key"}})),
                ("Message", json!({"TABLE": "t"})),
            ],
        );
        assert_eq!(
            secrets(&t),
            [
                ("Connect".to_string(), "DbSecretArn".to_string()),
                ("Message".to_string(), "Key".to_string()),
                ("Message".to_string(), "DbSecretArn".to_string()),
            ]
        );
    }

    #[test]
    fn wildcard_actions_count_and_other_actions_do_not() {
        for (action, found) in [
            (json!("secretsmanager:*"), true),
            (json!("*"), true),
            (json!(["SecretsManager:Get*"]), true),
            (json!("secretsmanager:GetSecretValu?"), true),
            (json!("secretsmanager:DescribeSecret"), false),
            (json!(["dynamodb:GetItem", "kms:Decrypt"]), false),
        ] {
            let t = template(
                json!([allow(action.clone(), json!({"Ref": "Other"}))]),
                &[("F", json!({}))],
            );
            assert_eq!(!secrets(&t).is_empty(), found, "{action}");
        }
        let deny = template(
            json!([{"Effect": "Deny", "Action": ACTION, "Resource": {"Ref": "Other"}}]),
            &[("F", json!({}))],
        );
        assert_eq!(secrets(&deny), []);
        let not_action = template(
            json!([{"Effect": "Allow", "NotAction": "s3:*", "Resource": {"Ref": "Other"}}]),
            &[("F", json!({}))],
        );
        assert_eq!(secrets(&not_action), [("F".into(), "Other".into())]);
    }

    #[test]
    fn star_and_not_resource_are_never_received() {
        let t = template(
            json!([allow(json!(ACTION), json!("*"))]),
            &[("F", json!({"KEY_ARN": {"Ref": "Key"}}))],
        );
        assert_eq!(secrets(&t), [("F".into(), "*".into())]);
        let t = template(
            json!([{"Effect": "Allow", "Action": ACTION, "NotResource": {"Ref": "Other"}}]),
            &[("F", json!({"KEY_ARN": {"Ref": "Key"}}))],
        );
        assert_eq!(secrets(&t), [("F".into(), "*".into())]);
    }

    #[test]
    fn getatt_sub_and_literal_arns_are_matched_to_the_environment() {
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/api-key-AbCdEf";
        let cases = [
            // Ref and GetAtt name the same resource.
            (
                json!({"Fn::GetAtt": ["Key", "Id"]}),
                json!({"K": {"Ref": "Key"}}),
                true,
            ),
            (
                json!({"Fn::Sub": "${Key}"}),
                json!({"K": {"Ref": "Key"}}),
                true,
            ),
            (
                json!({"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${Name}-*"}),
                json!({"K": {"Ref": "Name"}}),
                true,
            ),
            (json!(arn), json!({"K": arn}), true),
            (
                json!("arn:aws:secretsmanager:us-east-1:123456789012:secret:app/api-key-??????"),
                json!({"K": arn}),
                true,
            ),
            // The environment may hold the secret's name rather than its ARN.
            (
                json!("arn:aws:secretsmanager:us-east-1:123456789012:secret:app/api-key*"),
                json!({"K": "app/api-key"}),
                true,
            ),
            (
                json!({"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:app/api-key-*"}),
                json!({"K": arn}),
                true,
            ),
            (json!(arn), json!({"K": "app/other"}), false),
            (
                json!({"Fn::GetAtt": ["Key", "Id"]}),
                json!({"K": {"Ref": "Other"}}),
                false,
            ),
        ];
        for (granted, env, received) in cases {
            let t = template(
                json!([allow(json!(ACTION), granted.clone())]),
                &[("F", env.clone())],
            );
            assert_eq!(secrets(&t).is_empty(), received, "{granted} / {env}");
        }
    }

    #[test]
    fn conditional_statements_and_attached_policies_are_read() {
        let mut t = template(
            json!([{"Fn::If": ["C", allow(json!(ACTION), json!({"Ref": "Other"})), {"Ref": "AWS::NoValue"}]}]),
            &[("F", json!({}))],
        );
        assert_eq!(secrets(&t), [("F".into(), "Other".into())]);

        t["Resources"]["Role"]["Properties"]["Policies"] = json!([]);
        assert_eq!(secrets(&t), []);
        t["Resources"]["Extra"] = json!({"Type": "AWS::IAM::Policy", "Properties": {
            "Roles": [{"Ref": "Role"}],
            "PolicyDocument": {"Statement": allow(json!(ACTION), json!({"Ref": "Key"}))}
        }});
        assert_eq!(secrets(&t), [("F".into(), "Key".into())]);
    }

    #[test]
    fn roles_from_outside_the_template_are_not_checked() {
        let mut t = template(
            json!([allow(json!(ACTION), json!("*"))]),
            &[("F", json!({}))],
        );
        t["Resources"]["F"]["Properties"]["Role"] =
            json!("arn:aws:iam::123456789012:role/elsewhere");
        assert_eq!(secrets(&t), []);
    }

    #[test]
    fn iam_wildcards() {
        assert!(glob("a*c", "abbbc"));
        assert!(glob("a?c", "abc"));
        assert!(glob("*", ""));
        assert!(!glob("a?c", "ac"));
        assert!(!glob("a*d", "abc"));
    }
}
