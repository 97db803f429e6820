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
//!
//! This module decides which side answers (`primary`: replica, Redshift itself or the backup,
//! with the probe and its replay); `reads`, `writes` and `from_backup` answer from there, and
//! `health_events` records what each contact with Redshift says in the [`HealthState`].

mod from_backup;
mod health_events;
mod reads;
mod writes;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::activity::Activity;
use super::backup::Backup;
use super::deadline::Deadline;
use super::error::{ErrorKind, SqliteProblem};
pub use super::health::ForceOutcome;
use super::health::{HealthState, Route};
use super::journal::{replay_stopped, Journal, ReplayReport};
use super::redshift::RedshiftStore;
use super::replica::{Freshness, Pulled, Replica, ReplicaSettings};
use super::sqlite::{KnownCalls, SqliteStore};
use super::writer::WriteBatcher;
use super::{Source, StoreError};
use crate::background::Background;
use crate::metrics::Metrics;

/// What a request may spend beyond `REDSHIFT_TIMEOUT_MS`: copying into the backup and answering.
pub const ANSWER_MARGIN: Duration = Duration::from_millis(100);
/// Kept free at the end of a request's budget, for the answer itself.
const ANSWER_RESERVE: Duration = Duration::from_millis(30);
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

    /// The calls the backup holds as Redshift does, without asking it: the replica's window
    /// when one is kept, and this environment's own writes.
    fn known_calls(&self) -> KnownCalls {
        if self.replica.settings().enabled() {
            KnownCalls::window(self.replica.window_floor())
        } else {
            KnownCalls::OwnWrites
        }
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

    // ---- which side answers ----------------------------------------------------------------

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
            Ok(Pulled::StillRunning) => {
                // Waiting for this environment's own pull is no contact with Redshift: the
                // backup answers this request, and nothing switches.
                if probing {
                    self.lock_health()
                        .probe_again_after(PROBE_PAUSE, Instant::now());
                }
                Primary::Down
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
                // The backup failed, not Redshift: Redshift answers this read itself (and that
                // statement is the probe, when this request is the probe).
                tracing::warn!(error = %err, detail = %err.detail, "The local replica could not be updated; Redshift answers");
                self.backup.query_failed(&err);
                Primary::Direct { probe: probing }
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
            // Nothing shows Redshift up unless it answered a statement (a replay may only have
            // set aside what the backup could not read).
            Ok(report) if report.busy || !report.redshift_answered() => None,
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
