//! The deployed stage as the emulator holds it: what `barkctl dev` runs. Read
//! through each service's own API (Lambda, EventBridge, API Gateway V2) and, for
//! RDS instances, from the template and parameters CloudFormation deployed them
//! with; never from `stacks/`, so what runs is what was deployed.

use std::collections::BTreeMap;
use std::time::Duration;

/// Everything `dev` runs for one stage.
#[derive(Debug, Clone, Default)]
pub struct DeployedStage {
    /// barkctl's stage name (`local`).
    pub stage: String,
    pub region: String,
    /// The emulator's endpoint (`http://127.0.0.1:4566`).
    pub endpoint_url: String,
    pub functions: Vec<Function>,
    pub mappings: Vec<StreamMapping>,
    pub rules: Vec<ScheduleRule>,
    pub websocket_apis: Vec<WebSocketApi>,
    pub databases: Vec<Database>,
}

/// A Lambda function of the stage (GetFunctionConfiguration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// Deployed name: `barkbase-local-realtime-connect`.
    pub name: String,
    pub arn: String,
    /// barkctl's stack key (`realtime`) and function key (`connect`), from the
    /// function's name `{app}-{stage}-{stack}-{function}` and the stack's resources.
    pub stack: String,
    pub key: String,
    pub environment: BTreeMap<String, String>,
    pub timeout: Duration,
    pub memory_mb: u32,
    pub handler: String,
    pub architecture: String,
    pub code_sha256: String,
    /// The bundle's S3 location (`<bucket>`, `<app>/<sha256>.zip`): the key names
    /// the binary's sha256.
    pub code_bucket: Option<String>,
    pub code_key: Option<String>,
}

/// A DynamoDB stream -> Lambda event source mapping (ListEventSourceMappings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamMapping {
    pub uuid: String,
    /// Deployed function name the mapping invokes.
    pub function_name: String,
    pub stream_arn: String,
    pub batch_size: u32,
    pub batching_window: Duration,
    /// `MaximumRetryAttempts`; `None` = -1, retry until the record expires.
    pub max_retries: Option<u32>,
    pub bisect_on_error: bool,
    pub report_batch_item_failures: bool,
    pub enabled: bool,
    /// `TRIM_HORIZON` or `LATEST`.
    pub starting_position: String,
}

/// An EventBridge rule with a schedule (ListRules + ListTargetsByRule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleRule {
    pub name: String,
    pub arn: String,
    /// `cron(0 2 * * ? *)` or `rate(5 minutes)`.
    pub schedule_expression: String,
    pub enabled: bool,
    pub targets: Vec<RuleTarget>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleTarget {
    pub id: String,
    /// Deployed function name (the target ARN's last segment); non-Lambda targets
    /// are left out when the stage is read.
    pub function_name: String,
    /// The target's constant `Input` JSON, when set (else the scheduled event).
    pub input: Option<String>,
}

/// A `WEBSOCKET` API of API Gateway V2 with its routes and stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSocketApi {
    pub api_id: String,
    pub name: String,
    /// `$request.body.action`.
    pub route_selection_expression: String,
    /// The API Gateway stage name (the URL's path segment).
    pub stage: String,
    /// Route key (`$connect`, `$disconnect`, `$default`, `broadcast`) -> the
    /// deployed name of the function its Lambda proxy integration calls.
    pub routes: BTreeMap<String, String>,
}

/// An RDS PostgreSQL instance of the stage: the local server stands in for it.
/// Its engine, port and database name come from the deployed template (with the
/// stack's parameter values for a `Ref`), not from the RDS API: barkctl does
/// without the RDS SDK, the largest crate of its build (44 s of a cold build's
/// CPU on this machine), and a template says all `dev` needs of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    /// The DB instance identifier; its endpoint address is
    /// `<instance_id>.<hash>.<region>.rds.amazonaws.com` (see `is_endpoint`).
    pub instance_id: String,
    pub port: u16,
    pub db_name: Option<String>,
    /// The master credentials' secret (from the stack's secret target attachment),
    /// when one is found.
    pub secret_arn: Option<String>,
}

/// A failed read of the deployed stage.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{service} `{operation}` failed: {message}")]
    Aws {
        service: &'static str,
        operation: &'static str,
        message: String,
    },
}

fn aws_err<E>(
    service: &'static str,
    operation: &'static str,
) -> impl FnOnce(
    aws_sdk_cloudformation::error::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> ReadError
where
    E: aws_sdk_cloudformation::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    move |e| ReadError::Aws {
        service,
        operation,
        message: crate::aws::describe_error(&e),
    }
}

/// Read the stacks `{app}-{stage}-*` and what they created, through each
/// service's API. A stage with no stack deployed reads as empty.
pub async fn read(
    sdk: &aws_config::SdkConfig,
    app: &str,
    stage: &str,
) -> Result<DeployedStage, ReadError> {
    let cfn = crate::aws::cloudformation(sdk);
    let prefix = format!("{app}-{stage}-");
    let mut out = DeployedStage {
        stage: stage.to_string(),
        region: sdk
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "us-east-1".into()),
        endpoint_url: sdk.endpoint_url().unwrap_or_default().to_string(),
        ..DeployedStage::default()
    };
    let mut stacks = Vec::new();
    let mut pages = cfn.describe_stacks().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(aws_err("CloudFormation", "DescribeStacks"))?;
        for s in page.stacks() {
            let name = s.stack_name().unwrap_or_default();
            let gone = matches!(
                s.stack_status(),
                Some(aws_sdk_cloudformation::types::StackStatus::DeleteComplete)
            );
            if let Some(key) = name.strip_prefix(&prefix) {
                if !gone {
                    let parameters = crate::deploy::cfn::parameters_of(s);
                    stacks.push((key.to_string(), name.to_string(), parameters));
                }
            }
        }
    }
    let lambda = aws_sdk_lambda::Client::new(sdk);
    let mut function_arns = BTreeMap::new();
    for (key, stack_name, parameters) in &stacks {
        let res = cfn
            .describe_stack_resources()
            .stack_name(stack_name)
            .send()
            .await
            .map_err(aws_err("CloudFormation", "DescribeStackResources"))?;
        let mut secrets = Vec::new();
        let mut instances = Vec::new();
        for r in res.stack_resources() {
            let physical = r.physical_resource_id().unwrap_or_default().to_string();
            match r.resource_type().unwrap_or_default() {
                "AWS::Lambda::Function" if !physical.is_empty() => {
                    let f = read_function(&lambda, &physical, key, &prefix).await?;
                    function_arns.insert(f.arn.clone(), f.name.clone());
                    out.functions.push(f);
                }
                "AWS::ApiGatewayV2::Api" if !physical.is_empty() => {
                    if let Some(api) = read_websocket_api(sdk, &physical).await? {
                        out.websocket_apis.push(api);
                    }
                }
                "AWS::RDS::DBInstance" if !physical.is_empty() => instances.push((
                    r.logical_resource_id().unwrap_or_default().to_string(),
                    physical,
                )),
                "AWS::SecretsManager::Secret" if !physical.is_empty() => secrets.push(physical),
                _ => {}
            }
        }
        if !instances.is_empty() {
            let template = crate::deploy::cfn::get_template(&cfn, stack_name)
                .await
                .map_err(|e| ReadError::Aws {
                    service: "CloudFormation",
                    operation: "GetTemplate",
                    // The service's code and message, without the deploy layer's
                    // own "GetTemplate failed for …" around them.
                    message: match e {
                        crate::deploy::Error::Aws { message, .. } => message,
                        other => other.to_string(),
                    },
                })?
                .unwrap_or_default();
            for (logical, id) in instances {
                if let Some(mut db) = database_of(&template, parameters, &logical, &id) {
                    db.secret_arn = secrets.first().cloned();
                    out.databases.push(db);
                }
            }
        }
    }
    out.functions.sort_by(|a, b| a.name.cmp(&b.name));
    out.mappings = read_mappings(&lambda, &function_arns).await?;
    out.rules = read_rules(sdk, &function_arns).await?;
    Ok(out)
}

async fn read_function(
    lambda: &aws_sdk_lambda::Client,
    name: &str,
    stack: &str,
    prefix: &str,
) -> Result<Function, ReadError> {
    let f = lambda
        .get_function()
        .function_name(name)
        .send()
        .await
        .map_err(aws_err("Lambda", "GetFunction"))?;
    let c = f.configuration();
    let environment = c
        .and_then(|c| c.environment())
        .and_then(|e| e.variables())
        .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    // moto answers `https://awslambda-<region>-tasks.s3.<region>.amazonaws.com/<key>`.
    let location = f.code().and_then(|c| c.location()).unwrap_or_default();
    let code_key = location
        .split_once(".amazonaws.com/")
        .map(|(_, k)| k.to_string())
        .filter(|k| !k.is_empty());
    let key = name
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix(stack))
        .and_then(|rest| rest.strip_prefix('-'))
        .unwrap_or(name)
        .to_string();
    Ok(Function {
        name: name.to_string(),
        arn: c
            .and_then(|c| c.function_arn())
            .unwrap_or_default()
            .to_string(),
        stack: stack.to_string(),
        key,
        environment,
        timeout: Duration::from_secs(c.and_then(|c| c.timeout()).unwrap_or(3).max(1) as u64),
        memory_mb: c.and_then(|c| c.memory_size()).unwrap_or(128).max(128) as u32,
        handler: c
            .and_then(|c| c.handler())
            .unwrap_or("bootstrap")
            .to_string(),
        architecture: c
            .map(|c| c.architectures())
            .and_then(|a| a.first())
            .map(|a| a.as_str().to_string())
            .unwrap_or_else(|| "x86_64".into()),
        code_sha256: c
            .and_then(|c| c.code_sha256())
            .unwrap_or_default()
            .to_string(),
        code_bucket: None,
        code_key,
    })
}

async fn read_mappings(
    lambda: &aws_sdk_lambda::Client,
    functions: &BTreeMap<String, String>,
) -> Result<Vec<StreamMapping>, ReadError> {
    let mut out = Vec::new();
    let mut pages = lambda.list_event_source_mappings().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(aws_err("Lambda", "ListEventSourceMappings"))?;
        for m in page.event_source_mappings() {
            let arn = m.function_arn().unwrap_or_default();
            let Some(function_name) = functions.get(arn).cloned().or_else(|| {
                functions
                    .values()
                    .find(|n| arn.ends_with(&format!(":{n}")))
                    .cloned()
            }) else {
                continue;
            };
            let stream_arn = m.event_source_arn().unwrap_or_default().to_string();
            if !stream_arn.contains(":dynamodb:") {
                continue;
            }
            let retries = m.maximum_retry_attempts().unwrap_or(-1);
            out.push(StreamMapping {
                uuid: m.uuid().unwrap_or_default().to_string(),
                function_name,
                stream_arn,
                batch_size: m.batch_size().unwrap_or(100).max(1) as u32,
                batching_window: Duration::from_secs(
                    m.maximum_batching_window_in_seconds().unwrap_or(0).max(0) as u64,
                ),
                max_retries: (retries >= 0).then_some(retries as u32),
                bisect_on_error: m.bisect_batch_on_function_error().unwrap_or(false),
                report_batch_item_failures: m
                    .function_response_types()
                    .iter()
                    .any(|t| t.as_str() == "ReportBatchItemFailures"),
                enabled: !matches!(m.state(), Some("Disabled") | Some("Disabling")),
                starting_position: m
                    .starting_position()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_else(|| "LATEST".into()),
            });
        }
    }
    Ok(out)
}

async fn read_rules(
    sdk: &aws_config::SdkConfig,
    functions: &BTreeMap<String, String>,
) -> Result<Vec<ScheduleRule>, ReadError> {
    let events = aws_sdk_eventbridge::Client::new(sdk);
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = events
            .list_rules()
            .set_next_token(token)
            .send()
            .await
            .map_err(aws_err("EventBridge", "ListRules"))?;
        for r in page.rules() {
            let Some(expr) = r.schedule_expression() else {
                continue;
            };
            let name = r.name().unwrap_or_default().to_string();
            let targets = events
                .list_targets_by_rule()
                .rule(&name)
                .send()
                .await
                .map_err(aws_err("EventBridge", "ListTargetsByRule"))?;
            let targets: Vec<RuleTarget> = targets
                .targets()
                .iter()
                .filter_map(|t| {
                    let arn = t.arn();
                    let function_name = functions.get(arn).cloned()?;
                    Some(RuleTarget {
                        id: t.id().to_string(),
                        function_name,
                        input: t.input().map(str::to_string),
                    })
                })
                .collect();
            if targets.is_empty() {
                continue;
            }
            out.push(ScheduleRule {
                name,
                arn: r.arn().unwrap_or_default().to_string(),
                schedule_expression: expr.to_string(),
                enabled: matches!(
                    r.state(),
                    Some(aws_sdk_eventbridge::types::RuleState::Enabled)
                ),
                targets,
            });
        }
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

async fn read_websocket_api(
    sdk: &aws_config::SdkConfig,
    api_id: &str,
) -> Result<Option<WebSocketApi>, ReadError> {
    let gw = aws_sdk_apigatewayv2::Client::new(sdk);
    let api = gw
        .get_api()
        .api_id(api_id)
        .send()
        .await
        .map_err(aws_err("ApiGatewayV2", "GetApi"))?;
    if api.protocol_type().map(|p| p.as_str()) != Some("WEBSOCKET") {
        return Ok(None);
    }
    let integrations = gw
        .get_integrations()
        .api_id(api_id)
        .send()
        .await
        .map_err(aws_err("ApiGatewayV2", "GetIntegrations"))?;
    let targets: BTreeMap<String, String> = integrations
        .items()
        .iter()
        .filter_map(|i| {
            let uri = i.integration_uri()?;
            Some((i.integration_id()?.to_string(), function_name_of_uri(uri)?))
        })
        .collect();
    let routes = gw
        .get_routes()
        .api_id(api_id)
        .send()
        .await
        .map_err(aws_err("ApiGatewayV2", "GetRoutes"))?;
    let routes = routes
        .items()
        .iter()
        .filter_map(|r| {
            let target = r.target()?.strip_prefix("integrations/")?;
            Some((r.route_key()?.to_string(), targets.get(target)?.clone()))
        })
        .collect();
    let stages = gw
        .get_stages()
        .api_id(api_id)
        .send()
        .await
        .map_err(aws_err("ApiGatewayV2", "GetStages"))?;
    let stage = stages
        .items()
        .first()
        .and_then(|s| s.stage_name().map(str::to_string))
        .unwrap_or_else(|| "$default".into());
    Ok(Some(WebSocketApi {
        api_id: api_id.to_string(),
        name: api.name().unwrap_or_default().to_string(),
        route_selection_expression: api
            .route_selection_expression()
            .unwrap_or("$request.body.action")
            .to_string(),
        stage,
        routes,
    }))
}

/// `arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/<fn arn>/invocations`
/// -> the function's name.
pub fn function_name_of_uri(uri: &str) -> Option<String> {
    let arn = uri
        .split_once("/functions/")
        .map(|(_, rest)| rest.trim_end_matches("/invocations"))
        .unwrap_or(uri);
    let mut parts = arn.split(':');
    let name = parts.nth(6)?;
    (!name.is_empty()).then(|| name.to_string())
}

/// The PostgreSQL instance `logical` of a deployed template (`None`: another
/// engine). A property that is a `Ref` to a parameter takes the stack's value.
fn database_of(
    template: &serde_json::Value,
    parameters: &BTreeMap<String, String>,
    logical: &str,
    instance_id: &str,
) -> Option<Database> {
    let props = &template["Resources"][logical]["Properties"];
    let value = |key: &str| -> Option<String> {
        match &props[key] {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            v => parameters.get(v["Ref"].as_str()?).cloned(),
        }
    };
    if !value("Engine")?.contains("postgres") {
        return None;
    }
    Some(Database {
        instance_id: instance_id.to_string(),
        port: value("Port").and_then(|p| p.parse().ok()).unwrap_or(5432),
        db_name: value("DBName"),
        secret_arn: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postgres_instance_is_read_from_its_template_with_parameter_values() {
        let template = serde_json::json!({"Resources": {
            "Db": {"Type": "AWS::RDS::DBInstance", "Properties": {
                "Engine": "postgres", "Port": "6543", "DBName": {"Ref": "DbName"}}},
            "Other": {"Type": "AWS::RDS::DBInstance", "Properties": {"Engine": "mysql"}},
            "Bare": {"Type": "AWS::RDS::DBInstance", "Properties": {"Engine": {"Ref": "Engine"}}}
        }});
        let params = BTreeMap::from([
            ("DbName".to_string(), "barkbase".to_string()),
            ("Engine".to_string(), "aurora-postgresql".to_string()),
        ]);
        assert_eq!(
            database_of(&template, &params, "Db", "db-1"),
            Some(Database {
                instance_id: "db-1".into(),
                port: 6543,
                db_name: Some("barkbase".into()),
                secret_arn: None,
            })
        );
        assert_eq!(database_of(&template, &params, "Other", "db-2"), None);
        let bare = database_of(&template, &params, "Bare", "db-3").expect("postgres");
        assert_eq!((bare.port, bare.db_name), (5432, None));
        assert_eq!(database_of(&template, &params, "Missing", "db-4"), None);
    }

    #[test]
    fn integration_uri_names_the_function() {
        assert_eq!(
            function_name_of_uri("arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:barkbase-local-realtime-connect/invocations").as_deref(),
            Some("barkbase-local-realtime-connect")
        );
        assert_eq!(
            function_name_of_uri("arn:aws:lambda:us-east-1:123456789012:function:f").as_deref(),
            Some("f")
        );
        assert_eq!(function_name_of_uri("nonsense"), None);
    }
}
