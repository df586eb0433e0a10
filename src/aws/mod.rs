//! AWS access made explicit: one `SdkConfig` from `--profile`, `--region` and
//! `--endpoint-url` (or the stage's), with an explicit retry config, and the
//! error text barkctl prints for a failed call (service code and message).
//! With `BARKCTL_CALL_LOG=<file>` set, every SDK operation barkctl starts is
//! appended to that file as `Service.Operation` (see [`CallLog`]): tests count
//! mutating calls with it.

use std::sync::atomic::{AtomicUsize, Ordering};
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
        SdkError::DispatchFailure(d) => match d.as_connector_error() {
            Some(c) => dispatch_problem(c),
            None => "the request could not be sent".to_string(),
        },
        SdkError::TimeoutError(_) => "the request timed out".to_string(),
        SdkError::ResponseError(r) => body_message(r.raw()),
        other => format!("{other}"),
    }
}

/// What went wrong before any AWS service answered, in words: no credentials, an
/// SSO session that expired, a host name that does not resolve, a refused or
/// timed-out connection. Each message starts with a fixed phrase that
/// [`hint_for`] knows. Never a debug structure.
fn dispatch_problem(err: &(dyn std::error::Error + 'static)) -> String {
    // The SDK's typed errors (credential providers, hyper's connector) are not
    // all public; their debug text names them reliably, their display text is
    // what a person can read.
    let debug = format!("{err:?}");
    let mut chain = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        let t = e.to_string();
        if !t.is_empty() && !chain.contains(&t) {
            chain.push(t);
        }
        cur = e.source();
    }
    let detail = chain.join(": ");
    let lower = format!("{debug} {detail}").to_lowercase();
    if lower.contains("sso") && (lower.contains("expired") || lower.contains("token")) {
        return format!("{SSO_EXPIRED} ({detail})");
    }
    let credentials = [
        "CredentialsNotLoaded",
        "ProviderError",
        "ProviderTimedOut",
        "InvalidConfiguration",
        "no providers in chain",
    ];
    if credentials.iter().any(|c| debug.contains(c)) {
        return format!("{NO_CREDENTIALS} ({detail})");
    }
    if lower.contains("dns error") || lower.contains("failed to lookup address") {
        return format!("{DNS_FAILED} ({detail})");
    }
    if debug.contains("ConnectionRefused") {
        return format!("{REFUSED} ({detail})");
    }
    if lower.contains("timed out") || lower.contains("timeout") {
        return format!("the connection to the endpoint timed out ({detail})");
    }
    format!("cannot reach the endpoint: {detail}")
}

const NO_CREDENTIALS: &str = "no AWS credentials found";
const SSO_EXPIRED: &str = "the AWS SSO session has expired or is not valid";
const DNS_FAILED: &str = "cannot resolve the endpoint's host name";
const REFUSED: &str = "the endpoint refused the connection";

/// The hint for an error message that carries one of [`dispatch_problem`]'s phrases.
pub fn hint_for(message: &str) -> Option<String> {
    if message.contains(NO_CREDENTIALS) {
        Some("pass `--profile NAME` (or set `profile:` on the stage, or AWS_PROFILE), run `aws configure` or `aws sso login`, or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into())
    } else if message.contains(SSO_EXPIRED) {
        Some("log in again: `aws sso login` (with the same `--profile`)".into())
    } else if message.contains(DNS_FAILED) {
        Some("check the region and `endpoint_url`, and that this machine can resolve names (network, VPN, DNS)".into())
    } else if message.contains("is not defined in ~/.aws/config") {
        Some("create it with `aws configure --profile NAME` (or `aws configure sso`), or name a defined one".into())
    } else if message.contains(REFUSED) {
        Some("nothing listens there: check `endpoint_url`; for a `local: true` stage, `barkctl local up` starts the emulator".into())
    } else {
        None
    }
}

/// A named profile (flag, stage or AWS_PROFILE) must exist in the shared config
/// or credentials file: the SDK would otherwise fall through to other providers
/// and report something unrelated (instance metadata, on a laptop).
pub fn check_profile(target: &Target) -> Result<(), String> {
    let Some(profile) = target
        .profile
        .clone()
        .or_else(|| std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty()))
    else {
        return Ok(());
    };
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let file = |var: &str, default: &str| {
        std::env::var_os(var)
            .map(std::path::PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join(default)))
    };
    let mut known = Vec::new();
    for (path, prefixed) in [
        (file("AWS_CONFIG_FILE", "config"), true),
        (file("AWS_SHARED_CREDENTIALS_FILE", "credentials"), false),
    ] {
        let Some(text) = path.and_then(|p| std::fs::read_to_string(p).ok()) else {
            continue;
        };
        for line in text.lines() {
            let l = line.trim();
            let Some(section) = l.strip_prefix('[').and_then(|l| l.strip_suffix(']')) else {
                continue;
            };
            let section = section.trim();
            let name = if prefixed {
                match section.strip_prefix("profile ") {
                    Some(n) => n.trim(),
                    None if section == "default" => section,
                    None => continue,
                }
            } else {
                section
            };
            known.push(name.to_string());
        }
    }
    if known.contains(&profile) {
        return Ok(());
    }
    known.sort();
    known.dedup();
    Err(format!(
        "AWS profile `{profile}` is not defined in ~/.aws/config or ~/.aws/credentials{}",
        if known.is_empty() {
            " (neither file has a profile)".to_string()
        } else {
            format!(" (defined: {})", known.join(", "))
        }
    ))
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

/// The capabilities every change set and stack operation acknowledges (deploy
/// and diff alike): templates may create named IAM resources and use macros.
pub const CAPABILITIES: [aws_sdk_cloudformation::types::Capability; 3] = [
    aws_sdk_cloudformation::types::Capability::CapabilityIam,
    aws_sdk_cloudformation::types::Capability::CapabilityNamedIam,
    aws_sdk_cloudformation::types::Capability::CapabilityAutoExpand,
];

/// CloudFormation's limits on a template: inline (TemplateBody) and from S3.
pub const INLINE_TEMPLATE_LIMIT: usize = 51_200;
pub const TEMPLATE_URL_LIMIT: usize = 1_000_000;

/// The DNS suffix of a region's partition (`amazonaws.com.cn` in China).
pub fn dns_suffix(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else if region.starts_with("us-iso-") {
        "c2s.ic.gov"
    } else if region.starts_with("us-isob-") {
        "sc2s.sgov.gov"
    } else {
        "amazonaws.com"
    }
}

/// Whether a failed call is worth repeating: throttling, a 5xx answer, a
/// connection that failed or was reset, a timeout. Anything else (validation,
/// access denied, a missing stack) is an answer, not a hiccup.
pub fn is_transient<E, R>(err: &aws_sdk_cloudformation::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_cloudformation::error::ProvideErrorMetadata,
    R: std::fmt::Debug,
{
    use aws_sdk_cloudformation::error::SdkError;
    match err {
        SdkError::ServiceError(se) => {
            is_throttling(se.err().code())
                || matches!(
                    se.err().code(),
                    Some("InternalFailure" | "ServiceUnavailable" | "InternalError")
                )
        }
        // A reset or dropped connection is worth another try; a name that does
        // not resolve, a refused connection or missing credentials are not
        // (the SDK has tried those already).
        SdkError::DispatchFailure(d) => d.as_connector_error().is_some_and(|c| {
            let debug = format!("{c:?}");
            (c.is_io() || c.is_timeout())
                && !debug.contains("dns error")
                && !debug.contains("ConnectionRefused")
        }),
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        _ => false,
    }
}

/// Like [`is_transient`], and also true for HTTP 5xx answers whose body the SDK
/// could not read as an AWS error.
pub fn is_transient_http<E>(
    err: &aws_sdk_cloudformation::error::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> bool
where
    E: aws_sdk_cloudformation::error::ProvideErrorMetadata,
{
    use aws_sdk_cloudformation::error::SdkError;
    if let SdkError::ServiceError(se) = err {
        if se.raw().status().is_server_error() {
            return true;
        }
    }
    is_transient(err)
}

/// Calls repeated after throttling or a transient error, by barkctl's polling
/// (counted here) or by the SDK's own retry loop (attempts beyond each
/// operation's first): the deploy summary reports the sum.
static RETRIES: AtomicUsize = AtomicUsize::new(0);
static OPERATIONS: AtomicUsize = AtomicUsize::new(0);
static ATTEMPTS: AtomicUsize = AtomicUsize::new(0);

pub fn retries() -> usize {
    let sdk = ATTEMPTS
        .load(Ordering::Relaxed)
        .saturating_sub(OPERATIONS.load(Ordering::Relaxed));
    RETRIES.load(Ordering::Relaxed) + sdk
}

pub fn count_retry() {
    RETRIES.fetch_add(1, Ordering::Relaxed);
}

/// Counts operations and their attempts (see [`retries`]).
#[derive(Debug, Clone, Copy)]
struct RetryCounter;

impl aws_sdk_cloudformation::config::Intercept for RetryCounter {
    fn name(&self) -> &'static str {
        "BarkctlRetryCounter"
    }

    fn read_before_execution(
        &self,
        _context: &aws_sdk_cloudformation::config::interceptors::BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut aws_sdk_cloudformation::config::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        OPERATIONS.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _context: &aws_sdk_cloudformation::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &aws_sdk_cloudformation::config::RuntimeComponents,
        _cfg: &mut aws_sdk_cloudformation::config::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        ATTEMPTS.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// The longest pause between two polls of a stack or change set (5 s;
/// `BARKCTL_POLL_MAX_MS` sets it, the harness tests use a few milliseconds).
pub fn max_poll_interval() -> Duration {
    std::env::var("BARKCTL_POLL_MAX_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(|ms| Duration::from_millis(ms.max(1)))
        .unwrap_or(Duration::from_secs(5))
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
    let mut b = aws_sdk_cloudformation::config::Builder::from(sdk).interceptor(RetryCounter);
    if let Some(log) = CallLog::from_env() {
        b = b.interceptor(log);
    }
    aws_sdk_cloudformation::Client::from_conf(b.build())
}

/// A Lambda client for `sdk`, with the call log attached when enabled
/// (`deploy --hotswap` updates functions with it).
pub fn lambda(sdk: &SdkConfig) -> aws_sdk_lambda::Client {
    let mut b = aws_sdk_lambda::config::Builder::from(sdk).interceptor(RetryCounter);
    if let Some(log) = CallLog::from_env() {
        b = b.interceptor(log);
    }
    aws_sdk_lambda::Client::from_conf(b.build())
}

/// An S3 client for `sdk`. Custom endpoints (emulators) get path-style
/// addressing: `bucket.127.0.0.1` is no host name.
pub fn s3(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    let mut b = aws_sdk_s3::config::Builder::from(sdk).interceptor(RetryCounter);
    if sdk.endpoint_url().is_some() {
        b = b.force_path_style(true);
    }
    if let Some(log) = CallLog::from_env() {
        b = b.interceptor(log);
    }
    aws_sdk_s3::Client::from_conf(b.build())
}

/// A DynamoDB client for `sdk` (the stage lock), with the call log attached when
/// enabled.
pub fn dynamodb(sdk: &SdkConfig) -> aws_sdk_dynamodb::Client {
    let mut b = aws_sdk_dynamodb::config::Builder::from(sdk).interceptor(RetryCounter);
    if let Some(log) = CallLog::from_env() {
        b = b.interceptor(log);
    }
    aws_sdk_dynamodb::Client::from_conf(b.build())
}

/// Calls on the stage lock's table (`DynamoDB.*`): a deploy that changes nothing
/// still takes and releases its stage's lock, so tests that count a no-op's
/// mutating calls leave these out.
pub fn is_lock_call(operation: &str) -> bool {
    operation.starts_with("DynamoDB.")
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
