//! The Redshift Data API endpoint (AWS JSON 1.1): `POST /` with the operation
//! in the `X-Amz-Target` header (`RedshiftData.ExecuteStatement`, ...).

mod error;
mod ledger;
mod operations;
mod postgres;
mod results;
mod runner;
mod session;
mod statement;
mod wire;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info};

use self::error::ApiError;
pub(crate) use self::postgres::Database;
use self::statement::StatementStore;
use crate::active_statements::ActiveStatementsLimit;
use crate::fault::{Fault, FaultSwitch};
use crate::latency::Latency;
use crate::quota::RateLimiter;
use crate::recorder::OperationCounter;

const TARGET_HEADER: &str = "x-amz-target";
const TARGET_PREFIX: &str = "RedshiftData.";
const CONTENT_TYPE_JSON: &str = "application/x-amz-json-1.1";

/// State shared by the Data API's request handlers and statement tasks.
pub(crate) struct DataApi {
    database: Database,
    page_size: usize,
    statements: StatementStore,
    fault: FaultSwitch,
    operations: Arc<OperationCounter>,
    limiter: Arc<RateLimiter>,
    latency: Arc<Latency>,
    active_statements: Arc<ActiveStatementsLimit>,
    /// Cancelled when the stand-in shuts down: running statements stop.
    shutdown: CancellationToken,
    tasks: TaskTracker,
    next_query_id: AtomicI64,
}

/// What the Data API is built from; the handles are shared with the rest of the stand-in.
pub(crate) struct DataApiParts {
    pub(crate) database: Database,
    pub(crate) page_size: usize,
    pub(crate) fault: FaultSwitch,
    pub(crate) operations: Arc<OperationCounter>,
    pub(crate) limiter: Arc<RateLimiter>,
    pub(crate) latency: Arc<Latency>,
    pub(crate) active_statements: Arc<ActiveStatementsLimit>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tasks: TaskTracker,
}

impl DataApi {
    pub(crate) fn new(parts: DataApiParts) -> Self {
        Self {
            database: parts.database,
            page_size: parts.page_size.max(1),
            statements: StatementStore::default(),
            fault: parts.fault,
            operations: parts.operations,
            limiter: parts.limiter,
            latency: parts.latency,
            active_statements: parts.active_statements,
            shutdown: parts.shutdown,
            tasks: parts.tasks,
            next_query_id: AtomicI64::new(1),
        }
    }

    fn next_query_id(&self) -> i64 {
        self.next_query_id.fetch_add(1, Ordering::Relaxed)
    }
}

pub(crate) fn router(api: Arc<DataApi>) -> Router {
    Router::new().route("/", post(handle)).with_state(api)
}

/// Answers one call after the round trip *plus* the time the call itself takes, as on AWS,
/// where the network's time and the service's do not overlap: half of the round trip carries
/// the request to the service before it is handled, the other half carries the answer back
/// (throttled and faulty answers included: AWS's take the network's time too). A waited
/// ExecuteStatement thus takes the round trip plus its statement's run time, not the larger.
async fn handle(State(api): State<Arc<DataApi>>, headers: HeaderMap, body: Bytes) -> Response {
    let round_trip = api.latency.round_trip();
    let to_the_service = round_trip / 2;
    delay(to_the_service).await;
    let response = answer(&api, &headers, &body).await;
    delay(round_trip - to_the_service).await;
    response
}

/// Sleeps, unless there is nothing to wait for (the default, which tests rely on for speed).
async fn delay(duration: Duration) {
    if !duration.is_zero() {
        tokio::time::sleep(duration).await;
    }
}

async fn answer(api: &Arc<DataApi>, headers: &HeaderMap, body: &[u8]) -> Response {
    let target = headers
        .get(TARGET_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let operation = target.strip_prefix(TARGET_PREFIX).unwrap_or(target);
    api.fault.stall_if_refusing().await;
    api.operations.record(operation);
    debug!(operation, "Data API request");
    // The quota is AWS's front door: a call beyond it never reaches the service behind it.
    if !api.limiter.admit(operation) {
        info!(operation, "Data API request throttled by its quota");
        return ApiError::throttling().into_response();
    }
    if let Some(response) = obey_fault(api, operation, body).await {
        return response;
    }
    let result = match operation {
        "ExecuteStatement" => operations::execute_statement(api, body).await,
        "BatchExecuteStatement" => operations::batch_execute_statement(api, body).await,
        "DescribeStatement" => operations::describe_statement(api, body).await,
        "GetStatementResult" => operations::get_statement_result(api, body).await,
        "CancelStatement" => operations::cancel_statement(api, body).await,
        _ => Err(ApiError::unknown_operation(target)),
    };
    result.unwrap_or_else(|error| {
        info!(operation, %error, "Data API request refused");
        error.into_response()
    })
}

/// Answers for the injected fault, if it concerns this request.
async fn obey_fault(api: &DataApi, operation: &str, body: &[u8]) -> Option<Response> {
    let fault = api.fault.obey_transport_faults().await?;
    let refusal = match fault {
        Fault::HttpStatus(status) => ApiError::http_status(status),
        Fault::Throttle => ApiError::throttling(),
        Fault::ActiveStatementsExceeded if operations::submits_statements(operation) => {
            ApiError::active_statements_exceeded()
        }
        Fault::ActiveWaitingRequestsExceeded if wire::WaitMember::carried_by(body) => {
            ApiError::active_waiting_requests_exceeded()
        }
        // The statement faults act when statements run.
        _ => return None,
    };
    info!(operation, fault = ?fault, "answering with an injected fault");
    Some(refusal.into_response())
}

/// A response with a JSON body, as AWS JSON 1.1 services send them.
pub(crate) fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let request_id = uuid::Uuid::new_v4().to_string();
            let headers = [
                (CONTENT_TYPE.as_str(), CONTENT_TYPE_JSON),
                ("x-amzn-requestid", &request_id),
            ];
            (status, headers, bytes).into_response()
        }
        Err(err) => {
            error!(error = %err, "cannot serialize a response");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
