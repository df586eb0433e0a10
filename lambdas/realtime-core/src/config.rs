//! Settings of the realtime functions, read from the environment once at cold start
//! and validated before any handler runs.

use std::time::Duration;

/// API Gateway closes a WebSocket after two hours at most, so a connection item has no
/// reason to outlive that.
pub const DEFAULT_CONNECTION_TTL_SECONDS: u64 = 7200;
pub const DEFAULT_BROADCAST_CONCURRENCY: usize = 32;
pub const DEFAULT_METRICS_CHANNEL: &str = "metrics";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("environment variable `{0}` is not set")]
    Missing(&'static str),
    #[error("environment variable `{var}` has an invalid value `{value}`: {reason}")]
    Invalid {
        var: &'static str,
        value: String,
        reason: &'static str,
    },
}

/// Where the HS256 secret or RS256 public key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtKeySource {
    /// `JWT_SECRET`: the raw secret, for local use.
    Hs256Secret(String),
    /// `JWT_SECRET_ARN`: a Secrets Manager secret, read once at cold start.
    Hs256SecretArn(String),
    /// `JWT_ALGORITHM=RS256` with `JWT_PUBLIC_KEY` (PEM).
    Rs256PublicKeyPem(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtSettings {
    pub key: JwtKeySource,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealtimeConfig {
    pub connections_table: String,
    /// `WEBSOCKET_MANAGEMENT_ENDPOINT`; when unset the endpoint comes from the local
    /// endpoint override or from the event's `domainName` and `stage`.
    pub management_endpoint: Option<String>,
    pub connection_ttl: Duration,
    pub broadcast_concurrency: usize,
    pub metrics_channel: String,
    pub stage: Option<String>,
}

impl RealtimeConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let connections_table =
            get("CONNECTIONS_TABLE").ok_or(ConfigError::Missing("CONNECTIONS_TABLE"))?;
        let management_endpoint = match get("WEBSOCKET_MANAGEMENT_ENDPOINT") {
            Some(url) if !(url.starts_with("https://") || url.starts_with("http://")) => {
                return Err(ConfigError::Invalid {
                    var: "WEBSOCKET_MANAGEMENT_ENDPOINT",
                    value: url,
                    reason: "expected an http(s) URL",
                })
            }
            other => other.map(|u| u.trim_end_matches('/').to_string()),
        };
        let ttl = parse_positive(get("CONNECTION_TTL_SECONDS"), "CONNECTION_TTL_SECONDS")?
            .unwrap_or(DEFAULT_CONNECTION_TTL_SECONDS);
        let concurrency = parse_positive(get("BROADCAST_CONCURRENCY"), "BROADCAST_CONCURRENCY")?
            .map(|n| n as usize)
            .unwrap_or(DEFAULT_BROADCAST_CONCURRENCY);
        Ok(Self {
            connections_table,
            management_endpoint,
            connection_ttl: Duration::from_secs(ttl),
            broadcast_concurrency: concurrency,
            metrics_channel: get("METRICS_CHANNEL")
                .unwrap_or_else(|| DEFAULT_METRICS_CHANNEL.to_string()),
            stage: get("STAGE"),
        })
    }
}

impl JwtSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let algorithm = get("JWT_ALGORITHM").unwrap_or_else(|| "HS256".to_string());
        let key = match algorithm.as_str() {
            "HS256" => match (get("JWT_SECRET"), get("JWT_SECRET_ARN")) {
                // The local override wins so a developer can run against a stage
                // whose template still carries the ARN.
                (Some(secret), _) => JwtKeySource::Hs256Secret(secret),
                (None, Some(arn)) => JwtKeySource::Hs256SecretArn(arn),
                (None, None) => return Err(ConfigError::Missing("JWT_SECRET_ARN")),
            },
            "RS256" => {
                let pem = get("JWT_PUBLIC_KEY").ok_or(ConfigError::Missing("JWT_PUBLIC_KEY"))?;
                // A PEM pasted into a one-line parameter often carries `\n` escapes.
                let pem = if pem.contains('\n') {
                    pem
                } else {
                    pem.replace("\\n", "\n")
                };
                JwtKeySource::Rs256PublicKeyPem(pem)
            }
            _ => {
                return Err(ConfigError::Invalid {
                    var: "JWT_ALGORITHM",
                    value: algorithm,
                    reason: "expected HS256 or RS256",
                })
            }
        };
        Ok(Self {
            key,
            issuer: get("JWT_ISSUER"),
            audience: get("JWT_AUDIENCE"),
        })
    }
}

fn parse_positive(value: Option<String>, var: &'static str) -> Result<Option<u64>, ConfigError> {
    match value {
        None => Ok(None),
        Some(v) => match v.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(ConfigError::Invalid {
                var,
                value: v,
                reason: "expected a positive integer",
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_apply_when_only_the_table_is_set() {
        let c = RealtimeConfig::from_lookup(lookup(&[("CONNECTIONS_TABLE", "t")])).expect("valid");
        assert_eq!(c.connection_ttl, Duration::from_secs(7200));
        assert_eq!(c.broadcast_concurrency, 32);
        assert_eq!(c.metrics_channel, "metrics");
        assert_eq!(c.management_endpoint, None);
    }

    #[test]
    fn missing_table_and_bad_numbers_are_named() {
        assert_eq!(
            RealtimeConfig::from_lookup(lookup(&[])),
            Err(ConfigError::Missing("CONNECTIONS_TABLE"))
        );
        let err = RealtimeConfig::from_lookup(lookup(&[
            ("CONNECTIONS_TABLE", "t"),
            ("BROADCAST_CONCURRENCY", "0"),
        ]))
        .expect_err("zero concurrency");
        assert!(err.to_string().contains("BROADCAST_CONCURRENCY"), "{err}");
    }

    #[test]
    fn jwt_local_secret_wins_over_arn_and_rs256_needs_a_key() {
        let s = JwtSettings::from_lookup(lookup(&[("JWT_SECRET", "s"), ("JWT_SECRET_ARN", "arn")]))
            .expect("valid");
        assert_eq!(s.key, JwtKeySource::Hs256Secret("s".into()));
        assert_eq!(
            JwtSettings::from_lookup(lookup(&[("JWT_ALGORITHM", "RS256")])),
            Err(ConfigError::Missing("JWT_PUBLIC_KEY"))
        );
        assert!(JwtSettings::from_lookup(lookup(&[
            ("JWT_ALGORITHM", "none"),
            ("JWT_SECRET", "s")
        ]))
        .is_err());
        let escaped = JwtSettings::from_lookup(lookup(&[
            ("JWT_ALGORITHM", "RS256"),
            (
                "JWT_PUBLIC_KEY",
                "-----BEGIN PUBLIC KEY-----\\nABC\\n-----END PUBLIC KEY-----",
            ),
        ]))
        .expect("valid");
        assert_eq!(
            escaped.key,
            JwtKeySource::Rs256PublicKeyPem(
                "-----BEGIN PUBLIC KEY-----\nABC\n-----END PUBLIC KEY-----".into()
            )
        );
    }
}
