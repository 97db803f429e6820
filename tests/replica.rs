//! Reads from the local replica, through the real SDK against the stand-in with the account's
//! Data API quotas on: what a read costs, how fresh it is, how writes of other environments
//! arrive, what goes to Redshift itself, and how throttling is back-pressure, not an outage.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{eventually, spawn_app_on, Redshift, TestApp};
use redshift_data_local::Fault;
use serde_json::{json, Value};

/// Data API calls of every kind the stand-in has received.
fn data_api_calls(redshift: &Redshift) -> usize {
    [
        "ExecuteStatement",
        "BatchExecuteStatement",
        "DescribeStatement",
        "GetStatementResult",
    ]
    .iter()
    .map(|op| redshift.standin.operation_count(op))
    .sum()
}

fn ids(reply: &Value) -> Vec<String> {
    reply["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

async fn record(app: &TestApp, id: &str, contact: &str) -> Value {
    let reply = app
        .post_json("/api/calls", &json!({"id": id, "contactName": contact}))
        .await;
    assert_eq!(reply.status, 201, "{id}: {}", reply.body);
    reply.body
}

#[tokio::test]
async fn a_read_within_the_bound_costs_no_data_api_call_and_says_as_of_when() {
    let redshift = Redshift::start(1000).await;
    let app = spawn_app_on(&redshift, &[("READ_MAX_STALENESS_MS", "5000")]).await;
    let first = app.get("/api/calls/history").await;
    assert_eq!(first.body["source"], "redshift");
    let as_of = first.body["asOf"].as_str().expect("asOf").to_string();
    assert!(as_of.ends_with('Z') && as_of.len() == "2026-01-01T00:00:00.000Z".len());
    let before = data_api_calls(&redshift);
    for _ in 0..20 {
        let reply = app.get("/api/calls/history?limit=10").await;
        assert_eq!(reply.body["source"], "redshift");
        assert_eq!(reply.body["asOf"], as_of.as_str());
        let header = reply.as_of_header.as_deref();
        assert_eq!(header, Some(as_of.as_str()));
    }
    assert_eq!(
        data_api_calls(&redshift),
        before,
        "no Data API call for local reads"
    );
    let status = app.get("/db/status").await.body;
    assert_eq!(status["replica"]["maxStalenessMs"], 5000);
    assert!(status["replica"]["lastPullAt"].is_string(), "{status}");
}

#[tokio::test]
async fn a_stale_copy_costs_one_pull_shared_by_twenty_concurrent_readers() {
    let redshift = Redshift::start(1000).await;
    let app = Arc::new(spawn_app_on(&redshift, &[("READ_MAX_STALENESS_MS", "1000")]).await);
    assert_eq!(
        app.get("/api/calls/history").await.body["source"],
        "redshift"
    );
    // Throttled past the bound: the pulls ahead of readers fail and pause; the copy goes stale.
    redshift.standin.set_fault(Fault::Throttle);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    redshift.standin.clear_fault();
    let pulls = || redshift.standin.operation_count("ExecuteStatement");
    let before = pulls();
    let readers: Vec<_> = (0..20)
        .map(|_| {
            let app = Arc::clone(&app);
            tokio::spawn(async move { app.get("/api/calls/history").await.body })
        })
        .collect();
    for reader in readers {
        let body = reader.await.unwrap();
        assert_eq!(body["source"], "redshift", "{body}");
    }
    assert_eq!(pulls() - before, 1, "one pull for twenty readers");
}

#[tokio::test]
async fn a_write_in_one_environment_reaches_anothers_history_within_the_bound_and_one_pull() {
    let redshift = Redshift::start(1000).await;
    let settings = [("READ_MAX_STALENESS_MS", "500")];
    let a = spawn_app_on(&redshift, &settings).await;
    let b = spawn_app_on(&redshift, &settings).await;
    assert_eq!(b.get("/api/calls/history").await.body["count"], 0);
    let written = record(&a, "across-1", "Across Ann").await;
    assert_eq!(written["source"], "redshift");
    // Read back at once where it was written.
    let own = a.get("/api/calls/history?contact=Across%20Ann").await;
    assert_eq!(ids(&own.body), ["across-1"]);
    // Elsewhere within the bound plus a pull (a loose limit: the point is that it arrives).
    assert!(
        eventually(Duration::from_secs(3), || async {
            let other = b.get("/api/calls/history?contact=Across%20Ann").await;
            other.body["source"] == "redshift" && ids(&other.body) == ["across-1"]
        })
        .await
    );
    let by_id = b.get("/api/calls/across-1").await;
    assert_eq!(by_id.body["call"], written["call"]);
}

#[tokio::test]
async fn a_by_id_miss_and_a_query_beyond_the_window_go_to_redshift_and_answer_right() {
    let redshift = Redshift::start(1000).await;
    let app = spawn_app_on(
        &redshift,
        &[
            ("READ_MAX_STALENESS_MS", "60000"),
            ("REPLICA_WINDOW_CALLS", "100"),
        ],
    )
    .await;
    // 150 calls in the warehouse, one a minute; the window holds the newest 100.
    let pg = redshift.postgres().await;
    pg.batch_execute(
        "INSERT INTO calls (id, contact_name, started_at, created_at)
         SELECT 'old-' || LPAD(n::text, 3, '0'), 'Window Wes',
                TIMESTAMP '2026-01-01 00:00:00' + n * INTERVAL '1 minute',
                TIMESTAMP '2026-01-01 00:00:00'
         FROM generate_series(1, 150) AS n",
    )
    .await
    .unwrap();
    let newest = app.get("/api/calls/history?limit=50").await;
    assert_eq!(newest.body["source"], "redshift");
    assert_eq!(ids(&newest.body)[0], "old-150");
    let status = app.get("/db/status").await.body;
    assert_eq!(status["replica"]["callsInWindow"], 100, "{status}");

    // Beyond the window: Redshift answers, completely.
    let statements = || redshift.standin.operation_count("ExecuteStatement");
    let before = statements();
    let deep = app.get("/api/calls/history?limit=50&offset=120").await;
    assert_eq!(deep.body["source"], "redshift");
    let expected: Vec<String> = (1..=30).rev().map(|n| format!("old-{n:03}")).collect();
    assert_eq!(ids(&deep.body), expected);
    assert!(statements() > before, "asked Redshift");

    // Inside the window: answered locally.
    let before = statements();
    let page = app.get("/api/calls/history?limit=50&offset=20").await;
    assert_eq!(ids(&page.body).len(), 50);
    assert_eq!(statements(), before, "answered from the window");

    // A call the replica has not seen (written straight into the warehouse): by id, Redshift.
    pg.batch_execute(
        "INSERT INTO calls (id, contact_name, started_at, created_at)
         VALUES ('straight-in', 'Direct Dee', TIMESTAMP '2026-02-01 10:00:00', TIMESTAMP '2026-02-01 10:00:00')",
    )
    .await
    .unwrap();
    let found = app.get("/api/calls/straight-in").await;
    assert_eq!(
        (found.status, found.body["source"].as_str()),
        (200, Some("redshift"))
    );
    assert_eq!(found.body["call"]["contactName"], "Direct Dee");
    let missing = app.get("/api/calls/nowhere").await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn a_throttled_pull_keeps_the_copy_within_its_bound_and_falls_back_past_it() {
    let redshift = Redshift::start(1000).await;
    let app = spawn_app_on(
        &redshift,
        &[
            ("READ_MAX_STALENESS_MS", "2000"),
            ("REDSHIFT_CHECK_INTERVAL_SECS", "30"),
        ],
    )
    .await;
    assert_eq!(
        app.get("/api/calls/history").await.body["source"],
        "redshift"
    );
    redshift.standin.set_fault(Fault::Throttle);
    // Past half the bound: the pulls ahead are throttled; readers keep the copy.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let within = app.get("/api/calls/history").await;
    assert_eq!(within.body["source"], "redshift", "{}", within.body);
    assert_eq!(
        app.get("/db/status").await.body["currentSource"],
        "redshift"
    );

    // Past the bound with no successful pull: the backup answers, as the guide says.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let past = app.get("/api/calls/history").await;
    assert_eq!(past.body["source"], "sqlite");
    let status = app.get("/db/status").await.body;
    assert_eq!(status["databases"]["redshift"]["message"], "Throttled");
    assert!(
        status["databases"]["redshift"]["nextProbeInSeconds"]
            .as_f64()
            .unwrap()
            <= 1.0,
        "not a 30-second fallback: {status}"
    );
    assert!(
        status["dataApi"]["throttlesLastMinute"].as_u64().unwrap() > 0,
        "{status}"
    );

    // Back as soon as a pull succeeds.
    redshift.standin.clear_fault();
    assert!(
        eventually(Duration::from_secs(5), || async {
            app.get("/api/calls/history").await.body["source"] == "redshift"
        })
        .await
    );
}

#[tokio::test]
async fn a_throttled_write_is_journaled_acknowledged_and_replayed_once() {
    let redshift = Redshift::start(1000).await;
    let app = spawn_app_on(&redshift, &[]).await;
    assert_eq!(
        app.get("/api/calls/history").await.body["source"],
        "redshift"
    );
    redshift.standin.set_fault(Fault::Throttle);
    let written = app
        .post_json(
            "/api/calls",
            &json!({"id": "throttled-1", "contactName": "Throttled Theo"}),
        )
        .await;
    assert_eq!(written.status, 201);
    assert_eq!(
        written.body["source"], "sqlite",
        "journaled: {}",
        written.body
    );
    // Throttling moved nothing: Redshift still serves.
    assert_eq!(
        app.get("/db/status").await.body["currentSource"],
        "redshift"
    );
    let read = app.get("/api/calls/throttled-1").await;
    assert_eq!(read.status, 200);
    redshift.standin.clear_fault();
    assert!(
        eventually(Duration::from_secs(5), || async {
            app.get("/db/status").await.body["sync"]["pendingWrites"] == 0
        })
        .await
    );
    assert_eq!(redshift.copies_of("throttled-1").await, 1);
}

/// Corrections made straight in the warehouse (a changed call, a deleted one) reach the replica
/// with the next pull of its whole window.
#[tokio::test]
async fn warehouse_corrections_arrive_with_the_whole_window_pull() {
    let redshift = Redshift::start(1000).await;
    let app = spawn_app_on(
        &redshift,
        &[
            ("READ_MAX_STALENESS_MS", "300"),
            ("REPLICA_FULL_PULL_SECS", "2"),
        ],
    )
    .await;
    record(&app, "fix-1", "Before Fix").await;
    record(&app, "gone-1", "Soon Gone").await;
    let pg = redshift.postgres().await;
    pg.batch_execute(
        "UPDATE calls SET contact_name = 'After Fix' WHERE id = 'fix-1';
         DELETE FROM calls WHERE id = 'gone-1';",
    )
    .await
    .unwrap();
    assert!(
        eventually(Duration::from_secs(6), || async {
            let history = app.get("/api/calls/history").await.body;
            let names: Vec<&str> = history["calls"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["contactName"].as_str().unwrap())
                .collect();
            names == ["After Fix"]
        })
        .await
    );
    assert_eq!(app.get("/api/calls/gone-1").await.status, 404);
}

/// While Redshift is up, no acknowledged write is ever answered 404, wherever it was written
/// and whichever environment is asked, right after the write.
#[tokio::test]
async fn no_acknowledged_write_is_ever_404_anywhere_while_redshift_is_up() {
    let redshift = Redshift::start(1000).await;
    let settings = [("READ_MAX_STALENESS_MS", "1000")];
    let environments = [
        spawn_app_on(&redshift, &settings).await,
        spawn_app_on(&redshift, &settings).await,
        spawn_app_on(&redshift, &settings).await,
    ];
    for i in 0..30 {
        let writer = &environments[i % 3];
        let id = format!("everywhere-{i:02}");
        record(writer, &id, "Everywhere Eve").await;
        for reader in &environments {
            let read = reader.get(&format!("/api/calls/{id}")).await;
            assert_eq!(read.status, 200, "{id} from environment {}", i % 3);
            assert_eq!(read.body["source"], "redshift");
        }
    }
}

/// Without a replica (`READ_MAX_STALENESS_MS=0`) the backup's copy of a call is not what Redshift
/// holds: a lookup by id asks Redshift, which may have corrected it since. Only this
/// environment's own writes waiting for replay are known without asking.
#[tokio::test]
async fn without_a_replica_a_lookup_asks_redshift_not_the_backup_s_old_copy() {
    let redshift = Redshift::start(1000).await;
    let app = spawn_app_on(&redshift, &[("READ_MAX_STALENESS_MS", "0")]).await;
    record(&app, "corrected-1", "Before Fix").await;
    redshift
        .postgres()
        .await
        .batch_execute("UPDATE calls SET contact_name = 'After Fix' WHERE id = 'corrected-1'")
        .await
        .unwrap();
    let read = app.get("/api/calls/corrected-1").await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(
        read.body["call"]["contactName"], "After Fix",
        "{}",
        read.body
    );
    assert_eq!(read.body["source"], "redshift");
}
