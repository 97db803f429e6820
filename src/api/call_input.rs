//! What a client may send to `/api/calls`: the history query, a call's id and a new call's
//! body. Each is read completely and refused in words (a 400 that names the field and what it
//! accepts) before any database sees it.

use std::collections::HashSet;
use std::fmt;
use std::ops::RangeInclusive;

use chrono::{DateTime, Utc};
use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use crate::store::rules::{
    TextField, TextProblem, ACCOUNT_NAME, CONTACT_NAME, FIRST_INSTANT, LAST_INSTANT, NOTES, OUTCOME,
};
use crate::store::{rules, truncate_to_micros, Call, HistoryQuery};

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
