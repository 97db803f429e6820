//! One statement's database session: its transaction, the snapshot and write locks Redshift
//! would take, and Redshift's wording of a serialization failure.
//!
//! Redshift takes a transaction's snapshot at its first SELECT or DML (not at LOCK), and a
//! writer takes a write lock on its table that other writers wait for ("Concurrent write
//! examples"). Under SERIALIZABLE the wait comes before the snapshot when the write is the
//! transaction's first statement ("the second transaction does not obtain its snapshot of data
//! until after the first transaction has released its lock"); under SNAPSHOT ISOLATION
//! concurrent writers "can proceed concurrently until either transaction needs to write", so
//! their snapshots are older than each other's commits. PostgreSQL's `LOCK ... IN SHARE ROW
//! EXCLUSIVE MODE` is that write lock (it blocks other writers, never readers), and LOCK does
//! not take PostgreSQL's snapshot either, so the order of the two is the stand-in's to choose.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Column, NoTls, SimpleQueryMessage, Statement};
use tracing::{debug, warn};

use super::ledger::WriteLedger;
use super::results::{ColumnMetadata, Field, ResultSet, TableColumn};
use super::statement::Status;
use crate::isolation::Isolation;
use crate::sql::{dialect, tables};

/// What happened to one query.
#[derive(Debug, Clone)]
pub(crate) struct QueryOutcome {
    pub(crate) status: Status,
    pub(crate) error: Option<String>,
    pub(crate) result: Option<Arc<ResultSet>>,
    pub(crate) rows: i64,
    pub(crate) duration: Duration,
}

impl QueryOutcome {
    pub(super) fn not_run(status: Status) -> Self {
        Self {
            status,
            error: None,
            result: None,
            rows: -1,
            duration: Duration::ZERO,
        }
    }
}

/// Redshift records primary key, unique and foreign key constraints but enforces none of
/// them; PostgreSQL enforces all three. Run after every statement that defines a table, this
/// drops them (foreign keys first, as they depend on the keys), so that the stand-in stores
/// what Redshift would store, duplicates included.
const DROP_ENFORCED_KEYS: &str = "\
    DO $$ DECLARE c record; BEGIN \
      FOR c IN SELECT conrelid::regclass AS tbl, conname FROM pg_constraint \
               WHERE contype IN ('f', 'p', 'u') \
                 AND connamespace = ANY (current_schemas(false)::regnamespace[]) \
               ORDER BY contype = 'f' DESC LOOP \
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', c.tbl, c.conname); \
      END LOOP; \
    END $$";

/// What Redshift answers for a NUL character, which PostgreSQL cannot even receive.
const NUL_REFUSED: &str = "invalid byte sequence for encoding \"UTF8\": 0x00";

/// Where result columns come from, for their metadata.
const TABLE_COLUMNS_SQL: &str = "\
    SELECT a.attrelid, a.attnum, n.nspname::text, c.relname::text, a.attnotnull, \
           pg_get_expr(d.adbin, d.adrelid) \
    FROM unnest($1::oid[], $2::int2[]) AS k(relid, attnum) \
    JOIN pg_attribute a ON a.attrelid = k.relid AND a.attnum = k.attnum \
    JOIN pg_class c ON c.oid = a.attrelid \
    JOIN pg_namespace n ON n.oid = c.relnamespace \
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum";

/// The transaction's id and the ids of the tables a statement writes (0 for one that is not a
/// plain table), once their write locks are held.
const WRITTEN_TABLE_IDS_SQL: &str = "\
    SELECT txid_current(), \
           ARRAY(SELECT coalesce(to_regclass(n)::oid::int8, 0) FROM unnest($1::text[]) AS n)";

/// How long a cancelled statement's rollback may take before its connection is just dropped
/// (which rolls back too, once PostgreSQL notices).
const ROLLBACK_TIMEOUT: Duration = Duration::from_secs(2);

/// Why one query failed, in the words the Data API reports.
#[derive(Debug, Clone)]
pub(super) struct QueryFailure {
    pub(super) error: String,
    pub(super) duration: Duration,
}

/// A connection and the transaction open on it, if any.
pub(super) struct Session<'a> {
    client: &'a Client,
    pid: i64,
    isolation: Isolation,
    ledger: &'a WriteLedger,
    /// The ledger's commit count when this transaction's snapshot was taken.
    snapshot: Option<u64>,
    /// PostgreSQL's id of this transaction, once it wrote.
    xid: Option<i64>,
    /// The tables this transaction wrote, by id.
    written: Vec<u32>,
}

impl<'a> Session<'a> {
    pub(super) fn new(
        client: &'a Client,
        pid: i64,
        isolation: Isolation,
        ledger: &'a WriteLedger,
    ) -> Self {
        Self {
            client,
            pid,
            isolation,
            ledger,
            snapshot: None,
            xid: None,
            written: Vec::new(),
        }
    }

    /// Opens a transaction at the configured level.
    pub(super) async fn begin(&mut self) -> Result<(), String> {
        self.snapshot = None;
        self.xid = None;
        self.written.clear();
        let begin = format!("BEGIN ISOLATION LEVEL {}", self.isolation.postgres_level());
        self.client
            .batch_execute(&begin)
            .await
            .map_err(|e| format!("ERROR: {}", error_message(&e)))
    }

    /// Commits; a writer under SERIALIZABLE commits under the ledger's lock and is recorded.
    pub(super) async fn commit(&mut self) -> Result<(), String> {
        let recorded = self.isolation == Isolation::Serializable && !self.written.is_empty();
        let result = if recorded {
            let mut ledger = self.ledger.lock().await;
            let result = self.client.batch_execute("COMMIT").await;
            if result.is_ok() {
                ledger.record_commit(&self.written, self.xid.unwrap_or(0));
            }
            result
        } else {
            self.client.batch_execute("COMMIT").await
        };
        result.map_err(|e| format!("ERROR: {}", self.describe(&e)))
    }

    pub(super) async fn rollback(&mut self) {
        if let Err(error) = self.client.batch_execute("ROLLBACK").await {
            warn!(%error, "rollback failed");
        }
    }

    /// Stops whatever runs on the server and rolls back: a cancelled statement commits nothing.
    pub(super) async fn abandon(&mut self) {
        if let Err(error) = self.client.cancel_token().cancel_query(NoTls).await {
            warn!(%error, "could not cancel the query on PostgreSQL");
        }
        if tokio::time::timeout(ROLLBACK_TIMEOUT, self.rollback())
            .await
            .is_err()
        {
            warn!("the rollback of a cancelled statement took too long; dropping its connection");
        }
    }

    /// Runs one query in the open transaction (or alone, outside one).
    pub(super) async fn run(&mut self, sql: &str) -> Result<QueryOutcome, QueryFailure> {
        let started = Instant::now();
        let fail = |error: String| QueryFailure {
            error: format!("ERROR: {error}"),
            duration: started.elapsed(),
        };
        if sql.contains('\0') {
            return Err(fail(NUL_REFUSED.to_owned()));
        }
        dialect::check(sql).map_err(|unsupported| fail(unsupported.to_string()))?;
        let sql = dialect::to_postgres(sql);
        self.prepare_transaction(&sql).await.map_err(fail)?;
        // Preparing first tells the column types, which the text protocol
        // does not; it also refuses several statements in one string.
        let statement = self
            .client
            .prepare(&sql)
            .await
            .map_err(|e| fail(self.describe(&e)))?;
        let messages = self
            .client
            .simple_query(&sql)
            .await
            .map_err(|e| fail(self.describe(&e)))?;
        let result = if statement.columns().is_empty() {
            None
        } else {
            Some(Arc::new(
                result_set(self.client, &statement, &messages).await,
            ))
        };
        let rows = match &result {
            Some(result) => result.records.len() as i64,
            None => affected_rows(&messages),
        };
        if dialect::defines_table(&sql) {
            self.client
                .batch_execute(DROP_ENFORCED_KEYS)
                .await
                .map_err(|e| fail(self.describe(&e)))?;
        }
        Ok(QueryOutcome {
            status: Status::Finished,
            error: None,
            result,
            rows,
            duration: started.elapsed(),
        })
    }

    /// Takes the snapshot and the write locks Redshift would take before this statement runs,
    /// in Redshift's order for the isolation level; under SERIALIZABLE, refuses a write to a
    /// table committed by another transaction since this one's snapshot (error 1023).
    async fn prepare_transaction(&mut self, sql: &str) -> Result<(), String> {
        if !tables::takes_snapshot(sql) {
            return Ok(());
        }
        let written = tables::written_tables(sql);
        match self.isolation {
            Isolation::Serializable => {
                let tables = self.lock_for_writing(&written).await?;
                match self.snapshot {
                    None => self.take_snapshot().await,
                    Some(_) if tables.is_empty() => Ok(()),
                    Some(snapshot) => self.check_conflicts(&tables, snapshot).await,
                }
            }
            Isolation::Snapshot => {
                if self.snapshot.is_none() {
                    self.take_snapshot().await?;
                }
                self.lock_for_writing(&written).await.map(drop)
            }
        }
    }

    /// Takes Redshift's write lock on each table and returns their ids. They count as written
    /// from here on: a failure in the statement names them.
    async fn lock_for_writing(&mut self, names: &[String]) -> Result<Vec<u32>, String> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let lock = format!(
            "LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE",
            names.join(", ")
        );
        let describe = |e: tokio_postgres::Error| error_message(&e);
        self.client.batch_execute(&lock).await.map_err(describe)?;
        let row = self
            .client
            .query_one(WRITTEN_TABLE_IDS_SQL, &[&names])
            .await
            .map_err(describe)?;
        self.xid = Some(row.try_get(0).map_err(describe)?);
        let ids: Vec<i64> = row.try_get(1).map_err(describe)?;
        let tables: Vec<u32> = ids
            .into_iter()
            .filter_map(|id| u32::try_from(id).ok().filter(|id| *id != 0))
            .collect();
        for table in &tables {
            if !self.written.contains(table) {
                self.written.push(*table);
            }
        }
        Ok(tables)
    }

    /// Freezes PostgreSQL's snapshot with a query that reads nothing, under the ledger's lock,
    /// so that the ledger knows exactly which commits the snapshot saw.
    async fn take_snapshot(&mut self) -> Result<(), String> {
        let ledger = self.ledger.lock().await;
        self.client
            .simple_query("SELECT 1")
            .await
            .map_err(|e| error_message(&e))?;
        self.snapshot = Some(ledger.commits());
        Ok(())
    }

    async fn check_conflicts(&self, tables: &[u32], snapshot: u64) -> Result<(), String> {
        let ledger = self.ledger.lock().await;
        match ledger.conflict(tables, snapshot) {
            None => Ok(()),
            Some((table, write)) => {
                debug!(table, other = write.xid, "serializable isolation violation");
                Err(self.violation(table, Some(write.xid)))
            }
        }
    }

    /// PostgreSQL's own words, except a serialization failure, which Redshift reports as 1023.
    fn describe(&self, error: &tokio_postgres::Error) -> String {
        if error.code() == Some(&SqlState::T_R_SERIALIZATION_FAILURE) {
            let table = self.written.last().copied().unwrap_or(0);
            return self.violation(table, None);
        }
        error_message(error)
    }

    /// Redshift's error 1023, without the leading "ERROR: " that every failure gets.
    fn violation(&self, table: u32, other: Option<i64>) -> String {
        let cycle: Vec<String> = other
            .into_iter()
            .chain(self.xid)
            .map(|xid| xid.to_string())
            .collect();
        let cycle = if cycle.is_empty() {
            String::new()
        } else {
            format!(", transactions forming the cycle are: {}", cycle.join(", "))
        };
        format!(
            "1023 DETAIL: Serializable isolation violation on table - {table}{cycle} (pid:{})",
            self.pid
        )
    }
}

fn affected_rows(messages: &[SimpleQueryMessage]) -> i64 {
    messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::CommandComplete(rows) => {
                Some(i64::try_from(*rows).unwrap_or(i64::MAX))
            }
            _ => None,
        })
        .unwrap_or(0)
}

async fn result_set(
    client: &Client,
    statement: &Statement,
    messages: &[SimpleQueryMessage],
) -> ResultSet {
    let columns = statement.columns();
    let tables = table_columns(client, columns).await;
    let metadata = columns
        .iter()
        .map(|c| {
            let table = c
                .table_oid()
                .zip(c.column_id())
                .and_then(|key| tables.get(&key));
            ColumnMetadata::new(c.name(), c.type_(), c.type_modifier(), table)
        })
        .collect();
    let records = messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })
        .map(|row| {
            columns
                .iter()
                .enumerate()
                .map(|(i, c)| Field::from_text(c.type_(), row.try_get(i).ok().flatten()))
                .collect()
        })
        .collect();
    ResultSet {
        columns: metadata,
        records,
    }
}

/// Schema, table, nullability and default of the result columns that are
/// plain table columns. Metadata is a nicety: on error it is left out.
async fn table_columns(client: &Client, columns: &[Column]) -> HashMap<(u32, i16), TableColumn> {
    let (oids, numbers): (Vec<u32>, Vec<i16>) = columns
        .iter()
        .filter_map(|c| c.table_oid().zip(c.column_id()))
        .unzip();
    if oids.is_empty() {
        return HashMap::new();
    }
    match client.query(TABLE_COLUMNS_SQL, &[&oids, &numbers]).await {
        Ok(rows) => rows
            .iter()
            .filter_map(|row| {
                let key = (row.try_get(0).ok()?, row.try_get(1).ok()?);
                let column = TableColumn {
                    schema: row.try_get(2).ok()?,
                    table: row.try_get(3).ok()?,
                    not_null: row.try_get(4).ok()?,
                    default: row.try_get(5).ok()?,
                };
                Some((key, column))
            })
            .collect(),
        Err(error) => {
            debug!(%error, "column metadata lookup failed");
            HashMap::new()
        }
    }
}

/// PostgreSQL's own message when there is one, without the driver's framing.
pub(super) fn error_message(error: &tokio_postgres::Error) -> String {
    error
        .as_db_error()
        .map_or_else(|| error.to_string(), |db| db.message().to_owned())
}
