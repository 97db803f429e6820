//! The Runtime API (2018-06-01): what the function's runtime calls.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;

use crate::environment::Shared;
use crate::invocation::Response as Answer;
use crate::refusal::Refused;

/// A synchronous invocation returns at most 6 MB; a larger answer fails the invocation with
/// `Function.ResponseSizeTooLarge` instead of reaching the caller.
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;

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
    let answer = match read_limited(body).await {
        Some(body) => Answer::Success(body),
        None => Answer::FunctionError {
            error_type: Some("Function.ResponseSizeTooLarge".to_string()),
            body: Bytes::from_static(b"the response is larger than 6 MB"),
        },
    };
    let too_large = matches!(answer, Answer::FunctionError { .. });
    shared.runtime_answers(&request_id, answer)?;
    if too_large {
        return Err(Refused::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Function.ResponseSizeTooLarge",
            format!("a synchronous invocation returns at most {MAX_RESPONSE_BYTES} bytes"),
        ));
    }
    Ok(StatusCode::ACCEPTED)
}

async fn error(
    State(shared): State<Arc<Shared>>,
    Path(request_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, Refused> {
    let body = read_limited(body).await.unwrap_or_default();
    let error_type = header_text(&headers, ERROR_TYPE_HEADER);
    shared.runtime_answers(&request_id, Answer::FunctionError { error_type, body })?;
    Ok(StatusCode::ACCEPTED)
}

async fn init_error(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, Refused> {
    let body = read_limited(body).await.unwrap_or_default();
    let error_type = header_text(&headers, ERROR_TYPE_HEADER).unwrap_or_default();
    shared.runtime_init_error(&error_type, &body)?;
    Ok(StatusCode::ACCEPTED)
}

/// The body, or `None` when it is larger than a synchronous invocation may answer.
async fn read_limited(body: Body) -> Option<Bytes> {
    axum::body::to_bytes(body, MAX_RESPONSE_BYTES).await.ok()
}

pub(crate) fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}
