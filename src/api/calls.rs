//! `/api/calls`: history, one call, record a call. Input is validated here, completely, before
//! any database sees it.

use std::collections::HashSet;
use std::fmt;
use std::ops::RangeInclusive;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::{served, AppState, AsOf};
use crate::store::json::{push_int, push_str, CallsJson};
use crate::store::rules::{
    TextField, TextProblem, ACCOUNT_NAME, CONTACT_NAME, FIRST_INSTANT, LAST_INSTANT, NOTES, OUTCOME,
};
use crate::store::{
    rules, truncate_to_micros, Call, HistoryQuery, InsertOutcome, Source, StoreError,
};

pub const MAX_LIMIT: u32 = 500;
const MAX_ID_CHARS: usize = 64;

/// A call to record. Unknown fields are refused rather than silently dropped, and only a JSON
/// object is read (see the `Deserialize` impl below). The schema attributes describe, for the
/// OpenAPI document, what `parse_new_call` accepts.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, remote = "Self")]
pub struct NewCall {
    /// A client id makes the write idempotent; the server makes a UUID when it is absent.
    #[serde(default, deserialize_with = "field::id")]
    #[schema(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9._:-]+$")]
    pub id: Option<String>,
    // The pattern asks for one character outside Rust's white space (`char::is_whitespace`,
    // the Unicode White_Space set), as `trim()` in `parse_new_call` does.
    /// Who was called: required, not only white space.
    #[serde(default, deserialize_with = "field::contact_name")]
    #[schema(
        value_type = String,
        required = true,
        min_length = 1,
        max_length = 200,
        pattern = r"[^\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
    )]
    pub contact_name: Option<String>,
    #[serde(default, deserialize_with = "field::account_name")]
    #[schema(max_length = 200, pattern = r"^[^\u0000]*$")]
    pub account_name: Option<String>,
    /// RFC 3339, years 1 to 9999 in UTC; defaults to now.
    #[serde(default, deserialize_with = "field::started_at")]
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
    #[serde(default, deserialize_with = "field::duration_seconds")]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 9223372036854775807_i64)]
    pub duration_seconds: Option<serde_json::Number>,
    #[serde(default, deserialize_with = "field::outcome")]
    #[schema(max_length = 100, pattern = r"^[^\u0000]*$")]
    pub outcome: Option<String>,
    #[serde(default, deserialize_with = "field::notes")]
    #[schema(max_length = 10000, pattern = r"^[^\u0000]*$")]
    pub notes: Option<String>,
}

/// serde's derived reader also takes a JSON array, filling the fields by position, so that
/// `["id-1", "Ada"]` would record a call; a call record is an object, nothing else.
impl<'de> Deserialize<'de> for NewCall {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ObjectOnly)
    }
}

struct ObjectOnly;

impl<'de> Visitor<'de> for ObjectOnly {
    type Value = NewCall;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(JSON_OBJECT)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<NewCall, A::Error> {
        // The derived reader (`remote = "Self"` makes it an inherent function).
        NewCall::deserialize(MapAccessDeserializer::new(map))
    }
}

/// What serde says it expected when the body is not an object.
const JSON_OBJECT: &str = "a JSON object";

/// Readers for the fields of [`NewCall`] that name the field when its value has the wrong JSON
/// type; serde's own message ("invalid type: integer `5`, expected a string") does not say which.
mod field {
    use serde::de::{Deserialize, Deserializer, Error};
    use serde_json::{Number, Value};

    /// What a JSON value is, in words.
    fn kind(value: &Value) -> String {
        match value {
            Value::Null => "null".to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => format!("the number {n}"),
            Value::String(_) => "text".to_string(),
            Value::Array(_) => "a list".to_string(),
            Value::Object(_) => "an object".to_string(),
        }
    }

    fn text<'de, D: Deserializer<'de>>(d: D, name: &str) -> Result<Option<String>, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(None),
            Value::String(text) => Ok(Some(text)),
            other => Err(D::Error::custom(format!(
                "{name} must be text (a JSON string), not {}",
                kind(&other)
            ))),
        }
    }

    pub fn duration_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Number>, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(None),
            Value::Number(n) => Ok(Some(n)),
            other => Err(D::Error::custom(format!(
                "durationSeconds must be a whole number of seconds, not {}",
                kind(&other)
            ))),
        }
    }

    macro_rules! text_fields {
        ($($function:ident => $name:literal),* $(,)?) => {$(
            pub fn $function<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
                text(d, $name)
            }
        )*};
    }

    text_fields!(
        id => "id",
        contact_name => "contactName",
        account_name => "accountName",
        started_at => "startedAt",
        outcome => "outcome",
        notes => "notes",
    );
}

/// The query parameters of `GET /api/calls/history`, for the OpenAPI document; the handler
/// reads the raw query with [`parse_history_query`], which also refuses unknown or repeated
/// parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // read through parse_history_query
pub struct HistoryParams {
    /// How many calls, newest first.
    #[param(minimum = 1, maximum = 500, default = 50)]
    limit: Option<u32>,
    /// How many of the newest calls to skip.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64, default = 0)]
    offset: Option<u32>,
    /// Calls started at or after this time (RFC 3339); not later than `until`.
    #[param(format = DateTime)]
    since: Option<String>,
    /// Calls started at or before this time (RFC 3339).
    #[param(format = DateTime)]
    until: Option<String>,
    /// Calls with exactly this contact name.
    #[param(min_length = 1, max_length = 200)]
    contact: Option<String>,
}

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

/// Parses `limit`, `offset`, `since`, `until`, `contact`; anything else is refused.
pub fn parse_history_query(raw: &str) -> Result<HistoryQuery, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw)
        .map_err(|_| ApiError::BadRequest("The query string is not valid URL encoding.".into()))?;
    let mut query = HistoryQuery::default();
    let mut seen = HashSet::new();
    for (key, value) in pairs {
        if !seen.insert(key.clone()) {
            return Err(ApiError::BadRequest(format!(
                "The query parameter {key:?} is given more than once."
            )));
        }
        match key.as_str() {
            "limit" => query.limit = parse_whole(&key, &value, 1..=MAX_LIMIT)?,
            "offset" => query.offset = parse_whole(&key, &value, 0..=u32::MAX)?,
            "since" => query.since = Some(parse_time("since", &value)?),
            "until" => query.until = Some(parse_time("until", &value)?),
            "contact" => {
                if value.is_empty() {
                    return Err(ApiError::BadRequest(
                        "contact must not be empty; leave it out to list every contact.".into(),
                    ));
                }
                check_text("contact", &value, &CONTACT_NAME)?;
                query.contact = Some(value);
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "Unknown query parameter {other:?}; use limit, offset, since, until or contact."
                )))
            }
        }
    }
    if let (Some(since), Some(until)) = (query.since, query.until) {
        if since > until {
            return Err(ApiError::BadRequest(
                "since must not be later than until.".into(),
            ));
        }
    }
    Ok(query)
}

/// A whole number within `range`; the error states the range, whatever was wrong.
fn parse_whole(name: &str, value: &str, range: RangeInclusive<u32>) -> Result<u32, ApiError> {
    match value.parse::<u32>() {
        Ok(number) if range.contains(&number) => Ok(number),
        _ => Err(ApiError::BadRequest(format!(
            "{name} must be a whole number from {} to {}, not {value:?}.",
            range.start(),
            range.end()
        ))),
    }
}

/// An RFC 3339 timestamp, in UTC, within the years both databases hold (after converting to
/// UTC: `0001-01-01T00:00:00+00:01` is in year 0).
fn parse_time(name: &str, value: &str) -> Result<DateTime<Utc>, ApiError> {
    let t = DateTime::parse_from_rfc3339(value)
        .map(|t| truncate_to_micros(t.with_timezone(&Utc)))
        .map_err(|_| {
            ApiError::BadRequest(format!(
                "{name} must be an RFC 3339 timestamp such as 2024-05-01T10:00:00Z, not {value:?}."
            ))
        })?;
    if !rules::instant_fits(&t) {
        return Err(ApiError::BadRequest(format!(
            "{name} must be between {FIRST_INSTANT} and {LAST_INSTANT} in UTC; {value:?} is not."
        )));
    }
    Ok(t)
}

/// Client ids go into URLs and logs: keep them short and plain.
pub fn validate_id(id: &str) -> Result<(), ApiError> {
    let ok = !id.is_empty()
        && id.chars().count() <= MAX_ID_CHARS
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "A call id must be 1 to {MAX_ID_CHARS} letters, digits, '-', '_', '.' or ':'."
        )))
    }
}

/// Turns the body into a complete call (id and times filled in). Also says whether the client
/// gave `startedAt`, which matters when a retry is compared with what is stored.
pub fn parse_new_call(body: &[u8]) -> Result<(Call, bool), ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(
            "The request body is empty; send a JSON call record.".into(),
        ));
    }
    let new: NewCall = serde_json::from_slice(body).map_err(|err| {
        let what = if err.is_syntax() || err.is_eof() {
            "is not valid JSON"
        } else {
            "is not a valid call record"
        };
        ApiError::BadRequest(format!(
            "The request body {what}: {}.",
            describe_json_error(&err)
        ))
    })?;
    let id = match new.id {
        Some(id) => {
            validate_id(&id)?;
            id
        }
        None => uuid::Uuid::new_v4().to_string(),
    };
    let contact_name = new
        .contact_name
        .ok_or_else(|| ApiError::BadRequest("contactName is required.".into()))?;
    if contact_name.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "contactName must not be blank.".into(),
        ));
    }
    check_text(CONTACT_NAME.name, &contact_name, &CONTACT_NAME)?;
    for (value, field) in [
        (&new.account_name, &ACCOUNT_NAME),
        (&new.outcome, &OUTCOME),
        (&new.notes, &NOTES),
    ] {
        if let Some(value) = value {
            check_text(field.name, value, field)?;
        }
    }
    let duration_seconds = match new.duration_seconds {
        None => None,
        Some(n) => Some(n.as_i64().filter(|d| *d >= 0).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "durationSeconds must be a whole number of 0 or more, not {n}."
            ))
        })?),
    };
    let now = truncate_to_micros(Utc::now());
    let started_at_given = new.started_at.is_some();
    let started_at = match new.started_at {
        Some(text) => parse_time("startedAt", &text)?,
        None => now,
    };
    let call = Call {
        id,
        contact_name,
        account_name: new.account_name,
        started_at,
        duration_seconds,
        outcome: new.outcome,
        notes: new.notes,
        created_at: now,
    };
    Ok((call, started_at_given))
}

/// Text both databases store exactly: no NUL (Redshift and PostgreSQL refuse it), within the
/// field's characters and its column's bytes. An empty string is fine and stays empty.
fn check_text(name: &str, value: &str, field: &TextField) -> Result<(), ApiError> {
    match field.problem(value) {
        Some(TextProblem::Nul) => Err(ApiError::BadRequest(format!(
            "{name} must not contain the NUL character (\\u0000)."
        ))),
        Some(TextProblem::TooLong) => Err(ApiError::BadRequest(format!(
            "{name} must be at most {} characters.",
            field.max_chars
        ))),
        None => Ok(()),
    }
}

/// serde's message in a client's words: no Rust type names, no parser jargon, and without the
/// line and column noise for one-line bodies.
fn describe_json_error(err: &serde_json::Error) -> String {
    let text = err.to_string();
    let text = match text.find(" at line ") {
        Some(at) if err.line() == 1 => text[..at].to_string(),
        _ => text,
    };
    if let Some(wrong) = text
        .strip_prefix("invalid type: ")
        .filter(|rest| rest.contains(&format!("expected {JSON_OBJECT}")))
    {
        return format!(
            "it must be a JSON object such as {{\"contactName\": \"Ada Lovelace\"}}, not {}",
            json_kind_in_words(wrong)
        );
    }
    if let Some(what) = text.strip_prefix("EOF while parsing ") {
        return format!("it ends in the middle of {what}");
    }
    match text.as_str() {
        "trailing characters" => "there is more after the JSON value".to_string(),
        "recursion limit exceeded" => "it is nested too deeply".to_string(),
        _ => text,
    }
}

/// serde's name for what it found (`sequence`, `string "x"`, `integer 5`) in words.
fn json_kind_in_words(serde_kind: &str) -> &'static str {
    let word = serde_kind.split([' ', ',']).next().unwrap_or_default();
    match word {
        "sequence" => "a list",
        "string" => "text",
        "integer" | "floating" => "a number",
        "boolean" => "true or false",
        "null" => "null",
        _ => "another kind of value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_query_defaults_and_bounds() {
        assert_eq!(parse_history_query("").unwrap(), HistoryQuery::default());
        let q = parse_history_query(
            "limit=10&offset=5&contact=Ada%20Lovelace&since=2024-01-01T00:00:00Z",
        )
        .unwrap();
        assert_eq!(
            (q.limit, q.offset, q.contact.as_deref()),
            (10, 5, Some("Ada Lovelace"))
        );
        for bad in [
            "limit=0",
            "limit=501",
            "limit=ten",
            "offset=-1",
            "since=yesterday",
            "colour=red",
            "limit=1&limit=2",
        ] {
            assert!(parse_history_query(bad).is_err(), "{bad} should be refused");
        }
        assert!(
            parse_history_query("since=2024-02-01T00:00:00Z&until=2024-01-01T00:00:00Z").is_err()
        );
    }

    #[test]
    fn new_call_is_validated() {
        let (call, given) =
            parse_new_call(br#"{"contactName":"Ada","durationSeconds":60}"#).unwrap();
        assert_eq!(call.contact_name, "Ada");
        assert_eq!(call.duration_seconds, Some(60));
        assert!(!given);
        assert!(uuid::Uuid::parse_str(&call.id).is_ok());

        let refused = |body: &str| parse_new_call(body.as_bytes()).unwrap_err().to_string();
        assert!(refused(r#"{"durationSeconds":1}"#).contains("contactName is required"));
        assert!(refused(r#"{"contactName":"  "}"#).contains("blank"));
        assert!(refused(r#"{"contactName":"A","colour":"red"}"#).contains("unknown field `colour`"));
        assert!(refused(r#"{"contactName":"A","durationSeconds":-1}"#).contains("durationSeconds"));
        assert!(refused(r#"{"contactName":"A","durationSeconds":1.5}"#).contains("durationSeconds"));
        assert!(refused(r#"{"contactName": "#).contains("not valid JSON"));
        assert!(refused(r#"{"contactName":"A","startedAt":"noon"}"#).contains("startedAt"));
        assert!(
            refused(&format!(r#"{{"contactName":"{}"}}"#, "x".repeat(201))).contains("at most 200")
        );
        assert!(refused(r#"{"contactName":"A","id":"has space"}"#).contains("call id"));
        assert!(refused("").contains("empty"));
        assert!(refused("[1,2]").contains("not a valid call record"));
        assert!(refused(r#"["id-1","Ada"]"#).contains("must be a JSON object"));
    }

    #[test]
    fn range_errors_state_the_real_range() {
        let refused = |query: &str| parse_history_query(query).unwrap_err().to_string();
        for bad in ["limit=abc", "limit=0", "limit=501", "limit=-1"] {
            let value = bad.trim_start_matches("limit=");
            assert_eq!(
                refused(bad),
                format!("limit must be a whole number from 1 to 500, not {value:?}.")
            );
        }
        assert_eq!(
            refused("offset=-1"),
            "offset must be a whole number from 0 to 4294967295, not \"-1\"."
        );
        assert_eq!(parse_history_query("limit=500").unwrap().limit, 500);
    }

    #[test]
    fn body_errors_name_no_rust_types_and_say_which_field() {
        let refused = |body: &str| parse_new_call(body.as_bytes()).unwrap_err().to_string();
        let object = "it must be a JSON object such as {\"contactName\": \"Ada Lovelace\"}";
        for (body, kind) in [
            ("[1,2]", "a list"),
            ("\"Ada\"", "text"),
            ("42", "a number"),
            ("null", "null"),
            ("true", "true or false"),
        ] {
            assert_eq!(
                refused(body),
                format!("The request body is not a valid call record: {object}, not {kind}.")
            );
        }
        assert_eq!(
            refused(r#"{"contactName":5}"#),
            "The request body is not a valid call record: contactName must be text (a JSON string), not the number 5."
        );
        assert_eq!(
            refused(r#"{"contactName":"A","durationSeconds":"60"}"#),
            "The request body is not a valid call record: durationSeconds must be a whole number of seconds, not text."
        );
        assert_eq!(
            refused(r#"{"contactName":"A","notes":["x"]}"#),
            "The request body is not a valid call record: notes must be text (a JSON string), not a list."
        );
        assert_eq!(
            refused(r#"{"contactName":"A"} x"#),
            "The request body is not valid JSON: there is more after the JSON value."
        );
        assert_eq!(
            refused(r#"{"contactName":"A""#),
            "The request body is not valid JSON: it ends in the middle of an object."
        );
        // A syntax error inside a field's value is still reported as one.
        assert!(refused(r#"{"contactName":"A"#).starts_with("The request body is not valid JSON"));
        for body in [
            "[1,2]",
            r#"{"contactName":5}"#,
            r#"{"contactName":"A","x":1}"#,
        ] {
            let message = refused(body);
            assert!(
                !message.contains("NewCall") && !message.contains("struct"),
                "{message}"
            );
        }
        // A null field is an absent field.
        let (call, _) = parse_new_call(br#"{"contactName":"A","notes":null}"#).unwrap();
        assert_eq!(call.notes, None);
    }

    #[test]
    fn one_call_is_not_one_calls() {
        assert_eq!(count_of_calls(1), "1 call");
        assert_eq!(count_of_calls(0), "0 calls");
        assert_eq!(count_of_calls(15), "15 calls");
    }

    #[test]
    fn values_outside_what_both_databases_hold_are_refused() {
        let refused = |body: &str| parse_new_call(body.as_bytes()).unwrap_err().to_string();
        for started in [
            "0000-01-01T00:00:00Z",
            "0001-01-01T00:00:00+00:01",
            "9999-12-31T23:59:59-23:59",
        ] {
            let body = format!(r#"{{"contactName":"Ada","startedAt":"{started}"}}"#);
            assert!(
                refused(&body).contains("between 0001-01-01T00:00:00Z"),
                "{started}"
            );
            assert!(
                parse_history_query(&format!("since={}", started.replace('+', "%2B"))).is_err()
            );
        }
        assert!(refused(r#"{"contactName":"A\u0000da"}"#)
            .contains("contactName must not contain the NUL"));
        for field in ["accountName", "outcome", "notes"] {
            let body = format!(r#"{{"contactName":"Ada","{field}":"a\u0000b"}}"#);
            assert!(
                refused(&body).contains(&format!("{field} must not contain the NUL")),
                "{field}"
            );
        }
        assert!(parse_history_query("contact=%00").is_err());
        assert!(parse_history_query("contact=").is_err());

        // The edges themselves are taken, and empty optional strings stay empty strings.
        let (call, _) = parse_new_call(
            br#"{"contactName":"Ada","accountName":"","outcome":"","notes":"","startedAt":"0001-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(call.account_name.as_deref(), Some(""));
        assert_eq!(call.notes.as_deref(), Some(""));
        assert_eq!(call.started_at.format("%Y").to_string(), "0001");
        let (call, _) =
            parse_new_call(br#"{"contactName":"Ada","startedAt":"9999-12-31T23:59:59.999999Z"}"#)
                .unwrap();
        assert_eq!(call.started_at.format("%Y").to_string(), "9999");
    }
}
