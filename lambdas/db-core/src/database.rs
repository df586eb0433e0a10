//! The per-container database handle: credentials fetched once, a small pool.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

use crate::credentials::fetch_credentials;
use crate::{tls, DbError, DbSettings, SslMode};

/// Built once in `main` and shared by every invocation of the container.
pub struct Database {
    settings: DbSettings,
    secrets: Option<aws_sdk_secretsmanager::Client>,
    // A Mutex rather than a OnceCell so a rotated password can drop the pool.
    pool: tokio::sync::Mutex<Option<Pool>>,
    secret_fetches: AtomicUsize,
}

impl Database {
    /// `secrets` is required when the settings name a secret and no `DATABASE_URL`.
    pub fn new(settings: DbSettings, secrets: Option<aws_sdk_secretsmanager::Client>) -> Self {
        Database {
            settings,
            secrets,
            pool: tokio::sync::Mutex::new(None),
            secret_fetches: AtomicUsize::new(0),
        }
    }

    /// Settings from the environment; the Secrets Manager client only when needed
    /// (its config honours `AWS_ENDPOINT_URL`).
    pub async fn from_env(application_name: &str) -> Result<Self, DbError> {
        let settings = DbSettings::from_env(application_name)?;
        let secrets = if settings.database_url.is_none() {
            let config = aws_config::load_from_env().await;
            Some(aws_sdk_secretsmanager::Client::new(&config))
        } else {
            None
        };
        Ok(Database::new(settings, secrets))
    }

    pub fn settings(&self) -> &DbSettings {
        &self.settings
    }

    /// How many times the secret was read; stays 1 across warm invocations.
    pub fn secret_fetches(&self) -> usize {
        self.secret_fetches.load(Ordering::Relaxed)
    }

    /// A pooled connection. A password rejected by the server makes the handle
    /// forget its credentials and read the secret once more (rotation).
    pub async fn client(&self) -> Result<Object, DbError> {
        let pool = self.pool().await?;
        match pool.get().await {
            Ok(client) => Ok(client),
            Err(PoolError::Backend(e))
                if self.uses_secret() && e.code() == Some(&SqlState::INVALID_PASSWORD) =>
            {
                tracing::warn!("database rejected the cached password; reading the secret again");
                self.pool.lock().await.take();
                Ok(self.pool().await?.get().await?)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The pool, built on first use.
    pub async fn pool(&self) -> Result<Pool, DbError> {
        let mut slot = self.pool.lock().await;
        if let Some(pool) = slot.as_ref() {
            return Ok(pool.clone());
        }
        let pool = self.build_pool().await?;
        *slot = Some(pool.clone());
        Ok(pool)
    }

    fn uses_secret(&self) -> bool {
        self.settings.database_url.is_none()
    }

    async fn build_pool(&self) -> Result<Pool, DbError> {
        let s = &self.settings;
        let (mut config, ssl_mode) = match &s.database_url {
            Some(url) => {
                let mut config: tokio_postgres::Config =
                    url.parse()
                        .map_err(|e: tokio_postgres::Error| DbError::InvalidSetting {
                            name: "DATABASE_URL",
                            reason: e.to_string(),
                        })?;
                // Without `DB_SSLMODE` the URL's own sslmode (default prefer) decides.
                let mode = match &s.ssl_mode {
                    Some(mode) => mode.clone(),
                    None => {
                        if config.get_ssl_mode() == PgSslMode::Disable {
                            SslMode::Disable
                        } else {
                            SslMode::Require
                        }
                    }
                };
                if s.ssl_mode.is_some() {
                    config.ssl_mode(pg_ssl_mode(&mode));
                }
                (config, mode)
            }
            None => {
                let (secrets, secret_id) = match (&self.secrets, &s.secret_id) {
                    (Some(client), Some(id)) => (client, id),
                    _ => return Err(DbError::MissingTarget),
                };
                let creds = fetch_credentials(secrets, secret_id).await?;
                self.secret_fetches.fetch_add(1, Ordering::Relaxed);
                // Explicit environment wins (it may name a proxy); the secret's
                // attached host fills the gaps.
                let host = s.host.clone().or(creds.host).ok_or(DbError::MissingHost)?;
                let mode = s.effective_ssl_mode();
                let mut config = tokio_postgres::Config::new();
                config
                    .host(&host)
                    .port(s.port.or(creds.port).unwrap_or(5432))
                    .dbname(
                        s.dbname
                            .clone()
                            .or(creds.dbname)
                            .as_deref()
                            .unwrap_or("postgres"),
                    )
                    .user(&creds.username)
                    .password(creds.password.as_bytes())
                    .ssl_mode(pg_ssl_mode(&mode));
                (config, mode)
            }
        };
        config
            .connect_timeout(s.connect_timeout)
            .application_name(&s.application_name)
            .keepalives(true);

        let manager_config = ManagerConfig {
            // Fast: a broken connection shows up as a query error and is dropped;
            // a test query per checkout would cost a round trip per invocation.
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match &ssl_mode {
            SslMode::Disable => Manager::from_config(config, NoTls, manager_config),
            SslMode::Require => Manager::from_config(config, tls::require()?, manager_config),
            SslMode::VerifyFull { root_cert } => {
                Manager::from_config(config, tls::verify_full(root_cert)?, manager_config)
            }
        };
        Pool::builder(manager)
            .max_size(s.pool_size)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(s.connect_timeout + Duration::from_secs(1)))
            .wait_timeout(Some(s.connect_timeout * 2))
            .build()
            .map_err(|e| DbError::Pool(e.to_string()))
    }
}

fn pg_ssl_mode(mode: &SslMode) -> PgSslMode {
    match mode {
        SslMode::Disable => PgSslMode::Disable,
        SslMode::Require | SslMode::VerifyFull { .. } => PgSslMode::Require,
    }
}
