//! Reads: history and one call, from the replica when it answers them completely, else
//! from Redshift itself (with this environment's waiting writes added), else from the backup.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::{refused, unavailable, FailoverStore, Primary, RequestBudget, Served};
use crate::store::error::{ErrorKind, SqliteProblem};
use crate::store::json::CallsJson;
use crate::store::redshift::RedshiftStore;
use crate::store::replica::Pulled;
use crate::store::sqlite::{KnownCalls, SqliteStore};
use crate::store::{Call, HistoryQuery, Source, StoreError};

impl FailoverStore {
    /// History as the JSON array of the answer.
    pub async fn history(&self, query: &HistoryQuery) -> Served<CallsJson> {
        let Some(redshift) = &self.redshift else {
            return self.backup_history(query, None).await;
        };
        let budget = RequestBudget::start(redshift.timeout());
        let (route, _probe) = self.route();
        let as_of = match self.primary(redshift, route, &budget).await {
            Primary::Down => return self.backup_history(query, self.replica.as_of()).await,
            Primary::Direct { probe } => {
                return self.redshift_history(redshift, query, &budget, probe).await
            }
            Primary::Replica { as_of } => as_of,
        };
        self.note_replica_age(Utc::now());
        let local = match (self.backup.store(), self.replica.window_floor()) {
            (Ok(sqlite), Some(floor)) => sqlite.history_in_window(query, floor).await,
            (Err(err), _) => Err(err),
            (_, None) => Err(StoreError::new(
                ErrorKind::Sqlite(SqliteProblem::Other),
                "no replica yet",
            )),
        };
        match local {
            Ok(local) if local.complete => Served {
                source: Source::Redshift,
                as_of,
                result: Ok(local.calls),
            },
            // Beyond the window, or the backup failed: Redshift itself answers.
            _ => self.redshift_history(redshift, query, &budget, false).await,
        }
    }

    pub async fn get(&self, id: &str) -> Served<Option<Call>> {
        let Some(redshift) = &self.redshift else {
            return self.backup_get(id, None).await;
        };
        let asked_at = Utc::now();
        let budget = RequestBudget::start(redshift.timeout());
        let (route, _probe) = self.route();
        let (as_of, known, probe) = match self.primary(redshift, route, &budget).await {
            Primary::Down => return self.backup_get(id, self.replica.as_of()).await,
            Primary::Replica { as_of } => {
                self.note_replica_age(Utc::now());
                (as_of, self.known_calls(), false)
            }
            Primary::Direct { probe } => (None, KnownCalls::OwnWrites, probe),
        };
        // A probe asks Redshift itself.
        if let (Ok(sqlite), false) = (self.backup.store(), probe) {
            match sqlite.get_known(id, known).await {
                Ok(Some((call, true))) => return found_here(call, as_of.or(Some(Utc::now()))),
                // Not here at all: a pull may bring it. (A copy older than the window is not
                // settled by a pull; Redshift answers for it.)
                Ok(None) if as_of.is_some() => {
                    if let Some(served) = self
                        .after_a_pull(redshift, &sqlite, id, asked_at, &budget)
                        .await
                    {
                        return served;
                    }
                }
                _ => {}
            }
        }
        self.redshift_get(redshift, id, &budget, probe).await
    }

    /// An id the replica does not know: a pull sent after this request arrived holds every call
    /// acknowledged before it (one pull serves every miss meanwhile, where asking Redshift for
    /// each would cost two Data API calls apiece). `None` when that cannot settle it: the pull
    /// failed, or the call may be older than the window.
    async fn after_a_pull(
        &self,
        redshift: &RedshiftStore,
        sqlite: &SqliteStore,
        id: &str,
        asked_at: DateTime<Utc>,
        budget: &RequestBudget,
    ) -> Option<Served<Option<Call>>> {
        let session = redshift.within(budget.redshift);
        match self.replica.pull(sqlite, session, Some(asked_at)).await {
            Ok(Pulled::Pulled | Pulled::ByAnother) => {}
            // The pull that would settle it (this environment's own, or another environment's
            // on the shared file) did not finish within the request, and no time is left to ask
            // Redshift: it may hold the call, so the copy cannot say there is none.
            Ok(Pulled::Busy | Pulled::StillRunning) => {
                return Some(unavailable(StoreError::new(
                    ErrorKind::Throttled,
                    "the pull that would bring this call did not finish within the request",
                )))
            }
            Err(_) => return None,
        }
        let as_of = self.replica.as_of();
        let known = KnownCalls::window(Some(self.replica.window_floor()?));
        match sqlite.get_known(id, known).await.ok()? {
            Some((call, true)) => Some(found_here(call, as_of)),
            // The window holds every call: none with this id.
            None if known == KnownCalls::All => Some(Served {
                source: Source::Redshift,
                as_of,
                result: Ok(None),
            }),
            _ => None,
        }
    }

    /// History from Redshift itself, with this environment's writes that wait for replay added
    /// (it acknowledged them; Redshift does not hold them yet).
    async fn redshift_history(
        &self,
        redshift: &RedshiftStore,
        query: &HistoryQuery,
        budget: &RequestBudget,
        probe: bool,
    ) -> Served<CallsJson> {
        let waiting = self.waiting_writes().await;
        // With writes to add, the page is cut after merging: ask from the start.
        let asked = match waiting.is_empty() {
            true => query.clone(),
            false => HistoryQuery {
                offset: 0,
                limit: query.offset.saturating_add(query.limit),
                ..query.clone()
            },
        };
        tracing::info!("☁️ Executing query on Redshift");
        let asked_at = Utc::now();
        match redshift.within(budget.redshift).history(&asked).await {
            Ok(calls) => {
                self.contact_succeeded(probe);
                self.copy_in_background(&calls);
                let calls = merge_page(calls, waiting, query);
                Served {
                    source: Source::Redshift,
                    as_of: Some(asked_at),
                    result: Ok(CallsJson::from_calls(&calls)),
                }
            }
            Err(err) if err.is_refusal() => refused(err),
            // Throttled: back-pressure, not an outage; the backup answers this one.
            Err(err) if err.kind == ErrorKind::Throttled && !probe => {
                self.backup_history(query, self.replica.as_of()).await
            }
            Err(err) => {
                self.contact_failed(&err, probe);
                self.backup_history(query, self.replica.as_of()).await
            }
        }
    }

    async fn redshift_get(
        &self,
        redshift: &RedshiftStore,
        id: &str,
        budget: &RequestBudget,
        probe: bool,
    ) -> Served<Option<Call>> {
        tracing::info!("☁️ Executing query on Redshift");
        let asked_at = Utc::now();
        match redshift.within(budget.redshift).get(id).await {
            Ok(found) => {
                self.contact_succeeded(probe);
                if let Some(call) = &found {
                    self.copy_in_background(std::slice::from_ref(call));
                }
                Served {
                    source: Source::Redshift,
                    as_of: Some(asked_at),
                    result: Ok(found),
                }
            }
            Err(err) if err.is_refusal() => refused(err),
            // Throttled: Redshift is up and may hold the call; the backup cannot tell a call it
            // never saw from none, so the answer is that no database could look it up.
            Err(err) if err.kind == ErrorKind::Throttled && !probe => unavailable(err),
            Err(err) => {
                self.contact_failed(&err, probe);
                self.backup_get(id, self.replica.as_of()).await
            }
        }
    }

    /// This environment's writes that wait for replay, when there are any.
    async fn waiting_writes(&self) -> Vec<Call> {
        if self.journal.pending() == 0 {
            return Vec::new();
        }
        let read = match self.backup.store() {
            Ok(sqlite) => sqlite.pending_calls().await,
            Err(err) => Err(err),
        };
        read.unwrap_or_else(|err| {
            tracing::warn!(error = %err, detail = %err.detail, "This environment's writes waiting for replay could not be read; Redshift's answer goes without them");
            Vec::new()
        })
    }
}

/// What `calls` from Redshift and this environment's `waiting` writes make together: ids once,
/// newest first, the query's page.
fn merge_page(calls: Vec<Call>, waiting: Vec<Call>, query: &HistoryQuery) -> Vec<Call> {
    if waiting.is_empty() {
        return calls;
    }
    // An id Redshift answered with stands as Redshift has it (a waiting write of the same id
    // meets it at replay), so each id once even when the two versions' times differ.
    let answered: HashSet<String> = calls.iter().map(|call| call.id.clone()).collect();
    let matching = waiting
        .into_iter()
        .filter(|call| !answered.contains(&call.id) && matches_query(call, query));
    let mut merged: Vec<Call> = calls.into_iter().chain(matching).collect();
    merged.sort_by(|a, b| (b.started_at, &b.id).cmp(&(a.started_at, &a.id)));
    merged
        .into_iter()
        .skip(query.offset as usize)
        .take(query.limit as usize)
        .collect()
}

fn matches_query(call: &Call, query: &HistoryQuery) -> bool {
    query
        .contact
        .as_ref()
        .is_none_or(|c| *c == call.contact_name)
        && query.since.is_none_or(|since| call.started_at >= since)
        && query.until.is_none_or(|until| call.started_at < until)
}

/// A call this environment knows, answered from the replica.
fn found_here(call: Call, as_of: Option<DateTime<Utc>>) -> Served<Option<Call>> {
    Served {
        source: Source::Redshift,
        as_of,
        result: Ok(Some(call)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn call(id: &str, hour: u32, contact: &str) -> Call {
        let t = Utc.with_ymd_and_hms(2024, 1, 1, hour, 0, 0).unwrap();
        Call {
            id: id.into(),
            contact_name: contact.into(),
            account_name: None,
            started_at: t,
            duration_seconds: None,
            outcome: None,
            notes: None,
            created_at: t,
        }
    }

    #[test]
    fn waiting_writes_join_redshift_s_page_in_order_once() {
        let query = HistoryQuery {
            limit: 2,
            offset: 1,
            contact: Some("Ada".into()),
            ..HistoryQuery::default()
        };
        let from_redshift = vec![
            call("c", 5, "Ada"),
            call("b", 3, "Ada"),
            call("a", 1, "Ada"),
        ];
        let waiting = vec![
            call("w", 4, "Ada"),
            call("x", 9, "Bob"),
            // Another version of a call Redshift answered with, at another time.
            call("b", 8, "Ada"),
        ];
        let page = merge_page(from_redshift, waiting, &query);
        let ids: Vec<&str> = page.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["w", "b"]);
    }
}
