//! The events Lambda hands out on `next`: to the runtime, and to extensions.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;

/// An invocation as the runtime receives it: the event as body, the context as headers.
#[derive(Clone, Debug)]
pub(crate) struct RuntimeEvent {
    pub request_id: String,
    pub deadline_ms: u64,
    pub function_arn: String,
    pub trace_id: String,
    pub body: Bytes,
}

impl IntoResponse for RuntimeEvent {
    fn into_response(self) -> Response {
        let mut headers = HeaderMap::new();
        let pairs = [
            ("lambda-runtime-aws-request-id", self.request_id),
            ("lambda-runtime-deadline-ms", self.deadline_ms.to_string()),
            ("lambda-runtime-invoked-function-arn", self.function_arn),
            ("lambda-runtime-trace-id", self.trace_id),
        ];
        for (name, value) in pairs {
            if let Ok(value) = HeaderValue::try_from(value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        (headers, self.body).into_response()
    }
}

/// `shutdownReason` of the SHUTDOWN event, as Lambda spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ShutdownReason {
    /// The environment was idle and is removed.
    Spindown,
    /// The invoke phase outlasted the function timeout.
    Timeout,
    /// Something failed: init, the runtime, an extension.
    Failure,
}

/// The `tracing` member of an INVOKE event.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Tracing {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub value: String,
}

/// An event as an extension receives it from `/extension/event/next`.
#[derive(Clone, Debug, Serialize)]
#[serde(
    tag = "eventType",
    rename_all = "UPPERCASE",
    rename_all_fields = "camelCase"
)]
pub(crate) enum ExtensionEvent {
    Invoke {
        deadline_ms: u64,
        request_id: String,
        invoked_function_arn: String,
        tracing: Tracing,
    },
    Shutdown {
        shutdown_reason: ShutdownReason,
        deadline_ms: u64,
    },
}

impl ExtensionEvent {
    /// The INVOKE that goes with `event`, to every extension subscribed to INVOKE.
    pub fn invoke(event: &RuntimeEvent) -> Self {
        ExtensionEvent::Invoke {
            deadline_ms: event.deadline_ms,
            request_id: event.request_id.clone(),
            invoked_function_arn: event.function_arn.clone(),
            tracing: Tracing {
                kind: "X-Amzn-Trace-Id",
                value: event.trace_id.clone(),
            },
        }
    }
}

impl IntoResponse for ExtensionEvent {
    fn into_response(self) -> Response {
        let event_id = uuid::Uuid::new_v4().to_string();
        (
            [("lambda-extension-event-identifier", event_id)],
            axum::Json(self),
        )
            .into_response()
    }
}

/// Unix time in milliseconds, `after` from now: the deadlines Lambda hands out.
pub(crate) fn unix_ms_after(after: Duration) -> u64 {
    let at = SystemTime::now() + after;
    at.duration_since(UNIX_EPOCH)
        .map(|since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// An X-Ray trace header of the shape Lambda sends (`Root=1-<time>-<id>;Parent=<id>;Sampled=0`).
pub(crate) fn trace_header() -> String {
    let seconds = unix_ms_after(Duration::ZERO) / 1000;
    let root = uuid::Uuid::new_v4().simple().to_string();
    let parent = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "Root=1-{seconds:08x}-{};Parent={};Sampled=0",
        &root[..24],
        &parent[..16]
    )
}
