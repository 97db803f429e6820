//! The replica: the backup file as a fresh local copy of the warehouse's recent calls, so that
//! reads cost no Data API call while Redshift is healthy.
//!
//! The rules, each kept here:
//! - **Window.** The replica holds the newest `window_calls` calls (every call, in a smaller
//!   warehouse): precisely, every call that started after its floor, the start of the oldest
//!   call the window could not hold. It is set by a pull of the whole window on the first pull
//!   and then every `full_pull_every` (which also brings in corrections made directly in the
//!   warehouse, and removes calls it no longer holds). A bound by count, not by time, keeps the
//!   cost of a whole-window pull known: about one GetStatementResult page per thousand calls.
//! - **Incremental pulls.** In between, a pull asks only for the calls the warehouse ingested
//!   since the previous pull, by its own clock (`ingested_at`, set by `GETDATE()`), less a
//!   look-back for transactions that commit late: Redshift has no commit sequence. Calls come
//!   back more than once and are merged by id. A pull costs about two Data API calls.
//! - **Freshness.** The copy holds everything Redshift held when its last successful pull was
//!   sent (`as_of`). Reads are answered from it while that is at most `max_staleness` ago; an
//!   older copy is pulled first. Past half the bound it is pulled ahead, off the request path, so
//!   that readers rarely wait.
//! - **One pull at a time**: in an environment, concurrent readers wait for the same pull; on a
//!   shared file, one environment pulls under a lease and the others read what it wrote.
//! - **Throttling slows pulls down.** A throttled pull makes the next pull ahead wait a pause
//!   that doubles while throttling lasts; readers keep the copy while it is within its bound.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};

use super::error::ErrorKind;
use super::redshift::{IngestKey, PullScope, RedshiftSession};
use super::sqlite::{AppliedPull, Lease, ReplicaState, SqliteStore};
use super::StoreError;
pub use crate::config::ReplicaSettings;

/// How fresh the copy is for a read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Within half the bound: answer.
    Fresh,
    /// Within the bound, past half of it: answer, and pull ahead off the request path.
    Aging,
    /// Past the bound, or never pulled: pull first.
    Stale,
}

/// What a pull came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pulled {
    /// This environment pulled.
    Pulled,
    /// Another request or environment pulled meanwhile; the copy is fresh.
    ByAnother,
    /// Another environment holds the pull and has not finished within this request's time.
    Busy,
    /// This environment's own pull (another request's, or the work between requests) was still
    /// on its way when this request's time ran out: that pull, not this request, tells whether
    /// Redshift answers.
    StillRunning,
}

pub struct Replica {
    settings: ReplicaSettings,
    /// The state as last read or written; on a shared file, read again before each decision.
    state: Mutex<Option<ReplicaState>>,
    pull_lock: tokio::sync::Mutex<()>,
    /// This environment's name on the pull lease.
    holder: String,
    pacing: Mutex<Pacing>,
    /// A pull of what was ingested that did not finish: where it resumes.
    catch_up: Mutex<Option<CatchUp>>,
    /// Calls per page of an incremental pull, now.
    page_rows: AtomicU32,
}

/// An incremental pull that took more than one deadline's pages: when its first page was sent
/// (and the warehouse's clock then), and the last call it took in ingestion order.
#[derive(Clone, Debug)]
struct CatchUp {
    sent_at: DateTime<Utc>,
    clock: chrono::NaiveDateTime,
    resume: IngestKey,
}

/// Calls per page of an incremental pull, at most: one GetStatementResult page (the Data API
/// sends about a thousand rows of this size in one). Halved down to [`MIN_PAGE_ROWS`] while a page
/// does not fit in a deadline.
const MAX_PAGE_ROWS: u32 = 1_000;
const MIN_PAGE_ROWS: u32 = 50;

/// When the next pull ahead may go, after throttling.
#[derive(Debug, Default)]
struct Pacing {
    not_before: Option<Instant>,
    pause: Duration,
}

impl Replica {
    /// The replica of `sqlite`'s file (no state when there is no backup, or before a pull).
    pub async fn load(sqlite: Option<&SqliteStore>, settings: ReplicaSettings) -> Replica {
        let state = match sqlite {
            Some(sqlite) => sqlite.replica_state().await.ok().flatten(),
            None => None,
        };
        Replica {
            settings,
            state: Mutex::new(state),
            pull_lock: tokio::sync::Mutex::new(()),
            holder: uuid::Uuid::new_v4().to_string(),
            pacing: Mutex::new(Pacing::default()),
            catch_up: Mutex::new(None),
            page_rows: AtomicU32::new(MAX_PAGE_ROWS),
        }
    }

    pub fn settings(&self) -> &ReplicaSettings {
        &self.settings
    }

    pub fn state(&self) -> Option<ReplicaState> {
        self.lock_state().clone()
    }

    /// When the copy was as Redshift was, if it ever was.
    pub fn as_of(&self) -> Option<DateTime<Utc>> {
        self.lock_state().as_ref().map(|s| s.pulled_at)
    }

    /// Where the window starts, once there is a replica: `Some(None)` holds every call.
    pub fn window_floor(&self) -> Option<Option<DateTime<Utc>>> {
        self.lock_state().as_ref().map(|s| s.window_floor)
    }

    pub fn age(&self, now: DateTime<Utc>) -> Option<Duration> {
        self.as_of()
            .map(|at| (now - at).to_std().unwrap_or(Duration::ZERO))
    }

    pub fn freshness(&self, now: DateTime<Utc>) -> Freshness {
        let bound = self.settings.max_staleness;
        match self.age(now) {
            Some(age) if age <= bound / 2 => Freshness::Fresh,
            Some(age) if age <= bound => Freshness::Aging,
            _ => Freshness::Stale,
        }
    }

    /// True when a pull ahead of readers is worth making now: the copy is past half its bound
    /// (or its whole window is due again), and throttling asks for no pause.
    pub fn pull_ahead_due(&self, now: DateTime<Utc>) -> bool {
        if self.paced() {
            return false;
        }
        self.freshness(now) != Freshness::Fresh || self.full_pull_due(now)
    }

    fn full_pull_due(&self, now: DateTime<Utc>) -> bool {
        let every = TimeDelta::from_std(self.settings.full_pull_every).unwrap_or(TimeDelta::MAX);
        self.lock_state()
            .as_ref()
            .is_none_or(|s| now - s.full_pull_at >= every)
    }

    /// On a shared file, reads the state another environment may have written.
    pub async fn reload(&self, sqlite: &SqliteStore) {
        if let Ok(Some(state)) = sqlite.replica_state().await {
            let mut current = self.lock_state();
            if current
                .as_ref()
                .is_none_or(|c| c.pulled_at < state.pulled_at)
            {
                *current = Some(state);
            }
        }
    }

    /// Brings the copy up to date: one pull, shared by concurrent readers in this environment
    /// and, on a shared file, by the environments sharing it. `wanted_after`: a pull that ended
    /// after this time (another's, say) will do; `None` asks for a pull of its own.
    pub async fn pull(
        &self,
        sqlite: &SqliteStore,
        session: RedshiftSession<'_>,
        wanted_after: Option<DateTime<Utc>>,
    ) -> Result<Pulled, StoreError> {
        let Ok(_pulling) = session
            .deadline()
            .run(async { Ok(self.pull_lock.lock().await) })
            .await
        else {
            return Ok(Pulled::StillRunning);
        };
        let shared = sqlite.options().shared;
        if shared {
            self.reload(sqlite).await;
        }
        if self.pulled_after(wanted_after) {
            return Ok(Pulled::ByAnother);
        }
        if shared && !self.take_lease(sqlite, session).await? {
            return self.wait_for_another(sqlite, session, wanted_after).await;
        }
        let outcome = self.pull_now(sqlite, session).await;
        if shared {
            if let Err(err) = sqlite.release_lease(Lease::Pull, self.holder.clone()).await {
                tracing::debug!(error = %err.detail, "pull lease not released; it expires on its own");
            }
        }
        match &outcome {
            Ok(()) => self.pacing().pause = Duration::ZERO,
            Err(err) if err.kind == ErrorKind::Throttled => self.slow_down(),
            Err(_) => {}
        }
        outcome.map(|()| Pulled::Pulled)
    }

    fn pulled_after(&self, wanted_after: Option<DateTime<Utc>>) -> bool {
        match (wanted_after, self.as_of()) {
            (Some(wanted), Some(as_of)) => as_of >= wanted,
            _ => false,
        }
    }

    async fn take_lease(
        &self,
        sqlite: &SqliteStore,
        session: RedshiftSession<'_>,
    ) -> Result<bool, StoreError> {
        let until = Utc::now() + session.deadline().remaining();
        let taken = sqlite
            .take_lease(Lease::Pull, self.holder.clone(), until.timestamp_millis())
            .await?;
        Ok(taken.is_ok())
    }

    /// Another environment pulls: waits for its state to appear, within the deadline.
    async fn wait_for_another(
        &self,
        sqlite: &SqliteStore,
        session: RedshiftSession<'_>,
        wanted_after: Option<DateTime<Utc>>,
    ) -> Result<Pulled, StoreError> {
        let started = Utc::now();
        let wanted = wanted_after.unwrap_or(started);
        let waited = session
            .deadline()
            .run(async {
                loop {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    self.reload(sqlite).await;
                    if self.pulled_after(Some(wanted)) {
                        return Ok(());
                    }
                }
            })
            .await;
        match waited {
            Ok(()) => Ok(Pulled::ByAnother),
            Err(_) => Ok(Pulled::Busy),
        }
    }

    /// One pull: of the whole window when there is none yet or it is due again, else of what
    /// the warehouse ingested since the last pull, a page at a time while the deadline leaves
    /// room for another. A catch-up cut off at the deadline resumes where it stopped: each page
    /// is kept, so that a backlog larger than one deadline's worth is still pulled in the end.
    async fn pull_now(
        &self,
        sqlite: &SqliteStore,
        session: RedshiftSession<'_>,
    ) -> Result<(), StoreError> {
        let previous = self.state();
        match previous {
            Some(previous) if !self.full_pull_due(Utc::now()) => {
                self.pull_ingested(sqlite, session, previous).await
            }
            _ => self.pull_window(sqlite, session, previous).await,
        }
    }

    /// The whole window, in one statement.
    async fn pull_window(
        &self,
        sqlite: &SqliteStore,
        session: RedshiftSession<'_>,
        previous: Option<ReplicaState>,
    ) -> Result<(), StoreError> {
        let sent_at = Utc::now();
        let max_rows = self.settings.window_calls;
        let pulled = session.pull(&PullScope::Window { max_rows }).await?;
        let state = ReplicaState {
            pulled_at: sent_at,
            warehouse_clock: pulled.clock,
            window_floor: window_floor(max_rows, &pulled.calls),
            full_pull_at: sent_at,
        };
        let rows = pulled.calls.len();
        sqlite
            .apply_pull(AppliedPull {
                calls: pulled.calls.into(),
                state: Some(state.clone()),
                whole_window: Some(sent_at),
            })
            .await?;
        tracing::debug!(
            rows,
            previous = previous.is_some(),
            "Pulled the whole window of Redshift into the local replica"
        );
        // The whole window is as the warehouse held it: a catch-up under way has nothing left.
        *self.lock_catch_up() = None;
        self.recorded(state);
        Ok(())
    }

    /// What the warehouse ingested since the last complete pull, less the look-back, a page at
    /// a time. The state moves on only when the last page is in: the copy then holds everything
    /// Redshift held when the first page was sent.
    async fn pull_ingested(
        &self,
        sqlite: &SqliteStore,
        session: RedshiftSession<'_>,
        previous: ReplicaState,
    ) -> Result<(), StoreError> {
        let mut last_page: Option<Duration> = None;
        loop {
            if let Some(took) = last_page {
                if session.deadline().remaining() < took + took / 2 {
                    return Err(StoreError::new(
                        ErrorKind::Timeout,
                        "the replica's catch-up did not finish within the deadline; it resumes at the next pull",
                    ));
                }
            }
            let started = Instant::now();
            let left_at_start = session.deadline().remaining();
            let sent_at = Utc::now();
            let catch_up = self.catch_up();
            let after = match &catch_up {
                Some(catch_up) => catch_up.resume.clone(),
                None => IngestKey {
                    at: previous.warehouse_clock - self.look_back(),
                    id: None,
                },
            };
            let page_rows = self.page_rows.load(Ordering::Relaxed);
            let scope = PullScope::IngestedAfter {
                after,
                floor: previous.window_floor,
                max_rows: page_rows,
            };
            let pulled = match session.pull(&scope).await {
                Ok(pulled) => pulled,
                Err(err) => {
                    if err.kind == ErrorKind::Timeout {
                        self.smaller_pages();
                    }
                    return Err(err);
                }
            };
            let (first_sent_at, first_clock) = catch_up
                .as_ref()
                .map_or((sent_at, pulled.clock), |c| (c.sent_at, c.clock));
            let complete = pulled.calls.len() < page_rows as usize;
            let state = complete.then_some(ReplicaState {
                pulled_at: first_sent_at,
                warehouse_clock: first_clock,
                window_floor: previous.window_floor,
                full_pull_at: previous.full_pull_at,
            });
            let last = pulled.last.clone();
            sqlite
                .apply_pull(AppliedPull {
                    calls: pulled.calls.into(),
                    state: state.clone(),
                    whole_window: None,
                })
                .await?;
            match (state, last) {
                (Some(state), _) => {
                    *self.lock_catch_up() = None;
                    self.recorded(state);
                    return Ok(());
                }
                (None, Some(resume)) => {
                    *self.lock_catch_up() = Some(CatchUp {
                        sent_at: first_sent_at,
                        clock: first_clock,
                        resume,
                    });
                }
                (None, None) => {
                    return Err(StoreError::decode(
                        "a full page of calls without ingestion times",
                    ))
                }
            }
            let took = started.elapsed();
            if took * 4 < left_at_start {
                self.larger_pages();
            }
            last_page = Some(took);
        }
    }

    /// A page that could not be pulled within a deadline: the next one asks for half as many
    /// calls (a page is what one deadline must hold, however slow the warehouse is today).
    fn smaller_pages(&self) {
        let rows = self.page_rows.load(Ordering::Relaxed);
        self.page_rows
            .store((rows / 2).max(MIN_PAGE_ROWS), Ordering::Relaxed);
    }

    /// A page pulled in a fraction of the deadline: the next may be larger again.
    fn larger_pages(&self) {
        let rows = self.page_rows.load(Ordering::Relaxed);
        self.page_rows
            .store((rows * 2).min(MAX_PAGE_ROWS), Ordering::Relaxed);
    }

    /// Keeps `state` as the replica's, unless a later pull is already recorded.
    fn recorded(&self, state: ReplicaState) {
        let mut current = self.lock_state();
        if current
            .as_ref()
            .is_none_or(|c| c.pulled_at < state.pulled_at)
        {
            *current = Some(state);
        }
    }

    fn look_back(&self) -> TimeDelta {
        TimeDelta::from_std(self.settings.look_back).unwrap_or(TimeDelta::zero())
    }

    fn catch_up(&self) -> Option<CatchUp> {
        self.lock_catch_up().clone()
    }

    fn lock_catch_up(&self) -> MutexGuard<'_, Option<CatchUp>> {
        self.catch_up.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn paced(&self) -> bool {
        self.pacing()
            .not_before
            .is_some_and(|at| Instant::now() < at)
    }

    /// A throttled pull: the next pull ahead waits, twice as long each time.
    fn slow_down(&self) {
        let mut pacing = self.pacing();
        pacing.pause = (pacing.pause * 2)
            .max(self.settings.max_staleness / 2)
            .min(Duration::from_secs(30));
        pacing.not_before = Some(Instant::now() + pacing.pause);
    }

    fn lock_state(&self) -> MutexGuard<'_, Option<ReplicaState>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn pacing(&self) -> MutexGuard<'_, Pacing> {
        self.pacing.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The floor of a pulled window: none when the warehouse held no more than the window; else
/// the start of the one call too many it brought (the oldest), exclusive, since calls that
/// started at that same instant may be missing.
fn window_floor(max_rows: u32, calls: &[super::Call]) -> Option<DateTime<Utc>> {
    if calls.len() <= max_rows as usize {
        return None;
    }
    calls.iter().map(|c| c.started_at).min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Call;
    use chrono::TimeZone;

    fn call(started_at: DateTime<Utc>) -> Call {
        Call {
            id: started_at.to_rfc3339(),
            contact_name: "Ada".into(),
            account_name: None,
            started_at,
            duration_seconds: None,
            outcome: None,
            notes: None,
            created_at: started_at,
        }
    }

    #[test]
    fn a_window_cut_short_starts_at_its_oldest_call() {
        let calls: Vec<Call> = (1..=3)
            .map(|day| call(Utc.with_ymd_and_hms(2024, 1, day, 0, 0, 0).unwrap()))
            .collect();
        assert_eq!(window_floor(3, &calls), None);
        assert_eq!(
            window_floor(2, &calls),
            Some(Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap())
        );
    }

    #[tokio::test]
    async fn freshness_follows_the_bound() {
        let replica = Replica::load(None, ReplicaSettings::default()).await;
        let now = Utc::now();
        assert_eq!(replica.freshness(now), Freshness::Stale);
        assert!(replica.pull_ahead_due(now));
        *replica.lock_state() = Some(ReplicaState {
            pulled_at: now,
            warehouse_clock: now.naive_utc(),
            window_floor: None,
            full_pull_at: now,
        });
        let ms = |n| TimeDelta::milliseconds(n);
        assert_eq!(replica.freshness(now + ms(400)), Freshness::Fresh);
        assert!(!replica.pull_ahead_due(now + ms(400)));
        assert_eq!(replica.freshness(now + ms(700)), Freshness::Aging);
        assert!(replica.pull_ahead_due(now + ms(700)));
        assert_eq!(replica.freshness(now + ms(1_001)), Freshness::Stale);
        // Throttling pauses pulls ahead, not readers' own pulls.
        replica.slow_down();
        assert!(!replica.pull_ahead_due(now + ms(700)));
        assert_eq!(replica.freshness(now + ms(1_001)), Freshness::Stale);
        // The whole window is due again after its period.
        assert!(replica.full_pull_due(now + TimeDelta::seconds(600)));
    }
}
