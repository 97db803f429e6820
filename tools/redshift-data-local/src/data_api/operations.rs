//! The Data API operations: request validation and the shape of each answer.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::Response;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::postgres::Mode;
use super::results::{next_token, token_offset};
use super::runner::NewStatement;
use super::statement::{CancelOutcome, Query, Statement, Status, Target};
use super::wire::{
    BatchExecuteStatementRequest, CancelResponse, CancelStatementRequest, DescribeResponse,
    DescribeStatementRequest, ExecuteStatementRequest, GetStatementResultRequest, ResultPage,
    SqlParameter, SubmitFields, SubmitResponse, TargetFields,
};
use super::{DataApi, json_response};
use crate::sql::params;

/// The most statements one BatchExecuteStatement may carry.
const MAX_BATCH: usize = 40;
/// The longest server-side wait the API allows.
const MAX_WAIT_SECONDS: i64 = 30;
/// The longest SQL text (in bytes) of one statement. AWS documents the limit as 100 KB without
/// saying which kilobyte; the smaller reading is taken, so that nothing the stand-in accepts
/// could be refused by AWS.
const MAX_SQL_BYTES: usize = 100_000;

pub(crate) fn submits_statements(operation: &str) -> bool {
    matches!(operation, "ExecuteStatement" | "BatchExecuteStatement")
}

pub(crate) async fn execute_statement(
    api: &Arc<DataApi>,
    body: &[u8],
) -> Result<Response, ApiError> {
    let request: ExecuteStatementRequest = decode(body)?;
    let sql = request
        .sql
        .filter(|sql| !sql.trim().is_empty())
        .ok_or_else(|| ApiError::validation("Sql is required and must not be empty."))?;
    submit(api, vec![sql], Mode::Transaction, false, request.fields).await
}

pub(crate) async fn batch_execute_statement(
    api: &Arc<DataApi>,
    body: &[u8],
) -> Result<Response, ApiError> {
    let request: BatchExecuteStatementRequest = decode(body)?;
    let sqls = request.sqls.unwrap_or_default();
    if sqls.is_empty() || sqls.len() > MAX_BATCH {
        return Err(ApiError::validation(format!(
            "Sqls must contain between 1 and {MAX_BATCH} statements."
        )));
    }
    if sqls.iter().any(|sql| sql.trim().is_empty()) {
        return Err(ApiError::validation(
            "Sqls must not contain empty statements.",
        ));
    }
    let mode = match request.execution_mode.as_deref() {
        None | Some("TRANSACTION") => Mode::Transaction,
        Some("AUTO_COMMIT") => Mode::AutoCommit,
        Some(other) => {
            return Err(ApiError::validation(format!(
                "ExecutionMode must be TRANSACTION or AUTO_COMMIT, not {other:?}."
            )));
        }
    };
    submit(api, sqls, mode, true, request.fields).await
}

async fn submit(
    api: &Arc<DataApi>,
    sqls: Vec<String>,
    mode: Mode,
    is_batch: bool,
    fields: SubmitFields,
) -> Result<Response, ApiError> {
    let wait = wait_time(fields.wait_time_seconds)?;
    reject_unsupported(&fields)?;
    check_sql_sizes(&sqls)?;
    let target = target(fields.target)?;
    // The whole request is checked before the ClientToken is looked up, so that a retry is
    // refused as its first try would have been rather than answered with an earlier statement.
    let parameters = parameter_pairs(fields.parameters)?;
    let bound_sqls =
        params::bind(&sqls, &parameters).map_err(|e| ApiError::validation(e.to_string()))?;
    let existing = fields
        .client_token
        .as_deref()
        .and_then(|token| api.statements.find_by_client_token(token));
    let id = match existing {
        // Idempotent retry: the statement already submitted with this token.
        Some(statement) => statement.id,
        None => api.submit(NewStatement {
            target,
            parameters,
            sqls,
            bound_sqls,
            is_batch,
            mode,
            client_token: fields.client_token,
        })?,
    };
    if let Some(wait) = wait {
        api.statements.wait_until_done(&id, wait).await;
    }
    let statement = api
        .statements
        .get(&id)
        .ok_or_else(|| ApiError::statement_not_found(&id))?;
    Ok(ok(&SubmitResponse::new(&statement, wait.is_some())))
}

pub(crate) async fn describe_statement(
    api: &Arc<DataApi>,
    body: &[u8],
) -> Result<Response, ApiError> {
    let request: DescribeStatementRequest = decode(body)?;
    let id = StatementId::parse(request.id)?;
    let statement = find(api, &id, wait_time(request.wait_time_seconds)?).await?;
    let response = match id.number {
        None => DescribeResponse::statement(&statement),
        Some(number) => {
            DescribeResponse::sub_statement(&statement, number, sub_query(&statement, &id)?)
        }
    };
    Ok(ok(&response))
}

pub(crate) async fn get_statement_result(
    api: &Arc<DataApi>,
    body: &[u8],
) -> Result<Response, ApiError> {
    let request: GetStatementResultRequest = decode(body)?;
    let id = StatementId::parse(request.id)?;
    let statement = find(api, &id, wait_time(request.wait_time_seconds)?).await?;
    let query = match id.number {
        Some(_) => sub_query(&statement, &id)?,
        None if statement.is_batch => {
            return Err(ApiError::validation(format!(
                "{} is a batch: fetch the result of one of its statements with the Id {}:<number>.",
                id.full, id.base
            )));
        }
        None => statement
            .queries
            .first()
            .ok_or_else(|| ApiError::no_result(&id.full))?,
    };
    let result = match (&query.result, query.status) {
        (Some(result), Status::Finished) => result,
        _ => return Err(ApiError::no_result(&id.full)),
    };
    let total = result.records.len();
    let offset = match request.next_token {
        None => 0,
        Some(token) => token_offset(&token, &id.full)
            .filter(|offset| *offset < total)
            .ok_or_else(|| ApiError::validation("The NextToken is invalid."))?,
    };
    let end = offset.saturating_add(api.page_size).min(total);
    Ok(ok(&ResultPage {
        records: &result.records[offset..end],
        column_metadata: &result.columns,
        total_num_rows: i64::try_from(total).unwrap_or(i64::MAX),
        next_token: (end < total).then(|| next_token(&id.full, end)),
    }))
}

pub(crate) async fn cancel_statement(
    api: &Arc<DataApi>,
    body: &[u8],
) -> Result<Response, ApiError> {
    let request: CancelStatementRequest = decode(body)?;
    let id = StatementId::parse(request.id)?;
    match api.statements.cancel(&id.base) {
        CancelOutcome::Cancelled => Ok(ok(&CancelResponse { status: true })),
        CancelOutcome::NotFound => Err(ApiError::statement_not_found(&id.full)),
        CancelOutcome::AlreadyDone(status) => Err(ApiError::validation(format!(
            "Could not cancel a query that is already in {} state.",
            status.as_str()
        ))),
    }
}

fn ok(body: &impl serde::Serialize) -> Response {
    json_response(StatusCode::OK, body)
}

/// Decodes a request body; malformed JSON and wrongly typed members are told apart
/// the way AWS does (serialization vs validation error).
fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.is_empty() {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            ApiError::validation(e.to_string())
        } else {
            ApiError::serialization(e.to_string())
        }
    })
}

fn wait_time(seconds: Option<i64>) -> Result<Option<Duration>, ApiError> {
    match seconds {
        None => Ok(None),
        Some(s @ 0..=MAX_WAIT_SECONDS) => Ok(Some(Duration::from_secs(s.unsigned_abs()))),
        Some(s) => Err(ApiError::validation(format!(
            "WaitTimeSeconds must be between 0 and {MAX_WAIT_SECONDS}; {s} was given."
        ))),
    }
}

/// Each statement's text within the API's size limit, refused in AWS's words.
fn check_sql_sizes(sqls: &[String]) -> Result<(), ApiError> {
    if sqls.iter().any(|sql| sql.len() > MAX_SQL_BYTES) {
        return Err(ApiError::validation(
            "Cannot process query string larger than 100kB",
        ));
    }
    Ok(())
}

/// The parameters as name/value pairs. An absent list means none; a present one must hold at
/// least one parameter (the API's own constraint, in AWS's words).
fn parameter_pairs(
    parameters: Option<Vec<SqlParameter>>,
) -> Result<Vec<(String, String)>, ApiError> {
    match parameters {
        Some(list) if list.is_empty() => Err(ApiError::validation(
            "1 validation error detected: Value '[]' at 'parameters' failed to satisfy constraint: Member must have length greater than or equal to 1",
        )),
        list => Ok(list
            .unwrap_or_default()
            .into_iter()
            .map(|p| (p.name, p.value))
            .collect()),
    }
}

/// Features of the real API that the stand-in does not imitate are refused
/// loudly rather than silently ignored.
fn reject_unsupported(fields: &SubmitFields) -> Result<(), ApiError> {
    if fields.session_id.is_some() || fields.session_keep_alive_seconds.is_some() {
        return Err(ApiError::validation(
            "Sessions (SessionId, SessionKeepAliveSeconds) are not supported by the local Redshift Data API.",
        ));
    }
    match fields.result_format.as_deref() {
        None | Some("JSON") => Ok(()),
        Some(other) => Err(ApiError::validation(format!(
            "ResultFormat {other:?} is not supported by the local Redshift Data API; use JSON."
        ))),
    }
}

fn target(fields: TargetFields) -> Result<Target, ApiError> {
    match (&fields.cluster_identifier, &fields.workgroup_name) {
        (Some(_), Some(_)) => {
            return Err(ApiError::validation(
                "Specify either ClusterIdentifier or WorkgroupName, not both.",
            ));
        }
        (None, None) => {
            return Err(ApiError::validation(
                "Either ClusterIdentifier or WorkgroupName is required.",
            ));
        }
        _ => {}
    }
    if fields.db_user.is_some() && fields.secret_arn.is_some() {
        return Err(ApiError::validation(
            "Specify either DbUser or SecretArn, not both.",
        ));
    }
    let database = fields
        .database
        .filter(|d| !d.is_empty())
        .ok_or_else(|| ApiError::validation("Database is required."))?;
    Ok(Target {
        cluster_identifier: fields.cluster_identifier,
        workgroup_name: fields.workgroup_name,
        database,
        db_user: fields.db_user,
        secret_arn: fields.secret_arn,
    })
}

/// A statement id as clients send it: `<uuid>` or `<uuid>:<number>` for the
/// `number`th statement of a batch.
struct StatementId {
    full: String,
    base: String,
    number: Option<usize>,
}

impl StatementId {
    fn parse(id: Option<String>) -> Result<Self, ApiError> {
        let full = id.ok_or_else(|| ApiError::validation("Id is required."))?;
        let invalid = || ApiError::validation(format!("Id {full:?} is not a valid statement id."));
        let (base, number) = match full.split_once(':') {
            Some((base, number)) => (base, Some(number.parse::<usize>().map_err(|_| invalid())?)),
            None => (full.as_str(), None),
        };
        let is_uuid = base.len() == 36
            && base == base.to_ascii_lowercase()
            && uuid::Uuid::parse_str(base).is_ok();
        if !is_uuid {
            return Err(invalid());
        }
        Ok(Self {
            base: base.to_owned(),
            number,
            full,
        })
    }
}

/// Looks a statement up, after waiting up to `wait` for it to finish.
async fn find(
    api: &DataApi,
    id: &StatementId,
    wait: Option<Duration>,
) -> Result<Statement, ApiError> {
    if let Some(wait) = wait {
        api.statements.wait_until_done(&id.base, wait).await;
    }
    api.statements
        .get(&id.base)
        .ok_or_else(|| ApiError::statement_not_found(&id.full))
}

fn sub_query<'a>(statement: &'a Statement, id: &StatementId) -> Result<&'a Query, ApiError> {
    id.number
        .filter(|_| statement.is_batch)
        .and_then(|number| number.checked_sub(1))
        .and_then(|index| statement.queries.get(index))
        .ok_or_else(|| ApiError::statement_not_found(&id.full))
}
