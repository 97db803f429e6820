//! Errors as the Data API answers them (AWS JSON 1.1): an HTTP status and a
//! body naming the error type, which the SDK turns into its typed errors.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::json_response;

/// An error answer of the Data API.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    resource_id: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            resource_id: None,
        }
    }

    pub(crate) fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "ValidationException", message)
    }

    /// A request body that is not valid JSON.
    pub(crate) fn serialization(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "SerializationException", message)
    }

    pub(crate) fn not_found(message: impl Into<String>, resource_id: &str) -> Self {
        Self {
            resource_id: Some(resource_id.to_owned()),
            ..Self::new(
                StatusCode::BAD_REQUEST,
                "ResourceNotFoundException",
                message,
            )
        }
    }

    pub(crate) fn statement_not_found(id: &str) -> Self {
        Self::not_found(format!("Query does not exist: {id}"), id)
    }

    pub(crate) fn no_result(id: &str) -> Self {
        Self::not_found(
            "Query does not have result. Please check query status with DescribeStatement.",
            id,
        )
    }

    /// A call beyond its quota, as AWS answers it: HTTP 400, `ThrottlingException`,
    /// "Rate exceeded". The SDKs classify that code as throttling and back off accordingly.
    pub(crate) fn throttling() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "ThrottlingException",
            "Rate exceeded",
        )
    }

    pub(crate) fn active_statements_exceeded() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "ActiveStatementsExceededException",
            "Active statements exceeded the allowed quota.",
        )
    }

    pub(crate) fn active_waiting_requests_exceeded() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "ActiveWaitingRequestsExceededException",
            "The number of active requests with WaitTimeSeconds for the same SQL statement exceeds the limit.",
        )
    }

    pub(crate) fn unknown_operation(target: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            format!("The local Redshift Data API does not support the operation {target:?}."),
        )
    }

    /// The answer for an injected HTTP status fault.
    pub(crate) fn http_status(status: u16) -> Self {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let (code, message) = match status {
            StatusCode::SERVICE_UNAVAILABLE => {
                ("ServiceUnavailableException", "Service unavailable")
            }
            StatusCode::TOO_MANY_REQUESTS => ("ThrottlingException", "Rate exceeded"),
            StatusCode::FORBIDDEN => ("AccessDeniedException", "Access denied"),
            s if s.is_server_error() => ("InternalServerException", "Internal server error"),
            _ => ("ValidationException", "Request rejected"),
        };
        Self::new(status, code, message)
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    #[serde(rename = "__type")]
    code: &'a str,
    message: &'a str,
    #[serde(rename = "ResourceId", skip_serializing_if = "Option::is_none")]
    resource_id: Option<&'a str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code,
            message: &self.message,
            resource_id: self.resource_id.as_deref(),
        };
        json_response(self.status, &body)
    }
}
