//! Writes: to Redshift (shared statements, [`WriteBatcher`]) and into the replica before the
//! answer; to the backup's journal when Redshift cannot take them.

use std::sync::Arc;

use chrono::Utc;

use super::{refused, retired, FailoverStore, Primary, RequestBudget, Served};
use crate::store::backup::Backup;
use crate::store::error::ErrorKind;
use crate::store::health::Route;
use crate::store::{Call, InsertOutcome, Source};

impl FailoverStore {
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
        let sqlite = self.backup.store().ok()?;
        let (existing, known) = sqlite
            .get_known(&call.id, self.known_calls())
            .await
            .ok()??;
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
        let copied = self.spawn_copy(vec![stored]);
        let _ = tokio::time::timeout(budget.answer_time_left(), copied).await;
    }

    /// Copies what Redshift answered into the backup, off the request path.
    pub(super) fn copy_in_background(&self, calls: &[Call]) {
        if calls.is_empty() || self.backup.store().is_err() {
            return;
        }
        // Nobody waits for it; background work still finishes before Lambda freezes.
        drop(self.spawn_copy(calls.to_vec()));
    }

    /// Copies `calls` into the backup as background work; the receiver hears when it is done.
    fn spawn_copy(&self, calls: Vec<Call>) -> tokio::sync::oneshot::Receiver<()> {
        let (done, copied) = tokio::sync::oneshot::channel();
        let backup = Arc::clone(&self.backup);
        self.background.spawn(async move {
            copy_into(&backup, calls).await;
            let _ = done.send(());
        });
        copied
    }
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
