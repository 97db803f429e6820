//! Answers from the backup: reads while Redshift is down, and writes it journals for replay.

use chrono::{DateTime, Utc};

use super::{retired, unavailable, FailoverStore, Served};
use crate::store::json::CallsJson;
use crate::store::sqlite::SqliteStore;
use crate::store::{Call, HistoryQuery, InsertOutcome, Source, StoreError};

impl FailoverStore {
    pub(super) async fn backup_history(
        &self,
        query: &HistoryQuery,
        as_of: Option<DateTime<Utc>>,
    ) -> Served<CallsJson> {
        self.read_backup(
            as_of,
            |sqlite| async move { sqlite.history_json(query).await },
        )
        .await
    }

    pub(super) async fn backup_get(
        &self,
        id: &str,
        as_of: Option<DateTime<Utc>>,
    ) -> Served<Option<Call>> {
        self.read_backup(as_of, |sqlite| async move { sqlite.get(id).await })
            .await
    }

    async fn read_backup<T, F, Fut>(&self, as_of: Option<DateTime<Utc>>, read: F) -> Served<T>
    where
        F: FnOnce(SqliteStore) -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let sqlite = match self.backup.store() {
            Ok(sqlite) => sqlite,
            Err(err) => return unavailable(err),
        };
        tracing::info!("💾 Executing query on local SQLite");
        match read(sqlite).await {
            Ok(found) => Served {
                source: Source::Sqlite,
                as_of,
                result: Ok(found),
            },
            Err(err) => {
                tracing::error!(error = %err.detail, "❌ Local SQLite failed too: {err}");
                self.backup.query_failed(&err);
                unavailable(err)
            }
        }
    }

    /// A write the backup takes (journaled when Redshift is configured).
    pub(super) async fn backup_insert(
        &self,
        call: &Call,
        as_of: Option<DateTime<Utc>>,
    ) -> Served<InsertOutcome> {
        let sqlite = match self.backup.store_for_write() {
            Ok(sqlite) => sqlite,
            Err(err) => return unavailable(err),
        };
        tracing::info!("💾 Executing query on local SQLite");
        let mut result = sqlite.insert(call).await;
        if retired(&result) {
            // The file was found broken and replaced while this write waited for it: the new
            // file takes it.
            result = match self.backup.store_for_write() {
                Ok(sqlite) => sqlite.insert(call).await,
                Err(err) => Err(err),
            };
        }
        self.backup.write_done(result.as_ref().map(|_| ()));
        match result {
            Ok(outcome) => {
                if self.redshift.is_some() && outcome == InsertOutcome::Inserted {
                    self.journal.journaled();
                }
                Served {
                    source: Source::Sqlite,
                    as_of,
                    result: Ok(outcome),
                }
            }
            Err(err) => {
                tracing::error!(error = %err.detail, "❌ Local SQLite failed too: {err}");
                unavailable(err)
            }
        }
    }
}
