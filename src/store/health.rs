//! The health state machine: which database serves this execution environment, since when, and
//! when Redshift is tried again. Plain data and pure transitions, time passed in, so that every
//! rule is tested without a database.
//!
//! - An outage moves Redshift's environment to SQLite; the next probe comes after the check
//!   interval, and one probe at a time (the caller holds a lock while it probes).
//! - Throttling is back-pressure, not an outage: it moves to SQLite only when the replica is past
//!   its staleness bound without a successful pull, and then Redshift is tried again after a
//!   short pause that doubles while throttling lasts (never the whole check interval).
//! - Any successful contact returns to Redshift; a forced environment stays on SQLite until
//!   `/db/retry-redshift`.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::error::ErrorKind;

/// The first pause after a fallback caused by throttling; it doubles while throttling lasts.
const FIRST_THROTTLE_PAUSE: Duration = Duration::from_secs(1);

/// Which database serves, and since when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Redshift is not configured: SQLite is primary and nothing is probed.
    NotConfigured,
    /// Redshift is configured and has not been contacted yet.
    Unchecked,
    OnRedshift,
    OnSqlite {
        since: Instant,
        since_wall: DateTime<Utc>,
        forced: bool,
    },
}

/// The way a request goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Redshift is not configured: the local database is the primary.
    Local,
    /// Redshift serves (or has not been tried yet).
    Redshift,
    /// On SQLite, and Redshift may be tried again: this request probes.
    Probe,
    /// On SQLite.
    Backup,
}

/// A change of serving database, to be logged and measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Switch {
    FellBack,
    Recovered { fallback: Duration },
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

/// The warm environment's knowledge of Redshift's health.
#[derive(Clone, Debug)]
pub struct HealthState {
    pub mode: Mode,
    /// The class of Redshift's last failure, while nothing has succeeded since.
    pub last_failure: Option<ErrorKind>,
    pub next_probe_at: Option<Instant>,
    pub last_probe_at: Option<DateTime<Utc>>,
    pub consecutive_failures: u32,
    pub fallbacks: u64,
    pub forced_switches: u64,
    pub recoveries: u64,
    pub last_fallback_duration: Option<Duration>,
    last_heartbeat_at: Option<Instant>,
    /// The pause before the next try after a fallback caused by throttling.
    throttle_pause: Duration,
}

impl HealthState {
    pub fn new(configured: bool, forced: bool, now: Instant, wall: DateTime<Utc>) -> Self {
        let mode = match (configured, forced) {
            (false, _) => Mode::NotConfigured,
            (true, true) => Mode::OnSqlite {
                since: now,
                since_wall: wall,
                forced: true,
            },
            (true, false) => Mode::Unchecked,
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
            throttle_pause: FIRST_THROTTLE_PAUSE,
        }
    }

    pub fn route(&self, now: Instant) -> Route {
        match self.mode {
            Mode::NotConfigured => Route::Local,
            Mode::Unchecked | Mode::OnRedshift => Route::Redshift,
            Mode::OnSqlite { .. } if self.probe_due(now) => Route::Probe,
            Mode::OnSqlite { .. } => Route::Backup,
        }
    }

    /// True when the pause since the last failure has passed and Redshift may be tried.
    pub fn probe_due(&self, now: Instant) -> bool {
        matches!(self.mode, Mode::OnSqlite { forced: false, .. })
            && self.next_probe_at.is_none_or(|at| now >= at)
    }

    pub fn on_redshift(&self) -> bool {
        self.mode == Mode::OnRedshift
    }

    pub fn forced(&self) -> bool {
        matches!(self.mode, Mode::OnSqlite { forced: true, .. })
    }

    /// Redshift's message in the status: `Connected`, `Not configured`, `Not checked yet`,
    /// `Forced to SQLite`, or the class of the failure that moved this environment to SQLite.
    pub fn redshift_message(&self) -> &'static str {
        match self.mode {
            Mode::NotConfigured => "Not configured",
            Mode::Unchecked => "Not checked yet",
            Mode::OnRedshift => "Connected",
            Mode::OnSqlite { forced: true, .. } => "Forced to SQLite",
            Mode::OnSqlite { forced: false, .. } => match self.last_failure {
                Some(kind) => kind.as_str(),
                // Out of forced mode, Redshift not asked yet.
                None => "Not checked yet",
            },
        }
    }

    /// Redshift answered: back to Redshift unless forced meanwhile.
    pub fn succeeded(&mut self, probe: bool, now: Instant, wall: DateTime<Utc>) -> Option<Switch> {
        self.consecutive_failures = 0;
        self.next_probe_at = None;
        self.last_failure = None;
        self.throttle_pause = FIRST_THROTTLE_PAUSE;
        if probe || self.mode == Mode::Unchecked {
            self.last_probe_at = Some(wall);
        }
        match self.mode {
            Mode::Unchecked => {
                self.mode = Mode::OnRedshift;
                None
            }
            Mode::OnSqlite {
                since,
                forced: false,
                ..
            } => {
                self.mode = Mode::OnRedshift;
                self.recoveries += 1;
                let fallback = now.saturating_duration_since(since);
                self.last_fallback_duration = Some(fallback);
                Some(Switch::Recovered { fallback })
            }
            // Forced stays forced; on Redshift, nothing changes.
            _ => None,
        }
    }

    /// Redshift failed with an outage: serve from SQLite, try again after `interval`.
    pub fn failed(
        &mut self,
        kind: ErrorKind,
        probe: bool,
        interval: Duration,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> Option<Switch> {
        self.fall_back(kind, probe, now + interval, now, wall)
    }

    /// Throttled with the replica past its bound: serve from SQLite, and try again after a short
    /// pause that doubles while throttling lasts, capped at `interval`.
    pub fn throttled(
        &mut self,
        probe: bool,
        interval: Duration,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> Option<Switch> {
        let pause = self.throttle_pause.min(interval);
        self.throttle_pause = (self.throttle_pause * 2).min(interval);
        self.fall_back(ErrorKind::Throttled, probe, now + pause, now, wall)
    }

    fn fall_back(
        &mut self,
        kind: ErrorKind,
        probe: bool,
        next_probe_at: Instant,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> Option<Switch> {
        self.last_failure = Some(kind);
        self.consecutive_failures += 1;
        self.next_probe_at = Some(next_probe_at);
        if probe {
            self.last_probe_at = Some(wall);
        }
        match self.mode {
            Mode::Unchecked | Mode::OnRedshift => {
                self.move_to_sqlite(false, now, wall);
                self.fallbacks += 1;
                Some(Switch::FellBack)
            }
            _ => None,
        }
    }

    /// A probe that could not ask Redshift (another environment holds the job): the next one
    /// comes after `pause`.
    pub fn probe_again_after(&mut self, pause: Duration, now: Instant) {
        self.next_probe_at = Some(now + pause);
    }

    /// `/db/force-sqlite`.
    pub fn force(&mut self, now: Instant, wall: DateTime<Utc>) -> ForceOutcome {
        match self.mode {
            Mode::NotConfigured => ForceOutcome::NotConfigured,
            Mode::OnSqlite { .. } => {
                self.move_to_sqlite(true, now, wall);
                ForceOutcome::AlreadyOnSqlite
            }
            Mode::Unchecked | Mode::OnRedshift => {
                self.move_to_sqlite(true, now, wall);
                self.forced_switches += 1;
                ForceOutcome::Switched
            }
        }
    }

    /// `/db/retry-redshift`: out of forced mode (still on SQLite until a probe succeeds). What
    /// failed before the force is not what the coming try will find.
    pub fn leave_forced(&mut self) {
        if let Mode::OnSqlite {
            since,
            since_wall,
            forced: true,
        } = self.mode
        {
            self.last_failure = None;
            self.mode = Mode::OnSqlite {
                since,
                since_wall,
                forced: false,
            };
        }
    }

    /// Serves from SQLite from now on, forced or not. A fallback already under way keeps its
    /// start; a new one starts the heartbeat clock.
    fn move_to_sqlite(&mut self, forced: bool, now: Instant, wall: DateTime<Utc>) {
        self.mode = match self.mode {
            Mode::OnSqlite {
                since, since_wall, ..
            } => Mode::OnSqlite {
                since,
                since_wall,
                forced,
            },
            _ => {
                self.last_heartbeat_at = Some(now);
                Mode::OnSqlite {
                    since: now,
                    since_wall: wall,
                    forced,
                }
            }
        };
    }

    /// While on SQLite, how long the fallback has lasted, when a heartbeat is due (at most once
    /// per `every`); marks it sent.
    pub fn heartbeat_due(&mut self, every: Duration, now: Instant) -> Option<Duration> {
        let Mode::OnSqlite { since, .. } = self.mode else {
            return None;
        };
        if self
            .last_heartbeat_at
            .is_some_and(|at| now.duration_since(at) < every)
        {
            return None;
        }
        self.last_heartbeat_at = Some(now);
        Some(now.saturating_duration_since(since))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(30);

    fn state() -> (HealthState, Instant, DateTime<Utc>) {
        let now = Instant::now();
        let wall = Utc::now();
        (HealthState::new(true, false, now, wall), now, wall)
    }

    #[test]
    fn an_environment_is_unchecked_until_its_first_contact() {
        let (mut health, now, wall) = state();
        assert_eq!(health.redshift_message(), "Not checked yet");
        assert_eq!(health.route(now), Route::Redshift);
        assert_eq!(health.succeeded(false, now, wall), None);
        assert_eq!(health.redshift_message(), "Connected");
        assert_eq!(health.last_probe_at, Some(wall));
    }

    #[test]
    fn an_outage_falls_back_and_probes_once_the_interval_passed() {
        let (mut health, now, wall) = state();
        health.succeeded(false, now, wall);
        let switch = health.failed(ErrorKind::Timeout, false, INTERVAL, now, wall);
        assert_eq!(switch, Some(Switch::FellBack));
        assert_eq!(health.redshift_message(), "Connection timeout");
        assert_eq!(health.route(now + Duration::from_secs(29)), Route::Backup);
        assert_eq!(health.route(now + INTERVAL), Route::Probe);
        // A failed probe waits another interval and is no new fallback.
        let later = now + INTERVAL;
        assert_eq!(
            health.failed(ErrorKind::Timeout, true, INTERVAL, later, wall),
            None
        );
        assert_eq!(health.route(later + Duration::from_secs(1)), Route::Backup);
        let back = later + INTERVAL;
        let switch = health.succeeded(true, back, wall);
        assert_eq!(
            switch,
            Some(Switch::Recovered {
                fallback: back - now
            })
        );
        assert_eq!((health.fallbacks, health.recoveries), (1, 1));
    }

    #[test]
    fn throttling_pauses_briefly_and_the_pause_doubles_up_to_the_interval() {
        let (mut health, now, wall) = state();
        health.succeeded(false, now, wall);
        assert_eq!(
            health.throttled(false, INTERVAL, now, wall),
            Some(Switch::FellBack)
        );
        assert_eq!(health.redshift_message(), "Throttled");
        assert_eq!(health.route(now + Duration::from_secs(1)), Route::Probe);
        let mut at = now + Duration::from_secs(1);
        let mut pauses = Vec::new();
        for _ in 0..7 {
            health.throttled(true, INTERVAL, at, wall);
            let next = health.next_probe_at.unwrap();
            pauses.push((next - at).as_secs());
            at = next;
        }
        assert_eq!(pauses, [2, 4, 8, 16, 30, 30, 30]);
        health.succeeded(true, at, wall);
        health.failed(ErrorKind::Throttled, false, INTERVAL, at, wall);
        health.succeeded(true, at, wall);
        health.throttled(false, INTERVAL, at, wall);
        assert_eq!(health.next_probe_at, Some(at + Duration::from_secs(1)));
    }

    #[test]
    fn a_force_holds_until_retry_and_a_late_success_keeps_it() {
        let (mut health, now, wall) = state();
        health.succeeded(false, now, wall);
        assert_eq!(health.force(now, wall), ForceOutcome::Switched);
        assert_eq!(health.route(now + INTERVAL * 10), Route::Backup);
        // A probe that was under way when the force came succeeds: forced stays forced.
        assert_eq!(health.succeeded(true, now, wall), None);
        assert!(health.forced());
        assert_eq!(health.force(now, wall), ForceOutcome::AlreadyOnSqlite);
        health.leave_forced();
        assert_eq!(health.redshift_message(), "Not checked yet");
        assert_eq!(health.route(now), Route::Probe);
        assert!(matches!(
            health.succeeded(true, now, wall),
            Some(Switch::Recovered { .. })
        ));
        assert_eq!(health.forced_switches, 1);
    }

    #[test]
    fn heartbeats_come_at_most_once_per_period_while_on_sqlite() {
        let (mut health, now, wall) = state();
        let every = Duration::from_secs(60);
        assert_eq!(health.heartbeat_due(every, now), None);
        health.failed(ErrorKind::Timeout, false, INTERVAL, now, wall);
        assert_eq!(
            health.heartbeat_due(every, now + Duration::from_secs(59)),
            None
        );
        assert_eq!(health.heartbeat_due(every, now + every), Some(every));
        assert_eq!(health.heartbeat_due(every, now + every), None);
    }

    #[test]
    fn not_configured_is_local_and_cannot_be_forced() {
        let now = Instant::now();
        let mut health = HealthState::new(false, true, now, Utc::now());
        assert_eq!(health.route(now), Route::Local);
        assert_eq!(health.force(now, Utc::now()), ForceOutcome::NotConfigured);
        assert_eq!(health.redshift_message(), "Not configured");
    }
}
