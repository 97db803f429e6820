//! Executes statements on PostgreSQL.
//!
//! Each Data API statement gets its own connection, as each runs in its own
//! session on Redshift: nothing (temporary tables, settings, an open
//! transaction) leaks from one statement into the next. Every statement runs in
//! an explicit transaction (a batch in one, or one per query in auto-commit), so
//! that each query can take the configured run time before its transaction commits
//! and a cancel during that time commits nothing.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::{Client, Config, NoTls, SimpleQueryMessage};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::ledger::WriteLedger;
use super::session::{QueryFailure, QueryOutcome, Session, error_message};
use super::statement::Status;
use crate::error::StandInError;
use crate::isolation::Isolation;
use crate::sql::tables;

/// Session settings that make PostgreSQL print values the way Redshift does.
const SESSION_OPTIONS: &str = "-c TimeZone=UTC -c DateStyle=ISO -c bytea_output=hex";

/// Redshift's GETDATE(): "the current date and time in the current session time zone (UTC by
/// default)", "the start date or time of the current statement, even when it is within a
/// transaction block", as TIMESTAMP (Database Developer Guide, "GETDATE function"); its
/// examples show whole seconds. PostgreSQL has no such function, and `DEFAULT GETDATE()` in a
/// table definition needs one in the database itself. Installing it under an advisory lock
/// keeps two stand-ins starting on one database from racing.
const INSTALL_GETDATE: &str = "\
    BEGIN; \
    SELECT pg_advisory_xact_lock(4747001); \
    CREATE OR REPLACE FUNCTION public.getdate() RETURNS timestamp \
      LANGUAGE sql STABLE PARALLEL SAFE \
      AS $$ SELECT date_trunc('second', statement_timestamp())::timestamp $$; \
    COMMIT";

/// How the statements of a batch commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// All or nothing, in one transaction (the Data API's default).
    Transaction,
    /// Each statement commits on its own; the first failure stops the batch.
    AutoCommit,
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

/// How one transaction (or auto-committed query) of a statement ended.
enum UnitEnd {
    Committed(Vec<QueryOutcome>),
    /// A query failed (or the commit did): the queries before it in the unit, and why.
    Failed {
        done: Vec<QueryOutcome>,
        failure: QueryFailure,
    },
    Cancelled,
}

/// A statement's SQL and the limits it runs within.
pub(crate) struct Run<'a> {
    pub(crate) sqls: &'a [String],
    pub(crate) mode: Mode,
    pub(crate) cancel: &'a CancellationToken,
    /// The least time each SQL statement takes (each of a batch's in turn).
    pub(crate) run_time: Duration,
}

/// The PostgreSQL server the statements run on.
#[derive(Debug, Clone)]
pub(crate) struct Database {
    config: Config,
    isolation: Isolation,
    ledger: Arc<WriteLedger>,
}

impl Database {
    pub(crate) fn new(url: &str, isolation: Isolation) -> Result<Self, StandInError> {
        let mut config: Config = url.parse().map_err(StandInError::InvalidDatabaseUrl)?;
        let options = match config.get_options() {
            Some(existing) => format!("{existing} {SESSION_OPTIONS}"),
            None => SESSION_OPTIONS.to_owned(),
        };
        config.options(options);
        Ok(Self {
            config,
            isolation,
            ledger: Arc::default(),
        })
    }

    /// Fails early, with a clear error, when the server cannot be reached, and installs the
    /// Redshift functions the statements may use.
    pub(crate) async fn prepare(&self) -> Result<(), StandInError> {
        let (client, _) = self
            .connect()
            .await
            .map_err(StandInError::database("connecting to PostgreSQL"))?;
        client
            .batch_execute(INSTALL_GETDATE)
            .await
            .map_err(StandInError::database("installing GETDATE()"))
    }

    /// Runs the statement on a new connection. `on_started` receives the server process id
    /// once connected. Cancelling stops the execution, also on the server, and the statement
    /// ends ABORTED with its open transaction rolled back.
    pub(crate) async fn execute(&self, run: Run<'_>, on_started: impl FnOnce(i64)) -> Execution {
        let count = run.sqls.len();
        let (client, pid) = match self.connect().await {
            Ok(connected) => connected,
            Err(error) => {
                let message = format!("ERROR: {}", error_message(&error));
                return Execution::not_run(count, Status::Failed, Some(message));
            }
        };
        on_started(pid);
        let mut session = Session::new(&client, pid, self.isolation, &self.ledger);
        let mut committed = Vec::with_capacity(count);
        for range in units(count, run.mode) {
            let sqls = &run.sqls[range];
            match run_unit(&mut session, sqls, run.cancel, run.run_time).await {
                UnitEnd::Committed(done) => committed.extend(done),
                UnitEnd::Cancelled => return aborted(committed, count),
                UnitEnd::Failed { done, failure } => {
                    let transaction = run.mode == Mode::Transaction;
                    return failed(count, committed, done, failure, transaction);
                }
            }
        }
        Execution {
            status: Status::Finished,
            error: None,
            queries: committed,
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

/// The transactions of a statement: a batch's queries together, or each on its own.
fn units(count: usize, mode: Mode) -> Vec<Range<usize>> {
    match mode {
        Mode::Transaction => std::iter::once(0..count).collect(),
        Mode::AutoCommit => (0..count).map(|i| i..i + 1).collect(),
    }
}

/// Runs one transaction: its queries, each taking at least the run time, which a cancel
/// interrupts; then the commit, which it does not (once committing, the statement is done).
async fn run_unit(
    session: &mut Session<'_>,
    sqls: &[String],
    cancel: &CancellationToken,
    run_time: Duration,
) -> UnitEnd {
    let in_transaction = !(sqls.len() == 1 && tables::runs_outside_transactions(&sqls[0]));
    if in_transaction && let Err(error) = session.begin().await {
        let failure = QueryFailure {
            error,
            duration: Duration::ZERO,
        };
        return UnitEnd::Failed {
            done: Vec::new(),
            failure,
        };
    }
    let work = run_queries(session, sqls, run_time);
    let outcome = tokio::select! {
        biased;
        () = cancel.cancelled() => None,
        outcome = work => Some(outcome),
    };
    match outcome {
        None => {
            session.abandon().await;
            UnitEnd::Cancelled
        }
        Some(Err((done, failure))) => {
            if in_transaction {
                session.rollback().await;
            }
            UnitEnd::Failed { done, failure }
        }
        Some(Ok(done)) if !in_transaction => UnitEnd::Committed(done),
        Some(Ok(done)) => commit(session, done).await,
    }
}

async fn commit(session: &mut Session<'_>, mut done: Vec<QueryOutcome>) -> UnitEnd {
    match session.commit().await {
        Ok(()) => UnitEnd::Committed(done),
        Err(error) => {
            session.rollback().await;
            // The commit belongs to the transaction's last query: that one failed.
            let duration = done.pop().map_or(Duration::ZERO, |q| q.duration);
            UnitEnd::Failed {
                done,
                failure: QueryFailure { error, duration },
            }
        }
    }
}

/// The queries in order, each taking `run_time` before it runs (its reported duration is that
/// and the query's own time), a failing one included. AWS runs a batch's SQL statements
/// serially, each taking its own time: the next does not start until the previous one
/// completes, so a batch of n takes n run times. A statement's time on Redshift goes mostly
/// before it touches data (the Data API's hand-off, the WLM queue, planning, compilation), so
/// the locks it takes are held from the end of its time, not through it: a LOCK statement's
/// time passes before the lock is granted, and a transaction holds it through the time of the
/// statements after it.
async fn run_queries(
    session: &mut Session<'_>,
    sqls: &[String],
    run_time: Duration,
) -> Result<Vec<QueryOutcome>, (Vec<QueryOutcome>, QueryFailure)> {
    let mut done = Vec::with_capacity(sqls.len());
    for sql in sqls {
        tokio::time::sleep(run_time).await;
        match session.run(sql).await {
            Ok(mut outcome) => {
                outcome.duration += run_time;
                done.push(outcome);
            }
            Err(mut failure) => {
                failure.duration += run_time;
                return Err((done, failure));
            }
        }
    }
    Ok(done)
}

/// Cancelled: what auto-commit already committed stays FINISHED, the rest is ABORTED.
fn aborted(mut committed: Vec<QueryOutcome>, count: usize) -> Execution {
    committed.resize_with(count, || QueryOutcome::not_run(Status::Aborted));
    Execution {
        status: Status::Aborted,
        error: None,
        queries: committed,
    }
}

/// The statement failed at the query after `committed` and `done`: in a transaction the
/// queries that ran are rolled back (ABORTED); the queries after it never run.
fn failed(
    count: usize,
    committed: Vec<QueryOutcome>,
    done: Vec<QueryOutcome>,
    failure: QueryFailure,
    transaction: bool,
) -> Execution {
    let mut queries = committed;
    let rolled_back = done.into_iter().map(|mut outcome| {
        if transaction {
            outcome.status = Status::Aborted;
        }
        outcome
    });
    queries.extend(rolled_back);
    let index = queries.len();
    let error = if count > 1 {
        format!("Query #{} failed with {}", index + 1, failure.error)
    } else {
        failure.error.clone()
    };
    queries.push(QueryOutcome {
        status: Status::Failed,
        error: Some(failure.error),
        result: None,
        rows: -1,
        duration: failure.duration,
    });
    queries.resize_with(count, || QueryOutcome::not_run(Status::Aborted));
    Execution {
        status: Status::Failed,
        error: Some(error),
        queries,
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
