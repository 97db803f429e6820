//! The local backup: a SQLite file that ships with the function (schema and sample data are
//! compiled in) and is materialised on a cold start when it is missing or unreadable.
//!
//! rusqlite is synchronous, so every query runs on tokio's blocking pool; a small pool of
//! connections lets reads on both cores proceed at once (WAL mode).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{named_params, Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior};

use super::{Call, CallStore, HistoryQuery, InsertOutcome, StoreError};

const SCHEMA: &str = include_str!("../../sql/sqlite/schema.sql");
const SEED: &str = include_str!("../../sql/sqlite/seed.sql");
/// Marks a database whose schema and sample data are in place.
const SCHEMA_VERSION: i64 = 1;
const POOL_SIZE: usize = 2;
const COLUMNS: &str =
    "id, contact_name, account_name, started_at, duration_seconds, outcome, notes, created_at";

#[derive(Clone)]
pub struct SqliteStore {
    pool: Arc<Pool>,
    /// When true (Redshift is configured), every insert is also journaled for replay.
    journal_writes: bool,
}

struct Pool {
    path: PathBuf,
    connections: Vec<Mutex<Connection>>,
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
    /// Opens the database at `path`, creating it with schema and sample data when missing, and
    /// moving an unreadable file aside (kept for inspection) before creating a fresh one.
    pub fn open(path: &Path, journal_writes: bool) -> Result<SqliteStore, StoreError> {
        Self::open_with_seed(path, journal_writes, SEED)
    }

    /// As [`SqliteStore::open`], with other sample data for a new database (a snapshot of
    /// Redshift, say) than the one compiled in.
    pub fn open_with_seed(
        path: &Path,
        journal_writes: bool,
        seed: &str,
    ) -> Result<SqliteStore, StoreError> {
        let first = match open_connection(path)
            .and_then(|conn| prepare_schema(&conn, seed).map(|_| conn))
        {
            Ok(conn) => conn,
            Err(err) if path.exists() => {
                let aside = path.with_extension("unreadable");
                tracing::warn!(path = %path.display(), error = %err, "SQLite database unreadable, recreating it");
                std::fs::rename(path, &aside).map_err(|e| StoreError::Sqlite(e.to_string()))?;
                let conn = open_connection(path)?;
                prepare_schema(&conn, seed)?;
                conn
            }
            Err(err) => return Err(err),
        };
        let mut connections = vec![Mutex::new(first)];
        for _ in 1..POOL_SIZE {
            connections.push(Mutex::new(open_connection(path)?));
        }
        Ok(SqliteStore {
            pool: Arc::new(Pool {
                path: path.to_path_buf(),
                connections,
            }),
            journal_writes,
        })
    }

    pub fn path(&self) -> &Path {
        &self.pool.path
    }

    /// Runs a read at once when a connection is free: reads take tens of microseconds and, in WAL
    /// mode, never wait for a writer, so handing them to the blocking pool would cost more than
    /// the query. With every connection busy, the read waits on the blocking pool instead.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
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
            Some(mut conn) => Ok(f(&mut conn).map_err(|e| StoreError::Sqlite(e.to_string()))),
            None => Err(f),
        }
    }

    /// Runs `f` with a connection on the blocking pool: writes, which wait for the disk.
    async fn with_connection<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let pool = Arc::clone(&self.pool);
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.acquire();
            f(&mut conn).map_err(|e| StoreError::Sqlite(e.to_string()))
        })
        .await
        .map_err(|e| StoreError::Sqlite(format!("query task failed: {e}")))?
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
        self.read(|conn| {
            conn.query_row("SELECT COUNT(*) FROM pending_sync", [], |r| {
                r.get::<_, i64>(0)
            })
        })
        .await
        .map(|n| n.max(0) as u64)
    }

    /// The oldest journaled writes, at most `limit`, in the order they were made.
    pub async fn pending_batch(&self, limit: usize) -> Result<Vec<Call>, StoreError> {
        let sql = format!(
            "SELECT {cols} FROM calls c JOIN pending_sync p ON p.id = c.id \
             ORDER BY p.queued_at, p.id LIMIT :limit",
            cols = qualified_columns("c")
        );
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(named_params! { ":limit": limit as i64 }, call_from_row)?;
            rows.collect()
        })
        .await
    }

    /// Removes replayed writes from the journal.
    pub async fn mark_synced(&self, ids: Vec<String>) -> Result<(), StoreError> {
        self.with_connection(move |conn| {
            // IMMEDIATE takes the write lock up front: upgrading a read transaction later fails
            // at once under concurrent writers instead of waiting.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut stmt = tx.prepare_cached("DELETE FROM pending_sync WHERE id = :id")?;
                for id in &ids {
                    stmt.execute(named_params! { ":id": id })?;
                }
            }
            tx.commit()
        })
        .await
    }

    /// Keeps the local copy in step with what Redshift served, so that a later fallback in this
    /// environment answers with recent data. Rows waiting for replay are left as they are.
    pub async fn refresh(&self, calls: Vec<Call>) -> Result<(), StoreError> {
        if calls.is_empty() {
            return Ok(());
        }
        self.with_connection(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let sql = format!(
                    "INSERT INTO calls ({COLUMNS}) VALUES (:id, :contact_name, :account_name, :started_at, \
                     :duration_seconds, :outcome, :notes, :created_at) \
                     ON CONFLICT (id) DO UPDATE SET contact_name = excluded.contact_name, \
                     account_name = excluded.account_name, started_at = excluded.started_at, \
                     duration_seconds = excluded.duration_seconds, outcome = excluded.outcome, \
                     notes = excluded.notes, created_at = excluded.created_at \
                     WHERE calls.id NOT IN (SELECT id FROM pending_sync)"
                );
                let mut stmt = tx.prepare_cached(&sql)?;
                for call in &calls {
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
            let mut sql = format!("SELECT {COLUMNS} FROM calls WHERE 1 = 1");
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
            sql.push_str(" ORDER BY started_at DESC, id DESC LIMIT :limit OFFSET :offset");
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
            let rows = stmt.query_map(params.as_slice(), call_from_row)?;
            rows.collect()
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<Call>, StoreError> {
        let id = id.to_string();
        self.read(move |conn| {
            let mut stmt =
                conn.prepare_cached(&format!("SELECT {COLUMNS} FROM calls WHERE id = :id"))?;
            stmt.query_row(named_params! { ":id": id }, call_from_row)
                .optional()
        })
        .await
    }

    async fn insert(&self, call: &Call) -> Result<InsertOutcome, StoreError> {
        let call = call.clone();
        let journal = self.journal_writes;
        self.with_connection(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let existing = tx
                .prepare_cached(&format!("SELECT {COLUMNS} FROM calls WHERE id = :id"))?
                .query_row(named_params! { ":id": call.id }, call_from_row)
                .optional()?;
            if let Some(existing) = existing {
                return Ok(InsertOutcome::AlreadyExists(existing));
            }
            {
                let mut stmt = tx.prepare_cached(&format!(
                    "INSERT INTO calls ({COLUMNS}) VALUES (:id, :contact_name, :account_name, :started_at, \
                     :duration_seconds, :outcome, :notes, :created_at)"
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

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn =
        Connection::open_with_flags(path, flags).map_err(|e| StoreError::Sqlite(e.to_string()))?;
    // WAL lets readers and the writer proceed together; FULL sync because an acknowledged
    // write must survive the process.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
    )
    .map_err(|e| StoreError::Sqlite(e.to_string()))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| StoreError::Sqlite(e.to_string()))?;
    Ok(conn)
}

/// Applies the schema and, on a new database, the sample data, in one transaction.
fn prepare_schema(conn: &Connection, seed: &str) -> Result<(), StoreError> {
    let run = || -> rusqlite::Result<()> {
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version >= SCHEMA_VERSION {
            // Still prove the table is readable: a damaged file fails here.
            conn.query_row("SELECT COUNT(*) FROM calls", [], |r| r.get::<_, i64>(0))?;
            return Ok(());
        }
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {SCHEMA} {seed} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
        ))
    };
    run().map_err(|e| StoreError::Sqlite(e.to_string()))
}

fn execute_insert(
    stmt: &mut rusqlite::CachedStatement<'_>,
    call: &Call,
) -> rusqlite::Result<usize> {
    stmt.execute(named_params! {
        ":id": call.id,
        ":contact_name": call.contact_name,
        ":account_name": call.account_name,
        ":started_at": to_db_time(&call.started_at),
        ":duration_seconds": call.duration_seconds,
        ":outcome": call.outcome,
        ":notes": call.notes,
        ":created_at": to_db_time(&call.created_at),
    })
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

fn call_from_row(row: &Row<'_>) -> rusqlite::Result<Call> {
    Ok(Call {
        id: row.get(0)?,
        contact_name: row.get(1)?,
        account_name: row.get(2)?,
        started_at: from_db_time(3, &row.get::<_, String>(3)?)?,
        duration_seconds: row.get(4)?,
        outcome: row.get(5)?,
        notes: row.get(6)?,
        created_at: from_db_time(7, &row.get::<_, String>(7)?)?,
    })
}
