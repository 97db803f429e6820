//! The backup file's schema: created with the sample data or a snapshot on a new file, brought
//! up to date in place on an older one, each call's answer filled in where it is missing; and the
//! file operations around it (opening, creating a shared file once, moving a damaged one aside).

use std::path::{Path, PathBuf};

use rusqlite::{named_params, Connection, OpenFlags, Transaction, TransactionBehavior};

use super::rows::stored_call;
use super::{SqliteOptions, COLUMNS};
use crate::store::error::{ErrorKind, SqliteProblem};
use crate::store::json::call_json;
use crate::store::StoreError;

const SCHEMA: &str = include_str!("../../../sql/sqlite/schema.sql");
/// Marks a database whose schema is in place: 1 had the calls and the journal, 2 added the writes
/// set aside, 3 the replay lease, 4 each call's answer, 5 the replica's state, leases by name and
/// conflicts among the writes set aside. A change of the calls' JSON must clear the stored
/// answers in a new version (they are then written again).
const SCHEMA_VERSION: i64 = 5;
/// How long a statement waits for a lock another connection or environment holds.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

pub(super) fn open_connection(
    path: &Path,
    options: SqliteOptions,
) -> Result<Connection, StoreError> {
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
pub(super) fn open_prepared(
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
pub(super) fn create_shared_if_missing(path: &Path, seed: &str) -> Result<(), StoreError> {
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
        ..SqliteOptions::default()
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
pub(super) fn merge_into_attached(conn: &Connection) -> rusqlite::Result<usize> {
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
            // Tables from older versions gain their new columns before the schema indexes them.
            let mut added = String::new();
            for (table, column, declaration) in ADDED_COLUMNS {
                if lacks_column(&tx, table, column)? {
                    added.push_str(&format!("ALTER TABLE {table} ADD COLUMN {declaration};"));
                }
            }
            tx.execute_batch(&format!(
                "{added} {SCHEMA} {seed} PRAGMA user_version = {SCHEMA_VERSION};"
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

/// Columns added since a table was first made: (table, column, declaration).
const ADDED_COLUMNS: [(&str, &str, &str); 3] = [
    ("calls", "answer", "answer TEXT"),
    ("calls", "written_at", "written_at INTEGER"),
    (
        "rejected_sync",
        "conflict",
        "conflict INTEGER NOT NULL DEFAULT 0",
    ),
];

/// True when `table` is there without `column`.
fn lacks_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info(:table)) \
         AND NOT EXISTS (SELECT 1 FROM pragma_table_info(:table) WHERE name = :column)",
        named_params! { ":table": table, ":column": column },
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
pub(super) fn move_aside(path: &Path, aside: &Path) -> Result<(), StoreError> {
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

pub(super) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
