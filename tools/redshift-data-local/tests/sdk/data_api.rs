//! The Data API operations through `aws-sdk-redshiftdata`.

use std::time::{Duration, Instant};

use aws_sdk_redshiftdata::error::ProvideErrorMetadata;
use aws_sdk_redshiftdata::operation::batch_execute_statement::BatchExecuteStatementError;
use aws_sdk_redshiftdata::operation::describe_statement::DescribeStatementError;
use aws_sdk_redshiftdata::operation::execute_statement::ExecuteStatementError;
use aws_sdk_redshiftdata::operation::execute_statement::builders::ExecuteStatementFluentBuilder;
use aws_sdk_redshiftdata::operation::get_statement_result::GetStatementResultError;
use aws_sdk_redshiftdata::primitives::Blob;
use aws_sdk_redshiftdata::types::{Field, StatementStatusString, StatusString};

use crate::common::{CLUSTER, DATABASE, DB_USER, Env, execute, parameter, wait_done};

const ALL_TYPES_TABLE: &str = "CREATE TABLE all_types (
    id int8 NOT NULL DEFAULT 7,
    flag bool, small int2, medium int4, big int8,
    real4 float4, real8 float8, amount numeric(10,2),
    note text, label varchar(20), code char(3),
    at timestamp, at_tz timestamptz, day date, payload bytea)";

const INSERT_ALL_TYPES: &str = "INSERT INTO all_types VALUES (:id, :flag, :small, :medium, :big, \
    :real4, :real8, :amount, :note, :label, :code, :at, :at_tz, :day, decode(:payload, 'hex'))";

/// Sends `request`, which the Data API refuses as invalid: its error.
async fn refused(request: ExecuteStatementFluentBuilder) -> ExecuteStatementError {
    let error = request
        .send()
        .await
        .expect_err("refused")
        .into_service_error();
    assert!(
        matches!(error, ExecuteStatementError::ValidationException(_)),
        "{error:?}"
    );
    error
}

fn text(value: &str) -> Field {
    Field::StringValue(value.to_owned())
}

#[tokio::test]
async fn execute_describe_and_fetch_every_column_type() {
    let env = Env::start().await;
    env.run_ok(ALL_TYPES_TABLE).await;
    let inserted = env
        .run_with(
            INSERT_ALL_TYPES,
            &[
                ("id", "1"),
                ("flag", "true"),
                ("small", "-3"),
                ("medium", "70000"),
                ("big", "9000000000"),
                ("real4", "0.5"),
                ("real8", "-2.25"),
                ("amount", "1234.5"),
                ("note", "it's \"quoted\" \\ text"),
                ("label", "café"),
                ("code", "ab"),
                ("at", "2024-05-01 10:11:12.25"),
                ("at_tz", "2024-05-01 10:11:12+02"),
                ("day", "2024-05-01"),
                ("payload", "00ff10"),
            ],
        )
        .await;
    assert_eq!(
        inserted.status(),
        Some(&StatusString::Finished),
        "{:?}",
        inserted.error()
    );
    assert_eq!(inserted.result_rows(), 1, "rows affected by the INSERT");
    assert_eq!(inserted.has_result_set(), Some(false));
    env.run_ok("INSERT INTO all_types (id) VALUES (2)").await;

    let sql = "SELECT * FROM all_types ORDER BY id";
    let described = env.run_ok(sql).await;
    assert_eq!(described.result_rows(), 2);
    assert_eq!(described.has_result_set(), Some(true));
    assert_eq!(described.query_string(), Some(sql));
    assert_eq!(described.cluster_identifier(), Some(CLUSTER));
    assert_eq!(described.database(), Some(DATABASE));
    assert_eq!(described.db_user(), Some(DB_USER));
    assert!(described.redshift_pid() > 0, "the PostgreSQL backend pid");
    assert!(described.duration() > 0);
    assert!(described.created_at() <= described.updated_at());

    let result = env.first_page(described.id()).await;
    assert_eq!(result.total_num_rows(), 2);
    assert_eq!(result.next_token(), None);
    let records = result.records();
    assert_eq!(
        records[0],
        vec![
            Field::LongValue(1),
            Field::BooleanValue(true),
            Field::LongValue(-3),
            Field::LongValue(70000),
            Field::LongValue(9_000_000_000),
            Field::DoubleValue(0.5),
            Field::DoubleValue(-2.25),
            text("1234.50"),
            text("it's \"quoted\" \\ text"),
            text("café"),
            text("ab "),
            text("2024-05-01 10:11:12.25"),
            text("2024-05-01 08:11:12+00"),
            text("2024-05-01"),
            Field::BlobValue(Blob::new(vec![0x00, 0xff, 0x10])),
        ]
    );
    assert_eq!(records[1][0], Field::LongValue(2));
    assert!(
        records[1][1..].iter().all(|f| *f == Field::IsNull(true)),
        "{:?}",
        records[1]
    );

    let columns = result.column_metadata();
    let type_names: Vec<_> = columns
        .iter()
        .map(|c| c.type_name().unwrap_or_default())
        .collect();
    assert_eq!(
        type_names,
        [
            "int8",
            "bool",
            "int2",
            "int4",
            "int8",
            "float4",
            "float8",
            "numeric",
            "varchar",
            "varchar",
            "bpchar",
            "timestamp",
            "timestamptz",
            "date",
            "varbyte"
        ]
    );
    let id = &columns[0];
    assert_eq!((id.name(), id.label()), (Some("id"), Some("id")));
    assert_eq!(id.nullable(), 0, "id is NOT NULL");
    assert_eq!(id.column_default(), Some("7"));
    assert_eq!(
        (id.schema_name(), id.table_name()),
        (Some("public"), Some("all_types"))
    );
    assert!(id.is_signed());
    assert_eq!(columns[1].nullable(), 1);
    assert_eq!(
        (columns[7].precision(), columns[7].scale()),
        (10, 2),
        "numeric(10,2)"
    );
    assert_eq!(columns[9].precision(), 20, "varchar(20)");
    assert!(columns[9].is_case_sensitive());
}

#[tokio::test]
async fn non_finite_doubles_and_computed_columns() {
    let env = Env::start().await;
    let described = env
        .run_ok("SELECT 'NaN'::float8 AS nan, '-Infinity'::float8 AS low, 1 + 1 AS two, NULL AS nothing")
        .await;
    let records = env.records(described.id()).await;
    match records[0].as_slice() {
        [
            Field::DoubleValue(nan),
            Field::DoubleValue(low),
            two,
            nothing,
        ] => {
            assert!(nan.is_nan());
            assert_eq!(*low, f64::NEG_INFINITY);
            assert_eq!(*two, Field::LongValue(2));
            assert_eq!(*nothing, Field::IsNull(true));
        }
        other => panic!("unexpected record {other:?}"),
    }
}

#[tokio::test]
async fn statements_are_asynchronous_unless_the_client_waits() {
    let env = Env::start().await;
    let submitted = execute(&env.data, "SELECT 1")
        .send()
        .await
        .expect("ExecuteStatement");
    assert_eq!(
        submitted.status(),
        None,
        "no status without WaitTimeSeconds"
    );
    assert_eq!(submitted.cluster_identifier(), Some(CLUSTER));
    assert!(submitted.created_at().is_some());

    let waited = execute(&env.data, "SELECT pg_sleep(0.2), 42")
        .wait_time_seconds(10)
        .send()
        .await
        .expect("ExecuteStatement with WaitTimeSeconds");
    assert_eq!(waited.status(), Some(&StatementStatusString::Finished));
    assert_eq!(waited.has_result_set(), Some(true));
    let records = env.records(waited.id().unwrap_or_default()).await;
    assert_eq!(records[0][1], Field::LongValue(42));

    let no_wait = execute(&env.data, "SELECT pg_sleep(1)")
        .wait_time_seconds(0)
        .send()
        .await
        .expect("ExecuteStatement with WaitTimeSeconds 0");
    assert!(
        matches!(
            no_wait.status(),
            Some(StatementStatusString::Submitted | StatementStatusString::Started)
        ),
        "{:?}",
        no_wait.status()
    );
}

#[tokio::test]
async fn results_are_paged_with_next_token() {
    let env = Env::start_with(|options| options.page_size = 3).await;
    let described = env
        .run_ok("SELECT n FROM generate_series(1, 10) AS n")
        .await;
    let id = described.id();

    let mut pages = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = env
            .data
            .get_statement_result()
            .id(id)
            .set_next_token(token.clone())
            .send()
            .await
            .expect("GetStatementResult");
        assert_eq!(page.total_num_rows(), 10);
        assert_eq!(page.column_metadata().len(), 1);
        pages.push(page.records().to_vec());
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    let sizes: Vec<_> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [3, 3, 3, 1]);
    let values: Vec<_> = pages
        .into_iter()
        .flatten()
        .map(|row| row[0].clone())
        .collect();
    let expected: Vec<_> = (1..=10).map(Field::LongValue).collect();
    assert_eq!(values, expected);

    let bad = env
        .data
        .get_statement_result()
        .id(id)
        .next_token("not-a-token")
        .send()
        .await
        .expect_err("a made-up NextToken");
    assert!(matches!(
        bad.into_service_error(),
        GetStatementResultError::ValidationException(_)
    ));

    let other = env
        .run_ok("SELECT n FROM generate_series(1, 10) AS n")
        .await;
    let first_page = env
        .data
        .get_statement_result()
        .id(id)
        .send()
        .await
        .expect("first page");
    let stolen = env
        .data
        .get_statement_result()
        .id(other.id())
        .set_next_token(first_page.next_token().map(str::to_owned))
        .send()
        .await
        .expect_err("a NextToken of another statement");
    assert!(matches!(
        stolen.into_service_error(),
        GetStatementResultError::ValidationException(_)
    ));
}

#[tokio::test]
async fn a_batch_is_one_transaction() {
    let env = Env::start().await;
    env.run_ok("CREATE TABLE calls (id int8 NOT NULL, who varchar(50))")
        .await;

    let batch = env
        .data
        .batch_execute_statement()
        .cluster_identifier(CLUSTER)
        .database(DATABASE)
        .db_user(DB_USER)
        .sqls("INSERT INTO calls VALUES (1, :who)")
        .sqls("INSERT INTO calls VALUES (2, 'bob'), (3, 'eve')")
        .sqls("SELECT who FROM calls ORDER BY id")
        .parameters(parameter("who", "ann"))
        .send()
        .await
        .expect("BatchExecuteStatement");
    let id = batch.id().unwrap_or_default().to_owned();
    let described = wait_done(&env.data, &id).await;
    assert_eq!(
        described.status(),
        Some(&StatusString::Finished),
        "{:?}",
        described.error()
    );
    let subs = described.sub_statements();
    let ids: Vec<_> = subs.iter().map(|s| s.id().to_owned()).collect();
    assert_eq!(
        ids,
        [format!("{id}:1"), format!("{id}:2"), format!("{id}:3")]
    );
    let rows: Vec<_> = subs.iter().map(|s| s.result_rows()).collect();
    assert_eq!(rows, [1, 2, 3]);
    assert_eq!(subs[2].has_result_set(), Some(true));
    let names = env.records(&format!("{id}:3")).await;
    assert_eq!(names, [[text("ann")], [text("bob")], [text("eve")]]);
    let sub = env
        .data
        .describe_statement()
        .id(format!("{id}:2"))
        .send()
        .await
        .expect("describe a sub-statement");
    assert_eq!(
        sub.query_string(),
        Some("INSERT INTO calls VALUES (2, 'bob'), (3, 'eve')")
    );
    assert_eq!(sub.result_rows(), 2);

    let failing = env
        .data
        .batch_execute_statement()
        .cluster_identifier(CLUSTER)
        .database(DATABASE)
        .db_user(DB_USER)
        .sqls("INSERT INTO calls VALUES (4, 'kim')")
        .sqls("INSERT INTO no_such_table VALUES (5)")
        .sqls("INSERT INTO calls VALUES (6, 'lee')")
        .wait_time_seconds(10)
        .send()
        .await
        .expect("BatchExecuteStatement");
    let failed = wait_done(&env.data, failing.id().unwrap_or_default()).await;
    assert_eq!(failed.status(), Some(&StatusString::Failed));
    assert!(
        failed.error().unwrap_or_default().contains("no_such_table"),
        "{:?}",
        failed.error()
    );
    let statuses: Vec<_> = failed
        .sub_statements()
        .iter()
        .map(|s| s.status().cloned())
        .collect();
    assert_eq!(
        statuses,
        [
            Some(StatementStatusString::Aborted),
            Some(StatementStatusString::Failed),
            Some(StatementStatusString::Aborted)
        ]
    );
    assert_eq!(
        env.scalar("SELECT count(*) FROM calls").await,
        3,
        "the failed batch left no row"
    );
}

#[tokio::test]
async fn auto_commit_batches_keep_what_ran_before_a_failure() {
    let env = Env::start().await;
    env.run_ok("CREATE TABLE t (n int8)").await;
    let batch = env
        .data
        .batch_execute_statement()
        .cluster_identifier(CLUSTER)
        .database(DATABASE)
        .db_user(DB_USER)
        .execution_mode(aws_sdk_redshiftdata::types::ExecutionMode::AutoCommit)
        .sqls("INSERT INTO t VALUES (1)")
        .sqls("INSERT INTO t VALUES ('not a number')")
        .send()
        .await
        .expect("BatchExecuteStatement");
    let described = wait_done(&env.data, batch.id().unwrap_or_default()).await;
    assert_eq!(described.status(), Some(&StatusString::Failed));
    assert_eq!(
        described.sub_statements()[0].status(),
        Some(&StatementStatusString::Finished)
    );
    assert_eq!(env.scalar("SELECT count(*) FROM t").await, 1);
}

#[tokio::test]
async fn invalid_requests_are_validation_errors() {
    let env = Env::start().await;
    let no_target = env
        .data
        .execute_statement()
        .database(DATABASE)
        .sql("SELECT 1")
        .send()
        .await
        .expect_err("no cluster or workgroup");
    let both_targets = execute(&env.data, "SELECT 1")
        .workgroup_name("wg")
        .send()
        .await
        .expect_err("both targets");
    let no_database = env
        .data
        .execute_statement()
        .workgroup_name("wg")
        .sql("SELECT 1")
        .send()
        .await
        .expect_err("no database");
    let long_wait = execute(&env.data, "SELECT 1")
        .wait_time_seconds(31)
        .send()
        .await
        .expect_err("wait too long");
    let missing = execute(&env.data, "SELECT :a")
        .send()
        .await
        .expect_err("missing parameter");
    let unused = execute(&env.data, "SELECT 1")
        .parameters(parameter("a", "1"))
        .send()
        .await
        .expect_err("unused parameter");
    // SqlParameter.value has a minimum length of 1: the Data API cannot carry "".
    let empty_value = execute(&env.data, "SELECT :a, :b")
        .parameters(parameter("a", "x"))
        .parameters(parameter("b", ""))
        .send()
        .await
        .expect_err("empty parameter value");
    assert!(
        empty_value
            .as_service_error()
            .and_then(|e| e.message())
            .is_some_and(|m| m.contains("'parameters.2.member.value'")),
        "{empty_value:?}"
    );
    for error in [
        no_target,
        both_targets,
        no_database,
        long_wait,
        missing,
        unused,
        empty_value,
    ] {
        let error = error.into_service_error();
        assert!(
            matches!(error, ExecuteStatementError::ValidationException(_)),
            "{error:?}"
        );
        assert!(error.message().is_some_and(|m| !m.is_empty()), "{error:?}");
    }

    let too_many = env
        .data
        .batch_execute_statement()
        .cluster_identifier(CLUSTER)
        .database(DATABASE)
        .set_sqls(Some(vec!["SELECT 1".to_owned(); 41]))
        .send()
        .await
        .expect_err("41 statements");
    assert!(matches!(
        too_many.into_service_error(),
        BatchExecuteStatementError::ValidationException(_)
    ));

    let malformed = env
        .data
        .describe_statement()
        .id("not-an-id")
        .send()
        .await
        .expect_err("malformed id");
    assert!(matches!(
        malformed.into_service_error(),
        DescribeStatementError::ValidationException(_)
    ));
}

#[tokio::test]
async fn unknown_statements_and_missing_results_are_not_found() {
    let env = Env::start().await;
    let unknown_id = "0b8a3e8c-1111-4222-8333-944445555666";
    let unknown = env
        .data
        .describe_statement()
        .id(unknown_id)
        .send()
        .await
        .expect_err("unknown id");
    match unknown.into_service_error() {
        DescribeStatementError::ResourceNotFoundException(e) => {
            assert_eq!(e.resource_id(), unknown_id)
        }
        other => panic!("expected ResourceNotFoundException, got {other:?}"),
    }

    env.run_ok("CREATE TABLE t (n int8)").await;
    let insert = env.run_ok("INSERT INTO t VALUES (1)").await;
    let no_result = env
        .data
        .get_statement_result()
        .id(insert.id())
        .send()
        .await
        .expect_err("no result set");
    let error = no_result.into_service_error();
    assert!(matches!(
        error,
        GetStatementResultError::ResourceNotFoundException(_)
    ));
    assert_eq!(
        error.message(),
        Some("Query does not have result. Please check query status with DescribeStatement.")
    );

    let failed = env.run("SELECT * FROM nope").await;
    assert_eq!(failed.status(), Some(&StatusString::Failed));
    assert_eq!(
        failed.error(),
        Some("ERROR: relation \"nope\" does not exist")
    );
    let error = env
        .data
        .get_statement_result()
        .id(failed.id())
        .send()
        .await
        .expect_err("failed statement");
    assert!(matches!(
        error.into_service_error(),
        GetStatementResultError::ResourceNotFoundException(_)
    ));
}

#[tokio::test]
async fn sql_that_redshift_rejects_fails() {
    let env = Env::start().await;
    env.run_ok("CREATE TABLE t (id int8 PRIMARY KEY, n int8)")
        .await;
    let cases = [
        (
            "INSERT INTO t VALUES (1, 1) ON CONFLICT (id) DO NOTHING",
            "syntax error at or near \"ON\"",
        ),
        (
            "INSERT INTO t VALUES (2, 2) RETURNING id",
            "syntax error at or near \"RETURNING\"",
        ),
        (
            "CREATE TABLE s (id SERIAL, n int8)",
            "unsupported type \"serial\"",
        ),
        (
            "CREATE TABLE b (id bigserial)",
            "unsupported type \"bigserial\"",
        ),
        (
            "CREATE UNIQUE INDEX t_n ON t (n)",
            "syntax error at or near \"INDEX\"",
        ),
        (
            "INSERT INTO t VALUES (3, 3) -- \u{0}",
            "invalid byte sequence for encoding \"UTF8\": 0x00",
        ),
    ];
    for (sql, message) in cases {
        let described = env.run(sql).await;
        assert_eq!(
            described.status(),
            Some(&StatusString::Failed),
            "{sql} must fail"
        );
        let error = described.error().unwrap_or_default();
        assert!(
            error.starts_with("ERROR: ") && error.contains(message),
            "{sql}: {error}"
        );
    }
    assert_eq!(
        env.scalar("SELECT count(*) FROM t").await,
        0,
        "nothing was inserted"
    );
    let tables = env
        .scalar("SELECT count(*) FROM information_schema.tables WHERE table_name IN ('s', 'b')")
        .await;
    assert_eq!(tables, 0, "no table was created");
    // The same words inside literals and identifiers are fine.
    env.run_ok("SELECT 'on conflict do nothing returning serial' AS \"returning\"")
        .await;
    // A NUL in a parameter value fails the statement, as Redshift's encoding check does.
    let nul = env.run_with("SELECT :v", &[("v", "a\u{0}b")]).await;
    assert_eq!(nul.status(), Some(&StatusString::Failed));
}

#[tokio::test]
async fn key_constraints_are_recorded_but_never_enforced() {
    let env = Env::start().await;
    env.run_ok(
        "CREATE TABLE parent (id VARCHAR(10) NOT NULL, code VARCHAR(10) UNIQUE, PRIMARY KEY (id))",
    )
    .await;
    env.run_ok("INSERT INTO parent VALUES ('a', 'x'), ('a', 'x')")
        .await;
    assert_eq!(
        env.scalar("SELECT count(*) FROM parent WHERE id = 'a'")
            .await,
        2
    );
    // NOT NULL is enforced, by Redshift too.
    let null_id = env.run("INSERT INTO parent VALUES (NULL, 'y')").await;
    assert_eq!(null_id.status(), Some(&StatusString::Failed));
    // Constraints added later are not enforced either.
    env.run_ok("CREATE TABLE later (id int8)").await;
    env.run_ok("ALTER TABLE later ADD PRIMARY KEY (id)").await;
    env.run_ok("INSERT INTO later VALUES (1), (1)").await;
    assert_eq!(env.scalar("SELECT count(*) FROM later").await, 2);
}

#[tokio::test]
async fn cancel_statement_aborts_a_running_query() {
    let env = Env::start().await;
    let id = env.submit("SELECT pg_sleep(60)").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while env
        .data
        .describe_statement()
        .id(&id)
        .send()
        .await
        .expect("describe")
        .status()
        != Some(&StatusString::Started)
    {
        assert!(Instant::now() < deadline, "the statement never started");
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
    let started = Instant::now();
    let described = wait_done(&env.data, &id).await;
    assert_eq!(described.status(), Some(&StatusString::Aborted));
    assert!(started.elapsed() < Duration::from_secs(5));

    let again = env
        .data
        .cancel_statement()
        .id(&id)
        .send()
        .await
        .expect_err("cancel twice");
    assert_eq!(
        again.into_service_error().code(),
        Some("ValidationException")
    );

    // The query was cancelled on the server too, not only forgotten.
    let running = "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)' AND state = 'active'";
    let deadline = Instant::now() + Duration::from_secs(5);
    while env.scalar(running).await != 0 {
        assert!(
            Instant::now() < deadline,
            "pg_sleep is still running on PostgreSQL"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_client_token_makes_submission_idempotent() {
    let env = Env::start().await;
    env.run_ok("CREATE TABLE t (n int8)").await;
    let first = execute(&env.data, "INSERT INTO t VALUES (1)")
        .client_token("token-1")
        .wait_time_seconds(10)
        .send()
        .await
        .expect("first");
    let second = execute(&env.data, "INSERT INTO t VALUES (1)")
        .client_token("token-1")
        .wait_time_seconds(10)
        .send()
        .await
        .expect("second");
    assert_eq!(first.id(), second.id());
    assert_eq!(env.scalar("SELECT count(*) FROM t").await, 1);
}

#[tokio::test]
async fn every_request_is_counted_per_operation() {
    let env = Env::start().await;
    let described = env.run_ok("SELECT 1").await;
    env.records(described.id()).await;
    assert_eq!(env.standin.operation_count("ExecuteStatement"), 1);
    assert!(env.standin.operation_count("DescribeStatement") >= 1);
    assert_eq!(env.standin.operation_count("GetStatementResult"), 1);
    assert_eq!(env.standin.operation_count("BatchExecuteStatement"), 0);
}

#[tokio::test]
async fn sql_text_over_100_kb_is_refused_as_aws_does() {
    let env = Env::start().await;
    // SELECT 1 padded with a comment to the byte count wanted.
    let sql_of = |bytes: usize| format!("SELECT 1 --{}", "x".repeat(bytes - "SELECT 1 --".len()));
    env.run_ok(&sql_of(100_000)).await;

    let refused = refused(execute(&env.data, &sql_of(100_001))).await;
    assert_eq!(
        refused.message(),
        Some("Cannot process query string larger than 100kB")
    );

    let batch = env
        .data
        .batch_execute_statement()
        .cluster_identifier(CLUSTER)
        .database(DATABASE)
        .db_user(DB_USER)
        .set_sqls(Some(vec!["SELECT 1".to_owned(), sql_of(100_001)]))
        .send()
        .await
        .expect_err("one statement of the batch over the limit");
    assert!(matches!(
        batch.into_service_error(),
        BatchExecuteStatementError::ValidationException(_)
    ));
    assert_eq!(env.standin.operation_count("ExecuteStatement"), 2);
}

#[tokio::test]
async fn an_empty_parameter_list_is_refused() {
    let env = Env::start().await;
    let refused = refused(execute(&env.data, "SELECT 1").set_parameters(Some(Vec::new()))).await;
    assert!(
        refused
            .message()
            .is_some_and(|m| m.contains("at 'parameters'")),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_parameter_name_may_start_with_a_digit() {
    let env = Env::start().await;
    let described = env.run_with("SELECT :1st::int8", &[("1st", "7")]).await;
    assert_eq!(
        described.status(),
        Some(&StatusString::Finished),
        "{:?}",
        described.error()
    );
    assert_eq!(
        env.records(described.id()).await,
        vec![vec![Field::LongValue(7)]]
    );
}

#[tokio::test]
async fn a_retry_with_the_same_client_token_is_validated_again() {
    let env = Env::start().await;
    execute(&env.data, "SELECT :a")
        .parameters(parameter("a", "1"))
        .client_token("token-1")
        .send()
        .await
        .expect("first");
    // The retry lacks its parameter.
    refused(execute(&env.data, "SELECT :a").client_token("token-1")).await;
}

#[tokio::test]
async fn transactions_are_serializable_as_on_redshift() {
    let env = Env::start().await;
    let isolation = env
        .run_ok("SELECT current_setting('transaction_isolation')")
        .await;
    assert_eq!(
        env.records(isolation.id()).await,
        vec![vec![text("serializable")]]
    );

    // Write skew: each transaction reads both rows, then changes the one the other did not.
    // Read committed lets both commit; serializable, as Redshift, fails one of them.
    env.run_ok("CREATE TABLE on_call (name text, active bool)")
        .await;
    env.run_ok("INSERT INTO on_call VALUES ('a', true), ('b', true)")
        .await;
    let stand_down = |name: &str| {
        env.data
            .batch_execute_statement()
            .cluster_identifier(CLUSTER)
            .database(DATABASE)
            .db_user(DB_USER)
            .set_sqls(Some(vec![
                "SELECT count(*) FROM on_call WHERE active".to_owned(),
                // Both transactions have read before either writes.
                "SELECT pg_sleep(1)".to_owned(),
                format!("UPDATE on_call SET active = false WHERE name = '{name}'"),
            ]))
            .send()
    };
    let (first, second) = tokio::join!(stand_down("a"), stand_down("b"));
    let mut failures = Vec::new();
    for submitted in [first, second] {
        let id = submitted
            .expect("BatchExecuteStatement")
            .id()
            .unwrap_or_default()
            .to_owned();
        let described = wait_done(&env.data, &id).await;
        if described.status() == Some(&StatusString::Failed) {
            failures.push(described.error().unwrap_or_default().to_owned());
        }
    }
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].contains("ERROR: 1023 DETAIL: Serializable isolation violation on table - "),
        "Redshift's wording: {failures:?}"
    );
    assert_eq!(
        env.scalar("SELECT count(*) FROM on_call WHERE active")
            .await,
        1
    );
}
