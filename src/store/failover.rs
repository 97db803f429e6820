//! The failover adapter: Redshift first, SQLite the moment Redshift fails, and back again.
//!
//! The health state lives in the warm execution environment and is shared by every request it
//! serves. Lambda has no background timers, so probes ride on requests: once the check interval
//! has passed, the first request to arrive tries Redshift (the probe) while any request that
//! arrives meanwhile is answered from SQLite; a `try_lock` guarantees one probe at a time.
//!
//! The rules that decide who answers, each in one place:
//! - [`FailoverStore::route`]: Redshift when healthy, a probe when one is due, else SQLite.
//! - [`FailoverStore::attempt`]: while writes wait in the journal, Redshift answers no read: a
//!   request that finds the replay free spends its time replaying and is answered from SQLite,
//!   which holds every acknowledged write; other reads are answered from SQLite meanwhile, and
//!   writes of new ids go to Redshift (copied into SQLite before they are acknowledged). So no
//!   read from Redshift can miss a write this environment acknowledged, and the journal only
//!   shrinks once Redshift is back, whatever the write rate. A journal that cannot be read (the
//!   backup failed) holds back nothing: Redshift answers, and the failure is not Redshift's.
//! - A refusal (Redshift rejects the request's values) answers the client and switches nothing;
//!   any other failure is an outage: the same request is answered from SQLite and the switch is
//!   logged and measured ([`FailoverStore::redshift_failed`]).
//! - One deadline per request ([`RequestBudget`]): Redshift work, then at most
//!   [`ANSWER_MARGIN`] more for metrics and the SQLite answer.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::backup::Backup;
use super::deadline::Deadline;
use super::error::{ErrorKind, SqliteProblem};
use super::journal::{Journal, ReplayReport};
use super::json::CallsJson;
use super::redshift::{RedshiftSession, RedshiftStore};
use super::sqlite::SqliteStore;
use super::{Call, CallStore, HistoryQuery, InsertOutcome, Source, StoreError};
use crate::metrics::{Metrics, SwitchEvent, PUT_TIMEOUT};

/// What a request may spend beyond `REDSHIFT_TIMEOUT_MS`: putting metrics and answering.
pub const ANSWER_MARGIN: Duration = Duration::from_millis(100);
/// Between probes that found another environment replaying.
const PROBE_PAUSE: Duration = Duration::from_secs(1);
/// Kept free of metrics waits at the end of a request's budget, for the answer itself.
const ANSWER_RESERVE: Duration = Duration::from_millis(30);

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
    /// The class of Redshift's last failure, while nothing has succeeded since.
    last_failure: Option<ErrorKind>,
    next_probe_at: Option<Instant>,
    last_probe_at: Option<DateTime<Utc>>,
    consecutive_failures: u32,
    fallbacks: u64,
    forced_switches: u64,
    recoveries: u64,
    last_fallback_duration: Option<Duration>,
    last_heartbeat_at: Option<Instant>,
}

impl HealthState {
    /// Redshift's message in the status: `Connected`, `Not configured`, `Forced to SQLite`, or
    /// the class of the failure that moved this environment to SQLite.
    fn redshift_message(&self) -> &'static str {
        match self.mode {
            Mode::NotConfigured => "Not configured",
            Mode::OnRedshift => "Connected",
            Mode::OnSqlite { forced: true, .. } => "Forced to SQLite",
            Mode::OnSqlite { forced: false, .. } => match self.last_failure {
                Some(kind) => kind.as_str(),
                // Out of forced mode, Redshift not asked yet.
                None => "Not checked yet",
            },
        }
    }

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
        HealthState {
            mode,
            last_failure: None,
            next_probe_at: None,
            last_probe_at: None,
            consecutive_failures: 0,
            fallbacks: 0,
            forced_switches: 0,
            recoveries: 0,
            last_fallback_duration: None,
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
    /// Back on Redshift with writes still replaying: reads are answered from SQLite meanwhile.
    pub catching_up: bool,
    pub rejected_sync: u64,
    pub last_replay_at: Option<DateTime<Utc>>,
}

/// What a request got, and from where. A refusal comes with the source that refused it.
#[derive(Debug)]
pub struct Served<T> {
    pub source: Source,
    pub result: Result<T, StoreError>,
}

/// What `/db/force-sqlite` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForceOutcome {
    /// Left Redshift for SQLite.
    Switched,
    /// Already on SQLite (after a failure or an earlier force); now it stays there.
    AlreadyOnSqlite,
    /// Redshift is not configured: SQLite is the only database anyway.
    NotConfigured,
}

/// One request's work, run against whichever database serves.
enum Op<'a> {
    History(&'a HistoryQuery),
    Get(&'a str),
    Insert(&'a Call),
}

enum Output {
    Calls(Vec<Call>),
    /// History from the backup, written as JSON straight from its rows.
    CallsJson(CallsJson),
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

    /// As [`Op::run`], on the backup: what it answers goes to the client and nowhere else, so
    /// history is written as the answer's JSON at once.
    async fn run_on_backup(&self, sqlite: &SqliteStore) -> Result<Output, StoreError> {
        match self {
            Op::History(query) => Ok(Output::CallsJson(sqlite.history_json(query).await?)),
            _ => self.run(sqlite).await,
        }
    }
}

/// The way a request goes, decided under the health lock.
enum Route<'a> {
    Redshift(&'a RedshiftStore),
    /// Try Redshift as this interval's probe; the guard keeps other probes out.
    Probe(&'a RedshiftStore, tokio::sync::MutexGuard<'a, ()>),
    Sqlite,
}

/// What trying Redshift for a request came to.
enum Attempt {
    /// Redshift answered: with the result, or with a refusal of the request's values.
    Answered(Result<Output, StoreError>),
    /// Writes waited in the journal: this request spent its time replaying them and is answered
    /// from SQLite.
    Replayed,
    /// Writes wait and another request is replaying them: this read is answered from SQLite.
    CatchingUp,
    /// An outage.
    Failed(StoreError),
}

/// What replaying the journal before a request came to.
enum CatchUp {
    /// Redshift took what the journal held (or it was set aside as refused); or, with nothing
    /// to replay, Redshift answered a probe.
    Done,
    /// Another request or environment holds the replay, or the backup failed: Redshift was
    /// not asked.
    NotNow,
    /// An outage.
    Failed(StoreError),
}

/// A request's time: Redshift work until the deadline, then [`ANSWER_MARGIN`] for the rest.
struct RequestBudget {
    redshift: Deadline,
}

impl RequestBudget {
    fn start(redshift_timeout: Duration) -> Self {
        RequestBudget {
            redshift: Deadline::after(redshift_timeout),
        }
    }

    /// What is left of the request's whole budget, less the time kept for the answer itself:
    /// how long copies into the backup and metrics puts may hold the request.
    fn answer_time_left(&self) -> Duration {
        self.redshift
            .extended(ANSWER_MARGIN)
            .remaining()
            .saturating_sub(ANSWER_RESERVE)
    }
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
    backup: Arc<Backup>,
    journal: Journal,
    health: Mutex<HealthState>,
    probe_lock: tokio::sync::Mutex<()>,
    settings: FailoverSettings,
    metrics: Arc<Metrics>,
}

impl FailoverStore {
    pub async fn new(
        redshift: Option<RedshiftStore>,
        backup: Backup,
        settings: FailoverSettings,
        metrics: Arc<Metrics>,
    ) -> Self {
        let journal = Journal::load(backup.store().ok().as_ref(), Arc::clone(&metrics)).await;
        FailoverStore {
            health: Mutex::new(HealthState::new(redshift.is_some(), settings.force_sqlite)),
            redshift,
            backup: Arc::new(backup),
            journal,
            probe_lock: tokio::sync::Mutex::new(()),
            settings,
            metrics,
        }
    }

    /// The backup's store, when it is open.
    pub fn sqlite(&self) -> Option<SqliteStore> {
        self.backup.store().ok()
    }

    pub fn redshift(&self) -> Option<&RedshiftStore> {
        self.redshift.as_ref()
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// History as the JSON array of the answer, from whichever database serves.
    pub async fn history(&self, query: &HistoryQuery) -> Served<CallsJson> {
        let served = self.serve(Op::History(query)).await;
        unwrap_output(served, |out| match out {
            Output::Calls(calls) => Some(CallsJson::from_calls(&calls)),
            Output::CallsJson(json) => Some(json),
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
            _ if self.backup.store().is_ok() => Source::Sqlite,
            _ => Source::Unavailable,
        }
    }

    fn lock_health(&self) -> MutexGuard<'_, HealthState> {
        // The state is plain data updated in single steps; a panic elsewhere cannot leave it torn.
        self.health
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn route<'a>(&'a self, redshift: &'a RedshiftStore) -> Route<'a> {
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
        let Some(redshift) = &self.redshift else {
            return self.serve_from_sqlite(&op).await;
        };
        let budget = RequestBudget::start(redshift.timeout());
        match self.route(redshift) {
            Route::Redshift(redshift) => match self.attempt(redshift, &op, &budget, false).await {
                Attempt::Answered(result) => {
                    return self.answered_by_redshift(&op, result, &budget).await
                }
                Attempt::Replayed | Attempt::CatchingUp => {}
                Attempt::Failed(err) => self.redshift_failed(&err, false, &budget).await,
            },
            Route::Probe(redshift, _guard) => {
                tracing::info!("🔄 Checking whether Redshift is back");
                match self.attempt(redshift, &op, &budget, true).await {
                    Attempt::Answered(result) => {
                        // Even a refusal proves Redshift answers.
                        self.recovered(&budget).await;
                        return self.answered_by_redshift(&op, result, &budget).await;
                    }
                    // Redshift took a replay: it is back, and catches up from here.
                    Attempt::Replayed => self.recovered(&budget).await,
                    // Another environment replays; Redshift was not asked: ask again shortly.
                    Attempt::CatchingUp => self.probe_again_soon(),
                    Attempt::Failed(err) => self.redshift_failed(&err, true, &budget).await,
                }
            }
            Route::Sqlite => self.heartbeat_if_due(&budget).await,
        }
        self.serve_from_sqlite(&op).await
    }

    /// Tries the request on Redshift, unless writes wait: see the module documentation.
    async fn attempt(
        &self,
        redshift: &RedshiftStore,
        op: &Op<'_>,
        budget: &RequestBudget,
        probing: bool,
    ) -> Attempt {
        let session = redshift.within(budget.redshift);
        // Without the backup the journal cannot be read: its writes wait for it to return, and
        // Redshift answers meanwhile.
        let backup = match self.writes_waiting(probing).await {
            0 => None,
            _ => self.backup.store().ok(),
        };
        if let Some(sqlite) = backup {
            match self.catch_up(&sqlite, session).await {
                CatchUp::Done => return Attempt::Replayed,
                CatchUp::Failed(err) => return Attempt::Failed(err),
                CatchUp::NotNow if self.backup_answers_meanwhile(&sqlite, op).await => {
                    return Attempt::CatchingUp
                }
                CatchUp::NotNow => {}
            }
        }
        tracing::info!("☁️ Executing query on Redshift");
        match op.run(&session).await {
            Ok(output) => Attempt::Answered(Ok(output)),
            Err(err) if err.is_refusal() => {
                tracing::warn!(reason = %err, detail = %err.detail, "Redshift refused the request; nothing was changed");
                Attempt::Answered(Err(err))
            }
            Err(err) => Attempt::Failed(err),
        }
    }

    /// Writes waiting for replay, as this environment knows them. A shared file is written by
    /// other environments too: its journal is counted again on each probe and at most once per
    /// check interval (a count costs a query; most requests need none).
    async fn writes_waiting(&self, probing: bool) -> u64 {
        if self.backup.shared()
            && self
                .journal
                .recount_due(probing, self.settings.check_interval)
        {
            if let Ok(sqlite) = self.backup.store() {
                self.journal.recount(&sqlite).await;
            }
        }
        self.journal.pending()
    }

    /// Replays the journal within `session`'s deadline, before a request is served.
    async fn catch_up(&self, sqlite: &SqliteStore, session: RedshiftSession<'_>) -> CatchUp {
        match self.journal.replay(sqlite, session).await {
            Ok(report) if report.busy => CatchUp::NotNow,
            Ok(_) => CatchUp::Done,
            // The backup failed, not Redshift: nothing switches, and the writes wait for the
            // next try.
            Err(err) if matches!(err.kind, ErrorKind::Sqlite(_)) => {
                tracing::warn!(error = %err, detail = %err.detail, "The journal could not be read or updated; its writes wait for the next try");
                CatchUp::NotNow
            }
            Err(err) => CatchUp::Failed(err),
        }
    }

    /// Whether, while writes wait and this request cannot replay them, the backup answers it:
    /// a read, since only the backup holds those writes; and a write of an id the backup
    /// holds, since it may be one of them and only the backup can tell the same body (200)
    /// from another (409). A write of a new id goes to Redshift.
    async fn backup_answers_meanwhile(&self, sqlite: &SqliteStore, op: &Op<'_>) -> bool {
        match op {
            Op::Insert(call) => matches!(sqlite.get(&call.id).await, Ok(Some(_))),
            _ => true,
        }
    }

    /// Replays journaled writes to Redshift now, under a fresh deadline (tools and tests).
    pub async fn replay(&self) -> Result<ReplayReport, StoreError> {
        match (&self.redshift, self.backup.store()) {
            (Some(redshift), Ok(sqlite)) => self.journal.replay(&sqlite, redshift.session()).await,
            _ => Ok(ReplayReport::default()),
        }
    }

    async fn answered_by_redshift(
        &self,
        op: &Op<'_>,
        result: Result<Output, StoreError>,
        budget: &RequestBudget,
    ) -> Served<Output> {
        if let Ok(output) = &result {
            self.keep_in_backup(op, output, budget).await;
        }
        if let (Op::Get(id), Ok(Output::Call(None))) = (op, &result) {
            if let Some(call) = self.set_aside_call(id).await {
                return Served {
                    source: Source::Sqlite,
                    result: Ok(Output::Call(Some(call))),
                };
            }
        }
        Served {
            source: Source::Redshift,
            result,
        }
    }

    /// A write this environment acknowledged that Redshift later refused is not in Redshift,
    /// but it was acknowledged: asked for by id, the backup answers for it.
    async fn set_aside_call(&self, id: &str) -> Option<Call> {
        if self.journal.rejected() == 0 {
            return None;
        }
        self.backup.store().ok()?.set_aside_call(id).await.ok()?
    }

    /// Copies what Redshift served or took into the backup, so that a later fallback in this
    /// environment answers with what it last saw. A write Redshift took is copied before it is
    /// acknowledged (a later fallback must still find it), within what is left of the request's
    /// budget (a copy that takes longer finishes in the background, milliseconds later); what
    /// Redshift merely served is copied off the request path. Losing a copy loses nothing that
    /// Redshift does not hold.
    async fn keep_in_backup(&self, op: &Op<'_>, output: &Output, budget: &RequestBudget) {
        let Ok(sqlite) = self.backup.store() else {
            return;
        };
        let (calls, wait) = match (output, op) {
            (Output::Inserted(InsertOutcome::Inserted), Op::Insert(call)) => {
                (vec![(*call).clone()], true)
            }
            (Output::Inserted(InsertOutcome::AlreadyExists(call)), _) => (vec![call.clone()], true),
            (Output::Calls(calls), _) => (calls.clone(), false),
            (Output::Call(Some(call)), _) => (vec![call.clone()], false),
            _ => return,
        };
        if calls.is_empty() {
            return;
        }
        let backup = Arc::clone(&self.backup);
        let refresh = tokio::spawn(async move {
            let calls: Arc<[Call]> = calls.into();
            let mut copied = sqlite.refresh(Arc::clone(&calls)).await;
            if retired(&copied) {
                // The file was replaced meanwhile: the copy goes to the new one.
                copied = match backup.store() {
                    Ok(sqlite) => sqlite.refresh(calls).await,
                    Err(err) => Err(err),
                };
            }
            if let Err(err) = copied {
                tracing::warn!(error = %err.detail, "could not copy Redshift's answer into the local backup");
            }
        });
        if wait {
            let _ = tokio::time::timeout(budget.answer_time_left(), refresh).await;
        }
    }

    async fn serve_from_sqlite(&self, op: &Op<'_>) -> Served<Output> {
        let is_write = matches!(op, Op::Insert(_));
        let sqlite = if is_write {
            self.backup.store_for_write()
        } else {
            self.backup.store()
        };
        let sqlite = match sqlite {
            Ok(sqlite) => sqlite,
            Err(err) => {
                return Served {
                    source: Source::Unavailable,
                    result: Err(err),
                }
            }
        };
        tracing::info!("💾 Executing query on local SQLite");
        let mut result = op.run_on_backup(&sqlite).await;
        if is_write && retired(&result) {
            // The file was found broken and replaced while this write waited for it: the new
            // file takes it.
            result = match self.backup.store_for_write() {
                Ok(sqlite) => op.run_on_backup(&sqlite).await,
                Err(err) => Err(err),
            };
        }
        if is_write {
            self.backup.write_done(result.as_ref().map(|_| ()));
        }
        match result {
            Ok(output) => {
                if self.redshift.is_some()
                    && matches!(output, Output::Inserted(InsertOutcome::Inserted))
                {
                    self.journal.journaled();
                }
                Served {
                    source: Source::Sqlite,
                    result: Ok(output),
                }
            }
            Err(err) => {
                tracing::error!(error = %err.detail, "❌ Local SQLite failed too: {err}");
                if !is_write {
                    self.backup.query_failed(&err);
                }
                Served {
                    source: Source::Unavailable,
                    result: Err(err),
                }
            }
        }
    }

    /// Redshift failed a request (or the probe, when `probe`): the request goes to SQLite, the
    /// next probe waits an interval, and a switch away from Redshift is measured.
    async fn redshift_failed(&self, err: &StoreError, probe: bool, budget: &RequestBudget) {
        tracing::warn!(detail = %err.detail, "⚠️ Redshift unavailable, falling back to local SQLite: {err}");
        let switched = {
            let mut health = self.lock_health();
            health.last_failure = Some(err.kind);
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
            self.metrics
                .record(SwitchEvent::FellBack, budget.answer_time_left())
                .await;
        } else {
            self.heartbeat_if_due(budget).await;
        }
    }

    /// A probe that could not ask Redshift (another environment holds the replay): the next
    /// one comes after a short pause rather than on every request, or after a whole interval.
    fn probe_again_soon(&self) {
        let pause = self.settings.check_interval.min(PROBE_PAUSE);
        self.lock_health().next_probe_at = Some(Instant::now() + pause);
    }

    async fn recovered(&self, budget: &RequestBudget) {
        let fallback = {
            let mut health = self.lock_health();
            health.last_probe_at = Some(Utc::now());
            health.consecutive_failures = 0;
            health.next_probe_at = None;
            // A `/db/force-sqlite` that arrived while the probe ran wins: forced stays forced.
            health.last_failure = None;
            let Mode::OnSqlite {
                since,
                forced: false,
                ..
            } = health.mode
            else {
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
            .record(
                SwitchEvent::Recovered { fallback },
                budget.answer_time_left(),
            )
            .await;
    }

    /// While on SQLite with Redshift configured, reports the running duration, rate-limited.
    async fn heartbeat_if_due(&self, budget: &RequestBudget) {
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
            .record(
                SwitchEvent::StillOnSqlite { elapsed },
                budget.answer_time_left(),
            )
            .await;
    }

    /// `/db/force-sqlite`: serve from SQLite in this environment until `/db/retry-redshift`.
    pub async fn force_sqlite(&self) -> ForceOutcome {
        let outcome = {
            let mut health = self.lock_health();
            if health.mode == Mode::NotConfigured {
                ForceOutcome::NotConfigured
            } else {
                if health.move_to_sqlite(true) {
                    health.forced_switches += 1;
                    ForceOutcome::Switched
                } else {
                    ForceOutcome::AlreadyOnSqlite
                }
            }
        };
        match outcome {
            ForceOutcome::NotConfigured => {
                tracing::info!("💾 Redshift is not configured; already serving from SQLite")
            }
            _ => tracing::warn!("💾 Forced to local SQLite until /db/retry-redshift"),
        }
        if outcome == ForceOutcome::Switched {
            self.metrics.record(SwitchEvent::Forced, PUT_TIMEOUT).await;
        }
        outcome
    }

    /// `/db/retry-redshift`: leaves forced mode and tries Redshift now (waiting for a probe
    /// already under way rather than running two at once): replays waiting writes, or, with
    /// none waiting, runs a probe statement. Returns the source afterwards.
    pub async fn retry_redshift(&self) -> Source {
        let Some(redshift) = &self.redshift else {
            return self.current_source();
        };
        let _guard = self.probe_lock.lock().await;
        {
            let mut health = self.lock_health();
            if let Mode::OnSqlite { forced, .. } = health.mode {
                if forced {
                    // Whatever failed before the force is not what this try will find.
                    health.last_failure = None;
                }
                health.move_to_sqlite(false);
            }
        }
        tracing::info!("🔄 Retrying Redshift connection");
        let budget = RequestBudget::start(redshift.timeout());
        let session = redshift.within(budget.redshift);
        let backup = match self.writes_waiting(true).await {
            0 => None,
            _ => self.backup.store().ok(),
        };
        let outcome = match backup {
            Some(sqlite) => self.catch_up(&sqlite, session).await,
            None => match session.probe().await {
                Ok(()) => CatchUp::Done,
                Err(err) => CatchUp::Failed(err),
            },
        };
        match outcome {
            // Another environment holds the replay, or the journal could not be read: Redshift
            // was not asked.
            CatchUp::NotNow => {}
            CatchUp::Done => self.recovered(&budget).await,
            CatchUp::Failed(err) => self.redshift_failed(&err, true, &budget).await,
        }
        self.current_source()
    }

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
            redshift_message: health.redshift_message().to_string(),
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
            catching_up: health.mode == Mode::OnRedshift && self.journal.pending() > 0,
            rejected_sync: self.journal.rejected(),
            last_replay_at: self.journal.last_replay_at(),
        }
    }
}

fn unwrap_output<T>(served: Served<Output>, pick: impl FnOnce(Output) -> Option<T>) -> Served<T> {
    let result = served.result.and_then(|output| {
        pick(output).ok_or_else(|| StoreError::decode("operation returned another kind of answer"))
    });
    Served {
        source: served.source,
        result,
    }
}

/// True when a write failed because its store was retired (its file replaced meanwhile), and is
/// to be made again on the store that replaced it.
fn retired<T>(result: &Result<T, StoreError>) -> bool {
    matches!(result, Err(err) if err.kind == ErrorKind::Sqlite(SqliteProblem::Retired))
}
