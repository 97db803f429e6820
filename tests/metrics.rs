//! CloudWatch metrics on every switch, through the real `aws-sdk-cloudwatch` client (Smithy RPC
//! v2 CBOR) pointed at the stand-in's CloudWatch endpoint, which decodes and keeps every datum.

mod common;

use std::time::Duration;

use common::{logs, spawn_app_on, Redshift};
use redshift_data_local::{CapturedMetric, Fault};

const NAMESPACE: &str = "CallHistoryTest";
const FUNCTION: &str = "call-history-metrics-test";

async fn app(redshift: &Redshift, extra: &[(&str, &str)]) -> common::TestApp {
    let mut vars = vec![
        ("METRICS_NAMESPACE", NAMESPACE),
        ("AWS_LAMBDA_FUNCTION_NAME", FUNCTION),
        ("REDSHIFT_CHECK_INTERVAL_SECS", "1"),
        // Every read a statement: each request below meets Redshift as it is at that moment.
        ("READ_MAX_STALENESS_MS", "0"),
    ];
    vars.extend_from_slice(extra);
    spawn_app_on(redshift, &vars).await
}

fn named<'a>(metrics: &'a [CapturedMetric], name: &str) -> Vec<&'a CapturedMetric> {
    metrics.iter().filter(|m| m.metric_name == name).collect()
}

fn assert_datum(metrics: &[CapturedMetric], name: &str, value: f64, unit: &str) {
    let found = named(metrics, name);
    assert_eq!(found.len(), 1, "one {name} in {metrics:#?}");
    let datum = found[0];
    assert_eq!(datum.namespace, NAMESPACE);
    assert_eq!(datum.value, Some(value), "{name}");
    assert_eq!(datum.unit.as_deref(), Some(unit), "{name}");
    assert_eq!(
        datum.dimensions,
        vec![("FunctionName".to_string(), FUNCTION.to_string())]
    );
    assert!(datum.timestamp.is_some(), "{name} is timestamped");
}

#[tokio::test]
async fn fallback_and_recovery_are_measured_by_the_work_after_the_request() {
    let redshift = Redshift::start(1000).await;
    let app = app(&redshift, &[]).await;
    assert_eq!(
        app.get("/api/calls/history").await.body["source"],
        "redshift"
    );
    assert!(
        redshift.standin.metrics().is_empty(),
        "no switch, no metric"
    );

    redshift.standin.set_fault(Fault::HttpStatus(503));
    assert_eq!(app.get("/api/calls/history").await.body["source"], "sqlite");
    // Put after the answer, before the work after it is done (what Lambda waits for).
    app.settled().await;
    let fell_back = redshift.standin.metrics();
    assert_datum(&fell_back, "DatabaseSource", 0.0, "None");
    assert_datum(&fell_back, "FallbackEvents", 1.0, "Count");
    redshift.standin.clear_metrics();

    redshift.standin.clear_fault();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        app.get("/api/calls/history").await.body["source"],
        "redshift"
    );
    app.settled().await;
    let recovered = redshift.standin.metrics();
    assert_datum(&recovered, "DatabaseSource", 1.0, "None");
    assert_datum(&recovered, "RecoveryEvents", 1.0, "Count");
    // The point that clears the fallback-too-long alarm.
    assert_datum(&recovered, "FallbackElapsedSeconds", 0.0, "Seconds");
    let duration = named(&recovered, "FallbackDurationSeconds");
    assert_eq!(duration.len(), 1);
    assert_eq!(duration[0].unit.as_deref(), Some("Seconds"));
    assert!(
        duration[0].value.unwrap() >= 1.0,
        "lasted at least the check interval"
    );

    let status = app.get("/db/status").await;
    assert_eq!(status.body["fallback"]["fallbacks"], 1);
    assert_eq!(status.body["fallback"]["recoveries"], 1);
    assert!(
        status.body["fallback"]["lastDurationSeconds"]
            .as_f64()
            .unwrap()
            >= 1.0
    );
}

#[tokio::test]
async fn forcing_sqlite_is_measured_apart_from_failures() {
    let redshift = Redshift::start(1000).await;
    let app = app(&redshift, &[]).await;
    app.post("/db/force-sqlite", "").await;
    app.settled().await;
    let forced = redshift.standin.metrics();
    assert_datum(&forced, "DatabaseSource", 0.0, "None");
    assert_datum(&forced, "ForcedFallbackEvents", 1.0, "Count");
    assert!(
        named(&forced, "FallbackEvents").is_empty(),
        "not counted as a failure"
    );

    let status = app.get("/db/status").await;
    assert_eq!(status.body["fallback"]["active"], true);
    assert!(status.body["fallback"]["startedAt"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    assert_eq!(status.body["fallback"]["forcedSwitches"], 1);

    redshift.standin.clear_metrics();
    app.post("/db/retry-redshift", "").await;
    app.settled().await;
    assert_datum(&redshift.standin.metrics(), "RecoveryEvents", 1.0, "Count");
}

#[tokio::test]
async fn the_running_duration_is_reported_at_most_once_per_heartbeat() {
    let redshift = Redshift::start(1000).await;
    let app = app(
        &redshift,
        &[
            ("METRICS_HEARTBEAT_SECS", "2"),
            ("REDSHIFT_CHECK_INTERVAL_SECS", "3600"),
        ],
    )
    .await;
    redshift
        .standin
        .set_fault(Fault::FailStatements("down".into()));
    app.get("/api/calls/history").await;
    for _ in 0..5 {
        app.get("/api/calls/history").await;
    }
    app.settled().await;
    assert!(
        named(&redshift.standin.metrics(), "FallbackElapsedSeconds").is_empty(),
        "not before a heartbeat is due"
    );

    tokio::time::sleep(Duration::from_millis(2100)).await;
    for _ in 0..5 {
        app.get("/api/calls/history").await;
    }
    app.settled().await;
    let metrics = redshift.standin.metrics();
    let elapsed = named(&metrics, "FallbackElapsedSeconds");
    assert_eq!(elapsed.len(), 1, "5 requests, one heartbeat");
    assert!(elapsed[0].value.unwrap() >= 2.0);
    assert_eq!(elapsed[0].unit.as_deref(), Some("Seconds"));
}

async fn requests_unharmed_by(cloudwatch_fault: Fault) {
    let redshift = Redshift::start(1000).await;
    let app = app(&redshift, &[]).await;
    redshift.standin.set_cloudwatch_fault(cloudwatch_fault);
    redshift
        .standin
        .set_fault(Fault::FailStatements("down".into()));
    let history = app.get("/api/calls/history").await;
    assert_eq!(history.status, 200);
    assert_eq!(history.body["source"], "sqlite");
    redshift.standin.clear_fault();
    let retried = app.post("/db/retry-redshift", "").await;
    assert_eq!(retried.body["currentSource"], "redshift");
    // Both answered, and right, while the puts failed or hung: the puts run after the answers.
    // They end (their own timeout) before the work after the answers is done.
    app.settled().await;
    let failures = logs()
        .matches("CloudWatch metrics could not be put")
        .count();
    assert_eq!(failures, 1, "logged once, not once per put");
}

#[tokio::test]
async fn a_hung_cloudwatch_leaves_requests_unharmed() {
    requests_unharmed_by(Fault::Hang).await;
}

#[tokio::test]
async fn a_failing_cloudwatch_leaves_requests_unharmed() {
    requests_unharmed_by(Fault::HttpStatus(500)).await;
}
