//! The one error type of the database layer; variants carry what a log reader needs.

use std::error::Error as StdError;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("no database configured: set `DB_SECRET_ARN` (or `DATABASE_URL` for local runs)")]
    MissingTarget,

    #[error("invalid `{name}`: {reason}")]
    InvalidSetting { name: &'static str, reason: String },

    #[error("reading secret `{secret_id}`: {code}: {message}")]
    Secret {
        secret_id: String,
        code: String,
        message: String,
    },

    #[error("secret `{secret_id}` is not database credentials: {reason}")]
    SecretFormat { secret_id: String, reason: String },

    #[error(
        "no database host: set `DB_HOST` or use a secret attached to the instance (with `host`)"
    )]
    MissingHost,

    #[error("reading CA bundle `{path}`: {reason}")]
    RootCert { path: String, reason: String },

    #[error("tls setup: {0}")]
    Tls(String),

    #[error("building connection pool: {0}")]
    Pool(String),

    #[error("connecting to the database: {0}")]
    Connect(String),

    #[error("query failed: {}", error_chain(.0))]
    Query(#[from] tokio_postgres::Error),
}

/// An error and all its sources on one line: tokio-postgres keeps the useful part
/// (refused, timeout, password) in the source, which `Display` alone omits.
pub fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(next) = source {
        let text = next.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = next.source();
    }
    out
}

impl From<deadpool_postgres::PoolError> for DbError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        use deadpool_postgres::PoolError;
        match err {
            PoolError::Backend(e) => DbError::Connect(error_chain(&e)),
            PoolError::Timeout(kind) => DbError::Connect(format!("timed out ({kind:?})")),
            other => DbError::Connect(error_chain(&other)),
        }
    }
}
