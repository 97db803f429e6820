//! `call-history snapshot`: writes the newest calls in Redshift, through the Data API, as the SQL
//! a deployed backup starts with (`sql/sqlite/snapshot.sql`, compiled into the function), so
//! that a cold start during an outage serves recent history rather than nothing. Rebuild and
//! deploy to ship it.

use crate::store::redshift::RedshiftStore;
use crate::store::sqlite::to_db_time;
use crate::store::{Call, HistoryQuery, StoreError};

/// Rows per INSERT statement of the seed file.
const ROWS_PER_INSERT: usize = 500;
pub const DEFAULT_SNAPSHOT_ROWS: u32 = 10_000;

/// The newest `rows` calls in Redshift, as seed SQL for a new local database.
pub async fn snapshot(redshift: &RedshiftStore, rows: u32) -> Result<(String, usize), StoreError> {
    let query = HistoryQuery {
        limit: rows,
        ..HistoryQuery::default()
    };
    let calls = redshift.session().history(&query).await?;
    Ok((seed_sql(&calls), calls.len()))
}

/// `INSERT OR IGNORE` statements for these calls, in chunks.
pub fn seed_sql(calls: &[Call]) -> String {
    let mut sql = String::from(
        "-- Snapshot of the newest calls in Redshift, loaded once into a new local backup.\n",
    );
    for chunk in calls.chunks(ROWS_PER_INSERT) {
        sql.push_str(
            "INSERT OR IGNORE INTO calls (id, contact_name, account_name, started_at, duration_seconds, outcome, notes, created_at) VALUES\n",
        );
        let rows: Vec<String> = chunk.iter().map(values_row).collect();
        sql.push_str(&rows.join(",\n"));
        sql.push_str(";\n");
    }
    sql
}

fn values_row(call: &Call) -> String {
    format!(
        "    ({}, {}, {}, {}, {}, {}, {}, {})",
        text(&call.id),
        text(&call.contact_name),
        optional(call.account_name.as_deref()),
        text(&to_db_time(&call.started_at)),
        call.duration_seconds
            .map_or("NULL".to_string(), |d| d.to_string()),
        optional(call.outcome.as_deref()),
        optional(call.notes.as_deref()),
        text(&to_db_time(&call.created_at)),
    )
}

/// A SQL text literal. Text with a NUL byte is written as a blob cast to text, because the
/// seed is executed as one C string.
fn text(value: &str) -> String {
    if value.contains('\0') {
        let hex: String = value.bytes().map(|b| format!("{b:02X}")).collect();
        format!("CAST(X'{hex}' AS TEXT)")
    } else {
        format!("'{}'", value.replace('\'', "''"))
    }
}

fn optional(value: Option<&str>) -> String {
    value.map_or("NULL".to_string(), text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::{SqliteOptions, SqliteStore};
    use chrono::Utc;

    #[tokio::test]
    async fn seed_round_trips_awkward_text_through_sqlite() {
        let call = |id: &str, name: &str| Call {
            id: id.to_string(),
            contact_name: name.to_string(),
            account_name: None,
            started_at: crate::store::truncate_to_micros(Utc::now()),
            duration_seconds: Some(7),
            outcome: Some("it's done; DROP TABLE calls; --".to_string()),
            notes: Some("line one\nline two \u{1F4DE}".to_string()),
            created_at: crate::store::truncate_to_micros(Utc::now()),
        };
        let calls = vec![call("a", "O'Brien"), call("b", "nul\0inside")];
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_with(
            &dir.path().join("s.db"),
            SqliteOptions::default(),
            &seed_sql(&calls),
        )
        .unwrap();
        for expected in &calls {
            let stored = store.get(&expected.id).await.unwrap().expect("seeded");
            assert_eq!(&stored, expected);
        }
    }
}
