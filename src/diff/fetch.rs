//! The effectful half of `barkctl diff`: read what is deployed (DescribeStacks,
//! GetTemplate), compare, and with `--method change-set|auto` read a change set's
//! own replacement verdicts. Read-only by construction: the one mutating call,
//! CreateChangeSet, is always followed by DeleteChangeSet, and is never made for a
//! stack that does not exist (a CREATE change set would leave a stack record).
//! A template over 51,200 bytes goes to the change set by URL, uploaded to the
//! toolkit's asset bucket first exactly as deploy uploads it
//! (`deploy::assets::template_source`: content-addressed, so the deploy that
//! follows finds it there).

use std::collections::BTreeMap;

use aws_sdk_cloudformation::Client;
use serde_json::Value;

use super::compare::{self, New, Old};
use super::model::{
    ChangeKind, Impact, Method, NewValue, PathChange, Replacement, ResourceChange, StackDiff,
    StackStatus,
};
use super::resolve::{self, DeployedStack};
use super::{classify, Error};
use crate::aws::{self, Target};
use crate::cli::DiffMethod;
use crate::deploy::cfn::{self, ChangeSetRequest, ChangeSetResult};
use crate::plan::{Change, ChangeAction};
use crate::project::{Project, Stage};
use crate::render::{ParamSource, Rendered};

/// CloudFormation's limit for an inline TemplateBody.
const MAX_TEMPLATE_BODY: usize = aws::INLINE_TEMPLATE_LIMIT;

/// Where a template too large to send inline goes: the toolkit's asset bucket.
struct Upload<'a> {
    s3: aws_sdk_s3::Client,
    bucket: Option<&'a str>,
    region: &'a str,
    app: &'a str,
}

/// What to compare.
pub struct Request<'a> {
    pub target: &'a Target,
    pub project: &'a Project,
    pub stage: &'a Stage,
    /// The selected stacks, rendered, in deploy order.
    pub rendered: &'a [Rendered],
    pub method: DiffMethod,
}

/// Compare every rendered stack with what is deployed.
pub async fn diff_stacks(req: Request<'_>) -> Result<Vec<StackDiff>, Error> {
    let sdk = aws::sdk_config(req.target).await;
    // With `BARKCTL_CALL_LOG` set, every call is logged: tests check diff's
    // read-only promise with it.
    let client = aws::cloudformation(&sdk);

    // Each selected stack and every stack it takes outputs from, read at once.
    let mut names: Vec<String> = Vec::new();
    for r in req.rendered {
        names.push(r.stack_name.clone());
        if let Some(stack) = req.project.stacks.get(&r.stack) {
            for up in stack.needs.keys() {
                names.push(req.project.stack_name(&req.stage.name, up));
            }
        }
    }
    // Deploy passes the toolkit stack's bucket as `AssetsBucket`, and puts
    // templates too large to send inline there.
    let toolkit = crate::deploy::assets::toolkit_stack_name(&req.project.app);
    if req.rendered.iter().any(|r| {
        r.parameters
            .values()
            .any(|p| *p == ParamSource::AssetsBucket)
            || serde_json::to_string(&r.template).map_or(0, |s| s.len()) > MAX_TEMPLATE_BODY
    }) {
        names.push(toolkit.clone());
    }
    names.sort();
    names.dedup();
    let fetched =
        futures::future::try_join_all(names.iter().map(|n| read_stack(&client, n))).await?;
    let deployed: BTreeMap<String, Option<DeployedStack>> =
        names.into_iter().zip(fetched).collect();
    let lookup = |name: &str| deployed.get(name).and_then(Option::as_ref);
    let upload = Upload {
        s3: aws::s3(&sdk),
        bucket: lookup(&toolkit)
            .and_then(|t| t.outputs.get(crate::deploy::assets::BUCKET_OUTPUT))
            .map(String::as_str),
        region: &req.target.region,
        app: &req.project.app,
    };

    let mut out = Vec::new();
    for r in req.rendered {
        let own = lookup(&r.stack_name);
        let bucket = lookup(&toolkit)
            .and_then(|t| t.outputs.get(crate::deploy::assets::BUCKET_OUTPUT))
            .map(String::as_str);
        let values = resolve::new_values(r, own, bucket, |up| {
            lookup(&req.project.stack_name(&req.stage.name, up))
        });
        let old = own.map(|d| Old {
            template: &d.template,
            parameters: &d.parameters,
            tags: &d.tags,
        });
        let tags = req
            .project
            .stacks
            .get(&r.stack)
            .map(|s| req.project.tags_for(s, req.stage))
            .unwrap_or_default();
        let mut diff = compare::compare(
            &r.stack_name,
            &r.stack,
            old,
            New {
                template: &r.template,
                parameters: &values,
                tags: &tags,
            },
        );
        if let Some(d) = own {
            if d.status.ends_with("_IN_PROGRESS") {
                diff.notes.push(format!(
                    "the stack is {}: compared with the template it is moving to",
                    d.status
                ));
            } else if d.status.ends_with("_FAILED") {
                diff.notes.push(format!(
                    "the stack is {}: a deploy must repair it first",
                    d.status
                ));
            }
        }
        if let (Some(d), true) = (own, diff.status == StackStatus::Changed) {
            if req.method != DiffMethod::Template {
                review(&client, &upload, &mut diff, r, &values, d, req.method).await?;
            }
        }
        out.push(diff);
    }
    Ok(out)
}

/// The stack as deployed, or `None` when there is nothing deployed to compare
/// with (never created, deleted, only a never-executed CREATE change set, or a
/// failed create that deploy deletes and recreates).
async fn read_stack(client: &Client, name: &str) -> Result<Option<DeployedStack>, Error> {
    let Some(stack) = cfn::describe(client, name)
        .await
        .map_err(|e| cfn_error(name, "describe stack", e))?
    else {
        return Ok(None);
    };
    let status = stack
        .stack_status()
        .map(|s| s.as_str().to_string())
        .unwrap_or_default();
    if matches!(
        status.as_str(),
        "DELETE_COMPLETE" | "REVIEW_IN_PROGRESS" | "ROLLBACK_COMPLETE"
    ) {
        return Ok(None);
    }
    let body = cfn::template_body(client, name)
        .await
        .map_err(|e| cfn_error(name, "get the template of", e))?
        .unwrap_or_default();
    // Unlike deploy (which rewrites a template it cannot read), diff has
    // nothing to compare with: an error naming the line.
    let template = crate::render::cfn_yaml::parse(&body).map_err(|e| Error::DeployedTemplate {
        stack: name.to_string(),
        message: match e.line {
            Some(l) => format!("line {l}: {}", e.message),
            None => e.message,
        },
    })?;
    Ok(Some(DeployedStack {
        status,
        template,
        parameters: cfn::parameters_of(&stack),
        outputs: cfn::outputs_of(&stack),
        tags: cfn::tags_of(&stack),
    }))
}

/// An error of the CloudFormation layer in diff's words: the operation as diff
/// names it, the service's own message.
fn cfn_error(stack: &str, operation: &'static str, e: crate::deploy::Error) -> Error {
    Error::Aws {
        stack: stack.to_string(),
        operation,
        message: cfn_message(e),
    }
}

fn cfn_message(e: crate::deploy::Error) -> String {
    match e {
        crate::deploy::Error::Aws { message, .. } => message,
        other => other.to_string(),
    }
}

enum Review {
    Changes(Vec<Change>),
    NoChanges,
    /// The change set could not be made; the reason becomes a note.
    Unavailable(String),
}

/// Create a change set, read it, delete it, and let it override the local
/// classification where it carries `Replacement`. With `auto`, anything that
/// stops the change set (an emulator without support, a permission) falls back
/// to the template method with a note; only a change set left behind is an error.
async fn review(
    client: &Client,
    upload: &Upload<'_>,
    diff: &mut StackDiff,
    rendered: &Rendered,
    values: &BTreeMap<String, NewValue>,
    deployed: &DeployedStack,
    method: DiffMethod,
) -> Result<(), Error> {
    let outcome = change_set(
        client,
        upload,
        &rendered.stack_name,
        &rendered.template,
        values,
        deployed,
    )
    .await;
    let fallback = "classified from the resource schemas";
    match outcome {
        Ok(Review::Changes(changes)) => {
            if apply(diff, &changes) {
                diff.method = Method::ChangeSet;
            } else {
                diff.notes.push(format!(
                    "the endpoint's change set carries no `Replacement` data: {fallback}"
                ));
            }
        }
        Ok(Review::NoChanges) => diff.notes.push(
            "the change set lists no resource changes (parameter or output changes only)".into(),
        ),
        Ok(Review::Unavailable(why)) => {
            diff.notes.push(format!("no change set: {why}; {fallback}"))
        }
        Err(e @ Error::ChangeSetLeft { .. }) => return Err(e),
        Err(e) if method == DiffMethod::Auto => {
            diff.notes.push(format!("no change set ({e}); {fallback}"))
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

async fn change_set(
    client: &Client,
    upload: &Upload<'_>,
    stack: &str,
    template: &Value,
    values: &BTreeMap<String, NewValue>,
    deployed: &DeployedStack,
) -> Result<Review, Error> {
    let body = serde_json::to_string(template).unwrap_or_default();
    if body.len() > MAX_TEMPLATE_BODY && upload.bucket.is_none() {
        return Ok(Review::Unavailable(format!(
            "the template is {} bytes, over the {MAX_TEMPLATE_BODY} a change set takes inline, and no toolkit bucket is deployed to upload it to (`barkctl bootstrap`)",
            body.len()
        )));
    }
    let mut parameters = BTreeMap::new();
    let mut previous = Vec::new();
    for (name, value) in values {
        match value {
            NewValue::Known(v) => {
                parameters.insert(name.clone(), v.clone());
            }
            NewValue::KnownAfterDeploy if deployed.parameters.contains_key(name) => {
                previous.push(name.clone())
            }
            NewValue::KnownAfterDeploy => {
                return Ok(Review::Unavailable(format!(
                    "parameter `{name}` is known only after deploy"
                )));
            }
        }
    }
    // Uploaded only once the change set can be made (parameters known).
    let source = crate::deploy::assets::template_source(
        &upload.s3,
        upload.bucket,
        upload.region,
        upload.app,
        stack,
        body,
    )
    .await
    .map_err(|e| cfn_error(stack, "upload the template of", e))?;
    let name = cfn::change_set_name();
    let req = ChangeSetRequest {
        stack_name: stack,
        change_set_name: &name,
        description: Some("barkctl diff: read, then deleted"),
        create: false,
        template: &source,
        parameters: &parameters,
        previous: &previous,
        // Tags are compared from the stack; the change set is never executed.
        tags: &deployed.tags,
    };
    let (id, changes) = match cfn::create_change_set(client, &req).await {
        // AWS makes a FAILED change set for a no-op (deleted again); moto
        // refuses at once.
        Ok(ChangeSetResult::NoChanges) => return Ok(Review::NoChanges),
        Ok(ChangeSetResult::Ready { id, changes }) => (id, changes),
        Err(crate::deploy::Error::StackFailed { summary, .. }) => {
            return Err(Error::ChangeSet {
                stack: stack.to_string(),
                change_set: name.clone(),
                problem: summary
                    .strip_prefix("change set ")
                    .unwrap_or(&summary)
                    .to_string(),
            })
        }
        Err(crate::deploy::Error::WaitTimeout { waited, .. }) => {
            return Err(Error::ChangeSet {
                stack: stack.to_string(),
                change_set: name.clone(),
                problem: format!("did not settle within {} s", waited.as_secs()),
            })
        }
        Err(e) => return Err(cfn_error(stack, "create a change set for", e)),
    };
    // Whatever it holds, the change set goes: diff must leave no trace.
    if let Err(e) = cfn::try_delete_change_set(client, stack, &id).await {
        return Err(Error::ChangeSetLeft {
            stack: stack.to_string(),
            change_set: name,
            message: cfn_message(e),
        });
    }
    Ok(Review::Changes(changes))
}

/// Let the change set's verdicts win. `false` when it has none to give (modified
/// resources without `Replacement`, as moto reports them).
fn apply(diff: &mut StackDiff, changes: &[Change]) -> bool {
    let modified: Vec<&Change> = changes
        .iter()
        .filter(|c| c.action == ChangeAction::Modify)
        .collect();
    if !modified.is_empty() && modified.iter().all(|c| c.replacement.is_none()) {
        return false;
    }
    for c in modified {
        let Some(rep) = &c.replacement else { continue };
        let impact = match rep.as_str() {
            "True" => Impact::Replace,
            "Conditional" => Impact::MayReplace,
            _ => Impact::InPlace,
        };
        let idx = match diff
            .resources
            .iter()
            .position(|r| r.logical_id == c.logical_id)
        {
            Some(i) => i,
            None => {
                // A change the template text does not show (a dynamic reference,
                // a parameter barkctl could not resolve): list what the change set says.
                diff.resources.push(ResourceChange {
                    logical_id: c.logical_id.clone(),
                    stateful: classify::is_stateful(&c.resource_type),
                    resource_type: c.resource_type.clone(),
                    change: ChangeKind::Modified,
                    impact,
                    properties: c
                        .details
                        .iter()
                        .map(|d| PathChange {
                            path: d.path.clone(),
                            old: None,
                            new: None,
                            replacement: match d.recreation.as_deref() {
                                Some("Always") => Replacement::Always,
                                Some("Conditionally") => Replacement::Conditional,
                                _ => Replacement::Never,
                            },
                            via_parameter: None,
                        })
                        .collect(),
                    classified_by: Method::ChangeSet,
                    scope: Vec::new(),
                    note: Some("shown by the change set only".into()),
                });
                diff.resources.len() - 1
            }
        };
        let r = &mut diff.resources[idx];
        r.impact = impact;
        r.classified_by = Method::ChangeSet;
        r.scope = c.scope.clone();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::compare::{compare, New, Old};
    use serde_json::json;

    fn diff() -> StackDiff {
        let old = json!({"Resources": {"Fn": {"Type": "AWS::Lambda::Function", "Properties": {"MemorySize": 512}}}});
        let new = json!({"Resources": {"Fn": {"Type": "AWS::Lambda::Function", "Properties": {"MemorySize": 1024}}}});
        let none = BTreeMap::new();
        compare(
            "app-dev-s",
            "s",
            Some(Old {
                template: &old,
                parameters: &none,
                tags: &none,
            }),
            New {
                template: &new,
                parameters: &BTreeMap::new(),
                tags: &none,
            },
        )
    }

    fn change(id: &str, ty: &str, replacement: Option<&str>) -> Change {
        Change {
            action: ChangeAction::Modify,
            logical_id: id.into(),
            resource_type: ty.into(),
            replacement: replacement.map(str::to_string),
            scope: vec!["Properties".into()],
            details: vec![crate::plan::ChangeDetail {
                path: "Properties.TableName".into(),
                recreation: Some("Always".into()),
            }],
        }
    }

    #[test]
    fn a_change_sets_replacement_wins_over_the_schema() {
        let mut d = diff();
        assert_eq!(d.resources[0].impact, Impact::InPlace);
        let used = apply(
            &mut d,
            &[
                change("Fn", "AWS::Lambda::Function", Some("True")),
                change("Table", "AWS::DynamoDB::Table", Some("Conditional")),
            ],
        );
        assert!(used);
        assert_eq!(
            (d.resources[0].impact, d.resources[0].classified_by),
            (Impact::Replace, Method::ChangeSet)
        );
        let t = &d.resources[1];
        assert_eq!(
            (t.logical_id.as_str(), t.impact, t.stateful),
            ("Table", Impact::MayReplace, true)
        );
        assert_eq!(t.properties[0].replacement, Replacement::Always);
    }

    #[test]
    fn a_change_set_without_replacement_data_is_not_used() {
        let mut d = diff();
        assert!(!apply(
            &mut d,
            &[change("Fn", "AWS::Lambda::Function", None)]
        ));
        assert_eq!(
            (d.resources[0].impact, d.resources[0].classified_by),
            (Impact::InPlace, Method::Template)
        );
    }
}
