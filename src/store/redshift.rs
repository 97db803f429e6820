//! The primary database, Amazon Redshift, through the Redshift Data API.
//!
//! The Data API is asynchronous: a statement is submitted, runs, and its result is fetched
//! separately. `WaitTimeSeconds` makes the service hold the answer until the statement finishes,
//! so a quick query costs two round trips (execute, get result); with less than a second left, a
//! DescribeStatement poll that starts fast and backs off takes over. Everything one request does
//! runs under one [`Deadline`]; a statement abandoned at the deadline is cancelled, so that it
//! neither runs on nor counts against the cluster's limit of active statements.
//!
//! Redshift enforces no primary key. Every insert therefore runs as one transaction of
//! `LOCK calls` and `INSERT ... SELECT ... WHERE NOT EXISTS`: the lock (Redshift's documented way
//! to serialise writers) makes the check and the insert atomic, so no interleaving of requests,
//! replays or retries can store an id twice.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_sdk_redshiftdata::config::http::HttpResponse;
use aws_sdk_redshiftdata::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_redshiftdata::operation::describe_statement::DescribeStatementOutput;
use aws_sdk_redshiftdata::types::{Field, SqlParameter};
use aws_sdk_redshiftdata::Client;
use chrono::{DateTime, NaiveDateTime, Utc};

use super::deadline::Deadline;
use super::error::{ErrorKind, Refusal};
use super::{Call, CallStore, HistoryQuery, InsertOutcome, StoreError};
use crate::config::{RedshiftAuth, RedshiftConfig, RedshiftTarget};

/// The DDL of the `calls` table, kept in the repository and applied by `call-history migrate`.
pub const SCHEMA: &str = include_str!("../../sql/redshift/schema.sql");
const COLUMNS: &str =
    "id, contact_name, account_name, started_at, duration_seconds, outcome, notes, created_at";
/// Serialises writers: see the module documentation.
const LOCK_CALLS: &str = "LOCK calls";
const FIRST_POLL_DELAY: Duration = Duration::from_millis(10);
const MAX_POLL_DELAY: Duration = Duration::from_millis(500);

#[derive(Clone, Debug)]
pub struct RedshiftStore {
    client: Client,
    config: RedshiftConfig,
    timeout: Duration,
}

/// The store bound to one request's deadline: every call it makes shares that deadline.
#[derive(Clone, Copy)]
pub struct RedshiftSession<'a> {
    store: &'a RedshiftStore,
    deadline: Deadline,
}

/// SQL with its `:name` parameters. Values travel as strings (the Data API's only parameter
/// type) and Redshift converts them, with explicit casts in the SQL where needed. The Data API
/// refuses an empty value, so an empty string is written as the constant `''` instead.
#[derive(Clone, Debug, Default)]
pub struct Statement {
    /// One statement, or several run as one transaction (BatchExecuteStatement).
    pub sqls: Vec<String>,
    pub params: Vec<(String, String)>,
}

impl Statement {
    fn new(sql: impl Into<String>) -> Self {
        Statement {
            sqls: vec![sql.into()],
            params: Vec::new(),
        }
    }

    /// The placeholder for `value` under `name`: `:name`, or `''` for an empty string.
    fn placeholder(&mut self, name: String, value: String) -> String {
        if value.is_empty() {
            return "''".to_string();
        }
        let placeholder = format!(":{name}");
        self.params.push((name, value));
        placeholder
    }

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

/// The rows of a finished statement, or how many rows its last statement changed.
#[derive(Debug, Default)]
pub struct StatementResult {
    pub records: Vec<Vec<Field>>,
    pub rows_affected: i64,
}

/// What ExecuteStatement or BatchExecuteStatement answered.
struct Submitted {
    id: String,
    /// Present when the server-side wait was asked for.
    status: Option<String>,
    has_result_set: bool,
}

impl Submitted {
    fn new(id: Option<&str>, status: Option<&str>, has_result_set: Option<bool>) -> Option<Self> {
        Some(Submitted {
            id: id?.to_string(),
            status: status.map(str::to_string),
            has_result_set: has_result_set.unwrap_or(false),
        })
    }
}

/// What DescribeStatement (or a waited submission) told about a statement that ended.
struct Ended {
    status: String,
    has_result_set: bool,
    /// Rows changed by the (last) statement, when known.
    rows: Option<i64>,
    error: Option<String>,
}

impl RedshiftStore {
    /// `timeout` is the deadline of one request's Redshift work (`REDSHIFT_TIMEOUT_MS`).
    pub fn new(client: Client, config: RedshiftConfig, timeout: Duration) -> Self {
        RedshiftStore {
            client,
            config,
            timeout,
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
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

    /// Creates the `calls` table when it does not exist.
    pub async fn apply_schema(&self) -> Result<(), StoreError> {
        self.session().run(Statement::new(SCHEMA)).await.map(|_| ())
    }

    /// As [`RedshiftSession::insert_missing`], under a fresh deadline.
    pub async fn insert_missing(&self, calls: &[Call]) -> Result<i64, StoreError> {
        self.session().insert_missing(calls).await
    }

    fn cancel_in_background(&self, id: &str) {
        let client = self.client.clone();
        let id = id.to_string();
        // Not awaited: the request that abandoned the statement has no time left. Lambda may
        // freeze the environment first; the cancel then goes out when it thaws.
        tokio::spawn(async move {
            let cancel = client.cancel_statement().id(&id).send();
            match tokio::time::timeout(Duration::from_secs(5), cancel).await {
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

impl RedshiftSession<'_> {
    pub fn deadline(&self) -> Deadline {
        self.deadline
    }

    /// A cheap statement that proves Redshift answers and the table is there.
    pub async fn probe(&self) -> Result<(), StoreError> {
        self.run(Statement::new("SELECT 1 FROM calls LIMIT 1"))
            .await
            .map(|_| ())
    }

    /// The byte widths of the `calls` table's text columns as the warehouse has them (which may
    /// be narrower than this service's own schema): to find, among journaled writes, the ones
    /// it will refuse as too long without trying each.
    pub async fn text_column_widths(&self) -> Result<HashMap<String, usize>, StoreError> {
        let result = self
            .run(Statement::new(
                "SELECT column_name, character_maximum_length FROM information_schema.columns \
                 WHERE table_name = 'calls' AND character_maximum_length IS NOT NULL",
            ))
            .await?;
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

    /// Runs one statement (or one transaction of several) under the session's deadline.
    pub async fn run(&self, statement: Statement) -> Result<StatementResult, StoreError> {
        let submitted = self.deadline.run(self.submit(&statement)).await?;
        let ended = match self.deadline.run(self.wait_until_done(&submitted)).await {
            Ok(ended) => ended,
            Err(err) => {
                // Abandoned, whether at the deadline or because following it failed: it must
                // neither run on nor count against the active-statement limit.
                self.store.cancel_in_background(&submitted.id);
                return Err(err);
            }
        };
        self.deadline.run(self.collect(&submitted.id, ended)).await
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
                Submitted::new(
                    out.id(),
                    out.status().map(|s| s.as_str()),
                    out.has_result_set(),
                )
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
    /// straight to its result; anything else asks DescribeStatement (for the row count or the
    /// error), with a server-side wait when a second or more is left, else a poll that starts
    /// fast and backs off.
    async fn wait_until_done(&self, submitted: &Submitted) -> Result<Ended, StoreError> {
        if submitted.status.as_deref() == Some("FINISHED") && submitted.has_result_set {
            return Ok(Ended {
                status: "FINISHED".to_string(),
                has_result_set: true,
                rows: None,
                error: None,
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
        match ended.status.as_str() {
            "FINISHED" => {}
            "ABORTED" => {
                return Err(StoreError::new(
                    ErrorKind::StatementAborted,
                    "statement aborted",
                ))
            }
            _ => return Err(statement_failed(ended.error.unwrap_or_default())),
        }
        if !ended.has_result_set {
            return Ok(StatementResult {
                records: Vec::new(),
                rows_affected: ended.rows.unwrap_or(0),
            });
        }
        let records = self.fetch_all_pages(id).await?;
        Ok(StatementResult {
            rows_affected: records.len() as i64,
            records,
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

    async fn select_calls(&self, statement: Statement) -> Result<Vec<Call>, StoreError> {
        let result = self.run(statement).await?;
        let mut calls = Vec::with_capacity(result.records.len());
        let mut seen = HashSet::with_capacity(result.records.len());
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

    /// Inserts `calls` that are not there yet, in one transaction. Returns how many rows
    /// Redshift added.
    pub async fn insert_missing(&self, calls: &[Call]) -> Result<i64, StoreError> {
        if calls.is_empty() {
            return Ok(0);
        }
        let mut statement = Statement::default();
        let rows: Vec<String> = calls
            .iter()
            .enumerate()
            .map(|(i, call)| values_row(i, call, &mut statement))
            .collect();
        statement.sqls = vec![
            LOCK_CALLS.to_string(),
            format!(
                "INSERT INTO calls ({COLUMNS}) SELECT v.* FROM ({rows}) AS v \
                 WHERE NOT EXISTS (SELECT 1 FROM calls c WHERE c.id = v.id)",
                rows = rows.join(" UNION ALL ")
            ),
        ];
        Ok(self.run(statement).await?.rows_affected)
    }
}

impl CallStore for RedshiftSession<'_> {
    async fn history(&self, query: &HistoryQuery) -> Result<Vec<Call>, StoreError> {
        let mut sql = format!("SELECT {COLUMNS} FROM calls WHERE 1 = 1");
        let mut statement = Statement::default();
        if let Some(contact) = &query.contact {
            let p = statement.placeholder("contact".into(), contact.clone());
            sql.push_str(&format!(" AND contact_name = {p}"));
        }
        if let Some(since) = &query.since {
            let p = statement.placeholder("since".into(), to_redshift_time(since));
            sql.push_str(&format!(" AND started_at >= CAST({p} AS TIMESTAMP)"));
        }
        if let Some(until) = &query.until {
            let p = statement.placeholder("until".into(), to_redshift_time(until));
            sql.push_str(&format!(" AND started_at < CAST({p} AS TIMESTAMP)"));
        }
        // Limit and offset are validated integers, not client text; Redshift does not take
        // parameters in LIMIT.
        sql.push_str(&format!(
            " ORDER BY started_at DESC, id DESC LIMIT {} OFFSET {}",
            query.limit, query.offset
        ));
        statement.sqls = vec![sql];
        self.select_calls(statement).await
    }

    async fn get(&self, id: &str) -> Result<Option<Call>, StoreError> {
        let mut statement = Statement::default();
        let p = statement.placeholder("id".into(), id.to_string());
        statement.sqls = vec![format!("SELECT {COLUMNS} FROM calls WHERE id = {p}")];
        Ok(self.select_calls(statement).await?.into_iter().next())
    }

    async fn insert(&self, call: &Call) -> Result<InsertOutcome, StoreError> {
        if self.insert_missing(std::slice::from_ref(call)).await? > 0 {
            return Ok(InsertOutcome::Inserted);
        }
        match self.get(&call.id).await? {
            Some(existing) => Ok(InsertOutcome::AlreadyExists(existing)),
            // Reported no row added yet none is there: a failure, never claimed as stored.
            None => Err(StoreError::new(
                ErrorKind::Service,
                "insert added no row and none is there",
            )),
        }
    }
}

/// The store under its own deadline per call, for tools and tests.
impl CallStore for RedshiftStore {
    async fn history(&self, query: &HistoryQuery) -> Result<Vec<Call>, StoreError> {
        self.session().history(query).await
    }
    async fn get(&self, id: &str) -> Result<Option<Call>, StoreError> {
        self.session().get(id).await
    }
    async fn insert(&self, call: &Call) -> Result<InsertOutcome, StoreError> {
        self.session().insert(call).await
    }
}

/// One `SELECT <values>` of a multi-row insert; absent values are SQL NULLs (the Data API has
/// no null parameter), everything else a bound parameter. Only the first row names its columns,
/// and only non-text values are cast, to keep large batches small.
fn values_row(i: usize, call: &Call, statement: &mut Statement) -> String {
    let mut value = |column: &str, value: Option<String>, cast: Option<&str>| -> String {
        let expression = match value {
            Some(value) => statement.placeholder(format!("{column}_{i}"), value),
            None => "NULL".to_string(),
        };
        let expression = match cast {
            Some(ty) => format!("CAST({expression} AS {ty})"),
            None => expression,
        };
        if i == 0 {
            format!("{expression} AS {column}")
        } else {
            expression
        }
    };
    let parts = [
        value("id", Some(call.id.clone()), None),
        value("contact_name", Some(call.contact_name.clone()), None),
        value("account_name", call.account_name.clone(), None),
        value(
            "started_at",
            Some(to_redshift_time(&call.started_at)),
            Some("TIMESTAMP"),
        ),
        value(
            "duration_seconds",
            call.duration_seconds.map(|d| d.to_string()),
            Some("BIGINT"),
        ),
        value("outcome", call.outcome.clone(), None),
        value("notes", call.notes.clone(), None),
        value(
            "created_at",
            Some(to_redshift_time(&call.created_at)),
            Some("TIMESTAMP"),
        ),
    ];
    format!("SELECT {}", parts.join(", "))
}

/// How the statement ended, if it has.
fn ended(described: &DescribeStatementOutput) -> Option<Ended> {
    let status = described.status()?.as_str();
    if !matches!(status, "FINISHED" | "FAILED" | "ABORTED") {
        return None;
    }
    // A transaction's row count is its last statement's.
    let rows = match described.sub_statements() {
        [] => described.result_rows(),
        subs => subs.last().map_or(-1, |s| s.result_rows()),
    };
    Some(Ended {
        status: status.to_string(),
        has_result_set: described.has_result_set().unwrap_or(false),
        rows: (rows >= 0).then_some(rows),
        error: described.error().map(str::to_string),
    })
}

/// A FAILED statement: a refusal when Redshift rejected a value, else an outage.
fn statement_failed(error: String) -> StoreError {
    match Refusal::from_database_message(&error) {
        Some(refusal) => StoreError::new(ErrorKind::Refused(refusal), error),
        None => StoreError::new(ErrorKind::StatementFailed, error),
    }
}

/// Redshift TIMESTAMP text, in UTC.
fn to_redshift_time(t: &DateTime<Utc>) -> String {
    t.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

fn parse_redshift_time(text: &str) -> Result<DateTime<Utc>, StoreError> {
    let trimmed = text.trim_end_matches("+00").trim_end_matches('Z');
    NaiveDateTime::parse_from_str(trimmed, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(trimmed, "%Y-%m-%dT%H:%M:%S%.f"))
        .map(|t| t.and_utc())
        .map_err(|_| StoreError::decode(format!("not a timestamp: {text:?}")))
}

fn call_from_record(record: &[Field]) -> Result<Call, StoreError> {
    if record.len() != 8 {
        return Err(StoreError::decode(format!(
            "expected 8 columns, got {}",
            record.len()
        )));
    }
    Ok(Call {
        id: required_text(&record[0], "id")?,
        contact_name: required_text(&record[1], "contact_name")?,
        account_name: optional_text(&record[2], "account_name")?,
        started_at: parse_redshift_time(&required_text(&record[3], "started_at")?)?,
        duration_seconds: optional_long(&record[4], "duration_seconds")?,
        outcome: optional_text(&record[5], "outcome")?,
        notes: optional_text(&record[6], "notes")?,
        created_at: parse_redshift_time(&required_text(&record[7], "created_at")?)?,
    })
}

fn optional_text(field: &Field, column: &str) -> Result<Option<String>, StoreError> {
    match field {
        Field::IsNull(true) => Ok(None),
        Field::StringValue(s) => Ok(Some(s.clone())),
        other => Err(StoreError::decode(format!(
            "{column}: expected text, got {other:?}"
        ))),
    }
}

fn required_text(field: &Field, column: &str) -> Result<String, StoreError> {
    optional_text(field, column)?.ok_or_else(|| StoreError::decode(format!("{column} is null")))
}

fn optional_long(field: &Field, column: &str) -> Result<Option<i64>, StoreError> {
    match field {
        Field::IsNull(true) => Ok(None),
        Field::LongValue(n) => Ok(Some(*n)),
        // NUMERIC comes back as text.
        Field::StringValue(s) => s
            .parse()
            .map(Some)
            .map_err(|_| StoreError::decode(format!("{column}: not an integer: {s:?}"))),
        other => Err(StoreError::decode(format!(
            "{column}: expected an integer, got {other:?}"
        ))),
    }
}

/// Turns an SDK failure into its class (outage or refusal) with the SDK's words as detail.
fn classify<E>(err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let detail = match &err {
        SdkError::ServiceError(service) => format!(
            "{}: {} (HTTP {})",
            service.err().code().unwrap_or("UnknownError"),
            service.err().message().unwrap_or(""),
            service.raw().status().as_u16()
        ),
        other => aws_sdk_redshiftdata::error::DisplayErrorContext(other).to_string(),
    };
    let kind = match &err {
        SdkError::TimeoutError(_) => ErrorKind::Timeout,
        SdkError::DispatchFailure(failure) if failure.is_timeout() => ErrorKind::Timeout,
        SdkError::DispatchFailure(failure) if failure.is_io() => ErrorKind::ConnectionRefused,
        SdkError::DispatchFailure(_) => ErrorKind::Connection,
        SdkError::ResponseError(_) => ErrorKind::Decode,
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("UnknownError");
            kind_of_service_error(code, service.raw().status().as_u16())
        }
        _ => ErrorKind::Connection,
    };
    StoreError::new(kind, detail)
}

/// The Data API's error types, by what they mean for the fallback.
fn kind_of_service_error(code: &str, status: u16) -> ErrorKind {
    match code {
        // Never the client's values (the API refuses what Redshift would, and empty strings go
        // as constants): a target or database that is not there, an outage for the operator.
        "ValidationException" => ErrorKind::Rejected,
        "ActiveStatementsExceededException"
        | "ActiveSessionsExceededException"
        | "ActiveWaitingRequestsExceededException" => ErrorKind::TooManyStatements,
        "AccessDeniedException" => ErrorKind::AccessDenied,
        "QueryTimeoutException" => ErrorKind::Timeout,
        "DatabaseConnectionException" => ErrorKind::Connection,
        code if code.contains("Throttl") => ErrorKind::Throttled,
        _ if status == 429 => ErrorKind::Throttled,
        _ if status == 403 => ErrorKind::AccessDenied,
        _ => ErrorKind::Service,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn redshift_timestamps_round_trip() {
        let t = Utc.with_ymd_and_hms(2024, 11, 4, 9, 0, 0).unwrap();
        assert_eq!(to_redshift_time(&t), "2024-11-04 09:00:00.000000");
        assert_eq!(parse_redshift_time("2024-11-04 09:00:00").unwrap(), t);
        assert_eq!(parse_redshift_time("2024-11-04 09:00:00+00").unwrap(), t);
        assert!(parse_redshift_time("yesterday").is_err());
        let first = Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(to_redshift_time(&first), "0001-01-01 00:00:00.000000");
    }

    #[test]
    fn records_decode_with_nulls_and_reject_wrong_types() {
        let record = vec![
            Field::StringValue("abc".into()),
            Field::StringValue("Ada".into()),
            Field::IsNull(true),
            Field::StringValue("2024-11-04 09:00:00.5".into()),
            Field::LongValue(42),
            Field::StringValue(String::new()),
            Field::IsNull(true),
            Field::StringValue("2024-11-04 09:01:00".into()),
        ];
        let call = call_from_record(&record).unwrap();
        assert_eq!(call.account_name, None);
        assert_eq!(call.outcome.as_deref(), Some(""));
        assert_eq!(call.duration_seconds, Some(42));
        assert_eq!(call.started_at.timestamp_subsec_millis(), 500);

        let mut bad = record.clone();
        bad[4] = Field::BooleanValue(true);
        assert_eq!(call_from_record(&bad).unwrap_err().kind, ErrorKind::Decode);
    }

    #[test]
    fn empty_strings_are_constants_and_never_parameters() {
        let call = Call {
            id: "a".into(),
            contact_name: "Ada".into(),
            account_name: Some(String::new()),
            started_at: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
            duration_seconds: None,
            outcome: Some(String::new()),
            notes: Some("n".into()),
            created_at: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
        };
        let mut statement = Statement::default();
        let row = values_row(0, &call, &mut statement);
        assert!(row.contains("'' AS account_name"), "{row}");
        assert!(row.contains("'' AS outcome"), "{row}");
        assert!(
            row.contains("CAST(NULL AS BIGINT) AS duration_seconds"),
            "{row}"
        );
        assert!(statement.params.iter().all(|(_, v)| !v.is_empty()));
        let names: Vec<&str> = statement.params.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "id_0",
                "contact_name_0",
                "started_at_0",
                "notes_0",
                "created_at_0"
            ]
        );
    }

    #[test]
    fn service_errors_are_told_apart() {
        assert_eq!(
            kind_of_service_error("ValidationException", 400),
            ErrorKind::Rejected
        );
        assert_eq!(
            kind_of_service_error("ThrottlingException", 400),
            ErrorKind::Throttled
        );
        assert_eq!(
            kind_of_service_error("ActiveStatementsExceededException", 400),
            ErrorKind::TooManyStatements
        );
        assert_eq!(
            kind_of_service_error("InternalServerException", 500),
            ErrorKind::Service
        );
        assert_eq!(
            kind_of_service_error("AccessDeniedException", 403),
            ErrorKind::AccessDenied
        );
        assert!(
            statement_failed("ERROR: value too long for type character varying(20)".into())
                .is_refusal()
        );
        assert!(!statement_failed("ERROR: relation \"calls\" does not exist".into()).is_refusal());
    }
}
