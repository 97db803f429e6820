//! The CloudWatch endpoint, enough for PutMetricData. The current
//! `aws-sdk-cloudwatch` speaks Smithy RPC v2 CBOR:
//! `POST /service/GraniteServiceVersion20100801/operation/<Operation>` with a
//! CBOR body, gzip-compressed when large.

mod decode;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use ciborium::Value;
use serde::Serialize;
use tracing::{debug, error, info};

use self::decode::DecodeError;
use crate::fault::{Fault, FaultSwitch};
use crate::lock;
use crate::recorder::OperationCounter;

const SERVICE: &str = "GraniteServiceVersion20100801";
const CONTENT_TYPE_CBOR: &str = "application/cbor";

/// One metric datum received through PutMetricData.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CapturedMetric {
    pub namespace: String,
    pub metric_name: String,
    pub value: Option<f64>,
    pub unit: Option<String>,
    /// `(Name, Value)` pairs, in the order sent.
    pub dimensions: Vec<(String, String)>,
    /// Epoch seconds.
    pub timestamp: Option<f64>,
    /// The `Values` of a datum that sends many values at once.
    pub values: Vec<f64>,
    /// The `Counts` matching `values`.
    pub counts: Vec<f64>,
    pub statistic_values: Option<StatisticValues>,
    pub storage_resolution: Option<i64>,
}

/// A datum's pre-aggregated `StatisticValues`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatisticValues {
    pub sample_count: f64,
    pub sum: f64,
    pub minimum: f64,
    pub maximum: f64,
}

/// State shared by the CloudWatch request handlers.
pub(crate) struct CloudWatch {
    pub(crate) fault: FaultSwitch,
    pub(crate) operations: Arc<OperationCounter>,
    pub(crate) metrics: Arc<MetricStore>,
}

pub(crate) fn router(cloudwatch: Arc<CloudWatch>) -> Router {
    Router::new()
        .route("/service/{service}/operation/{operation}", post(handle))
        .with_state(cloudwatch)
}

async fn handle(
    State(cloudwatch): State<Arc<CloudWatch>>,
    Path((service, operation)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    cloudwatch.fault.stall_if_refusing().await;
    cloudwatch.operations.record(&operation);
    debug!(operation, "CloudWatch request");
    if let Some(fault) = cloudwatch.fault.obey_transport_faults().await
        && let Some(response) = fault_response(&fault)
    {
        info!(operation, ?fault, "answering with an injected fault");
        return response;
    }
    if service != SERVICE || operation != "PutMetricData" {
        return error_response(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            &format!(
                "The local CloudWatch endpoint only supports PutMetricData, not {service}/{operation}."
            ),
        );
    }
    let gzipped = headers
        .get(CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    match put_metric_data(&body, gzipped) {
        Ok(metrics) => {
            info!(count = metrics.len(), gzipped, "metrics received");
            cloudwatch.metrics.extend(metrics);
            cbor_response(StatusCode::OK, &Value::Map(Vec::new()))
        }
        Err(error) => {
            info!(%error, "PutMetricData refused");
            decode_error_response(&error)
        }
    }
}

fn put_metric_data(body: &[u8], gzipped: bool) -> Result<Vec<CapturedMetric>, DecodeError> {
    if gzipped {
        decode::put_metric_data(&decode::decompress(body)?)
    } else {
        decode::put_metric_data(body)
    }
}

fn fault_response(fault: &Fault) -> Option<Response> {
    match fault {
        Fault::HttpStatus(status) => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let code = match status {
                StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailable",
                s if s.is_server_error() => "InternalServiceError",
                _ => "InvalidParameterValue",
            };
            Some(error_response(status, code, "Injected fault"))
        }
        Fault::Throttle => Some(error_response(
            StatusCode::BAD_REQUEST,
            "Throttling",
            "Rate exceeded",
        )),
        _ => None,
    }
}

fn decode_error_response(error: &DecodeError) -> Response {
    let code = match error {
        DecodeError::Gzip(_) | DecodeError::Cbor(_) => "SerializationException",
        DecodeError::Missing(_) => "MissingParameter",
        DecodeError::Invalid(_) => "InvalidParameterValue",
    };
    error_response(StatusCode::BAD_REQUEST, code, &error.to_string())
}

/// An RPC v2 CBOR error: a CBOR map naming the error type.
fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = Value::Map(vec![
        (Value::Text("__type".into()), Value::Text(code.into())),
        (Value::Text("message".into()), Value::Text(message.into())),
    ]);
    cbor_response(status, &body)
}

fn cbor_response(status: StatusCode, body: &Value) -> Response {
    let mut bytes = Vec::new();
    if let Err(err) = ciborium::into_writer(body, &mut bytes) {
        error!(error = %err, "cannot encode a CBOR response");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let headers = [
        (CONTENT_TYPE.as_str(), CONTENT_TYPE_CBOR),
        ("smithy-protocol", "rpc-v2-cbor"),
    ];
    (status, headers, bytes).into_response()
}

/// Every metric datum received, in order.
#[derive(Debug, Default)]
pub(crate) struct MetricStore {
    metrics: Mutex<Vec<CapturedMetric>>,
}

impl MetricStore {
    pub(crate) fn extend(&self, metrics: Vec<CapturedMetric>) {
        lock(&self.metrics).extend(metrics);
    }

    pub(crate) fn all(&self) -> Vec<CapturedMetric> {
        lock(&self.metrics).clone()
    }

    pub(crate) fn clear(&self) {
        lock(&self.metrics).clear();
    }
}
