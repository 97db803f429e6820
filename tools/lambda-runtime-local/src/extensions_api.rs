//! The Extensions API (2020-01-01): what extensions call, internal or external.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde::Deserialize;

use crate::environment::Shared;
use crate::refusal::Refused;
use crate::runtime_api::header_text;

const NAME_HEADER: &str = "lambda-extension-name";
const IDENTIFIER_HEADER: &str = "lambda-extension-identifier";
const ACCEPT_FEATURE_HEADER: &str = "lambda-extension-accept-feature";
const ERROR_TYPE_HEADER: &str = "lambda-extension-function-error-type";

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/2020-01-01/extension/register", post(register))
        .route("/2020-01-01/extension/event/next", get(next))
        .route("/2020-01-01/extension/init/error", post(report_error))
        .route("/2020-01-01/extension/exit/error", post(report_error))
}

/// The body of `Register`; it may be absent.
#[derive(Debug, Default, Deserialize)]
struct RegisterBody {
    #[serde(default)]
    events: Vec<String>,
}

async fn register(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refused> {
    let name = header_text(&headers, NAME_HEADER).ok_or_else(|| {
        Refused::bad_request(
            "InvalidRequest",
            "Register needs the Lambda-Extension-Name header (the extension's file name)",
        )
    })?;
    let request: RegisterBody = if body.is_empty() {
        RegisterBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|err| {
            Refused::bad_request(
                "InvalidRequest",
                format!("the body is no registration: {err}"),
            )
        })?
    };
    let wants_account_id = header_text(&headers, ACCEPT_FEATURE_HEADER)
        .is_some_and(|features| features.split(',').any(|f| f.trim() == "accountId"));
    let registration = shared.register_extension(&name, &request.events, wants_account_id)?;
    Ok((
        [(IDENTIFIER_HEADER, registration.id)],
        axum::Json(registration.body),
    )
        .into_response())
}

/// Blocks until the extension's next event; the call tells Lambda the extension is done with
/// the previous one.
async fn next(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Result<Response, Refused> {
    let id = identifier(&headers)?;
    let event = shared.extension_asks_next(&id)?;
    let event = event.await.map_err(|_| Refused::environment_gone())?;
    Ok(([(IDENTIFIER_HEADER, id)], event).into_response())
}

/// `init/error` and `exit/error`: either way Lambda resets the environment.
async fn report_error(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Response, Refused> {
    let id = identifier(&headers)?;
    let error_type = header_text(&headers, ERROR_TYPE_HEADER).ok_or_else(|| {
        Refused::bad_request(
            "InvalidRequest",
            "an error report needs the Lambda-Extension-Function-Error-Type header",
        )
    })?;
    shared.extension_failed(&id, &error_type)?;
    Ok((StatusCode::ACCEPTED, [(IDENTIFIER_HEADER, id)]).into_response())
}

fn identifier(headers: &HeaderMap) -> Result<String, Refused> {
    header_text(headers, IDENTIFIER_HEADER).ok_or_else(|| {
        Refused::forbidden(
            "Extension.MissingExtensionIdentifier",
            "the call needs the Lambda-Extension-Identifier header from Register",
        )
    })
}
