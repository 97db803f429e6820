//! The OpenAPI 3.1 description of the API, generated from the code: the router is built from
//! the same [`database_routes`] and [`document_routes`] that the description is collected from
//! (`utoipa-axum`), the handlers carry their statuses, and the request and response types
//! derive their schemas. `GET /openapi.json` serves it; `call-history openapi` writes it to
//! `openapi.json` at the repository's top (`make openapi`), and a test fails when that copy is
//! stale.
//!
//! What is the same for every operation is added here, once, in [`complete`]: the statuses the
//! local server's limits answer (405, 408, 414, 431), the `X-Data-Source` header of every
//! answer the router gives, the security schemes and which routes need which (the classes of
//! [`super::access::RouteClass`], as the template declares them), and the link from a recorded
//! call to `GET /api/calls/{id}`.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, OpenApi, RefOr, Response, ResponseBuilder};
use utoipa::{OpenApi as _, PartialSchema, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::access::RouteClass;
use super::error::ErrorBody;
use super::limits::ServerLimits;
use super::{calls, db, AppState};
use crate::store::{Call, Source};

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Call history API",
        description = "CRM call history on Amazon Redshift (through the Redshift Data API) with an automatic SQLite fallback. Every answer says which database served it, or would have: the `X-Data-Source` header (`redshift`, `sqlite`, or `unavailable` when neither answers), and the `source` field of the database-backed endpoints' bodies. Every error is `{\"error\": \"<one sentence>\"}`.",
        license(name = "Proprietary")
    ),
    tags(
        (name = "calls", description = "Call history"),
        (name = "database", description = "Which database serves, and the health of both"),
        (name = "admin", description = "Switches for operators. Behind a JWT authorizer they need the admin scope on the token; behind IAM, a SigV4 signature by an identity allowed to invoke them; otherwise `Authorization: Bearer <admin token>` when the function has a token (inside Lambda without one they refuse)"),
        (name = "meta", description = "This description"),
    ),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

/// The database-backed routes: their bodies say which database served (`source`).
pub fn database_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(db::status))
        .routes(routes!(db::healthz))
        .routes(routes!(db::force_sqlite))
        .routes(routes!(db::retry_redshift))
        .routes(routes!(calls::history))
        .routes(routes!(calls::get_call))
        .routes(routes!(calls::create_call))
}

/// `GET /openapi.json` itself, and the status page for people.
pub fn document_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(serve_document))
        .routes(routes!(super::status_page::page))
}

/// The whole description.
pub fn document() -> OpenApi {
    let mut document = database_routes().merge(document_routes()).into_openapi();
    complete(&mut document);
    document
}

/// The description as served and committed: pretty JSON with a final newline.
pub fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut json = serde_json::to_value(document()).unwrap_or_default();
        mark_source_header_required(&mut json);
        let mut text = serde_json::to_string_pretty(&json).unwrap_or_default();
        text.push('\n');
        text
    })
}

/// utoipa's header object has no `required`; every answer of the router does carry
/// `X-Data-Source`, so the description says so.
fn mark_source_header_required(json: &mut serde_json::Value) {
    let Some(paths) = json.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    let responses = paths
        .values_mut()
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut())
        .filter_map(|operation| operation.get_mut("responses"))
        .filter_map(|responses| responses.as_object_mut())
        .flat_map(|responses| responses.values_mut());
    for response in responses {
        if let Some(header) = response.pointer_mut("/headers/X-Data-Source") {
            header["required"] = serde_json::Value::Bool(true);
        }
    }
}

#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    summary = "This OpenAPI 3.1 description",
    responses((status = 200, description = "The description.", body = Object))
)]
pub async fn serve_document() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document_json(),
    )
}

/// The statuses the local server answers before any handler, for every operation, with the
/// limits it runs with ([`ServerLimits::default`]).
fn server_statuses() -> [(&'static str, String); 3] {
    let limits = ServerLimits::default();
    [
        (
            "408",
            "The request head or body did not arrive in time (local server).".to_string(),
        ),
        (
            "414",
            format!(
                "The URL is longer than {} KiB (local server).",
                limits.max_uri_bytes / 1024
            ),
        ),
        (
            "431",
            format!(
                "The request headers are larger than {} KiB or more than {} (local server).",
                limits.max_header_bytes / 1024,
                limits.max_headers
            ),
        ),
    ]
}

/// The three ways a caller proves who it is: the admin token where no gateway authorizer holds
/// the `Authorization` header, a JWT the gateway validates, a SigV4 signature it verifies.
fn add_security_schemes(document: &mut OpenApi) {
    let components = document.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "adminToken",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "The function's ADMIN_TOKEN (or the value of its ADMIN_TOKEN_SECRET_ARN secret), for the admin switches of a public API or a local server.",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        "jwt",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some(
                    "An access token from the stack's OpenID Connect provider (template: ApiAuth=JWT, JwtIssuer, JwtAudience), validated by API Gateway. The admin switches need the token to carry the admin scope (JwtAdminScope).",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        "sigv4",
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "Authorization",
            "AWS Signature Version 4 (service execute-api) by an IAM identity allowed execute-api:Invoke on the route (template: ApiAuth=IAM), verified by API Gateway.",
        ))),
    );
}

/// Who may call an operation of this class in some deployed stack; the empty requirement is a
/// local server or a public API. The admin switches declare theirs on the handlers.
fn security_of(class: RouteClass) -> Option<Vec<SecurityRequirement>> {
    let scheme = |name: &str| SecurityRequirement::new(name, Vec::<String>::new());
    match class {
        RouteClass::Health | RouteClass::Admin => None,
        RouteClass::Shell => Some(vec![scheme("sigv4"), SecurityRequirement::default()]),
        RouteClass::Data => Some(vec![
            scheme("jwt"),
            scheme("sigv4"),
            SecurityRequirement::default(),
        ]),
    }
}

const GATEWAY_401: &str = "Behind a JWT or IAM authorizer: no identity verified by the gateway. (API Gateway answers requests without valid credentials itself, 401 or 403 with `{\"message\": ...}`, before they reach the function.)";
const GATEWAY_403: &str =
    "The function's access mode (API_AUTHORIZATION) is misconfigured: it refuses rather than opens.";

fn complete(document: &mut OpenApi) {
    add_security_schemes(document);
    // The router stamps `X-Data-Source` on every answer it gives (`super::data_source_header`),
    // so every documented answer carries it but the local server's own refusals in front of it.
    let server_statuses = server_statuses();
    for (path, item) in document.paths.paths.iter_mut() {
        let class = RouteClass::of(path);
        for operation in operations(item) {
            if let Some(security) = security_of(class) {
                operation.security = Some(security);
                add_error_status(operation, "401", GATEWAY_401, true);
                add_error_status(operation, "403", GATEWAY_403, true);
            }
            for response in operation.responses.responses.values_mut() {
                if let RefOr::T(response) = response {
                    add_source_header(response);
                }
            }
            add_error_status(
                operation,
                "405",
                "The method is not allowed on this path.",
                true,
            );
            for (status, description) in &server_statuses {
                add_error_status(operation, status, description, false);
            }
            if operation.operation_id.as_deref() == Some("create_call") {
                link_to_get_call(operation);
            }
        }
    }
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.post.as_mut(),
        item.put.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

fn add_source_header(response: &mut Response) {
    let header = HeaderBuilder::new()
        .schema(Some(Source::schema()))
        .description(Some(
            "The database that served the request: redshift, sqlite, or unavailable.",
        ))
        .build();
    response
        .headers
        .insert("X-Data-Source".to_string(), RefOr::T(header));
}

fn add_error_status(operation: &mut Operation, status: &str, description: &str, source: bool) {
    if operation.responses.responses.contains_key(status) {
        return;
    }
    let mut response = ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    ErrorBody::name(),
                ))))
                .build(),
        )
        .build();
    if source {
        add_source_header(&mut response);
    }
    operation
        .responses
        .responses
        .insert(status.to_string(), RefOr::T(response));
}

/// Tells clients (and stateful test generators) that a recorded call's id fetches it.
fn link_to_get_call(operation: &mut Operation) {
    for status in ["200", "201"] {
        if let Some(RefOr::T(response)) = operation.responses.responses.get_mut(status) {
            let link = LinkBuilder::new()
                .operation_id("get_call")
                .parameter("id", "$response.body#/call/id")
                .description("The call just recorded.")
                .build();
            response.links.insert("GetCall".to_string(), RefOr::T(link));
        }
    }
}

// ---- schemas of the store's types --------------------------------------------------------

// The OpenAPI shape of `Call`, which lives in the store. `CallShape::from` names every field
// of `Call` (no `..`), so a field added there does not compile until it is described here; a
// test checks that both serialise alike.
/// A recorded call. Timestamps are RFC 3339 in UTC.
#[derive(serde::Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Call)]
pub struct CallShape {
    #[schema(min_length = 1, max_length = 64)]
    id: String,
    #[schema(min_length = 1, max_length = 200)]
    contact_name: String,
    #[schema(required = true, max_length = 200)]
    account_name: Option<String>,
    #[schema(format = DateTime)]
    started_at: String,
    #[schema(required = true, minimum = 0)]
    duration_seconds: Option<i64>,
    #[schema(required = true, max_length = 100)]
    outcome: Option<String>,
    #[schema(required = true, max_length = 10000)]
    notes: Option<String>,
    /// Set by the server.
    #[schema(format = DateTime)]
    created_at: String,
}

impl From<&Call> for CallShape {
    fn from(call: &Call) -> Self {
        let Call {
            id,
            contact_name,
            account_name,
            started_at,
            duration_seconds,
            outcome,
            notes,
            created_at,
        } = call.clone();
        CallShape {
            id,
            contact_name,
            account_name,
            started_at: crate::store::format_timestamp(&started_at),
            duration_seconds,
            outcome,
            notes,
            created_at: crate::store::format_timestamp(&created_at),
        }
    }
}

impl PartialSchema for Call {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        CallShape::schema()
    }
}

impl ToSchema for Call {
    fn name() -> std::borrow::Cow<'static, str> {
        "Call".into()
    }
}

// The OpenAPI shape of `Source`; `SourceShape::from` matches every variant.
/// The database that served: `redshift`, `sqlite`, or `unavailable` when neither answers.
#[derive(serde::Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = Source)]
pub enum SourceShape {
    Redshift,
    Sqlite,
    Unavailable,
}

impl From<Source> for SourceShape {
    fn from(source: Source) -> Self {
        match source {
            Source::Redshift => SourceShape::Redshift,
            Source::Sqlite => SourceShape::Sqlite,
            Source::Unavailable => SourceShape::Unavailable,
        }
    }
}

impl PartialSchema for Source {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        SourceShape::schema()
    }
}

impl ToSchema for Source {
    fn name() -> std::borrow::Cow<'static, str> {
        "Source".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::call_input;

    #[test]
    fn store_types_serialise_as_described() {
        let call = Call {
            id: "call-1".into(),
            contact_name: "Ada Lovelace".into(),
            account_name: None,
            started_at: chrono::Utc::now(),
            duration_seconds: Some(60),
            outcome: Some("connected".into()),
            notes: None,
            created_at: chrono::Utc::now(),
        };
        assert_eq!(
            serde_json::to_value(&call).unwrap(),
            serde_json::to_value(CallShape::from(&call)).unwrap()
        );
        for source in [Source::Redshift, Source::Sqlite, Source::Unavailable] {
            assert_eq!(
                serde_json::to_value(source).unwrap(),
                serde_json::to_value(SourceShape::from(source)).unwrap()
            );
        }
    }

    #[test]
    fn documented_history_parameters_are_the_ones_read() {
        let document = serde_json::to_value(document()).unwrap();
        let parameters = document["paths"]["/api/calls/history"]["get"]["parameters"]
            .as_array()
            .unwrap();
        let names: Vec<&str> = parameters
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["limit", "offset", "since", "until", "contact"]);
        for parameter in parameters {
            let (name, schema) = (parameter["name"].as_str().unwrap(), &parameter["schema"]);
            let largest = match name {
                "since" | "until" => "9999-12-31T23:59:59Z".to_string(),
                "contact" => "a".repeat(schema["maxLength"].as_u64().unwrap() as usize),
                _ => schema["maximum"].to_string(),
            };
            let query = format!("{name}={largest}");
            assert!(call_input::parse_history_query(&query).is_ok(), "{query}");
            if let Some(maximum) = schema["maximum"].as_u64() {
                let query = format!("{name}={}", maximum + 1);
                assert!(call_input::parse_history_query(&query).is_err(), "{query}");
            }
        }
    }

    #[test]
    fn every_operation_documents_the_server_statuses() {
        let document = serde_json::to_value(document()).unwrap();
        let paths = document["paths"].as_object().unwrap();
        assert!(paths.len() >= 8, "{:?}", paths.keys());
        for (path, item) in paths {
            for (method, operation) in item.as_object().unwrap() {
                for status in ["405", "408", "414", "431"] {
                    assert!(
                        operation["responses"][status].is_object(),
                        "{method} {path} lacks {status}"
                    );
                }
            }
        }
    }
}
