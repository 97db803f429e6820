//! The HTTP router: the same one serves Lambda events and the local server.

pub mod access;
pub mod admin_policy;
pub mod call_input;
pub mod calls;
pub mod db;
pub mod error;
pub mod limits;
pub mod openapi;
pub mod status_page;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, Method, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use chrono::{DateTime, SecondsFormat, Utc};

use crate::store::failover::FailoverStore;
use crate::store::Source;
use access::{Access, GatewayIdentity, RouteClass};
use admin_policy::AdminPolicy;
use error::ApiError;

pub use limits::MAX_BODY_BYTES;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<FailoverStore>,
    pub admin: AdminPolicy,
}

/// The router, with the access mode the template gives the function (`API_AUTHORIZATION`, read
/// here once: see [`access`]).
pub fn router(state: AppState) -> Router {
    let access = Access::from_env();
    note_unused_admin_token(&access, &state.admin);
    router_with_access(state, access)
}

/// The router, built from the same route lists as the OpenAPI description ([`openapi`]), behind
/// the gate of `access`. Every response carries `X-Data-Source`, errors for unknown routes,
/// wrong methods and refused credentials too, so that a client or a load balancer can always
/// read which database is serving.
pub fn router_with_access(state: AppState, access: Access) -> Router {
    let (database_backed, _) = openapi::database_routes().split_for_parts();
    let (documents, _) = openapi::document_routes().split_for_parts();
    database_backed
        .merge(documents)
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(access, gateway_gate))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            data_source_header,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(json_charset))
        .with_state(state)
}

/// Marks a response with the database that served it; [`data_source_header`] turns the mark
/// into the `X-Data-Source` header.
pub fn with_source(source: Source, response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    response.extensions_mut().insert(source);
    response
}

/// The time a database-backed answer holds the warehouse as of: the `asOf` field of its body
/// and the `X-Data-As-Of` header (RFC 3339 in UTC, milliseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AsOf(pub Option<DateTime<Utc>>);

impl AsOf {
    /// As the body and the header write it; `None` when no pull ever reached Redshift.
    pub fn text(self) -> Option<String> {
        self.0
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

/// Marks a database-backed answer with its source and the time it holds the warehouse as of.
pub fn served(source: Source, as_of: AsOf, response: impl IntoResponse) -> Response {
    let mut response = with_source(source, response);
    if let Some(text) = as_of.text() {
        if let Ok(value) = HeaderValue::from_str(&text) {
            response.headers_mut().insert(AS_OF_HEADER, value);
        }
    }
    response
}

/// The header that says as of when an answer holds the warehouse.
pub const AS_OF_HEADER: &str = "x-data-as-of";

/// Under a gateway authorizer the admin token is not what authorizes the switches; saying so at
/// start saves an operator from wondering why a token they set is not asked for.
fn note_unused_admin_token(access: &Access, tokens: &AdminPolicy) {
    if matches!(access, Access::Iam | Access::Jwt { .. }) && matches!(tokens, AdminPolicy::Token(_))
    {
        tracing::info!(
            "An admin token is configured, but the API gateway authorizes ({}): the admin switches need {}, not the token",
            access.page_name(),
            match access {
                Access::Jwt { .. } => "the admin scope on the caller's JWT",
                _ => "a SigV4 signature by an identity IAM lets invoke them",
            }
        );
    }
}

/// Refuses what the gateway would have refused ([`Access::admit`]), and hands the mode on to the
/// handlers that decide more (the admin switches, the status page).
async fn gateway_gate(State(access): State<Access>, mut request: Request, next: Next) -> Response {
    let identity = GatewayIdentity::of(request.extensions());
    if let Err(refusal) = access.admit(RouteClass::of(request.uri().path()), &identity) {
        return refusal.into_response();
    }
    request.extensions_mut().insert(access);
    next.run(request).await
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("There is no endpoint at {}.", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}.", uri.path()))
}

/// Every response says which database served it. Handlers put the [`Source`] they used into the
/// response; otherwise (an early error, an unknown route) the current one is given.
async fn data_source_header(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let source = response
        .extensions()
        .get::<Source>()
        .copied()
        .unwrap_or_else(|| state.store.current_source());
    response
        .headers_mut()
        .insert("x-data-source", HeaderValue::from_static(source.as_str()));
    response
}

/// All bodies are JSON in UTF-8, and say so.
async fn json_charset(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/json");
    if is_json {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
    }
    response
}
