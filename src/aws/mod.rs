//! AWS access made explicit: one `SdkConfig` from `--profile`, `--region` and
//! `--endpoint-url` (or the stage's), with an explicit retry config, and the
//! error text barkctl prints for a failed call (service code and message).

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

/// `Code: message` of an SDK error, the way people see it in the console.
pub fn describe_error<E, R>(err: &aws_sdk_cloudformation::error::SdkError<E, R>) -> String
where
    E: aws_sdk_cloudformation::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_cloudformation::error::SdkError;
    match err {
        SdkError::ServiceError(se) => {
            let e = se.err();
            match (e.code(), e.message()) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.to_string(),
                (None, Some(m)) => m.to_string(),
                (None, None) => format!("{e}"),
            }
        }
        SdkError::DispatchFailure(d) => format!("cannot reach the endpoint: {d:?}"),
        SdkError::TimeoutError(_) => "the request timed out".to_string(),
        SdkError::ResponseError(r) => format!("unreadable response: {r:?}"),
        other => format!("{other}"),
    }
}
