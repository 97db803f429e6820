//! The primary database, Amazon Redshift, through the Redshift Data API.
//!
//! The Data API is asynchronous: a statement is submitted, runs, and its result is fetched
//! separately. `WaitTimeSeconds` on ExecuteStatement makes the service hold the answer until the
//! statement finishes, so a quick query costs two round trips (execute, get result). Endpoints
//! that ignore it are handled by a DescribeStatement poll that starts fast and backs off.
//! Every operation runs under one overall deadline, so a hung Redshift costs a bounded time.

use std::time::{Duration, Instant};

use aws_sdk_redshiftdata::config::http::HttpResponse;
use aws_sdk_redshiftdata::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_redshiftdata::operation::execute_statement::ExecuteStatementOutput;
use aws_sdk_redshiftdata::types::{Field, SqlParameter};
use aws_sdk_redshiftdata::Client;
use chrono::{DateTime, NaiveDateTime, Utc};

use super::{Call, CallStore, HistoryQuery, InsertOutcome, StoreError};
use crate::config::{RedshiftAuth, RedshiftConfig, RedshiftTarget};

/// The DDL of the `calls` table, kept in the repository and applied by `call-history migrate`.
pub const SCHEMA: &str = include_str!("../../sql/redshift/schema.sql");
const COLUMNS: &str =
    "id, contact_name, account_name, started_at, duration_seconds, outcome, notes, created_at";
/// The Data API holds an answer for at most this long.
const MAX_SERVER_WAIT_SECS: u64 = 30;
const FIRST_POLL_DELAY: Duration = Duration::from_millis(10);
const MAX_POLL_DELAY: Duration = Duration::from_millis(500);

#[derive(Clone, Debug)]
pub struct RedshiftStore {
    client: Client,
    config: RedshiftConfig,
    deadline: Duration,
}

/// A SQL statement with its `:name` parameters. Values are sent as strings (the Data API's
/// only parameter type) and converted by Redshift, with explicit casts in the SQL where needed.
#[derive(Clone, Debug, Default)]
pub struct Statement {
    pub sql: String,
    pub params: Vec<(String, String)>,
}

impl Statement {
    fn new(sql: impl Into<String>) -> Self {
        Statement {
            sql: sql.into(),
            params: Vec::new(),
        }
    }

    fn bind(mut self, name: &str, value: impl Into<String>) -> Self {
        self.params.push((name.to_string(), value.into()));
        self
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
                    .map_err(|e| StoreError::Service(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

/// The rows of a finished statement, or how many rows it changed.
#[derive(Debug, Default)]
pub struct StatementResult {
    pub records: Vec<Vec<Field>>,
    pub rows_affected: i64,
}

impl RedshiftStore {
    pub fn new(client: Client, config: RedshiftConfig, deadline: Duration) -> Self {
        RedshiftStore {
            client,
            config,
            deadline,
        }
    }

    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// A cheap statement that proves Redshift answers and the table is there.
    pub async fn probe(&self) -> Result<(), StoreError> {
        self.run(Statement::new("SELECT 1 FROM calls LIMIT 1"))
            .await
            .map(|_| ())
    }

    /// Creates the `calls` table when it does not exist.
    pub async fn apply_schema(&self) -> Result<(), StoreError> {
        self.run(Statement::new(SCHEMA)).await.map(|_| ())
    }

    /// Runs one statement under the overall deadline.
    pub async fn run(&self, statement: Statement) -> Result<StatementResult, StoreError> {
        let started = Instant::now();
        match tokio::time::timeout(self.deadline, self.run_unbounded(&statement, started)).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Timeout),
        }
    }

    async fn run_unbounded(
        &self,
        statement: &Statement,
        started: Instant,
    ) -> Result<StatementResult, StoreError> {
        let submitted = self.execute(statement, started).await?;
        let id = submitted
            .id()
            .ok_or_else(|| {
                StoreError::Decode("ExecuteStatement returned no statement id".to_string())
            })?
            .to_string();
        let (status, has_result_set, rows_affected) = match submitted.status() {
            Some(status) if is_terminal(status.as_str()) => (
                status.as_str().to_string(),
                submitted.has_result_set().unwrap_or(false),
                -1,
            ),
            _ => self.wait_until_done(&id, started).await?,
        };
        match status.as_str() {
            "FINISHED" => {}
            "ABORTED" => return Err(StoreError::StatementAborted),
            _ => return Err(StoreError::StatementFailed(self.failure_reason(&id).await)),
        }
        if !has_result_set {
            // ExecuteStatement's answer does not say how many rows changed; DescribeStatement does.
            let rows_affected = match rows_affected {
                -1 => self.rows_affected(&id).await?,
                known => known,
            };
            return Ok(StatementResult {
                records: Vec::new(),
                rows_affected,
            });
        }
        let records = self.fetch_all_pages(&id).await?;
        Ok(StatementResult {
            rows_affected: records.len() as i64,
            records,
        })
    }

    /// Server-side wait, in whole seconds, for what is left of the deadline (rounded up: the
    /// wait ends as soon as the statement does, and the deadline itself is enforced here).
    fn server_wait(&self, started: Instant) -> Option<i32> {
        let left = self.deadline.saturating_sub(started.elapsed());
        let secs = left
            .as_millis()
            .div_ceil(1000)
            .min(u128::from(MAX_SERVER_WAIT_SECS));
        (secs > 0).then_some(secs as i32)
    }

    async fn execute(
        &self,
        statement: &Statement,
        started: Instant,
    ) -> Result<ExecuteStatementOutput, StoreError> {
        let mut request = self
            .client
            .execute_statement()
            .sql(&statement.sql)
            .database(&self.config.database)
            .set_parameters(statement.parameters()?)
            .set_wait_time_seconds(self.server_wait(started));
        request = match &self.config.target {
            RedshiftTarget::Cluster(id) => request.cluster_identifier(id),
            RedshiftTarget::Workgroup(name) => request.workgroup_name(name),
        };
        request = match &self.config.auth {
            RedshiftAuth::SecretArn(arn) => request.secret_arn(arn),
            RedshiftAuth::DbUser(user) => request.db_user(user),
            RedshiftAuth::Iam => request,
        };
        request.send().await.map_err(classify)
    }

    /// Polls DescribeStatement until the statement ends: fast at first, then backing off.
    async fn wait_until_done(
        &self,
        id: &str,
        started: Instant,
    ) -> Result<(String, bool, i64), StoreError> {
        let mut delay = FIRST_POLL_DELAY;
        loop {
            let described = self
                .client
                .describe_statement()
                .id(id)
                .set_wait_time_seconds(self.server_wait(started))
                .send()
                .await
                .map_err(classify)?;
            let status = described
                .status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default();
            if is_terminal(&status) {
                return Ok((
                    status,
                    described.has_result_set().unwrap_or(false),
                    described.result_rows(),
                ));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_POLL_DELAY);
        }
    }

    async fn rows_affected(&self, id: &str) -> Result<i64, StoreError> {
        let described = self
            .client
            .describe_statement()
            .id(id)
            .send()
            .await
            .map_err(classify)?;
        Ok(described.result_rows())
    }

    /// The statement's own error text, for the status page and the log.
    async fn failure_reason(&self, id: &str) -> String {
        match self.client.describe_statement().id(id).send().await {
            Ok(described) => described.error().unwrap_or("statement failed").to_string(),
            Err(err) => classify(err).to_string(),
        }
    }

    async fn fetch_all_pages(&self, id: &str) -> Result<Vec<Vec<Field>>, StoreError> {
        let mut records = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let page = self
                .client
                .get_statement_result()
                .id(id)
                .set_next_token(next_token.take())
                .send()
                .await
                .map_err(classify)?;
            records.extend(page.records().iter().cloned());
            match page.next_token() {
                Some(token) if !token.is_empty() => next_token = Some(token.to_string()),
                _ => return Ok(records),
            }
        }
    }

    async fn select_calls(&self, statement: Statement) -> Result<Vec<Call>, StoreError> {
        let result = self.run(statement).await?;
        result
            .records
            .iter()
            .map(|record| call_from_record(record))
            .collect()
    }

    /// Inserts `calls` that are not there yet, in one multi-row statement. Returns how many rows
    /// Redshift added. Idempotent on `id`: Redshift enforces no keys, so the statement checks.
    pub async fn insert_missing(&self, calls: &[Call]) -> Result<i64, StoreError> {
        if calls.is_empty() {
            return Ok(0);
        }
        let mut statement = Statement::default();
        let mut rows = Vec::with_capacity(calls.len());
        for (i, call) in calls.iter().enumerate() {
            rows.push(values_row(i, call, &mut statement));
        }
        statement.sql = format!(
            "INSERT INTO calls ({COLUMNS}) SELECT v.* FROM ({rows}) AS v \
             WHERE NOT EXISTS (SELECT 1 FROM calls c WHERE c.id = v.id)",
            rows = rows.join(" UNION ALL ")
        );
        let result = self.run(statement).await?;
        Ok(result.rows_affected)
    }
}

impl CallStore for RedshiftStore {
    async fn history(&self, query: &HistoryQuery) -> Result<Vec<Call>, StoreError> {
        let mut sql = format!("SELECT {COLUMNS} FROM calls WHERE 1 = 1");
        let mut statement = Statement::default();
        if let Some(contact) = &query.contact {
            sql.push_str(" AND contact_name = :contact");
            statement = statement.bind("contact", contact.clone());
        }
        if let Some(since) = &query.since {
            sql.push_str(" AND started_at >= CAST(:since AS TIMESTAMP)");
            statement = statement.bind("since", to_redshift_time(since));
        }
        if let Some(until) = &query.until {
            sql.push_str(" AND started_at < CAST(:until AS TIMESTAMP)");
            statement = statement.bind("until", to_redshift_time(until));
        }
        // Limit and offset are validated integers, not client text; Redshift does not take
        // parameters in LIMIT.
        sql.push_str(&format!(
            " ORDER BY started_at DESC, id DESC LIMIT {} OFFSET {}",
            query.limit, query.offset
        ));
        statement.sql = sql;
        self.select_calls(statement).await
    }

    async fn get(&self, id: &str) -> Result<Option<Call>, StoreError> {
        let statement = Statement::new(format!("SELECT {COLUMNS} FROM calls WHERE id = :id"))
            .bind("id", id.to_string());
        Ok(self.select_calls(statement).await?.into_iter().next())
    }

    async fn insert(&self, call: &Call) -> Result<InsertOutcome, StoreError> {
        if self.insert_missing(std::slice::from_ref(call)).await? > 0 {
            return Ok(InsertOutcome::Inserted);
        }
        match self.get(&call.id).await? {
            Some(existing) => Ok(InsertOutcome::AlreadyExists(existing)),
            // Reported no row added yet none is there: count it as a failure, never as stored.
            None => Err(StoreError::Service("insert was not applied".to_string())),
        }
    }
}

/// One `SELECT <values>` of a multi-row insert; absent values are SQL NULLs (the Data API has
/// no null parameter), everything else is a bound parameter. Only the first row names its
/// columns, and only non-text values are cast, to keep large batches small.
fn values_row(i: usize, call: &Call, statement: &mut Statement) -> String {
    let mut value = |column: &str, value: Option<String>, cast: Option<&str>| -> String {
        let expression = match value {
            Some(value) => {
                let name = format!("{column}_{i}");
                statement.params.push((name.clone(), value));
                format!(":{name}")
            }
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

fn is_terminal(status: &str) -> bool {
    matches!(status, "FINISHED" | "FAILED" | "ABORTED")
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
        .map_err(|_| StoreError::Decode(format!("not a timestamp: {text:?}")))
}

fn call_from_record(record: &[Field]) -> Result<Call, StoreError> {
    if record.len() != 8 {
        return Err(StoreError::Decode(format!(
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
        other => Err(StoreError::Decode(format!(
            "{column}: expected text, got {other:?}"
        ))),
    }
}

fn required_text(field: &Field, column: &str) -> Result<String, StoreError> {
    optional_text(field, column)?.ok_or_else(|| StoreError::Decode(format!("{column} is null")))
}

fn optional_long(field: &Field, column: &str) -> Result<Option<i64>, StoreError> {
    match field {
        Field::IsNull(true) => Ok(None),
        Field::LongValue(n) => Ok(Some(*n)),
        // NUMERIC comes back as text.
        Field::StringValue(s) => s
            .parse()
            .map(Some)
            .map_err(|_| StoreError::Decode(format!("{column}: not an integer: {s:?}"))),
        other => Err(StoreError::Decode(format!(
            "{column}: expected an integer, got {other:?}"
        ))),
    }
}

/// Turns an SDK failure into a short, credential-free reason.
fn classify<E>(err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error,
{
    match &err {
        SdkError::TimeoutError(_) => StoreError::Timeout,
        SdkError::DispatchFailure(failure) => {
            if failure.is_timeout() {
                StoreError::Timeout
            } else if failure.is_io() {
                StoreError::ConnectionRefused
            } else {
                StoreError::Connection("could not reach the Data API".to_string())
            }
        }
        SdkError::ResponseError(_) => {
            StoreError::Decode("unreadable Data API response".to_string())
        }
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("UnknownError");
            let status = service.raw().status().as_u16();
            if code.contains("Throttl") || status == 429 {
                StoreError::Throttled
            } else if status >= 500 {
                StoreError::Service(format!("{code} (HTTP {status})"))
            } else {
                let message = service.err().message().unwrap_or("");
                StoreError::Service(format!("{code}: {message}"))
            }
        }
        _ => StoreError::Connection(err.to_string()),
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
    }

    #[test]
    fn records_decode_with_nulls_and_reject_wrong_types() {
        let record = vec![
            Field::StringValue("abc".into()),
            Field::StringValue("Ada".into()),
            Field::IsNull(true),
            Field::StringValue("2024-11-04 09:00:00.5".into()),
            Field::LongValue(42),
            Field::IsNull(true),
            Field::IsNull(true),
            Field::StringValue("2024-11-04 09:01:00".into()),
        ];
        let call = call_from_record(&record).unwrap();
        assert_eq!(call.account_name, None);
        assert_eq!(call.duration_seconds, Some(42));
        assert_eq!(call.started_at.timestamp_subsec_millis(), 500);

        let mut bad = record.clone();
        bad[4] = Field::BooleanValue(true);
        assert!(matches!(call_from_record(&bad), Err(StoreError::Decode(_))));
    }

    #[test]
    fn statement_parameters_are_named() {
        let statement = Statement::new("SELECT :a").bind("a", "1");
        let params = statement.parameters().unwrap().unwrap();
        assert_eq!(params[0].name(), "a");
        assert_eq!(params[0].value(), "1");
    }
}
