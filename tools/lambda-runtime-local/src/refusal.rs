//! Requests the double refuses, and how it says so.
//!
//! Every refusal is answered with Lambda's error shape (`errorMessage`, `errorType`) and kept,
//! so that a test can assert that nothing was refused, or that something was: a double that
//! quietly accepted what Lambda refuses would let a function pass that then fails on Lambda.

use axum::Json;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A request the double refused.
#[derive(Clone, Debug)]
pub struct Refusal {
    pub method: String,
    pub path: String,
    pub status: u16,
    /// Lambda's `errorType` where Lambda documents one, else a name of the double's own.
    pub error_type: String,
    pub message: String,
}

/// A refusal as a handler returns it; the middleware adds the method and path and keeps it.
#[derive(Clone, Debug)]
pub(crate) struct Refused {
    pub status: StatusCode,
    pub error_type: &'static str,
    pub message: String,
}

impl Refused {
    pub fn new(status: StatusCode, error_type: &'static str, message: impl Into<String>) -> Self {
        Refused {
            status,
            error_type,
            message: message.into(),
        }
    }

    pub fn bad_request(error_type: &'static str, message: impl Into<String>) -> Self {
        Refused::new(StatusCode::BAD_REQUEST, error_type, message)
    }

    pub fn forbidden(error_type: &'static str, message: impl Into<String>) -> Self {
        Refused::new(StatusCode::FORBIDDEN, error_type, message)
    }

    /// The answer to a long poll that ends because the environment is going away.
    pub fn environment_gone() -> Self {
        Refused::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Container.Gone",
            "the execution environment is shutting down",
        )
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let body = json!({ "errorMessage": self.message, "errorType": self.error_type });
        let mut response = (self.status, Json(body)).into_response();
        response.extensions_mut().insert(self);
        response
    }
}

/// Everything the double does not model. The Logs and Telemetry APIs are named: an extension
/// that subscribes to them (lambda-extension does when given a logs or telemetry processor)
/// must not believe it subscribed.
pub(crate) async fn unmodelled(method: Method, uri: axum::http::Uri) -> Refused {
    let path = uri.path();
    if path.starts_with("/2020-08-15/logs") || path.starts_with("/2022-07-01/telemetry") {
        return Refused::new(
            StatusCode::NOT_IMPLEMENTED,
            "Unmodelled.LogsOrTelemetryApi",
            format!("{method} {path}: the Logs and Telemetry APIs are not modelled by this double"),
        );
    }
    Refused::new(
        StatusCode::NOT_FOUND,
        "Unmodelled.UnknownPath",
        format!("{method} {path} is no part of the Runtime API or the Extensions API"),
    )
}
