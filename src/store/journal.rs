//! The journal: writes the backup took while Redshift was configured but could not take them,
//! and their replay to Redshift.
//!
//! The rules, each kept here:
//! - A journaled write is replayed exactly once: each batch is one idempotent transaction on
//!   Redshift (see [`RedshiftSession::insert_missing`]) and leaves the journal only once Redshift
//!   has it, so a replay cut off anywhere resumes later without loss or duplicates.
//! - A conflict is not silent: a journaled write whose id Redshift already holds with other
//!   content (another environment took the same id meanwhile) keeps Redshift's version and is
//!   set aside as a conflict (kept in the backup, counted, measured, logged).
//! - The journal cannot be blocked: a write that breaks [`rules`] (journaled by an older
//!   version, say) is set aside (kept in the backup with its reason, counted, measured, logged
//!   once) without asking Redshift, and so is a row that cannot even be read back. A batch
//!   Redshift refuses anyway is narrowed down: for values too long, by the warehouse's own
//!   column widths (asked once, on the first such refusal); otherwise by halving until the
//!   refused write is alone. The rest goes on.
//! - Replay spends the request's deadline and no more: a batch starts only when the time left
//!   covers what the previous one took, with room to spare; what is left waits for the next
//!   request.
//! - One replay at a time, in an environment (a lock) and across the environments sharing the
//!   file (a lease row in the database that expires at the replay's deadline, so a frozen or
//!   killed holder blocks the others for one deadline at most); a request that finds one
//!   running goes on without waiting.
//! - On a shared file any environment replays any environment's writes: the count of waiting
//!   writes is read from the file on each probe and at most once per check interval.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use std::collections::HashMap;

use super::error::{ErrorKind, Refusal};
use super::redshift::sql::MAX_ROWS_PER_INSERT;
use super::redshift::RedshiftSession;
use super::rules;
use super::sqlite::{Lease, SetAside, SqliteStore};
use super::{Call, StoreError};
use crate::metrics::{Metrics, SwitchEvent};

/// Rows per replay statement: one multi-row insert each.
pub const REPLAY_BATCH: usize = MAX_ROWS_PER_INSERT;

/// What one replay did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Journaled writes now in Redshift and out of the journal.
    pub replayed: u64,
    /// Of those, how many Redshift already had (an earlier, interrupted replay, or the same id
    /// written there before); Redshift's copy is kept.
    pub already_there: u64,
    /// Writes Redshift refused, or that could not be read back, now set aside.
    pub set_aside: u64,
    /// Writes whose id Redshift already held with other content, now set aside.
    pub conflicts: u64,
    /// Another replay was running: this one did nothing.
    pub busy: bool,
    /// Statements Redshift answered (took, or refused a value of); writes set aside without
    /// asking it (unreadable, or breaking the rules both databases share) are not among them.
    pub statements_answered: u64,
}

impl ReplayReport {
    /// Redshift itself answered at least one statement of this replay: it is up.
    pub fn redshift_answered(&self) -> bool {
        self.statements_answered > 0
    }
}

pub struct Journal {
    /// Journaled writes not yet replayed: kept in memory so that the Redshift path need not
    /// ask SQLite. The journal itself is the truth; this is refreshed from it after every replay
    /// (and, on a shared file, from time to time: see [`Journal::recount_due`]).
    pending: AtomicU64,
    /// Writes journaled by this environment since it started: tells a count of the journal that
    /// raced with a new write.
    journaled_total: AtomicU64,
    /// When the journal was last counted.
    counted_at: Mutex<Instant>,
    /// This environment's name on the replay lease.
    holder: String,
    /// Another environment holds the lease until then (Unix milliseconds): no need to ask.
    leased_elsewhere_until: AtomicI64,
    /// Writes set aside, for `/db/status`.
    rejected: AtomicU64,
    conflicts: AtomicU64,
    last_replay_at: Mutex<Option<DateTime<Utc>>>,
    replay_lock: tokio::sync::Mutex<()>,
    metrics: Arc<Metrics>,
}

impl Journal {
    /// The journal of `sqlite` (empty when there is no backup).
    pub async fn load(sqlite: Option<&SqliteStore>, metrics: Arc<Metrics>) -> Journal {
        let journal = Journal {
            pending: AtomicU64::new(0),
            journaled_total: AtomicU64::new(0),
            counted_at: Mutex::new(Instant::now()),
            holder: uuid::Uuid::new_v4().to_string(),
            leased_elsewhere_until: AtomicI64::new(0),
            rejected: AtomicU64::new(0),
            conflicts: AtomicU64::new(0),
            last_replay_at: Mutex::new(None),
            replay_lock: tokio::sync::Mutex::new(()),
            metrics,
        };
        if let Some(sqlite) = sqlite {
            journal.recount(sqlite).await;
        }
        journal
    }

    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Acquire)
    }

    /// Writes set aside as refused.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// Writes set aside as conflicts.
    pub fn conflicts(&self) -> u64 {
        self.conflicts.load(Ordering::Relaxed)
    }

    pub fn last_replay_at(&self) -> Option<DateTime<Utc>> {
        *self
            .last_replay_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A write was journaled. Counted before the write is acknowledged, so that a read that
    /// follows the acknowledgement knows a write waits.
    pub fn journaled(&self) {
        self.journaled_total.fetch_add(1, Ordering::AcqRel);
        self.pending.fetch_add(1, Ordering::AcqRel);
    }

    /// Replays journaled writes in batches until none wait, Redshift fails, or the session's
    /// deadline leaves too little time for another batch.
    pub async fn replay(
        &self,
        sqlite: &SqliteStore,
        redshift: RedshiftSession<'_>,
    ) -> Result<ReplayReport, StoreError> {
        let busy = ReplayReport {
            busy: true,
            ..ReplayReport::default()
        };
        let Ok(_guard) = self.replay_lock.try_lock() else {
            return Ok(busy);
        };
        let now = Utc::now();
        if now.timestamp_millis() < self.leased_elsewhere_until.load(Ordering::Relaxed) {
            return Ok(busy);
        }
        let until = now + redshift.deadline().remaining();
        if let Err(expires_at) = sqlite
            .take_lease(Lease::Replay, self.holder.clone(), until.timestamp_millis())
            .await?
        {
            self.leased_elsewhere_until
                .store(expires_at, Ordering::Relaxed);
            return Ok(busy);
        }
        let mut run = ReplayRun::new(sqlite, redshift);
        let outcome = match run.all().await {
            // Redshift took batches until the deadline ran out: it is up, and the rest waits
            // for the next replay. Only a replay Redshift answered nothing of is a failure.
            Err(err) if err.kind == ErrorKind::Timeout && run.report.redshift_answered() => Ok(()),
            outcome => outcome,
        };
        if let Err(err) = sqlite
            .release_lease(Lease::Replay, self.holder.clone())
            .await
        {
            // It expires on its own at the deadline.
            tracing::debug!(error = %err.detail, "replay lease not released");
        }
        // Whatever happened, the journal is the truth about what still waits.
        self.recount(sqlite).await;
        self.finish(&run.report).await;
        outcome.map(|()| run.report)
    }

    /// True when the journal should be counted again: always for a probe, otherwise once
    /// `every` has passed since the last count. Marks it counted.
    pub fn recount_due(&self, probe: bool, every: Duration) -> bool {
        let mut counted_at = self
            .counted_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let due = probe || counted_at.elapsed() >= every;
        if due {
            *counted_at = Instant::now();
        }
        due
    }

    /// Counts the journal again (writes of other environments sharing the file included).
    ///
    /// A write journaled while the count runs may or may not be in it; the count is taken only
    /// when no write was journaled meanwhile, so the number can be too high (a replay then finds
    /// less to do) but never too low (a read from Redshift could then miss a waiting write).
    pub async fn recount(&self, sqlite: &SqliteStore) {
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            let before = self.journaled_total.load(Ordering::Acquire);
            let Ok(counted) = sqlite.pending_count().await else {
                break;
            };
            if self.journaled_total.load(Ordering::Acquire) == before {
                self.pending.store(counted, Ordering::Release);
                break;
            }
            if attempt == ATTEMPTS {
                // Writes keep coming: the journal holds at least what was counted.
                self.pending.fetch_max(counted, Ordering::AcqRel);
            }
        }
        if let Ok(counts) = sqlite.set_aside_counts().await {
            self.rejected.store(counts.refused, Ordering::Relaxed);
            self.conflicts.store(counts.conflicts, Ordering::Relaxed);
        }
    }

    async fn finish(&self, report: &ReplayReport) {
        if report.replayed > 0 {
            *self
                .last_replay_at
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(Utc::now());
            tracing::info!(
                rows = report.replayed,
                already_in_redshift = report.already_there,
                set_aside = report.set_aside,
                conflicts = report.conflicts,
                still_waiting = self.pending(),
                "🔁 Replayed writes from the local backup to Redshift"
            );
        }
        if report.set_aside > 0 {
            self.metrics.record(SwitchEvent::WritesSetAside {
                count: report.set_aside,
            });
        }
        if report.conflicts > 0 {
            self.metrics.record(SwitchEvent::Conflicts {
                count: report.conflicts,
            });
        }
    }
}

/// One replay's work and bookkeeping.
struct ReplayRun<'a> {
    sqlite: &'a SqliteStore,
    redshift: RedshiftSession<'a>,
    report: ReplayReport,
    /// How long the last statement took: the next starts only if the time left covers it.
    last_statement: Option<Duration>,
    /// The warehouse's text column widths, once a value was refused as too long.
    widths: Option<HashMap<String, usize>>,
}

impl<'a> ReplayRun<'a> {
    fn new(sqlite: &'a SqliteStore, redshift: RedshiftSession<'a>) -> Self {
        ReplayRun {
            sqlite,
            redshift,
            report: ReplayReport::default(),
            last_statement: None,
            widths: None,
        }
    }

    async fn all(&mut self) -> Result<(), StoreError> {
        while self.time_for_another_statement() {
            let batch = self.sqlite.pending_batch(REPLAY_BATCH).await?;
            for (entry, reason) in batch.unreadable {
                self.set_aside(
                    entry,
                    "?",
                    SetAside::Refused,
                    format!("unreadable in the local backup: {reason}"),
                )
                .await?;
            }
            if batch.calls.is_empty() {
                return Ok(());
            }
            if !self.batch(batch.calls).await? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Replays one batch, narrowing it down while Redshift refuses part of it. False when the
    /// time ran out before the whole batch was done (the rest stays journaled).
    async fn batch(&mut self, calls: Vec<(i64, Call)>) -> Result<bool, StoreError> {
        let mut parts = vec![calls];
        while let Some(part) = parts.pop() {
            let part = self.without_unstorable(part).await?;
            if part.is_empty() {
                continue;
            }
            if !self.time_for_another_statement() {
                return Ok(false);
            }
            let batch: Vec<Call> = part.iter().map(|(_, call)| call.clone()).collect();
            let started = Instant::now();
            let outcome = self.redshift.insert_missing(&batch).await;
            self.last_statement = Some(started.elapsed());
            if outcome.is_ok() || outcome.as_ref().is_err_and(StoreError::is_refusal) {
                self.report.statements_answered += 1;
            }
            match outcome {
                Ok(stored) => self.replayed(part, &stored).await?,
                Err(err) if err.is_refusal() && part.len() == 1 => {
                    let (entry, call) = &part[0];
                    let reason = format!("{err} ({})", err.detail);
                    self.set_aside(*entry, &call.id, SetAside::Refused, reason)
                        .await?;
                }
                Err(err)
                    if err.refusal() == Some(Refusal::ValueTooLong) && self.widths.is_none() =>
                {
                    // Learn the warehouse's widths once; the part is tried again against them.
                    self.widths =
                        Some(self.redshift.text_column_widths().await.unwrap_or_default());
                    parts.push(part);
                }
                Err(err) if err.is_refusal() => {
                    // Halve until the refused write is alone; the second half waits its turn.
                    let mut first = part;
                    let second = first.split_off(first.len() / 2);
                    parts.push(second);
                    parts.push(first);
                }
                Err(err) => return Err(err),
            }
        }
        Ok(true)
    }

    /// Sets aside, without asking Redshift, the writes that break the rules both databases
    /// share, and those longer than the warehouse's columns once their widths are known.
    async fn without_unstorable(
        &mut self,
        part: Vec<(i64, Call)>,
    ) -> Result<Vec<(i64, Call)>, StoreError> {
        let mut storable = Vec::with_capacity(part.len());
        for (entry, call) in part {
            match rules::unstorable(&call).or_else(|| self.too_long_for_warehouse(&call)) {
                Some(reason) => {
                    self.set_aside(entry, &call.id, SetAside::Refused, reason)
                        .await?
                }
                None => storable.push((entry, call)),
            }
        }
        Ok(storable)
    }

    fn too_long_for_warehouse(&self, call: &Call) -> Option<String> {
        let widths = self.widths.as_ref()?;
        rules::text_columns(call).find_map(|(column, value)| {
            let (value, width) = (value?, *widths.get(column)?);
            (value.len() > width).then(|| {
                format!(
                    "Refused: value too long ({column} holds {width} bytes in the warehouse; this value has {})",
                    value.len()
                )
            })
        })
    }

    /// Takes replayed writes out of the journal: those Redshift now holds as journaled, and,
    /// set aside as conflicts, those whose id it held with other content.
    async fn replayed(
        &mut self,
        part: Vec<(i64, Call)>,
        stored: &HashMap<String, Call>,
    ) -> Result<(), StoreError> {
        let mut synced = Vec::with_capacity(part.len());
        for (entry, call) in part {
            match stored.get(&call.id) {
                Some(held) if held.same_content(&call) => {
                    if held.created_at != call.created_at {
                        self.report.already_there += 1;
                    }
                    synced.push(entry);
                }
                Some(_) => {
                    let reason = "Conflict: Redshift already holds this id with other content; \
                        Redshift's version is kept"
                        .to_string();
                    self.set_aside(entry, &call.id, SetAside::Conflict, reason)
                        .await?;
                }
                // Never claimed as replayed: it stays journaled for the next replay.
                None => {
                    tracing::warn!(id = %call.id, "A replayed write is not in Redshift afterwards; it stays journaled")
                }
            }
        }
        self.report.replayed += synced.len() as u64;
        self.sqlite.mark_synced(synced).await
    }

    async fn set_aside(
        &mut self,
        entry: i64,
        id: &str,
        why: SetAside,
        reason: String,
    ) -> Result<(), StoreError> {
        match why {
            SetAside::Refused => {
                tracing::warn!(id, reason = %reason, "⛔ Redshift will not take a journaled write; set aside in the local backup");
                self.report.set_aside += 1;
            }
            SetAside::Conflict => {
                tracing::warn!(id, reason = %reason, "⚠️ A journaled write conflicts with the call Redshift holds under its id; set aside in the local backup");
                self.report.conflicts += 1;
            }
        }
        self.sqlite.set_aside(entry, why, reason).await
    }

    /// The first statement always runs; another only when the time left covers the last one's
    /// duration half as much again, so that replay does not run itself into the deadline.
    fn time_for_another_statement(&self) -> bool {
        let left = self.redshift.deadline().remaining();
        match self.last_statement {
            None => !left.is_zero(),
            Some(took) => left > took + took / 2,
        }
    }
}

/// A replay that stopped: its writes stay journaled for the next try. A failure of the backup
/// (its journal or lease) is not Redshift's, and says so.
pub(super) fn replay_stopped(err: &StoreError) {
    match err.kind {
        ErrorKind::Sqlite(_) => {
            tracing::warn!(error = %err, detail = %err.detail, "The journal could not be read or updated; its writes wait for the next try")
        }
        _ => {
            tracing::warn!(error = %err, detail = %err.detail, "Replay stopped; the writes wait for the next try")
        }
    }
}
