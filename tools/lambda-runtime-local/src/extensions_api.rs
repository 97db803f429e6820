//! The Extensions API (2020-01-01): what extensions call, internal or external.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::Value;

use crate::environment::Shared;
use crate::extension::ErrorReport;
use crate::refusal::{Refused, lambda};
use crate::runtime_api::header_text;

const NAME_HEADER: &str = "lambda-extension-name";
const IDENTIFIER_HEADER: &str = "lambda-extension-identifier";
const ACCEPT_FEATURE_HEADER: &str = "lambda-extension-accept-feature";
const ERROR_TYPE_HEADER: &str = "lambda-extension-function-error-type";

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/2020-01-01/extension/register", post(register))
        .route("/2020-01-01/extension/event/next", get(next))
        .route("/2020-01-01/extension/init/error", post(init_error))
        .route("/2020-01-01/extension/exit/error", post(exit_error))
}

async fn register(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refused> {
    let name = header_text(&headers, NAME_HEADER)
        .filter(|name| !name.is_empty())
        .ok_or_else(|| {
            Refused::forbidden(
                lambda::INVALID_EXTENSION_NAME,
                "Empty extension name: Register needs the Lambda-Extension-Name header (an \
                 external extension's file name)",
            )
        })?;
    let events = registered_events(&body)
        .map_err(|reason| Refused::forbidden(lambda::INVALID_REQUEST_FORMAT, reason))?;
    let wants_account_id = header_text(&headers, ACCEPT_FEATURE_HEADER)
        .is_some_and(|features| features.split(',').any(|f| f.trim() == "accountId"));
    let registration = shared.register_extension(&name, &events, wants_account_id)?;
    Ok((
        [(IDENTIFIER_HEADER, registration.id)],
        axum::Json(registration.body),
    )
        .into_response())
}

/// The events of a `Register` body, read as Lambda reads it (Go's `encoding/json` into
/// `{events, configurationKeys}`): the body must be JSON (`{}` or `null` at the least, never
/// empty), an object's keys match the fields whatever their case, other keys are ignored, and
/// `configurationKeys` must be empty.
fn registered_events(body: &[u8]) -> Result<Vec<String>, String> {
    // Go replaces invalid UTF-8 in strings rather than failing.
    let value: Value = serde_json::from_str(&String::from_utf8_lossy(body))
        .map_err(|err| format!("the body is no registration: {err}"))?;
    let fields = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Object(fields) => fields,
        other => return Err(format!("the body is no registration object: {other}")),
    };
    let mut events = Vec::new();
    for (key, value) in fields {
        if key.eq_ignore_ascii_case("events") {
            events = strings(value, &key)?;
        } else if key.eq_ignore_ascii_case("configurationKeys") && !strings(value, &key)?.is_empty()
        {
            return Err(
                "configurationKeys are deprecated; use environment variables instead".into(),
            );
        }
    }
    Ok(events)
}

/// A JSON array of strings as Go decodes it into `[]string`: `null` is empty, a `null` element
/// is `""`.
fn strings(value: Value, key: &str) -> Result<Vec<String>, String> {
    let items = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        other => return Err(format!("{key} must be a list of strings, not {other}")),
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::String(text) => Ok(text),
            Value::Null => Ok(String::new()),
            other => Err(format!("{key} must be a list of strings; {other} is none")),
        })
        .collect()
}

/// Blocks until the extension's next event; the call tells Lambda the extension is done with
/// the previous one.
async fn next(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Result<Response, Refused> {
    let id = identifier(&headers)?;
    let event = shared.extension_asks_next(&id)?;
    let event = event.await.map_err(|_| Refused::environment_gone())?;
    Ok(([(IDENTIFIER_HEADER, id)], event).into_response())
}

async fn init_error(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Response, Refused> {
    report_error(&shared, &headers, ErrorReport::Init)
}

async fn exit_error(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Response, Refused> {
    report_error(&shared, &headers, ErrorReport::Exit)
}

/// `init/error` and `exit/error`: either way Lambda resets the environment.
fn report_error(
    shared: &Arc<Shared>,
    headers: &HeaderMap,
    report: ErrorReport,
) -> Result<Response, Refused> {
    let id = identifier(headers)?;
    let error_type = header_text(headers, ERROR_TYPE_HEADER)
        .filter(|error_type| !error_type.is_empty())
        .ok_or_else(|| {
            Refused::forbidden(
                lambda::MISSING_HEADER,
                "Lambda-Extension-Function-Error-Type not found",
            )
        })?;
    shared.extension_failed(&id, report, &error_type)?;
    Ok((StatusCode::ACCEPTED, [(IDENTIFIER_HEADER, id)]).into_response())
}

/// The `Lambda-Extension-Identifier` header as Lambda checks it before anything else: present,
/// and a UUID (in any of the forms a UUID may be written; the canonical form is returned).
fn identifier(headers: &HeaderMap) -> Result<String, Refused> {
    let text = header_text(headers, IDENTIFIER_HEADER)
        .filter(|text| !text.is_empty())
        .ok_or_else(|| {
            Refused::forbidden(
                lambda::MISSING_EXTENSION_IDENTIFIER,
                "Missing Lambda-Extension-Identifier header (the identifier from Register)",
            )
        })?;
    uuid::Uuid::parse_str(&text)
        .map(|id| id.to_string())
        .map_err(|_| {
            Refused::forbidden(
                lambda::INVALID_EXTENSION_IDENTIFIER,
                format!("Invalid Lambda-Extension-Identifier {text:?}"),
            )
        })
}
