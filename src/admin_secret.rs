//! The admin token from a Secrets Manager secret (`ADMIN_TOKEN_SECRET_ARN`), so that the token
//! need not sit in the function's environment. It is read once, at cold start, through
//! `aws-sdk-secretsmanager` (`GetSecretValue`); the secret's whole `SecretString`, trimmed, is
//! the token. A secret that cannot be read leaves the admin endpoints closed, with one log line
//! that names the reason but never the value.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::SdkConfig;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};

use crate::api::admin_policy::AdminPolicy;

/// Cold start waits at most this long for the secret (connect and operation).
const READ_TIMEOUT: Duration = Duration::from_secs(3);

/// Why the admin token could not be read: short, without the secret's value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("Secrets Manager refused the request ({0})")]
    Refused(String),
    #[error("Secrets Manager could not be reached ({0})")]
    Unreachable(String),
    #[error("the secret has no SecretString, or it is empty")]
    Empty,
}

/// The admin policy when the token comes from a secret: the token when it can be read, closed
/// otherwise.
pub async fn admin_policy(sdk: &SdkConfig, secret_arn: &str) -> AdminPolicy {
    match read_admin_token(sdk, secret_arn).await {
        Ok(token) => {
            tracing::info!("🔑 Admin token read from Secrets Manager");
            AdminPolicy::Token(token.into())
        }
        Err(err) => {
            tracing::error!(
                secret = %secret_arn,
                "❌ The admin endpoints stay closed: the admin token could not be read from ADMIN_TOKEN_SECRET_ARN: {err}"
            );
            AdminPolicy::Closed
        }
    }
}

/// Reads the token from the secret.
pub async fn read_admin_token(sdk: &SdkConfig, secret_arn: &str) -> Result<String, SecretError> {
    let config = aws_sdk_secretsmanager::config::Builder::from(sdk)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(READ_TIMEOUT)
                .operation_timeout(READ_TIMEOUT)
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(2))
        .build();
    let client = aws_sdk_secretsmanager::Client::from_conf(config);
    let answer = client
        .get_secret_value()
        .secret_id(secret_arn)
        .send()
        .await
        .map_err(classify)?;
    answer
        .secret_string()
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .map(str::to_string)
        .ok_or(SecretError::Empty)
}

fn classify<E: ProvideErrorMetadata, R>(err: SdkError<E, R>) -> SecretError {
    match &err {
        SdkError::ServiceError(service) => SecretError::Refused(
            service
                .err()
                .code()
                .unwrap_or("an unnamed error")
                .to_string(),
        ),
        SdkError::TimeoutError(_) => SecretError::Unreachable("timeout".into()),
        SdkError::DispatchFailure(_) => SecretError::Unreachable("connection failed".into()),
        _ => SecretError::Unreachable(err.code().unwrap_or("no answer").to_string()),
    }
}
