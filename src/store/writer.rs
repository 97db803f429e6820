//! Writes to Redshift, shared: writes that arrive while another is on its way to Redshift go
//! together in the next statement (one BatchExecuteStatement for many calls), each still
//! answered with its own outcome. Nothing waits on purpose: a lone write goes at once, and only
//! writes that would have queued behind a statement share one. Lambda serves one request at a
//! time, so there each write is its own statement; the local server, `cargo lambda watch` and
//! Lambda Managed Instances serve many at once.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

use super::error::ErrorKind;
use super::redshift::sql::MAX_ROWS_PER_INSERT;
use super::redshift::RedshiftSession;
use super::{Call, InsertOutcome, StoreError};

/// A write waiting for its statement.
struct Queued {
    call: Call,
    reply: oneshot::Sender<Result<InsertOutcome, StoreError>>,
}

#[derive(Default)]
pub struct WriteBatcher {
    queue: Mutex<Vec<Queued>>,
    /// Held by the writer whose statement is on its way; the others queue meanwhile.
    turn: tokio::sync::Mutex<()>,
}

impl WriteBatcher {
    /// Writes `call` to Redshift, in a statement of its own or shared with writes queued beside
    /// it, within `session`'s deadline.
    pub async fn write(
        &self,
        call: &Call,
        session: RedshiftSession<'_>,
    ) -> Result<InsertOutcome, StoreError> {
        let (reply, mut answer) = oneshot::channel();
        self.queue().push(Queued {
            call: call.clone(),
            reply,
        });
        loop {
            // Past the deadline the write goes to the journal; should a statement still carry
            // it, its replay finds it there (same id, same call). Waiting for earlier writes
            // is back-pressure, not an outage: their own statements tell whether Redshift is
            // down.
            let turn = session
                .deadline()
                .run(async { Ok(self.turn.lock().await) })
                .await;
            let Ok(turn) = turn else {
                return match answer.try_recv() {
                    Ok(outcome) => outcome,
                    Err(_) => Err(queued_past_the_deadline()),
                };
            };
            match answer.try_recv() {
                Ok(outcome) => return outcome,
                // The request whose turn carried this write went away (its client left and the
                // server dropped it) before the statement answered: nothing says Redshift is
                // down, and the journal's replay settles whether the statement took it.
                Err(oneshot::error::TryRecvError::Closed) => return Err(carrier_went_away()),
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            let batch = self.take_batch();
            write_batch(batch, session).await;
            drop(turn);
        }
    }

    fn take_batch(&self) -> Vec<Queued> {
        let mut queue = self.queue();
        let n = queue.len().min(MAX_ROWS_PER_INSERT);
        queue.drain(..n).collect()
    }

    fn queue(&self) -> MutexGuard<'_, Vec<Queued>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Writes a batch and answers each write. When Redshift refuses part of a batch, it is halved
/// until the refused writes stand alone: about two statements per halving rather than one per
/// write, which matters under the Data API's quotas (BatchExecuteStatement: 20 a second).
async fn write_batch(batch: Vec<Queued>, session: RedshiftSession<'_>) {
    let mut groups = vec![batch];
    // Redshift answered a statement of this batch: it is up, whatever happens to the rest.
    let mut redshift_answered = false;
    while let Some(group) = groups.pop() {
        let calls: Vec<Call> = group.iter().map(|q| q.call.clone()).collect();
        match insert(&calls, session).await {
            Err(err) if err.is_refusal() && group.len() > 1 => {
                redshift_answered = true;
                let mut first = group;
                let second = first.split_off(first.len() / 2);
                groups.push(second);
                groups.push(first);
            }
            Err(err) => {
                let err = match err.kind {
                    ErrorKind::Timeout if redshift_answered => outran_the_deadline(),
                    _ => err,
                };
                for queued in group {
                    let _ = queued.reply.send(Err(err.clone()));
                }
            }
            Ok(outcomes) => {
                redshift_answered = true;
                for (queued, outcome) in group.into_iter().zip(outcomes) {
                    let _ = queued.reply.send(outcome);
                }
            }
        }
    }
}

/// The write waited for earlier writes' statements until its deadline.
fn queued_past_the_deadline() -> StoreError {
    StoreError::new(
        ErrorKind::Throttled,
        "earlier writes held Redshift's write path until this write's deadline",
    )
}

/// The statement that carried the write was abandoned with the request that sent it.
fn carrier_went_away() -> StoreError {
    StoreError::new(
        ErrorKind::Throttled,
        "the request that carried this write to Redshift went away before Redshift answered",
    )
}

/// Redshift kept answering, but narrowing a refused write down took the rest of the time: the
/// writes left are back-pressure, like throttling, and go to the journal without a fallback.
fn outran_the_deadline() -> StoreError {
    StoreError::new(
        ErrorKind::Throttled,
        "Redshift answered this batch of writes, but narrowing down a refused write in it \
         outran the deadline",
    )
}

/// Inserts `calls` (an id may come more than once: the first is written) and tells each what it
/// came to, in order.
async fn insert(
    calls: &[Call],
    session: RedshiftSession<'_>,
) -> Result<Vec<Result<InsertOutcome, StoreError>>, StoreError> {
    let mut first_of_id = HashMap::new();
    let mut distinct = Vec::with_capacity(calls.len());
    for (i, call) in calls.iter().enumerate() {
        if first_of_id.insert(call.id.as_str(), i).is_none() {
            distinct.push(call.clone());
        }
    }
    let stored = session.insert_missing(&distinct).await?;
    Ok(calls
        .iter()
        .enumerate()
        .map(|(i, call)| match stored.get(&call.id) {
            Some(held) if first_of_id.get(call.id.as_str()) == Some(&i) && is_this(held, call) => {
                Ok(InsertOutcome::Inserted)
            }
            Some(held) => Ok(InsertOutcome::AlreadyExists(held.clone())),
            None => Err(no_answer()),
        })
        .collect())
}

/// The stored call is this write: the same content, and the creation time this write gave it
/// (another writer of the same content would have given its own).
fn is_this(held: &Call, call: &Call) -> bool {
    held.created_at == call.created_at && held.same_content(call)
}

/// Reported no row yet none is there: a failure, never claimed as stored.
fn no_answer() -> StoreError {
    StoreError::new(
        ErrorKind::Service,
        "the insert left no row with this id and none was there",
    )
}
