//! The round trip of every call and the run time of every SQL statement.

use std::time::{Duration, Instant};

use aws_sdk_redshiftdata::types::{StatementStatusString, StatusString};

use crate::common::{Env, batch, cancel_to_aborted, execute, wait_done};

/// Whether the PostgreSQL backend `$1` waits for a lock on `gate`.
const WAITING_ON_GATE_SQL: &str = "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
     WHERE l.pid = $1 AND c.relname = 'gate' AND NOT l.granted";

#[tokio::test]
async fn every_call_is_answered_no_sooner_than_the_round_trip() {
    let round_trip = Duration::from_millis(300);
    let env = Env::start_with(|options| options.round_trip = round_trip).await;
    let client = env.single_try_client().await;

    let started = Instant::now();
    let id = env.submit("SELECT 1").await;
    assert!(started.elapsed() >= round_trip, "{:?}", started.elapsed());

    let started = Instant::now();
    client
        .describe_statement()
        .id("0b8a3e8c-1111-4222-8333-944445555666")
        .send()
        .await
        .expect_err("an unknown statement");
    assert!(started.elapsed() >= round_trip, "errors take it too");

    env.standin
        .set_quota(
            "DescribeStatement",
            Some(redshift_data_local::Quota::per_second(0)),
        )
        .expect("a served operation");
    let started = Instant::now();
    client
        .describe_statement()
        .id(&id)
        .send()
        .await
        .expect_err("throttled");
    assert!(started.elapsed() >= round_trip, "throttling takes it too");
}

#[tokio::test]
async fn the_round_trip_adds_to_the_time_a_call_takes() {
    // On AWS the network's time and the service's do not overlap: a call that waits for its
    // statement takes the round trip plus the statement's run time, not the larger of the two.
    let round_trip = Duration::from_millis(300);
    let statement_time = Duration::from_millis(500);
    let env = Env::start_with(|options| {
        options.round_trip = round_trip;
        options.statement_time = statement_time;
    })
    .await;
    let started = Instant::now();
    let waited = execute(&env.data, "SELECT 1")
        .wait_time_seconds(10)
        .send()
        .await
        .expect("ExecuteStatement with WaitTimeSeconds");
    let elapsed = started.elapsed();
    assert_eq!(waited.status(), Some(&StatementStatusString::Finished));
    assert!(
        elapsed >= round_trip + statement_time,
        "{elapsed:?}: the round trip overlapped the run time"
    );
}

#[tokio::test]
async fn statements_stay_started_for_the_statement_time() {
    let statement_time = Duration::from_millis(800);
    let env = Env::start_with(|options| options.statement_time = statement_time).await;
    let submitted = Instant::now();
    let id = env.submit("SELECT 1").await;
    let early = env
        .data
        .describe_statement()
        .id(&id)
        .send()
        .await
        .expect("DescribeStatement");
    if submitted.elapsed() < statement_time {
        assert!(
            matches!(
                early.status(),
                Some(StatusString::Submitted | StatusString::Started)
            ),
            "not finished before its time: {:?}",
            early.status()
        );
    }
    let done = wait_done(&env.data, &id).await;
    assert_eq!(done.status(), Some(&StatusString::Finished));
    assert!(submitted.elapsed() >= statement_time);
    let reported = Duration::from_nanos(u64::try_from(done.duration()).unwrap_or(0));
    assert!(reported >= statement_time, "Duration says {reported:?}");

    // Failures take their time too.
    let submitted = Instant::now();
    let failed = env.run("SELECT * FROM nope").await;
    assert_eq!(failed.status(), Some(&StatusString::Failed));
    assert!(submitted.elapsed() >= statement_time);
}

#[tokio::test]
async fn a_statement_cancelled_during_its_run_time_commits_nothing() {
    let env = Env::start().await;
    env.run_ok("CREATE TABLE t (n int8)").await;
    env.run_ok("CREATE TABLE gate (n int8)").await;
    // Another session holds `gate`: the batch's insert runs, then its LOCK waits in the open
    // transaction. The cancel comes while the batch runs, after the insert: the rollback must
    // undo it.
    let postgres = env.postgres().await;
    let mut holder = env.postgres().await;
    let holding = holder.transaction().await.expect("BEGIN");
    holding.batch_execute("LOCK gate").await.expect("LOCK gate");
    let id = env
        .submit_batch(&["INSERT INTO t VALUES (1)", "LOCK gate"])
        .await;
    let pid = started_pid(&env, &id).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: i64 = postgres
            .query_one(WAITING_ON_GATE_SQL, &[&pid])
            .await
            .expect("pg_locks")
            .get(0);
        if waiting == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the batch never reached its LOCK"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    cancel_to_aborted(&env.data, &id).await;
    holding.rollback().await.expect("ROLLBACK");
    let rows: i64 = postgres
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(rows, 0, "nothing committed");
}

/// A statement's time passes before it runs (the queue, planning, compilation), so a lock is
/// granted at the end of its statement's time, not at its start: while a batch's LOCK
/// statement is in its time, its transaction has begun and holds nothing, and another session
/// takes the same lock at once.
#[tokio::test]
async fn a_lock_is_granted_at_the_end_of_its_statement_time() {
    let env = Env::start().await;
    env.run_ok("CREATE TABLE t (n int8)").await;
    env.standin.set_statement_time(Duration::from_secs(60));
    let id = env.submit_batch(&["LOCK t", "SELECT 1"]).await;
    started_pid(&env, &id).await;
    let postgres = env.postgres().await;
    postgres
        .batch_execute("SET lock_timeout = '5s'; BEGIN; LOCK t; ROLLBACK")
        .await
        .expect("the lock is free while the LOCK statement is in its time");
    cancel_to_aborted(&env.data, &id).await;
}

#[tokio::test]
async fn each_statement_of_a_batch_takes_the_statement_time() {
    // "The SQL statements run serially ... Subsequent SQL statements don't start until the
    // previous statement in the array completes": a batch of three takes three run times.
    let statement_time = Duration::from_millis(400);
    let env = Env::start_with(|options| options.statement_time = statement_time).await;
    let submitted = Instant::now();
    let id = env
        .submit_batch(&["SELECT 1", "SELECT 2", "SELECT 3"])
        .await;
    let done = wait_done(&env.data, &id).await;
    assert_eq!(done.status(), Some(&StatusString::Finished));
    assert!(
        submitted.elapsed() >= 3 * statement_time,
        "{:?}: the statements overlapped",
        submitted.elapsed()
    );
    for sub in done.sub_statements() {
        let reported = Duration::from_nanos(u64::try_from(sub.duration()).unwrap_or(0));
        assert!(
            reported >= statement_time,
            "{:?} says {reported:?}",
            sub.id()
        );
    }
}

#[tokio::test]
async fn a_cancelled_auto_commit_batch_keeps_only_what_committed_before() {
    let env = Env::start().await;
    env.run_ok("CREATE TABLE t (n int8)").await;
    // Each statement of the batch takes this long before it commits: the first commits after
    // one run time, the second after two, so a cancel in between aborts the second only.
    let statement_time = Duration::from_secs(2);
    env.standin.set_statement_time(statement_time);
    let submitted = Instant::now();
    let id = batch(
        &env.data,
        &["INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (2)"],
    )
    .execution_mode(aws_sdk_redshiftdata::types::ExecutionMode::AutoCommit)
    .send()
    .await
    .expect("BatchExecuteStatement")
    .id()
    .unwrap_or_default()
    .to_owned();
    let postgres = env.postgres().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows: i64 = postgres
            .query_one("SELECT count(*) FROM t", &[])
            .await
            .expect("count")
            .get(0);
        if rows == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the first INSERT never committed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        submitted.elapsed() >= statement_time,
        "{:?}: the first INSERT committed before its run time",
        submitted.elapsed()
    );
    let done = cancel_to_aborted(&env.data, &id).await;
    let statuses: Vec<_> = done
        .sub_statements()
        .iter()
        .map(|s| s.status().map(|s| s.as_str().to_owned()))
        .collect();
    assert_eq!(
        statuses,
        [Some("FINISHED".to_owned()), Some("ABORTED".to_owned())]
    );
    let values: Vec<i64> = postgres
        .query("SELECT n FROM t", &[])
        .await
        .expect("rows")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(values, [1]);
}

/// The PostgreSQL backend of a statement, once it is STARTED.
async fn started_pid(env: &Env, id: &str) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let described = env
            .data
            .describe_statement()
            .id(id)
            .send()
            .await
            .expect("DescribeStatement");
        if described.status() == Some(&StatusString::Started) && described.redshift_pid() > 0 {
            return i32::try_from(described.redshift_pid()).expect("a PostgreSQL pid");
        }
        assert!(Instant::now() < deadline, "never started: {described:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
