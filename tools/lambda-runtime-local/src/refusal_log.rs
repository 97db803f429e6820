//! The middleware that keeps every refusal in the environment, with the request's method and
//! path, for tests to assert on.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use crate::environment::Shared;
use crate::refusal::{Refusal, Refused};

/// Keeps every refusal with the request's method and path, and logs it.
pub(crate) async fn record(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    if let Some(refused) = response.extensions().get::<Refused>() {
        keep(&shared, &method, path, refused);
    }
    response
}

fn keep(shared: &Shared, method: &Method, path: String, refused: &Refused) {
    tracing::warn!(
        %method, %path, status = refused.status.as_u16(), error_type = refused.error_type,
        "refused: {}", refused.message
    );
    shared.keep_refusal(Refusal {
        method: method.to_string(),
        path,
        status: refused.status.as_u16(),
        error_type: refused.error_type.to_string(),
        message: refused.message.clone(),
    });
}
