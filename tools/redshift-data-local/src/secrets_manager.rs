//! A Secrets Manager endpoint, enough for `GetSecretValue`: what a service reads its own
//! secrets with at start. It speaks the wire protocol the SDK uses, AWS JSON 1.1:
//! `POST /` with `X-Amz-Target: secretsmanager.GetSecretValue` and a JSON body naming the
//! `SecretId` (an ARN or a name), answered with the secret's `SecretString`, or with the
//! service's `ResourceNotFoundException`. Point the SDK at it with
//! `AWS_ENDPOINT_URL_SECRETS_MANAGER`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), redshift_data_local::StandInError> {
//! use redshift_data_local::SecretsManager;
//! let secrets = SecretsManager::start().await?;
//! secrets.put_secret("arn:aws:secretsmanager:us-east-1:123456789012:secret:admin-AbCdEf", "token");
//! // AWS_ENDPOINT_URL_SECRETS_MANAGER=secrets.url()
//! secrets.shutdown().await;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use crate::error::StandInError;
use crate::server::HttpServer;

const TARGET_PREFIX: &str = "secretsmanager.";
const CONTENT_TYPE_JSON_11: &str = "application/x-amz-json-1.1";

/// Secrets by the id they are asked for (an ARN or a name).
type Secrets = Arc<Mutex<HashMap<String, String>>>;

/// A running Secrets Manager endpoint. It stops on [`SecretsManager::shutdown`] or when dropped.
pub struct SecretsManager {
    server: HttpServer,
    secrets: Secrets,
    requests: Arc<Mutex<usize>>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

#[derive(Clone)]
struct Shared {
    secrets: Secrets,
    requests: Arc<Mutex<usize>>,
}

impl SecretsManager {
    /// Listens on a free port of 127.0.0.1. Must be called inside a Tokio runtime.
    pub async fn start() -> Result<SecretsManager, StandInError> {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Listens on `addr` (port 0 picks a free port).
    pub async fn start_on(addr: SocketAddr) -> Result<SecretsManager, StandInError> {
        let shared = Shared {
            secrets: Secrets::default(),
            requests: Arc::default(),
        };
        let router = Router::new()
            .route("/", post(handle))
            .with_state(shared.clone());
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let server = HttpServer::start(
            "secrets-manager",
            addr,
            router,
            shutdown.clone(),
            tasks.clone(),
        )?;
        Ok(SecretsManager {
            server,
            secrets: shared.secrets,
            requests: shared.requests,
            shutdown,
            tasks,
        })
    }

    /// The endpoint's URL, for `AWS_ENDPOINT_URL_SECRETS_MANAGER`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Stores `value` as the `SecretString` of the secret asked for as `id`.
    pub fn put_secret(&self, id: &str, value: &str) {
        lock(&self.secrets).insert(id.to_owned(), value.to_owned());
    }

    /// Requests received so far, answered or not.
    pub fn request_count(&self) -> usize {
        *lock(&self.requests)
    }

    /// Stops listening and waits for open connections to end.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.server.close();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

impl Drop for SecretsManager {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetSecretValueRequest {
    secret_id: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct GetSecretValueResponse<'a> {
    #[serde(rename = "ARN")]
    arn: String,
    name: &'a str,
    secret_string: &'a str,
    version_id: &'static str,
    version_stages: [&'static str; 1],
    /// Epoch seconds, as the protocol sends timestamps.
    created_date: f64,
}

async fn handle(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    *lock(&shared.requests) += 1;
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(operation) = target.strip_prefix(TARGET_PREFIX) else {
        return error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            "Missing or unknown X-Amz-Target.",
        );
    };
    if operation != "GetSecretValue" {
        return error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            &format!("The local Secrets Manager only supports GetSecretValue, not {operation}."),
        );
    }
    let request: GetSecretValueRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => {
            return error(
                StatusCode::BAD_REQUEST,
                "SerializationException",
                &err.to_string(),
            );
        }
    };
    let Some(id) = request.secret_id.filter(|id| !id.is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidParameterException",
            "SecretId is required.",
        );
    };
    let value = lock(&shared.secrets).get(&id).cloned();
    let Some(value) = value else {
        info!(secret = %id, "GetSecretValue for an unknown secret");
        return error(
            StatusCode::BAD_REQUEST,
            "ResourceNotFoundException",
            "Secrets Manager can't find the specified secret.",
        );
    };
    info!(secret = %id, "GetSecretValue");
    let name = id.rsplit(':').next().unwrap_or(&id);
    let arn = if id.starts_with("arn:") {
        id.clone()
    } else {
        format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{id}")
    };
    json(
        StatusCode::OK,
        &GetSecretValueResponse {
            arn,
            name,
            secret_string: &value,
            version_id: "00000000-0000-4000-8000-000000000001",
            version_stages: ["AWSCURRENT"],
            created_date: 1_700_000_000.0,
        },
    )
}

/// An AWS JSON 1.1 error: the type in `__type`, as the SDK reads it.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    json(
        status,
        &serde_json::json!({ "__type": code, "message": message }),
    )
}

fn json(status: StatusCode, body: &impl Serialize) -> Response {
    let body = serde_json::to_vec(body).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, CONTENT_TYPE_JSON_11)], body).into_response()
}
