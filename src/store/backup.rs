//! The local backup file, kept usable whatever happens to the disk under it.
//!
//! - It is opened at start; when that fails (a missing folder, a full disk) it is opened again
//!   on a later request, after [`REOPEN_AFTER`], rather than leaving the environment without a
//!   backup for the rest of its life.
//! - Before a write and for the status, the file at the path is checked to still be the one
//!   open: a file deleted or replaced under a running environment would otherwise take writes
//!   that vanish with the process.
//! - A file found deleted, replaced or damaged is recreated from what the open connection can
//!   still read (SQLite's `VACUUM INTO`: every call and the whole journal); only when even that
//!   fails does the new file start from the shipped sample data, and the log says what was lost.
//!   The old store is retired first ([`SqliteStore::retire`]): the copy waits for the writes
//!   under way, and a write that reaches the old store after that is refused, to be made again
//!   on the new one, so no acknowledged write is left behind in the old file.
//! - On a shared file another environment may repair it: its copy cannot wait for this one's
//!   writes, so whichever file ends up in place, this environment copies into it the calls (and
//!   journal entries) that only its old file holds ([`SqliteStore::merge_into`]).
//! - A write that fails for another reason (disk full, read-only file) is reported as it is:
//!   nothing is claimed stored, and `/db/status` says the backup takes no writes.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::error::{ErrorKind, SqliteProblem};
use super::sqlite::{SqliteOptions, SqliteStore};
use super::StoreError;

/// How long a backup that could not be opened waits before the next try.
pub const REOPEN_AFTER: Duration = Duration::from_secs(1);

pub struct Backup {
    path: PathBuf,
    options: SqliteOptions,
    state: Mutex<State>,
}

enum State {
    Open {
        store: SqliteStore,
        /// The file that was opened, to notice when the path names another one (or none).
        file: Option<OpenedFile>,
        /// The last write failed for this reason (disk full, read-only): reads still work.
        write_failure: Option<StoreError>,
    },
    Closed {
        error: StoreError,
        retry_at: Instant,
    },
}

/// Device and inode: which file a path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

fn file_id(path: &Path) -> Option<FileId> {
    std::fs::metadata(path).ok().map(|m| FileId {
        dev: m.dev(),
        ino: m.ino(),
    })
}

/// The database file that was opened, held open for as long as it is in use: its header is
/// read through this handle, and the handle is never closed while SQLite's connections use the
/// file (closing any descriptor of a file drops every POSIX lock the process holds on it,
/// SQLite's included).
struct OpenedFile {
    id: FileId,
    handle: std::fs::File,
}

impl OpenedFile {
    fn open(path: &Path) -> Option<OpenedFile> {
        let handle = std::fs::File::open(path).ok()?;
        let meta = handle.metadata().ok()?;
        Some(OpenedFile {
            id: FileId {
                dev: meta.dev(),
                ino: meta.ino(),
            },
            handle,
        })
    }

    /// What `path` names now, against this file. Two system calls and 16 bytes: cheap enough
    /// for every write.
    fn check(&self, path: &Path) -> FileCheck {
        use std::os::unix::fs::FileExt;
        let looks_like_database = |file: &std::fs::File| {
            let mut header = [0u8; 16];
            file.read_exact_at(&mut header, 0)
                .is_ok_and(|()| &header == SQLITE_HEADER)
        };
        match file_id(path) {
            Some(id) if id == self.id => match looks_like_database(&self.handle) {
                true => FileCheck::Intact,
                false => FileCheck::Broken,
            },
            Some(_) => match std::fs::File::open(path) {
                Ok(other) if looks_like_database(&other) => FileCheck::Replaced,
                _ => FileCheck::Broken,
            },
            None => FileCheck::Broken,
        }
    }
}

/// What the backup's path names, against the file that was opened.
enum FileCheck {
    /// The same file, still a database.
    Intact,
    /// Another file that is a database (on a shared file: another environment's repair).
    Replaced,
    /// Nothing, or the file opened, truncated or overwritten, or another file that is no
    /// database.
    Broken,
}

/// Every SQLite database file starts with these bytes.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// What the backup can do now, for `/db/status`.
#[derive(Clone, Debug)]
pub struct BackupHealth {
    /// Reads can be answered.
    pub readable: bool,
    /// Writes can be taken (as far as the last one tells).
    pub writable: bool,
    /// `Connected`, or the class of what is wrong.
    pub message: String,
}

impl Backup {
    /// Opens the file at `path` (creating it with the sample data when missing). A failure is
    /// logged and kept; the next try comes with a request after [`REOPEN_AFTER`].
    pub fn open(path: &Path, options: SqliteOptions) -> Backup {
        let state = match SqliteStore::open(path, options) {
            Ok(store) => opened_state(store),
            Err(error) => closed(path, error),
        };
        Backup {
            path: path.to_path_buf(),
            options,
            state: Mutex::new(state),
        }
    }

    /// Whether several environments share the file.
    pub fn shared(&self) -> bool {
        self.options.shared
    }

    /// The open store for a read, or why there is none. Tries to open the file again once the
    /// retry time has come. (A read from a file deleted under it still answers what this
    /// environment holds; writes and the status check the file first.)
    pub fn store(&self) -> Result<SqliteStore, StoreError> {
        let mut state = self.lock();
        self.current(&mut state)
    }

    /// The open store for a write: as [`Backup::store`], after making sure the path still names
    /// the file that is open and that it still looks like a database, recreating it when not.
    pub fn store_for_write(&self) -> Result<SqliteStore, StoreError> {
        let mut state = self.lock();
        if let State::Open {
            store,
            file: Some(opened),
            ..
        } = &*state
        {
            match opened.check(&self.path) {
                FileCheck::Intact => {}
                // Another environment sharing the file repaired it: its file is the backup now.
                FileCheck::Replaced if self.options.shared => {
                    tracing::info!(path = %self.path.display(), "💾 Local SQLite backup replaced by another environment; using it");
                    // Writes still holding the old file are made again on the new one, and
                    // what the old one took after the other environment copied it is kept.
                    store.retire();
                    self.merge(store);
                    *state = match SqliteStore::open(&self.path, self.options) {
                        Ok(store) => opened_state(store),
                        Err(error) => closed(&self.path, error),
                    };
                }
                FileCheck::Replaced | FileCheck::Broken => {
                    let store = store.clone();
                    *state = self.recreate(&store, "deleted, replaced, truncated or overwritten");
                }
            }
        }
        self.current(&mut state)
    }

    /// Tells the backup how a write went: a failure other than damage (disk full, read-only)
    /// is kept for the status until a write succeeds again.
    pub fn write_done(&self, outcome: Result<(), &StoreError>) {
        if let Err(error) = outcome {
            self.query_failed(error);
        }
        // Damage was repaired just now, on a fresh file: nothing to report.
        if let State::Open { write_failure, .. } = &mut *self.lock() {
            *write_failure = outcome
                .err()
                .filter(|e| e.kind != ErrorKind::Sqlite(SqliteProblem::Corrupt))
                .cloned();
        }
    }

    /// Tells the backup that a query failed. A damaged file is recreated at once (from what the
    /// open connection can still read); other failures leave the file as it is.
    pub fn query_failed(&self, error: &StoreError) {
        if error.kind != ErrorKind::Sqlite(SqliteProblem::Corrupt) {
            return;
        }
        let mut state = self.lock();
        if let State::Open { store, .. } = &*state {
            let store = store.clone();
            tracing::error!(path = %self.path.display(), error = %error.detail, "❌ Local SQLite backup is damaged; recreating it");
            *state = self.recreate(&store, "damaged");
        }
    }

    /// What the backup can do, for the status pages.
    pub fn health(&self) -> BackupHealth {
        let mut state = self.lock();
        let _ = self.current(&mut state);
        match &*state {
            State::Open {
                write_failure: None,
                ..
            } => BackupHealth {
                readable: true,
                writable: true,
                message: "Connected".to_string(),
            },
            State::Open {
                write_failure: Some(error),
                ..
            } => BackupHealth {
                readable: true,
                writable: false,
                message: format!("{error}: writes failing"),
            },
            State::Closed { error, .. } => BackupHealth {
                readable: false,
                writable: false,
                message: match why_unopenable(&self.path, error) {
                    Some(why) => format!("{error}: {why}; set SQLITE_PATH to a writable file"),
                    None => error.to_string(),
                },
            },
        }
    }

    fn current(&self, state: &mut State) -> Result<SqliteStore, StoreError> {
        match &*state {
            State::Open { store, .. } => return Ok(store.clone()),
            State::Closed { error, retry_at } if Instant::now() < *retry_at => {
                return Err(error.clone())
            }
            State::Closed { .. } => {}
        }
        match SqliteStore::open(&self.path, self.options) {
            Ok(store) => {
                tracing::info!(path = %self.path.display(), "💾 Local SQLite backup opened again");
                *state = opened_state(store.clone());
                Ok(store)
            }
            Err(error) => {
                *state = closed(&self.path, error.clone());
                Err(error)
            }
        }
    }

    /// A new file at the path, from what `old` can still read; from the sample data when it
    /// can read nothing. Damaged files are moved aside (kept for inspection), never deleted.
    fn recreate(&self, old: &SqliteStore, why: &str) -> State {
        // A name of its own: environments sharing the file may repair it at once.
        let rescue = self
            .path
            .with_extension(format!("rescue-{}", uuid::Uuid::new_v4().simple()));
        // Copied once the writes under way are done; a later write is made on the new file.
        old.retire();
        let rescued = old.copy_to(&rescue);
        if self.path.exists() {
            if let Err(err) = SqliteStore::move_aside(&self.path) {
                tracing::error!(error = %err.detail, "could not move the broken backup aside");
            }
        }
        let reopened = match &rescued {
            Ok(()) => self
                .put_in_place(&rescue)
                .map_err(|e| {
                    StoreError::new(ErrorKind::Sqlite(SqliteProblem::CannotOpen), e.to_string())
                })
                .and_then(|()| SqliteStore::open(&self.path, self.options)),
            Err(_) => SqliteStore::open(&self.path, self.options),
        };
        if self.options.shared && reopened.is_ok() {
            // Another environment may have put its own repair in place first.
            self.merge(old);
        }
        match (&rescued, reopened) {
            (Ok(()), Ok(store)) => {
                tracing::warn!(path = %self.path.display(), "💾 Local SQLite backup was {why}; recreated with every call and write it held");
                opened_state(store)
            }
            (Err(lost), Ok(store)) => {
                tracing::error!(path = %self.path.display(), error = %lost.detail, "❌ Local SQLite backup was {why} and unreadable; recreated from the sample data: writes that waited for Redshift in it are lost");
                opened_state(store)
            }
            (_, Err(error)) => closed(&self.path, error),
        }
    }

    /// Copies into the file at the path what the retired store `old` holds and it does not.
    fn merge(&self, old: &SqliteStore) {
        match old.merge_into(&self.path) {
            Ok(0) => {}
            Ok(calls) => {
                tracing::warn!(path = %self.path.display(), calls, "💾 Calls this environment wrote to the local SQLite backup's old file were copied into the new one");
            }
            Err(err) => {
                tracing::error!(path = %self.path.display(), error = %err.detail, "❌ Could not copy what the local SQLite backup's old file held into the new one");
            }
        }
    }

    /// Makes the rescued copy the backup. On a shared file, only if no other environment put
    /// its own in place first (then that one is used): a link never replaces a file.
    fn put_in_place(&self, rescue: &Path) -> std::io::Result<()> {
        if !self.options.shared {
            return std::fs::rename(rescue, &self.path);
        }
        let linked = match std::fs::hard_link(rescue, &self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
            _ => Ok(()),
        };
        let _ = std::fs::remove_file(rescue);
        linked
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is replaced in single steps; a panic elsewhere cannot leave it torn.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn opened_state(store: SqliteStore) -> State {
    State::Open {
        file: OpenedFile::open(store.path()),
        store,
        write_failure: None,
    }
}

/// Why the file at `path` cannot be opened, in words an operator can act on, when it can be
/// told: a folder that is not there, one that takes no files, a file that is no database.
fn why_unopenable(path: &Path, error: &StoreError) -> Option<String> {
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty())?;
    match error.kind {
        ErrorKind::Sqlite(SqliteProblem::CannotOpen) if path.is_dir() => {
            Some(format!("{} is a folder, not a file", path.display()))
        }
        ErrorKind::Sqlite(SqliteProblem::CannotOpen) if !folder.exists() => {
            Some(format!("the folder {} does not exist", folder.display()))
        }
        ErrorKind::Sqlite(SqliteProblem::CannotOpen | SqliteProblem::ReadOnly) => Some(format!(
            "{} is read-only or not this process's to write",
            if path.exists() { path } else { folder }.display()
        )),
        ErrorKind::Sqlite(SqliteProblem::Corrupt) => {
            Some(format!("{} is not a SQLite database", path.display()))
        }
        _ => None,
    }
}

fn closed(path: &Path, error: StoreError) -> State {
    let why = why_unopenable(path, &error).unwrap_or_default();
    tracing::error!(path = %path.display(), error = %error.detail, "❌ Local SQLite could not be opened: {error} ({why}); set SQLITE_PATH to a writable file; trying again in {} s", REOPEN_AFTER.as_secs());
    State::Closed {
        error,
        retry_at: Instant::now() + REOPEN_AFTER,
    }
}
