//! Requests the double refuses, and how it says so.
//!
//! Every refusal is answered with Lambda's error shape (`errorMessage`, `errorType`) and kept,
//! so that a test can assert that nothing was refused, or that something was: a double that
//! quietly accepted what Lambda refuses would let a function pass that then fails on Lambda.

use axum::Json;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Lambda's `errorType`s and the status each comes with, as the Runtime Interface Emulator
/// (`lambda/rapi/handler/constants.go`, `lambda/rapi/rendering`) spells them.
pub(crate) mod lambda {
    /// 403: a call the runtime's state does not allow (an answer given twice, an init error
    /// after the runtime asked for its first invocation).
    pub const INVALID_STATE_TRANSITION: &str = "InvalidStateTransition";
    /// 400: an answer for an invocation that is not the one in progress.
    pub const INVALID_REQUEST_ID: &str = "InvalidRequestID";
    /// 413: an answer larger than a synchronous invocation may return.
    pub const REQUEST_ENTITY_TOO_LARGE: &str = "RequestEntityTooLarge";
    /// 400: a request body that could not be read to its end.
    pub const TRUNCATED_HTTP_REQUEST: &str = "TruncatedHTTPRequest";
    /// 403: a `Register` body that is not a registration (empty, not JSON, wrong shape).
    pub const INVALID_REQUEST_FORMAT: &str = "InvalidRequestFormat";
    /// 403: `Register` without a `Lambda-Extension-Name`.
    pub const INVALID_EXTENSION_NAME: &str = "Extension.InvalidExtensionName";
    /// 403: `Register` once the runtime has asked for its first invocation.
    pub const REGISTRATION_CLOSED: &str = "Extension.RegistrationClosed";
    /// 403: a call the extension's state does not allow (registered twice, `next` while its
    /// `next` waits, any call after its error report).
    pub const INVALID_EXTENSION_STATE: &str = "Extension.InvalidExtensionState";
    /// 403: more than ten extensions.
    pub const TOO_MANY_EXTENSIONS: &str = "Extension.TooManyExtensions";
    /// 403: an event other than INVOKE and SHUTDOWN, or SHUTDOWN for an internal extension.
    pub const INVALID_EVENT_TYPE: &str = "Extension.InvalidEventType";
    /// 403: no `Lambda-Extension-Identifier` header.
    pub const MISSING_EXTENSION_IDENTIFIER: &str = "Extension.MissingExtensionIdentifier";
    /// 403: a `Lambda-Extension-Identifier` that is no UUID.
    pub const INVALID_EXTENSION_IDENTIFIER: &str = "Extension.InvalidExtensionIdentifier";
    /// 403: a `Lambda-Extension-Identifier` of no registered extension.
    pub const UNKNOWN_EXTENSION_IDENTIFIER: &str = "Extension.UnknownExtensionIdentifier";
    /// 403: an error report without `Lambda-Extension-Function-Error-Type`.
    pub const MISSING_HEADER: &str = "Extension.MissingHeader";
}

/// A request the double refused.
#[derive(Clone, Debug)]
pub struct Refusal {
    pub method: String,
    pub path: String,
    pub status: u16,
    /// Lambda's `errorType` (with Lambda's status) wherever Lambda refuses the request; else a
    /// name of the double's own: `Unmodelled.*` for what it does not model, `Container.Gone`
    /// for a long poll cut short by the environment's end.
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
