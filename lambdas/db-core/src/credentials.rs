//! Database credentials kept in Secrets Manager (`barkbase/{stage}/postgres/credentials`).

use std::fmt;

use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata};
use serde::Deserialize;

use crate::DbError;

/// The secret's JSON: `username` and `password` always; `host`, `port`, `dbname`
/// once RDS has attached the secret to the instance.
#[derive(Clone, Deserialize, PartialEq, Eq)]
pub struct DbCredentials {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default, deserialize_with = "port_number_or_string")]
    pub port: Option<u16>,
    #[serde(default)]
    pub dbname: Option<String>,
}

// The password never reaches a log line through `{:?}`.
impl fmt::Debug for DbCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("dbname", &self.dbname)
            .finish()
    }
}

impl DbCredentials {
    pub fn parse(secret_id: &str, secret_string: &str) -> Result<Self, DbError> {
        serde_json::from_str(secret_string).map_err(|e| DbError::SecretFormat {
            secret_id: secret_id.to_owned(),
            // serde's message names the missing or mistyped field; it never echoes values.
            reason: e.to_string(),
        })
    }
}

/// RDS writes `port` as a number, hand-made secrets often as a string.
fn port_number_or_string<'de, D>(de: D) -> Result<Option<u16>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Port {
        Number(u16),
        Text(String),
    }
    match Option::<Port>::deserialize(de)? {
        None => Ok(None),
        Some(Port::Number(n)) => Ok(Some(n)),
        Some(Port::Text(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("port `{s}` is not a port number"))),
    }
}

/// One `GetSecretValue` call; callers cache the result (see `Database`).
pub async fn fetch_credentials(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> Result<DbCredentials, DbError> {
    let out = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|err| DbError::Secret {
            secret_id: secret_id.to_owned(),
            code: err.code().unwrap_or("request failed").to_owned(),
            message: err
                .message()
                .map(str::to_owned)
                .unwrap_or_else(|| DisplayErrorContext(&err).to_string()),
        })?;
    let text = out.secret_string().ok_or_else(|| DbError::SecretFormat {
        secret_id: secret_id.to_owned(),
        reason: "it has no SecretString (binary secrets are not supported)".into(),
    })?;
    DbCredentials::parse(secret_id, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rds_attached_secret() {
        let c = DbCredentials::parse(
            "s",
            r#"{"username":"app","password":"p@ss","engine":"postgres","host":"db.x","port":5432,"dbname":"barkbase"}"#,
        )
        .expect("valid");
        assert_eq!(c.host.as_deref(), Some("db.x"));
        assert_eq!(c.port, Some(5432));
        assert_eq!(c.dbname.as_deref(), Some("barkbase"));
    }

    #[test]
    fn accepts_port_as_string_and_hides_password_in_debug() {
        let c = DbCredentials::parse(
            "s",
            r#"{"username":"app","password":"hunter2","port":"6543"}"#,
        )
        .expect("valid");
        assert_eq!(c.port, Some(6543));
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn missing_password_names_the_field_not_the_values() {
        let err =
            DbCredentials::parse("barkbase/dev/postgres/credentials", r#"{"username":"app"}"#)
                .expect_err("no password");
        let text = err.to_string();
        assert!(text.contains("missing field `password`"), "{text}");
        assert!(text.contains("barkbase/dev/postgres/credentials"), "{text}");
    }
}
