//! The failover adapter: Redshift first, SQLite the moment Redshift fails, and back again.
//!
//! The health state lives in the warm execution environment and is shared by every request it
//! serves. Lambda has no background timers, so probes ride on requests: once the check interval
//! has passed, the first request to arrive tries Redshift (the probe) while any request that
//! arrives meanwhile is answered from SQLite; a `try_lock` guarantees one probe at a time.
//!
//! Writes that SQLite takes while Redshift is configured are journaled, and replayed to
//! Redshift, idempotently on `id`, before Redshift serves again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::redshift::RedshiftStore;
use super::sqlite::SqliteStore;
use super::{Call, CallStore, HistoryQuery, InsertOutcome, Source, StoreError};
use crate::metrics::{Metrics, SwitchEvent};

/// Rows per replay statement: one multi-row insert each.
pub const REPLAY_BATCH: usize = 200;

/// Which database serves, and since when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Redshift is not configured: SQLite is primary and nothing is probed.
    NotConfigured,
    OnRedshift,
    OnSqlite {
        since: Instant,
        since_wall: DateTime<Utc>,
        forced: bool,
    },
}

/// The warm environment's knowledge of Redshift's health.
#[derive(Debug)]
struct HealthState {
    mode: Mode,
    /// `Connected`, `Forced to SQLite`, or the last failure's reason.
    redshift_message: String,
    next_probe_at: Option<Instant>,
    last_probe_at: Option<DateTime<Utc>>,
    consecutive_failures: u32,
    fallbacks: u64,
    forced_switches: u64,
    recoveries: u64,
    last_fallback_duration: Option<Duration>,
    last_replay_at: Option<DateTime<Utc>>,
    last_heartbeat_at: Option<Instant>,
}

impl HealthState {
    fn new(configured: bool, forced: bool) -> Self {
        let mode = match (configured, forced) {
            (false, _) => Mode::NotConfigured,
            (true, true) => Mode::OnSqlite {
                since: Instant::now(),
                since_wall: Utc::now(),
                forced: true,
            },
            (true, false) => Mode::OnRedshift,
        };
        let redshift_message = match mode {
            Mode::NotConfigured => "Not configured",
            Mode::OnSqlite { .. } => "Forced to SQLite",
            Mode::OnRedshift => "Connected",
        };
        HealthState {
            mode,
            redshift_message: redshift_message.to_string(),
            next_probe_at: None,
            last_probe_at: None,
            consecutive_failures: 0,
            fallbacks: 0,
            forced_switches: 0,
            recoveries: 0,
            last_fallback_duration: None,
            last_replay_at: None,
            last_heartbeat_at: None,
        }
    }

    /// Serves from SQLite from now on, forced or not. A fallback already under way keeps its
    /// start; a new one starts the heartbeat clock. True when this left Redshift.
    fn move_to_sqlite(&mut self, forced: bool) -> bool {
        match self.mode {
            Mode::NotConfigured => false,
            Mode::OnSqlite {
                since, since_wall, ..
            } => {
                self.mode = Mode::OnSqlite {
                    since,
                    since_wall,
                    forced,
                };
                false
            }
            Mode::OnRedshift => {
                self.mode = Mode::OnSqlite {
                    since: Instant::now(),
                    since_wall: Utc::now(),
                    forced,
                };
                self.last_heartbeat_at = Some(Instant::now());
                true
            }
        }
    }

    /// True when the interval since the last failure has passed and Redshift may be tried.
    fn probe_due(&self, now: Instant) -> bool {
        matches!(self.mode, Mode::OnSqlite { forced: false, .. })
            && self.next_probe_at.is_none_or(|at| now >= at)
    }
}

/// A point-in-time copy of the health state, for `/db/status` and `/db/healthz`.
#[derive(Clone, Debug)]
pub struct HealthSnapshot {
    pub source: Source,
    pub configured: bool,
    pub forced: bool,
    pub redshift_available: bool,
    pub redshift_message: String,
    pub sqlite_available: bool,
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
    pub last_replay_at: Option<DateTime<Utc>>,
}

/// What one replay did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Journaled writes now in Redshift and out of the journal.
    pub replayed: u64,
    /// Of those, how many Redshift already had (an earlier, interrupted replay, or the same id
    /// written there before); Redshift's copy is kept.
    pub already_there: u64,
}

/// What a request got, and from where.
#[derive(Debug)]
pub struct Served<T> {
    pub source: Source,
    pub result: Result<T, StoreError>,
}

/// One request's work, run against whichever database serves.
enum Op<'a> {
    History(&'a HistoryQuery),
    Get(&'a str),
    Insert(&'a Call),
}

enum Output {
    Calls(Vec<Call>),
    Call(Option<Call>),
    Inserted(InsertOutcome),
}

impl Op<'_> {
    async fn run(&self, store: &impl CallStore) -> Result<Output, StoreError> {
        Ok(match self {
            Op::History(query) => Output::Calls(store.history(query).await?),
            Op::Get(id) => Output::Call(store.get(id).await?),
            Op::Insert(call) => Output::Inserted(store.insert(call).await?),
        })
    }
}

/// The way a request goes, decided under the health lock.
enum Route<'a> {
    Redshift(&'a RedshiftStore),
    /// Try Redshift as this interval's probe; the guard keeps other probes out.
    Probe(&'a RedshiftStore, tokio::sync::MutexGuard<'a, ()>),
    Sqlite,
}

/// How the adapter behaves, from the configuration.
#[derive(Clone, Copy, Debug)]
pub struct FailoverSettings {
    /// Time between probes while on SQLite.
    pub check_interval: Duration,
    /// Start in forced-SQLite mode.
    pub force_sqlite: bool,
    /// How often the running fallback duration is put to CloudWatch while on SQLite.
    pub heartbeat_every: Duration,
}

pub struct FailoverStore {
    redshift: Option<RedshiftStore>,
    sqlite: Result<SqliteStore, String>,
    health: Mutex<HealthState>,
    probe_lock: tokio::sync::Mutex<()>,
    replay_lock: tokio::sync::Mutex<()>,
    /// Journaled writes not yet replayed; kept in memory so the Redshift path need not ask SQLite.
    pending: AtomicU64,
    settings: FailoverSettings,
    metrics: Arc<Metrics>,
}

impl FailoverStore {
    /// `sqlite` is the opened backup or the reason it could not be opened.
    pub async fn new(
        redshift: Option<RedshiftStore>,
        sqlite: Result<SqliteStore, String>,
        settings: FailoverSettings,
        metrics: Arc<Metrics>,
    ) -> Self {
        let pending = match &sqlite {
            Ok(store) => store.pending_count().await.unwrap_or(0),
            Err(_) => 0,
        };
        FailoverStore {
            health: Mutex::new(HealthState::new(redshift.is_some(), settings.force_sqlite)),
            redshift,
            sqlite,
            probe_lock: tokio::sync::Mutex::new(()),
            replay_lock: tokio::sync::Mutex::new(()),
            pending: AtomicU64::new(pending),
            settings,
            metrics,
        }
    }

    pub fn sqlite(&self) -> Option<&SqliteStore> {
        self.sqlite.as_ref().ok()
    }

    pub fn redshift(&self) -> Option<&RedshiftStore> {
        self.redshift.as_ref()
    }

    pub async fn history(&self, query: &HistoryQuery) -> Served<Vec<Call>> {
        let served = self.serve(Op::History(query)).await;
        unwrap_output(served, |out| match out {
            Output::Calls(calls) => Some(calls),
            _ => None,
        })
    }

    pub async fn get(&self, id: &str) -> Served<Option<Call>> {
        let served = self.serve(Op::Get(id)).await;
        unwrap_output(served, |out| match out {
            Output::Call(call) => Some(call),
            _ => None,
        })
    }

    pub async fn insert(&self, call: &Call) -> Served<InsertOutcome> {
        let served = self.serve(Op::Insert(call)).await;
        unwrap_output(served, |out| match out {
            Output::Inserted(outcome) => Some(outcome),
            _ => None,
        })
    }

    /// The source a request would be served from now, without touching either database.
    pub fn current_source(&self) -> Source {
        match self.lock_health().mode {
            Mode::OnRedshift => Source::Redshift,
            _ if self.sqlite.is_ok() => Source::Sqlite,
            _ => Source::Unavailable,
        }
    }

    fn lock_health(&self) -> MutexGuard<'_, HealthState> {
        // The state is plain data updated in single steps; a panic elsewhere cannot leave it torn.
        self.health
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn route(&self) -> Route<'_> {
        let Some(redshift) = &self.redshift else {
            return Route::Sqlite;
        };
        let health = self.lock_health();
        match health.mode {
            Mode::OnRedshift => Route::Redshift(redshift),
            Mode::OnSqlite { .. } if health.probe_due(Instant::now()) => {
                match self.probe_lock.try_lock() {
                    Ok(guard) => Route::Probe(redshift, guard),
                    Err(_) => Route::Sqlite,
                }
            }
            _ => Route::Sqlite,
        }
    }

    async fn serve(&self, op: Op<'_>) -> Served<Output> {
        match self.route() {
            Route::Redshift(redshift) => match self.run_on_redshift(redshift, &op).await {
                Ok(output) => return self.served_by_redshift(&op, output),
                Err(err) => self.redshift_failed(&err, false).await,
            },
            Route::Probe(redshift, _guard) => {
                tracing::info!("🔄 Checking whether Redshift is back");
                match self.run_on_redshift(redshift, &op).await {
                    Ok(output) => {
                        self.recovered().await;
                        return self.served_by_redshift(&op, output);
                    }
                    Err(err) => self.redshift_failed(&err, true).await,
                }
            }
            Route::Sqlite => self.heartbeat_if_due().await,
        }
        self.serve_from_sqlite(&op).await
    }

    /// Replays waiting writes first, so that what Redshift answers includes them.
    async fn run_on_redshift(
        &self,
        redshift: &RedshiftStore,
        op: &Op<'_>,
    ) -> Result<Output, StoreError> {
        tracing::info!("☁️ Executing query on Redshift");
        self.replay_if_pending(redshift).await?;
        op.run(redshift).await
    }

    async fn replay_if_pending(&self, redshift: &RedshiftStore) -> Result<(), StoreError> {
        if self.pending.load(Ordering::Relaxed) > 0 {
            self.replay(redshift).await?;
        }
        Ok(())
    }

    fn served_by_redshift(&self, op: &Op<'_>, output: Output) -> Served<Output> {
        let seen = match (&output, op) {
            (Output::Calls(calls), _) => calls.clone(),
            (Output::Call(Some(call)), _) => vec![call.clone()],
            (Output::Inserted(InsertOutcome::AlreadyExists(call)), _) => vec![call.clone()],
            (Output::Inserted(InsertOutcome::Inserted), Op::Insert(call)) => vec![(*call).clone()],
            _ => Vec::new(),
        };
        self.refresh_backup(seen);
        Served {
            source: Source::Redshift,
            result: Ok(output),
        }
    }

    async fn serve_from_sqlite(&self, op: &Op<'_>) -> Served<Output> {
        let sqlite = match &self.sqlite {
            Ok(sqlite) => sqlite,
            Err(reason) => {
                return Served {
                    source: Source::Unavailable,
                    result: Err(StoreError::Sqlite(reason.clone())),
                }
            }
        };
        tracing::info!("💾 Executing query on local SQLite");
        match op.run(sqlite).await {
            Ok(output) => {
                // A journaled write: it waits for replay.
                if self.redshift.is_some()
                    && matches!(output, Output::Inserted(InsertOutcome::Inserted))
                {
                    self.pending.fetch_add(1, Ordering::Relaxed);
                }
                Served {
                    source: Source::Sqlite,
                    result: Ok(output),
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "❌ Local SQLite failed too");
                Served {
                    source: Source::Unavailable,
                    result: Err(err),
                }
            }
        }
    }

    /// Copies what Redshift served or took into the backup, off the request path: a later
    /// fallback in this environment then answers with what it last saw. Losing a refresh loses
    /// nothing that Redshift does not hold.
    fn refresh_backup(&self, calls: Vec<Call>) {
        let Ok(sqlite) = &self.sqlite else { return };
        if calls.is_empty() {
            return;
        }
        let sqlite = sqlite.clone();
        tokio::spawn(async move {
            if let Err(err) = sqlite.refresh(calls).await {
                tracing::warn!(error = %err, "could not refresh the local backup");
            }
        });
    }

    /// Replays journaled writes in batches until none wait, Redshift fails, or the time budget
    /// of one Redshift operation is spent (the rest waits for the next request, so a large
    /// backlog never holds one request past API Gateway's limit). Each batch is one idempotent
    /// multi-row insert, removed from the journal only once Redshift has it, so a replay cut
    /// off anywhere resumes later without loss or duplicates.
    pub async fn replay(&self, redshift: &RedshiftStore) -> Result<ReplayReport, StoreError> {
        let mut report = ReplayReport::default();
        let Ok(sqlite) = &self.sqlite else {
            return Ok(report);
        };
        // One replay at a time; a request that finds one running goes on without waiting.
        let Ok(_guard) = self.replay_lock.try_lock() else {
            return Ok(report);
        };
        let started = Instant::now();
        let outcome = async {
            while started.elapsed() < redshift.deadline() {
                let batch = sqlite.pending_batch(REPLAY_BATCH).await?;
                if batch.is_empty() {
                    break;
                }
                let added = redshift.insert_missing(&batch).await?;
                let ids: Vec<String> = batch.iter().map(|c| c.id.clone()).collect();
                sqlite.mark_synced(ids).await?;
                report.replayed += batch.len() as u64;
                report.already_there += batch.len() as u64 - added.max(0) as u64;
            }
            Ok(())
        }
        .await;
        // Whatever happened, the journal is the truth about what still waits.
        self.pending
            .store(sqlite.pending_count().await.unwrap_or(0), Ordering::Relaxed);
        if report.replayed > 0 {
            self.lock_health().last_replay_at = Some(Utc::now());
            tracing::info!(
                rows = report.replayed,
                already_in_redshift = report.already_there,
                still_waiting = self.pending.load(Ordering::Relaxed),
                "🔁 Replayed writes from the local backup to Redshift"
            );
        }
        outcome.map(|()| report)
    }

    /// Redshift failed a request (or the probe, when `probe`): the request goes to SQLite, the
    /// next probe waits an interval, and a switch away from Redshift is measured.
    async fn redshift_failed(&self, err: &StoreError, probe: bool) {
        tracing::warn!("⚠️ Redshift unavailable, falling back to local SQLite: {err}");
        let switched = {
            let mut health = self.lock_health();
            health.redshift_message = err.to_string();
            health.consecutive_failures += 1;
            health.next_probe_at = Some(Instant::now() + self.settings.check_interval);
            if probe {
                health.last_probe_at = Some(Utc::now());
            }
            let switched = health.mode == Mode::OnRedshift && health.move_to_sqlite(false);
            if switched {
                health.fallbacks += 1;
            }
            switched
        };
        if switched {
            self.metrics.record(SwitchEvent::FellBack).await;
        } else {
            self.heartbeat_if_due().await;
        }
    }

    async fn recovered(&self) {
        let fallback = {
            let mut health = self.lock_health();
            health.last_probe_at = Some(Utc::now());
            health.redshift_message = "Connected".to_string();
            health.consecutive_failures = 0;
            health.next_probe_at = None;
            let Mode::OnSqlite { since, .. } = health.mode else {
                return;
            };
            health.mode = Mode::OnRedshift;
            health.recoveries += 1;
            let duration = since.elapsed();
            health.last_fallback_duration = Some(duration);
            duration
        };
        tracing::info!(
            fallback_seconds = fallback.as_secs_f64(),
            "✅ Redshift connection restored"
        );
        self.metrics
            .record(SwitchEvent::Recovered { fallback })
            .await;
    }

    /// While on SQLite with Redshift configured, reports the running duration, rate-limited.
    async fn heartbeat_if_due(&self) {
        let elapsed = {
            let mut health = self.lock_health();
            let Mode::OnSqlite { since, .. } = health.mode else {
                return;
            };
            let now = Instant::now();
            if health
                .last_heartbeat_at
                .is_some_and(|at| now.duration_since(at) < self.settings.heartbeat_every)
            {
                return;
            }
            health.last_heartbeat_at = Some(now);
            since.elapsed()
        };
        self.metrics
            .record(SwitchEvent::StillOnSqlite { elapsed })
            .await;
    }

    /// `/db/force-sqlite`: serve from SQLite in this environment until `/db/retry-redshift`.
    pub async fn force_sqlite(&self) {
        let switched = {
            let mut health = self.lock_health();
            let switched = health.move_to_sqlite(true);
            if switched {
                health.forced_switches += 1;
            }
            if health.mode != Mode::NotConfigured {
                health.redshift_message = "Forced to SQLite".to_string();
            }
            switched
        };
        tracing::warn!("💾 Forced to local SQLite until /db/retry-redshift");
        if switched {
            self.metrics.record(SwitchEvent::Forced).await;
        }
    }

    /// `/db/retry-redshift`: leaves forced mode and probes Redshift now (waiting for a probe
    /// already under way rather than running two at once). Returns the source afterwards.
    pub async fn retry_redshift(&self) -> Source {
        let Some(redshift) = &self.redshift else {
            return self.current_source();
        };
        let _guard = self.probe_lock.lock().await;
        {
            let mut health = self.lock_health();
            if matches!(health.mode, Mode::OnSqlite { .. }) {
                health.move_to_sqlite(false);
            }
        }
        tracing::info!("🔄 Retrying Redshift connection");
        let probe = async {
            self.replay_if_pending(redshift).await?;
            redshift.probe().await
        };
        match probe.await {
            Ok(()) => self.recovered().await,
            Err(err) => self.redshift_failed(&err, true).await,
        }
        self.current_source()
    }

    pub async fn snapshot(&self) -> HealthSnapshot {
        let (sqlite_available, sqlite_message) = match &self.sqlite {
            Ok(sqlite) => match sqlite.ping().await {
                Ok(()) => (true, "Connected".to_string()),
                Err(err) => (false, err.to_string()),
            },
            Err(reason) => (false, reason.clone()),
        };
        let health = self.lock_health();
        let now = Instant::now();
        let (fallback_started_at, fallback_duration, forced) = match health.mode {
            Mode::OnSqlite {
                since,
                since_wall,
                forced,
            } => (Some(since_wall), Some(since.elapsed()), forced),
            _ => (None, None, false),
        };
        let source = match health.mode {
            Mode::OnRedshift => Source::Redshift,
            _ if sqlite_available => Source::Sqlite,
            _ => Source::Unavailable,
        };
        HealthSnapshot {
            source,
            configured: self.redshift.is_some(),
            forced,
            redshift_available: health.mode == Mode::OnRedshift,
            redshift_message: health.redshift_message.clone(),
            sqlite_available,
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
            pending_sync: self.pending.load(Ordering::Relaxed),
            last_replay_at: health.last_replay_at,
        }
    }
}

fn unwrap_output<T>(served: Served<Output>, pick: impl FnOnce(Output) -> Option<T>) -> Served<T> {
    let result = served.result.and_then(|output| {
        pick(output).ok_or_else(|| {
            StoreError::Decode("operation returned another kind of answer".to_string())
        })
    });
    Served {
        source: served.source,
        result,
    }
}
