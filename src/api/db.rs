//! `/db/*`: which database serves, the health of both, and the admin switches.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::{with_source, AppState};
use crate::store::failover::{ForceOutcome, HealthSnapshot};
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

fn secs(d: Option<std::time::Duration>) -> Value {
    d.map_or(Value::Null, |d| {
        json!((d.as_secs_f64() * 10.0).round() / 10.0)
    })
}

fn time(t: Option<chrono::DateTime<chrono::Utc>>) -> Value {
    t.map_or(Value::Null, |t| json!(format_timestamp(&t)))
}

pub async fn status(State(state): State<AppState>) -> Response {
    let s = state.store.snapshot().await;
    let body = json!({
        "currentSource": s.source,
        "sourceEmoji": s.source.emoji(),
        "sourceName": source_name(s.source),
        "databases": {
            "activeSource": s.source,
            "redshift": {
                "available": s.redshift_available,
                "message": s.redshift_message,
                "configured": s.configured,
                "forced": s.forced,
                "lastProbeAt": time(s.last_probe_at),
                "nextProbeInSeconds": secs(s.next_probe_in),
                "consecutiveFailures": s.consecutive_failures,
            },
            "sqlite": {
                "available": s.sqlite_available,
                "writable": s.sqlite_writable,
                "message": s.sqlite_message,
            },
        },
        "message": status_message(s.source),
        "fallback": fallback_block(&s),
        "sync": {
            "pendingWrites": s.pending_sync,
            "catchingUp": s.catching_up,
            "rejectedWrites": s.rejected_sync,
            "lastReplayAt": time(s.last_replay_at),
        },
    });
    with_source(s.source, Json(body))
}

fn fallback_block(s: &HealthSnapshot) -> Value {
    json!({
        "active": s.fallback_started_at.is_some(),
        "startedAt": time(s.fallback_started_at),
        "durationSeconds": secs(s.fallback_duration),
        "lastDurationSeconds": secs(s.last_fallback_duration),
        "fallbacks": s.fallbacks,
        "forcedSwitches": s.forced_switches,
        "recoveries": s.recoveries,
    })
}

pub async fn healthz(State(state): State<AppState>) -> Response {
    let s = state.store.snapshot().await;
    let healthy = s.source != Source::Unavailable;
    let emoji = |available: bool| if available { "✅" } else { "❌" };
    let body = json!({
        "status": if healthy { "healthy" } else { "unhealthy" },
        "activeSource": s.source,
        "databases": {
            "redshift": { "available": s.redshift_available, "message": s.redshift_message, "emoji": emoji(s.redshift_available) },
            "sqlite": { "available": s.sqlite_available, "message": s.sqlite_message, "emoji": emoji(s.sqlite_available) },
        },
        "message": healthz_message(s.source),
    });
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    with_source(s.source, (status, Json(body)))
}

pub async fn force_sqlite(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(err) = state.admin.authorize(&headers) {
        return err.with_source(state.store.current_source());
    }
    let outcome = state.store.force_sqlite().await;
    let source = state.store.current_source();
    // The guide's message, always; the note says what it meant here.
    let mut body = json!({ "message": "Switched to SQLite backup database", "source": source });
    if let Some(note) = force_note(outcome) {
        body["note"] = json!(note);
    }
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

pub async fn retry_redshift(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(err) = state.admin.authorize(&headers) {
        return err.with_source(state.store.current_source());
    }
    let source = state.store.retry_redshift().await;
    let s = state.store.snapshot().await;
    let body = json!({
        "message": "Retrying Redshift connection",
        "currentSource": source,
        "redshift": { "available": s.redshift_available, "message": s.redshift_message },
    });
    with_source(source, Json(body))
}

/// Who may use the admin endpoints.
#[derive(Clone)]
pub enum AdminPolicy {
    /// `Authorization: Bearer <token>` required.
    Token(String),
    /// Local server without a token: open, so the guide's curl walkthrough works.
    Open,
    /// Inside Lambda without a token: never open to the internet.
    Closed,
}

impl AdminPolicy {
    pub fn new(token: Option<String>, in_lambda: bool) -> Self {
        match (token, in_lambda) {
            (Some(token), _) => AdminPolicy::Token(token),
            (None, false) => AdminPolicy::Open,
            (None, true) => AdminPolicy::Closed,
        }
    }

    pub fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let expected =
            match self {
                AdminPolicy::Open => return Ok(()),
                AdminPolicy::Closed => return Err(ApiError::Forbidden(
                    "Admin endpoints are disabled: set ADMIN_TOKEN on the function to enable them."
                        .into(),
                )),
                AdminPolicy::Token(token) => token,
            };
        let given = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        match given {
            None => Err(ApiError::Unauthorized(
                "This admin endpoint needs an Authorization: Bearer <token> header.".into(),
            )),
            Some(given) if constant_time_eq(given.as_bytes(), expected.as_bytes()) => Ok(()),
            Some(_) => Err(ApiError::Forbidden("The admin token is not valid.".into())),
        }
    }
}

/// Compares without an early exit, so response time does not reveal how much of a guess matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
        headers
    }

    #[test]
    fn admin_policy_follows_token_and_place() {
        let token = AdminPolicy::new(Some("s3cret-token-123".into()), true);
        assert!(token.authorize(&bearer("s3cret-token-123")).is_ok());
        assert!(matches!(
            token.authorize(&bearer("wrong")),
            Err(ApiError::Forbidden(_))
        ));
        assert!(matches!(
            token.authorize(&HeaderMap::new()),
            Err(ApiError::Unauthorized(_))
        ));
        assert!(AdminPolicy::new(None, false)
            .authorize(&HeaderMap::new())
            .is_ok());
        assert!(matches!(
            AdminPolicy::new(None, true).authorize(&bearer("x")),
            Err(ApiError::Forbidden(_))
        ));
    }
}
