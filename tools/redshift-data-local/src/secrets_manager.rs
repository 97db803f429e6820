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
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use crate::data_api::json_response;
use crate::error::StandInError;
use crate::lock;
use crate::recorder::OperationCounter;
use crate::server::HttpServer;

const TARGET_PREFIX: &str = "secretsmanager.";

/// Secrets by the id they are asked for (an ARN or a name).
type Secrets = Arc<Mutex<HashMap<String, String>>>;

/// A running Secrets Manager endpoint. It stops on [`SecretsManager::shutdown`] or when dropped.
pub struct SecretsManager {
    server: HttpServer,
    shared: Shared,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

/// What the request handler and the owner of the endpoint both reach.
#[derive(Clone, Default)]
struct Shared {
    secrets: Secrets,
    operations: Arc<OperationCounter>,
}

impl SecretsManager {
    /// Listens on a free port of 127.0.0.1. Must be called inside a Tokio runtime.
    pub async fn start() -> Result<SecretsManager, StandInError> {
        let shared = Shared::default();
        let router = Router::new()
            .route("/", post(handle))
            .with_state(shared.clone());
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let server = HttpServer::start(
            "secrets-manager",
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            router,
            shutdown.clone(),
            tasks.clone(),
        )?;
        Ok(SecretsManager {
            server,
            shared,
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
        lock(&self.shared.secrets).insert(id.to_owned(), value.to_owned());
    }

    /// Requests received so far, answered or not.
    pub fn request_count(&self) -> usize {
        self.shared.operations.total()
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
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let operation = target.strip_prefix(TARGET_PREFIX);
    shared.operations.record(operation.unwrap_or(target));
    let Some(operation) = operation else {
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
    json_response(
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
    json_response(
        status,
        &serde_json::json!({ "__type": code, "message": message }),
    )
}
