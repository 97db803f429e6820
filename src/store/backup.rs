//! The local backup file. It is opened at start; when that fails, or when the file breaks under
//! a running environment (damaged, overwritten), it is opened again on a later request rather
//! than leaving the environment without a backup for the rest of its life.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::error::{ErrorKind, SqliteProblem};
use super::sqlite::SqliteStore;
use super::StoreError;

/// How long a backup that could not be opened waits before the next try.
pub const REOPEN_AFTER: Duration = Duration::from_secs(1);

pub struct Backup {
    path: PathBuf,
    journal_writes: bool,
    state: Mutex<State>,
}

enum State {
    Open(SqliteStore),
    Closed {
        error: StoreError,
        retry_at: Instant,
    },
}

impl Backup {
    /// Opens the file at `path` (creating it with the sample data when missing). A failure is
    /// logged and kept; the next try comes with a request after [`REOPEN_AFTER`].
    pub fn open(path: &Path, journal_writes: bool) -> Backup {
        let state = match SqliteStore::open(path, journal_writes) {
            Ok(store) => State::Open(store),
            Err(error) => closed(path, error),
        };
        Backup {
            path: path.to_path_buf(),
            journal_writes,
            state: Mutex::new(state),
        }
    }

    /// A backup around a store already open (tests, tools).
    pub fn from_store(store: SqliteStore, journal_writes: bool) -> Backup {
        Backup {
            path: store.path().to_path_buf(),
            journal_writes,
            state: Mutex::new(State::Open(store)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open store, or why there is none. Tries to open the file again once the retry
    /// time has come.
    pub fn store(&self) -> Result<SqliteStore, StoreError> {
        let mut state = self.lock();
        match &*state {
            State::Open(store) => return Ok(store.clone()),
            State::Closed { error, retry_at } if Instant::now() < *retry_at => {
                return Err(error.clone())
            }
            State::Closed { .. } => {}
        }
        match SqliteStore::open(&self.path, self.journal_writes) {
            Ok(store) => {
                tracing::info!(path = %self.path.display(), "💾 Local SQLite backup opened again");
                *state = State::Open(store.clone());
                Ok(store)
            }
            Err(error) => {
                *state = closed(&self.path, error.clone());
                Err(error)
            }
        }
    }

    /// Tells the backup that a query failed. A damaged file closes the store, so that the next
    /// request opens it again (moving the damaged file aside); other failures (busy, disk full,
    /// read-only) leave the file as it is: they pass, or are reported as they are.
    pub fn query_failed(&self, error: &StoreError) {
        if error.kind != ErrorKind::Sqlite(SqliteProblem::Corrupt) {
            return;
        }
        let mut state = self.lock();
        if matches!(*state, State::Open(_)) {
            tracing::error!(path = %self.path.display(), error = %error.detail, "❌ Local SQLite backup is damaged; it will be recreated");
            *state = State::Closed {
                error: error.clone(),
                retry_at: Instant::now(),
            };
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is replaced in single steps; a panic elsewhere cannot leave it torn.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn closed(path: &Path, error: StoreError) -> State {
    tracing::error!(path = %path.display(), error = %error.detail, "❌ Local SQLite could not be opened: {error}; trying again in {} s", REOPEN_AFTER.as_secs());
    State::Closed {
        error,
        retry_at: Instant::now() + REOPEN_AFTER,
    }
}
