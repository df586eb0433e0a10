//! Database settings from environment variables, validated before any I/O.

use std::path::PathBuf;
use std::time::Duration;

use crate::DbError;

/// TLS to the server, with libpq's meanings (`DB_SSLMODE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP: local servers only.
    Disable,
    /// TLS, certificate not verified (libpq `require`): protects against passive
    /// sniffing inside the VPC without shipping the RDS CA bundle.
    Require,
    /// TLS with the chain verified against this PEM bundle and the host name checked.
    VerifyFull { root_cert: PathBuf },
}

#[derive(Debug, Clone)]
pub struct DbSettings {
    /// `DATABASE_URL`: wins over everything else (local runs, tests).
    pub database_url: Option<String>,
    /// `DB_SECRET_ARN`: where username and password (and maybe host) live.
    pub secret_id: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub dbname: Option<String>,
    /// `None` when `DB_SSLMODE` is unset: a `DATABASE_URL` then keeps its own
    /// `sslmode`, a secret-based connection uses [`SslMode::Require`].
    pub ssl_mode: Option<SslMode>,
    /// Bounds how long an unreachable database can hold an invocation.
    pub connect_timeout: Duration,
    /// One invocation per container at a time, so a handful is plenty.
    pub pool_size: usize,
    pub application_name: String,
}

impl DbSettings {
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    pub const DEFAULT_POOL_SIZE: usize = 2;

    /// Settings from the process environment.
    pub fn from_env(application_name: &str) -> Result<Self, DbError> {
        Self::from_lookup(application_name, |name| std::env::var(name).ok())
    }

    /// Settings from any variable lookup (tests pass a map instead of mutating the
    /// process environment, which parallel tests share).
    pub fn from_lookup(
        application_name: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, DbError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let database_url = get("DATABASE_URL");
        let secret_id = get("DB_SECRET_ARN");
        if database_url.is_none() && secret_id.is_none() {
            return Err(DbError::MissingTarget);
        }
        if let Some(url) = &database_url {
            // Parse now so a typo is reported as a setting, not as a connect failure.
            url.parse::<tokio_postgres::Config>()
                .map_err(|e| DbError::InvalidSetting {
                    name: "DATABASE_URL",
                    reason: e.to_string(),
                })?;
        }
        let port = match get("DB_PORT") {
            None => None,
            Some(raw) => Some(raw.parse::<u16>().map_err(|_| DbError::InvalidSetting {
                name: "DB_PORT",
                reason: format!("`{raw}` is not a port number"),
            })?),
        };
        let ssl_mode = match get("DB_SSLMODE").as_deref() {
            None => None,
            Some("disable") => Some(SslMode::Disable),
            Some("require") => Some(SslMode::Require),
            Some("verify-full") => {
                let root_cert = get("DB_SSL_ROOT_CERT").ok_or(DbError::InvalidSetting {
                    name: "DB_SSL_ROOT_CERT",
                    reason: "`DB_SSLMODE=verify-full` needs the path of a PEM CA bundle".into(),
                })?;
                Some(SslMode::VerifyFull {
                    root_cert: PathBuf::from(root_cert),
                })
            }
            Some(other) => {
                return Err(DbError::InvalidSetting {
                    name: "DB_SSLMODE",
                    reason: format!("`{other}` is not one of disable, require, verify-full"),
                })
            }
        };
        let connect_timeout = match get("DB_CONNECT_TIMEOUT_SECONDS") {
            None => Self::DEFAULT_CONNECT_TIMEOUT,
            Some(raw) => Duration::from_secs(env_number_from(
                "DB_CONNECT_TIMEOUT_SECONDS",
                Some(raw),
                5,
                1..=60,
            )?),
        };
        Ok(DbSettings {
            database_url,
            secret_id,
            host: get("DB_HOST"),
            port,
            dbname: get("DB_NAME"),
            ssl_mode,
            connect_timeout,
            pool_size: Self::DEFAULT_POOL_SIZE,
            application_name: application_name.to_owned(),
        })
    }

    /// The TLS mode in force for a connection built from a secret.
    pub fn effective_ssl_mode(&self) -> SslMode {
        self.ssl_mode.clone().unwrap_or(SslMode::Require)
    }
}

/// A whole-number setting such as `BATCH_SIZE`, with a default and an allowed range.
pub fn env_number(
    name: &'static str,
    lookup: impl Fn(&str) -> Option<String>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, DbError> {
    env_number_from(name, lookup(name), default, range)
}

fn env_number_from(
    name: &'static str,
    raw: Option<String>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, DbError> {
    let Some(raw) = raw.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty()) else {
        return Ok(default);
    };
    let value = raw.parse::<u64>().map_err(|_| DbError::InvalidSetting {
        name,
        reason: format!("`{raw}` is not a whole number"),
    })?;
    if !range.contains(&value) {
        return Err(DbError::InvalidSetting {
            name,
            reason: format!("{value} is outside {}..={}", range.start(), range.end()),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<DbSettings, DbError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        DbSettings::from_lookup("test", |k| map.get(k).cloned())
    }

    #[test]
    fn needs_a_secret_or_a_url() {
        assert!(matches!(settings(&[]), Err(DbError::MissingTarget)));
        assert!(settings(&[("DB_SECRET_ARN", "arn:x")]).is_ok());
        assert!(settings(&[("DATABASE_URL", "postgres://u@h/db")]).is_ok());
    }

    #[test]
    fn ssl_mode_defaults_to_require_and_rejects_unknown_values() {
        let s = settings(&[("DB_SECRET_ARN", "arn:x")]).expect("valid");
        assert_eq!(s.effective_ssl_mode(), SslMode::Require);
        let err = settings(&[("DB_SECRET_ARN", "arn:x"), ("DB_SSLMODE", "verify-ca")])
            .expect_err("unknown mode");
        assert!(err.to_string().contains("`DB_SSLMODE`"), "{err}");
        let err = settings(&[("DB_SECRET_ARN", "arn:x"), ("DB_SSLMODE", "verify-full")])
            .expect_err("no CA bundle");
        assert!(err.to_string().contains("DB_SSL_ROOT_CERT"), "{err}");
    }

    #[test]
    fn bad_port_and_url_are_setting_errors() {
        let err = settings(&[("DB_SECRET_ARN", "arn:x"), ("DB_PORT", "54x")]).expect_err("port");
        assert_eq!(
            err.to_string(),
            "invalid `DB_PORT`: `54x` is not a port number"
        );
        assert!(matches!(
            settings(&[("DATABASE_URL", "postgres://h:notaport/db")]),
            Err(DbError::InvalidSetting {
                name: "DATABASE_URL",
                ..
            })
        ));
    }

    #[test]
    fn numbers_have_defaults_and_ranges() {
        let none = |_: &str| None;
        assert_eq!(
            env_number("BATCH_SIZE", none, 500, 1..=10_000).expect("default"),
            500
        );
        let big = |_: &str| Some("0".to_string());
        let err = env_number("BATCH_SIZE", big, 500, 1..=10_000).expect_err("range");
        assert_eq!(
            err.to_string(),
            "invalid `BATCH_SIZE`: 0 is outside 1..=10000"
        );
    }
}
