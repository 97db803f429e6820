//! The Redshift path through the real `aws-sdk-redshiftdata` client, pointed at the local
//! stand-in, which runs the SQL on PostgreSQL: normal operation, and every fault of the fallback
//! table switched on mid-run, then cleared.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{logs, spawn_app_on, Redshift};
use redshift_data_local::Fault;
use serde_json::json;

#[tokio::test]
async fn history_get_and_record_are_served_by_redshift() {
    let redshift = Redshift::start(7).await;
    let app = spawn_app_on(&redshift, &[]).await;

    let full = json!({
        "contactName": "Zoë Ångström", "accountName": "Ünïcode GmbH", "durationSeconds": 4321,
        "outcome": "connected", "notes": "n".repeat(10_000), "startedAt": "2025-06-01T08:30:00.123456Z"
    });
    let created = app.post_json("/api/calls", &full).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["source"], "redshift");
    assert_eq!(created.source_header.as_deref(), Some("redshift"));
    let id = created.body["call"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        redshift.copies_of(&id).await,
        1,
        "the row is really in PostgreSQL"
    );

    let sparse = app
        .post_json(
            "/api/calls",
            &json!({"id": "sparse-1", "contactName": "Only A Name"}),
        )
        .await;
    assert_eq!(sparse.status, 201);

    // Read back: every column decoded, NULLs as null, microseconds kept.
    let got = app.get(&format!("/api/calls/{id}")).await;
    assert_eq!(got.body["source"], "redshift");
    assert_eq!(got.body["call"], created.body["call"]);
    let got = app.get("/api/calls/sparse-1").await;
    assert_eq!(got.body["call"]["accountName"], serde_json::Value::Null);
    assert_eq!(got.body["call"]["durationSeconds"], serde_json::Value::Null);
    assert_eq!(got.body["call"], sparse.body["call"]);
    assert_eq!(app.get("/api/calls/not-there").await.status, 404);

    // Idempotent on id even though Redshift enforces no keys.
    let again = app
        .post_json(
            "/api/calls",
            &json!({"id": "sparse-1", "contactName": "Only A Name"}),
        )
        .await;
    assert_eq!(again.status, 200);
    let different = app
        .post_json(
            "/api/calls",
            &json!({"id": "sparse-1", "contactName": "Someone Else"}),
        )
        .await;
    assert_eq!(different.status, 409);
    assert_eq!(redshift.copies_of("sparse-1").await, 1);

    let history = app
        .get("/api/calls/history?contact=Zo%C3%AB%20%C3%85ngstr%C3%B6m")
        .await;
    assert_eq!(history.body["source"], "redshift");
    assert_eq!(history.body["message"], "Using cloud database");
    assert_eq!(history.body["count"], 1);
    let log = logs();
    assert!(log.contains("☁️ Executing query on Redshift"));
    assert!(log.contains("✅ Found 1 call from redshift ☁️"));
}

#[tokio::test]
async fn history_reads_every_result_page_in_order() {
    // Unmetered: the pages are counted, and a throttled call would count twice.
    let redshift = Redshift::start_unmetered(7).await;
    // Every read a statement: the pages of one Redshift answer are the subject.
    let app = spawn_app_on(&redshift, &[("READ_MAX_STALENESS_MS", "0")]).await;
    let calls: Vec<_> = (0..60)
        .map(|i| {
            json!({"id": format!("page-{i:03}"), "contactName": "Pager",
                   "startedAt": format!("2025-01-01T00:{:02}:00Z", i), "durationSeconds": i})
        })
        .collect();
    for call in &calls {
        assert_eq!(app.post_json("/api/calls", call).await.status, 201);
    }
    let pages_before = redshift.standin.operation_count("GetStatementResult");
    let history = app
        .get("/api/calls/history?contact=Pager&limit=50&offset=5")
        .await;
    assert_eq!(history.body["source"], "redshift");
    let ids: Vec<&str> = history.body["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (5..55).map(|i| format!("page-{:03}", 59 - i)).collect();
    assert_eq!(ids, expected);
    // 50 rows at 7 a page.
    assert_eq!(
        redshift.standin.operation_count("GetStatementResult") - pages_before,
        8
    );

    let window = app
        .get("/api/calls/history?contact=Pager&since=2025-01-01T00:10:00Z&until=2025-01-01T00:20:00Z&limit=500")
        .await;
    assert_eq!(window.body["count"], 10);
}

/// The replica's bound in the fault tests: short, so that a read soon has to pull.
const STALENESS_MS: &str = "300";

async fn past_the_bound() {
    tokio::time::sleep(Duration::from_millis(350)).await;
}

/// A fault switched on mid-run: the request that meets it is answered from SQLite with the
/// reason in the status and the guide's log line; once cleared, the next probe switches back,
/// and `/db/retry-redshift` does it at once.
async fn fault_round_trip(fault: Fault, reason: &str) {
    let redshift = Redshift::start(1000).await;
    let app = spawn_app_on(
        &redshift,
        &[
            ("REDSHIFT_CHECK_INTERVAL_SECS", "1"),
            ("READ_MAX_STALENESS_MS", STALENESS_MS),
        ],
    )
    .await;
    assert_eq!(
        app.get("/api/calls/history").await.body["source"],
        "redshift"
    );

    redshift.standin.set_fault(fault.clone());
    // Past its bound the replica must be pulled: that request meets the fault.
    past_the_bound().await;
    let history = app.get("/api/calls/history").await;
    assert_eq!(history.status, 200);
    assert_eq!(history.body["source"], "sqlite", "{fault:?}");
    assert_eq!(history.source_header.as_deref(), Some("sqlite"));
    let status = app.get("/db/status").await;
    assert_eq!(status.body["currentSource"], "sqlite");
    let message = status.body["databases"]["redshift"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(message, reason, "{fault:?}: status says the class only");
    assert!(logs().contains(&format!(
        "⚠️ Redshift unavailable, falling back to local SQLite: {message}"
    )));

    // Cleared: the first request after the interval probes and returns to Redshift.
    redshift.standin.clear_fault();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let back = app.get("/api/calls/history").await;
    assert_eq!(
        back.body["source"], "redshift",
        "{fault:?}: probe after the interval"
    );
    assert!(logs().contains("✅ Redshift connection restored"));
    let status = app.get("/db/status").await;
    assert_eq!(status.body["databases"]["redshift"]["message"], "Connected");
    assert_eq!(status.body["fallback"]["recoveries"], 1);

    // Again, but recovered at once by the admin endpoint.
    redshift.standin.set_fault(fault);
    past_the_bound().await;
    assert_eq!(app.get("/api/calls/history").await.body["source"], "sqlite");
    redshift.standin.clear_fault();
    let retried = app.post("/db/retry-redshift", "").await;
    assert_eq!(retried.body["currentSource"], "redshift");
    assert_eq!(
        app.get("/api/calls/history").await.body["source"],
        "redshift"
    );
}

macro_rules! fault_tests {
    ($($name:ident: $fault:expr => $reason:expr;)*) => {$(
        #[tokio::test]
        async fn $name() {
            fault_round_trip($fault, $reason).await;
        }
    )*};
}

fault_tests! {
    connections_refused: Fault::RefuseConnections => "Connection refused";
    endpoint_hangs: Fault::Hang => "Connection timeout";
    internal_server_error: Fault::HttpStatus(500) => "Service error";
    service_unavailable: Fault::HttpStatus(503) => "Service error";
    throttled: Fault::Throttle => "Throttled";
    too_many_active_statements: Fault::ActiveStatementsExceeded => "Too many active statements";
    too_many_waiting_requests: Fault::ActiveWaitingRequestsExceeded => "Too many active statements";
    statements_fail: Fault::FailStatements("disk full on node 3".into()) => "Statement failed";
    statements_aborted: Fault::AbortStatements => "Statement aborted";
    statements_stay_started: Fault::StayStarted(Duration::from_secs(30)) => "Connection timeout";
    endpoint_slow: Fault::Slow(Duration::from_secs(5)) => "Connection timeout";
}

#[tokio::test]
async fn a_hung_redshift_costs_one_deadline_then_nothing_until_the_next_probe() {
    let redshift = Redshift::start(1000).await;
    let app = spawn_app_on(&redshift, &[("REDSHIFT_TIMEOUT_MS", "1000")]).await;
    redshift.standin.set_fault(Fault::Hang);
    // Redshift never answers while it hangs: the request comes back, from the backup, because
    // its deadline ended the wait (how near the deadline is `make bench`'s to measure).
    let first = app.get("/api/calls/history").await;
    assert_eq!(first.body["source"], "sqlite");
    let status = app.get("/db/status").await.body;
    assert_eq!(status["currentSource"], "sqlite", "{status}");
    assert_eq!(
        status["databases"]["redshift"]["consecutiveFailures"], 1,
        "one attempt, one failure: {status}"
    );

    let executions = redshift.executions();
    for _ in 0..5 {
        assert_eq!(app.get("/api/calls/history").await.body["source"], "sqlite");
        assert_eq!(
            app.post("/api/calls", r#"{"contactName":"During Hang"}"#)
                .await
                .status,
            201
        );
    }
    assert_eq!(
        redshift.executions(),
        executions,
        "no Redshift call before the next probe"
    );
}

#[tokio::test]
async fn concurrent_requests_during_a_probe_start_exactly_one() {
    let redshift = Redshift::start(1000).await;
    let settings = [
        ("REDSHIFT_CHECK_INTERVAL_SECS", "1"),
        ("REDSHIFT_TIMEOUT_MS", "8000"),
        // The probe is one statement, and nothing else asks Redshift between requests.
        ("READ_MAX_STALENESS_MS", "0"),
    ];
    let app = Arc::new(spawn_app_on(&redshift, &settings).await);
    redshift
        .standin
        .set_fault(Fault::FailStatements("down".into()));
    assert_eq!(app.get("/api/calls/history").await.body["source"], "sqlite");
    // Redshift is back, but slow: the probe stays under way while the others arrive.
    redshift
        .standin
        .set_fault(Fault::Slow(Duration::from_millis(1500)));
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let before = redshift.executions();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { app.get("/api/calls/history").await.body["source"].clone() })
        })
        .collect();
    let mut sources = Vec::new();
    for task in tasks {
        sources.push(task.await.unwrap());
    }
    assert_eq!(
        sources.iter().filter(|s| *s == "redshift").count(),
        1,
        "{sources:?}"
    );
    assert_eq!(
        sources.iter().filter(|s| *s == "sqlite").count(),
        9,
        "{sources:?}"
    );
    assert_eq!(redshift.executions() - before, 1, "one probe statement");
}

/// The guide's "Testing the Fallback", Test 1 and Test 2, with Redshift there to return to.
#[tokio::test]
async fn guide_walkthrough_ends_on_redshift() {
    let redshift = Redshift::start(1000).await;
    let app = spawn_app_on(&redshift, &[]).await;

    let forced = app.post("/db/force-sqlite", "").await;
    assert_eq!(
        forced.body,
        json!({"message": "Switched to SQLite backup database", "source": "sqlite"})
    );
    let status = app.get("/db/status").await;
    assert_eq!(status.body["currentSource"], "sqlite");
    assert_eq!(status.body["sourceEmoji"], "💾");
    assert_eq!(status.body["sourceName"], "SQLite (Local Backup)");
    assert_eq!(app.get("/api/calls/history").await.body["source"], "sqlite");

    let retried = app.post("/db/retry-redshift", "").await;
    assert_eq!(retried.body["message"], "Retrying Redshift connection");
    assert_eq!(retried.body["currentSource"], "redshift");
    let status = app.get("/db/status").await;
    assert_eq!(status.body["currentSource"], "redshift");
    assert_eq!(status.body["sourceEmoji"], "☁️");
    assert_eq!(status.body["sourceName"], "Redshift (Cloud Primary)");
    assert_eq!(status.body["message"], "☁️ Connected to Redshift (primary)");
    assert_eq!(
        status.body["databases"]["redshift"],
        json!({
            "available": true, "message": "Connected", "configured": true, "forced": false,
            "lastProbeAt": status.body["databases"]["redshift"]["lastProbeAt"].clone(),
            "nextProbeInSeconds": null, "consecutiveFailures": 0
        })
    );
    let health = app.get("/db/healthz").await;
    assert_eq!(health.body["message"], "☁️ Using Redshift (primary)");
    assert_eq!(health.body["databases"]["redshift"]["emoji"], "✅");
}
