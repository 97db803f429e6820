//! The local server's own limits, enforced in front of the router so that their refusals have
//! the JSON error shape: a URL over 8 KiB (414), headers over 16 KiB or more than 100 of them
//! (431), a body that does not arrive in time (408). API Gateway has limits of its own in front
//! of Lambda; these keep the local server from waiting on or buffering whatever a client sends.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http_body::Body as _;
use http_body_util::BodyExt;

use crate::api::error::ApiError;
use crate::api::limits::{ServerLimits, MAX_BODY_BYTES};

/// hyper's own read buffer: heads up to this size reach the layer (hyper answers larger ones
/// itself, and [`super::hyper_errors`] gives that answer its JSON body).
pub const HYPER_MAX_BUF_BYTES: usize = 1024 * 1024;
/// hyper's own header count limit, above the layer's.
pub const HYPER_MAX_HEADERS: usize = 256;

/// The router behind the limit layers.
pub fn apply(router: axum::Router, limits: &ServerLimits) -> axum::Router {
    router
        .layer(middleware::from_fn_with_state(
            limits.clone(),
            read_body_in_time,
        ))
        .layer(middleware::from_fn_with_state(
            limits.clone(),
            check_head_size,
        ))
}

async fn check_head_size(
    State(limits): State<ServerLimits>,
    request: Request,
    next: Next,
) -> Response {
    let target_len = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if target_len > limits.max_uri_bytes {
        return limits.uri_too_long().into_response();
    }
    let headers = request.headers();
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers.len() > limits.max_headers || header_bytes > limits.max_header_bytes {
        return limits.headers_too_large().into_response();
    }
    next.run(request).await
}

/// Reads the body (up to one byte past the router's limit, which then refuses it with its own
/// 413) within the body read timeout, so that a stalled upload is answered 408 instead of
/// holding the connection.
async fn read_body_in_time(
    State(limits): State<ServerLimits>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    if body.is_end_stream() {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let read = tokio::time::timeout(
        limits.body_read_timeout,
        read_up_to(body, MAX_BODY_BYTES + 1),
    )
    .await;
    match read {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(_)) => ApiError::unreadable_body().into_response(),
        Err(_elapsed) => limits.body_timeout().into_response(),
    }
}

/// The body's bytes, stopping once `limit` is reached (the rest is left unread).
async fn read_up_to(mut body: Body, limit: usize) -> Result<Bytes, axum::Error> {
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            bytes.extend_from_slice(&data);
            if bytes.len() >= limit {
                break;
            }
        }
    }
    Ok(Bytes::from(bytes))
}
