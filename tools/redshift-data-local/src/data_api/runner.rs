//! The life of a statement: SUBMITTED when the request is answered, STARTED
//! once a task has a database session for it, then FINISHED, FAILED or
//! ABORTED. Injected statement faults are decided at submission, so a fault
//! set after a statement was submitted does not change it.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};
use uuid::Uuid;

use super::DataApi;
use super::error::ApiError;
use super::postgres::{Execution, Mode, Run};
use super::statement::{Query, Statement, Status, Target, TooManyActive};
use crate::fault::Fault;

/// A validated ExecuteStatement or BatchExecuteStatement.
pub(crate) struct NewStatement {
    pub(crate) target: Target,
    pub(crate) parameters: Vec<(String, String)>,
    pub(crate) sqls: Vec<String>,
    pub(crate) bound_sqls: Vec<String>,
    pub(crate) is_batch: bool,
    pub(crate) mode: Mode,
    pub(crate) client_token: Option<String>,
}

/// What an injected fault does to a statement.
enum StatementFault {
    Fail(String),
    Abort,
    StayStarted(Duration),
}

impl StatementFault {
    fn from_fault(fault: Fault) -> Option<Self> {
        match fault {
            Fault::FailStatements(message) => Some(Self::Fail(message)),
            Fault::AbortStatements => Some(Self::Abort),
            Fault::StayStarted(duration) => Some(Self::StayStarted(duration)),
            _ => None,
        }
    }
}

impl DataApi {
    /// Records the statement and starts running it; returns its id. Refused, as AWS refuses it,
    /// while the limit of active statements is reached.
    pub(crate) fn submit(self: &Arc<Self>, new: NewStatement) -> Result<String, ApiError> {
        let id = Uuid::new_v4().to_string();
        let now = Utc::now();
        let queries = new
            .sqls
            .into_iter()
            .zip(new.bound_sqls)
            .map(|(sql, bound)| Query::new(sql, bound, self.next_query_id(), now))
            .collect();
        let statement = Statement {
            id: id.clone(),
            target: new.target,
            parameters: new.parameters,
            is_batch: new.is_batch,
            queries,
            status: Status::Submitted,
            error: None,
            pid: None,
            client_token: new.client_token,
            created_at: now,
            updated_at: now,
        };
        let cancel = self.shutdown.child_token();
        let limit = self.active_statements.get();
        if let Err(TooManyActive { limit }) =
            self.statements.insert(statement, cancel.clone(), limit)
        {
            info!(
                limit,
                "submission refused: the limit of active statements is reached"
            );
            return Err(ApiError::active_statements_exceeded());
        }
        let fault = self.fault.get().and_then(StatementFault::from_fault);
        debug!(statement = %id, batch = new.is_batch, "statement submitted");
        let task = Arc::clone(self).run(id.clone(), new.mode, fault, cancel);
        self.tasks.spawn(task);
        Ok(id)
    }

    async fn run(
        self: Arc<Self>,
        id: String,
        mode: Mode,
        fault: Option<StatementFault>,
        cancel: CancellationToken,
    ) {
        let Some(statement) = self.statements.get(&id) else {
            return;
        };
        let sqls: Vec<String> = statement
            .queries
            .iter()
            .map(|q| q.bound_sql.clone())
            .collect();
        let count = sqls.len();
        let execution = match fault {
            Some(StatementFault::Fail(message)) => {
                Execution::not_run(count, Status::Failed, Some(message))
            }
            Some(StatementFault::Abort) => Execution::not_run(count, Status::Aborted, None),
            Some(StatementFault::StayStarted(duration)) => {
                self.mark_started(&id, None);
                tokio::select! {
                    () = cancel.cancelled() => Execution::not_run(count, Status::Aborted, None),
                    () = tokio::time::sleep(duration) => self.execute(&id, &sqls, mode, &cancel).await,
                }
            }
            None => self.execute(&id, &sqls, mode, &cancel).await,
        };
        self.record(&id, execution);
    }

    async fn execute(
        &self,
        id: &str,
        sqls: &[String],
        mode: Mode,
        cancel: &CancellationToken,
    ) -> Execution {
        let on_started = |pid| self.mark_started(id, Some(pid));
        let run = Run {
            sqls,
            mode,
            cancel,
            run_time: self.latency.statement_time(),
        };
        self.database.execute(run, on_started).await
    }

    fn mark_started(&self, id: &str, pid: Option<i64>) {
        self.statements.update(id, |statement| {
            statement.set_status(Status::Started, Utc::now());
            statement.pid = pid.or(statement.pid);
        });
    }

    fn record(&self, id: &str, execution: Execution) {
        let now = Utc::now();
        info!(
            statement = %id,
            status = execution.status.as_str(),
            error = execution.error.as_deref().unwrap_or(""),
            "statement done"
        );
        self.statements.update(id, |statement| {
            for (query, outcome) in statement.queries.iter_mut().zip(execution.queries) {
                query.result_size = outcome.result.as_ref().map_or(0, |r| r.size());
                query.status = outcome.status;
                query.error = outcome.error;
                query.result = outcome.result;
                query.result_rows = outcome.rows;
                query.duration = outcome.duration;
                query.updated_at = now;
            }
            statement.status = execution.status;
            statement.error = execution.error;
            statement.updated_at = now;
        });
    }
}
