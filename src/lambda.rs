//! The Lambda edge: every event API Gateway can deliver gets an HTTP answer.
//!
//! `lambda_http` turns an API Gateway event into an `http::Request` with `expect`s: a raw query
//! string holding a character a URI cannot hold (`contact="Ada"`, a raw space, `<b>`), a body
//! marked base64 that is not base64, a header value outside visible ASCII, or a host it cannot
//! parse end the invocation instead of reaching the router, and API Gateway then answers 500
//! without JSON. So the runtime here takes the event as plain JSON ([`serde_json::Value`]),
//! repairs what a URI cannot hold ([`repair_event`]), refuses what cannot be repaired with a JSON
//! 400, and only then lets `lambda_http` do the rest with its own types: its event
//! deserialisation (`LambdaRequest`), its request conversion and `RequestExt` (through its
//! `Adapter`), and its response conversion (`LambdaResponse`). Anything that still fails in the
//! conversion answers a JSON 400 too; nothing becomes an invocation error.
//!
//! The router is the same one the local server runs; [`handle_event`] is the entry, and
//! `handle_lambda_request` serves one converted request through the router.

use std::panic::{catch_unwind, AssertUnwindSafe};

use axum::http::{header, HeaderValue, StatusCode, Uri};
use base64::Engine;
use lambda_http::aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayV2httpResponse};
use lambda_http::http::HeaderMap;
use lambda_http::request::{LambdaRequest, RequestContext};
use lambda_http::tower::{Service, ServiceExt};
use lambda_http::{Adapter, Body, LambdaEvent, RequestExt};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde_json::{json, Map, Value};

/// The refusal of an event that is not an API Gateway HTTP request (not a JSON object, or a shape
/// `lambda_http` does not know).
const NOT_AN_HTTP_EVENT: &str =
    "The request is not an API Gateway HTTP request this function can read.";

/// The answer when the router's response cannot be turned into the event's response.
const NO_RESPONSE: &str = "The response could not be produced.";

/// Runs the Lambda runtime loop with the router; `AWS_LAMBDA_MAX_CONCURRENCY` above 1 serves
/// that many invocations at once (Lambda Managed Instances), as `lambda_http::run_concurrent`.
/// Each answer, once made, is announced on `answered` (for the work after it).
pub async fn run(
    router: axum::Router,
    answered: Option<tokio::sync::mpsc::UnboundedSender<()>>,
) -> Result<(), lambda_http::Error> {
    let handler = lambda_http::service_fn(move |event: LambdaEvent<Value>| {
        let router = router.clone();
        let answered = answered.clone();
        async move {
            // Announced when the invocation ends, however it ends: the runtime answers a
            // handler that panicked with an error, and the extension must not wait for an
            // answer that never comes (the environment would run to its timeout).
            let _announce = answered.map(AnnounceOnDrop);
            let answer = handle_event(router, event).await;
            Ok::<_, lambda_http::Error>(answer)
        }
    });
    lambda_http::lambda_runtime::run_concurrent(handler).await
}

/// Tells the work after an answer that the invocation is over, when dropped (also while a
/// panic unwinds).
struct AnnounceOnDrop(tokio::sync::mpsc::UnboundedSender<()>);

impl Drop for AnnounceOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

/// Answers one raw API Gateway event. Never fails: what cannot be served is answered with a
/// JSON 400 in the response shape of the event's API.
///
/// The answer is JSON (what the runtime sends back): `lambda_http` keeps its response type
/// private, so its answers are serialised here rather than named.
pub async fn handle_event(router: axum::Router, event: LambdaEvent<Value>) -> Value {
    let LambdaEvent { payload, context } = event;
    let shape = EventShape::of(&payload);
    let request = match prepare(payload) {
        Ok(request) => request,
        Err(refusal) => {
            tracing::warn!(reason = %refusal.log_reason, "⚠️ Refused a Lambda event: {}", refusal.message);
            return error_response(shape, StatusCode::BAD_REQUEST, &refusal.message);
        }
    };
    let service = lambda_http::service_fn(move |request: lambda_http::Request| {
        handle_lambda_request(router.clone(), request)
    });
    let mut adapter = Adapter::from(service);
    // `Adapter::call` converts the event synchronously, so a conversion that panics despite the
    // repairs is caught here; the router itself runs in the future afterwards.
    let call = catch_unwind(AssertUnwindSafe(|| {
        adapter.call(LambdaEvent::new(request, context))
    }));
    let future = match call {
        Ok(future) => future,
        Err(_) => {
            tracing::warn!("⚠️ Refused a Lambda event that lambda_http could not convert");
            return error_response(
                shape,
                StatusCode::BAD_REQUEST,
                "The request could not be read as an HTTP request.",
            );
        }
    };
    let converted = match future.await {
        Ok(response) => serde_json::to_value(response),
        Err(err) => {
            tracing::error!(error = %err, "❌ The response could not be produced");
            return error_response(shape, StatusCode::INTERNAL_SERVER_ERROR, NO_RESPONSE);
        }
    };
    converted.unwrap_or_else(|err| {
        tracing::error!(error = %err, "❌ The response could not be serialised");
        error_response(shape, StatusCode::INTERNAL_SERVER_ERROR, NO_RESPONSE)
    })
}

/// Serves one converted Lambda request through the router. The path loses the API Gateway stage
/// prefix (`/prod/db/status` under stage `prod`), so routes match under any stage. The body is
/// collected so that the response is `Sync`, as the concurrent runtime needs; API Gateway
/// buffers responses anyway.
async fn handle_lambda_request(
    router: axum::Router,
    mut request: lambda_http::Request,
) -> Result<lambda_http::Response<Body>, lambda_http::Error> {
    strip_stage(&mut request);
    let response = router.oneshot(request.map(axum::body::Body::new)).await?;
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await?;
    let body = match String::from_utf8(Vec::from(bytes)) {
        Ok(text) if text.is_empty() => Body::Empty,
        Ok(text) => Body::Text(text),
        Err(raw) => Body::Binary(raw.into_bytes()),
    };
    Ok(lambda_http::Response::from_parts(parts, body))
}

/// Which API Gateway payload an event is, told from its JSON: the answer must have that
/// payload's response shape even when the event cannot be converted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventShape {
    /// REST API (payload 1.0): `httpMethod`, `path`, `multiValueHeaders`.
    RestV1,
    /// HTTP API (payload 2.0), the one the template uses; also the answer to anything unknown.
    HttpV2,
}

impl EventShape {
    pub fn of(event: &Value) -> Self {
        let is_v2 = event.get("version").and_then(Value::as_str) == Some("2.0")
            || event.get("rawPath").is_some();
        if !is_v2 && event.get("httpMethod").is_some() {
            EventShape::RestV1
        } else {
            EventShape::HttpV2
        }
    }
}

/// Why an event is answered 400 without reaching the router.
#[derive(Debug)]
pub struct Refusal {
    /// For the client: one sentence.
    pub message: String,
    /// For the log: what did not fit (never a value from the event).
    pub log_reason: String,
}

/// Repairs the event and converts it with `lambda_http`'s own deserialisation.
pub fn prepare(mut event: Value) -> Result<LambdaRequest, Refusal> {
    repair_event(&mut event)?;
    // `LambdaRequest` reads events through `RawValue`, which needs JSON text.
    let text = event.to_string();
    serde_json::from_str::<LambdaRequest>(&text).map_err(|err| Refusal {
        message: NOT_AN_HTTP_EVENT.into(),
        // serde's message can quote a value from the event (a header, a token): only its kind
        // and place go to the log.
        log_reason: format!(
            "lambda_http could not read the event ({:?} error at line {}, column {})",
            err.classify(),
            err.line(),
            err.column()
        ),
    })
}

/// Characters a URI path keeps as they are: RFC 3986 unreserved and sub-delims, `:`, `@`, `/`,
/// and `%` (checked separately). Everything else is percent-encoded as UTF-8.
const PATH_ENCODE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}')
    .add(b'%');

/// The query keeps `?` and `/` as well (RFC 3986 `query`).
const QUERY_ENCODE: &AsciiSet = &PATH_ENCODE.remove(b'?');

/// Makes the parts of the event that `lambda_http` puts into the URI or the header map
/// acceptable to them, without changing what a client meant:
///
/// - `rawPath`, `rawQueryString` (HTTP API) and `path` (REST API): characters a URI cannot hold
///   are percent-encoded (a raw space becomes `%20`, which the router decodes back to a space);
///   valid `%XX` escapes stay as they are. REST API query parameters need nothing: `lambda_http`
///   form-encodes them itself.
/// - a `Host` header or `requestContext.domainName` that is no host name is dropped (the URI is
///   then relative), as is an `X-Forwarded-Proto` other than `http`/`https`.
/// - header values outside visible ASCII (which `http` refuses) are dropped, so that one odd
///   header does not cost the whole request.
/// - a JWT authorizer's claims that are not text (a number such as `exp`, a list such as
///   `cognito:groups`) become their JSON text: `lambda_http` reads claims as text only, and
///   would otherwise refuse every request of a token with such a claim. What API Gateway
///   verified is unchanged; the function reads only the scopes and the subject.
/// - a body marked `isBase64Encoded` that is not base64 is refused: there is no body to repair.
pub fn repair_event(event: &mut Value) -> Result<(), Refusal> {
    let Some(object) = event.as_object_mut() else {
        return Err(Refusal {
            message: NOT_AN_HTTP_EVENT.into(),
            log_reason: "the event is not a JSON object".into(),
        });
    };
    encode_string_field(object, "rawPath", PATH_ENCODE);
    encode_string_field(object, "path", PATH_ENCODE);
    encode_string_field(object, "rawQueryString", QUERY_ENCODE);
    for field in ["headers", "multiValueHeaders"] {
        if let Some(Value::Object(headers)) = object.get_mut(field) {
            repair_headers(headers);
        }
    }
    if let Some(Value::Object(context)) = object.get_mut("requestContext") {
        if let Some(domain) = context.get("domainName").and_then(Value::as_str) {
            if !is_host(domain) {
                context.remove("domainName");
            }
        }
        if let Some(jwt) = context
            .get_mut("authorizer")
            .and_then(|authorizer| authorizer.get_mut("jwt"))
        {
            stringify_jwt_claims(jwt);
        }
    }
    check_base64_body(object)
}

/// Turns every claim and scope of a JWT authorizer's verdict into text (a `null` claim is
/// dropped), the only form `lambda_http` reads.
fn stringify_jwt_claims(jwt: &mut Value) {
    if let Some(Value::Object(claims)) = jwt.get_mut("claims") {
        claims.retain(|_, value| !value.is_null());
        for value in claims.values_mut() {
            as_text(value);
        }
    }
    if let Some(Value::Array(scopes)) = jwt.get_mut("scopes") {
        scopes.retain(|value| !value.is_null());
        scopes.iter_mut().for_each(as_text);
    }
}

fn as_text(value: &mut Value) {
    if !value.is_string() {
        *value = Value::String(value.to_string());
    }
}

fn encode_string_field(object: &mut Map<String, Value>, field: &str, set: &'static AsciiSet) {
    if let Some(Value::String(text)) = object.get_mut(field) {
        if let Some(encoded) = encode_uri_part(text, set) {
            *text = encoded;
        }
    }
}

/// Percent-encodes what `set` names, keeping `%XX` escapes that are already there. `None` when
/// the text needs no change.
pub fn encode_uri_part(text: &str, set: &'static AsciiSet) -> Option<String> {
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(at) = rest.find('%') {
        out.extend(utf8_percent_encode(&rest[..at], set));
        if is_escape(rest, at) {
            out.push_str(&rest[at..at + 3]);
            rest = &rest[at + 3..];
        } else {
            out.push_str("%25");
            rest = &rest[at + 1..];
        }
    }
    out.extend(utf8_percent_encode(rest, set));
    (out != text).then_some(out)
}

/// True when `text[at]` starts a `%XX` escape.
fn is_escape(text: &str, at: usize) -> bool {
    let bytes = text.as_bytes();
    bytes[at] == b'%'
        && bytes.get(at + 1).is_some_and(u8::is_ascii_hexdigit)
        && bytes.get(at + 2).is_some_and(u8::is_ascii_hexdigit)
}

fn repair_headers(headers: &mut Map<String, Value>) {
    headers.retain(|name, value| {
        let name_ok = axum::http::HeaderName::from_bytes(name.as_bytes()).is_ok();
        let value_ok = match value {
            Value::String(text) => HeaderValue::from_str(text).is_ok(),
            Value::Array(items) => items.iter().all(|item| {
                item.as_str()
                    .is_some_and(|text| HeaderValue::from_str(text).is_ok())
            }),
            Value::Null => true,
            _ => false,
        };
        name_ok && value_ok
    });
    let host_ok = |value: &Value| value.as_str().is_none_or(is_host);
    headers.retain(|name, value| !name.eq_ignore_ascii_case("host") || host_ok(value));
    headers.retain(|name, value| {
        !name.eq_ignore_ascii_case("x-forwarded-proto")
            || value.as_str().is_none_or(|v| v == "http" || v == "https")
    });
}

/// A host name, an IPv4 address or a bracketed IPv6 address, with an optional port: what
/// `lambda_http` can put in front of the path.
fn is_host(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':' | '[' | ']'))
        && format!("https://{text}/").parse::<Uri>().is_ok()
}

fn check_base64_body(object: &Map<String, Value>) -> Result<(), Refusal> {
    let marked = object.get("isBase64Encoded").and_then(Value::as_bool) == Some(true);
    let body = object.get("body").and_then(Value::as_str);
    match body {
        Some(body) if marked => base64::engine::general_purpose::STANDARD
            .decode(body)
            .map(|_| ())
            .map_err(|_| Refusal {
                message: "The request body is marked as base64-encoded but is not valid base64."
                    .into(),
                log_reason: "undecodable base64 body".into(),
            }),
        _ => Ok(()),
    }
}

/// Removes the API Gateway stage from the front of the path. `lambda_http` puts it there for
/// every stage but `$default` (an HTTP API's `rawPath` already has it; for a REST API it adds
/// it), while the routes are the same under every stage.
fn strip_stage(request: &mut lambda_http::Request) {
    let stage = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.stage.clone(),
        Some(RequestContext::ApiGatewayV1(context)) => context.stage.clone(),
        _ => None,
    };
    let Some(stage) = stage.filter(|s| !s.is_empty() && s != "$default") else {
        return;
    };
    let prefix = format!("/{stage}");
    let path = request.uri().path();
    let rest = match path.strip_prefix(&prefix) {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        _ => return,
    };
    let path_and_query = match request.uri().query() {
        Some(query) => format!("{rest}?{query}"),
        None => rest.to_string(),
    };
    let mut parts = request.uri().clone().into_parts();
    if let Ok(path_and_query) = path_and_query.parse() {
        parts.path_and_query = Some(path_and_query);
        if let Ok(uri) = Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
}

/// The `{"error": ...}` answer in the response shape of the event's API.
pub fn error_response(shape: EventShape, status: StatusCode, message: &str) -> Value {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    let body = Some(Body::Text(json!({ "error": message }).to_string()));
    let status_code = i64::from(status.as_u16());
    match shape {
        EventShape::HttpV2 => {
            let mut response = ApiGatewayV2httpResponse::default();
            response.status_code = status_code;
            response.headers = headers;
            response.body = body;
            serialised(&response)
        }
        EventShape::RestV1 => {
            let mut response = ApiGatewayProxyResponse::default();
            response.status_code = status_code;
            // REST APIs merge both maps; the multi-value one alone avoids doubled headers.
            response.multi_value_headers = headers;
            response.body = body;
            serialised(&response)
        }
    }
}

/// A response struct as the JSON the runtime sends. These structs hold only strings, numbers
/// and header maps, so serialising them cannot fail; the fallback is the bare status.
fn serialised(response: &impl serde::Serialize) -> Value {
    serde_json::to_value(response).unwrap_or_else(|_| json!({ "statusCode": 500 }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_parts_are_encoded_once() {
        let query = |q: &str| encode_uri_part(q, QUERY_ENCODE);
        assert_eq!(query("limit=10&contact=Ada%20Lovelace"), None);
        assert_eq!(
            query("contact=Ada Lovelace").as_deref(),
            Some("contact=Ada%20Lovelace")
        );
        assert_eq!(
            query(r#"contact="Ada""#).as_deref(),
            Some("contact=%22Ada%22")
        );
        assert_eq!(query("contact=<b>").as_deref(), Some("contact=%3Cb%3E"));
        assert_eq!(query("a=100%").as_deref(), Some("a=100%25"));
        assert_eq!(query("a=é").as_deref(), Some("a=%C3%A9"));
        let path = |p: &str| encode_uri_part(p, PATH_ENCODE);
        assert_eq!(path("/api/calls/%2e%2e"), None);
        assert_eq!(path("/api/calls/a b").as_deref(), Some("/api/calls/a%20b"));
        assert_eq!(path("/api/calls/a?b").as_deref(), Some("/api/calls/a%3Fb"));
    }

    #[test]
    fn hosts_are_checked() {
        assert!(is_host("r3pmxmplak.execute-api.us-east-1.amazonaws.com"));
        assert!(is_host("localhost:9000"));
        assert!(is_host("[::1]:8080"));
        assert!(!is_host("a b"));
        assert!(!is_host("evil.com/path"));
        assert!(!is_host(""));
    }

    #[test]
    fn jwt_claims_that_are_not_text_become_text() {
        let mut event = json!({
            "requestContext": {"authorizer": {"jwt": {
                "claims": {"sub": "u1", "exp": 1710242165, "groups": ["a", "b"], "nick": null},
                "scopes": ["crm/admin", 7]
            }}}
        });
        repair_event(&mut event).map_err(|r| r.log_reason).unwrap();
        let jwt = &event["requestContext"]["authorizer"]["jwt"];
        assert_eq!(
            jwt["claims"],
            json!({"sub": "u1", "exp": "1710242165", "groups": "[\"a\",\"b\"]"})
        );
        assert_eq!(jwt["scopes"], json!(["crm/admin", "7"]));
    }

    #[test]
    fn shape_is_told_from_the_json() {
        assert_eq!(
            EventShape::of(&json!({"version": "2.0"})),
            EventShape::HttpV2
        );
        assert_eq!(
            EventShape::of(&json!({"httpMethod": "GET", "path": "/"})),
            EventShape::RestV1
        );
        assert_eq!(EventShape::of(&json!([1, 2])), EventShape::HttpV2);
    }
}
