//! Settings of the realtime functions, read from the environment once at cold start
//! and validated before any handler runs.

use std::time::Duration;

use crate::rate_limit::RateSettings;

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

#[derive(Debug, Clone, PartialEq)]
pub struct RealtimeConfig {
    pub connections_table: String,
    /// `WEBSOCKET_MANAGEMENT_ENDPOINT`; when unset the endpoint comes from the local
    /// endpoint override or from the event's `domainName` and `stage`.
    pub management_endpoint: Option<String>,
    pub connection_ttl: Duration,
    pub broadcast_concurrency: usize,
    pub metrics_channel: String,
    pub stage: Option<String>,
    /// `HISTORY_TABLE`: message ids and history; unset, messages carry no `id`.
    pub history_table: Option<String>,
    pub history_ttl: Duration,
    /// `MESSAGE_RATE_PER_SECOND`, `MESSAGE_BURST`, `RATE_LIMIT_STRIKES`; unset rate,
    /// no limit.
    pub rate: Option<RateSettings>,
    pub max_connections_per_user: Option<usize>,
    pub verify_user_active: bool,
    /// `RESUME_FUNCTION`: the function `$connect` invokes to replay `?since=`.
    pub resume_function: Option<String>,
}

pub const DEFAULT_HISTORY_TTL_SECONDS: u64 = 86_400;

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
            history_table: get("HISTORY_TABLE"),
            history_ttl: Duration::from_secs(
                parse_positive(get("HISTORY_TTL_SECONDS"), "HISTORY_TTL_SECONDS")?
                    .unwrap_or(DEFAULT_HISTORY_TTL_SECONDS),
            ),
            rate: match parse_positive(get("MESSAGE_RATE_PER_SECOND"), "MESSAGE_RATE_PER_SECOND")? {
                None => None,
                Some(per_second) => {
                    let defaults = RateSettings::default();
                    let burst = parse_positive(get("MESSAGE_BURST"), "MESSAGE_BURST")?
                        .unwrap_or(per_second.max(defaults.burst as u64));
                    let strikes = parse_positive(get("RATE_LIMIT_STRIKES"), "RATE_LIMIT_STRIKES")?
                        .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
                        .unwrap_or(defaults.strikes);
                    Some(RateSettings {
                        per_second: per_second as f64,
                        burst: burst as f64,
                        strikes,
                    })
                }
            },
            max_connections_per_user: parse_positive(
                get("MAX_CONNECTIONS_PER_USER"),
                "MAX_CONNECTIONS_PER_USER",
            )?
            .map(|n| n as usize),
            verify_user_active: parse_bool(get("VERIFY_USER_ACTIVE"), "VERIFY_USER_ACTIVE")?,
            resume_function: get("RESUME_FUNCTION"),
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

fn parse_bool(value: Option<String>, var: &'static str) -> Result<bool, ConfigError> {
    match value.as_deref().map(str::trim) {
        None => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(v) => Err(ConfigError::Invalid {
            var,
            value: v.to_string(),
            reason: "expected true or false",
        }),
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
        assert_eq!(c.rate, None);
        assert_eq!(c.history_table, None);
        assert!(!c.verify_user_active);
    }

    #[test]
    fn limits_history_and_the_user_check_are_read() {
        let c = RealtimeConfig::from_lookup(lookup(&[
            ("CONNECTIONS_TABLE", "t"),
            ("HISTORY_TABLE", "h"),
            ("HISTORY_TTL_SECONDS", "60"),
            ("MESSAGE_RATE_PER_SECOND", "5"),
            ("MESSAGE_BURST", "7"),
            ("RATE_LIMIT_STRIKES", "3"),
            ("MAX_CONNECTIONS_PER_USER", "2"),
            ("VERIFY_USER_ACTIVE", "true"),
        ]))
        .expect("valid");
        assert_eq!(c.history_table.as_deref(), Some("h"));
        assert_eq!(c.history_ttl, Duration::from_secs(60));
        assert_eq!(
            c.rate,
            Some(RateSettings {
                per_second: 5.0,
                burst: 7.0,
                strikes: 3
            })
        );
        assert_eq!(c.max_connections_per_user, Some(2));
        assert!(c.verify_user_active);
        let bad = RealtimeConfig::from_lookup(lookup(&[
            ("CONNECTIONS_TABLE", "t"),
            ("VERIFY_USER_ACTIVE", "yes"),
        ]))
        .expect_err("not a bool");
        assert!(bad.to_string().contains("VERIFY_USER_ACTIVE"), "{bad}");
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
