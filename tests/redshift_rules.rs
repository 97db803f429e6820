//! Redshift's own rules, through the real SDK against the stand-in (which, like Redshift,
//! enforces no key): no input poisons the service, and no acknowledged write is hidden, lost or
//! doubled.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{eventually, logs, spawn_app_on, Redshift, TestApp};
use futures::future::join_all;
use redshift_data_local::Fault;
use serde_json::{json, Value};

#[tokio::test]
async fn empty_strings_are_stored_as_empty_strings_on_both_databases() {
    let redshift = Redshift::start(1000).await;
    let app = spawn_app_on(&redshift, &[("REDSHIFT_CHECK_INTERVAL_SECS", "3600")]).await;
    let form = json!({"id": "empty-on-redshift", "contactName": "Ada", "accountName": "", "outcome": "", "notes": ""});
    let created = app.post_json("/api/calls", &form).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["source"], "redshift");
    let read = app.get("/api/calls/empty-on-redshift").await;
    assert_eq!(read.body["call"]["notes"], "");
    assert_eq!(read.body["call"]["accountName"], "");

    // During an outage, then replayed.
    app.post("/db/force-sqlite", "").await;
    let offline = json!({"id": "empty-offline", "contactName": "Ada", "accountName": "", "outcome": "", "notes": ""});
    let journaled = app.post_json("/api/calls", &offline).await;
    assert_eq!(journaled.status, 201);
    assert_eq!(journaled.body["source"], "sqlite");
    let retried = app.post("/db/retry-redshift", "").await;
    assert_eq!(
        retried.body["currentSource"], "redshift",
        "{}",
        retried.body
    );
    assert_eq!(app.status().await["sync"]["pendingWrites"], 0);

    let pg = redshift.postgres().await;
    for id in ["empty-on-redshift", "empty-offline"] {
        let row = pg
            .query_one(
                "SELECT account_name, outcome, notes FROM calls WHERE id = $1",
                &[&id],
            )
            .await
            .unwrap();
        for column in 0..3 {
            let value: Option<String> = row.get(column);
            assert_eq!(value.as_deref(), Some(""), "{id}: empty, not NULL");
        }
    }
    let read = app.get("/api/calls/empty-offline").await;
    assert_eq!(read.body["source"], "redshift");
    assert_eq!(read.body["call"]["outcome"], "");
}

/// Values neither database holds, on write and on query: answered 400 in words, with nothing
/// switched, measured, journaled or stored.
async fn poisoned_inputs_are_refused(app: &TestApp) {
    let poisoned_bodies = [
        json!({"contactName": "Ada", "startedAt": "0000-01-01T00:00:00Z"}),
        json!({"contactName": "Ada", "startedAt": "0001-01-01T00:00:00+00:01"}),
        json!({"contactName": "Ada", "startedAt": "9999-12-31T23:59:59-23:59"}),
        json!({"contactName": "A\u{0}da"}),
        json!({"contactName": "Ada", "notes": "before\u{0}after"}),
        json!({"contactName": "Ada", "accountName": "\u{0}"}),
    ];
    for body in &poisoned_bodies {
        let reply = app.post_json("/api/calls", body).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.body);
        assert!(reply.body["error"].as_str().unwrap().ends_with('.'));
    }
    for query in [
        "since=0000-01-01T00:00:00Z",
        "until=9999-12-31T23:59:59-23:59",
        "since=0001-01-01T00:00:00%2B00:01",
        "contact=%00",
        "contact=Ada%00",
    ] {
        let reply = app.get(&format!("/api/calls/history?{query}")).await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.body);
    }
}

#[tokio::test]
async fn values_neither_database_holds_are_refused_and_switch_nothing() {
    let redshift = Redshift::start(1000).await;
    let app = spawn_app_on(&redshift, &[]).await;
    poisoned_inputs_are_refused(&app).await;
    let on_redshift = app.status().await;
    assert_eq!(on_redshift["currentSource"], "redshift");
    assert_eq!(on_redshift["fallback"]["fallbacks"], 0);
    assert_eq!(on_redshift["sync"]["pendingWrites"], 0);
    assert!(redshift.standin.metrics().is_empty(), "no metric");
    assert_eq!(redshift.row_count().await, 0);

    // The same on the backup.
    app.post("/db/force-sqlite", "").await;
    poisoned_inputs_are_refused(&app).await;
    assert_eq!(app.status().await["sync"]["pendingWrites"], 0);
}

#[tokio::test]
async fn a_value_redshift_refuses_is_answered_400_and_switches_nothing() {
    let redshift = Redshift::start(1000).await;
    let app = spawn_app_on(&redshift, &[]).await;
    // The warehouse's column is narrower than this service's own schema says.
    let pg = redshift.postgres().await;
    pg.batch_execute("ALTER TABLE calls ALTER COLUMN notes TYPE VARCHAR(20)")
        .await
        .unwrap();
    let reply = app
        .post_json(
            "/api/calls",
            &json!({"id": "too-long", "contactName": "Ada", "notes": "x".repeat(30)}),
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.source_header.as_deref(), Some("redshift"));
    let error = reply.body["error"].as_str().unwrap();
    assert!(
        error.starts_with("Redshift refused this call: a text value is longer"),
        "{error}"
    );
    assert!(
        !error.contains("varying"),
        "the database's words stay in the log"
    );

    let after = app.status().await;
    assert_eq!(after["currentSource"], "redshift");
    assert_eq!(after["fallback"]["fallbacks"], 0);
    assert_eq!(after["sync"]["pendingWrites"], 0);
    assert!(redshift.standin.metrics().is_empty());
    assert_eq!(redshift.copies_of("too-long").await, 0);
    assert_eq!(app.get("/api/calls/too-long").await.status, 404);
    assert!(logs().contains("value too long for type character varying(20)"));

    // A value that fits goes through as usual.
    let fits = app
        .post_json(
            "/api/calls",
            &json!({"contactName": "Ada", "notes": "short"}),
        )
        .await;
    assert_eq!(fits.status, 201);
    assert_eq!(fits.body["source"], "redshift");
}

#[tokio::test]
async fn one_refused_write_among_two_hundred_is_set_aside_and_the_rest_replays() {
    let redshift = Redshift::start(1000).await;
    let app = spawn_app_on(&redshift, &[("REDSHIFT_CHECK_INTERVAL_SECS", "3600")]).await;
    app.post("/db/force-sqlite", "").await;
    let mut acknowledged = HashMap::new();
    for i in 0..200 {
        let notes = if i == 137 {
            "a note far longer than twenty characters"
        } else {
            "fits"
        };
        let body =
            json!({"id": format!("batch-{i:03}"), "contactName": "Batch Bea", "notes": notes});
        let reply = app.post_json("/api/calls", &body).await;
        assert_eq!(reply.status, 201);
        acknowledged.insert(format!("batch-{i:03}"), reply.body["call"].clone());
    }
    let pg = redshift.postgres().await;
    pg.batch_execute("ALTER TABLE calls ALTER COLUMN notes TYPE VARCHAR(20)")
        .await
        .unwrap();

    let retried = app.post("/db/retry-redshift", "").await;
    assert_eq!(
        retried.body["currentSource"], "redshift",
        "{}",
        retried.body
    );
    let sync = app.status().await["sync"].clone();
    assert_eq!(sync["pendingWrites"], 0);
    assert_eq!(sync["rejectedWrites"], 1);
    assert_eq!(redshift.row_count().await, 199);
    assert_eq!(redshift.copies_of("batch-137").await, 0);
    assert!(redshift.duplicated_ids().await.is_empty());

    let set_aside_lines = logs()
        .lines()
        .filter(|l| {
            l.contains("⛔ Redshift will not take a journaled write") && l.contains("batch-137")
        })
        .count();
    assert_eq!(set_aside_lines, 1, "logged once");
    assert!(
        eventually(Duration::from_secs(2), || async {
            redshift
                .standin
                .metrics()
                .iter()
                .any(|m| m.metric_name == "RejectedWrites" && m.value == Some(1.0))
        })
        .await,
        "measured: {:?}",
        redshift.standin.metrics()
    );

    // Every acknowledged write still reads back, the set-aside one too: Redshift serves, and an
    // answer holds this environment's own writes beside what Redshift held.
    for (id, call) in &acknowledged {
        let read = app.get(&format!("/api/calls/{id}")).await;
        assert_eq!(read.status, 200, "{id}");
        assert_eq!(&read.body["call"], call, "{id}");
        assert_eq!(read.body["source"], "redshift", "{id}");
    }
}

#[tokio::test]
async fn rows_an_older_version_journaled_cannot_block_the_journal() {
    let redshift = Redshift::start(1000).await;
    let app = spawn_app_on(&redshift, &[("REDSHIFT_CHECK_INTERVAL_SECS", "3600")]).await;
    app.post("/db/force-sqlite", "").await;
    for i in 0..5 {
        let body = json!({"id": format!("good-{i}"), "contactName": "Good Gus"});
        assert_eq!(app.post_json("/api/calls", &body).await.status, 201);
    }
    // Written past today's validation: a year Redshift cannot hold, a NUL, and a timestamp
    // that does not even read back.
    let conn = rusqlite::Connection::open(&app.sqlite_path).unwrap();
    conn.execute_batch(
        "INSERT INTO calls (id, contact_name, started_at, created_at) VALUES
           ('old-year-0', 'Old Olga', '0000-01-01T00:00:00.000000Z', '2024-01-01T00:00:00.000000Z'),
           ('old-nul', CAST(X'4E0055' AS TEXT), '2024-01-01T00:00:00.000000Z', '2024-01-01T00:00:00.000000Z'),
           ('old-10000', 'Old Otto', '+10000-01-01T23:58:59Z', '2024-01-01T00:00:00.000000Z');
         INSERT INTO pending_sync (id, queued_at) VALUES
           ('old-year-0', '2000-01-01T00:00:00.000000Z'),
           ('old-nul', '2000-01-01T00:00:01.000000Z'),
           ('old-10000', '2000-01-01T00:00:02.000000Z');",
    )
    .unwrap();
    drop(conn);

    // The backup still answers, without the row it cannot read.
    let history = app.get("/api/calls/history?limit=500").await;
    assert_eq!(history.body["source"], "sqlite");
    assert!(history.body["count"].as_u64().unwrap() >= 5 + 2);
    assert!(logs().contains("Skipped a row of the local backup that cannot be read"));

    // A fresh environment on the same file, so that the journal is counted from disk.
    let path = app.sqlite_path.display().to_string();
    let restarted = spawn_app_on(
        &redshift,
        &[
            ("SQLITE_PATH", path.as_str()),
            ("REDSHIFT_CHECK_INTERVAL_SECS", "3600"),
        ],
    )
    .await;
    assert_eq!(restarted.status().await["sync"]["pendingWrites"], 8);
    let retried = restarted.post("/db/retry-redshift", "").await;
    assert_eq!(
        retried.body["currentSource"], "redshift",
        "{}",
        retried.body
    );
    let sync = restarted.status().await["sync"].clone();
    assert_eq!(sync["pendingWrites"], 0);
    assert_eq!(sync["rejectedWrites"], 3);
    for i in 0..5 {
        assert_eq!(redshift.copies_of(&format!("good-{i}")).await, 1);
    }
    assert_eq!(redshift.row_count().await, 5);
}

#[tokio::test]
async fn two_replays_of_one_batch_leave_one_row_each() {
    let redshift = Redshift::start(1000).await;
    let app = spawn_app_on(&redshift, &[("REDSHIFT_TIMEOUT_MS", "10000")]).await;
    let now = chrono::Utc::now();
    let calls: Vec<_> = (0..60)
        .map(|i| call_history::store::Call {
            id: format!("twice-{i}"),
            contact_name: "Twice Tess".into(),
            account_name: Some(String::new()),
            started_at: call_history::store::truncate_to_micros(now),
            duration_seconds: Some(i),
            outcome: None,
            notes: None,
            created_at: call_history::store::truncate_to_micros(now),
        })
        .collect();
    let redshift_store = app.store.redshift().unwrap();
    let (first, second) = (redshift_store.session(), redshift_store.session());
    let (a, b) = tokio::join!(first.insert_missing(&calls), second.insert_missing(&calls));
    let (a, b) = (a.unwrap(), b.unwrap());
    // Both read back every call, as one of them stored it, whichever that was.
    for stored in [&a, &b] {
        assert_eq!(stored.len(), 60);
        assert!(calls.iter().all(|c| stored[&c.id] == *c));
    }
    assert_eq!(redshift.row_count().await, 60);
    assert!(redshift.duplicated_ids().await.is_empty());
}

#[tokio::test]
async fn a_replay_overlapping_an_abandoned_one_leaves_one_row_each() {
    let redshift = Redshift::start(1000).await;
    let app = spawn_app_on(
        &redshift,
        &[
            ("REDSHIFT_TIMEOUT_MS", "2000"),
            ("REDSHIFT_CHECK_INTERVAL_SECS", "3600"),
        ],
    )
    .await;
    app.post("/db/force-sqlite", "").await;
    for i in 0..10 {
        let body = json!({"id": format!("overlap-{i}"), "contactName": "Overlap Ola"});
        assert_eq!(app.post_json("/api/calls", &body).await.status, 201);
    }
    // Another writer holds the writers' lock, so the first replay's statement queues behind it
    // (readers of `calls` do not).
    let (mut holder, connection) =
        tokio_postgres::connect(&redshift.database_url, tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    let lock = holder.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE calls_write_lock")
        .await
        .unwrap();

    let batches = || redshift.standin.operation_count("BatchExecuteStatement");
    let before = batches();
    let first = app.send_in_background(app.client.post(app.url("/db/retry-redshift")));
    assert!(eventually(Duration::from_secs(5), || async { batches() > before }).await);
    // From now on the Data API answers nothing: the first replay runs into its deadline and
    // its cancel never arrives, so its statement stays queued and will still commit.
    redshift.standin.set_fault(Fault::Hang);
    assert_eq!(first.await.unwrap().status, 200);
    assert_eq!(
        app.status().await["sync"]["pendingWrites"],
        10,
        "abandoned, not done"
    );
    redshift.standin.clear_fault();

    let before = batches();
    let second = app.send_in_background(app.client.post(app.url("/db/retry-redshift")));
    assert!(eventually(Duration::from_secs(5), || async { batches() > before }).await);
    lock.commit().await.unwrap();
    let second = second.await.unwrap().body;
    assert_eq!(second["currentSource"], "redshift", "{second}");
    assert_eq!(redshift.row_count().await, 10);
    assert!(redshift.duplicated_ids().await.is_empty());
    assert_eq!(app.status().await["sync"]["pendingWrites"], 0);
}

#[tokio::test]
async fn a_probe_that_succeeds_after_a_concurrent_force_keeps_the_forced_mode() {
    let redshift = Redshift::start(1000).await;
    let app = spawn_app_on(
        &redshift,
        &[
            ("REDSHIFT_CHECK_INTERVAL_SECS", "1"),
            ("REDSHIFT_TIMEOUT_MS", "5000"),
        ],
    )
    .await;
    redshift.standin.set_fault(Fault::RefuseConnections);
    assert_eq!(app.get("/api/calls/history").await.body["source"], "sqlite");
    // Redshift returns, slowly: the probe takes a while.
    redshift
        .standin
        .set_fault(Fault::Slow(Duration::from_millis(400)));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let probe = app.send_in_background(app.client.get(app.url("/api/calls/history")));
    assert!(
        eventually(Duration::from_secs(2), || async {
            logs().contains("🔄 Checking whether Redshift is back")
        })
        .await
    );
    let forced = app.post("/db/force-sqlite", "").await;
    assert_eq!(forced.status, 200);
    let probed = probe.await.unwrap().body;
    assert_eq!(
        probed["source"], "redshift",
        "the probe itself was answered by Redshift"
    );

    let after = app.status().await;
    assert_eq!(after["currentSource"], "sqlite", "{after}");
    assert_eq!(after["databases"]["redshift"]["forced"], true);
    assert_eq!(
        after["databases"]["redshift"]["message"],
        "Forced to SQLite"
    );
    redshift.standin.clear_fault();
    assert_eq!(app.get("/api/calls/history").await.body["source"], "sqlite");
}

#[tokio::test]
async fn a_backlog_replays_under_a_slow_redshift_and_every_write_stays_readable() {
    let redshift = Redshift::start(1000).await;
    let app = spawn_app_on(
        &redshift,
        &[
            ("REDSHIFT_CHECK_INTERVAL_SECS", "1"),
            ("REDSHIFT_TIMEOUT_MS", "2000"),
        ],
    )
    .await;
    redshift.standin.set_fault(Fault::RefuseConnections);
    let mut acknowledged: Vec<(String, Value)> = Vec::new();
    let app = &app;
    for chunk in 0..30 {
        let replies = join_all((0..50).map(|i| {
            let body = json!({"id": format!("backlog-{chunk:02}-{i:02}"), "contactName": format!("Backlog {}", i % 7),
                              "durationSeconds": chunk * 50 + i, "notes": ""});
            async move { (body["id"].as_str().unwrap().to_string(), app.post_json("/api/calls", &body).await) }
        }))
        .await;
        for (id, reply) in replies {
            assert_eq!(reply.status, 201, "{}", reply.body);
            acknowledged.push((id, reply.body["call"].clone()));
        }
    }
    assert_eq!(app.status().await["sync"]["pendingWrites"], 1500);

    // Redshift returns, slow: each Data API call takes 600 ms against a 2 s deadline (a pull or a replay batch is two calls).
    redshift
        .standin
        .set_fault(Fault::Slow(Duration::from_millis(600)));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let started = Instant::now();
    let mut round = 0usize;
    loop {
        // Reads during the catch-up: the newest writes and a spread of older ones.
        let sample: Vec<&(String, Value)> =
            acknowledged.iter().skip(round % 37).step_by(150).collect();
        let replies = join_all(
            sample
                .iter()
                .map(|(id, _)| app.get_owned(format!("/api/calls/{id}"))),
        )
        .await;
        for ((id, call), reply) in sample.iter().zip(replies) {
            assert_eq!(
                reply.status, 200,
                "{id} during the catch-up: {}",
                reply.body
            );
            assert_eq!(&reply.body["call"], call, "{id}");
        }
        let now = app.status().await;
        if now["currentSource"] == "redshift" && now["sync"]["pendingWrites"] == 0 {
            break;
        }
        round += 1;
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "catch-up makes progress: {now}"
        );
    }
    redshift.standin.clear_fault();

    assert_eq!(redshift.row_count().await, 1500);
    assert!(redshift.duplicated_ids().await.is_empty());
    for chunk in acknowledged.chunks(50) {
        let replies = join_all(
            chunk
                .iter()
                .map(|(id, _)| app.get_owned(format!("/api/calls/{id}"))),
        )
        .await;
        for ((id, call), reply) in chunk.iter().zip(replies) {
            assert_eq!(reply.status, 200, "{id}");
            assert_eq!(
                &reply.body["call"], call,
                "{id}: exactly the call acknowledged"
            );
        }
    }
}

#[tokio::test]
async fn a_statement_abandoned_at_the_deadline_is_cancelled() {
    let redshift = Redshift::start(1000).await;
    let app = spawn_app_on(&redshift, &[("REDSHIFT_TIMEOUT_MS", "1000")]).await;
    redshift
        .standin
        .set_fault(Fault::StayStarted(Duration::from_secs(60)));
    let reply = app.get("/api/calls/history").await;
    assert_eq!(reply.body["source"], "sqlite");
    assert!(
        eventually(Duration::from_secs(3), || async {
            redshift.standin.operation_count("CancelStatement") >= 1
        })
        .await,
        "the abandoned statement is cancelled"
    );
}

/// A write under a misbehaving Redshift (and a hung CloudWatch) gives up on Redshift at its
/// deadline and is answered by the backup: none of these makes it wait for Redshift (some never
/// answer) or for the metrics. How near the deadline it ends is `make bench`'s to measure
/// (bench/chaos.rs), not a pass/fail test's on a shared machine.
#[tokio::test]
async fn a_write_is_answered_by_the_backup_whatever_redshift_and_cloudwatch_do() {
    for fault in [
        Fault::Hang,
        // Two Data API calls (submit, describe) of 550 ms each: past 1 s.
        Fault::Slow(Duration::from_millis(550)),
        Fault::Slow(Duration::from_millis(700)),
        Fault::StayStarted(Duration::from_secs(30)),
        Fault::Throttle,
    ] {
        let redshift = Redshift::start(1000).await;
        let app = spawn_app_on(
            &redshift,
            &[
                ("REDSHIFT_TIMEOUT_MS", "1000"),
                ("REDSHIFT_CHECK_INTERVAL_SECS", "3600"),
            ],
        )
        .await;
        redshift.standin.set_fault(fault.clone());
        redshift.standin.set_cloudwatch_fault(Fault::Hang);
        let reply = app
            .post_json("/api/calls", &json!({"contactName": "Deadline Dan"}))
            .await;
        // Never an error, and not Redshift's answer: the deadline ended the wait for it.
        assert_eq!(
            (reply.status, reply.source_header.as_deref()),
            (201, Some("sqlite")),
            "{fault:?}: {}",
            reply.body
        );
        assert_eq!(app.status().await["sync"]["pendingWrites"], 1, "{fault:?}");
    }
}

#[tokio::test]
async fn a_journal_that_cannot_be_read_is_not_taken_for_a_redshift_outage() {
    let redshift = Redshift::start(1000).await;
    let app = spawn_app_on(&redshift, &[("REDSHIFT_CHECK_INTERVAL_SECS", "1")]).await;
    redshift.standin.set_fault(Fault::RefuseConnections);
    let body = json!({"id": "journal-unreadable", "contactName": "Ada"});
    assert_eq!(app.post_json("/api/calls", &body).await.status, 201);
    let failures = app.status().await["databases"]["redshift"]["consecutiveFailures"].clone();

    assert!(failures.as_u64().unwrap() >= 1);

    // The backup breaks where only a replay looks (its leases), and Redshift returns.
    let local = rusqlite::Connection::open(&app.sqlite_path).unwrap();
    local
        .execute_batch("ALTER TABLE leases RENAME TO leases_away")
        .unwrap();
    redshift.standin.clear_fault();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(app.get("/api/calls/history").await.status, 200);
    assert!(
        eventually(Duration::from_secs(5), || async {
            logs().contains("The journal could not be read or updated")
        })
        .await
    );
    // Redshift is back and serves; the journal's failure moved nothing.
    let after = app.status().await;
    assert_eq!(after["currentSource"], "redshift", "{after}");
    assert_eq!(after["databases"]["redshift"]["consecutiveFailures"], 0);
    assert_eq!(after["databases"]["redshift"]["message"], "Connected");
    assert_eq!(after["sync"]["pendingWrites"], 1);
    let read = app.get("/api/calls/journal-unreadable").await;
    assert_eq!(
        (read.status, read.body["source"].as_str()),
        (200, Some("redshift"))
    );

    // Mended, the journal replays and Redshift holds the write.
    local
        .execute_batch("ALTER TABLE leases_away RENAME TO leases")
        .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            app.get("/api/calls/history").await;
            let now = app.status().await;
            now["currentSource"] == "redshift" && now["sync"]["pendingWrites"] == 0
        })
        .await
    );
    assert_eq!(redshift.copies_of("journal-unreadable").await, 1);
}
