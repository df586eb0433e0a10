//! PostgreSQL access shared by the database and jobs handlers.
//!
//! Flow: [`DbSettings`] is parsed from the environment (pure, validated first);
//! [`Database`] turns it into a small connection pool on first use, fetching the
//! credentials from Secrets Manager once per container; TLS follows `DB_SSLMODE`.
//! [`job_event`] parses the scheduled-or-manual events the jobs accept.

mod credentials;
mod database;
mod error;
pub mod job_event;
mod settings;
mod tls;

pub use credentials::{fetch_credentials, DbCredentials};
pub use database::Database;
pub use error::{error_chain, DbError};
pub use settings::{env_number, DbSettings, SslMode};

/// Re-exported so handler crates name pool types without their own dependency.
pub use deadpool_postgres;
pub use tokio_postgres;
