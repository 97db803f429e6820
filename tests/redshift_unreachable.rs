//! Redshift configured but nothing listening: the real SDK gets "connection refused", and the
//! very first request is answered from SQLite.

mod common;

use common::{logs, spawn_app_with, FAKE_AWS};

fn closed_port() -> String {
    // Bind and drop: the port is free and nothing listens on it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

async fn app_with_unreachable_redshift(extra: &[(&str, &str)]) -> common::TestApp {
    let endpoint = closed_port();
    let mut vars = vec![
        ("REDSHIFT_CLUSTER_ID", "crm-cluster"),
        ("REDSHIFT_DATABASE", "crm_db"),
        ("REDSHIFT_DB_USER", "app_user"),
        ("REDSHIFT_TIMEOUT_MS", "2000"),
    ];
    vars.extend_from_slice(extra);
    let mut aws = FAKE_AWS.to_vec();
    aws.push(("AWS_ENDPOINT_URL_REDSHIFT_DATA", endpoint.as_str()));
    aws.push(("AWS_ENDPOINT_URL_CLOUDWATCH", endpoint.as_str()));
    spawn_app_with(&vars, &aws).await
}

#[tokio::test]
async fn first_request_falls_back_with_reason_and_log() {
    let app = app_with_unreachable_redshift(&[]).await;
    let before = app.get("/db/status").await;
    assert_eq!(
        before.body["currentSource"], "redshift",
        "optimistic until Redshift fails"
    );

    let history = app.get("/api/calls/history").await;
    assert_eq!(history.status, 200);
    assert_eq!(history.body["source"], "sqlite");
    assert_eq!(history.source_header.as_deref(), Some("sqlite"));
    // A backup beside a warehouse starts without the sample calls: it never shows calls the
    // warehouse never held, and this one was never reached.
    assert_eq!(history.body["count"], 0);
    assert_eq!(history.body["asOf"], serde_json::Value::Null);

    let status = app.get("/db/status").await;
    assert_eq!(status.body["currentSource"], "sqlite");
    assert_eq!(status.body["databases"]["redshift"]["available"], false);
    assert_eq!(
        status.body["databases"]["redshift"]["message"],
        "Connection refused"
    );
    assert_eq!(
        status.body["message"],
        "⚠️ Running on local backup - Redshift unavailable"
    );
    assert_eq!(status.body["fallback"]["active"], true);
    assert_eq!(status.body["fallback"]["fallbacks"], 1);
    assert!(
        status.body["databases"]["redshift"]["nextProbeInSeconds"]
            .as_f64()
            .unwrap()
            > 20.0
    );

    let log = logs();
    assert!(log.contains("☁️ Executing query on Redshift"));
    assert!(
        log.contains("⚠️ Redshift unavailable, falling back to local SQLite: Connection refused")
    );
    assert!(log.contains("✅ Found 0 calls from sqlite 💾"));
}

#[tokio::test]
async fn writes_during_the_outage_are_kept_and_counted_as_waiting() {
    let app = app_with_unreachable_redshift(&[]).await;
    let created = app
        .post("/api/calls", r#"{"contactName":"Offline Olga"}"#)
        .await;
    assert_eq!(created.status, 201);
    assert_eq!(created.body["source"], "sqlite");
    let status = app.get("/db/status").await;
    assert_eq!(status.body["sync"]["pendingWrites"], 1);
}

#[tokio::test]
async fn retry_reports_the_outcome_and_force_stops_probing() {
    let app = app_with_unreachable_redshift(&[("REDSHIFT_CHECK_INTERVAL_SECS", "1")]).await;
    let retried = app.post("/db/retry-redshift", "").await;
    assert_eq!(retried.status, 200);
    assert_eq!(retried.body["message"], "Retrying Redshift connection");
    assert_eq!(retried.body["currentSource"], "sqlite");
    assert_eq!(retried.body["redshift"]["message"], "Connection refused");

    let forced = app.post("/db/force-sqlite", "").await;
    assert_eq!(forced.body["source"], "sqlite");
    let status = app.get("/db/status").await;
    assert_eq!(
        status.body["databases"]["redshift"]["message"],
        "Forced to SQLite"
    );
    assert_eq!(status.body["databases"]["redshift"]["forced"], true);
    assert!(
        status.body["databases"]["redshift"]["nextProbeInSeconds"].is_null(),
        "no probes while forced"
    );
}

#[tokio::test]
async fn force_sqlite_from_the_environment() {
    let app = app_with_unreachable_redshift(&[("FORCE_SQLITE", "true")]).await;
    let status = app.get("/db/status").await;
    assert_eq!(status.body["currentSource"], "sqlite");
    assert_eq!(
        status.body["databases"]["redshift"]["message"],
        "Forced to SQLite"
    );
    let history = app.get("/api/calls/history").await;
    assert_eq!(history.body["source"], "sqlite");
    assert!(
        !logs().contains("falling back"),
        "forced mode never tries Redshift"
    );
}
