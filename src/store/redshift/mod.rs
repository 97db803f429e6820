//! The primary database, Amazon Redshift, through the Redshift Data API.
//!
//! The Data API is asynchronous: a statement is submitted, runs, and its result is fetched
//! separately. `WaitTimeSeconds` makes the service hold the answer until the statement finishes,
//! so a quick query costs two calls (execute, get result); with less than a second left, a
//! DescribeStatement poll that starts fast and backs off takes over. Everything one request does
//! runs under one [`Deadline`]; a statement abandoned at the deadline is cancelled (as
//! [`Background`] work, which Lambda lets finish before it freezes the environment), so that it
//! neither runs on nor counts against the cluster's limit of active statements.
//!
//! - [`sql`]: every statement, as text and parameters.
//! - [`decode`]: result fields read back as calls.
//! - [`errors`]: what a failure means for the fallback (outage, refusal, throttling).
//! - [`meter`]: Data API calls and throttles, counted in the SDK client.

pub mod decode;
pub mod errors;
pub mod meter;
pub mod sql;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_redshiftdata::operation::describe_statement::DescribeStatementOutput;
use aws_sdk_redshiftdata::types::{Field, SqlParameter};
use aws_sdk_redshiftdata::Client;
use chrono::NaiveDateTime;

use self::decode::{call_from_record, optional_long, pulled_row, required_text, PulledRow};
use self::errors::{classify, statement_failed};
use self::meter::DataApiMeter;
pub use self::sql::{IngestKey, PullScope, Statement};
use super::deadline::Deadline;
use super::error::ErrorKind;
use super::{Call, HistoryQuery, StoreError};
use crate::background::Background;
use crate::config::{RedshiftAuth, RedshiftConfig, RedshiftTarget};

const FIRST_POLL_DELAY: Duration = Duration::from_millis(10);
const MAX_POLL_DELAY: Duration = Duration::from_millis(500);
/// How long a cancel of an abandoned statement may take.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct RedshiftStore {
    client: Client,
    config: RedshiftConfig,
    timeout: Duration,
    meter: Arc<DataApiMeter>,
    background: Background,
}

/// The store bound to one request's deadline: every call it makes shares that deadline.
#[derive(Clone, Copy)]
pub struct RedshiftSession<'a> {
    store: &'a RedshiftStore,
    deadline: Deadline,
}

/// The rows of a finished statement.
#[derive(Debug, Default)]
pub struct StatementResult {
    pub records: Vec<Vec<Field>>,
}

/// What a pull brought: calls, the last of them in ingestion order, and the warehouse's clock
/// when it ran.
#[derive(Debug)]
pub struct Pulled {
    pub calls: Vec<Call>,
    pub last: Option<IngestKey>,
    pub clock: NaiveDateTime,
}

/// What `call-history migrate` did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Migration {
    /// An existing `calls` table gained the `ingested_at` column.
    pub added_ingested_at: bool,
}

/// What ExecuteStatement or BatchExecuteStatement answered.
struct Submitted {
    id: String,
    /// Present when the server-side wait was asked for.
    status: Option<String>,
    /// `None` when the answer left it out: then only DescribeStatement can tell.
    has_result_set: Option<bool>,
}

/// A statement that ended, with its id.
struct Followed {
    id: String,
    ended: Ended,
}

/// What DescribeStatement (or a waited submission) told about a statement that ended.
struct Ended {
    status: String,
    has_result_set: bool,
    error: Option<String>,
    /// The rows each SQL statement returned or changed (`ResultRows`, a batch's in order; -1
    /// where the service does not say). Empty when no DescribeStatement was asked.
    result_rows: Vec<i64>,
}

/// Whether a statement's row counts are wanted: only DescribeStatement tells them, so a
/// statement the server-side wait saw finish costs one call more.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RowCounts {
    Wanted,
    NotWanted,
}

impl RedshiftStore {
    /// `timeout` is the deadline of one request's Redshift work (`REDSHIFT_TIMEOUT_MS`). Cancels
    /// of abandoned statements run on `background`.
    pub fn new(
        client: Client,
        config: RedshiftConfig,
        timeout: Duration,
        meter: Arc<DataApiMeter>,
        background: Background,
    ) -> Self {
        RedshiftStore {
            client,
            config,
            timeout,
            meter,
            background,
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Data API calls and throttles of this environment.
    pub fn meter(&self) -> &DataApiMeter {
        &self.meter
    }

    /// The store bound to `deadline`.
    pub fn within(&self, deadline: Deadline) -> RedshiftSession<'_> {
        RedshiftSession {
            store: self,
            deadline,
        }
    }

    /// The store bound to a fresh deadline of its configured length.
    pub fn session(&self) -> RedshiftSession<'_> {
        self.within(Deadline::after(self.timeout))
    }

    /// Creates the `calls` table and the writers' lock table when they do not exist, and adds
    /// the `ingested_at` column to a `calls` table made before it existed. Each step under a
    /// deadline of its own (DDL can wait for locks).
    pub async fn migrate(&self) -> Result<Migration, StoreError> {
        self.session().run(Statement::one(sql::SCHEMA)).await?;
        self.session()
            .run(Statement::one(sql::WRITE_LOCK_SCHEMA))
            .await?;
        let found = self.session().run(sql::has_ingested_at()).await?;
        let has_column = match found.records.first().and_then(|r| r.first()) {
            Some(count) => optional_long(count, "count")?.unwrap_or(0) > 0,
            None => false,
        };
        if has_column {
            return Ok(Migration::default());
        }
        self.session()
            .run(Statement::one(sql::ADD_INGESTED_AT))
            .await?;
        Ok(Migration {
            added_ingested_at: true,
        })
    }

    fn cancel_in_background(&self, id: &str) {
        let client = self.client.clone();
        let id = id.to_string();
        // The request that abandoned the statement has no time left; in Lambda the extension
        // waits for this before the environment may freeze.
        self.background.spawn(async move {
            let cancel = client.cancel_statement().id(&id).send();
            match tokio::time::timeout(CANCEL_TIMEOUT, cancel).await {
                Ok(Ok(_)) => {
                    tracing::info!(statement = %id, "Cancelled a Redshift statement abandoned at the deadline")
                }
                Ok(Err(err)) => {
                    tracing::debug!(statement = %id, error = %classify(err).detail, "Cancel not applied (the statement may have ended)")
                }
                Err(_) => tracing::debug!(statement = %id, "Cancel got no answer"),
            }
        });
    }
}

impl Statement {
    fn parameters(&self) -> Result<Option<Vec<SqlParameter>>, StoreError> {
        if self.params.is_empty() {
            return Ok(None);
        }
        self.params
            .iter()
            .map(|(name, value)| {
                SqlParameter::builder()
                    .name(name)
                    .value(value)
                    .build()
                    .map_err(|e| StoreError::new(ErrorKind::Rejected, e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

impl RedshiftSession<'_> {
    pub fn deadline(&self) -> Deadline {
        self.deadline
    }

    /// A cheap statement that proves Redshift answers and the table is there.
    pub async fn probe(&self) -> Result<(), StoreError> {
        self.run(sql::probe()).await.map(|_| ())
    }

    /// The byte widths of the `calls` table's text columns as the warehouse has them (which may
    /// be narrower than this service's own schema): to find, among journaled writes, the ones
    /// it will refuse as too long without trying each.
    pub async fn text_column_widths(&self) -> Result<HashMap<String, usize>, StoreError> {
        let result = self.run(sql::text_column_widths()).await?;
        let mut widths = HashMap::new();
        for record in &result.records {
            if let [name, width] = record.as_slice() {
                let name = required_text(name, "column_name")?;
                if let Some(width) = optional_long(width, "character_maximum_length")? {
                    widths.insert(name, usize::try_from(width).unwrap_or(usize::MAX));
                }
            }
        }
        Ok(widths)
    }

    /// History, newest first, straight from the warehouse.
    pub async fn history(&self, query: &HistoryQuery) -> Result<Vec<Call>, StoreError> {
        self.select_calls(sql::history(query)).await
    }

    /// One call by id, straight from the warehouse.
    pub async fn get(&self, id: &str) -> Result<Option<Call>, StoreError> {
        Ok(self.select_calls(sql::get(id)).await?.into_iter().next())
    }

    /// The ids among `ids` the warehouse holds.
    pub async fn existing_ids(&self, ids: &[&str]) -> Result<Vec<String>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let result = self.run(sql::existing_ids(ids)).await?;
        result
            .records
            .iter()
            .map(|record| match record.first() {
                Some(id) => required_text(id, "id"),
                None => Err(StoreError::decode("a row without its id")),
            })
            .collect()
    }

    /// The calls the warehouse ingested in `scope`, with its clock.
    pub async fn pull(&self, scope: &PullScope) -> Result<Pulled, StoreError> {
        let result = self.run(sql::pull(scope)).await?;
        let mut calls = Vec::with_capacity(result.records.len());
        let mut last: Option<IngestKey> = None;
        let mut clock = None;
        for record in &result.records {
            match pulled_row(record)? {
                PulledRow::Call(call, ingested_at) => {
                    if let Some(at) = ingested_at {
                        let key = IngestKey {
                            at,
                            id: Some(call.id.clone()),
                        };
                        last = last.max(Some(key));
                    }
                    calls.push(call);
                }
                PulledRow::Clock(at) => clock = Some(at),
            }
        }
        let clock =
            clock.ok_or_else(|| StoreError::decode("a pull without the warehouse's clock"))?;
        Ok(Pulled { calls, last, clock })
    }

    /// Inserts the `calls` Redshift does not hold yet, in one transaction under the writers'
    /// lock, and returns what Redshift holds for each of their ids afterwards (a call another
    /// writer stored first comes back as that writer stored it). A write conflict (Redshift's
    /// serializable isolation aborting the transaction) is tried once more while the deadline
    /// leaves the time the first try took.
    ///
    /// The insert's row count tells when every call was missing: then each is held as given,
    /// at the cost of one DescribeStatement. Otherwise what Redshift holds is read after the
    /// commit: stored rows stay, so nothing is lost by reading outside the lock, and the lock
    /// is held for the insert's time alone, which is what bounds writes across the fleet.
    ///
    /// The ids must be distinct, at most [`sql::MAX_ROWS_PER_INSERT`] of them.
    pub async fn insert_missing(
        &self,
        calls: &[Call],
    ) -> Result<HashMap<String, Call>, StoreError> {
        if calls.is_empty() {
            return Ok(HashMap::new());
        }
        let statement = sql::insert_missing(calls);
        let started = Instant::now();
        let result_rows = match self.run_counted(&statement).await {
            Err(err)
                if err.kind == ErrorKind::WriteConflict
                    && self.deadline.remaining() > started.elapsed() =>
            {
                tracing::info!(detail = %err.detail, "Redshift aborted a write for a concurrent one; trying once more");
                self.run_counted(&statement).await?
            }
            other => other?,
        };
        let inserted = result_rows.get(sql::INSERT_IN_BATCH - 1).copied();
        if inserted == i64::try_from(calls.len()).ok() {
            return Ok(calls.iter().map(|c| (c.id.clone(), c.clone())).collect());
        }
        let ids: Vec<&str> = calls.iter().map(|c| c.id.as_str()).collect();
        let held = self.select_calls(sql::calls_with_ids(&ids)).await?;
        Ok(held.into_iter().map(|c| (c.id.clone(), c)).collect())
    }

    async fn select_calls(&self, statement: Statement) -> Result<Vec<Call>, StoreError> {
        let result = self.run(statement).await?;
        let mut calls = Vec::with_capacity(result.records.len());
        let mut seen = std::collections::HashSet::with_capacity(result.records.len());
        for record in &result.records {
            let call = call_from_record(record)?;
            // Redshift enforces no key: should another writer ever have stored an id twice,
            // a reader still sees it once.
            if seen.insert(call.id.clone()) {
                calls.push(call);
            }
        }
        Ok(calls)
    }

    /// Runs one statement (or one transaction of several) under the session's deadline, and
    /// returns the rows of its (last) statement.
    pub async fn run(&self, statement: Statement) -> Result<StatementResult, StoreError> {
        let ended = self.run_to_end(&statement, RowCounts::NotWanted).await?;
        let id = match statement.sqls.len() {
            1 => ended.id.clone(),
            n => format!("{}:{n}", ended.id),
        };
        self.deadline.run(self.collect(&id, ended.ended)).await
    }

    /// Runs a statement under the session's deadline for its effect, and returns the rows each
    /// of its SQL statements changed (-1 where the service does not say).
    async fn run_counted(&self, statement: &Statement) -> Result<Vec<i64>, StoreError> {
        let ended = self.run_to_end(statement, RowCounts::Wanted).await?.ended;
        finished(&ended)?;
        Ok(ended.result_rows)
    }

    /// Submits the statement and follows it until it ends. A statement abandoned on the way
    /// (at the deadline, or because following it failed) is cancelled: it must neither run on
    /// nor count against the active-statement limit.
    async fn run_to_end(
        &self,
        statement: &Statement,
        counts: RowCounts,
    ) -> Result<Followed, StoreError> {
        let submitted = self.deadline.run(self.submit(statement)).await?;
        match self
            .deadline
            .run(self.wait_until_done(&submitted, counts))
            .await
        {
            Ok(ended) => Ok(Followed {
                id: submitted.id,
                ended,
            }),
            Err(err) => {
                self.store.cancel_in_background(&submitted.id);
                Err(err)
            }
        }
    }

    /// Submits the statement (ExecuteStatement, or BatchExecuteStatement for a transaction),
    /// with a server-side wait when a second or more is left.
    async fn submit(&self, statement: &Statement) -> Result<Submitted, StoreError> {
        let store = self.store;
        let parameters = statement.parameters()?;
        let wait = self.deadline.server_wait_secs();
        // The two requests share every member but the SQL, and no trait: one body for both.
        macro_rules! send {
            ($request:expr) => {{
                let request = $request
                    .database(&store.config.database)
                    .set_parameters(parameters)
                    .set_wait_time_seconds(wait);
                let request = match &store.config.target {
                    RedshiftTarget::Cluster(id) => request.cluster_identifier(id),
                    RedshiftTarget::Workgroup(name) => request.workgroup_name(name),
                };
                let request = match &store.config.auth {
                    RedshiftAuth::SecretArn(arn) => request.secret_arn(arn),
                    RedshiftAuth::DbUser(user) => request.db_user(user),
                    RedshiftAuth::Iam => request,
                };
                let out = request.send().await.map_err(classify)?;
                out.id().map(|id| Submitted {
                    id: id.to_string(),
                    status: out.status().map(|s| s.as_str().to_string()),
                    has_result_set: out.has_result_set(),
                })
            }};
        }
        let submitted = match statement.sqls.as_slice() {
            [sql] => send!(store.client.execute_statement().sql(sql)),
            sqls => send!(store
                .client
                .batch_execute_statement()
                .set_sqls(Some(sqls.to_vec()))),
        };
        submitted.ok_or_else(|| StoreError::decode("the Data API returned no statement id"))
    }

    /// Follows the statement until it ends. A query the server-side wait saw finish goes
    /// straight to its result unless its row counts are wanted; anything else asks
    /// DescribeStatement (for the error or the counts), with a server-side wait when a second
    /// or more is left, else a poll that starts fast and backs off.
    async fn wait_until_done(
        &self,
        submitted: &Submitted,
        counts: RowCounts,
    ) -> Result<Ended, StoreError> {
        if let (Some("FINISHED"), Some(has_result_set), RowCounts::NotWanted) = (
            submitted.status.as_deref(),
            submitted.has_result_set,
            counts,
        ) {
            return Ok(Ended {
                status: "FINISHED".to_string(),
                has_result_set,
                error: None,
                result_rows: Vec::new(),
            });
        }
        let mut delay = FIRST_POLL_DELAY;
        loop {
            let described = self
                .store
                .client
                .describe_statement()
                .id(&submitted.id)
                .set_wait_time_seconds(self.deadline.server_wait_secs())
                .send()
                .await
                .map_err(classify)?;
            if let Some(ended) = ended(&described) {
                return Ok(ended);
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_POLL_DELAY);
        }
    }

    async fn collect(&self, id: &str, ended: Ended) -> Result<StatementResult, StoreError> {
        finished(&ended)?;
        if !ended.has_result_set {
            return Ok(StatementResult::default());
        }
        Ok(StatementResult {
            records: self.fetch_all_pages(id).await?,
        })
    }

    async fn fetch_all_pages(&self, id: &str) -> Result<Vec<Vec<Field>>, StoreError> {
        let mut records = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let mut page = self
                .store
                .client
                .get_statement_result()
                .id(id)
                .set_next_token(next_token.take())
                .send()
                .await
                .map_err(classify)?;
            records.append(&mut page.records);
            match page.next_token {
                Some(token) if !token.is_empty() => next_token = Some(token),
                _ => return Ok(records),
            }
        }
    }
}

/// How the statement ended, if it has.
fn ended(described: &DescribeStatementOutput) -> Option<Ended> {
    let status = described.status()?.as_str();
    if !matches!(status, "FINISHED" | "FAILED" | "ABORTED") {
        return None;
    }
    let result_rows = match described.sub_statements() {
        [] => vec![described.result_rows()],
        subs => subs.iter().map(|sub| sub.result_rows()).collect(),
    };
    Some(Ended {
        status: status.to_string(),
        has_result_set: described.has_result_set().unwrap_or(false),
        error: described.error().map(str::to_string),
        result_rows,
    })
}

/// Ok when the statement finished; its failure otherwise.
fn finished(ended: &Ended) -> Result<(), StoreError> {
    match ended.status.as_str() {
        "FINISHED" => Ok(()),
        "ABORTED" => Err(StoreError::new(
            ErrorKind::StatementAborted,
            "statement aborted",
        )),
        _ => Err(statement_failed(ended.error.clone().unwrap_or_default())),
    }
}
