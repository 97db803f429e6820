//! Request and response bodies, with the member names the SDK's generated
//! serializers and deserializers use (PascalCase operation members,
//! camelCase `SqlParameter`, timestamps as epoch seconds).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::results::{ColumnMetadata, Field};
use super::statement::{Query, Statement, Target};

/// Where to run and as whom: shared by ExecuteStatement and BatchExecuteStatement.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TargetFields {
    pub(crate) cluster_identifier: Option<String>,
    pub(crate) workgroup_name: Option<String>,
    pub(crate) database: Option<String>,
    pub(crate) db_user: Option<String>,
    pub(crate) secret_arn: Option<String>,
}

/// Members shared by ExecuteStatement and BatchExecuteStatement.
/// `StatementName` and `WithEvent` are accepted and ignored: they only matter
/// to ListStatements and EventBridge, which the stand-in does not have.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct SubmitFields {
    #[serde(flatten)]
    pub(crate) target: TargetFields,
    pub(crate) parameters: Option<Vec<SqlParameter>>,
    pub(crate) client_token: Option<String>,
    pub(crate) wait_time_seconds: Option<i64>,
    pub(crate) session_id: Option<String>,
    pub(crate) session_keep_alive_seconds: Option<i64>,
    pub(crate) result_format: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct SqlParameter {
    pub(crate) name: String,
    pub(crate) value: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ExecuteStatementRequest {
    pub(crate) sql: Option<String>,
    #[serde(flatten)]
    pub(crate) fields: SubmitFields,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct BatchExecuteStatementRequest {
    pub(crate) sqls: Option<Vec<String>>,
    pub(crate) execution_mode: Option<String>,
    #[serde(flatten)]
    pub(crate) fields: SubmitFields,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DescribeStatementRequest {
    pub(crate) id: Option<String>,
    pub(crate) wait_time_seconds: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct GetStatementResultRequest {
    pub(crate) id: Option<String>,
    pub(crate) next_token: Option<String>,
    pub(crate) wait_time_seconds: Option<i64>,
}

/// Only the `WaitTimeSeconds` member of any request body: the one member the
/// `ActiveWaitingRequestsExceeded` fault looks at, before the operation decodes the rest.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct WaitMember {
    /// Any JSON value but null: whether it is a valid wait is the operation's to say.
    wait_time_seconds: Option<serde_json::Value>,
}

impl WaitMember {
    /// Whether the body asks for a server-side wait (a body that is not JSON does not).
    pub(crate) fn carried_by(body: &[u8]) -> bool {
        serde_json::from_slice::<Self>(body).is_ok_and(|member| member.wait_time_seconds.is_some())
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct CancelStatementRequest {
    pub(crate) id: Option<String>,
}

/// Timestamps travel as fractional epoch seconds.
fn epoch_seconds(time: DateTime<Utc>) -> f64 {
    time.timestamp_micros() as f64 / 1e6
}

fn nanos(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

/// The target members echoed in every statement response.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TargetEcho {
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster_identifier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    workgroup_name: Option<String>,
    database: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    db_user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_arn: Option<String>,
}

impl From<&Target> for TargetEcho {
    fn from(target: &Target) -> Self {
        Self {
            cluster_identifier: target.cluster_identifier.clone(),
            workgroup_name: target.workgroup_name.clone(),
            database: target.database.clone(),
            db_user: target.db_user.clone(),
            secret_arn: target.secret_arn.clone(),
        }
    }
}

/// The answer to ExecuteStatement and BatchExecuteStatement.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct SubmitResponse {
    id: String,
    created_at: f64,
    #[serde(flatten)]
    target: TargetEcho,
    /// Only when the client asked to wait (`WaitTimeSeconds`).
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    has_result_set: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    redshift_pid: Option<i64>,
}

impl SubmitResponse {
    pub(crate) fn new(statement: &Statement, waited: bool) -> Self {
        Self {
            id: statement.id.clone(),
            created_at: epoch_seconds(statement.created_at),
            target: TargetEcho::from(&statement.target),
            status: waited.then(|| statement.status.as_str()),
            has_result_set: waited.then(|| statement.has_result_set()),
            redshift_pid: if waited { statement.pid } else { None },
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct SubStatementData {
    id: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    has_result_set: bool,
    result_rows: i64,
    result_size: i64,
    query_string: String,
    redshift_query_id: i64,
    created_at: f64,
    updated_at: f64,
    duration: i64,
}

impl SubStatementData {
    fn new(statement_id: &str, number: usize, query: &Query) -> Self {
        Self {
            id: format!("{statement_id}:{number}"),
            status: query.status.as_str(),
            error: query.error.clone(),
            has_result_set: query.has_result_set(),
            result_rows: query.result_rows,
            result_size: query.result_size,
            query_string: query.sql.clone(),
            redshift_query_id: query.query_id,
            created_at: epoch_seconds(query.created_at),
            updated_at: epoch_seconds(query.updated_at),
            duration: nanos(query.duration),
        }
    }
}

/// The answer to DescribeStatement.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DescribeResponse {
    id: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    has_result_set: bool,
    result_rows: i64,
    result_size: i64,
    query_string: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    query_parameters: Vec<SqlParameterOut>,
    created_at: f64,
    updated_at: f64,
    duration: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    redshift_pid: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    redshift_query_id: Option<i64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    sub_statements: Vec<SubStatementData>,
    #[serde(flatten)]
    target: TargetEcho,
}

/// `SqlParameter` in responses keeps its lower-case member names.
#[derive(Debug, Serialize)]
pub(crate) struct SqlParameterOut {
    name: String,
    value: String,
}

impl DescribeResponse {
    /// Describes a whole statement; a batch lists its queries as sub-statements.
    pub(crate) fn statement(statement: &Statement) -> Self {
        let single_query = if statement.is_batch {
            None
        } else {
            statement.queries.first()
        };
        let sum = |f: fn(&Query) -> i64| {
            statement
                .queries
                .iter()
                .map(f)
                .filter(|v| *v >= 0)
                .sum::<i64>()
        };
        let sub_statements = if statement.is_batch {
            let id = &statement.id;
            statement
                .queries
                .iter()
                .enumerate()
                .map(|(i, q)| SubStatementData::new(id, i + 1, q))
                .collect()
        } else {
            Vec::new()
        };
        let done = statement.status.is_terminal();
        Self {
            id: statement.id.clone(),
            status: statement.status.as_str(),
            error: statement.error.clone(),
            has_result_set: statement.has_result_set(),
            result_rows: if done { sum(|q| q.result_rows) } else { -1 },
            result_size: if done { sum(|q| q.result_size) } else { -1 },
            query_string: statement
                .queries
                .iter()
                .map(|q| q.sql.as_str())
                .collect::<Vec<_>>()
                .join("; "),
            query_parameters: parameters(statement),
            created_at: epoch_seconds(statement.created_at),
            updated_at: epoch_seconds(statement.updated_at),
            duration: nanos(statement.duration()),
            redshift_pid: statement.pid,
            redshift_query_id: single_query.map(|q| q.query_id),
            sub_statements,
            target: TargetEcho::from(&statement.target),
        }
    }

    /// Describes the `number`th query of a batch (`<id>:<number>`).
    pub(crate) fn sub_statement(statement: &Statement, number: usize, query: &Query) -> Self {
        Self {
            id: format!("{}:{number}", statement.id),
            status: query.status.as_str(),
            error: query.error.clone(),
            has_result_set: query.has_result_set(),
            result_rows: query.result_rows,
            result_size: query.result_size,
            query_string: query.sql.clone(),
            query_parameters: parameters(statement),
            created_at: epoch_seconds(query.created_at),
            updated_at: epoch_seconds(query.updated_at),
            duration: nanos(query.duration),
            redshift_pid: statement.pid,
            redshift_query_id: Some(query.query_id),
            sub_statements: Vec::new(),
            target: TargetEcho::from(&statement.target),
        }
    }
}

fn parameters(statement: &Statement) -> Vec<SqlParameterOut> {
    statement
        .parameters
        .iter()
        .map(|(name, value)| SqlParameterOut {
            name: name.clone(),
            value: value.clone(),
        })
        .collect()
}

/// The answer to GetStatementResult.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ResultPage<'a> {
    pub(crate) records: &'a [Vec<Field>],
    pub(crate) column_metadata: &'a [ColumnMetadata],
    pub(crate) total_num_rows: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) next_token: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct CancelResponse {
    pub(crate) status: bool,
}
