//! The failover store: who answers each request.
//!
//! - Redshift not configured: the local database is the primary.
//! - Redshift healthy: reads are answered from the local replica while it is within its
//!   staleness bound (pulled first when it is not: [`Replica`]); a history query the replica's
//!   window cannot answer completely, and an id it does not know, go to Redshift, and so does
//!   every read when no replica is kept (`READ_MAX_STALENESS_MS=0`). Writes go to Redshift
//!   ([`WriteBatcher`]) and are in the replica before they are acknowledged.
//! - Any outage answers that same request from the backup, and the environment stays on it until
//!   a probe succeeds ([`HealthState`]); a write is then journaled, to be replayed. A refusal of
//!   the request's values answers the client and switches nothing. Throttling is back-pressure:
//!   the replica keeps answering within its bound; past it, the backup answers and Redshift is
//!   tried again after a short pause; a throttled write is journaled.
//! - Every answer says which database served it and as of when ([`Served`]).
//! - One deadline per request ([`RequestBudget`]): Redshift work until `REDSHIFT_TIMEOUT_MS`,
//!   then at most [`ANSWER_MARGIN`] for the answer. Metrics and copies of what Redshift served
//!   are [`Background`] work that never delays an answer.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::activity::Activity;
use super::backup::Backup;
use super::deadline::Deadline;
use super::error::{ErrorKind, SqliteProblem};
pub use super::health::ForceOutcome;
use super::health::{HealthState, Route, Switch};
use super::journal::{replay_stopped, Journal, ReplayReport};
use super::json::CallsJson;
use super::redshift::RedshiftStore;
use super::replica::{Freshness, Pulled, Replica, ReplicaSettings};
use super::sqlite::SqliteStore;
use super::writer::WriteBatcher;
use super::{Call, HistoryQuery, InsertOutcome, Source, StoreError};
use crate::background::Background;
use crate::metrics::{Metrics, SwitchEvent};

/// What a request may spend beyond `REDSHIFT_TIMEOUT_MS`: copying into the backup and answering.
pub const ANSWER_MARGIN: Duration = Duration::from_millis(100);
/// Kept free at the end of a request's budget, for the answer itself.
const ANSWER_RESERVE: Duration = Duration::from_millis(30);
/// A window floor no call is after: only this environment's own writes (waiting for replay, or
/// set aside) are known without asking Redshift.
const ONLY_OWN_WRITES: Option<DateTime<Utc>> = Some(DateTime::<Utc>::MAX_UTC);
/// Between probes that found another environment holding the pull.
const PROBE_PAUSE: Duration = Duration::from_secs(1);

/// How the store behaves, from the configuration.
#[derive(Clone, Debug)]
pub struct FailoverSettings {
    /// Time between probes while on SQLite.
    pub check_interval: Duration,
    /// Start in forced-SQLite mode.
    pub force_sqlite: bool,
    /// How often the running fallback duration is put to CloudWatch while on SQLite.
    pub heartbeat_every: Duration,
    pub replica: ReplicaSettings,
    /// What is missing when Redshift is half configured, for the status.
    pub redshift_incomplete: Option<String>,
}

/// What a request got, from where, and as of when. A refusal comes with the source that refused
/// it.
#[derive(Debug)]
pub struct Served<T> {
    pub source: Source,
    /// The answer holds everything Redshift held at this time (plus this environment's own
    /// writes); `None` when no pull ever reached Redshift (a backup that never was a replica).
    pub as_of: Option<DateTime<Utc>>,
    pub result: Result<T, StoreError>,
}

/// A request's time: Redshift work until the deadline, then [`ANSWER_MARGIN`] for the rest.
pub(super) struct RequestBudget {
    pub(super) redshift: Deadline,
}

impl RequestBudget {
    pub(super) fn start(redshift_timeout: Duration) -> Self {
        RequestBudget {
            redshift: Deadline::after(redshift_timeout),
        }
    }

    /// What is left of the request's whole budget, less the time kept for the answer itself:
    /// how long a copy into the backup may hold the request.
    fn answer_time_left(&self) -> Duration {
        self.redshift
            .extended(ANSWER_MARGIN)
            .remaining()
            .saturating_sub(ANSWER_RESERVE)
    }
}

/// How a read can be served from Redshift's side.
enum Primary {
    /// From the replica, fresh as of then.
    Replica { as_of: Option<DateTime<Utc>> },
    /// By a statement on Redshift (no replica is kept, or the backup cannot be read); when
    /// `probe`, that statement is this interval's probe.
    Direct { probe: bool },
    /// Not at all: the backup answers.
    Down,
}

pub struct FailoverStore {
    pub(super) redshift: Option<RedshiftStore>,
    pub(super) backup: Arc<Backup>,
    pub(super) journal: Journal,
    pub(super) replica: Replica,
    writer: WriteBatcher,
    pub(super) health: Mutex<HealthState>,
    probe_lock: tokio::sync::Mutex<()>,
    pub(super) settings: FailoverSettings,
    pub(super) metrics: Arc<Metrics>,
    pub(super) background: Background,
    pub(super) activity: Mutex<Activity>,
}

impl FailoverStore {
    pub async fn new(
        redshift: Option<RedshiftStore>,
        backup: Backup,
        settings: FailoverSettings,
        metrics: Arc<Metrics>,
        background: Background,
    ) -> Self {
        let sqlite = backup.store().ok();
        let journal = Journal::load(sqlite.as_ref(), Arc::clone(&metrics)).await;
        let replica = Replica::load(sqlite.as_ref(), settings.replica).await;
        let health = HealthState::new(
            redshift.is_some(),
            settings.force_sqlite,
            Instant::now(),
            Utc::now(),
        );
        FailoverStore {
            health: Mutex::new(health),
            redshift,
            backup: Arc::new(backup),
            journal,
            replica,
            writer: WriteBatcher::default(),
            probe_lock: tokio::sync::Mutex::new(()),
            settings,
            metrics,
            background,
            activity: Mutex::new(Activity::default()),
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

    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// The source a request would be served from now, without touching either database.
    pub fn current_source(&self) -> Source {
        let on_redshift = matches!(self.lock_health().route(Instant::now()), Route::Redshift);
        match on_redshift {
            true => Source::Redshift,
            false if self.backup.store().is_ok() => Source::Sqlite,
            false => Source::Unavailable,
        }
    }

    pub(super) fn lock_health(&self) -> MutexGuard<'_, HealthState> {
        // Plain data updated in single steps; a panic elsewhere cannot leave it torn.
        self.health
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The way a request goes; a probe holds the probe lock, so that one runs at a time.
    fn route(&self) -> (Route, Option<tokio::sync::MutexGuard<'_, ()>>) {
        let route = self.lock_health().route(Instant::now());
        match route {
            Route::Probe => match self.probe_lock.try_lock() {
                Ok(guard) => (Route::Probe, Some(guard)),
                Err(_) => (Route::Backup, None),
            },
            other => (other, None),
        }
    }

    // ---- reads ------------------------------------------------------------------------------

    /// History as the JSON array of the answer.
    pub async fn history(&self, query: &HistoryQuery) -> Served<CallsJson> {
        let Some(redshift) = &self.redshift else {
            return self.backup_history(query, None).await;
        };
        let budget = RequestBudget::start(redshift.timeout());
        let (route, _probe) = self.route();
        let as_of = match self.primary(redshift, route, &budget).await {
            Primary::Down => return self.backup_history(query, self.replica.as_of()).await,
            Primary::Direct { probe } => {
                return self.redshift_history(redshift, query, &budget, probe).await
            }
            Primary::Replica { as_of } => as_of,
        };
        self.note_replica_age(Utc::now());
        let local = match (self.backup.store(), self.replica.window_floor()) {
            (Ok(sqlite), Some(floor)) => sqlite.history_in_window(query, floor).await,
            (Err(err), _) => Err(err),
            (_, None) => Err(StoreError::new(
                ErrorKind::Sqlite(SqliteProblem::Other),
                "no replica yet",
            )),
        };
        match local {
            Ok(local) if local.complete => Served {
                source: Source::Redshift,
                as_of,
                result: Ok(local.calls),
            },
            // Beyond the window, or the backup failed: Redshift itself answers.
            _ => self.redshift_history(redshift, query, &budget, false).await,
        }
    }

    pub async fn get(&self, id: &str) -> Served<Option<Call>> {
        let Some(redshift) = &self.redshift else {
            return self.backup_get(id, None).await;
        };
        let asked_at = Utc::now();
        let budget = RequestBudget::start(redshift.timeout());
        let (route, _probe) = self.route();
        let (as_of, floor, probe) = match self.primary(redshift, route, &budget).await {
            Primary::Down => return self.backup_get(id, self.replica.as_of()).await,
            Primary::Replica { as_of } => {
                self.note_replica_age(Utc::now());
                let floor = self.replica.window_floor().unwrap_or(ONLY_OWN_WRITES);
                (as_of, floor, false)
            }
            Primary::Direct { probe } => (None, ONLY_OWN_WRITES, probe),
        };
        // A probe asks Redshift itself.
        if let (Ok(sqlite), false) = (self.backup.store(), probe) {
            if let Ok(Some((call, true))) = sqlite.get_known(id, floor).await {
                return found_here(call, as_of.or(Some(Utc::now())));
            }
            if as_of.is_some() {
                if let Some(served) = self
                    .after_a_pull(redshift, &sqlite, id, asked_at, &budget)
                    .await
                {
                    return served;
                }
            }
        }
        self.redshift_get(redshift, id, &budget, probe).await
    }

    /// An id the replica does not know: a pull sent after this request arrived holds every call
    /// acknowledged before it (one pull serves every miss meanwhile, where asking Redshift for
    /// each would cost two Data API calls apiece). `None` when that cannot settle it: the pull
    /// failed, or the call may be older than the window.
    async fn after_a_pull(
        &self,
        redshift: &RedshiftStore,
        sqlite: &SqliteStore,
        id: &str,
        asked_at: DateTime<Utc>,
        budget: &RequestBudget,
    ) -> Option<Served<Option<Call>>> {
        let session = redshift.within(budget.redshift);
        self.replica
            .pull(sqlite, session, Some(asked_at))
            .await
            .ok()?;
        let as_of = self.replica.as_of();
        let floor = self.replica.window_floor()?;
        match sqlite.get_known(id, floor).await.ok()? {
            Some((call, true)) => Some(found_here(call, as_of)),
            // The window holds every call: none with this id.
            None if floor.is_none() => Some(Served {
                source: Source::Redshift,
                as_of,
                result: Ok(None),
            }),
            _ => None,
        }
    }

    /// Makes sure Redshift's side can serve a read: brings the replica within its bound first
    /// (a pull is also the probe, when this request is the probe). Without a replica, the
    /// request's own statement is the probe.
    async fn primary(
        &self,
        redshift: &RedshiftStore,
        route: Route,
        budget: &RequestBudget,
    ) -> Primary {
        let mut probing = match route {
            Route::Local | Route::Backup => {
                self.heartbeat_if_due();
                return Primary::Down;
            }
            Route::Probe => true,
            Route::Redshift => false,
        };
        // Redshift proved itself up in this request (a replay went through).
        let mut proven = false;
        if probing {
            tracing::info!("🔄 Checking whether Redshift is back");
            // The request that finds Redshift back replays what waits first, so that every
            // environment can read those writes from now on; the rest replays between requests.
            match self.replay_as_probe(redshift, budget).await {
                Some(Err(err)) => {
                    self.contact_failed(&err, true);
                    return Primary::Down;
                }
                Some(Ok(())) => {
                    self.contact_succeeded(true);
                    (probing, proven) = (false, true);
                }
                None => {}
            }
        }
        let sqlite = match self.backup.store() {
            Ok(sqlite) if self.replica.settings().enabled() => sqlite,
            // No replica (kept, or readable): Redshift answers every read itself.
            _ => return Primary::Direct { probe: probing },
        };
        if sqlite.options().shared {
            self.replica.reload(&sqlite).await;
        }
        if !probing && self.replica.freshness(Utc::now()) != Freshness::Stale {
            return Primary::Replica {
                as_of: self.replica.as_of(),
            };
        }
        self.pull_for_read(redshift, &sqlite, budget, probing, proven)
            .await
    }

    /// Brings a stale replica within its bound before a read (or as the probe), and says who
    /// answers after that pull: the replica, Redshift itself (the backup file failed), or the
    /// backup (Redshift did not answer in time). `proven`: a replay in this request already
    /// showed Redshift up, so a failed pull is no reason to fall back.
    async fn pull_for_read(
        &self,
        redshift: &RedshiftStore,
        sqlite: &SqliteStore,
        budget: &RequestBudget,
        probing: bool,
        proven: bool,
    ) -> Primary {
        tracing::info!("☁️ Executing query on Redshift");
        let session = redshift.within(budget.redshift);
        // A reader may use a pull another reader finished while it waited; a probe needs its own.
        let wanted_after = (!probing).then(|| Utc::now() - self.settings.replica.max_staleness);
        match self.replica.pull(sqlite, session, wanted_after).await {
            Ok(Pulled::Pulled | Pulled::ByAnother) => {
                self.contact_succeeded(probing);
                Primary::Replica {
                    as_of: self.replica.as_of(),
                }
            }
            Ok(Pulled::Busy) => {
                // Another environment holds the pull and did not finish within this request.
                let busy = StoreError::new(
                    ErrorKind::Timeout,
                    "another environment's pull did not finish in time",
                );
                if probing {
                    self.lock_health()
                        .probe_again_after(PROBE_PAUSE, Instant::now());
                } else if !proven {
                    self.contact_failed(&busy, false);
                }
                Primary::Down
            }
            Err(err) if matches!(err.kind, ErrorKind::Sqlite(_)) => {
                // The backup failed, not Redshift: Redshift answers this read itself.
                tracing::warn!(error = %err, detail = %err.detail, "The local replica could not be updated; Redshift answers");
                self.backup.query_failed(&err);
                Primary::Direct { probe: false }
            }
            Err(err)
                if err.kind == ErrorKind::Throttled
                    && !probing
                    && self.replica.freshness(Utc::now()) != Freshness::Stale =>
            {
                // Back-pressure while the copy is within its bound: it answers.
                Primary::Replica {
                    as_of: self.replica.as_of(),
                }
            }
            // Redshift took the replay: it is up, only the copy is not fresh yet; the backup
            // answers this request and the next one pulls.
            Err(_) if proven => Primary::Down,
            Err(err) => {
                self.contact_failed(&err, probing);
                Primary::Down
            }
        }
    }

    /// History from Redshift itself, with this environment's writes that wait for replay added
    /// (it acknowledged them; Redshift does not hold them yet).
    async fn redshift_history(
        &self,
        redshift: &RedshiftStore,
        query: &HistoryQuery,
        budget: &RequestBudget,
        probe: bool,
    ) -> Served<CallsJson> {
        let waiting = self.waiting_writes().await;
        // With writes to add, the page is cut after merging: ask from the start.
        let asked = match waiting.is_empty() {
            true => query.clone(),
            false => HistoryQuery {
                offset: 0,
                limit: query.offset.saturating_add(query.limit),
                ..query.clone()
            },
        };
        tracing::info!("☁️ Executing query on Redshift");
        let asked_at = Utc::now();
        match redshift.within(budget.redshift).history(&asked).await {
            Ok(calls) => {
                self.contact_succeeded(probe);
                self.copy_in_background(&calls);
                let calls = merge_page(calls, waiting, query);
                Served {
                    source: Source::Redshift,
                    as_of: Some(asked_at),
                    result: Ok(CallsJson::from_calls(&calls)),
                }
            }
            Err(err) if err.is_refusal() => refused(err),
            // Throttled: back-pressure, not an outage; the backup answers this one.
            Err(err) if err.kind == ErrorKind::Throttled && !probe => {
                self.backup_history(query, self.replica.as_of()).await
            }
            Err(err) => {
                self.contact_failed(&err, probe);
                self.backup_history(query, self.replica.as_of()).await
            }
        }
    }

    async fn redshift_get(
        &self,
        redshift: &RedshiftStore,
        id: &str,
        budget: &RequestBudget,
        probe: bool,
    ) -> Served<Option<Call>> {
        tracing::info!("☁️ Executing query on Redshift");
        let asked_at = Utc::now();
        match redshift.within(budget.redshift).get(id).await {
            Ok(found) => {
                self.contact_succeeded(probe);
                if let Some(call) = &found {
                    self.copy_in_background(std::slice::from_ref(call));
                }
                Served {
                    source: Source::Redshift,
                    as_of: Some(asked_at),
                    result: Ok(found),
                }
            }
            Err(err) if err.is_refusal() => refused(err),
            // Throttled: Redshift is up and may hold the call; the backup cannot tell a call it
            // never saw from none, so the answer is that no database could look it up.
            Err(err) if err.kind == ErrorKind::Throttled && !probe => unavailable(err),
            Err(err) => {
                self.contact_failed(&err, probe);
                self.backup_get(id, self.replica.as_of()).await
            }
        }
    }

    /// This environment's writes that wait for replay, when there are any.
    async fn waiting_writes(&self) -> Vec<Call> {
        if self.journal.pending() == 0 {
            return Vec::new();
        }
        match self.backup.store() {
            Ok(sqlite) => sqlite.pending_calls().await.unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    // ---- writes -----------------------------------------------------------------------------

    pub async fn insert(&self, call: &Call) -> Served<InsertOutcome> {
        let Some(redshift) = &self.redshift else {
            return self.backup_insert(call, None).await;
        };
        let budget = RequestBudget::start(redshift.timeout());
        let (route, _probe) = self.route();
        // A write probes the way a read does (with a pull, or, without a replica, by itself).
        let probe = match route {
            Route::Probe => match self.primary(redshift, route, &budget).await {
                Primary::Down => return self.backup_insert(call, self.replica.as_of()).await,
                Primary::Direct { probe } => probe,
                Primary::Replica { .. } => false,
            },
            Route::Redshift => false,
            Route::Local | Route::Backup => {
                self.heartbeat_if_due();
                return self.backup_insert(call, self.replica.as_of()).await;
            }
        };
        if let Some(known) = self.known_locally(call).await {
            return known;
        }
        let session = redshift.within(budget.redshift);
        let written_at = Utc::now();
        match self.writer.write(call, session).await {
            Ok(outcome) => {
                self.contact_succeeded(probe);
                self.keep_in_backup(call, &outcome, &budget).await;
                Served {
                    source: Source::Redshift,
                    as_of: Some(written_at),
                    result: Ok(outcome),
                }
            }
            Err(err) if err.is_refusal() => {
                tracing::warn!(reason = %err, detail = %err.detail, "Redshift refused the request; nothing was changed");
                refused(err)
            }
            Err(err) if err.kind == ErrorKind::Throttled && !probe => {
                // Back-pressure: the backup takes the write and journals it; nothing switches.
                tracing::warn!(detail = %err.detail, "⚠️ Redshift throttled a write; kept in the local backup for replay");
                self.backup_insert(call, self.replica.as_of()).await
            }
            Err(err) => {
                self.contact_failed(&err, probe);
                self.backup_insert(call, self.replica.as_of()).await
            }
        }
    }

    /// A write of an id this environment knows without asking Redshift (its own write waiting
    /// for replay or set aside, or a call inside the replica's window) is answered as it
    /// stands: only the backup can tell a journaled write's first body (200) from another (409).
    async fn known_locally(&self, call: &Call) -> Option<Served<InsertOutcome>> {
        let floor = match self.replica.settings().enabled() {
            true => self.replica.window_floor().unwrap_or(ONLY_OWN_WRITES),
            false => ONLY_OWN_WRITES,
        };
        let sqlite = self.backup.store().ok()?;
        let (existing, known) = sqlite.get_known(&call.id, floor).await.ok()??;
        known.then(|| Served {
            source: Source::Redshift,
            as_of: self.replica.as_of(),
            result: Ok(InsertOutcome::AlreadyExists(existing)),
        })
    }

    /// A write Redshift took is copied into the backup before it is acknowledged, so that this
    /// environment reads it at once, and a later fallback still finds it. A copy that takes
    /// longer than the request's budget finishes as background work; losing it loses nothing
    /// Redshift does not hold (the next pull brings it).
    async fn keep_in_backup(&self, call: &Call, outcome: &InsertOutcome, budget: &RequestBudget) {
        let stored = match outcome {
            InsertOutcome::Inserted => call.clone(),
            InsertOutcome::AlreadyExists(existing) => existing.clone(),
            InsertOutcome::IdTaken => return,
        };
        let (done, copied) = tokio::sync::oneshot::channel();
        let backup = Arc::clone(&self.backup);
        self.background.spawn(async move {
            copy_into(&backup, vec![stored]).await;
            let _ = done.send(());
        });
        let _ = tokio::time::timeout(budget.answer_time_left(), copied).await;
    }

    /// Copies what Redshift answered into the backup, off the request path.
    fn copy_in_background(&self, calls: &[Call]) {
        if calls.is_empty() || self.backup.store().is_err() {
            return;
        }
        let backup = Arc::clone(&self.backup);
        let calls = calls.to_vec();
        self.background.spawn(copy_into_owned(backup, calls));
    }

    // ---- the backup -------------------------------------------------------------------------

    async fn backup_history(
        &self,
        query: &HistoryQuery,
        as_of: Option<DateTime<Utc>>,
    ) -> Served<CallsJson> {
        self.read_backup(
            as_of,
            |sqlite| async move { sqlite.history_json(query).await },
        )
        .await
    }

    async fn backup_get(&self, id: &str, as_of: Option<DateTime<Utc>>) -> Served<Option<Call>> {
        self.read_backup(as_of, |sqlite| async move { sqlite.get(id).await })
            .await
    }

    async fn read_backup<T, F, Fut>(&self, as_of: Option<DateTime<Utc>>, read: F) -> Served<T>
    where
        F: FnOnce(SqliteStore) -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let sqlite = match self.backup.store() {
            Ok(sqlite) => sqlite,
            Err(err) => return unavailable(err),
        };
        tracing::info!("💾 Executing query on local SQLite");
        match read(sqlite).await {
            Ok(found) => Served {
                source: Source::Sqlite,
                as_of,
                result: Ok(found),
            },
            Err(err) => {
                tracing::error!(error = %err.detail, "❌ Local SQLite failed too: {err}");
                self.backup.query_failed(&err);
                unavailable(err)
            }
        }
    }

    /// A write the backup takes (journaled when Redshift is configured).
    async fn backup_insert(
        &self,
        call: &Call,
        as_of: Option<DateTime<Utc>>,
    ) -> Served<InsertOutcome> {
        let sqlite = match self.backup.store_for_write() {
            Ok(sqlite) => sqlite,
            Err(err) => return unavailable(err),
        };
        tracing::info!("💾 Executing query on local SQLite");
        let mut result = sqlite.insert(call).await;
        if retired(&result) {
            // The file was found broken and replaced while this write waited for it: the new
            // file takes it.
            result = match self.backup.store_for_write() {
                Ok(sqlite) => sqlite.insert(call).await,
                Err(err) => Err(err),
            };
        }
        self.backup.write_done(result.as_ref().map(|_| ()));
        match result {
            Ok(outcome) => {
                if self.redshift.is_some() && outcome == InsertOutcome::Inserted {
                    self.journal.journaled();
                }
                Served {
                    source: Source::Sqlite,
                    as_of,
                    result: Ok(outcome),
                }
            }
            Err(err) => {
                tracing::error!(error = %err.detail, "❌ Local SQLite failed too: {err}");
                unavailable(err)
            }
        }
    }

    // ---- health -----------------------------------------------------------------------------

    /// Redshift answered.
    fn contact_succeeded(&self, probe: bool) {
        let switch = self
            .lock_health()
            .succeeded(probe, Instant::now(), Utc::now());
        if let Some(Switch::Recovered { fallback }) = switch {
            tracing::info!(
                fallback_seconds = fallback.as_secs_f64(),
                "✅ Redshift connection restored"
            );
            self.metrics.record(SwitchEvent::Recovered { fallback });
        }
    }

    /// Redshift failed a request (or the probe, when `probe`): the next try waits a while, and a
    /// switch away from Redshift is measured.
    fn contact_failed(&self, err: &StoreError, probe: bool) {
        tracing::warn!(detail = %err.detail, "⚠️ Redshift unavailable, falling back to local SQLite: {err}");
        let (now, wall) = (Instant::now(), Utc::now());
        let interval = self.settings.check_interval;
        let switch = {
            let mut health = self.lock_health();
            match err.kind {
                ErrorKind::Throttled => health.throttled(probe, interval, now, wall),
                kind => health.failed(kind, probe, interval, now, wall),
            }
        };
        match switch {
            Some(_) => self.metrics.record(SwitchEvent::FellBack),
            None => self.heartbeat_if_due(),
        }
    }

    /// While on SQLite with Redshift configured, reports the running duration, rate-limited.
    fn heartbeat_if_due(&self) {
        let every = self.settings.heartbeat_every;
        let elapsed = self.lock_health().heartbeat_due(every, Instant::now());
        if let Some(elapsed) = elapsed {
            self.metrics.record(SwitchEvent::StillOnSqlite { elapsed });
        }
    }

    /// `/db/force-sqlite`: serve from SQLite in this environment until `/db/retry-redshift`.
    pub async fn force_sqlite(&self) -> ForceOutcome {
        let outcome = self.lock_health().force(Instant::now(), Utc::now());
        match outcome {
            ForceOutcome::NotConfigured => {
                tracing::info!("💾 Redshift is not configured; already serving from SQLite")
            }
            _ => tracing::warn!("💾 Forced to local SQLite until /db/retry-redshift"),
        }
        if outcome == ForceOutcome::Switched {
            self.metrics.record(SwitchEvent::Forced);
        }
        outcome
    }

    /// `/db/retry-redshift`: leaves forced mode and tries Redshift now (waiting for a probe
    /// already under way rather than running two at once), as a probing request does. Returns
    /// the source afterwards.
    pub async fn retry_redshift(&self) -> Source {
        let Some(redshift) = &self.redshift else {
            return self.current_source();
        };
        let _probe = self.probe_lock.lock().await;
        {
            let mut health = self.lock_health();
            health.leave_forced();
            // Due now, whatever the pause left.
            health.probe_again_after(Duration::ZERO, Instant::now());
        }
        tracing::info!("🔄 Retrying Redshift connection");
        let budget = RequestBudget::start(redshift.timeout());
        // A replay of what waits, then a pull; without a replica, a probe statement.
        if let Primary::Direct { probe: true } = self.primary(redshift, Route::Probe, &budget).await
        {
            match redshift.within(budget.redshift).probe().await {
                Ok(()) => self.contact_succeeded(true),
                Err(err) => self.contact_failed(&err, true),
            }
        }
        self.current_source()
    }

    /// Replays the waiting writes as (the first part of) a probe: `None` when there are none, or
    /// another replay holds them, or the backup failed (then Redshift was not asked).
    async fn replay_as_probe(
        &self,
        redshift: &RedshiftStore,
        budget: &RequestBudget,
    ) -> Option<Result<(), StoreError>> {
        let sqlite = self.backup.store().ok()?;
        if self.backup.shared() {
            self.journal.recount(&sqlite).await;
        }
        if self.journal.pending() == 0 {
            return None;
        }
        match self
            .journal
            .replay(&sqlite, redshift.within(budget.redshift))
            .await
        {
            Ok(report) if report.busy => None,
            Ok(_) => Some(Ok(())),
            Err(err) if matches!(err.kind, ErrorKind::Sqlite(_)) => {
                replay_stopped(&err);
                None
            }
            Err(err) => Some(Err(err)),
        }
    }

    /// Replays journaled writes to Redshift now, under a fresh deadline (tools and tests).
    pub async fn replay(&self) -> Result<ReplayReport, StoreError> {
        match (&self.redshift, self.backup.store()) {
            (Some(redshift), Ok(sqlite)) => self.journal.replay(&sqlite, redshift.session()).await,
            _ => Ok(ReplayReport::default()),
        }
    }
}

/// What `calls` from Redshift and this environment's `waiting` writes make together: ids once,
/// newest first, the query's page.
fn merge_page(calls: Vec<Call>, waiting: Vec<Call>, query: &HistoryQuery) -> Vec<Call> {
    if waiting.is_empty() {
        return calls;
    }
    let matching = waiting
        .into_iter()
        .filter(|call| matches_query(call, query));
    let mut merged: Vec<Call> = calls.into_iter().chain(matching).collect();
    merged.sort_by(|a, b| (b.started_at, &b.id).cmp(&(a.started_at, &a.id)));
    merged.dedup_by(|a, b| a.id == b.id);
    merged
        .into_iter()
        .skip(query.offset as usize)
        .take(query.limit as usize)
        .collect()
}

fn matches_query(call: &Call, query: &HistoryQuery) -> bool {
    query
        .contact
        .as_ref()
        .is_none_or(|c| *c == call.contact_name)
        && query.since.is_none_or(|since| call.started_at >= since)
        && query.until.is_none_or(|until| call.started_at < until)
}

async fn copy_into(backup: &Backup, calls: Vec<Call>) {
    let calls: Arc<[Call]> = calls.into();
    let mut copied = match backup.store() {
        Ok(sqlite) => sqlite.copy_from_redshift(Arc::clone(&calls)).await,
        Err(err) => Err(err),
    };
    if retired(&copied) {
        // The file was replaced meanwhile: the copy goes to the new one.
        copied = match backup.store() {
            Ok(sqlite) => sqlite.copy_from_redshift(calls).await,
            Err(err) => Err(err),
        };
    }
    if let Err(err) = copied {
        tracing::warn!(error = %err.detail, "could not copy Redshift's answer into the local backup");
    }
}

async fn copy_into_owned(backup: Arc<Backup>, calls: Vec<Call>) {
    copy_into(&backup, calls).await
}

/// A call this environment knows, answered from the replica.
fn found_here(call: Call, as_of: Option<DateTime<Utc>>) -> Served<Option<Call>> {
    Served {
        source: Source::Redshift,
        as_of,
        result: Ok(Some(call)),
    }
}

fn refused<T>(err: StoreError) -> Served<T> {
    Served {
        source: Source::Redshift,
        as_of: None,
        result: Err(err),
    }
}

fn unavailable<T>(err: StoreError) -> Served<T> {
    Served {
        source: Source::Unavailable,
        as_of: None,
        result: Err(err),
    }
}

/// True when a write failed because its store was retired (its file replaced meanwhile), and is
/// to be made again on the store that replaced it.
fn retired<T>(result: &Result<T, StoreError>) -> bool {
    matches!(result, Err(err) if err.kind == ErrorKind::Sqlite(SqliteProblem::Retired))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn call(id: &str, hour: u32, contact: &str) -> Call {
        let t = Utc.with_ymd_and_hms(2024, 1, 1, hour, 0, 0).unwrap();
        Call {
            id: id.into(),
            contact_name: contact.into(),
            account_name: None,
            started_at: t,
            duration_seconds: None,
            outcome: None,
            notes: None,
            created_at: t,
        }
    }

    #[test]
    fn waiting_writes_join_redshift_s_page_in_order_once() {
        let query = HistoryQuery {
            limit: 2,
            offset: 1,
            contact: Some("Ada".into()),
            ..HistoryQuery::default()
        };
        let from_redshift = vec![
            call("c", 5, "Ada"),
            call("b", 3, "Ada"),
            call("a", 1, "Ada"),
        ];
        let waiting = vec![
            call("w", 4, "Ada"),
            call("x", 9, "Bob"),
            call("b", 3, "Ada"),
        ];
        let page = merge_page(from_redshift, waiting, &query);
        let ids: Vec<&str> = page.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["w", "b"]);
    }
}
