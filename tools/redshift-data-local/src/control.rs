//! The control API: lets a person or a script inject faults into a running
//! stand-in and read what it captured. It has its own port, because the Data
//! API port itself may be refusing connections.
//!
//! ```text
//! POST   /fault              {"fault":"hang"} | {"fault":"http-status","status":503} | ...
//! DELETE /fault
//! POST   /cloudwatch/fault   (same bodies)
//! DELETE /cloudwatch/fault
//! GET    /metrics            captured CloudWatch metrics
//! DELETE /metrics
//! GET    /operations         request counts per operation
//! GET    /quotas             per Data API operation: its quota, calls and throttled calls
//! POST   /quotas             {"ExecuteStatement":{"perSecond":5,"burst":10},"CancelStatement":null}
//!                            (burst defaults to perSecond; null lifts the operation's quota;
//!                            all or nothing: one bad entry changes no quota)
//! DELETE /quotas             lifts every quota
//! POST   /quotas/aws         AWS's quotas again
//! GET    /active-statements  {"limit":200}: the most statements active at once (null: no limit)
//! POST   /active-statements  {"limit":2} (null lifts the limit)
//! GET    /latency            {"roundTripMillis":0,"statementMillis":0}
//! POST   /latency            {"roundTripMillis":10,"statementMillis":150} (either may be left out)
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::active_statements::ActiveStatementsLimit;
use crate::cloudwatch::MetricStore;
use crate::endpoint::Endpoint;
use crate::error::StandInError;
use crate::fault::Fault;
use crate::latency::Latency;
use crate::quota::{AWS_QUOTAS, Quota, Quotas, RateLimiter};
use crate::recorder::OperationCounter;

/// Handles on everything the control API acts on.
#[derive(Clone)]
pub(crate) struct Controls {
    pub(crate) data_api: Arc<Endpoint>,
    pub(crate) cloudwatch: Arc<Endpoint>,
    pub(crate) operations: Arc<OperationCounter>,
    pub(crate) metrics: Arc<MetricStore>,
    pub(crate) limiter: Arc<RateLimiter>,
    pub(crate) latency: Arc<Latency>,
    pub(crate) active_statements: Arc<ActiveStatementsLimit>,
}

/// One Data API operation as `GET /quotas` reports it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct OperationQuota {
    /// `null` when the operation is not limited.
    quota: Option<Quota>,
    /// Every call received, throttled ones included.
    calls: usize,
    /// Calls refused because they were beyond the quota.
    throttled: usize,
}

/// A quota as `POST /quotas` takes it: the burst defaults to one second's worth.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct QuotaSpec {
    per_second: u32,
    burst: Option<u32>,
}

impl From<QuotaSpec> for Quota {
    fn from(spec: QuotaSpec) -> Self {
        Quota {
            per_second: spec.per_second,
            burst: spec.burst.unwrap_or(spec.per_second),
        }
    }
}

/// The limit on active statements as the control API reads and writes it; the member is
/// required, so that a misspelt body cannot lift the limit by leaving it out.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ActiveStatementsSpec {
    #[serde(deserialize_with = "Option::deserialize")]
    limit: Option<usize>,
}

/// Both delays, in milliseconds, as the control API reads and writes them.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LatencySpec {
    round_trip_millis: Option<u64>,
    statement_millis: Option<u64>,
}

/// A fault as the control API spells it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "kebab-case")]
enum FaultSpec {
    RefuseConnections,
    Hang,
    HttpStatus {
        status: u16,
    },
    Throttle,
    ActiveStatementsExceeded,
    ActiveWaitingRequestsExceeded,
    FailStatements {
        #[serde(default = "default_failure")]
        message: String,
    },
    AbortStatements,
    StayStarted {
        seconds: f64,
    },
    Slow {
        millis: u64,
    },
}

fn default_failure() -> String {
    "ERROR: injected failure".to_owned()
}

impl FaultSpec {
    fn into_fault(self) -> Result<Fault, String> {
        Ok(match self {
            Self::RefuseConnections => Fault::RefuseConnections,
            Self::Hang => Fault::Hang,
            Self::HttpStatus { status } if (100..=599).contains(&status) => {
                Fault::HttpStatus(status)
            }
            Self::HttpStatus { status } => return Err(format!("{status} is not an HTTP status")),
            Self::Throttle => Fault::Throttle,
            Self::ActiveStatementsExceeded => Fault::ActiveStatementsExceeded,
            Self::ActiveWaitingRequestsExceeded => Fault::ActiveWaitingRequestsExceeded,
            Self::FailStatements { message } => Fault::FailStatements(message),
            Self::AbortStatements => Fault::AbortStatements,
            Self::StayStarted { seconds } => Fault::StayStarted(
                Duration::try_from_secs_f64(seconds).map_err(|e| format!("seconds: {e}"))?,
            ),
            Self::Slow { millis } => Fault::Slow(Duration::from_millis(millis)),
        })
    }
}

pub(crate) fn router(controls: Controls) -> Router {
    Router::new()
        .route(
            "/fault",
            post(set_data_api_fault).delete(clear_data_api_fault),
        )
        .route(
            "/cloudwatch/fault",
            post(set_cloudwatch_fault).delete(clear_cloudwatch_fault),
        )
        .route("/metrics", get(metrics).delete(clear_metrics))
        .route("/operations", get(operations))
        .route(
            "/quotas",
            get(quotas).post(change_quotas).delete(lift_quotas),
        )
        .route("/quotas/aws", post(restore_aws_quotas))
        .route(
            "/active-statements",
            get(active_statements).post(set_active_statements),
        )
        .route("/latency", get(latency).post(set_latency))
        .with_state(controls)
}

async fn set_data_api_fault(State(controls): State<Controls>, body: Bytes) -> Response {
    set_fault(&controls.data_api, &body)
}

async fn clear_data_api_fault(State(controls): State<Controls>) -> Response {
    cleared(controls.data_api.clear_fault())
}

async fn set_cloudwatch_fault(State(controls): State<Controls>, body: Bytes) -> Response {
    set_fault(&controls.cloudwatch, &body)
}

async fn clear_cloudwatch_fault(State(controls): State<Controls>) -> Response {
    cleared(controls.cloudwatch.clear_fault())
}

async fn metrics(State(controls): State<Controls>) -> Response {
    Json(controls.metrics.all()).into_response()
}

async fn clear_metrics(State(controls): State<Controls>) -> Response {
    controls.metrics.clear();
    Json(json!({ "cleared": true })).into_response()
}

async fn operations(State(controls): State<Controls>) -> Response {
    Json(controls.operations.all()).into_response()
}

/// Every served Data API operation, limited or not, with what it received.
async fn quotas(State(controls): State<Controls>) -> Response {
    Json(quota_report(&controls)).into_response()
}

fn quota_report(controls: &Controls) -> BTreeMap<&'static str, OperationQuota> {
    let quotas = controls.limiter.quotas();
    AWS_QUOTAS
        .iter()
        .map(|(name, _)| {
            let report = OperationQuota {
                quota: quotas.get(name),
                calls: controls.operations.count(name),
                throttled: controls.limiter.throttle_count(name),
            };
            (*name, report)
        })
        .collect()
}

/// Changes the operations named in the body (`null` lifts one's quota), leaving the others.
async fn change_quotas(State(controls): State<Controls>, body: Bytes) -> Response {
    let changes: BTreeMap<String, Option<QuotaSpec>> = match serde_json::from_slice(&body) {
        Ok(changes) => changes,
        Err(error) => return bad_request(&format!("not a map of operations to quotas: {error}")),
    };
    let changes: BTreeMap<String, Option<Quota>> = changes
        .into_iter()
        .map(|(operation, spec)| (operation, spec.map(Quota::from)))
        .collect();
    // All or nothing: a bad entry (an unknown operation, a burst of 0) changes no quota.
    match controls.limiter.set_all(&changes) {
        Ok(()) => Json(quota_report(&controls)).into_response(),
        Err(error) => bad_request(&error.to_string()),
    }
}

async fn lift_quotas(State(controls): State<Controls>) -> Response {
    controls.limiter.replace(None);
    Json(quota_report(&controls)).into_response()
}

async fn restore_aws_quotas(State(controls): State<Controls>) -> Response {
    controls.limiter.replace(Some(Quotas::aws()));
    Json(quota_report(&controls)).into_response()
}

async fn active_statements(State(controls): State<Controls>) -> Response {
    let limit = controls.active_statements.get();
    Json(ActiveStatementsSpec { limit }).into_response()
}

async fn set_active_statements(State(controls): State<Controls>, body: Bytes) -> Response {
    let spec: ActiveStatementsSpec = match serde_json::from_slice(&body) {
        Ok(spec) => spec,
        Err(error) => return bad_request(&format!("not a limit of active statements: {error}")),
    };
    controls.active_statements.set(spec.limit);
    Json(spec).into_response()
}

async fn latency(State(controls): State<Controls>) -> Response {
    Json(latency_spec(&controls.latency)).into_response()
}

async fn set_latency(State(controls): State<Controls>, body: Bytes) -> Response {
    let spec: LatencySpec = match serde_json::from_slice(&body) {
        Ok(spec) => spec,
        Err(error) => return bad_request(&format!("not a latency: {error}")),
    };
    if let Some(millis) = spec.round_trip_millis {
        controls
            .latency
            .set_round_trip(Duration::from_millis(millis));
    }
    if let Some(millis) = spec.statement_millis {
        controls
            .latency
            .set_statement_time(Duration::from_millis(millis));
    }
    Json(latency_spec(&controls.latency)).into_response()
}

fn latency_spec(latency: &Latency) -> LatencySpec {
    let millis = |delay: Duration| Some(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
    LatencySpec {
        round_trip_millis: millis(latency.round_trip()),
        statement_millis: millis(latency.statement_time()),
    }
}

fn set_fault(endpoint: &Endpoint, body: &[u8]) -> Response {
    let spec: FaultSpec = match serde_json::from_slice(body) {
        Ok(spec) => spec,
        Err(error) => return bad_request(&format!("not a fault: {error}")),
    };
    let fault = match spec.clone().into_fault() {
        Ok(fault) => fault,
        Err(error) => return bad_request(&error),
    };
    match endpoint.set_fault(fault) {
        Ok(()) => Json(json!({ "fault": spec })).into_response(),
        Err(error) => server_error(&error),
    }
}

fn cleared(result: Result<(), StandInError>) -> Response {
    match result {
        Ok(()) => Json(json!({ "fault": null })).into_response(),
        Err(error) => server_error(&error),
    }
}

fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}

fn server_error(error: &StandInError) -> Response {
    let body = Json(json!({ "error": error.to_string() }));
    (StatusCode::INTERNAL_SERVER_ERROR, body).into_response()
}
