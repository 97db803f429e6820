//! Redshift's isolation levels: when a snapshot starts, what a sentinel lock serialises, and
//! which concurrent writers fail with error 1023.

use std::time::{Duration, Instant};

use aws_sdk_redshiftdata::types::{Field, StatusString};
use redshift_data_local::Isolation;

use crate::common::{Env, wait_done};

const BOTH: [Isolation; 2] = [Isolation::Serializable, Isolation::Snapshot];

const SCHEMA: [&str; 3] = [
    "CREATE TABLE calls (id VARCHAR(256) NOT NULL, note VARCHAR(100), PRIMARY KEY (id))",
    "CREATE TABLE calls_writer (n INT)",
    "CREATE TABLE barrier (n INT)",
];

/// The service's idempotent insert: Redshift has no ON CONFLICT and enforces no key.
const INSERT_IF_ABSENT: &str = "INSERT INTO calls SELECT 'call-1', 'x' WHERE NOT EXISTS (SELECT 1 FROM calls WHERE id = 'call-1')";

/// Sessions waiting for a lock on `table`.
const WAITING_SQL: &str = "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
                           WHERE c.relname = $1 AND NOT l.granted";

async fn env_with(isolation: Isolation) -> Env {
    let env = Env::start_with(|options| options.isolation = isolation).await;
    for sql in SCHEMA {
        env.run_ok(sql).await;
    }
    env
}

async fn count(env: &Env, sql: &str) -> i64 {
    env.postgres()
        .await
        .query_one(sql, &[])
        .await
        .expect("count")
        .get(0)
}

/// Waits until `sessions` sessions wait for a lock on `table`.
async fn until_waiting(postgres: &tokio_postgres::Client, table: &str, sessions: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let waiting: i64 = postgres
            .query_one(WAITING_SQL, &[&table])
            .await
            .expect("pg_locks")
            .get(0);
        if waiting == sessions {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{waiting} of {sessions} sessions wait for {table}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_level_is_the_one_configured() {
    for (isolation, postgres_level) in [
        (Isolation::Serializable, "serializable"),
        (Isolation::Snapshot, "repeatable read"),
    ] {
        let env = Env::start_with(|options| options.isolation = isolation).await;
        let described = env
            .run_ok("SELECT current_setting('transaction_isolation')")
            .await;
        assert_eq!(
            env.records(described.id()).await,
            [[Field::StringValue(postgres_level.to_owned())]]
        );
    }
}

/// A transaction that LOCKs the sentinel, waits there for another writer's commit, then
/// reads, sees that commit: the snapshot starts at the first read, not at LOCK.
#[tokio::test]
async fn the_snapshot_starts_at_the_first_read_not_at_lock() {
    for isolation in BOTH {
        let env = env_with(isolation).await;
        let writer = env.postgres().await;
        writer
            .batch_execute(
                "BEGIN; LOCK TABLE calls_writer; INSERT INTO calls VALUES ('call-1', 'first')",
            )
            .await
            .expect("the other writer");
        let id = env
            .submit_batch(&[
                "LOCK calls_writer",
                "SELECT count(*) FROM calls WHERE id = 'call-1'",
            ])
            .await;
        until_waiting(&writer, "calls_writer", 1).await;
        writer.batch_execute("COMMIT").await.expect("commit");

        let done = wait_done(&env.data, &id).await;
        assert_eq!(done.status(), Some(&StatusString::Finished), "{isolation}");
        let seen = env.records(&format!("{id}:2")).await;
        assert_eq!(
            seen,
            [[Field::LongValue(1)]],
            "{isolation}: the commit is seen"
        );
    }
}

/// Twenty writers of one id at once, each serialised on the sentinel: one row, no failure.
#[tokio::test]
async fn sentinel_locked_inserts_of_one_id_leave_one_row() {
    for isolation in BOTH {
        let env = env_with(isolation).await;
        let mut writers = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let client = env.data.clone();
            writers.spawn(async move {
                let submitted =
                    crate::common::batch(&client, &["LOCK calls_writer", INSERT_IF_ABSENT])
                        .send()
                        .await
                        .expect("BatchExecuteStatement");
                let id = submitted.id().unwrap_or_default().to_owned();
                wait_done(&client, &id).await
            });
        }
        for done in writers.join_all().await {
            assert_eq!(
                done.status(),
                Some(&StatusString::Finished),
                "{isolation}: {:?}",
                done.error()
            );
        }
        assert_eq!(
            count(&env, "SELECT count(*) FROM calls").await,
            1,
            "{isolation}"
        );
    }
}

/// Two transactions that both took their snapshot before either wrote `calls`, each running
/// `write` after a read of the barrier that holds them until both are there. Returns their
/// errors (None for a commit).
async fn overlapping_writers(env: &Env, writes: [&str; 2]) -> Vec<Option<String>> {
    let barrier = env.postgres().await;
    barrier
        .batch_execute("BEGIN; LOCK TABLE barrier IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("hold the barrier");
    let mut ids = Vec::new();
    for write in writes {
        ids.push(
            env.submit_batch(&["SELECT count(*) FROM barrier", write])
                .await,
        );
    }
    until_waiting(&barrier, "barrier", 2).await;
    barrier.batch_execute("ROLLBACK").await.expect("release");
    let mut errors = Vec::new();
    for id in ids {
        let done = wait_done(&env.data, &id).await;
        match done.status() {
            Some(StatusString::Finished) => errors.push(None),
            Some(StatusString::Failed) => errors.push(done.error().map(str::to_owned)),
            other => panic!("{other:?}: {:?}", done.error()),
        }
    }
    errors
}

fn is_1023(error: &Option<String>) -> bool {
    error.as_deref().is_some_and(|e| {
        e.contains("ERROR: 1023 DETAIL: Serializable isolation violation on table - ")
            && e.contains("transactions forming the cycle are: ")
    })
}

/// Without the sentinel, SNAPSHOT ISOLATION lets two inserts of one id both commit: each
/// checked for the id in a snapshot without the other's row. This is why writers serialise on
/// a sentinel table.
#[tokio::test]
async fn without_the_sentinel_snapshot_isolation_stores_an_id_twice() {
    let env = env_with(Isolation::Snapshot).await;
    let errors = overlapping_writers(&env, [INSERT_IF_ABSENT, INSERT_IF_ABSENT]).await;
    assert_eq!(errors, [None, None]);
    assert_eq!(count(&env, "SELECT count(*) FROM calls").await, 2);
}

/// Under SERIALIZABLE the second writer of a table whose snapshot predates the first one's
/// commit fails with Redshift's error 1023, and nothing of it is stored.
#[tokio::test]
async fn serializable_fails_the_second_overlapping_writer_with_1023() {
    let env = env_with(Isolation::Serializable).await;
    let errors = overlapping_writers(&env, [INSERT_IF_ABSENT, INSERT_IF_ABSENT]).await;
    assert_eq!(
        errors.iter().filter(|e| e.is_none()).count(),
        1,
        "{errors:?}"
    );
    assert!(errors.iter().any(is_1023), "{errors:?}");
    assert_eq!(count(&env, "SELECT count(*) FROM calls").await, 1);
}

/// Table-level, as Redshift's: even writers of different rows that read nothing conflict
/// under SERIALIZABLE (PostgreSQL alone lets them both commit), and not under SNAPSHOT.
#[tokio::test]
async fn blind_writers_of_one_table_conflict_only_under_serializable() {
    let writes = [
        "INSERT INTO calls VALUES ('call-a', 'a')",
        "INSERT INTO calls VALUES ('call-b', 'b')",
    ];
    let env = env_with(Isolation::Serializable).await;
    let errors = overlapping_writers(&env, writes).await;
    assert_eq!(
        errors.iter().filter(|e| is_1023(e)).count(),
        1,
        "{errors:?}"
    );
    assert_eq!(count(&env, "SELECT count(*) FROM calls").await, 1);

    let env = env_with(Isolation::Snapshot).await;
    assert_eq!(overlapping_writers(&env, writes).await, [None, None]);
    assert_eq!(count(&env, "SELECT count(*) FROM calls").await, 2);
}

/// A writer whose first statement is the write waits for the other writer's lock and takes
/// its snapshot after, so it succeeds ("Concurrent write examples"): no 1023 without overlap.
#[tokio::test]
async fn a_writer_that_starts_with_its_write_waits_instead_of_failing() {
    let env = env_with(Isolation::Serializable).await;
    let holder = env.postgres().await;
    holder
        .batch_execute("BEGIN; LOCK TABLE calls IN SHARE ROW EXCLUSIVE MODE")
        .await
        .expect("hold the write lock");
    let id = env.submit(INSERT_IF_ABSENT).await;
    until_waiting(&holder, "calls", 1).await;
    holder
        .batch_execute("INSERT INTO calls VALUES ('call-1', 'other'); COMMIT")
        .await
        .expect("the other writer commits");
    let done = wait_done(&env.data, &id).await;
    assert_eq!(
        done.status(),
        Some(&StatusString::Finished),
        "{:?}",
        done.error()
    );
    assert_eq!(done.result_rows(), 0, "it saw the other writer's row");
    assert_eq!(count(&env, "SELECT count(*) FROM calls").await, 1);
}
