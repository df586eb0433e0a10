//! Test harness of the database and jobs handlers: a throwaway PostgreSQL
//! cluster (or `DATABASE_URL`), a moto server for Secrets Manager, and helpers
//! that build a `db_core::Database` pointing at them.

pub mod moto;
pub mod postgres;
mod tools;

pub use tools::free_port;

use std::collections::HashMap;

use db_core::{Database, DbSettings};

/// A `Database` as a handler gets it in production, from these variables
/// instead of the process environment (tests run in parallel).
pub fn database_from(
    vars: &[(&str, &str)],
    secrets: Option<aws_sdk_secretsmanager::Client>,
) -> Database {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let settings = DbSettings::from_lookup("jobs-tests", |k| map.get(k).cloned())
        .expect("valid test settings");
    Database::new(settings, secrets)
}

/// A `Database` on a plain-TCP `DATABASE_URL`.
pub fn database_at(url: &str) -> Database {
    database_from(&[("DATABASE_URL", url), ("DB_SSLMODE", "disable")], None)
}
