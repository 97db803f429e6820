//! The Data API's account-wide quotas, as the SDK meets them.

use std::time::{Duration, Instant};

use aws_sdk_redshiftdata::Client;
use aws_sdk_redshiftdata::error::ProvideErrorMetadata;
use redshift_data_local::{Quota, Quotas};
use tokio::task::JoinSet;

use crate::common::{Env, execute};

const ARBITRARY_ID: &str = "0b8a3e8c-1111-4222-8333-944445555666";

/// What one call came to: admitted (whatever its answer), or throttled as AWS throttles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Admitted,
    Throttled,
}

/// One ExecuteStatement; a throttled answer must be AWS's exactly.
async fn execute_once(client: &Client) -> Call {
    match execute(client, "SELECT 1").send().await {
        Ok(_) => Call::Admitted,
        Err(error) => {
            let status = error.raw_response().map(|r| r.status().as_u16());
            let error = error.into_service_error();
            assert_eq!(error.code(), Some("ThrottlingException"), "{error:?}");
            assert_eq!(error.message(), Some("Rate exceeded"));
            assert_eq!(status, Some(400), "AWS answers throttling with HTTP 400");
            Call::Throttled
        }
    }
}

/// `count` ExecuteStatement calls at once, each tried once.
async fn burst(client: &Client, count: usize) -> Vec<Call> {
    let mut calls = JoinSet::new();
    for _ in 0..count {
        let client = client.clone();
        calls.spawn(async move { execute_once(&client).await });
    }
    calls.join_all().await
}

fn tally(calls: &[Call], kind: Call) -> usize {
    calls.iter().filter(|c| **c == kind).count()
}

/// No more calls were admitted than a full bucket of AWS's ExecuteStatement quota (30, and 30
/// more a second) allows in the time the burst took; and at least its burst was.
fn assert_within_execute_quota(calls: &[Call], elapsed: Duration) {
    let admitted = tally(calls, Call::Admitted);
    let refilled = (elapsed.as_secs_f64() * 30.0).ceil() as usize;
    assert!(
        admitted >= 30.min(calls.len()),
        "the burst is admitted: {calls:?}"
    );
    assert!(
        admitted <= 30 + refilled,
        "{admitted} admitted in {elapsed:?}: more than the quota allows"
    );
}

#[tokio::test]
async fn a_burst_beyond_aws_quota_is_throttled_and_counted() {
    let env = Env::start().await;
    let client = env.single_try_client().await;
    let started = Instant::now();
    let calls = burst(&client, 45).await;
    let elapsed = started.elapsed();

    assert_within_execute_quota(&calls, elapsed);
    let throttled = tally(&calls, Call::Throttled);
    assert_eq!(env.standin.throttle_count("ExecuteStatement"), throttled);
    assert_eq!(env.standin.operation_count("ExecuteStatement"), 45);
    assert_eq!(env.standin.throttle_count("DescribeStatement"), 0);
}

#[tokio::test]
async fn calls_within_the_quota_are_never_throttled() {
    let env = Env::start().await;
    let client = env.single_try_client().await;
    // 20 of DescribeStatement's 100 a second, and 20 of ExecuteStatement's 30.
    for _ in 0..20 {
        let error = client
            .describe_statement()
            .id(ARBITRARY_ID)
            .send()
            .await
            .expect_err("an unknown statement");
        assert_eq!(
            error.into_service_error().code(),
            Some("ResourceNotFoundException")
        );
    }
    let calls = burst(&client, 20).await;
    assert_eq!(tally(&calls, Call::Throttled), 0, "{calls:?}");
    assert_eq!(env.standin.throttle_count("DescribeStatement"), 0);
    assert_eq!(env.standin.throttle_count("ExecuteStatement"), 0);
}

#[tokio::test]
async fn every_retry_of_the_sdk_counts_against_the_quota() {
    let env = Env::start().await;
    let none = Quota {
        per_second: 0,
        burst: 0,
    };
    env.standin
        .set_quota("CancelStatement", Some(none))
        .expect("a served operation");
    // The shared client retries (3 attempts): only errors it classifies as retryable, as
    // throttling is, are tried again.
    let error = env
        .data
        .cancel_statement()
        .id(ARBITRARY_ID)
        .send()
        .await
        .expect_err("throttled");
    assert_eq!(
        error.into_service_error().code(),
        Some("ThrottlingException")
    );
    assert_eq!(env.standin.operation_count("CancelStatement"), 3);
    assert_eq!(env.standin.throttle_count("CancelStatement"), 3);
    // Other operations keep their own buckets.
    env.run_ok("SELECT 1").await;
}

#[tokio::test]
async fn an_emptied_bucket_refills_at_its_rate() {
    let env = Env::start_with(|options| {
        options.quotas = Some(
            Quotas::aws()
                .with("ExecuteStatement", Some(Quota::per_second(2)))
                .expect("a served operation"),
        );
    })
    .await;
    let client = env.single_try_client().await;
    let started = Instant::now();
    let calls = [
        execute_once(&client).await,
        execute_once(&client).await,
        execute_once(&client).await,
    ];
    assert_eq!(
        calls[..2],
        [Call::Admitted, Call::Admitted],
        "the burst of 2"
    );
    if started.elapsed() < Duration::from_millis(450) {
        assert_eq!(calls[2], Call::Throttled, "no token has come back yet");
    }
    // Half a second later at 2 a second, a token has come back.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(execute_once(&client).await, Call::Admitted);
}

#[tokio::test]
async fn quotas_can_be_lifted_and_set_again_at_runtime() {
    let env = Env::start_with(|options| options.quotas = None).await;
    let client = env.single_try_client().await;
    assert!(env.standin.quotas().is_empty());
    let calls = burst(&client, 60).await;
    assert_eq!(tally(&calls, Call::Throttled), 0, "no quotas: {calls:?}");

    env.standin.set_quotas(Some(Quotas::aws()));
    assert_eq!(env.standin.quotas(), Quotas::aws());
    let started = Instant::now();
    let calls = burst(&client, 45).await;
    assert_within_execute_quota(&calls, started.elapsed());

    env.standin
        .set_quota("ExecuteStatement", None)
        .expect("a served operation");
    let calls = burst(&client, 45).await;
    assert_eq!(tally(&calls, Call::Throttled), 0, "lifted: {calls:?}");
    assert!(env.standin.set_quota("ListStatements", None).is_err());
}
