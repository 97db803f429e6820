//! The Data API's limit on active statements, as the SDK meets it.

use std::time::Duration;

use aws_sdk_redshiftdata::operation::batch_execute_statement::BatchExecuteStatementError;
use aws_sdk_redshiftdata::operation::execute_statement::ExecuteStatementError;
use aws_sdk_redshiftdata::types::StatusString;
use redshift_data_local::AWS_ACTIVE_STATEMENTS;

use crate::common::{Env, batch, cancel_to_aborted, execute, wait_done};

#[tokio::test]
async fn submissions_beyond_the_limit_are_refused_until_a_statement_is_cancelled() {
    let env = Env::start_with(|options| {
        options.active_statements = Some(2);
        // Long enough that the statements stay active throughout.
        options.statement_time = Duration::from_secs(60);
    })
    .await;
    let client = env.single_try_client().await;
    let first = env.submit("SELECT 1").await;
    env.submit_batch(&["SELECT 1", "SELECT 2"]).await;

    let refused = execute(&client, "SELECT 3")
        .send()
        .await
        .expect_err("a third active statement");
    let status = refused.raw_response().map(|r| r.status().as_u16());
    let refused = refused.into_service_error();
    assert!(
        matches!(
            refused,
            ExecuteStatementError::ActiveStatementsExceededException(_)
        ),
        "{refused:?}"
    );
    assert_eq!(status, Some(400), "AWS answers it with HTTP 400");
    let refused = batch(&client, &["SELECT 3"])
        .send()
        .await
        .expect_err("a third active statement, as a batch");
    assert!(
        matches!(
            refused.into_service_error(),
            BatchExecuteStatementError::ActiveStatementsExceededException(_)
        ),
        "batches count and are refused alike"
    );

    // A cancelled statement ends (ABORTED) and gives its place back.
    cancel_to_aborted(&env.data, &first).await;
    env.submit("SELECT 3").await;
    execute(&client, "SELECT 4")
        .send()
        .await
        .expect_err("the limit is reached again");

    // Lifted at runtime, it refuses nothing.
    env.standin.set_active_statements_limit(None);
    env.submit("SELECT 4").await;
}

#[tokio::test]
async fn a_finished_statement_gives_its_place_back() {
    let env = Env::start_with(|options| {
        options.active_statements = Some(1);
        options.statement_time = Duration::from_millis(500);
    })
    .await;
    let client = env.single_try_client().await;
    let first = env.submit("SELECT 1").await;
    let error = execute(&client, "SELECT 2")
        .send()
        .await
        .expect_err("one statement is active already");
    assert!(matches!(
        error.into_service_error(),
        ExecuteStatementError::ActiveStatementsExceededException(_)
    ));
    let done = wait_done(&env.data, &first).await;
    assert_eq!(done.status(), Some(&StatusString::Finished));
    env.submit("SELECT 2").await;
}

#[tokio::test]
async fn the_limit_is_aws_figure_by_default() {
    let env = Env::start().await;
    assert_eq!(
        env.standin.active_statements_limit(),
        Some(AWS_ACTIVE_STATEMENTS)
    );
}
