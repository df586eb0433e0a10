//! The security section: IAM statements and security-group rules that a deploy
//! adds or removes, like `cdk diff` shows them. A statement or rule that changes
//! appears once removed and once added.

use serde::Serialize;
use serde_json::Value;

use super::show::cell;

/// One IAM statement (or a statement-like grant: a Lambda permission, a managed
/// policy attachment), flattened to what a reviewer reads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct IamStatement {
    /// The logical id of the resource that holds it.
    pub resource: String,
    pub effect: String,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
    pub principals: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
}

/// One security-group rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct SgRule {
    /// The group's logical id (or its reference, for standalone rule resources).
    pub group: String,
    pub direction: String,
    pub protocol: String,
    pub ports: String,
    pub peer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SecurityChanges {
    pub iam_added: Vec<IamStatement>,
    pub iam_removed: Vec<IamStatement>,
    pub sg_added: Vec<SgRule>,
    pub sg_removed: Vec<SgRule>,
}

impl SecurityChanges {
    pub fn is_empty(&self) -> bool {
        self.iam_added.is_empty()
            && self.iam_removed.is_empty()
            && self.sg_added.is_empty()
            && self.sg_removed.is_empty()
    }

    /// New grants or openings: what needs a second look before deploying.
    pub fn broadens(&self) -> bool {
        !self.iam_added.is_empty() || !self.sg_added.is_empty()
    }
}

/// Compare the grants of two templates (`old` absent: a new stack).
pub fn compare(old: Option<&Value>, new: &Value) -> SecurityChanges {
    let (old_iam, old_sg) = old.map(extract).unwrap_or_default();
    let (new_iam, new_sg) = extract(new);
    SecurityChanges {
        iam_added: minus(&new_iam, &old_iam),
        iam_removed: minus(&old_iam, &new_iam),
        sg_added: minus(&new_sg, &old_sg),
        sg_removed: minus(&old_sg, &new_sg),
    }
}

fn minus<T: Clone + PartialEq + Ord>(a: &[T], b: &[T]) -> Vec<T> {
    let mut out: Vec<T> = a.iter().filter(|x| !b.contains(x)).cloned().collect();
    out.sort();
    out.dedup();
    out
}

fn extract(template: &Value) -> (Vec<IamStatement>, Vec<SgRule>) {
    let mut iam = Vec::new();
    let mut sg = Vec::new();
    let Some(resources) = template.get("Resources").and_then(Value::as_object) else {
        return (iam, sg);
    };
    for (id, res) in resources {
        let ty = res.get("Type").and_then(Value::as_str).unwrap_or_default();
        let props = res.get("Properties").cloned().unwrap_or(Value::Null);
        match ty {
            "AWS::IAM::Role" => {
                policy_document(id, props.get("AssumeRolePolicyDocument"), &mut iam);
                for p in list(props.get("Policies")) {
                    policy_document(id, p.get("PolicyDocument"), &mut iam);
                }
                for arn in list(props.get("ManagedPolicyArns")) {
                    iam.push(IamStatement {
                        resource: id.clone(),
                        effect: "Attach".into(),
                        actions: vec!["(managed policy)".into()],
                        resources: vec![cell(arn)],
                        principals: vec![],
                        condition: None,
                    });
                }
            }
            "AWS::IAM::Policy"
            | "AWS::IAM::ManagedPolicy"
            | "AWS::S3::BucketPolicy"
            | "AWS::SQS::QueuePolicy"
            | "AWS::SNS::TopicPolicy" => policy_document(id, props.get("PolicyDocument"), &mut iam),
            "AWS::Lambda::Permission" => {
                let mut condition = Vec::new();
                for key in ["SourceArn", "SourceAccount", "PrincipalOrgID"] {
                    if let Some(v) = props.get(key) {
                        condition.push(format!("{key}={}", cell(v)));
                    }
                }
                iam.push(IamStatement {
                    resource: id.clone(),
                    effect: "Allow".into(),
                    actions: strings(props.get("Action")),
                    resources: strings(props.get("FunctionName")),
                    principals: strings(props.get("Principal")),
                    condition: (!condition.is_empty()).then(|| condition.join(", ")),
                });
            }
            "AWS::EC2::SecurityGroup" => {
                for (key, direction) in [
                    ("SecurityGroupIngress", "ingress"),
                    ("SecurityGroupEgress", "egress"),
                ] {
                    for rule in list(props.get(key)) {
                        sg.push(sg_rule(id.clone(), direction, rule));
                    }
                }
            }
            "AWS::EC2::SecurityGroupIngress" | "AWS::EC2::SecurityGroupEgress" => {
                let direction = if ty.ends_with("Ingress") {
                    "ingress"
                } else {
                    "egress"
                };
                let group = props
                    .get("GroupId")
                    .or_else(|| props.get("GroupName"))
                    .map(cell)
                    .unwrap_or_else(|| id.clone());
                sg.push(sg_rule(group, direction, &props));
            }
            _ => {}
        }
    }
    (iam, sg)
}

fn policy_document(holder: &str, doc: Option<&Value>, out: &mut Vec<IamStatement>) {
    let Some(doc) = doc else { return };
    let statements: Vec<&Value> = match doc.get("Statement") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => return,
    };
    for s in statements {
        let negated = |plain: &str, not: &str| -> Vec<String> {
            match (s.get(plain), s.get(not)) {
                (Some(v), _) => strings(Some(v)),
                (None, Some(v)) => strings(Some(v))
                    .into_iter()
                    .map(|x| format!("NOT {x}"))
                    .collect(),
                (None, None) => vec![],
            }
        };
        out.push(IamStatement {
            resource: holder.to_string(),
            effect: s.get("Effect").map(cell).unwrap_or_else(|| "Allow".into()),
            actions: negated("Action", "NotAction"),
            resources: negated("Resource", "NotResource"),
            principals: principals(s.get("Principal").or_else(|| s.get("NotPrincipal"))),
            condition: s
                .get("Condition")
                .map(|c| serde_json::to_string(c).unwrap_or_default()),
        });
    }
}

/// `{"Service": "lambda.amazonaws.com"}` -> `Service:lambda.amazonaws.com`.
fn principals(v: Option<&Value>) -> Vec<String> {
    let mut out = match v {
        Some(Value::Object(m)) if !super::path::is_intrinsic(v.unwrap_or(&Value::Null)) => m
            .iter()
            .flat_map(|(kind, who)| {
                strings(Some(who))
                    .into_iter()
                    .map(move |w| format!("{kind}:{w}"))
            })
            .collect(),
        other => strings(other),
    };
    out.sort();
    out
}

fn sg_rule(group: String, direction: &str, rule: &Value) -> SgRule {
    let protocol = rule
        .get("IpProtocol")
        .map(cell)
        .unwrap_or_else(|| "-1".into());
    let ports = match (rule.get("FromPort").map(cell), rule.get("ToPort").map(cell)) {
        _ if protocol == "-1" => "all".to_string(),
        (Some(a), Some(b)) if a == b => a,
        (Some(a), Some(b)) => format!("{a}-{b}"),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => "all".to_string(),
    };
    let peer = [
        "CidrIp",
        "CidrIpv6",
        "SourceSecurityGroupId",
        "DestinationSecurityGroupId",
        "SourcePrefixListId",
        "DestinationPrefixListId",
        "SourceSecurityGroupName",
    ]
    .iter()
    .find_map(|k| rule.get(*k).map(cell))
    .unwrap_or_else(|| "-".into());
    SgRule {
        group,
        direction: direction.to_string(),
        protocol: if protocol == "-1" {
            "all".into()
        } else {
            protocol
        },
        ports,
        peer,
        description: rule.get("Description").map(cell),
    }
}

fn list(v: Option<&Value>) -> Vec<&Value> {
    match v {
        Some(Value::Array(a)) => a.iter().collect(),
        _ => vec![],
    }
}

/// A string or a list of them, each as a table cell; sorted so that order in
/// the template does not count as a change.
fn strings(v: Option<&Value>) -> Vec<String> {
    let mut out: Vec<String> = match v {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => a.iter().map(cell).collect(),
        Some(one) => vec![cell(one)],
    };
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn role(statements: Value) -> Value {
        json!({"Resources": {"Role": {"Type": "AWS::IAM::Role", "Properties": {
            "AssumeRolePolicyDocument": {"Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
            "Policies": [{"PolicyName": "p", "PolicyDocument": {"Version": "2012-10-17", "Statement": statements}}]
        }}}})
    }

    #[test]
    fn an_added_iam_statement_is_listed_and_nothing_else() {
        let old = role(
            json!([{"Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": {"Fn::GetAtt": ["T", "Arn"]}}]),
        );
        let new = role(json!([
            {"Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": {"Fn::GetAtt": ["T", "Arn"]}},
            {"Effect": "Allow", "Action": ["execute-api:ManageConnections", "dynamodb:Query"], "Resource": "*"}
        ]));
        let s = compare(Some(&old), &new);
        assert!(s.iam_removed.is_empty() && s.sg_added.is_empty());
        assert_eq!(
            s.iam_added,
            vec![IamStatement {
                resource: "Role".into(),
                effect: "Allow".into(),
                actions: vec![
                    "dynamodb:Query".into(),
                    "execute-api:ManageConnections".into()
                ],
                resources: vec!["*".into()],
                principals: vec![],
                condition: None,
            }]
        );
        assert!(s.broadens());
    }

    #[test]
    fn security_group_rules_added_and_removed() {
        let sg = |cidr: &str| {
            json!({"Resources": {"Sg": {"Type": "AWS::EC2::SecurityGroup", "Properties": {
                "GroupDescription": "d",
                "SecurityGroupIngress": [{"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "CidrIp": cidr}]
            }}}})
        };
        let s = compare(Some(&sg("10.0.0.0/16")), &sg("0.0.0.0/0"));
        assert_eq!(s.sg_added.len(), 1);
        assert_eq!(s.sg_added[0].peer, "0.0.0.0/0");
        assert_eq!(s.sg_added[0].ports, "5432");
        assert_eq!(s.sg_removed[0].peer, "10.0.0.0/16");
    }

    #[test]
    fn a_new_stack_adds_all_its_grants() {
        let new = role(json!([{"Effect": "Allow", "Action": "logs:*", "Resource": "*"}]));
        let s = compare(None, &new);
        assert_eq!(s.iam_added.len(), 2, "{:?}", s.iam_added);
        assert!(s
            .iam_added
            .iter()
            .any(|x| x.principals == ["Service:lambda.amazonaws.com"]));
    }
}
