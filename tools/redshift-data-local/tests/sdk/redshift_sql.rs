//! Redshift SQL that PostgreSQL alone would refuse: GETDATE() and table attributes.

use std::time::Duration;

use aws_sdk_redshiftdata::types::{Field, StatusString};
use chrono::{NaiveDateTime, Timelike, Utc};

use crate::common::{Env, wait_done};

/// Redshift's TIMESTAMP text, as GETDATE() gives it: whole seconds.
fn timestamp(field: &Field) -> NaiveDateTime {
    match field {
        Field::StringValue(text) => NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
            .unwrap_or_else(|e| panic!("{text:?} is not a whole-second timestamp: {e}")),
        other => panic!("not a timestamp: {other:?}"),
    }
}

fn utc_now_in_seconds() -> NaiveDateTime {
    Utc::now()
        .naive_utc()
        .with_nanosecond(0)
        .expect("0 is a valid nanosecond")
}

#[tokio::test]
async fn getdate_is_the_statement_start_in_utc_as_a_timestamp() {
    let env = Env::start().await;
    let before = utc_now_in_seconds();
    let described = env.run_ok("SELECT GETDATE() AS now").await;
    let after = utc_now_in_seconds();
    let result = env.first_page(described.id()).await;
    assert_eq!(result.column_metadata()[0].type_name(), Some("timestamp"));
    let now = timestamp(&result.records()[0][0]);
    assert!(
        before <= now && now <= after,
        "{before} <= {now} <= {after}"
    );

    // The current statement's start, even inside a transaction block.
    let id = env
        .submit_batch(&[
            "SELECT getdate()",
            "SELECT pg_sleep(1.1)",
            "SELECT getdate()",
        ])
        .await;
    let done = wait_done(&env.data, &id).await;
    assert_eq!(
        done.status(),
        Some(&StatusString::Finished),
        "{:?}",
        done.error()
    );
    let first = timestamp(&env.records(&format!("{id}:1")).await[0][0]);
    let last = timestamp(&env.records(&format!("{id}:3")).await[0][0]);
    assert!(
        last - first >= chrono::Duration::from_std(Duration::from_secs(1)).expect("1 s"),
        "{first} then {last}"
    );
}

#[tokio::test]
async fn getdate_defaults_in_create_table_and_in_an_added_column() {
    let env = Env::start().await;
    env.run_ok(
        "CREATE TABLE calls (id VARCHAR(20) NOT NULL ENCODE zstd, \
         created_at TIMESTAMP NOT NULL DEFAULT GETDATE() ENCODE az64, \
         PRIMARY KEY (id)) DISTSTYLE KEY DISTKEY (id) COMPOUND SORTKEY (created_at, id)",
    )
    .await;
    let before = utc_now_in_seconds();
    env.run_ok("INSERT INTO calls (id) VALUES ('a')").await;
    env.run_ok("ALTER TABLE calls ADD COLUMN ingested_at TIMESTAMP DEFAULT GETDATE()")
        .await;
    env.run_ok("INSERT INTO calls (id) VALUES ('b')").await;
    let after = utc_now_in_seconds();

    let described = env
        .run_ok("SELECT created_at, ingested_at FROM calls ORDER BY id")
        .await;
    let rows = env.records(described.id()).await;
    assert_eq!(rows.len(), 2);
    for row in &rows {
        for field in row {
            let at = timestamp(field);
            assert!(before <= at && at <= after, "{before} <= {at} <= {after}");
        }
    }
    let result = env.first_page(described.id()).await;
    assert_eq!(
        result.column_metadata()[0].column_default(),
        Some("getdate()")
    );
}

#[tokio::test]
async fn redshift_table_attributes_are_accepted() {
    let env = Env::start().await;
    for sql in [
        "CREATE TABLE a (id INT8 DISTKEY SORTKEY, note VARCHAR(10) ENCODE lzo) BACKUP NO",
        "CREATE TABLE b (id INT8) DISTSTYLE AUTO SORTKEY AUTO ENCODE AUTO",
        "CREATE TABLE c (id INT8, at TIMESTAMP) DISTSTYLE ALL INTERLEAVED SORTKEY (id, at)",
        "CREATE TABLE d (id INT8) DISTSTYLE EVEN SORTKEY (id) BACKUP YES",
        "CREATE TABLE e DISTSTYLE KEY DISTKEY (id) AS SELECT id FROM d",
        "ALTER TABLE a ADD COLUMN extra VARCHAR(5) DEFAULT 'x' ENCODE zstd NOT NULL",
        // A column may still be called like an attribute.
        "CREATE TABLE f (sortkey INT8, backup BOOL)",
    ] {
        env.run_ok(sql).await;
    }
    let tables = env
        .scalar(
            "SELECT count(*) FROM information_schema.tables \
             WHERE table_name IN ('a', 'b', 'c', 'd', 'e', 'f')",
        )
        .await;
    assert_eq!(tables, 6);
}

#[tokio::test]
async fn what_redshift_refuses_in_alter_table_stays_refused() {
    let env = Env::start().await;
    env.run_ok("CREATE TABLE calls (id VARCHAR(20))").await;
    for (sql, near) in [
        ("ALTER TABLE calls ADD COLUMN IF NOT EXISTS n INT8", "NOT"),
        ("ALTER TABLE calls DROP COLUMN IF EXISTS id", "EXISTS"),
    ] {
        let failed = env.run(sql).await;
        assert_eq!(failed.status(), Some(&StatusString::Failed), "{sql}");
        assert_eq!(
            failed.error(),
            Some(format!("ERROR: syntax error at or near \"{near}\"").as_str())
        );
    }
}
