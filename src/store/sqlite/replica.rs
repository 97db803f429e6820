//! The replica's side of the backup file: its state (when it was last pulled, from which
//! warehouse clock, which window it holds) and what a pull brings in, applied in one transaction
//! so that a reader never sees the calls of a pull without its state or the other way round.

use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, Utc};
use rusqlite::{named_params, OptionalExtension, TransactionBehavior};

use super::calls::UPSERT_FROM_REDSHIFT;
use super::rows::{execute_insert, from_db_time, to_db_time};
use super::SqliteStore;
use crate::store::redshift::decode::{parse_redshift_time, to_warehouse_time};
use crate::store::{Call, StoreError};

/// How fresh the replica is, and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaState {
    /// When the last successful pull was sent: the copy holds everything Redshift held then.
    pub pulled_at: DateTime<Utc>,
    /// The warehouse's clock at that pull.
    pub warehouse_clock: NaiveDateTime,
    /// The copy holds every call that started after this instant; every call there is without
    /// one (the warehouse held no more than the window).
    pub window_floor: Option<DateTime<Utc>>,
    /// When the whole window was last pulled.
    pub full_pull_at: DateTime<Utc>,
}

/// A pull to apply: the calls it brought and the state it leaves (none for a page of a pull
/// that is not complete yet).
pub struct AppliedPull {
    pub calls: Arc<[Call]>,
    pub state: Option<ReplicaState>,
    /// A pull of the whole window, sent at this time: calls of the window the backup holds and
    /// the pull did not bring are gone from the warehouse and are removed, unless this
    /// environment wrote them (they wait for replay, or were set aside) or the backup took them
    /// after the pull was sent.
    pub whole_window: Option<DateTime<Utc>>,
}

impl SqliteStore {
    /// The replica's state, or `None` before its first pull.
    pub async fn replica_state(&self) -> Result<Option<ReplicaState>, StoreError> {
        self.read(|conn| {
            conn.query_row(
                "SELECT pulled_at, warehouse_clock, window_floor, full_pull_at \
                 FROM replica_state WHERE id = 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                },
            )
            .optional()
        })
        .await?
        .map(|(pulled_at, clock, floor, full_pull_at)| {
            Ok(ReplicaState {
                pulled_at: from_millis(pulled_at),
                warehouse_clock: parse_redshift_time(&clock)?.naive_utc(),
                window_floor: floor
                    .map(|floor| from_db_time(2, &floor))
                    .transpose()
                    .map_err(StoreError::from)?,
                full_pull_at: from_millis(full_pull_at),
            })
        })
        .transpose()
    }

    /// How many calls the replica's window holds.
    pub async fn calls_in_window(&self, floor: Option<DateTime<Utc>>) -> Result<u64, StoreError> {
        let floor = floor.as_ref().map(to_db_time);
        self.read(move |conn| {
            conn.query_row(
                "SELECT COUNT(*) FROM calls WHERE :floor IS NULL OR started_at > :floor",
                named_params! { ":floor": floor },
                |r| r.get::<_, i64>(0),
            )
        })
        .await
        .map(|n| n.max(0) as u64)
    }

    /// Applies a pull in one transaction: its calls copied in (this environment's own writes
    /// that wait for replay left as they are), calls gone from the warehouse removed after a pull
    /// of the whole window, and the new state, unless another environment sharing the file
    /// recorded a later pull meanwhile (its state stays; the calls are merged either way).
    pub async fn apply_pull(&self, pull: AppliedPull) -> Result<(), StoreError> {
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut upsert = tx.prepare_cached(UPSERT_FROM_REDSHIFT)?;
                for call in pull.calls.iter() {
                    execute_insert(&mut upsert, call)?;
                }
            }
            if let Some(sent_at) = pull.whole_window {
                let ids: Vec<&str> = pull.calls.iter().map(|c| c.id.as_str()).collect();
                let ids = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".to_string());
                let removed = tx
                    .prepare_cached(
                        "DELETE FROM calls WHERE (:floor IS NULL OR started_at > :floor) \
                         AND (written_at IS NULL OR written_at < :sent_at) \
                         AND id NOT IN (SELECT value FROM json_each(:ids)) \
                         AND id NOT IN (SELECT id FROM pending_sync) \
                         AND id NOT IN (SELECT id FROM rejected_sync)",
                    )?
                    .execute(named_params! {
                        ":floor": pull.state.as_ref().and_then(|s| s.window_floor).as_ref().map(to_db_time),
                        ":sent_at": sent_at.timestamp_millis(),
                        ":ids": ids,
                    })?;
                if removed > 0 {
                    tracing::info!(calls = removed, "Removed from the local replica calls the warehouse no longer holds");
                }
            }
            let Some(state) = &pull.state else {
                return tx.commit();
            };
            tx.prepare_cached(
                "INSERT INTO replica_state (id, pulled_at, warehouse_clock, window_floor, full_pull_at) \
                 VALUES (1, :pulled_at, :clock, :floor, :full_pull_at) \
                 ON CONFLICT (id) DO UPDATE SET pulled_at = excluded.pulled_at, \
                 warehouse_clock = excluded.warehouse_clock, window_floor = excluded.window_floor, \
                 full_pull_at = excluded.full_pull_at \
                 WHERE excluded.pulled_at > replica_state.pulled_at",
            )?
            .execute(named_params! {
                ":pulled_at": state.pulled_at.timestamp_millis(),
                ":clock": to_warehouse_time(&state.warehouse_clock),
                ":floor": state.window_floor.as_ref().map(to_db_time),
                ":full_pull_at": state.full_pull_at.timestamp_millis(),
            })?;
            tx.commit()
        })
        .await
    }
}

fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::UNIX_EPOCH)
}
