//! The function's work after each answer and at shutdown, under a local Lambda that freezes the
//! process (SIGSTOP) as soon as the runtime and every extension wait for their next event, and
//! shuts it down as Lambda does: nothing left "in the background" can run while it is frozen,
//! so each of these would fail if the work waited for a thaw.

mod common;

use std::time::Duration;

use common::events::{http_get, http_post_call};
use common::{spawn_app_on, Redshift};
use lambda_runtime_local::{Invocation, LocalLambda, Options};
use redshift_data_local::Fault;
use serde_json::{json, Value};

/// The service's binary as a Lambda function against the stand-in (its table made first), with
/// `env` besides.
async fn function(redshift: &Redshift, env: &[(&str, &str)]) -> (LocalLambda, tempfile::TempDir) {
    drop(spawn_app_on(redshift, &[]).await);
    let dir = tempfile::tempdir().unwrap();
    let lambda = LocalLambda::start(Options {
        function_name: "call-history".to_string(),
        memory_size_mb: 256,
        function_timeout: Duration::from_secs(29),
        init_timeout: Duration::from_secs(60),
        ..Options::default()
    })
    .await
    .unwrap();
    let mut command = redshift.service_command();
    command
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SQLITE_PATH", dir.path().join("crm.db"))
        .env("METRICS_NAMESPACE", "CallHistoryLifecycle")
        // The token the sample admin events send.
        .env("ADMIN_TOKEN", "example-admin-token")
        .env("AWS_LAMBDA_LOG_LEVEL", "INFO")
        .envs(env.iter().copied());
    lambda.spawn(command).await.unwrap_or_else(|err| {
        panic!("the function did not start: {err}");
    });
    (lambda, dir)
}

/// The answer's status and body.
fn answer(invocation: &Invocation) -> (u16, Value) {
    let answer = invocation.response.json().expect("an answer in JSON");
    let status = answer["statusCode"].as_u64().expect("a status") as u16;
    let body =
        serde_json::from_str(answer["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null);
    (status, body)
}

fn metric_names(redshift: &Redshift) -> Vec<String> {
    redshift
        .standin
        .metrics()
        .into_iter()
        .map(|m| m.metric_name)
        .collect()
}

#[tokio::test]
async fn the_function_registers_its_extension_and_freezes_after_each_answer() {
    let redshift = Redshift::start(1000).await;
    let (lambda, _dir) = function(&redshift, &[]).await;
    let names: Vec<String> = lambda.extensions().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["call-history-upkeep"]);
    let invocation = lambda.invoke(&http_get("/db/healthz", "")).await.unwrap();
    assert_eq!(answer(&invocation).0, 200);
    assert!(invocation.frozen_at.is_some() && lambda.is_frozen());
    assert!(invocation.extensions_done_at.is_some());
    assert!(lambda.refusals().is_empty(), "{:?}", lambda.refusals());
}

/// A fallback's metrics and the cancel of the statement it abandoned are done before the
/// environment freezes: waiting for a thaw, they would be missing here.
#[tokio::test]
async fn a_fallbacks_metrics_and_its_cancel_are_done_before_the_freeze() {
    let redshift = Redshift::start(1000).await;
    let (lambda, _dir) = function(&redshift, &[("REDSHIFT_TIMEOUT_MS", "1000")]).await;
    redshift
        .standin
        .set_fault(Fault::StayStarted(Duration::from_secs(60)));
    let invocation = lambda
        .invoke(&http_get("/api/calls/history", ""))
        .await
        .unwrap();
    let (status, body) = answer(&invocation);
    assert_eq!((status, body["source"].as_str()), (200, Some("sqlite")));
    assert!(lambda.is_frozen());
    let names = metric_names(&redshift);
    assert!(names.iter().any(|n| n == "FallbackEvents"), "{names:?}");
    assert!(
        redshift.standin.operation_count("CancelStatement") >= 1,
        "the abandoned statement was cancelled before the freeze"
    );
}

/// The answer goes to the client when the runtime posts it; the work after it (here a put to a
/// CloudWatch that takes 200 ms, within the put's own 250 ms) runs before the freeze, not before
/// the answer.
#[tokio::test]
async fn the_answer_does_not_wait_for_the_work_after_it() {
    let redshift = Redshift::start(1000).await;
    let (lambda, _dir) = function(&redshift, &[]).await;
    redshift
        .standin
        .set_cloudwatch_fault(Fault::Slow(Duration::from_millis(200)));
    let force = common::events::sample("db-force-sqlite");
    let invocation = lambda.invoke(&force).await.unwrap();
    assert_eq!(answer(&invocation).0, 200);
    let frozen_at = invocation.frozen_at.expect("frozen");
    assert!(invocation.response_at < frozen_at);
    assert!(
        frozen_at - invocation.response_at >= Duration::from_millis(150),
        "the put ran after the answer, before the freeze: {:?}",
        invocation.post_answer()
    );
    assert!(metric_names(&redshift)
        .iter()
        .any(|n| n == "ForcedFallbackEvents"));
}

/// Past half its bound the replica is pulled after the answer, so that the next read is
/// answered locally without a Data API call.
#[tokio::test]
async fn the_replica_is_pulled_after_the_answer_so_the_next_read_is_local() {
    // The thaw below comes when the replica is past half its bound, by the replica's own
    // `asOf`; the margins it leaves are wide: 4 s before the bound, and 5 s for the third read
    // before the next pull is due.
    let bound = Duration::from_secs(10);
    let bound_ms = bound.as_millis().to_string();
    let redshift = Redshift::start(1000).await;
    let (lambda, _dir) = function(&redshift, &[("READ_MAX_STALENESS_MS", &bound_ms)]).await;
    let history = http_get("/api/calls/history", "");
    let first = lambda.invoke(&history).await.unwrap();
    let (_, first) = answer(&first);
    assert_eq!(first["source"], "redshift");
    let statements = || redshift.standin.operation_count("ExecuteStatement");
    // Frozen meanwhile; thawed when the replica the first read pulled (its `asOf`) is 3/5 of
    // its bound old: past half, not past the bound.
    let first_as_of = as_of(&first);
    let thaw_at = first_as_of + chrono::TimeDelta::from_std(bound * 3 / 5).unwrap();
    let wait = (thaw_at - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait).await;
    let before = statements();
    let second = lambda.invoke(&history).await.unwrap();
    let (_, body) = answer(&second);
    assert_eq!(body["source"], "redshift");
    assert_eq!(
        body["asOf"], first["asOf"],
        "answered by the replica as the first read left it"
    );
    assert!(statements() > before, "a pull after the second answer");
    let pulled = statements();
    let third = lambda.invoke(&history).await.unwrap();
    let (_, later) = answer(&third);
    assert_eq!(later["source"], "redshift");
    assert_eq!(statements(), pulled, "the third read cost no Data API call");
    assert!(as_of(&later) > first_as_of, "{later} {body}");
}

/// The `asOf` of an answer's body.
fn as_of(body: &Value) -> chrono::DateTime<chrono::Utc> {
    let text = body["asOf"].as_str().expect("an asOf");
    chrono::DateTime::parse_from_rfc3339(text)
        .expect("RFC 3339")
        .with_timezone(&chrono::Utc)
}

/// A write journaled during an outage is replayed at shutdown when Redshift is back.
#[tokio::test]
async fn a_waiting_write_reaches_redshift_at_shutdown() {
    let redshift = Redshift::start(1000).await;
    let (lambda, _dir) = function(&redshift, &[("REDSHIFT_TIMEOUT_MS", "1000")]).await;
    redshift.standin.set_fault(Fault::RefuseConnections);
    let body = json!({"id": "left-for-shutdown", "contactName": "Shutdown Sam"}).to_string();
    let written = lambda.invoke(&http_post_call(&body, false)).await.unwrap();
    let (status, reply) = answer(&written);
    assert_eq!((status, reply["source"].as_str()), (201, Some("sqlite")));
    redshift.standin.clear_fault();

    let report = lambda.shutdown().await.unwrap();
    assert!(report.sigterm_sent);
    assert_eq!(redshift.copies_of("left-for-shutdown").await, 1);
    let log = report_log(&report);
    assert!(
        log.contains("Shutting down: 1 writes replayed to Redshift, 0 left"),
        "{log}"
    );
}

/// Redshift still down at shutdown: the write cannot be replayed; the log says so and where it
/// is (a file that goes with the environment), and a metric counts it.
#[tokio::test]
async fn a_write_left_at_shutdown_is_reported_and_counted() {
    let redshift = Redshift::start(1000).await;
    let (lambda, _dir) = function(&redshift, &[("REDSHIFT_TIMEOUT_MS", "1000")]).await;
    redshift.standin.set_fault(Fault::RefuseConnections);
    let body = json!({"id": "lost-at-shutdown", "contactName": "Lost Lou"}).to_string();
    let written = lambda.invoke(&http_post_call(&body, false)).await.unwrap();
    assert_eq!(answer(&written).0, 201);
    let report = lambda.shutdown().await.unwrap();
    assert!(report.sigterm_sent);
    let log = report_log(&report);
    assert!(
        log.contains("0 writes replayed to Redshift, 1 left in /tmp"),
        "{log}"
    );
    let lost: Vec<_> = redshift
        .standin
        .metrics()
        .into_iter()
        .filter(|m| m.metric_name == "WritesLostAtShutdown")
        .collect();
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(lost[0].value, Some(1.0));
}

/// What the function wrote, as the shutdown report keeps it.
fn report_log(report: &lambda_runtime_local::ShutdownReport) -> String {
    format!("{}{}", report.stdout, report.stderr)
}
