//! The Runtime API (2018-06-01): what the function's runtime calls.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::{Bytes, BytesMut};

use crate::environment::Shared;
use crate::invocation::Response as Answer;
use crate::refusal::{Refused, lambda};

/// The largest answer a synchronous invocation returns: 6 MiB and 100 bytes, Lambda's
/// `interop.MaxPayloadSize`. A larger answer fails the invocation with
/// `Function.ResponseSizeTooLarge` instead of reaching the caller, and the runtime is told
/// 413 `RequestEntityTooLarge`.
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024 + 100;

const ERROR_TYPE_HEADER: &str = "lambda-runtime-function-error-type";
const RESPONSE_MODE_HEADER: &str = "lambda-runtime-function-response-mode";

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
}

/// Blocks until the next invocation; the call itself tells Lambda the runtime is done with the
/// previous one.
async fn next(State(shared): State<Arc<Shared>>) -> Result<Response, Refused> {
    let event = shared.runtime_asks_next()?;
    let event = event.await.map_err(|_| Refused::environment_gone())?;
    Ok(event.into_response())
}

async fn response(
    State(shared): State<Arc<Shared>>,
    Path(request_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, Refused> {
    if headers.contains_key(RESPONSE_MODE_HEADER) {
        return Err(Refused::new(
            StatusCode::NOT_IMPLEMENTED,
            "Unmodelled.StreamingResponse",
            "streamed responses are not modelled by this double",
        ));
    }
    match read_body(body, MAX_RESPONSE_BYTES).await {
        Ok(body) => shared.runtime_answers(&request_id, Answer::Success(body))?,
        Err(BodyError::TooLarge) => {
            // The caller gets Lambda's error for it, the runtime a 413.
            let message = format!(
                "Response payload size exceeded maximum allowed payload size \
                 ({MAX_RESPONSE_BYTES} bytes)."
            );
            let body = serde_json::json!({
                "errorMessage": message,
                "errorType": "Function.ResponseSizeTooLarge",
            });
            let answer = Answer::FunctionError {
                error_type: Some("Function.ResponseSizeTooLarge".to_string()),
                body: Bytes::from(body.to_string()),
            };
            shared.runtime_answers(&request_id, answer)?;
            return Err(BodyError::TooLarge.into());
        }
        Err(broken) => return Err(broken.into()),
    }
    Ok(StatusCode::ACCEPTED)
}

async fn error(
    State(shared): State<Arc<Shared>>,
    Path(request_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, Refused> {
    // An error report too large for the caller is refused and leaves the invocation
    // unanswered, as Lambda's buffered path does (no `Function.ResponseSizeTooLarge` here).
    let body = read_body(body, MAX_RESPONSE_BYTES).await?;
    let error_type = header_text(&headers, ERROR_TYPE_HEADER);
    shared.runtime_answers(&request_id, Answer::FunctionError { error_type, body })?;
    Ok(StatusCode::ACCEPTED)
}

async fn init_error(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, Refused> {
    // Lambda reads an init error whole: no size limit.
    let body = read_body(body, usize::MAX).await?;
    let error_type = header_text(&headers, ERROR_TYPE_HEADER).unwrap_or_default();
    shared.runtime_init_error(&error_type, &body)?;
    Ok(StatusCode::ACCEPTED)
}

/// Why a posted body was not taken.
#[derive(Debug)]
enum BodyError {
    /// Larger than the limit: 413.
    TooLarge,
    /// It could not be read to its end (the connection broke): 400.
    Truncated(String),
}

impl From<BodyError> for Refused {
    fn from(error: BodyError) -> Refused {
        match error {
            BodyError::TooLarge => Refused::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                lambda::REQUEST_ENTITY_TOO_LARGE,
                format!("Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."),
            ),
            BodyError::Truncated(err) => Refused::bad_request(
                lambda::TRUNCATED_HTTP_REQUEST,
                format!("HTTP request detected as truncated: {err}"),
            ),
        }
    }
}

/// The whole body, if it is at most `limit` bytes long and arrives whole. A body of exactly
/// `limit` bytes is taken, as Lambda takes one of exactly `MaxPayloadSize`.
async fn read_body(mut body: Body, limit: usize) -> Result<Bytes, BodyError> {
    let mut read = BytesMut::new();
    while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|err| BodyError::Truncated(err.to_string()))?;
        // Trailers carry no payload.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.len() > limit - read.len() {
            return Err(BodyError::TooLarge);
        }
        read.extend_from_slice(&data);
    }
    Ok(read.freeze())
}

pub(crate) fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}
