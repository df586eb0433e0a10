//! Token verification for `$connect`: one pinned algorithm, signature, `exp`, `nbf`,
//! optional issuer and audience.
//!
//! The algorithm comes from configuration, never from the token header, so a token
//! signed with another algorithm (the RS256/HS256 confusion) or with `alg: none` is
//! refused.

use aws_lambda_events::event::apigw::ApiGatewayWebsocketProxyRequest;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::config::{JwtKeySource, JwtSettings};

/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 30;

/// Why a connection attempt is refused; each has its own response body.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("missing token")]
    Missing,
    #[error("invalid token")]
    Invalid(String),
    #[error("token expired")]
    Expired,
}

impl TokenError {
    /// The 401 body the client sees. Invalid tokens give no detail on purpose: the
    /// reason is logged, not returned to a possible attacker.
    pub fn response_body(&self) -> &'static str {
        match self {
            TokenError::Missing => r#"{"message":"Unauthorized: missing token"}"#,
            TokenError::Invalid(_) => r#"{"message":"Unauthorized: invalid token"}"#,
            TokenError::Expired => r#"{"message":"Unauthorized: token expired"}"#,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JwtSetupError {
    #[error("the JWT secret is empty")]
    EmptySecret,
    #[error("`JWT_PUBLIC_KEY` is not an RSA public key in PEM form: {0}")]
    BadPublicKey(String),
    #[error("reading secret `{arn}` from Secrets Manager failed: {message}")]
    SecretRead { arn: String, message: String },
    #[error("secret `{arn}` has no SecretString")]
    SecretNotString { arn: String },
}

/// What a verified token says about the caller.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Claims {
    pub sub: String,
    #[serde(rename = "tenantId", alias = "tenant_id", alias = "custom:tenantId")]
    pub tenant_id: String,
    /// Tokens without a role get the least privileged one.
    #[serde(default = "default_role", alias = "custom:role")]
    pub role: String,
    /// Epoch seconds; required, so a connection can end with its token.
    pub exp: i64,
}

fn default_role() -> String {
    "viewer".to_string()
}

pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    pub fn hs256(
        secret: &[u8],
        issuer: Option<&str>,
        audience: Option<&str>,
    ) -> Result<Self, JwtSetupError> {
        if secret.is_empty() {
            return Err(JwtSetupError::EmptySecret);
        }
        Ok(Self::with(
            DecodingKey::from_secret(secret),
            Algorithm::HS256,
            issuer,
            audience,
        ))
    }

    pub fn rs256(
        public_key_pem: &str,
        issuer: Option<&str>,
        audience: Option<&str>,
    ) -> Result<Self, JwtSetupError> {
        let key = DecodingKey::from_rsa_pem(public_key_pem.as_bytes())
            .map_err(|e| JwtSetupError::BadPublicKey(e.to_string()))?;
        Ok(Self::with(key, Algorithm::RS256, issuer, audience))
    }

    fn with(
        key: DecodingKey,
        alg: Algorithm,
        issuer: Option<&str>,
        audience: Option<&str>,
    ) -> Self {
        let mut validation = Validation::new(alg);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        if let Some(iss) = issuer {
            validation.set_issuer(&[iss]);
        }
        match audience {
            Some(aud) => validation.set_audience(&[aud]),
            // Without a configured audience any `aud` claim is acceptable.
            None => validation.validate_aud = false,
        }
        Self { key, validation }
    }

    /// Builds the verifier the settings describe, reading the secret from Secrets
    /// Manager when only its ARN is configured (once, at cold start).
    pub async fn from_settings(
        settings: &JwtSettings,
        sdk: &aws_config::SdkConfig,
    ) -> Result<Self, JwtSetupError> {
        let iss = settings.issuer.as_deref();
        let aud = settings.audience.as_deref();
        match &settings.key {
            JwtKeySource::Hs256Secret(s) => Self::hs256(s.as_bytes(), iss, aud),
            JwtKeySource::Hs256SecretArn(arn) => {
                let secret = load_secret(&aws_sdk_secretsmanager::Client::new(sdk), arn).await?;
                Self::hs256(secret.as_bytes(), iss, aud)
            }
            JwtKeySource::Rs256PublicKeyPem(pem) => Self::rs256(pem, iss, aud),
        }
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        match jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation) {
            Ok(data) => {
                if data.claims.sub.is_empty() || data.claims.tenant_id.is_empty() {
                    return Err(TokenError::Invalid("empty `sub` or `tenantId`".into()));
                }
                // `#` separates the parts of the table's keys (`sub#{tenant}#...`).
                if data.claims.tenant_id.contains('#') || data.claims.sub.contains('#') {
                    return Err(TokenError::Invalid("`#` in `sub` or `tenantId`".into()));
                }
                Ok(data.claims)
            }
            Err(e) => match e.kind() {
                ErrorKind::ExpiredSignature => Err(TokenError::Expired),
                _ => Err(TokenError::Invalid(e.to_string())),
            },
        }
    }
}

/// Reads the token from the `token` query parameter, else from an
/// `Authorization: Bearer` header (browsers cannot set headers on a WebSocket, other
/// clients can).
pub fn token_from_request(req: &ApiGatewayWebsocketProxyRequest) -> Option<String> {
    if let Some(t) = req
        .query_string_parameters
        .first("token")
        .filter(|t| !t.is_empty())
    {
        return Some(t.to_string());
    }
    let header = req.headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

/// A secret's value: the `secret` field of a JSON SecretString, or the raw string.
pub fn secret_from_string(secret_string: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(secret_string) {
        Ok(serde_json::Value::Object(map)) => match map.get("secret").and_then(|v| v.as_str()) {
            Some(s) => s.to_string(),
            None => secret_string.to_string(),
        },
        _ => secret_string.to_string(),
    }
}

pub async fn load_secret(
    client: &aws_sdk_secretsmanager::Client,
    arn: &str,
) -> Result<String, JwtSetupError> {
    let out = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| JwtSetupError::SecretRead {
            arn: arn.to_string(),
            message: aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string(),
        })?;
    let s = out
        .secret_string()
        .ok_or_else(|| JwtSetupError::SecretNotString {
            arn: arn.to_string(),
        })?;
    Ok(secret_from_string(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_string_may_be_json_or_raw() {
        assert_eq!(secret_from_string(r#"{"secret":"abc"}"#), "abc");
        assert_eq!(secret_from_string("raw-secret"), "raw-secret");
        assert_eq!(secret_from_string(r#"{"other":"x"}"#), r#"{"other":"x"}"#);
    }

    #[test]
    fn empty_secret_is_a_setup_error() {
        assert!(matches!(
            JwtVerifier::hs256(b"", None, None),
            Err(JwtSetupError::EmptySecret)
        ));
    }
}
