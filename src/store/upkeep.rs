//! The store's work between requests: pulling the replica ahead of its readers, replaying the
//! journal, the minute's metrics, and what is left to save at shutdown.
//!
//! The local server runs [`FailoverStore::maintain`] on a timer; in Lambda the function's
//! internal extension runs it after each answer, before the environment may freeze, and runs
//! [`FailoverStore::shutdown`] when Lambda shuts the environment down.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::activity::Activity;
use super::deadline::Deadline;
use super::error::ErrorKind;
use super::failover::FailoverStore;
use super::journal::{replay_stopped, ReplayReport};
use super::replica::Pulled;
use super::StoreError;
use crate::metrics::{SwitchEvent, PUT_TIMEOUT};

/// Kept after the last metric put at shutdown, for the process to end.
const PUT_MARGIN: Duration = Duration::from_millis(50);
/// How often the minute's metrics are put.
const MINUTE: Duration = Duration::from_secs(60);
/// Pulls ahead of readers continue this long after the last read; an idle environment stops
/// spending Data API calls.
const ACTIVE_FOR: Duration = Duration::from_secs(60);
/// After a throttled replay, the next one waits this long (the account's quotas refill each
/// second).
const THROTTLED_REPLAY_PAUSE: Duration = Duration::from_secs(1);

/// What one round of upkeep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Upkeep {
    /// The replica was pulled ahead of its readers.
    pub pulled: bool,
    pub replay: ReplayReport,
}

/// What the shutdown saved and what it could not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    pub replayed: u64,
    /// Writes still waiting for Redshift.
    pub left: u64,
    /// The file outlives the environment (shared): what is left is not lost.
    pub shared: bool,
}

impl FailoverStore {
    /// A read was answered from the replica, `now`: remembered for pulls ahead and the
    /// minute's metrics.
    pub(super) fn note_replica_age(&self, now: DateTime<Utc>) {
        let age = self.replica.age(now);
        let mut activity = self.lock_activity();
        activity.last_read_at = Some(Instant::now());
        activity.max_age = activity.max_age.max(age);
    }

    /// One round of the work between requests, within about `budget`: a replay of waiting
    /// writes, then a pull ahead of readers when the replica will soon be stale and reads keep
    /// coming (when at least half the budget is left), and the minute's metrics. Each step gets
    /// its own deadline, at most the Redshift deadline, so that a slow pull cannot starve the
    /// replay. Only while Redshift serves: on SQLite, probes ride on requests.
    pub async fn maintain(&self, budget: Duration) -> Upkeep {
        let mut done = Upkeep::default();
        let Some(redshift) = &self.redshift else {
            return done;
        };
        if !self.lock_health().on_redshift() {
            return done;
        }
        let Ok(sqlite) = self.backup.store() else {
            return done;
        };
        let started = Instant::now();
        let step = budget.min(redshift.timeout());
        // On a shared file, other environments journal too (one that shut down, or was
        // throttled): counting the journal now and then is how a healthy one finds their writes.
        if self.backup.shared()
            && self
                .journal
                .recount_due(false, self.settings.check_interval)
        {
            self.journal.recount(&sqlite).await;
        }
        if self.journal.pending() > 0 && self.replay_due() {
            let session = redshift.within(Deadline::after(step));
            match self.journal.replay(&sqlite, session).await {
                Ok(report) => done.replay = report,
                Err(err) => {
                    replay_stopped(&err);
                    self.replay_later(&err);
                }
            }
        }
        let left = budget.saturating_sub(started.elapsed());
        if self.replica.settings().enabled() && self.reads_recently() && left >= budget / 2 {
            if sqlite.options().shared {
                self.replica.reload(&sqlite).await;
            }
            if self.replica.pull_ahead_due(Utc::now()) {
                let wanted_after = Utc::now() - self.settings.replica.max_staleness / 2;
                let session = redshift.within(Deadline::after(step.min(left)));
                match self
                    .replica
                    .pull(&sqlite, session, Some(wanted_after))
                    .await
                {
                    Ok(Pulled::Pulled | Pulled::ByAnother) => done.pulled = true,
                    Ok(Pulled::Busy | Pulled::StillRunning) => {}
                    Err(err) => {
                        tracing::debug!(error = %err, detail = %err.detail, "A pull ahead of readers failed; readers pull themselves")
                    }
                }
            }
        }
        self.minute_metrics_if_due();
        done
    }

    /// A replay that failed is not tried again before the check interval has passed: a write
    /// Redshift keeps failing must not spend the account's Data API calls every round. A
    /// throttled one waits only a moment: throttling is back-pressure, not an outage.
    fn replay_due(&self) -> bool {
        self.lock_activity()
            .replay_not_before
            .is_none_or(|at| Instant::now() >= at)
    }

    fn replay_later(&self, err: &StoreError) {
        let pause = match err.kind {
            ErrorKind::Throttled => THROTTLED_REPLAY_PAUSE.min(self.settings.check_interval),
            _ => self.settings.check_interval,
        };
        self.lock_activity().replay_not_before = Some(Instant::now() + pause);
    }

    fn reads_recently(&self) -> bool {
        self.lock_activity()
            .last_read_at
            .is_some_and(|at| at.elapsed() < ACTIVE_FOR)
    }

    /// Once a minute, while reads come: the Data API's throttles since the last report and the
    /// replica's oldest age when it answered.
    fn minute_metrics_if_due(&self) {
        let Some(redshift) = &self.redshift else {
            return;
        };
        let throttles = redshift.meter().reading().throttles;
        let report = {
            let mut activity = self.lock_activity();
            if activity.minute_started.elapsed() < MINUTE {
                return;
            }
            activity.minute_started = Instant::now();
            let new_throttles = throttles.saturating_sub(activity.throttles_reported);
            activity.throttles_reported = throttles;
            let age = activity.max_age.take();
            (new_throttles > 0 || age.is_some()).then_some(SwitchEvent::Minute {
                throttles: new_throttles,
                replica_age: age,
            })
        };
        if let Some(event) = report {
            self.metrics.record(event);
        }
    }

    /// Lambda shuts the environment down: replays what waits when Redshift is reachable, within
    /// `budget`, and says in one line what was replayed and what is left, and where. Writes left
    /// in a file that goes with the environment are counted in a metric.
    pub async fn shutdown(&self, budget: Duration) -> ShutdownReport {
        let started = Instant::now();
        // The replay leaves room for the metric that counts what it could not replay.
        let deadline = Deadline::after(budget.saturating_sub(PUT_TIMEOUT + PUT_MARGIN));
        let shared = self.backup.shared();
        let mut report = ShutdownReport {
            shared,
            ..ShutdownReport::default()
        };
        if let (Some(redshift), Ok(sqlite)) = (&self.redshift, self.backup.store()) {
            self.journal.recount(&sqlite).await;
            let on_sqlite_by_force = self.lock_health().forced();
            if self.journal.pending() > 0 && !on_sqlite_by_force {
                match self
                    .journal
                    .replay(&sqlite, redshift.within(deadline))
                    .await
                {
                    Ok(replay) => report.replayed = replay.replayed,
                    Err(err) => replay_stopped(&err),
                }
            }
        }
        report.left = self.journal.pending();
        let place = if shared {
            "in the shared file, for another environment to replay"
        } else {
            "in /tmp, which goes with this environment"
        };
        tracing::info!(
            replayed = report.replayed,
            left = report.left,
            shared,
            "🛑 Shutting down: {} writes replayed to Redshift, {} left {place}",
            report.replayed,
            report.left
        );
        if report.left > 0 && !shared {
            self.metrics
                .record_now(SwitchEvent::WritesLostAtShutdown { count: report.left })
                .await;
        }
        self.background
            .settle(budget.saturating_sub(started.elapsed()))
            .await;
        report
    }

    pub(super) fn lock_activity(&self) -> std::sync::MutexGuard<'_, Activity> {
        self.activity
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
