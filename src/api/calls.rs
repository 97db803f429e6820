//! `/api/calls`: history, one call, record a call. What the client sent is read by
//! [`call_input`](super::call_input) first, completely, before any database sees it.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::call_input::{parse_history_query, parse_new_call, validate_id, HistoryParams, NewCall};
use super::error::{ApiError, ErrorBody};
use super::{served, AppState, AsOf};
use crate::store::json::{push_int, push_str, CallsJson};
use crate::store::{Call, InsertOutcome, Source, StoreError};

/// The history answer, serialised straight from the rows (no intermediate JSON tree).
#[derive(Serialize, ToSchema)]
pub struct HistoryResponse<'a> {
    /// Newest first.
    #[schema(value_type = Vec<Call>)]
    calls: &'a [Call],
    count: usize,
    source: Source,
    /// `Using cloud database`, `Using local backup database` or `No database available`.
    message: &'static str,
    /// The answer holds everything Redshift held at this time, plus this environment's own
    /// writes (RFC 3339, milliseconds; also the `X-Data-As-Of` header). Null when this
    /// environment never reached Redshift.
    #[serde(rename = "asOf")]
    #[schema(format = DateTime)]
    as_of: Option<String>,
}

/// One call and the database that served it.
#[derive(Serialize, ToSchema)]
pub struct CallResponse<'a> {
    call: &'a Call,
    source: Source,
    /// The answer holds everything Redshift held at this time, plus this environment's own
    /// writes (RFC 3339, milliseconds; also the `X-Data-As-Of` header). Null when this
    /// environment never reached Redshift.
    #[serde(rename = "asOf")]
    #[schema(format = DateTime)]
    as_of: Option<String>,
}

/// `GET /api/calls/{id}`: the call, or null while no database answers (the source says why).
#[derive(Serialize, ToSchema)]
pub struct CallLookup<'a> {
    #[schema(value_type = Option<Call>)]
    call: Option<&'a Call>,
    source: Source,
    /// The answer holds everything Redshift held at this time, plus this environment's own
    /// writes (RFC 3339, milliseconds; also the `X-Data-As-Of` header). Null when this
    /// environment never reached Redshift.
    #[serde(rename = "asOf")]
    #[schema(format = DateTime)]
    as_of: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/calls/history",
    tag = "calls",
    summary = "Calls, newest first",
    params(HistoryParams),
    responses(
        (status = 200, description = "The calls (empty with `source: unavailable` when no database answers).", body = HistoryResponse),
        (status = 400, description = "An unknown, repeated, ill-typed or out-of-range parameter.", body = ErrorBody),
    )
)]
pub async fn history(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Response {
    tracing::info!("📊 Fetching call history (with automatic fallback)...");
    let query = match parse_history_query(raw.as_deref().unwrap_or("")) {
        Ok(query) => query,
        Err(err) => return err.with_source(state.store.current_source()),
    };
    let answer = state.store.history(&query).await;
    let calls = match answer.result {
        Ok(calls) => calls,
        Err(err) if err.is_refusal() => return refused("query", &err).with_source(answer.source),
        // Both databases down: an empty answer, as the guide says; the source tells why.
        Err(_) => CallsJson::with_room_for(0),
    };
    tracing::info!(
        "✅ Found {} from {} {}",
        count_of_calls(calls.count()),
        answer.source.as_str(),
        answer.source.emoji()
    );
    let as_of = AsOf(answer.as_of);
    served(
        answer.source,
        as_of,
        history_answer(calls, answer.source, as_of),
    )
}

/// `{"calls": [...], "count": n, "source": "...", "message": "..."}`, written around the calls
/// already in JSON (the fields in this order, as serde wrote them from a struct).
fn history_answer(calls: CallsJson, source: Source, as_of: AsOf) -> Response {
    let count = calls.count() as u64;
    let body = calls.into_document(br#"{"calls":"#, |out| {
        out.extend_from_slice(br#","count":"#);
        push_int(out, count);
        out.extend_from_slice(br#","source":"#);
        push_str(out, source.as_str());
        out.extend_from_slice(br#","message":"#);
        push_str(out, history_message(source));
        out.extend_from_slice(br#","asOf":"#);
        match as_of.text() {
            Some(text) => push_str(out, &text),
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
    });
    (
        // `json_charset` adds the charset, as to every JSON answer.
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// "1 call", "15 calls": the guide's log line, in good English for every count.
fn count_of_calls(count: usize) -> String {
    match count {
        1 => "1 call".to_string(),
        n => format!("{n} calls"),
    }
}

#[utoipa::path(
    get,
    path = "/api/calls/{id}",
    tag = "calls",
    summary = "One call",
    params(("id" = String, Path, description = "The call's id.", min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9._:-]+$")),
    responses(
        (status = 200, description = "The call; `call` is null when no database answers.", body = CallLookup),
        (status = 400, description = "The id is not a valid call id.", body = ErrorBody),
        (status = 404, description = "No call with this id.", body = ErrorBody),
    )
)]
pub async fn get_call(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let id = match id {
        Ok(Path(id)) => id,
        Err(_) => {
            return ApiError::BadRequest("The call id in the path is not valid text.".into())
                .with_source(state.store.current_source())
        }
    };
    if let Err(err) = validate_id(&id) {
        return err.with_source(state.store.current_source());
    }
    let answer = state.store.get(&id).await;
    let (source, as_of) = (answer.source, AsOf(answer.as_of));
    let lookup = |call| {
        served(
            source,
            as_of,
            Json(CallLookup {
                call,
                source,
                as_of: as_of.text(),
            }),
        )
    };
    match answer.result {
        Ok(Some(call)) => lookup(Some(&call)),
        Ok(None) => ApiError::NotFound(format!("No call with id {id:?}.")).with_source(source),
        Err(err) if err.is_refusal() => refused("query", &err).with_source(source),
        // Both databases down: reads answer empty, as the history does.
        Err(_) => lookup(None),
    }
}

#[utoipa::path(
    post,
    path = "/api/calls",
    tag = "calls",
    summary = "Record a call",
    request_body(content = NewCall, content_type = "application/json"),
    responses(
        (status = 201, description = "Recorded.", body = CallResponse),
        (status = 200, description = "The same id and body again: the stored call.", body = CallResponse),
        (status = 400, description = "Malformed JSON, an unknown or ill-typed field, or an out-of-range value.", body = ErrorBody),
        (status = 409, description = "The id is already recorded with a different call.", body = ErrorBody),
        (status = 413, description = "The body is larger than 256 KiB.", body = ErrorBody),
        (status = 503, description = "No database can take the write; nothing was stored.", body = ErrorBody),
    )
)]
pub async fn create_call(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let parsed = body
        .map_err(body_rejected)
        .and_then(|body| parse_new_call(&body));
    let (call, started_at_given) = match parsed {
        Ok(parsed) => parsed,
        Err(err) => return err.with_source(state.store.current_source()),
    };
    let answer = state.store.insert(&call).await;
    let (source, as_of) = (answer.source, AsOf(answer.as_of));
    let stored = |status: StatusCode, call: &Call| {
        let body = CallResponse {
            call,
            source,
            as_of: as_of.text(),
        };
        served(source, as_of, (status, Json(body)))
    };
    match answer.result {
        Ok(InsertOutcome::Inserted) => {
            tracing::info!(id = %call.id, "📝 Recorded call in {} {}", source.as_str(), source.emoji());
            stored(StatusCode::CREATED, &call)
        }
        Ok(InsertOutcome::AlreadyExists(existing)) => {
            let mut retried = call.clone();
            if !started_at_given {
                retried.started_at = existing.started_at;
            }
            if existing.same_content(&retried) {
                stored(StatusCode::OK, &existing)
            } else {
                ApiError::Conflict(format!(
                    "A different call with id {:?} is already recorded; use a new id to record another call.",
                    call.id
                ))
                .with_source(source)
            }
        }
        Ok(InsertOutcome::IdTaken) => ApiError::Conflict(format!(
            "The id {:?} is already taken; use a new id to record another call.",
            call.id
        ))
        .with_source(source),
        Err(err) if err.is_refusal() => refused("call", &err).with_source(source),
        Err(err) => {
            tracing::error!(error = %err, "❌ No database could take the write");
            ApiError::Unavailable(
                "No database is available to record the call, so it was not stored; try again later."
                    .into(),
            )
            .with_source(Source::Unavailable)
        }
    }
}

/// Redshift works and will not take this request's values: the client's to fix, and nothing
/// was changed.
fn refused(what: &str, err: &StoreError) -> ApiError {
    let why = err
        .refusal()
        .map_or("a value is not valid for its column", |r| r.explanation());
    ApiError::BadRequest(format!(
        "Redshift refused this {what}: {why}. Nothing was changed."
    ))
}

fn body_rejected(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge(format!(
            "The request body is larger than {} KiB.",
            super::MAX_BODY_BYTES / 1024
        ))
    } else {
        ApiError::unreadable_body()
    }
}

pub fn history_message(source: Source) -> &'static str {
    match source {
        Source::Redshift => "Using cloud database",
        Source::Sqlite => "Using local backup database",
        Source::Unavailable => "No database available",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_call_is_not_one_calls() {
        assert_eq!(count_of_calls(1), "1 call");
        assert_eq!(count_of_calls(0), "0 calls");
        assert_eq!(count_of_calls(15), "15 calls");
    }
}
