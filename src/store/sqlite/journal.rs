//! The journal's tables: writes the backup took that wait for Redshift (`pending_sync`, written
//! in the same transaction as the call), the ones set aside because Redshift refused them or
//! held their id with other content (`rejected_sync`), and the leases that let one environment
//! at a time replay or pull when several share the file.

use chrono::Utc;
use rusqlite::{named_params, OptionalExtension, TransactionBehavior};

use super::rows::{call_from_columns, call_from_row, qualified_columns, readable, to_db_time};
use super::SqliteStore;
use crate::store::{Call, StoreError};

/// Journaled writes to replay, by journal entry (the journal row's id).
#[derive(Debug, Default)]
pub struct PendingBatch {
    pub calls: Vec<(i64, Call)>,
    /// Entries whose call cannot be read back, with the reason.
    pub unreadable: Vec<(i64, String)>,
}

/// Why a journaled write leaves the journal without reaching Redshift.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetAside {
    /// Redshift refuses it (or it breaks the rules both databases share).
    Refused,
    /// Redshift already holds its id with other content; Redshift's version stays.
    Conflict,
}

/// A job one environment at a time does on a shared file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lease {
    Replay,
    Pull,
}

impl Lease {
    fn name(self) -> &'static str {
        match self {
            Lease::Replay => "replay",
            Lease::Pull => "pull",
        }
    }
}

/// Counts of the writes set aside.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetAsideCounts {
    pub refused: u64,
    pub conflicts: u64,
}

impl SqliteStore {
    /// How many writes wait to be replayed to Redshift.
    pub async fn pending_count(&self) -> Result<u64, StoreError> {
        self.read(|conn| conn.query_row("SELECT COUNT(*) FROM pending_sync", [], |r| r.get(0)))
            .await
            .map(|n: i64| n.max(0) as u64)
    }

    /// How many journaled writes were set aside, refused and in conflict.
    pub async fn set_aside_counts(&self) -> Result<SetAsideCounts, StoreError> {
        self.read(|conn| {
            conn.query_row(
                "SELECT COUNT(*) - COALESCE(SUM(conflict != 0), 0), COALESCE(SUM(conflict != 0), 0) \
                 FROM rejected_sync",
                [],
                |r| {
                    Ok(SetAsideCounts {
                        refused: r.get::<_, i64>(0)?.max(0) as u64,
                        conflicts: r.get::<_, i64>(1)?.max(0) as u64,
                    })
                },
            )
        })
        .await
    }

    /// The oldest journaled writes, at most `limit`, in the order they were made. A journaled
    /// row that cannot be read back as a call comes back apart, to be set aside, so that it
    /// can never hold up the rest.
    pub async fn pending_batch(&self, limit: usize) -> Result<PendingBatch, StoreError> {
        let sql = format!(
            "SELECT p.rowid, {cols} FROM pending_sync p LEFT JOIN calls c ON c.id = p.id \
             ORDER BY p.queued_at, p.rowid LIMIT :limit",
            cols = qualified_columns("c")
        );
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(named_params! { ":limit": limit as i64 })?;
            let mut batch = PendingBatch::default();
            while let Some(row) = rows.next()? {
                let entry: i64 = row.get(0)?;
                match call_from_columns(row, 1) {
                    Ok(call) => batch.calls.push((entry, call)),
                    Err(err) => batch.unreadable.push((entry, err.to_string())),
                }
            }
            Ok(batch)
        })
        .await
    }

    /// Every journaled write, as calls: few, and what a read answered by Redshift must add to
    /// what Redshift holds (this environment acknowledged them).
    pub async fn pending_calls(&self) -> Result<Vec<Call>, StoreError> {
        let sql = format!(
            "SELECT {cols} FROM pending_sync p JOIN calls c ON c.id = p.id",
            cols = qualified_columns("c")
        );
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut calls = Vec::new();
            // A row that cannot be decoded is skipped (and logged by `readable`); a failed read
            // is an error, not fewer writes.
            for decoded in stmt.query_map([], |row| Ok(call_from_row(row)))? {
                calls.extend(readable(decoded?));
            }
            Ok(calls)
        })
        .await
    }

    /// Removes replayed writes (by journal entry) from the journal.
    pub async fn mark_synced(&self, entries: Vec<i64>) -> Result<(), StoreError> {
        self.write(move |conn| {
            // IMMEDIATE takes the write lock up front: upgrading a read transaction later fails
            // at once under concurrent writers instead of waiting.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut stmt =
                    tx.prepare_cached("DELETE FROM pending_sync WHERE rowid = :entry")?;
                for entry in &entries {
                    stmt.execute(named_params! { ":entry": entry })?;
                }
            }
            tx.commit()
        })
        .await
    }

    /// Takes `lease` for `holder` until `until` (Unix milliseconds), unless another holder has
    /// it and it has not expired: then `Err` with that expiry. A lease whose holder was frozen
    /// or killed expires on its own.
    pub async fn take_lease(
        &self,
        lease: Lease,
        holder: String,
        until: i64,
    ) -> Result<Result<(), i64>, StoreError> {
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let current: Option<(String, i64)> = tx
                .query_row(
                    "SELECT holder, expires_at FROM leases WHERE name = :name",
                    named_params! { ":name": lease.name() },
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let now = Utc::now().timestamp_millis();
            if let Some((other, expires_at)) = current {
                if other != holder && expires_at > now {
                    return Ok(Err(expires_at));
                }
            }
            tx.execute(
                "INSERT OR REPLACE INTO leases (name, holder, expires_at) VALUES (:name, :holder, :until)",
                named_params! { ":name": lease.name(), ":holder": holder, ":until": until },
            )?;
            tx.commit()?;
            Ok(Ok(()))
        })
        .await
    }

    /// Gives `lease` back, if `holder` still has it.
    pub async fn release_lease(&self, lease: Lease, holder: String) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.execute(
                "DELETE FROM leases WHERE name = :name AND holder = :holder",
                named_params! { ":name": lease.name(), ":holder": holder },
            )
            .map(drop)
        })
        .await
    }

    /// Moves a journaled write out of the journal without replaying it, keeping the call and
    /// the reason, so that the rest of the journal replays.
    pub async fn set_aside(
        &self,
        entry: i64,
        why: SetAside,
        reason: String,
    ) -> Result<(), StoreError> {
        let conflict = why == SetAside::Conflict;
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO rejected_sync (id, reason, rejected_at, conflict) \
                 SELECT id, :reason, :now, :conflict FROM pending_sync WHERE rowid = :entry",
            )?
            .execute(named_params! {
                ":reason": reason,
                ":now": to_db_time(&Utc::now()),
                ":conflict": conflict,
                ":entry": entry,
            })?;
            tx.prepare_cached("DELETE FROM pending_sync WHERE rowid = :entry")?
                .execute(named_params! { ":entry": entry })?;
            tx.commit()
        })
        .await
    }
}
