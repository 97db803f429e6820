//! Calls in the backup: history, one call, a write (journaled when Redshift is configured), and
//! calls copied in from Redshift.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rusqlite::types::ValueRef;
use rusqlite::{named_params, Connection, OptionalExtension, Row, TransactionBehavior};

use super::rows::{call_from_row, execute_insert, readable, skipped, stored_call, to_db_time};
use super::{SqliteStore, COLUMNS};
use crate::store::json::CallsJson;
use crate::store::{Call, HistoryQuery, InsertOutcome, StoreError};

/// Inserts a call with its answer, or, when its id is there, changes it to this version unless
/// it is this environment's own write that Redshift does not hold as written (waiting for
/// replay, or set aside as refused or conflicting: the acknowledged version is kept) or is
/// already as Redshift has it (a copy then writes nothing).
pub(super) const UPSERT_FROM_REDSHIFT: &str = "INSERT INTO calls (id, contact_name, account_name, \
     started_at, duration_seconds, outcome, notes, created_at, answer, written_at) VALUES (:id, \
     :contact_name, :account_name, :started_at, :duration_seconds, :outcome, :notes, :created_at, \
     :answer, :written_at) \
     ON CONFLICT (id) DO UPDATE SET contact_name = excluded.contact_name, \
     account_name = excluded.account_name, started_at = excluded.started_at, \
     duration_seconds = excluded.duration_seconds, outcome = excluded.outcome, \
     notes = excluded.notes, created_at = excluded.created_at, answer = excluded.answer, \
     written_at = excluded.written_at \
     WHERE calls.id NOT IN (SELECT id FROM pending_sync) \
     AND calls.id NOT IN (SELECT id FROM rejected_sync) \
     AND (calls.contact_name, calls.account_name, calls.started_at, \
          calls.duration_seconds, calls.outcome, calls.notes, calls.created_at, \
          calls.answer) \
     IS NOT (excluded.contact_name, excluded.account_name, excluded.started_at, \
          excluded.duration_seconds, excluded.outcome, excluded.notes, \
          excluded.created_at, excluded.answer)";

/// Which calls of the backup stand as Redshift holds them, so that a lookup may answer from them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KnownCalls {
    /// Every call: no Redshift, or a replica whose window holds the whole table.
    All,
    /// Calls started after this time (the replica's window), and this environment's own writes.
    StartedAfter(DateTime<Utc>),
    /// Only this environment's own writes (waiting for replay, or set aside): no replica yet,
    /// or none kept.
    OwnWrites,
}

impl KnownCalls {
    /// What a replica's window floor covers (`Replica::window_floor`): `None`, no replica yet;
    /// `Some(None)`, every call.
    pub fn window(floor: Option<Option<DateTime<Utc>>>) -> Self {
        match floor {
            None => KnownCalls::OwnWrites,
            Some(None) => KnownCalls::All,
            Some(Some(floor)) => KnownCalls::StartedAfter(floor),
        }
    }
}

/// A history answer from the backup, and whether it is complete for a replica whose window
/// starts where the query said.
pub struct LocalHistory {
    pub calls: CallsJson,
    pub complete: bool,
}

impl SqliteStore {
    /// History as the JSON array the API sends: each call's stored answer copied out, or, for a
    /// call without one, written straight from its columns (no call is built, no timestamp
    /// parsed that is stored in the canonical form). Unreadable rows are skipped.
    pub async fn history_json(&self, query: &HistoryQuery) -> Result<CallsJson, StoreError> {
        Ok(self.history_in_window(query, None).await?.calls)
    }

    /// As [`SqliteStore::history_json`], from the calls that started after `floor` only (the
    /// replica's window, which holds every such call Redshift held at the last pull), and
    /// whether that answer is complete: the query's own `since` lies inside the window, or the
    /// window's calls fill the page (what lies beyond it would come later in the order).
    /// Without a floor every call counts, and the answer is complete.
    pub async fn history_in_window(
        &self,
        query: &HistoryQuery,
        floor: Option<DateTime<Utc>>,
    ) -> Result<LocalHistory, StoreError> {
        let query = query.clone();
        self.read(move |conn| {
            let mut json = CallsJson::with_room_for(query.limit as usize);
            let mut rows = 0usize;
            let floor_text = floor.as_ref().map(to_db_time);
            let mut by_rowid = None;
            each_history_row(
                conn,
                &query,
                floor_text.as_deref(),
                "answer, rowid",
                |row| {
                    rows += 1;
                    if let ValueRef::Text(answer) = row.get_ref(0)? {
                        json.push_written(answer);
                        return Ok(());
                    }
                    // Read within the same transaction as the row itself.
                    let by_rowid = match &mut by_rowid {
                        Some(stmt) => stmt,
                        None => by_rowid.insert(conn.prepare_cached(&format!(
                            "SELECT {COLUMNS} FROM calls WHERE rowid = :rowid"
                        ))?),
                    };
                    let rowid: i64 = row.get(1)?;
                    let mut columns = by_rowid.query(named_params! { ":rowid": rowid })?;
                    if let Some(row) = columns.next()? {
                        match stored_call(row, 0) {
                            Ok(call) => json.push(&call),
                            Err(err) => skipped(&err),
                        }
                    }
                    Ok(())
                },
            )?;
            let complete = match floor {
                None => true,
                Some(floor) => {
                    query.since.is_some_and(|since| since > floor) || rows >= query.limit as usize
                }
            };
            Ok(LocalHistory {
                calls: json,
                complete,
            })
        })
        .await
    }

    /// History as calls.
    pub async fn history(&self, query: &HistoryQuery) -> Result<Vec<Call>, StoreError> {
        let query = query.clone();
        self.read(move |conn| {
            let mut calls = Vec::with_capacity(query.limit as usize);
            each_history_row(conn, &query, None, COLUMNS, |row| {
                if let Some(call) = readable(call_from_row(row)) {
                    calls.push(call);
                }
                Ok(())
            })?;
            Ok(calls)
        })
        .await
    }

    pub async fn get(&self, id: &str) -> Result<Option<Call>, StoreError> {
        Ok(self
            .get_known(id, KnownCalls::All)
            .await?
            .map(|(call, _)| call))
    }

    /// One call, and whether the backup knows it as Redshift had it at the last pull (it is
    /// among `known`). A call outside them may be an old copy.
    pub async fn get_known(
        &self,
        id: &str,
        known: KnownCalls,
    ) -> Result<Option<(Call, bool)>, StoreError> {
        let id = id.to_string();
        let all = known == KnownCalls::All;
        let floor = match known {
            KnownCalls::StartedAfter(floor) => Some(to_db_time(&floor)),
            KnownCalls::All | KnownCalls::OwnWrites => None,
        };
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS}, (:all OR (:floor IS NOT NULL AND started_at > :floor) \
                   OR id IN (SELECT id FROM pending_sync) OR id IN (SELECT id FROM rejected_sync)) \
                 FROM calls WHERE id = :id"
            ))?;
            let found = stmt
                .query_row(named_params! { ":id": id, ":all": all, ":floor": floor }, |row| {
                    Ok(call_from_row(row).and_then(|call| Ok((call, row.get::<_, bool>(8)?))))
                })
                .optional()?;
            Ok(found.and_then(readable))
        })
        .await
    }

    /// Records a call: journaled for replay when Redshift is configured, in the same
    /// transaction. A call whose id is taken comes back as it is stored.
    pub async fn insert(&self, call: &Call) -> Result<InsertOutcome, StoreError> {
        let call = call.clone();
        let journal = self.options.journal_writes;
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let existing = tx
                .prepare_cached(&format!("SELECT {COLUMNS} FROM calls WHERE id = :id"))?
                .query_row(named_params! { ":id": call.id }, |row| Ok(call_from_row(row)))
                .optional()?;
            match existing {
                None => {}
                Some(Ok(existing)) => return Ok(InsertOutcome::AlreadyExists(existing)),
                Some(Err(err)) => {
                    tracing::warn!(id = %call.id, error = %err, "The id is taken by an unreadable row in the local backup");
                    return Ok(InsertOutcome::IdTaken);
                }
            }
            {
                let mut stmt = tx.prepare_cached(&format!(
                    "INSERT INTO calls ({COLUMNS}, answer, written_at) VALUES (:id, :contact_name, \
                     :account_name, :started_at, :duration_seconds, :outcome, :notes, :created_at, \
                     :answer, :written_at)"
                ))?;
                execute_insert(&mut stmt, &call)?;
            }
            if journal {
                tx.prepare_cached("INSERT INTO pending_sync (id, queued_at) VALUES (:id, :queued_at)")?
                    .execute(named_params! { ":id": call.id, ":queued_at": to_db_time(&Utc::now()) })?;
            }
            tx.commit()?;
            Ok(InsertOutcome::Inserted)
        })
        .await
    }

    /// Copies calls as Redshift holds them into the backup (a write Redshift took, an answer
    /// it gave): rows waiting for replay are left as they are, and rows already as Redshift has
    /// them are not written again.
    pub async fn copy_from_redshift(&self, calls: Arc<[Call]>) -> Result<(), StoreError> {
        if calls.is_empty() {
            return Ok(());
        }
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut stmt = tx.prepare_cached(UPSERT_FROM_REDSHIFT)?;
                for call in calls.iter() {
                    execute_insert(&mut stmt, call)?;
                }
            }
            tx.commit()
        })
        .await
    }
}

/// Runs the history query for `columns` and hands each row to `each`, newest first; with a
/// `floor` (stored time text), only calls that started after it.
pub(super) fn each_history_row(
    conn: &Connection,
    query: &HistoryQuery,
    floor: Option<&str>,
    columns: &str,
    mut each: impl FnMut(&Row<'_>) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    let mut sql = format!("SELECT {columns} FROM calls WHERE 1 = 1");
    // Fixed fragments only; every value is a bound parameter.
    if query.contact.is_some() {
        sql.push_str(" AND contact_name = :contact");
    }
    if query.since.is_some() {
        sql.push_str(" AND started_at >= :since");
    }
    if query.until.is_some() {
        sql.push_str(" AND started_at < :until");
    }
    if floor.is_some() {
        sql.push_str(" AND started_at > :floor");
    }
    // A bare `LIMIT :limit` makes SQLite plan for the value bound and so prepare the statement
    // again every time it is bound; as an expression the limit is read when the statement runs,
    // and the cached statement is reused as it is.
    sql.push_str(" ORDER BY started_at DESC, id DESC LIMIT CAST(:limit AS INTEGER) OFFSET :offset");
    let since = query.since.as_ref().map(to_db_time);
    let until = query.until.as_ref().map(to_db_time);
    let mut params: Vec<(&str, &dyn rusqlite::ToSql)> =
        vec![(":limit", &query.limit), (":offset", &query.offset)];
    if let Some(contact) = &query.contact {
        params.push((":contact", contact));
    }
    if let Some(since) = &since {
        params.push((":since", since));
    }
    if let Some(until) = &until {
        params.push((":until", until));
    }
    if let Some(floor) = &floor {
        params.push((":floor", floor));
    }
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params.as_slice())?;
    while let Some(row) = rows.next()? {
        // One unreadable row must not make the whole answer unavailable: `each` skips it.
        each(row)?;
    }
    Ok(())
}
