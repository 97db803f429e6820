//! The local backup: a SQLite file that ships with the function (schema and sample data are
//! compiled in) and is materialised on a cold start when it is missing or unreadable.
//!
//! rusqlite is synchronous: writes run on tokio's blocking pool, reads at once when a connection
//! is free; a small pool of connections lets reads on both cores proceed at once (WAL mode).
//!
//! A file shared by several environments (on EFS, [`SqliteOptions::shared`]) is opened the way
//! SQLite is safe on a network file system: a rollback journal instead of WAL (whose shared
//! memory index does not work across machines), busy waits instead of errors when another
//! environment holds the lock, reads on the blocking pool (they may wait for a writer), and a
//! new file created only when none exists, atomically, so that two cold starts at once cannot
//! both create it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::types::{FromSqlError, ValueRef};
use rusqlite::{
    named_params, Connection, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior,
};

use super::error::{ErrorKind, SqliteProblem};
use super::json::{call_json, CallFields, CallsJson, Text, Timestamp, MICROS_TEXT_LEN};
use super::{Call, CallStore, HistoryQuery, InsertOutcome, StoreError};

const SCHEMA: &str = include_str!("../../sql/sqlite/schema.sql");
const SEED: &str = include_str!("../../sql/sqlite/seed.sql");
/// Marks a database whose schema and sample data are in place: 1 had the calls and the
/// journal, 2 added the writes set aside, 3 the replay lease, 4 each call's answer. A change of
/// the calls' JSON must clear the stored answers in a new version (they are then written again).
const SCHEMA_VERSION: i64 = 4;
/// How long a statement waits for a lock another connection or environment holds.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// How a database file is used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Every insert is also journaled for replay (Redshift is configured).
    pub journal_writes: bool,
    /// Several environments use the file at once (EFS).
    pub shared: bool,
}
const POOL_SIZE: usize = 2;
const COLUMNS: &str =
    "id, contact_name, account_name, started_at, duration_seconds, outcome, notes, created_at";

/// Journaled writes to replay, by journal entry (the journal row's id).
#[derive(Debug, Default)]
pub struct PendingBatch {
    pub calls: Vec<(i64, Call)>,
    /// Entries whose call cannot be read back, with the reason.
    pub unreadable: Vec<(i64, String)>,
}

#[derive(Clone)]
pub struct SqliteStore {
    pool: Arc<Pool>,
    options: SqliteOptions,
}

struct Pool {
    path: PathBuf,
    connections: Vec<Mutex<Connection>>,
    /// Set when the file is about to be copied and replaced (see [`SqliteStore::retire`]);
    /// every write holds it for reading while it runs.
    retired: RwLock<bool>,
}

impl Pool {
    /// A connection nobody is using, if there is one.
    fn try_acquire(&self) -> Option<MutexGuard<'_, Connection>> {
        self.connections
            .iter()
            .find_map(|conn| conn.try_lock().ok())
    }

    /// Takes a free connection, or waits for the first one.
    fn acquire(&self) -> MutexGuard<'_, Connection> {
        if let Some(guard) = self.try_acquire() {
            return guard;
        }
        // A panic while holding a connection leaves it usable: SQLite rolls back on its own.
        self.connections[0]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl SqliteStore {
    /// Opens the database at `path` used as `options` say, creating it with schema and the
    /// sample data when missing.
    pub fn open(path: &Path, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        Self::open_with(path, options, SEED)
    }

    /// Opens the database at `path` used as `options` say, creating it from `seed` when missing
    /// (a snapshot of Redshift, say, rather than the sample data compiled in).
    ///
    /// Only a damaged file (not a database, or corrupt) is moved aside, with its `-wal` and
    /// `-shm` files, and recreated; a transient failure (busy, disk full, read-only) is returned
    /// as it is, so that the caller can try again later without losing the file.
    pub fn open_with(
        path: &Path,
        options: SqliteOptions,
        seed: &str,
    ) -> Result<SqliteStore, StoreError> {
        if options.shared {
            create_shared_if_missing(path, seed)?;
        }
        let first = match open_prepared(path, options, seed) {
            Ok(conn) => conn,
            Err(err) if err.kind == ErrorKind::Sqlite(SqliteProblem::Corrupt) => {
                tracing::warn!(path = %path.display(), error = %err.detail, "SQLite database damaged; moved aside and recreated");
                SqliteStore::move_aside(path)?;
                if options.shared {
                    create_shared_if_missing(path, seed)?;
                }
                open_prepared(path, options, seed)?
            }
            Err(err) => return Err(err),
        };
        let mut connections = vec![Mutex::new(first)];
        for _ in 1..POOL_SIZE {
            connections.push(Mutex::new(open_connection(path, options)?));
        }
        Ok(SqliteStore {
            pool: Arc::new(Pool {
                path: path.to_path_buf(),
                connections,
                retired: RwLock::new(false),
            }),
            options,
        })
    }

    pub fn path(&self) -> &Path {
        &self.pool.path
    }

    /// Writes a complete copy of the database, as this store still reads it (its WAL
    /// included), to a new file at `to`: the way to keep every call and the journal when the
    /// file at the path was deleted or damaged under an open connection. Blocking; rare.
    pub fn copy_to(&self, to: &Path) -> Result<(), StoreError> {
        let conn = self.pool.acquire();
        conn.execute("VACUUM INTO ?1", [to.to_string_lossy()])?;
        Ok(())
    }

    /// Copies into the database at `to` the calls, and their journaled writes, that this store
    /// holds and `to` does not: on a shared file, what this environment wrote after another
    /// environment copied the file to repair it. Blocking; rare.
    pub fn merge_into(&self, to: &Path) -> Result<usize, StoreError> {
        let conn = self.pool.acquire();
        conn.execute("ATTACH DATABASE ?1 AS fresh", [to.to_string_lossy()])?;
        let merged = merge_into_attached(&conn);
        conn.execute("DETACH DATABASE fresh", [])?;
        Ok(merged?)
    }

    /// Moves a broken database file (and its WAL files) aside, to `<name>.unreadable`.
    pub fn move_aside(path: &Path) -> Result<(), StoreError> {
        move_aside(path, &path.with_extension("unreadable"))
    }

    /// Runs a read at once when a connection is free: reads take tens of microseconds and, in WAL
    /// mode, never wait for a writer, so handing them to the blocking pool would cost more than
    /// the query. With every connection busy, or on a shared file (where a read may wait for
    /// another environment's write), the read runs on the blocking pool instead.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        if self.options.shared {
            return self.with_connection(f).await;
        }
        match self.try_read_inline(f) {
            Ok(result) => result,
            Err(f) => self.with_connection(f).await,
        }
    }

    /// Gives `f` back when no connection is free.
    fn try_read_inline<T, F>(&self, f: F) -> Result<Result<T, StoreError>, F>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<T>,
    {
        match self.pool.try_acquire() {
            Some(mut conn) => Ok(f(&mut conn).map_err(StoreError::from)),
            None => Err(f),
        }
    }

    /// Runs `f` with a connection on the blocking pool, where waiting for the disk or for
    /// another environment's lock blocks no request.
    async fn with_connection<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let pool = Arc::clone(&self.pool);
        on_blocking_pool(move || f(&mut pool.acquire()).map_err(StoreError::from)).await
    }

    /// Runs a write with a connection on the blocking pool, unless the store is retired.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let pool = Arc::clone(&self.pool);
        on_blocking_pool(move || {
            // Held until the write is done, so that `retire` waits for it.
            let retired = pool.retired.read().unwrap_or_else(PoisonError::into_inner);
            if *retired {
                return Err(StoreError::new(
                    ErrorKind::Sqlite(SqliteProblem::Retired),
                    "the local backup was replaced while this write waited".to_string(),
                ));
            }
            f(&mut pool.acquire()).map_err(StoreError::from)
        })
        .await
    }

    /// Refuses every write from now on, once the writes already under way are done: the file
    /// is about to be copied and replaced, and a write it took after the copy would be lost
    /// with it. A refused write fails as [`SqliteProblem::Retired`], to be made again on the
    /// store that replaces this one. Blocks for as long as those writes take.
    pub fn retire(&self) {
        *self
            .pool
            .retired
            .write()
            .unwrap_or_else(PoisonError::into_inner) = true;
    }

    /// A cheap query that proves the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.read(|conn| {
            conn.query_row("SELECT 1 FROM calls LIMIT 1", [], |_| Ok(()))
                .optional()
                .map(|_| ())
        })
        .await
    }

    /// How many writes wait to be replayed to Redshift.
    pub async fn pending_count(&self) -> Result<u64, StoreError> {
        self.count("SELECT COUNT(*) FROM pending_sync").await
    }

    /// How many journaled writes Redshift refused and that were set aside.
    pub async fn rejected_count(&self) -> Result<u64, StoreError> {
        self.count("SELECT COUNT(*) FROM rejected_sync").await
    }

    async fn count(&self, sql: &'static str) -> Result<u64, StoreError> {
        self.read(move |conn| conn.query_row(sql, [], |r| r.get::<_, i64>(0)))
            .await
            .map(|n| n.max(0) as u64)
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

    /// Takes the replay lease for `holder` until `until` (Unix milliseconds), unless another
    /// holder has it and it has not expired: then `Err` with that expiry. One replay at a time
    /// across every environment on the file; a lease whose holder was frozen or killed expires
    /// on its own.
    pub async fn take_lease(
        &self,
        holder: String,
        until: i64,
    ) -> Result<Result<(), i64>, StoreError> {
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let current: Option<(String, i64)> = tx
                .query_row(
                    "SELECT holder, expires_at FROM replay_lease WHERE id = 1",
                    [],
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
                "INSERT OR REPLACE INTO replay_lease (id, holder, expires_at) VALUES (1, :holder, :until)",
                named_params! { ":holder": holder, ":until": until },
            )?;
            tx.commit()?;
            Ok(Ok(()))
        })
        .await
    }

    /// Gives the lease back, if `holder` still has it.
    pub async fn release_lease(&self, holder: String) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.execute(
                "DELETE FROM replay_lease WHERE id = 1 AND holder = :holder",
                named_params! { ":holder": holder },
            )
            .map(drop)
        })
        .await
    }

    /// A journaled write that was set aside, by id.
    pub async fn set_aside_call(&self, id: &str) -> Result<Option<Call>, StoreError> {
        let id = id.to_string();
        let sql = format!(
            "SELECT {cols} FROM calls c JOIN rejected_sync r ON r.id = c.id WHERE c.id = :id",
            cols = qualified_columns("c")
        );
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let found = stmt
                .query_row(named_params! { ":id": id }, |row| Ok(call_from_row(row)))
                .optional()?;
            Ok(found.and_then(readable))
        })
        .await
    }

    /// Moves a journaled write that Redshift refuses out of the journal, keeping the call and
    /// the reason, so that the rest of the journal replays.
    pub async fn set_aside(&self, entry: i64, reason: String) -> Result<(), StoreError> {
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO rejected_sync (id, reason, rejected_at) \
                 SELECT id, :reason, :now FROM pending_sync WHERE rowid = :entry",
            )?
            .execute(named_params! { ":reason": reason, ":now": to_db_time(&Utc::now()), ":entry": entry })?;
            tx.prepare_cached("DELETE FROM pending_sync WHERE rowid = :entry")?
                .execute(named_params! { ":entry": entry })?;
            tx.commit()
        })
        .await
    }

    /// The same calls as [`CallStore::history`], written as the JSON array the API sends: each
    /// call's stored answer copied out, or, for a call without one, written straight from its
    /// columns (no call is built, no timestamp parsed that is stored in the canonical form).
    /// Unreadable rows are skipped in the same way.
    pub async fn history_json(&self, query: &HistoryQuery) -> Result<CallsJson, StoreError> {
        let query = query.clone();
        self.read(move |conn| {
            let mut json = CallsJson::with_room_for(query.limit as usize);
            let mut by_rowid = None;
            each_history_row(conn, &query, "answer, rowid", |row| {
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
            })?;
            Ok(json)
        })
        .await
    }

    /// Keeps the local copy in step with what Redshift served, so that a later fallback in this
    /// environment answers with recent data. Rows waiting for replay are left as they are, and
    /// rows already as Redshift has them are not written again (a read then writes nothing).
    pub async fn refresh(&self, calls: Arc<[Call]>) -> Result<(), StoreError> {
        if calls.is_empty() {
            return Ok(());
        }
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let sql = format!(
                    "INSERT INTO calls ({COLUMNS}, answer) VALUES (:id, :contact_name, :account_name, \
                     :started_at, :duration_seconds, :outcome, :notes, :created_at, :answer) \
                     ON CONFLICT (id) DO UPDATE SET contact_name = excluded.contact_name, \
                     account_name = excluded.account_name, started_at = excluded.started_at, \
                     duration_seconds = excluded.duration_seconds, outcome = excluded.outcome, \
                     notes = excluded.notes, created_at = excluded.created_at, answer = excluded.answer \
                     WHERE calls.id NOT IN (SELECT id FROM pending_sync) \
                     AND (calls.contact_name, calls.account_name, calls.started_at, \
                          calls.duration_seconds, calls.outcome, calls.notes, calls.created_at, \
                          calls.answer) \
                     IS NOT (excluded.contact_name, excluded.account_name, excluded.started_at, \
                          excluded.duration_seconds, excluded.outcome, excluded.notes, \
                          excluded.created_at, excluded.answer)"
                );
                let mut stmt = tx.prepare_cached(&sql)?;
                for call in calls.iter() {
                    execute_insert(&mut stmt, call)?;
                }
            }
            tx.commit()
        })
        .await
    }
}

impl CallStore for SqliteStore {
    async fn history(&self, query: &HistoryQuery) -> Result<Vec<Call>, StoreError> {
        let query = query.clone();
        self.read(move |conn| {
            let mut calls = Vec::with_capacity(query.limit as usize);
            each_history_row(conn, &query, COLUMNS, |row| {
                if let Some(call) = readable(call_from_row(row)) {
                    calls.push(call);
                }
                Ok(())
            })?;
            Ok(calls)
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<Call>, StoreError> {
        let id = id.to_string();
        self.read(move |conn| {
            let mut stmt =
                conn.prepare_cached(&format!("SELECT {COLUMNS} FROM calls WHERE id = :id"))?;
            let found = stmt
                .query_row(named_params! { ":id": id }, |row| Ok(call_from_row(row)))
                .optional()?;
            Ok(found.and_then(readable))
        })
        .await
    }

    async fn insert(&self, call: &Call) -> Result<InsertOutcome, StoreError> {
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
                    "INSERT INTO calls ({COLUMNS}, answer) VALUES (:id, :contact_name, :account_name, \
                     :started_at, :duration_seconds, :outcome, :notes, :created_at, :answer)"
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
}

/// Runs `job` on tokio's blocking pool.
async fn on_blocking_pool<T: Send + 'static>(
    job: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(job).await.map_err(|e| {
        StoreError::new(
            ErrorKind::Sqlite(SqliteProblem::Other),
            format!("query task failed: {e}"),
        )
    })?
}

/// Runs the history query for `columns` and hands each row to `each`, newest first.
fn each_history_row(
    conn: &Connection,
    query: &HistoryQuery,
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
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params.as_slice())?;
    while let Some(row) = rows.next()? {
        // One unreadable row must not make the whole answer unavailable: `each` skips it.
        each(row)?;
    }
    Ok(())
}

fn open_connection(path: &Path, options: SqliteOptions) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // WAL lets readers and the writer proceed together, but only on one machine: a shared file
    // takes a rollback journal. FULL sync because an acknowledged write must survive the process.
    let journal_mode = if options.shared { "DELETE" } else { "WAL" };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = {journal_mode}; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;"
    ))?;
    Ok(conn)
}

/// A connection with the schema in place.
fn open_prepared(
    path: &Path,
    options: SqliteOptions,
    seed: &str,
) -> Result<Connection, StoreError> {
    let conn = open_connection(path, options)?;
    prepare_schema(&conn, seed)?;
    Ok(conn)
}

/// Creates a shared database when none exists: built under a name of its own, then linked into
/// place, which fails when another environment got there first (its file is then used). Two
/// cold starts at once can never both create it, nor see one half made.
fn create_shared_if_missing(path: &Path, seed: &str) -> Result<(), StoreError> {
    if path.exists() {
        return Ok(());
    }
    let cannot = |e: std::io::Error| {
        StoreError::new(ErrorKind::Sqlite(SqliteProblem::CannotOpen), e.to_string())
    };
    let building = path.with_extension(format!("creating-{}", uuid::Uuid::new_v4().simple()));
    let shared = SqliteOptions {
        journal_writes: false,
        shared: true,
    };
    let built = open_prepared(&building, shared, seed).map(drop);
    let linked = built.and_then(|()| match std::fs::hard_link(&building, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(cannot(e)),
    });
    let _ = std::fs::remove_file(&building);
    let _ = std::fs::remove_file(with_suffix(&building, "-journal"));
    linked
}

/// [`SqliteStore::merge_into`], with the other database attached as `fresh`: the calls it
/// lacks, and for those the journal entries (a call it holds is left as it is, with its own
/// journal, which knows what was replayed since).
fn merge_into_attached(conn: &Connection) -> rusqlite::Result<usize> {
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    // The journal before the calls it names, checked at commit.
    tx.execute_batch("PRAGMA defer_foreign_keys = ON")?;
    tx.execute(
        "INSERT OR IGNORE INTO fresh.pending_sync (id, queued_at) \
         SELECT id, queued_at FROM main.pending_sync WHERE id NOT IN (SELECT id FROM fresh.calls)",
        [],
    )?;
    let calls = tx.execute(
        &format!(
            "INSERT OR IGNORE INTO fresh.calls ({COLUMNS}, answer) SELECT {COLUMNS}, answer FROM main.calls"
        ),
        [],
    )?;
    tx.commit()?;
    Ok(calls)
}

/// Applies the schema and, on a new database, the sample data, in one transaction, then writes
/// the answers of the calls that lack one. The schema's statements are idempotent, so an older
/// database gains what it lacks and keeps its rows.
fn prepare_schema(conn: &Connection, seed: &str) -> Result<(), StoreError> {
    if user_version(conn)? >= SCHEMA_VERSION {
        // Still prove the table is readable: a damaged file fails here.
        conn.query_row("SELECT COUNT(*) FROM calls", [], |r| r.get::<_, i64>(0))?;
    } else {
        // Read again inside the transaction: another environment sharing the file may have
        // just prepared it.
        let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
        let version = user_version(&tx)?;
        if version < SCHEMA_VERSION {
            let seed = if version == 0 { seed } else { "" };
            // A table from before answers were kept gains the column before the schema
            // indexes it.
            let add_answer = if lacks_answer_column(&tx)? {
                "ALTER TABLE calls ADD COLUMN answer TEXT;"
            } else {
                ""
            };
            tx.execute_batch(&format!(
                "{add_answer} {SCHEMA} {seed} PRAGMA user_version = {SCHEMA_VERSION};"
            ))?;
            // The first batch of answers with the schema: all of the sample's, without a
            // transaction (and its syncs) of their own.
            write_answers(&tx, &missing_answers(&tx, i64::MIN)?.answers)?;
        }
        tx.commit()?;
    }
    write_missing_answers(conn);
    Ok(())
}

fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// True when a `calls` table is there without the `answer` column.
fn lacks_answer_column(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('calls')) \
         AND NOT EXISTS (SELECT 1 FROM pragma_table_info('calls') WHERE name = 'answer')",
        [],
        |r| r.get(0),
    )
}

/// How many answers one transaction writes when they are filled in: short transactions, so
/// that a large file brought up to date never holds up the other environments sharing it for
/// longer than one batch takes.
const ANSWER_BATCH: usize = 500;

/// Writes the answers of the calls that lack one (added by hand, by an older version of the
/// service sharing the file, or from before answers were kept), a batch at a time. Only a
/// saving: when it cannot be done now (a read-only file, a busy one), those calls are written
/// from their columns meanwhile.
fn write_missing_answers(conn: &Connection) {
    let mut after = i64::MIN;
    let filled = loop {
        match fill_answers_after(conn, after) {
            Ok(Some(last)) => after = last,
            Ok(None) => break Ok(()),
            Err(err) => break Err(err),
        }
    };
    if let Err(err) = filled {
        tracing::warn!(error = %err, "Could not write the answers of calls added without one; they are written from their columns");
    }
}

/// Writes one batch of answers, of the calls after `after` (by rowid) that lack one. The rowid
/// the batch ended at, or `None` when there were no more.
fn fill_answers_after(conn: &Connection, after: i64) -> rusqlite::Result<Option<i64>> {
    // Looked for before taking the write lock, which a shared file then rarely needs (rows that
    // cannot be read back get no answer, and need none).
    let batch = missing_answers(conn, after)?;
    if !batch.answers.is_empty() {
        let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
        // Written again under the lock, from the rows as they are now.
        write_answers(&tx, &missing_answers(&tx, after)?.answers)?;
        tx.commit()?;
    }
    Ok(batch.last_id)
}

/// Calls without an answer, at most a batch of them.
struct MissingAnswers {
    /// The readable ones' answers, by rowid (rows that cannot be read back are left as they
    /// are: history skips them).
    answers: Vec<(i64, String)>,
    /// The last rowid looked at, readable or not.
    last_id: Option<i64>,
}

/// The calls after `after` (by rowid) that lack an answer, at most [`ANSWER_BATCH`].
fn missing_answers(conn: &Connection, after: i64) -> rusqlite::Result<MissingAnswers> {
    // `+rowid`: found through the index of calls without an answer (nearly always empty), not by
    // scanning the table from `after` on.
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT rowid, {COLUMNS} FROM calls \
         WHERE answer IS NULL AND +rowid > :after ORDER BY +rowid LIMIT {ANSWER_BATCH}"
    ))?;
    let mut rows = stmt.query(named_params! { ":after": after })?;
    let mut batch = MissingAnswers {
        answers: Vec::new(),
        last_id: None,
    };
    while let Some(row) = rows.next()? {
        let rowid = row.get(0)?;
        if let Some(answer) = stored_call(row, 1).ok().as_ref().and_then(call_json) {
            batch.answers.push((rowid, answer));
        }
        batch.last_id = Some(rowid);
    }
    Ok(batch)
}

fn write_answers(conn: &Connection, answers: &[(i64, String)]) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached("UPDATE calls SET answer = :answer WHERE rowid = :rowid")?;
    for (rowid, answer) in answers {
        stmt.execute(named_params! { ":answer": answer, ":rowid": rowid })?;
    }
    Ok(())
}

/// Moves a damaged database and its WAL files out of the way, keeping them for inspection.
fn move_aside(path: &Path, aside: &Path) -> Result<(), StoreError> {
    let moved = |from: &Path, to: &Path| match std::fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::new(
            ErrorKind::Sqlite(SqliteProblem::CannotOpen),
            format!("moving {} aside: {e}", from.display()),
        )),
    };
    moved(path, aside)?;
    for suffix in ["-wal", "-shm"] {
        moved(&with_suffix(path, suffix), &with_suffix(aside, suffix))?;
    }
    Ok(())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Writes `call` with `stmt`, whose named parameters are the columns and `:answer`. The answer
/// is written from the timestamps' stored text, so that it is what history would write from
/// the columns.
fn execute_insert(
    stmt: &mut rusqlite::CachedStatement<'_>,
    call: &Call,
) -> rusqlite::Result<usize> {
    let started_at = to_db_time(&call.started_at);
    let created_at = to_db_time(&call.created_at);
    let answer = stored_timestamp(&started_at)
        .zip(stored_timestamp(&created_at))
        .and_then(|(started_at, created_at)| {
            call_json(&CallFields {
                started_at,
                created_at,
                ..CallFields::from(call)
            })
        });
    stmt.execute(named_params! {
        ":id": call.id,
        ":contact_name": call.contact_name,
        ":account_name": call.account_name,
        ":started_at": started_at,
        ":duration_seconds": call.duration_seconds,
        ":outcome": call.outcome,
        ":notes": call.notes,
        ":created_at": created_at,
        ":answer": answer,
    })
}

/// Stored timestamp text as history reads it (see [`stored_time`]).
fn stored_timestamp(text: &str) -> Option<Timestamp<'_>> {
    match canonical_db_time(text.as_bytes()) {
        Some(canonical) => Some(Timestamp::Micros(canonical)),
        None => from_db_time(0, text).ok().map(Timestamp::Instant),
    }
}

fn qualified_columns(alias: &str) -> String {
    COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Fixed-width text, so that SQLite's text ordering is time ordering.
pub fn to_db_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn from_db_time(index: usize, text: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(
                index,
                rusqlite::types::Type::Text,
                Box::new(e),
            )
        })
}

/// A row of the `calls` columns, in order.
fn call_from_row(row: &Row<'_>) -> rusqlite::Result<Call> {
    call_from_columns(row, 0)
}

/// The call in the eight columns from `first` on.
fn call_from_columns(row: &Row<'_>, first: usize) -> rusqlite::Result<Call> {
    let fields = stored_call(row, first)?;
    let owned = |text: Text<'_>| text.to_owned_string();
    Ok(Call {
        id: owned(fields.id),
        contact_name: owned(fields.contact_name),
        account_name: fields.account_name.map(owned),
        started_at: instant(first + 3, fields.started_at)?,
        duration_seconds: fields.duration_seconds,
        outcome: fields.outcome.map(owned),
        notes: fields.notes.map(owned),
        created_at: instant(first + 7, fields.created_at)?,
    })
}

/// The eight columns from `first` on, read in place and checked: the rule for which stored rows
/// are calls, whether they are then copied into a [`Call`] or written out as JSON.
#[inline]
fn stored_call<'r>(row: &'r Row<'_>, first: usize) -> rusqlite::Result<CallFields<'r>> {
    Ok(CallFields {
        id: column(row, first, text)?,
        contact_name: column(row, first + 1, text)?,
        account_name: column(row, first + 2, text_or_null)?,
        started_at: stored_time(row, first + 3)?,
        duration_seconds: column(row, first + 4, ValueRef::as_i64_or_null)?,
        outcome: column(row, first + 5, text_or_null)?,
        notes: column(row, first + 6, text_or_null)?,
        created_at: stored_time(row, first + 7)?,
    })
}

/// Text, UTF-8: what `String` takes from a column.
#[inline]
fn text<'r>(value: &ValueRef<'r>) -> Result<Text<'r>, FromSqlError> {
    match *value {
        ValueRef::Text(bytes) => Ok(Text::checked(bytes)?),
        _ => Err(FromSqlError::InvalidType),
    }
}

#[inline]
fn text_or_null<'r>(value: &ValueRef<'r>) -> Result<Option<Text<'r>>, FromSqlError> {
    match value {
        ValueRef::Null => Ok(None),
        _ => text(value).map(Some),
    }
}

/// One column, read in place by `read`, with the errors `Row::get` gives for the same types
/// (text must be UTF-8 text, a number an integer; null only where `read` takes it).
#[inline]
fn column<'r, T>(
    row: &'r Row<'_>,
    index: usize,
    read: impl FnOnce(&ValueRef<'r>) -> Result<T, FromSqlError>,
) -> rusqlite::Result<T> {
    let value = row.get_ref(index)?;
    read(&value).map_err(|err| match err {
        FromSqlError::InvalidType => rusqlite::Error::InvalidColumnType(
            index,
            row.as_ref()
                .column_name(index)
                .unwrap_or_default()
                .to_string(),
            value.data_type(),
        ),
        FromSqlError::Utf8Error(err) => rusqlite::Error::Utf8Error(index, err),
        other => {
            rusqlite::Error::FromSqlConversionFailure(index, value.data_type(), Box::new(other))
        }
    })
}

/// A stored timestamp: the canonical text [`to_db_time`] writes is checked in place; any other
/// RFC 3339 text (stored by hand or by an older version) is parsed.
#[inline]
fn stored_time<'r>(row: &'r Row<'_>, index: usize) -> rusqlite::Result<Timestamp<'r>> {
    if let ValueRef::Text(bytes) = row.get_ref(index)? {
        if let Some(canonical) = canonical_db_time(bytes) {
            return Ok(Timestamp::Micros(canonical));
        }
    }
    let text = column(row, index, ValueRef::as_str)?;
    from_db_time(index, text).map(Timestamp::Instant)
}

fn instant(index: usize, t: Timestamp<'_>) -> rusqlite::Result<DateTime<Utc>> {
    match t {
        // Canonical text is ASCII.
        Timestamp::Micros(text) => from_db_time(index, &String::from_utf8_lossy(text.as_slice())),
        Timestamp::Instant(t) => Ok(t),
    }
}

/// The canonical stored form; `d` stands for a digit, every other byte must be itself.
const DB_TIME_FORM: &[u8; MICROS_TEXT_LEN] = b"dddd-dd-ddTdd:dd:dd.ddddddZ";

/// The form as four words of eight bytes, so that a timestamp is checked in a few operations.
const DB_TIME_WORDS: [FormWord; 4] = [
    FormWord::of(0),
    FormWord::of(8),
    FormWord::of(16),
    FormWord::of(MICROS_TEXT_LEN - 8),
];

/// Eight bytes of [`DB_TIME_FORM`] from `at`: which are digits, and what the others must be.
struct FormWord {
    at: usize,
    /// 0xFF where a digit belongs.
    digits: u64,
    /// The other bytes as they must be (0 where a digit belongs).
    fixed: u64,
}

impl FormWord {
    const fn of(at: usize) -> FormWord {
        let mut digits = 0u64;
        let mut fixed = 0u64;
        let mut i = 0;
        while i < 8 {
            let byte = DB_TIME_FORM[at + i];
            if byte == b'd' {
                digits |= 0xFF << (8 * i);
            } else {
                fixed |= (byte as u64) << (8 * i);
            }
            i += 1;
        }
        FormWord { at, digits, fixed }
    }

    /// True when the eight bytes of `word` (little-endian) are in this part of the form.
    fn matches(&self, word: u64) -> bool {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
        // A digit byte minus '0' is 0..=9; bytes outside the digits' places become 0 here.
        let offsets = (word ^ (ONES * u64::from(b'0'))) & self.digits;
        // Adding 127 - 9 sets the high bit of a byte above 9 (or keeps it, `| offsets`); only a
        // byte whose high bit was set can carry into the next, and it already answers yes. So:
        // exactly "some byte is above 9".
        let above_nine = (offsets.wrapping_add(ONES * (127 - 9)) | offsets) & HIGH_BITS;
        above_nine == 0 && word & !self.digits == self.fixed
    }
}

/// The text when it is `YYYY-MM-DDTHH:MM:SS.ffffffZ` naming a real instant (no 30th of
/// February, no hour 24, no leap second): exactly the text that chrono parses to an instant
/// whose RFC 3339 form is this text with its fraction shortened.
#[inline]
fn canonical_db_time(text: &[u8]) -> Option<&[u8; MICROS_TEXT_LEN]> {
    let b = <&[u8; MICROS_TEXT_LEN]>::try_from(text).ok()?;
    // The form, eight bytes at a time (the last word overlaps the third).
    let word = |at: usize| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&b[at..at + 8]);
        u64::from_le_bytes(bytes)
    };
    let in_form = DB_TIME_WORDS
        .iter()
        .fold(true, |ok, form| ok & form.matches(word(form.at)));
    if !in_form {
        return None;
    }
    let number = |from: usize, to: usize| {
        b[from..to]
            .iter()
            .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'))
    };
    let (year, month, day) = (number(0, 4), number(5, 7), number(8, 10));
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => return None,
    };
    let valid = (1..=days_in_month).contains(&day)
        && number(11, 13) < 24
        && number(14, 16) < 60
        && number(17, 19) < 60;
    valid.then_some(b)
}

/// The call, or `None` (logged) for a stored row that cannot be read back: written by hand or
/// by an older version, it is skipped rather than failing the whole answer.
fn readable<T>(decoded: rusqlite::Result<T>) -> Option<T> {
    match decoded {
        Ok(call) => Some(call),
        Err(err) => {
            skipped(&err);
            None
        }
    }
}

fn skipped(err: &rusqlite::Error) {
    tracing::warn!(error = %err, "Skipped a row of the local backup that cannot be read");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Retiring waits for the writes under way, so that a copy taken next holds them, and
    /// refuses every later write; reads still answer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retiring_waits_for_writes_under_way_and_refuses_later_ones() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().expect("temporary folder");
        let store =
            SqliteStore::open(&dir.path().join("r.db"), SqliteOptions::default()).expect("open");
        let (started, done) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let slow_write = tokio::spawn({
            let (store, started, done) = (store.clone(), started.clone(), done.clone());
            async move {
                store
                    .write(move |conn| {
                        started.store(true, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(200));
                        conn.execute("DELETE FROM calls WHERE id = 'none'", [])?;
                        done.store(true, Ordering::SeqCst);
                        Ok(())
                    })
                    .await
            }
        });
        while !started.load(Ordering::SeqCst) {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let retiring = store.clone();
        tokio::task::spawn_blocking(move || retiring.retire())
            .await
            .expect("retired");
        assert!(
            done.load(Ordering::SeqCst),
            "retire returned before the write was done"
        );
        slow_write
            .await
            .expect("task")
            .expect("the write under way is made");

        let refused = store.write(|conn| conn.execute("DELETE FROM calls", []));
        let err = refused.await.expect_err("a write after retiring");
        assert_eq!(err.kind, ErrorKind::Sqlite(SqliteProblem::Retired));
        assert_eq!(store.pending_count().await.expect("reads answer"), 0);
        let history = store.history(&HistoryQuery::default()).await;
        assert_eq!(history.expect("history").len(), 15);
    }

    /// The check that lets canonical text skip parsing must take no text chrono refuses, and
    /// only text that is exactly how [`to_db_time`] writes the instant chrono reads from it.
    #[test]
    fn canonical_text_is_text_chrono_reads_back_the_same() {
        let mut canonical = 0;
        for year in [0, 1, 4, 100, 400, 1900, 2000, 2023, 2024, 9999] {
            for month in 0..=13 {
                for day in [0, 1, 28, 29, 30, 31, 32] {
                    for (hour, minute, second) in [
                        (0, 0, 0),
                        (23, 59, 59),
                        (24, 0, 0),
                        (0, 60, 0),
                        (23, 59, 60),
                    ] {
                        for fraction in ["000000", "120000", "000001", "999999"] {
                            let text = format!(
                                "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{fraction}Z"
                            );
                            if canonical_db_time(text.as_bytes()).is_none() {
                                continue;
                            }
                            canonical += 1;
                            let read = from_db_time(0, &text)
                                .unwrap_or_else(|err| panic!("{text}: {err}"));
                            assert_eq!(to_db_time(&read), text);
                        }
                    }
                }
            }
        }
        // Each year has 51 valid dates among those days outside February; five of the years are
        // leap years (29 February too). Two valid times, four fractions.
        assert_eq!(canonical, (10 * 51 + 5 * 3 + 5 * 2) * 2 * 4);
        for other in [
            "2024-01-01T10:00:00Z",
            "2024-01-01T10:00:00.000000+00:00",
            "2024-01-01t10:00:00.000000Z",
            "2024-01-01T10:00:00.000000z",
            "2024-01-01 10:00:00.000000Z",
            "2024-01-01T10:00:00.0000000Z",
            "2024-1-01T10:00:00.000000Z",
            "+024-01-01T10:00:00.000000Z",
            "2024-01-01T10:00:00,000000Z",
            "２024-01-01T10:00:00.000000Z",
        ] {
            assert!(canonical_db_time(other.as_bytes()).is_none(), "{other}");
        }
    }

    /// Every byte of a canonical timestamp replaced by every byte value: the quick check says
    /// canonical exactly when chrono reads the text back to the same text (leap seconds aside,
    /// which take the slow way).
    #[test]
    fn the_quick_check_agrees_with_chrono_byte_for_byte() {
        let reads_back = |text: &[u8]| {
            std::str::from_utf8(text)
                .ok()
                .and_then(|text| from_db_time(0, text).ok())
                .is_some_and(|read| to_db_time(&read).as_bytes() == text)
        };
        for valid in [
            *b"2024-02-29T23:59:59.123456Z",
            *b"0000-01-01T00:00:00.000000Z",
            *b"9999-12-31T19:09:09.999999Z",
        ] {
            for at in 0..MICROS_TEXT_LEN {
                for byte in 0..=255u8 {
                    let mut text = valid;
                    text[at] = byte;
                    let leap_second = text[17..19] == *b"60";
                    let quick = canonical_db_time(&text).is_some();
                    assert!(
                        quick == reads_back(&text) || (leap_second && !quick),
                        "{}",
                        String::from_utf8_lossy(&text)
                    );
                }
            }
        }
    }
}
