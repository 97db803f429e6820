//! Injected Data API faults, as the SDK experiences them.

use std::time::{Duration, Instant};

use aws_sdk_redshiftdata::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_redshiftdata::operation::describe_statement::DescribeStatementError;
use aws_sdk_redshiftdata::operation::execute_statement::ExecuteStatementError;
use aws_sdk_redshiftdata::types::StatusString;
use redshift_data_local::Fault;

use crate::common::{Env, data_client, execute, short_timeout, wait_done};

/// The SDK's default number of attempts, configured explicitly in `common`.
const MAX_ATTEMPTS: usize = 3;

#[tokio::test]
async fn refused_connections_fail_to_dispatch_until_cleared() {
    let env = Env::start().await;
    // A first request leaves a kept-alive connection in the client's pool.
    env.run_ok("SELECT 1").await;
    let before = env.standin.operation_count("ExecuteStatement");

    env.standin.set_fault(Fault::RefuseConnections);
    let error = execute(&env.data, "SELECT 1")
        .send()
        .await
        .expect_err("connections are refused");
    match &error {
        SdkError::DispatchFailure(failure) => assert!(failure.is_io(), "{failure:?}"),
        other => panic!("expected a dispatch failure, got {other:?}"),
    }
    let refused =
        tokio::net::TcpStream::connect(env.standin.data_api_url().trim_start_matches("http://"))
            .await;
    assert_eq!(
        refused.map(drop).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionRefused)
    );
    assert_eq!(
        env.standin.operation_count("ExecuteStatement"),
        before,
        "nothing reached the API"
    );

    env.standin.clear_fault();
    env.run_ok("SELECT 1").await;
}

#[tokio::test]
async fn a_hang_ends_in_the_sdk_timeout() {
    let env = Env::start().await;
    let impatient = data_client(&env.standin.data_api_url(), |b| {
        b.timeout_config(short_timeout(Duration::from_millis(500)))
    })
    .await;
    env.standin.set_fault(Fault::Hang);
    let started = Instant::now();
    let error = execute(&impatient, "SELECT 1")
        .send()
        .await
        .expect_err("the API hangs");
    assert!(matches!(error, SdkError::TimeoutError(_)), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        env.standin.operation_count("ExecuteStatement") >= 1,
        "the request was read"
    );

    env.standin.clear_fault();
    env.run_ok("SELECT 1").await;
}

#[tokio::test]
async fn server_errors_are_retried_then_surfaced() {
    let env = Env::start().await;
    env.standin.set_fault(Fault::HttpStatus(503));
    let error = execute(&env.data, "SELECT 1")
        .send()
        .await
        .expect_err("503");
    assert_eq!(error.raw_response().map(|r| r.status().as_u16()), Some(503));
    assert_eq!(
        error.into_service_error().code(),
        Some("ServiceUnavailableException")
    );
    assert_eq!(
        env.standin.operation_count("ExecuteStatement"),
        MAX_ATTEMPTS
    );

    env.standin.set_fault(Fault::HttpStatus(500));
    let error = execute(&env.data, "SELECT 1")
        .send()
        .await
        .expect_err("500");
    assert!(matches!(
        error.into_service_error(),
        ExecuteStatementError::InternalServerException(_)
    ));
    assert_eq!(
        env.standin.operation_count("ExecuteStatement"),
        2 * MAX_ATTEMPTS
    );
}

#[tokio::test]
async fn throttling_is_retried_then_surfaced() {
    let env = Env::start().await;
    env.standin.set_fault(Fault::Throttle);
    let error = execute(&env.data, "SELECT 1")
        .send()
        .await
        .expect_err("throttled");
    let error = error.into_service_error();
    assert_eq!(error.code(), Some("ThrottlingException"));
    assert_eq!(error.message(), Some("Rate exceeded"));
    assert_eq!(
        env.standin.operation_count("ExecuteStatement"),
        MAX_ATTEMPTS
    );
}

#[tokio::test]
async fn active_statements_exceeded_refuses_only_new_statements() {
    let env = Env::start().await;
    let earlier = env.submit("SELECT 1").await;
    env.standin.set_fault(Fault::ActiveStatementsExceeded);
    let error = execute(&env.data, "SELECT 1")
        .send()
        .await
        .expect_err("quota");
    assert!(matches!(
        error.into_service_error(),
        ExecuteStatementError::ActiveStatementsExceededException(_)
    ));
    let described = wait_done(&env.data, &earlier).await;
    assert_eq!(described.status(), Some(&StatusString::Finished));
}

#[tokio::test]
async fn active_waiting_requests_exceeded_refuses_only_requests_that_wait() {
    let env = Env::start().await;
    let earlier = env.submit("SELECT 1").await;
    env.standin.set_fault(Fault::ActiveWaitingRequestsExceeded);

    let describe_waiting = env
        .data
        .describe_statement()
        .id(&earlier)
        .wait_time_seconds(5)
        .send()
        .await
        .expect_err("a waiting DescribeStatement");
    assert!(matches!(
        describe_waiting.into_service_error(),
        DescribeStatementError::ActiveWaitingRequestsExceededException(_)
    ));
    let execute_waiting = execute(&env.data, "SELECT 1")
        .wait_time_seconds(5)
        .send()
        .await
        .expect_err("a waiting ExecuteStatement");
    assert_eq!(
        execute_waiting.into_service_error().code(),
        Some("ActiveWaitingRequestsExceededException")
    );

    // Requests without a wait are answered as usual.
    env.submit("SELECT 1").await;
    env.data
        .describe_statement()
        .id(&earlier)
        .send()
        .await
        .expect("DescribeStatement without a wait");
}

#[tokio::test]
async fn statements_can_be_made_to_fail_or_abort() {
    let env = Env::start().await;
    env.run_ok("CREATE TABLE t (n int8)").await;

    env.standin
        .set_fault(Fault::FailStatements("ERROR: disk full".to_owned()));
    let failed = env.run("INSERT INTO t VALUES (1)").await;
    assert_eq!(failed.status(), Some(&StatusString::Failed));
    assert_eq!(failed.error(), Some("ERROR: disk full"));

    env.standin.set_fault(Fault::AbortStatements);
    let aborted = env.run("INSERT INTO t VALUES (2)").await;
    assert_eq!(aborted.status(), Some(&StatusString::Aborted));

    env.standin.clear_fault();
    assert_eq!(
        env.scalar("SELECT count(*) FROM t").await,
        0,
        "neither statement ran"
    );
}

#[tokio::test]
async fn statements_can_stay_started() {
    let env = Env::start().await;
    env.standin
        .set_fault(Fault::StayStarted(Duration::from_millis(1500)));
    let started = Instant::now();
    let id = env.submit("SELECT 1").await;
    env.standin.clear_fault();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let early = env
        .data
        .describe_statement()
        .id(&id)
        .send()
        .await
        .expect("describe");
    assert_eq!(early.status(), Some(&StatusString::Started));

    let done = wait_done(&env.data, &id).await;
    assert_eq!(done.status(), Some(&StatusString::Finished));
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn slow_delays_every_response() {
    let env = Env::start().await;
    let id = env.submit("SELECT 1").await;
    env.standin
        .set_fault(Fault::Slow(Duration::from_millis(400)));
    let started = Instant::now();
    env.data
        .describe_statement()
        .id(&id)
        .send()
        .await
        .expect("describe");
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    env.standin.clear_fault();
}
