//! The local backup and replica: a SQLite file inside the function. While Redshift is healthy it
//! is a replica of the warehouse's recent calls, kept fresh by pulls; while Redshift is not, it
//! answers and journals the writes it takes, to be replayed.
//!
//! - [`schema`]: the schema, created and migrated in place; the sample data or snapshot a new
//!   file starts with.
//! - [`rows`]: how a call is stored in a row, and read back.
//! - [`calls`]: history, one call, inserts, and calls copied in from Redshift.
//! - [`journal`]: writes waiting for Redshift, the ones set aside, and leases.
//! - [`replica`]: the replica's state (last pull, window) and what a pull brings in.
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

mod calls;
mod journal;
mod replica;
mod rows;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use rusqlite::{Connection, OptionalExtension};

pub use self::calls::{KnownCalls, LocalHistory};
pub use self::journal::{Lease, PendingBatch, SetAside, SetAsideCounts};
pub use self::replica::{AppliedPull, ReplicaState};
pub use self::rows::to_db_time;
use self::schema::{
    create_shared_if_missing, merge_into_attached, move_aside, open_connection, open_prepared,
};
use super::error::{ErrorKind, SqliteProblem};
use super::StoreError;

/// What a new file starts with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Seed {
    /// The sample calls (`sql/sqlite/seed.sql`): for local demos, never for a deployed backup.
    #[default]
    Sample,
    /// The snapshot of the warehouse shipped with the function (`sql/sqlite/snapshot.sql`, made
    /// by `make snapshot`; empty until then): what a deployed backup starts with before its
    /// first pull.
    Snapshot,
}

impl Seed {
    fn sql(self) -> &'static str {
        match self {
            Seed::Sample => include_str!("../../../sql/sqlite/seed.sql"),
            Seed::Snapshot => include_str!("../../../sql/sqlite/snapshot.sql"),
        }
    }
}

/// How a database file is used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Every insert is also journaled for replay (Redshift is configured).
    pub journal_writes: bool,
    /// Several environments use the file at once (EFS).
    pub shared: bool,
    /// What a new file starts with.
    pub seed: Seed,
}
const POOL_SIZE: usize = 2;
pub(super) const COLUMNS: &str =
    "id, contact_name, account_name, started_at, duration_seconds, outcome, notes, created_at";

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
        Self::open_with(path, options, options.seed.sql())
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

    /// How the file is used.
    pub fn options(&self) -> SqliteOptions {
        self.options
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::HistoryQuery;

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
}
