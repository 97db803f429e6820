//! `call-history seed-redshift`: loads the sample calls that ship with the function (the ones a
//! new local SQLite database starts with, `sql/sqlite/seed.sql`) into Redshift, so that a fresh
//! warehouse — the local stand-in in particular — shows the same history as the backup.
//!
//! It is safe to run any number of times: calls whose id Redshift already holds are left as they
//! are, so running it again adds nothing, and calls recorded since are never touched.

use std::path::{Path, PathBuf};

use crate::store::journal::REPLAY_BATCH;
use crate::store::redshift::RedshiftStore;
use crate::store::sqlite::{SqliteOptions, SqliteStore};
use crate::store::{Call, HistoryQuery, StoreError};
use crate::{App, RedshiftNotConfigured};

/// Why the sample calls could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error(transparent)]
    NotConfigured(#[from] RedshiftNotConfigured),
    #[error("the shipped sample calls could not be read: {0}")]
    Sample(StoreError),
    #[error("Redshift did not take the sample calls: {0}")]
    Redshift(StoreError),
}

/// What a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedReport {
    /// Sample calls shipped with the function.
    pub sample_calls: usize,
    /// How many of them Redshift did not hold yet and now does.
    pub added: i64,
}

/// The command: loads the sample calls into the configured Redshift and logs what it did.
pub async fn run(app: &App) -> Result<(), SeedError> {
    let redshift = app.configured_redshift()?;
    let report = seed(redshift).await?;
    tracing::info!(
        "✅ Redshift holds the {} sample calls ({} added now, {} were already there)",
        report.sample_calls,
        report.added,
        report.sample_calls as i64 - report.added
    );
    Ok(())
}

/// Loads the compiled-in sample calls into Redshift, those it does not hold yet.
pub async fn seed(redshift: &RedshiftStore) -> Result<SeedReport, SeedError> {
    let calls = sample_calls().await.map_err(SeedError::Sample)?;
    let mut added = 0;
    for batch in calls.chunks(REPLAY_BATCH) {
        let session = redshift.session();
        let ids: Vec<&str> = batch.iter().map(|c| c.id.as_str()).collect();
        let held = session
            .existing_ids(&ids)
            .await
            .map_err(SeedError::Redshift)?;
        session
            .insert_missing(batch)
            .await
            .map_err(SeedError::Redshift)?;
        added += (batch.len() - held.len()) as i64;
    }
    Ok(SeedReport {
        sample_calls: calls.len(),
        added,
    })
}

/// Every sample call, read from a new SQLite database in a temporary file: the sample data is
/// SQL for SQLite, and the SQLite store is what turns it into calls.
pub async fn sample_calls() -> Result<Vec<Call>, StoreError> {
    let file = TemporaryDatabase::new();
    let sample = SqliteStore::open(&file.path, SqliteOptions::default())?;
    let mut calls = Vec::new();
    loop {
        let page = HistoryQuery {
            limit: REPLAY_BATCH as u32,
            offset: calls.len() as u32,
            ..HistoryQuery::default()
        };
        let rows = sample.history(&page).await?;
        let last_page = rows.len() < REPLAY_BATCH;
        calls.extend(rows);
        if last_page {
            return Ok(calls);
        }
    }
}

/// A database file name of its own in the system's temporary folder, removed (with SQLite's
/// side files) when dropped.
struct TemporaryDatabase {
    path: PathBuf,
}

impl TemporaryDatabase {
    fn new() -> Self {
        let name = format!("call-history-sample-{}.db", uuid::Uuid::new_v4());
        TemporaryDatabase {
            path: std::env::temp_dir().join(name),
        }
    }
}

impl Drop for TemporaryDatabase {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(with_suffix(&self.path, suffix));
        }
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sample_calls_are_read_whole() {
        let calls = sample_calls().await.unwrap();
        assert!(calls.len() > 1);
        let mut ids: Vec<&str> = calls.iter().map(|c| c.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), calls.len(), "each sample call once");
    }

    #[tokio::test]
    async fn the_temporary_database_leaves_no_file_behind() {
        let file = TemporaryDatabase::new();
        let path = file.path.clone();
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        store.ping().await.unwrap();
        assert!(path.exists());
        drop(store);
        drop(file);
        for suffix in ["", "-wal", "-shm"] {
            assert!(!with_suffix(&path, suffix).exists(), "{suffix} removed");
        }
    }
}
