//! `/db/*`: which database serves, the health of both, and the admin switches.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::access::Credentials;
use super::error::ErrorBody;
use super::{with_source, AppState};
use crate::store::failover::ForceOutcome;
use crate::store::status::{HealthSnapshot, ReplicaSnapshot};
use crate::store::{format_timestamp, Source};

fn source_name(source: Source) -> &'static str {
    match source {
        Source::Redshift => "Redshift (Cloud Primary)",
        Source::Sqlite => "SQLite (Local Backup)",
        Source::Unavailable => "No database available",
    }
}

fn status_message(source: Source) -> &'static str {
    match source {
        Source::Redshift => "☁️ Connected to Redshift (primary)",
        Source::Sqlite => "⚠️ Running on local backup - Redshift unavailable",
        Source::Unavailable => "❌ No database available",
    }
}

fn healthz_message(source: Source) -> &'static str {
    match source {
        Source::Redshift => "☁️ Using Redshift (primary)",
        Source::Sqlite => "💾 Using SQLite (backup)",
        Source::Unavailable => "❌ No database available",
    }
}

fn secs(d: Option<std::time::Duration>) -> Option<f64> {
    d.map(|d| (d.as_secs_f64() * 10.0).round() / 10.0)
}

fn time(t: Option<chrono::DateTime<chrono::Utc>>) -> Option<String> {
    t.map(|t| format_timestamp(&t))
}

/// `GET /db/status`: which database serves and how both are doing.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusResponse {
    pub current_source: Source,
    /// ☁️, 💾 or ❌.
    pub source_emoji: &'static str,
    /// `Redshift (Cloud Primary)`, `SQLite (Local Backup)` or `No database available`.
    pub source_name: &'static str,
    pub databases: StatusDatabases,
    pub message: &'static str,
    pub fallback: FallbackState,
    pub sync: SyncState,
    /// The local replica of Redshift; null when none is kept (Redshift not configured, or every
    /// read sent to Redshift with `READ_MAX_STALENESS_MS=0`).
    pub replica: Option<ReplicaStatus>,
    /// This environment's Data API calls; null when Redshift is not configured.
    pub data_api: Option<DataApiStatus>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusDatabases {
    pub active_source: Source,
    pub redshift: RedshiftState,
    pub sqlite: SqliteState,
}

/// Redshift's health in this execution environment.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedshiftState {
    pub available: bool,
    /// `Connected`, `Not configured`, `Forced to SQLite` or a short reason class such as
    /// `Connection timeout`.
    pub message: String,
    pub configured: bool,
    pub forced: bool,
    /// RFC 3339 time of the last probe.
    #[schema(format = DateTime)]
    pub last_probe_at: Option<String>,
    #[schema(minimum = 0)]
    pub next_probe_in_seconds: Option<f64>,
    pub consecutive_failures: u32,
}

/// One database's availability and a short message.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseState {
    pub available: bool,
    pub message: String,
}

/// The local SQLite backup's health.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SqliteState {
    /// Reads can be answered.
    pub available: bool,
    /// Writes can be taken (false after a write failed: disk full, read-only file).
    pub writable: bool,
    /// `Connected`, or the class of what is wrong.
    pub message: String,
}

/// The current fallback to SQLite, if any, and counts since the environment started.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FallbackState {
    pub active: bool,
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
    #[schema(minimum = 0)]
    pub duration_seconds: Option<f64>,
    #[schema(minimum = 0)]
    pub last_duration_seconds: Option<f64>,
    pub fallbacks: u64,
    pub forced_switches: u64,
    pub recoveries: u64,
}

/// Writes taken by SQLite that still wait for Redshift.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncState {
    /// Writes the backup took that wait for replay to Redshift (every read of this environment
    /// includes them meanwhile).
    pub pending_writes: u64,
    /// Journaled writes Redshift refused at replay, set aside (kept in the backup).
    pub rejected_writes: u64,
    /// Journaled writes whose id Redshift already held with other content: Redshift's version
    /// stays, these are kept in the backup, apart.
    pub conflicting_writes: u64,
    #[schema(format = DateTime)]
    pub last_replay_at: Option<String>,
}

/// The local replica: reads are answered from it while its last pull is within the bound.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaStatus {
    /// When the last successful pull was sent: the copy holds everything Redshift held then.
    #[schema(format = DateTime)]
    pub last_pull_at: Option<String>,
    #[schema(minimum = 0)]
    pub age_seconds: Option<f64>,
    /// The staleness bound (`READ_MAX_STALENESS_MS`).
    pub max_staleness_ms: u64,
    /// The copy holds every call that started after this time; null when it holds every call
    /// (the warehouse holds no more than the window).
    #[schema(format = DateTime)]
    pub window_starts_after: Option<String>,
    /// The most calls the window holds, the newest (`REPLICA_WINDOW_CALLS`).
    pub window_calls: u32,
    /// Calls the window holds now.
    pub calls_in_window: Option<u64>,
    #[schema(format = DateTime)]
    pub last_full_pull_at: Option<String>,
}

/// This environment's Data API calls (the SDK's retries included) and the account's throttling
/// of them.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataApiStatus {
    pub calls_last_minute: u64,
    pub throttles_last_minute: u64,
    pub calls_since_start: u64,
    pub throttles_since_start: u64,
}

#[utoipa::path(
    get,
    path = "/db/status",
    tag = "database",
    summary = "Current source and health of both databases",
    responses((status = 200, description = "The status of this execution environment.", body = StatusResponse))
)]
pub async fn status(State(state): State<AppState>) -> Response {
    let s = state.store.snapshot().await;
    let body = StatusResponse {
        current_source: s.source,
        source_emoji: s.source.emoji(),
        source_name: source_name(s.source),
        databases: StatusDatabases {
            active_source: s.source,
            redshift: RedshiftState {
                available: s.redshift_available,
                message: s.redshift_message.clone(),
                configured: s.configured,
                forced: s.forced,
                last_probe_at: time(s.last_probe_at),
                next_probe_in_seconds: secs(s.next_probe_in),
                consecutive_failures: s.consecutive_failures,
            },
            sqlite: SqliteState {
                available: s.sqlite_available,
                writable: s.sqlite_writable,
                message: s.sqlite_message.clone(),
            },
        },
        message: status_message(s.source),
        fallback: fallback_state(&s),
        sync: SyncState {
            pending_writes: s.pending_sync,
            rejected_writes: s.rejected_sync,
            conflicting_writes: s.conflicting_sync,
            last_replay_at: time(s.last_replay_at),
        },
        replica: s.replica.as_ref().map(replica_status),
        data_api: s.data_api.map(|m| DataApiStatus {
            calls_last_minute: m.calls_last_minute,
            throttles_last_minute: m.throttles_last_minute,
            calls_since_start: m.calls,
            throttles_since_start: m.throttles,
        }),
    };
    with_source(s.source, Json(body))
}

fn replica_status(r: &ReplicaSnapshot) -> ReplicaStatus {
    ReplicaStatus {
        last_pull_at: time(r.last_pull_at),
        age_seconds: secs(r.age),
        max_staleness_ms: r.max_staleness.as_millis().try_into().unwrap_or(u64::MAX),
        window_starts_after: time(r.window_starts_after),
        window_calls: r.window_calls,
        calls_in_window: r.calls_in_window,
        last_full_pull_at: time(r.last_full_pull_at),
    }
}

fn fallback_state(s: &HealthSnapshot) -> FallbackState {
    FallbackState {
        active: s.fallback_started_at.is_some(),
        started_at: time(s.fallback_started_at),
        duration_seconds: secs(s.fallback_duration),
        last_duration_seconds: secs(s.last_fallback_duration),
        fallbacks: s.fallbacks,
        forced_switches: s.forced_switches,
        recoveries: s.recoveries,
    }
}

/// `GET /db/healthz`: healthy while at least one database serves.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthzResponse {
    /// `healthy` or `unhealthy`.
    pub status: &'static str,
    pub active_source: Source,
    pub databases: HealthzDatabases,
    pub message: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthzDatabases {
    pub redshift: DatabaseHealth,
    pub sqlite: DatabaseHealth,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DatabaseHealth {
    pub available: bool,
    pub message: String,
    /// ✅ or ❌.
    pub emoji: &'static str,
}

#[utoipa::path(
    get,
    path = "/db/healthz",
    tag = "database",
    summary = "Health check for both databases",
    responses(
        (status = 200, description = "At least one database serves.", body = HealthzResponse),
        (status = 503, description = "No database serves.", body = HealthzResponse),
    )
)]
pub async fn healthz(State(state): State<AppState>) -> Response {
    let s = state.store.snapshot().await;
    let healthy = s.source != Source::Unavailable;
    let health = |available: bool, message: &str| DatabaseHealth {
        available,
        message: message.to_string(),
        emoji: if available { "✅" } else { "❌" },
    };
    let body = HealthzResponse {
        status: if healthy { "healthy" } else { "unhealthy" },
        active_source: s.source,
        databases: HealthzDatabases {
            redshift: health(s.redshift_available, &s.redshift_message),
            sqlite: health(s.sqlite_available, &s.sqlite_message),
        },
        message: healthz_message(s.source),
    };
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    with_source(s.source, (status, Json(body)))
}

/// The admin switches' refusals, by the API's access mode (see [`super::access`]).
const ADMIN_401: &str = "No credentials: no `Authorization: Bearer <admin token>` header while the function has a token, or (behind a JWT or IAM authorizer) no identity verified by the gateway.";
const ADMIN_403: &str = "Credentials that do not allow the switches: a wrong admin token, a JWT without the admin scope, or admin endpoints disabled (inside Lambda without a token, or when the token could not be read from its secret).";

/// `POST /db/force-sqlite`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ForceSqliteResponse {
    /// `Switched to SQLite backup database`.
    pub message: &'static str,
    pub source: Source,
    /// What the switch meant here, when it was not a switch from Redshift.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'static str>,
}

#[utoipa::path(
    post,
    path = "/db/force-sqlite",
    tag = "admin",
    summary = "Switch this execution environment to SQLite until /db/retry-redshift",
    security(("adminToken" = []), ("jwt" = []), ("sigv4" = [])),
    responses(
        (status = 200, description = "Serving from SQLite now.", body = ForceSqliteResponse),
        (status = 401, description = ADMIN_401, body = ErrorBody),
        (status = 403, description = ADMIN_403, body = ErrorBody),
    )
)]
pub async fn force_sqlite(State(state): State<AppState>, credentials: Credentials) -> Response {
    if let Err(err) = credentials.authorize_admin(&state.admin) {
        return err.with_source(state.store.current_source());
    }
    let outcome = state.store.force_sqlite().await;
    let source = state.store.current_source();
    // The guide's message, always; the note says what it meant here.
    let body = ForceSqliteResponse {
        message: "Switched to SQLite backup database",
        source,
        note: force_note(outcome),
    };
    with_source(source, Json(body))
}

fn force_note(outcome: ForceOutcome) -> Option<&'static str> {
    match outcome {
        ForceOutcome::Switched => None,
        ForceOutcome::AlreadyOnSqlite => {
            Some("Already on SQLite; it now stays there until /db/retry-redshift")
        }
        ForceOutcome::NotConfigured => {
            Some("Redshift is not configured; already serving from SQLite")
        }
    }
}

/// `POST /db/retry-redshift`: the outcome of the probe.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryRedshiftResponse {
    /// `Retrying Redshift connection`.
    pub message: &'static str,
    pub current_source: Source,
    pub redshift: DatabaseState,
}

#[utoipa::path(
    post,
    path = "/db/retry-redshift",
    tag = "admin",
    summary = "Leave forced mode and probe Redshift now",
    security(("adminToken" = []), ("jwt" = []), ("sigv4" = [])),
    responses(
        (status = 200, description = "Probed; `currentSource` tells the outcome.", body = RetryRedshiftResponse),
        (status = 401, description = ADMIN_401, body = ErrorBody),
        (status = 403, description = ADMIN_403, body = ErrorBody),
    )
)]
pub async fn retry_redshift(State(state): State<AppState>, credentials: Credentials) -> Response {
    if let Err(err) = credentials.authorize_admin(&state.admin) {
        return err.with_source(state.store.current_source());
    }
    let source = state.store.retry_redshift().await;
    let s = state.store.snapshot().await;
    let body = RetryRedshiftResponse {
        message: "Retrying Redshift connection",
        current_source: source,
        redshift: DatabaseState {
            available: s.redshift_available,
            message: s.redshift_message,
        },
    };
    with_source(source, Json(body))
}
