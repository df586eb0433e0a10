//! The deployed stage as the emulator holds it: what `barkctl dev` runs. Read
//! through each service's own API (Lambda, EventBridge, API Gateway V2, RDS),
//! never from `stacks/`, so what runs is what was deployed.

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    pub instance_id: String,
    /// The endpoint address the emulator made up; functions that were given it
    /// are pointed at the local server instead.
    pub address: String,
    pub port: u16,
    pub db_name: Option<String>,
    /// The master credentials' secret (from the stack's secret target attachment),
    /// when one is found.
    pub secret_arn: Option<String>,
}
