//! The round trip of every call and the run time of every statement.

use std::time::{Duration, Instant};

use aws_sdk_redshiftdata::types::StatusString;

use crate::common::{Env, wait_done};

/// The state of a PostgreSQL backend (`active`, `idle in transaction`, ...).
const BACKEND_STATE_SQL: &str = "SELECT state FROM pg_stat_activity WHERE pid = $1";

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

    env.standin.set_round_trip(Duration::ZERO);
    assert_eq!(env.standin.round_trip(), Duration::ZERO);
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
    env.standin.set_statement_time(Duration::from_secs(60));
    let id = env.submit("INSERT INTO t VALUES (1)").await;

    // The INSERT has run and its transaction waits to commit: the rollback must undo it.
    let postgres = env.postgres().await;
    let pid = started_pid(&env, &id).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let row = postgres
            .query_opt(BACKEND_STATE_SQL, &[&pid])
            .await
            .expect("pg_stat_activity");
        let state: Option<String> = row.and_then(|r| r.get(0));
        if state.as_deref() == Some("idle in transaction") {
            break;
        }
        assert!(Instant::now() < deadline, "the INSERT never ran: {state:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let cancelled = env
        .data
        .cancel_statement()
        .id(&id)
        .send()
        .await
        .expect("CancelStatement");
    assert_eq!(cancelled.status(), Some(true));
    let done = wait_done(&env.data, &id).await;
    assert_eq!(done.status(), Some(&StatusString::Aborted));
    let rows: i64 = postgres
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(rows, 0, "nothing committed");
}

#[tokio::test]
async fn a_cancelled_auto_commit_batch_keeps_only_what_committed_before() {
    let env = Env::start().await;
    env.run_ok("CREATE TABLE t (n int8)").await;
    env.standin.set_statement_time(Duration::from_secs(60));
    let id = env
        .data
        .batch_execute_statement()
        .cluster_identifier(crate::common::CLUSTER)
        .database(crate::common::DATABASE)
        .db_user(crate::common::DB_USER)
        .execution_mode(aws_sdk_redshiftdata::types::ExecutionMode::AutoCommit)
        .sqls("INSERT INTO t VALUES (1)")
        .sqls("INSERT INTO t VALUES (2)")
        .send()
        .await
        .expect("BatchExecuteStatement")
        .id()
        .unwrap_or_default()
        .to_owned();
    let postgres = env.postgres().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    // The first statement commits at once; the second waits out the run time.
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
    env.data
        .cancel_statement()
        .id(&id)
        .send()
        .await
        .expect("CancelStatement");
    let done = wait_done(&env.data, &id).await;
    assert_eq!(done.status(), Some(&StatusString::Aborted));
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
