//! Every statement the service sends to Redshift, built in one place.
//!
//! Values travel as `:name` parameters (strings: the Data API's only parameter type), never as
//! text spliced into the SQL; Redshift converts them with the explicit casts written here. The
//! Data API refuses an empty parameter value, so an empty string is written as the constant `''`
//! instead (cast like any other value). Every column of an inserted row carries its own `CAST`:
//! an untyped literal in a derived table (`NULL AS outcome`) is resolved by PostgreSQL but may be
//! left `unknown` by Redshift and fail the statement.
//!
//! The SQL stays valid Redshift SQL: no `ON CONFLICT`, no `RETURNING`, no `SERIAL`.

use chrono::{DateTime, NaiveDateTime, Utc};

use super::decode::{to_redshift_time, to_warehouse_time};
use crate::store::{Call, HistoryQuery};

/// The columns of a call, in the order every statement reads and writes them.
pub const COLUMNS: &str =
    "id, contact_name, account_name, started_at, duration_seconds, outcome, notes, created_at";

/// The DDL of the `calls` table (`call-history migrate`).
pub const SCHEMA: &str = include_str!("../../../sql/redshift/schema.sql");
/// The DDL of the table writers lock to take turns.
pub const WRITE_LOCK_SCHEMA: &str = include_str!("../../../sql/redshift/write_lock.sql");
/// Added to a `calls` table created before replicas pulled by ingestion time.
pub const ADD_INGESTED_AT: &str =
    "ALTER TABLE calls ADD COLUMN ingested_at TIMESTAMP DEFAULT GETDATE()";

/// Writers serialise on this lock, never on `calls`: Redshift's LOCK is ACCESS EXCLUSIVE, so
/// locking `calls` would make every reader wait for every writer. A transaction's snapshot starts
/// at its first SELECT or DML, not at LOCK (Amazon Redshift Database Developer Guide, "LOCK" and
/// "Managing concurrent write operations"; PostgreSQL documents the same for LOCK TABLE), so an
/// insert that runs after taking the lock sees every writer that committed before it, under
/// SERIALIZABLE (provisioned clusters) and SNAPSHOT ISOLATION (Serverless) alike.
pub const LOCK_WRITERS: &str = "LOCK calls_write_lock";

/// Text values are cast to the widest VARCHAR: a cast to the column's own width would truncate a
/// value that is too long instead of refusing it, and a plain `VARCHAR` is 256 bytes on Redshift.
/// The insert into the narrower column then refuses what does not fit ("value too long").
const TEXT: &str = "VARCHAR(65535)";

/// Rows per insert statement: a batch's SQL text, a few hundred bytes a row, stays well under the
/// Data API's 100 KB.
pub const MAX_ROWS_PER_INSERT: usize = 200;

/// SQL with its `:name` parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Statement {
    /// One statement, or several run as one transaction (BatchExecuteStatement).
    pub sqls: Vec<String>,
    pub params: Vec<(String, String)>,
}

impl Statement {
    pub(super) fn one(sql: impl Into<String>) -> Self {
        Statement {
            sqls: vec![sql.into()],
            params: Vec::new(),
        }
    }

    /// The placeholder for `value` under `name`: `:name`, or `''` for an empty string.
    fn placeholder(&mut self, name: String, value: String) -> String {
        if value.is_empty() {
            return "''".to_string();
        }
        let placeholder = format!(":{name}");
        self.params.push((name, value));
        placeholder
    }

    /// `ids` as the placeholders of an `IN (...)` list.
    fn id_list(&mut self, ids: &[&str]) -> String {
        let placeholders: Vec<String> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| self.placeholder(format!("id_{i}"), id.to_string()))
            .collect();
        placeholders.join(", ")
    }

    /// `CAST(<value or NULL> AS ty)`.
    fn typed(&mut self, name: String, value: Option<String>, ty: &str) -> String {
        let expression = match value {
            Some(value) => self.placeholder(name, value),
            None => "NULL".to_string(),
        };
        format!("CAST({expression} AS {ty})")
    }
}

/// Proves Redshift answers and the table is there.
pub fn probe() -> Statement {
    Statement::one("SELECT 1 FROM calls LIMIT 1")
}

/// The byte widths of the warehouse's text columns (which may be narrower than this service's
/// own schema). Catalog lookups name the schema the unqualified `calls` resolves to: a `calls`
/// table in another schema must not answer for it.
pub fn text_column_widths() -> Statement {
    Statement::one(
        "SELECT column_name, character_maximum_length FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = 'calls' \
         AND character_maximum_length IS NOT NULL",
    )
}

/// Whether the `calls` table has the `ingested_at` column (a table made by an older version
/// does not).
pub fn has_ingested_at() -> Statement {
    Statement::one(
        "SELECT COUNT(*) FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = 'calls' \
         AND column_name = 'ingested_at'",
    )
}

/// History, newest first, straight from the warehouse.
pub fn history(query: &HistoryQuery) -> Statement {
    let mut statement = Statement::default();
    let mut sql = format!("SELECT {COLUMNS} FROM calls WHERE 1 = 1");
    if let Some(contact) = &query.contact {
        let p = statement.placeholder("contact".into(), contact.clone());
        sql.push_str(&format!(" AND contact_name = {p}"));
    }
    if let Some(since) = &query.since {
        let p = statement.typed("since".into(), Some(to_redshift_time(since)), "TIMESTAMP");
        sql.push_str(&format!(" AND started_at >= {p}"));
    }
    if let Some(until) = &query.until {
        let p = statement.typed("until".into(), Some(to_redshift_time(until)), "TIMESTAMP");
        sql.push_str(&format!(" AND started_at < {p}"));
    }
    // Limit and offset are validated integers, not client text; Redshift takes no parameters
    // there.
    sql.push_str(&format!(
        " ORDER BY started_at DESC, id DESC LIMIT {} OFFSET {}",
        query.limit, query.offset
    ));
    statement.sqls = vec![sql];
    statement
}

/// One call by id.
pub fn get(id: &str) -> Statement {
    let mut statement = Statement::default();
    let p = statement.placeholder("id".into(), id.to_string());
    statement.sqls = vec![format!("SELECT {COLUMNS} FROM calls WHERE id = {p}")];
    statement
}

/// The ids among `ids` that the warehouse holds.
pub fn existing_ids(ids: &[&str]) -> Statement {
    let mut statement = Statement::default();
    let ids = statement.id_list(ids);
    statement.sqls = vec![format!("SELECT DISTINCT id FROM calls WHERE id IN ({ids})")];
    statement
}

/// One transaction that inserts the `calls` Redshift does not hold yet, under the writers'
/// lock. How many rows the insert (its [`INSERT_IN_BATCH`]th statement) added tells whether
/// every call was missing; when one was not, [`calls_with_ids`] reads what Redshift holds,
/// after the commit and outside the lock, so that the lock is held for one statement's time.
///
/// The calls' ids must be distinct; at most [`MAX_ROWS_PER_INSERT`] of them.
pub fn insert_missing(calls: &[Call]) -> Statement {
    let mut statement = Statement::default();
    let rows: Vec<String> = calls
        .iter()
        .enumerate()
        .map(|(i, call)| values_row(i, call, &mut statement))
        .collect();
    statement.sqls = vec![
        LOCK_WRITERS.to_string(),
        format!(
            "INSERT INTO calls ({COLUMNS}, ingested_at) \
             SELECT v.id, v.contact_name, v.account_name, v.started_at, v.duration_seconds, \
             v.outcome, v.notes, v.created_at, GETDATE() FROM ({rows}) AS v \
             WHERE NOT EXISTS (SELECT 1 FROM calls c WHERE c.id = v.id)",
            rows = rows.join(" UNION ALL ")
        ),
    ];
    statement
}

/// The position in [`insert_missing`]'s batch of the insert (1-based, as the Data API numbers
/// a batch's statements).
pub const INSERT_IN_BATCH: usize = 2;

/// What the warehouse holds for each of `ids`.
pub fn calls_with_ids(ids: &[&str]) -> Statement {
    let mut statement = Statement::default();
    let ids = statement.id_list(ids);
    statement.sqls = vec![format!("SELECT {COLUMNS} FROM calls WHERE id IN ({ids})")];
    statement
}

/// One `SELECT <values>` of a multi-row insert: every value cast to its column's type, absent
/// values as typed NULLs (the Data API has no null parameter). Only the first row names its
/// columns; the others take the first row's names.
fn values_row(i: usize, call: &Call, statement: &mut Statement) -> String {
    let mut value = |column: &str, value: Option<String>, ty: &str| -> String {
        let expression = statement.typed(format!("{column}_{i}"), value, ty);
        if i == 0 {
            format!("{expression} AS {column}")
        } else {
            expression
        }
    };
    let parts = [
        value("id", Some(call.id.clone()), TEXT),
        value("contact_name", Some(call.contact_name.clone()), TEXT),
        value("account_name", call.account_name.clone(), TEXT),
        value(
            "started_at",
            Some(to_redshift_time(&call.started_at)),
            "TIMESTAMP",
        ),
        value(
            "duration_seconds",
            call.duration_seconds.map(|d| d.to_string()),
            "BIGINT",
        ),
        value("outcome", call.outcome.clone(), TEXT),
        value("notes", call.notes.clone(), TEXT),
        value(
            "created_at",
            Some(to_redshift_time(&call.created_at)),
            "TIMESTAMP",
        ),
    ];
    format!("SELECT {}", parts.join(", "))
}

/// A place in the warehouse's ingestion order: calls ordered by `ingested_at`, then `id`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct IngestKey {
    pub at: NaiveDateTime,
    /// `None`: before every call ingested at `at`.
    pub id: Option<String>,
}

/// What a pull asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PullScope {
    /// The whole window: the newest `max_rows + 1` calls (one more than kept, to tell whether
    /// the warehouse holds more than the window).
    Window { max_rows: u32 },
    /// The first `max_rows` calls the warehouse ingested after `after`, in ingestion order, that
    /// started after `floor` (every call, without one): a page of what was ingested since.
    IngestedAfter {
        after: IngestKey,
        floor: Option<DateTime<Utc>>,
        max_rows: u32,
    },
}

/// A pull of the replica: the calls of `scope` with their ingestion time, and one more row whose
/// id is NULL and whose `ingested_at` is the warehouse's own clock (`GETDATE()`, the start of this
/// statement): the next incremental pull starts there, less a look-back. The warehouse's clock,
/// not this function's, so that skew between the two cannot lose a row.
pub fn pull(scope: &PullScope) -> Statement {
    let mut statement = Statement::default();
    let selected = match scope {
        PullScope::Window { max_rows } => format!(
            "SELECT * FROM (SELECT {COLUMNS}, ingested_at FROM calls \
             ORDER BY started_at DESC, id DESC LIMIT {limit}) AS recent",
            limit = u64::from(*max_rows) + 1
        ),
        PullScope::IngestedAfter {
            after,
            floor,
            max_rows,
        } => {
            let at = statement.typed(
                "after_at".into(),
                Some(to_warehouse_time(&after.at)),
                "TIMESTAMP",
            );
            let mut sql = match &after.id {
                None => format!("ingested_at > {at}"),
                Some(id) => {
                    let id = statement.typed("after_id".into(), Some(id.clone()), TEXT);
                    format!("(ingested_at > {at} OR (ingested_at = {at} AND id > {id}))")
                }
            };
            if let Some(floor) = floor {
                let floor =
                    statement.typed("floor".into(), Some(to_redshift_time(floor)), "TIMESTAMP");
                sql.push_str(&format!(" AND started_at > {floor}"));
            }
            format!(
                "SELECT * FROM (SELECT {COLUMNS}, ingested_at FROM calls WHERE {sql} \
                 ORDER BY ingested_at, id LIMIT {max_rows}) AS ingested"
            )
        }
    };
    statement.sqls = vec![format!("{selected} UNION ALL {CLOCK_ROW}")];
    statement
}

/// The row of a pull that carries the warehouse's clock: every column of a call NULL, typed as
/// the table's (a UNION's columns must agree), then `GETDATE()`.
const CLOCK_ROW: &str = "SELECT CAST(NULL AS VARCHAR(256)), CAST(NULL AS VARCHAR(800)), \
    CAST(NULL AS VARCHAR(800)), CAST(NULL AS TIMESTAMP), CAST(NULL AS BIGINT), \
    CAST(NULL AS VARCHAR(400)), CAST(NULL AS VARCHAR(65535)), CAST(NULL AS TIMESTAMP), GETDATE()";

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn call(id: &str) -> Call {
        let t = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        Call {
            id: id.into(),
            contact_name: "Ada".into(),
            account_name: Some(String::new()),
            started_at: t,
            duration_seconds: None,
            outcome: None,
            notes: Some("n".into()),
            created_at: t,
        }
    }

    /// Redshift may leave an untyped literal of a derived table `unknown` and fail the insert:
    /// every value of every row is cast, empty strings and nulls included, and no empty string
    /// is ever a parameter (the Data API refuses one).
    #[test]
    fn every_inserted_value_is_typed_and_no_parameter_is_empty() {
        let statement = insert_missing(&[call("a"), call("b")]);
        assert_eq!(statement.sqls[0], "LOCK calls_write_lock");
        let insert = &statement.sqls[INSERT_IN_BATCH - 1];
        let first_row = "SELECT CAST(:id_0 AS VARCHAR(65535)) AS id, \
            CAST(:contact_name_0 AS VARCHAR(65535)) AS contact_name, \
            CAST('' AS VARCHAR(65535)) AS account_name, \
            CAST(:started_at_0 AS TIMESTAMP) AS started_at, \
            CAST(NULL AS BIGINT) AS duration_seconds, \
            CAST(NULL AS VARCHAR(65535)) AS outcome, \
            CAST(:notes_0 AS VARCHAR(65535)) AS notes, \
            CAST(:created_at_0 AS TIMESTAMP) AS created_at";
        assert!(insert.contains(first_row), "{insert}");
        let second_row = "SELECT CAST(:id_1 AS VARCHAR(65535)), \
            CAST(:contact_name_1 AS VARCHAR(65535)), CAST('' AS VARCHAR(65535)), \
            CAST(:started_at_1 AS TIMESTAMP), CAST(NULL AS BIGINT), \
            CAST(NULL AS VARCHAR(65535)), CAST(:notes_1 AS VARCHAR(65535)), \
            CAST(:created_at_1 AS TIMESTAMP)";
        assert!(insert.contains(second_row), "{insert}");
        assert!(!insert.contains("NULL AS") || insert.contains("CAST(NULL AS"));
        assert!(insert.contains("GETDATE()"));
        assert!(insert.contains("WHERE NOT EXISTS (SELECT 1 FROM calls c WHERE c.id = v.id)"));
        assert_eq!(
            statement.sqls.len(),
            INSERT_IN_BATCH,
            "the insert ends the batch"
        );
        assert_eq!(
            calls_with_ids(&["a", "b"]).sqls,
            vec![format!(
                "SELECT {COLUMNS} FROM calls WHERE id IN (:id_0, :id_1)"
            )]
        );
        assert!(statement.params.iter().all(|(_, v)| !v.is_empty()));
        for sql in &statement.sqls {
            for refused in [
                "ON CONFLICT",
                "RETURNING",
                "SERIAL",
                "LOCK calls;",
                "LOCK calls ",
            ] {
                assert!(!sql.contains(refused), "{refused} in {sql}");
            }
        }
    }

    /// The largest insert stays within the Data API's 100 KB of SQL text, with the longest
    /// parameter names a batch of that size has.
    #[test]
    fn the_largest_insert_fits_the_data_api() {
        let calls: Vec<Call> = (0..MAX_ROWS_PER_INSERT)
            .map(|i| call(&format!("id-{i}")))
            .collect();
        let statement = insert_missing(&calls);
        let longest = statement.sqls.iter().map(String::len).max().unwrap_or(0);
        assert!(longest < 100_000, "{longest} bytes");
    }

    #[test]
    fn pulls_read_the_warehouse_clock_in_the_same_statement() {
        let window = pull(&PullScope::Window { max_rows: 100 });
        assert!(window.sqls[0].contains("LIMIT 101) AS recent UNION ALL SELECT CAST(NULL"));
        assert!(window.sqls[0].ends_with("GETDATE()"));
        let at = NaiveDateTime::parse_from_str("2024-01-02 03:04:05", "%Y-%m-%d %H:%M:%S").unwrap();
        let floor = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        let since = pull(&PullScope::IngestedAfter {
            after: IngestKey { at, id: None },
            floor: Some(floor),
            max_rows: 1000,
        });
        assert!(since.sqls[0].contains(
            "WHERE ingested_at > CAST(:after_at AS TIMESTAMP) AND started_at > CAST(:floor AS TIMESTAMP) \
             ORDER BY ingested_at, id LIMIT 1000) AS ingested UNION ALL"
        ));
        assert_eq!(
            since.params,
            vec![
                (
                    "after_at".to_string(),
                    "2024-01-02 03:04:05.000000".to_string()
                ),
                (
                    "floor".to_string(),
                    "2024-01-01 00:00:00.000000".to_string()
                )
            ]
        );
        let resumed = pull(&PullScope::IngestedAfter {
            after: IngestKey {
                at,
                id: Some("c-7".into()),
            },
            floor: None,
            max_rows: 1000,
        });
        assert!(resumed.sqls[0].contains(
            "(ingested_at > CAST(:after_at AS TIMESTAMP) OR (ingested_at = CAST(:after_at AS TIMESTAMP) \
             AND id > CAST(:after_id AS VARCHAR(65535))))"
        ));
    }
}
