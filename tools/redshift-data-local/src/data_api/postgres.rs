//! Executes statements on PostgreSQL.
//!
//! Each Data API statement gets its own connection, as each runs in its own
//! session on Redshift: nothing (temporary tables, settings, an open
//! transaction) leaks from one statement into the next.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::{Client, Column, Config, NoTls, SimpleQueryMessage, Statement};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::results::{ColumnMetadata, Field, ResultSet, TableColumn};
use super::statement::Status;
use crate::error::StandInError;
use crate::sql::dialect;

/// Session settings that make PostgreSQL print values the way Redshift does, and isolate
/// transactions as Redshift does (serializable: PostgreSQL's default, read committed, would let
/// through concurrent writes that Redshift refuses).
const SESSION_OPTIONS: &str = "-c TimeZone=UTC -c DateStyle=ISO -c bytea_output=hex \
    -c default_transaction_isolation=serializable";

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

/// How the statements of a batch commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// All or nothing, in one transaction (the Data API's default).
    Transaction,
    /// Each statement commits on its own; the first failure stops the batch.
    AutoCommit,
}

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
    fn not_run(status: Status) -> Self {
        Self {
            status,
            error: None,
            result: None,
            rows: -1,
            duration: Duration::ZERO,
        }
    }
}

/// What happened to a statement (one query, or a batch).
#[derive(Debug, Clone)]
pub(crate) struct Execution {
    pub(crate) status: Status,
    pub(crate) error: Option<String>,
    pub(crate) queries: Vec<QueryOutcome>,
}

impl Execution {
    /// Nothing ran: every query ends with `status`.
    pub(crate) fn not_run(count: usize, status: Status, error: Option<String>) -> Self {
        Self {
            status,
            error,
            queries: vec![QueryOutcome::not_run(status); count],
        }
    }
}

/// Why one query failed.
struct QueryFailure {
    error: String,
    duration: Duration,
}

/// The PostgreSQL server the statements run on.
#[derive(Debug, Clone)]
pub(crate) struct Database {
    config: Config,
}

impl Database {
    pub(crate) fn new(url: &str) -> Result<Self, StandInError> {
        let mut config: Config = url.parse().map_err(StandInError::InvalidDatabaseUrl)?;
        let options = match config.get_options() {
            Some(existing) => format!("{existing} {SESSION_OPTIONS}"),
            None => SESSION_OPTIONS.to_owned(),
        };
        config.options(options);
        Ok(Self { config })
    }

    /// Fails early, with a clear error, when the server cannot be reached.
    pub(crate) async fn check(&self) -> Result<(), StandInError> {
        self.connect()
            .await
            .map(drop)
            .map_err(StandInError::database("connecting to PostgreSQL"))
    }

    /// Runs `sqls` on a new connection. `on_started` receives the server
    /// process id once connected. Cancelling `cancel` stops the execution,
    /// also on the server, and the statement ends ABORTED.
    pub(crate) async fn execute(
        &self,
        sqls: &[String],
        mode: Mode,
        cancel: &CancellationToken,
        on_started: impl FnOnce(i64),
    ) -> Execution {
        let (client, pid) = match self.connect().await {
            Ok(connected) => connected,
            Err(error) => {
                let message = format!("ERROR: {}", error_message(&error));
                return Execution::not_run(sqls.len(), Status::Failed, Some(message));
            }
        };
        on_started(pid);
        let server_side = client.cancel_token();
        tokio::select! {
            biased;
            () = cancel.cancelled() => {
                if let Err(error) = server_side.cancel_query(NoTls).await {
                    warn!(%error, "could not cancel the query on PostgreSQL");
                }
                Execution::not_run(sqls.len(), Status::Aborted, None)
            }
            execution = run_queries(&client, sqls, mode) => execution,
        }
    }

    async fn connect(&self) -> Result<(Client, i64), tokio_postgres::Error> {
        let (client, connection) = self.config.connect(NoTls).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                debug!(%error, "PostgreSQL connection ended");
            }
        });
        let pid = backend_pid(&client).await?;
        Ok((client, pid))
    }
}

async fn backend_pid(client: &Client) -> Result<i64, tokio_postgres::Error> {
    let messages = client.simple_query("SELECT pg_backend_pid()").await?;
    Ok(messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(0).and_then(|pid| pid.parse().ok()),
            _ => None,
        })
        .unwrap_or(-1))
}

async fn run_queries(client: &Client, sqls: &[String], mode: Mode) -> Execution {
    let transaction = mode == Mode::Transaction && sqls.len() > 1;
    if transaction && let Err(error) = client.batch_execute("BEGIN").await {
        let message = format!("ERROR: {}", error_message(&error));
        return Execution::not_run(sqls.len(), Status::Failed, Some(message));
    }
    let mut done = Vec::with_capacity(sqls.len());
    for (index, sql) in sqls.iter().enumerate() {
        match run_query(client, sql).await {
            Ok(outcome) => done.push(outcome),
            Err(failure) => {
                return failed(client, sqls.len(), done, index, failure, transaction).await;
            }
        }
    }
    if transaction && let Err(error) = client.batch_execute("COMMIT").await {
        let message = format!("ERROR: {}", error_message(&error));
        return Execution::not_run(sqls.len(), Status::Failed, Some(message));
    }
    Execution {
        status: Status::Finished,
        error: None,
        queries: done,
    }
}

/// The statement failed at query `index`: in a transaction everything is
/// rolled back (the queries that ran are ABORTED); the queries after it never run.
async fn failed(
    client: &Client,
    count: usize,
    mut done: Vec<QueryOutcome>,
    index: usize,
    failure: QueryFailure,
    transaction: bool,
) -> Execution {
    if transaction {
        if let Err(error) = client.batch_execute("ROLLBACK").await {
            warn!(%error, "rollback failed");
        }
        for outcome in &mut done {
            outcome.status = Status::Aborted;
        }
    }
    let error = if count > 1 {
        format!("Query #{} failed with {}", index + 1, failure.error)
    } else {
        failure.error.clone()
    };
    done.push(QueryOutcome {
        status: Status::Failed,
        error: Some(failure.error),
        result: None,
        rows: -1,
        duration: failure.duration,
    });
    done.resize_with(count, || QueryOutcome::not_run(Status::Aborted));
    Execution {
        status: Status::Failed,
        error: Some(error),
        queries: done,
    }
}

async fn run_query(client: &Client, sql: &str) -> Result<QueryOutcome, QueryFailure> {
    let started = Instant::now();
    let fail = |message: String| QueryFailure {
        error: format!("ERROR: {message}"),
        duration: started.elapsed(),
    };
    if sql.contains('\0') {
        return Err(fail(NUL_REFUSED.to_owned()));
    }
    dialect::check(sql).map_err(|unsupported| fail(unsupported.to_string()))?;
    // Preparing first tells the column types, which the text protocol
    // does not; it also refuses several statements in one string.
    let statement = client
        .prepare(sql)
        .await
        .map_err(|e| fail(error_message(&e)))?;
    let messages = client
        .simple_query(sql)
        .await
        .map_err(|e| fail(error_message(&e)))?;
    let result = if statement.columns().is_empty() {
        None
    } else {
        Some(Arc::new(result_set(client, &statement, &messages).await))
    };
    let rows = match &result {
        Some(result) => result.records.len() as i64,
        None => affected_rows(&messages),
    };
    if dialect::defines_table(sql) {
        client
            .batch_execute(DROP_ENFORCED_KEYS)
            .await
            .map_err(|e| fail(error_message(&e)))?;
    }
    Ok(QueryOutcome {
        status: Status::Finished,
        error: None,
        result,
        rows,
        duration: started.elapsed(),
    })
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
fn error_message(error: &tokio_postgres::Error) -> String {
    error
        .as_db_error()
        .map_or_else(|| error.to_string(), |db| db.message().to_owned())
}
