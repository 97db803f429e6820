//! A point-in-time picture of the store, for `/db/status` and `/db/healthz`.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::error::{ErrorKind, SqliteProblem};
use super::failover::FailoverStore;
use super::health::{Mode, Route};
use super::redshift::meter::MeterReading;
use super::Source;

/// The health of both databases, the fallback, the journal and the replica.
#[derive(Clone, Debug)]
pub struct HealthSnapshot {
    pub source: Source,
    pub configured: bool,
    pub forced: bool,
    pub redshift_available: bool,
    pub redshift_message: String,
    pub sqlite_available: bool,
    /// The backup takes writes (false after a write failed: disk full, read-only file).
    pub sqlite_writable: bool,
    pub sqlite_message: String,
    pub fallback_started_at: Option<DateTime<Utc>>,
    pub fallback_duration: Option<Duration>,
    pub last_fallback_duration: Option<Duration>,
    pub last_probe_at: Option<DateTime<Utc>>,
    pub next_probe_in: Option<Duration>,
    pub consecutive_failures: u32,
    pub fallbacks: u64,
    pub forced_switches: u64,
    pub recoveries: u64,
    pub pending_sync: u64,
    pub rejected_sync: u64,
    pub conflicting_sync: u64,
    pub last_replay_at: Option<DateTime<Utc>>,
    /// The replica, when one is kept (Redshift configured and reads not all direct).
    pub replica: Option<ReplicaSnapshot>,
    /// Data API calls of this environment, when Redshift is configured.
    pub data_api: Option<MeterReading>,
}

/// The local replica of Redshift.
#[derive(Clone, Debug)]
pub struct ReplicaSnapshot {
    pub last_pull_at: Option<DateTime<Utc>>,
    pub age: Option<Duration>,
    pub max_staleness: Duration,
    /// `None`: the window holds every call.
    pub window_starts_after: Option<DateTime<Utc>>,
    pub window_calls: u32,
    pub calls_in_window: Option<u64>,
    pub last_full_pull_at: Option<DateTime<Utc>>,
}

impl FailoverStore {
    pub async fn snapshot(&self) -> HealthSnapshot {
        // The same check as before a write: a file deleted or replaced under this environment
        // is found (and recreated) here too.
        let ping = match self.backup.store_for_write() {
            Ok(sqlite) => sqlite.ping().await.err(),
            Err(_) => None,
        };
        if let Some(err) = &ping {
            self.backup.query_failed(err);
        }
        let backup = self.backup.health();
        let (sqlite_available, sqlite_writable, sqlite_message) = match ping {
            // Damage was repaired just now; any other failure is what the backup is.
            Some(err) if err.kind != ErrorKind::Sqlite(SqliteProblem::Corrupt) => {
                (false, false, err.to_string())
            }
            _ => (backup.readable, backup.writable, backup.message),
        };
        let replica = self.replica_snapshot().await;
        let health = self.lock_health().clone();
        let now = Instant::now();
        let (fallback_started_at, fallback_duration) = match health.mode {
            Mode::OnSqlite {
                since, since_wall, ..
            } => (Some(since_wall), Some(now.saturating_duration_since(since))),
            _ => (None, None),
        };
        let source = match health.route(now) {
            Route::Redshift => Source::Redshift,
            _ if sqlite_available => Source::Sqlite,
            _ => Source::Unavailable,
        };
        HealthSnapshot {
            source,
            configured: self.redshift.is_some(),
            forced: health.forced(),
            redshift_available: health.on_redshift(),
            redshift_message: match (&health.mode, &self.settings.redshift_incomplete) {
                (Mode::NotConfigured, Some(missing)) => format!("Half configured: {missing}"),
                _ => health.redshift_message().to_string(),
            },
            sqlite_available,
            sqlite_writable,
            sqlite_message,
            fallback_started_at,
            fallback_duration,
            last_fallback_duration: health.last_fallback_duration,
            last_probe_at: health.last_probe_at,
            next_probe_in: match health.mode {
                Mode::OnSqlite { forced: false, .. } => Some(
                    health
                        .next_probe_at
                        .map_or(Duration::ZERO, |at| at.saturating_duration_since(now)),
                ),
                _ => None,
            },
            consecutive_failures: health.consecutive_failures,
            fallbacks: health.fallbacks,
            forced_switches: health.forced_switches,
            recoveries: health.recoveries,
            pending_sync: self.journal.pending(),
            rejected_sync: self.journal.rejected(),
            conflicting_sync: self.journal.conflicts(),
            last_replay_at: self.journal.last_replay_at(),
            replica,
            data_api: self.redshift.as_ref().map(|r| r.meter().reading()),
        }
    }

    async fn replica_snapshot(&self) -> Option<ReplicaSnapshot> {
        let settings = *self.replica.settings();
        if self.redshift.is_none() || !settings.enabled() {
            return None;
        }
        let sqlite = self.backup.store().ok();
        if let Some(sqlite) = sqlite.as_ref().filter(|s| s.options().shared) {
            self.replica.reload(sqlite).await;
        }
        let state = self.replica.state();
        let calls_in_window = match (&sqlite, &state) {
            (Some(sqlite), Some(state)) => sqlite.calls_in_window(state.window_floor).await.ok(),
            _ => None,
        };
        Some(ReplicaSnapshot {
            last_pull_at: state.as_ref().map(|s| s.pulled_at),
            age: self.replica.age(Utc::now()),
            max_staleness: settings.max_staleness,
            window_starts_after: state.as_ref().and_then(|s| s.window_floor),
            window_calls: settings.window_calls,
            calls_in_window,
            last_full_pull_at: state.as_ref().map(|s| s.full_pull_at),
        })
    }
}
