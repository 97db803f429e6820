//! Statements as the Data API tracks them, and the in-memory store that keeps
//! them while clients poll for their status and fetch their results.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::results::ResultSet;

/// How many statements are remembered; older finished ones are forgotten
/// first, like the Data API forgets results after a while.
const MAX_STATEMENTS: usize = 10_000;

/// The Data API's `StatusString`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Submitted,
    Started,
    Finished,
    Failed,
    Aborted,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Submitted => "SUBMITTED",
            Self::Started => "STARTED",
            Self::Finished => "FINISHED",
            Self::Failed => "FAILED",
            Self::Aborted => "ABORTED",
        }
    }

    pub(crate) fn is_terminal(self) -> bool {
        matches!(self, Self::Finished | Self::Failed | Self::Aborted)
    }
}

/// Where a statement runs and as whom; echoed back in responses.
#[derive(Debug, Clone, Default)]
pub(crate) struct Target {
    pub(crate) cluster_identifier: Option<String>,
    pub(crate) workgroup_name: Option<String>,
    pub(crate) database: String,
    pub(crate) db_user: Option<String>,
    pub(crate) secret_arn: Option<String>,
}

/// One SQL statement: all of an ExecuteStatement, or one of a batch.
#[derive(Debug, Clone)]
pub(crate) struct Query {
    /// The SQL as the client sent it.
    pub(crate) sql: String,
    /// The SQL with the parameters bound, as it is executed.
    pub(crate) bound_sql: String,
    pub(crate) status: Status,
    pub(crate) error: Option<String>,
    pub(crate) result: Option<Arc<ResultSet>>,
    /// Rows returned or affected; -1 while unknown.
    pub(crate) result_rows: i64,
    pub(crate) result_size: i64,
    pub(crate) query_id: i64,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
    pub(crate) duration: Duration,
}

impl Query {
    pub(crate) fn new(sql: String, bound_sql: String, query_id: i64, now: DateTime<Utc>) -> Self {
        Self {
            sql,
            bound_sql,
            status: Status::Submitted,
            error: None,
            result: None,
            result_rows: -1,
            result_size: -1,
            query_id,
            created_at: now,
            updated_at: now,
            duration: Duration::ZERO,
        }
    }

    pub(crate) fn has_result_set(&self) -> bool {
        self.result.is_some()
    }
}

/// A submitted ExecuteStatement or BatchExecuteStatement.
#[derive(Debug, Clone)]
pub(crate) struct Statement {
    pub(crate) id: String,
    pub(crate) target: Target,
    pub(crate) parameters: Vec<(String, String)>,
    pub(crate) is_batch: bool,
    pub(crate) queries: Vec<Query>,
    pub(crate) status: Status,
    pub(crate) error: Option<String>,
    pub(crate) pid: Option<i64>,
    pub(crate) client_token: Option<String>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
}

impl Statement {
    pub(crate) fn has_result_set(&self) -> bool {
        self.queries.iter().any(Query::has_result_set)
    }

    /// Time spent running: the sum of the statement's queries.
    pub(crate) fn duration(&self) -> Duration {
        self.queries.iter().map(|q| q.duration).sum()
    }

    /// Marks the statement and every query not yet done with `status`.
    pub(crate) fn set_status(&mut self, status: Status, now: DateTime<Utc>) {
        self.status = status;
        self.updated_at = now;
        for query in self.queries.iter_mut().filter(|q| !q.status.is_terminal()) {
            query.status = status;
            query.updated_at = now;
        }
    }
}

/// The result of looking up a statement to cancel it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CancelOutcome {
    Cancelled,
    NotFound,
    AlreadyDone(Status),
}

struct Entry {
    statement: Statement,
    /// Lets waiters (`WaitTimeSeconds`) sleep until the status changes.
    status: watch::Sender<Status>,
    cancel: CancellationToken,
}

#[derive(Default)]
struct Entries {
    by_id: HashMap<String, Entry>,
    /// Ids in submission order, to forget the oldest first.
    order: VecDeque<String>,
    by_client_token: HashMap<String, String>,
}

/// A submission refused because `limit` statements are active already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooManyActive {
    pub(crate) limit: usize,
}

/// Every statement the stand-in knows about.
#[derive(Default)]
pub(crate) struct StatementStore {
    entries: Mutex<Entries>,
}

impl StatementStore {
    /// Records a new statement, unless `limit` statements are active (submitted and not yet
    /// ended) already. Counting and recording under one lock keeps two concurrent submissions
    /// from both taking the last place.
    pub(crate) fn insert(
        &self,
        statement: Statement,
        cancel: CancellationToken,
        limit: Option<usize>,
    ) -> Result<(), TooManyActive> {
        let mut entries = self.lock();
        if let Some(limit) = limit
            && active_count(&entries) >= limit
        {
            return Err(TooManyActive { limit });
        }
        forget_oldest(&mut entries);
        let id = statement.id.clone();
        if let Some(token) = &statement.client_token {
            entries.by_client_token.insert(token.clone(), id.clone());
        }
        let (status, _) = watch::channel(statement.status);
        entries.order.push_back(id.clone());
        entries.by_id.insert(
            id,
            Entry {
                statement,
                status,
                cancel,
            },
        );
        Ok(())
    }

    pub(crate) fn get(&self, id: &str) -> Option<Statement> {
        self.lock().by_id.get(id).map(|e| e.statement.clone())
    }

    /// The statement submitted earlier with the same idempotency token.
    pub(crate) fn find_by_client_token(&self, token: &str) -> Option<Statement> {
        let entries = self.lock();
        let id = entries.by_client_token.get(token)?;
        entries.by_id.get(id).map(|e| e.statement.clone())
    }

    /// Changes a statement and wakes whoever waits for its status.
    pub(crate) fn update(&self, id: &str, change: impl FnOnce(&mut Statement)) {
        let mut entries = self.lock();
        if let Some(entry) = entries.by_id.get_mut(id) {
            change(&mut entry.statement);
            entry.status.send_replace(entry.statement.status);
        }
    }

    /// Waits until the statement is done or `timeout` has passed.
    pub(crate) async fn wait_until_done(&self, id: &str, timeout: Duration) {
        let receiver = self.lock().by_id.get(id).map(|e| e.status.subscribe());
        if let Some(mut receiver) = receiver {
            let done = receiver.wait_for(|status| status.is_terminal());
            // Timing out is the normal end of a wait that found nothing new.
            let _ = tokio::time::timeout(timeout, done).await;
        }
    }

    /// Asks a running statement to stop; its task marks it ABORTED.
    pub(crate) fn cancel(&self, id: &str) -> CancelOutcome {
        let entries = self.lock();
        match entries.by_id.get(id) {
            None => CancelOutcome::NotFound,
            Some(entry) if entry.statement.status.is_terminal() => {
                CancelOutcome::AlreadyDone(entry.statement.status)
            }
            Some(entry) => {
                entry.cancel.cancel();
                CancelOutcome::Cancelled
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Statements not yet ended (SUBMITTED or STARTED), the ones AWS's active-statements limit
/// counts. A scan rather than a running count: it cannot drift from the statuses, and the store
/// is small enough (at most [`MAX_STATEMENTS`]) for a submission to afford it.
fn active_count(entries: &Entries) -> usize {
    entries
        .by_id
        .values()
        .filter(|entry| !entry.statement.status.is_terminal())
        .count()
}

/// Forgets finished statements, oldest first, to make room for one more.
fn forget_oldest(entries: &mut Entries) {
    let mut excess = (entries.by_id.len() + 1).saturating_sub(MAX_STATEMENTS);
    if excess == 0 {
        return;
    }
    let Entries {
        by_id,
        order,
        by_client_token,
    } = entries;
    order.retain(|id| {
        let done = by_id
            .get(id)
            .is_none_or(|entry| entry.statement.status.is_terminal());
        if excess == 0 || !done {
            return true;
        }
        if let Some(token) = by_id
            .remove(id)
            .and_then(|entry| entry.statement.client_token)
        {
            by_client_token.remove(&token);
        }
        excess -= 1;
        false
    });
}
