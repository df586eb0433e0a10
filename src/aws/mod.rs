//! AWS access made explicit: one `SdkConfig` from `--profile`, `--region` and
//! `--endpoint-url` (or the stage's), with an explicit retry config, and the
//! error text barkctl prints for a failed call (service code and message).
//! With `BARKCTL_CALL_LOG=<file>` set, every SDK operation barkctl starts is
//! appended to that file as `Service.Operation` (see [`CallLog`]): tests count
//! mutating calls with it.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

use crate::project::{Project, Stage};

/// The emulator's address for `local: true` stages without an `endpoint_url`.
pub const LOCAL_ENDPOINT: &str = "http://127.0.0.1:4566";

/// Where AWS calls go, resolved from flags first, then the stage, then project.yaml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub region: String,
    pub endpoint_url: Option<String>,
    pub profile: Option<String>,
    /// A local emulator: dummy credentials are used when none are configured.
    pub local: bool,
}

impl Target {
    pub fn resolve(
        project: &Project,
        stage: &Stage,
        region: Option<&str>,
        endpoint_url: Option<&str>,
        profile: Option<&str>,
    ) -> Self {
        let endpoint_url = endpoint_url
            .map(str::to_string)
            .or_else(|| stage.endpoint_url.clone())
            .or_else(|| stage.local.then(|| LOCAL_ENDPOINT.to_string()));
        Target {
            region: region
                .map(str::to_string)
                .unwrap_or_else(|| project.region_for(stage)),
            endpoint_url,
            profile: profile
                .map(str::to_string)
                .or_else(|| stage.profile.clone()),
            local: stage.local,
        }
    }
}

/// Build the SDK config for `target`. Throttling and transient errors are
/// retried (standard mode, 5 attempts); each attempt times out after 60 s.
pub async fn sdk_config(target: &Target) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(target.region.clone()))
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(5)
                .with_initial_backoff(Duration::from_millis(200)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(60))
                .build(),
        );
    if let Some(profile) = &target.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(url) = &target.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if target.local && !has_env_credentials() {
        loader = loader.credentials_provider(aws_sdk_cloudformation::config::Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "barkctl-local",
        ));
    }
    loader.load().await
}

fn has_env_credentials() -> bool {
    std::env::var_os("AWS_ACCESS_KEY_ID").is_some()
}

/// `Code: message` of an SDK error, the way people see it in the console. An
/// endpoint that answers with something the SDK cannot read (an HTML error page,
/// a JSON body on a query-protocol API: moto does both) is described by its HTTP
/// status and what its body says.
pub fn describe_error<E>(
    err: &aws_sdk_cloudformation::error::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> String
where
    E: aws_sdk_cloudformation::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_cloudformation::error::SdkError;
    match err {
        SdkError::ServiceError(se) => {
            let e = se.err();
            match (e.code(), e.message()) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) if c != "Unknown" => c.to_string(),
                (None, Some(m)) => m.to_string(),
                _ => body_message(se.raw()),
            }
        }
        SdkError::DispatchFailure(d) => format!("cannot reach the endpoint: {d:?}"),
        SdkError::TimeoutError(_) => "the request timed out".to_string(),
        SdkError::ResponseError(r) => body_message(r.raw()),
        other => format!("{other}"),
    }
}

/// `HTTP 500: <what the body says>`: a JSON `__type`/`message`, else the text of
/// an HTML page, shortened.
fn body_message(resp: &aws_smithy_runtime_api::client::orchestrator::HttpResponse) -> String {
    let status = resp.status().as_u16();
    let body = resp
        .body()
        .bytes()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    if let Ok(serde_json::Value::Object(m)) = serde_json::from_str::<serde_json::Value>(&body) {
        let text = |k: &str| m.get(k).and_then(serde_json::Value::as_str);
        let code = text("__type").or(text("code")).or(text("Code"));
        if let Some(msg) = text("message").or(text("Message")) {
            return match code {
                Some(c) => format!("{c}: {msg}"),
                None => format!("HTTP {status}: {msg}"),
            };
        }
    }
    let mut plain = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                plain.push(' ');
            }
            c if !in_tag => plain.push(c),
            _ => {}
        }
    }
    let words: Vec<&str> = plain.split_whitespace().collect();
    let mut text = words.join(" ");
    if text.len() > 300 {
        let mut cut = 300;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    if text.is_empty() {
        format!("HTTP {status} with an empty body")
    } else {
        format!("HTTP {status}: {text}")
    }
}

/// The AWS error code of a failed call (`ValidationError`, `Throttling`, ...).
pub fn error_code<E, R>(err: &aws_sdk_cloudformation::error::SdkError<E, R>) -> Option<String>
where
    E: aws_sdk_cloudformation::error::ProvideErrorMetadata,
{
    match err {
        aws_sdk_cloudformation::error::SdkError::ServiceError(se) => {
            se.err().code().map(str::to_string)
        }
        _ => None,
    }
}

/// Throttling errors that survived the SDK's own retries (standard mode).
pub fn is_throttling(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "Throttling"
                | "ThrottlingException"
                | "TooManyRequestsException"
                | "RequestLimitExceeded"
                | "SlowDown"
        )
    )
}

/// A CloudFormation client for `sdk`, with the call log attached when enabled.
pub fn cloudformation(sdk: &SdkConfig) -> aws_sdk_cloudformation::Client {
    let mut b = aws_sdk_cloudformation::config::Builder::from(sdk);
    if let Some(log) = CallLog::from_env() {
        b = b.interceptor(log);
    }
    aws_sdk_cloudformation::Client::from_conf(b.build())
}

/// An S3 client for `sdk`. Custom endpoints (emulators) get path-style
/// addressing: `bucket.127.0.0.1` is no host name.
pub fn s3(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    let mut b = aws_sdk_s3::config::Builder::from(sdk);
    if sdk.endpoint_url().is_some() {
        b = b.force_path_style(true);
    }
    if let Some(log) = CallLog::from_env() {
        b = b.interceptor(log);
    }
    aws_sdk_s3::Client::from_conf(b.build())
}

/// An SDK interceptor that appends `Service.Operation` for each operation started
/// (before any retry) to a file. Lines are written with one `write` call in
/// append mode, so concurrent stacks do not interleave within a line.
#[derive(Debug, Clone)]
pub struct CallLog {
    path: std::path::PathBuf,
}

/// Operations that only read. Everything else counts as mutating.
pub fn is_read_only(operation: &str) -> bool {
    let op = operation.rsplit('.').next().unwrap_or(operation);
    ["Describe", "Get", "List", "Head", "Validate", "Estimate"]
        .iter()
        .any(|p| op.starts_with(p))
}

impl CallLog {
    pub const ENV: &'static str = "BARKCTL_CALL_LOG";

    pub fn from_env() -> Option<Self> {
        std::env::var_os(Self::ENV)
            .filter(|v| !v.is_empty())
            .map(|p| CallLog { path: p.into() })
    }

    fn record(&self, line: &str) {
        use std::io::Write;
        // Best effort: a log that cannot be written must not fail the deploy.
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
        {
            let _ = f.write_all(format!("{line}\n").as_bytes());
        }
    }
}

impl aws_sdk_cloudformation::config::Intercept for CallLog {
    fn name(&self) -> &'static str {
        "BarkctlCallLog"
    }

    // Not `read_before_execution`: the operation's metadata is only in the
    // config bag once the operation's own runtime plugin has run.
    fn read_before_serialization(
        &self,
        _context: &aws_sdk_cloudformation::config::interceptors::BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &aws_sdk_cloudformation::config::RuntimeComponents,
        cfg: &mut aws_sdk_cloudformation::config::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        match cfg.load::<aws_smithy_runtime_api::client::orchestrator::Metadata>() {
            Some(m) => self.record(&format!("{}.{}", m.service(), m.name())),
            None => self.record("unknown.unknown"),
        }
        Ok(())
    }
}
