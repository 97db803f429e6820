//! What Redshift's answers and the operator's switches do to the health state, and the
//! metrics each change puts.

use std::time::{Duration, Instant};

use chrono::Utc;

use super::{FailoverStore, Primary, RequestBudget};
use crate::metrics::SwitchEvent;
use crate::store::error::ErrorKind;
use crate::store::health::{ForceOutcome, Route, Switch};
use crate::store::{Source, StoreError};

impl FailoverStore {
    /// Redshift answered.
    pub(super) fn contact_succeeded(&self, probe: bool) {
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
    pub(super) fn contact_failed(&self, err: &StoreError, probe: bool) {
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
    pub(super) fn heartbeat_if_due(&self) {
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
}
