//! Nothing lost, nothing duplicated: writes taken by the backup during an outage reach Redshift
//! exactly once, however the replay is interrupted; and the backup keeps what Redshift served.

mod common;

use std::time::Duration;

use call_history::store::sqlite::{SqliteOptions, SqliteStore};
use call_history::store::HistoryQuery;
use common::{eventually, spawn_app_on, Redshift, TestApp};
use redshift_data_local::Fault;
use serde_json::{json, Value};

async fn record(app: &TestApp, body: Value) -> Value {
    let reply = app.post_json("/api/calls", &body).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.body
}

async fn pending(app: &TestApp) -> u64 {
    app.get("/db/status").await.body["sync"]["pendingWrites"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn outage_writes_reach_redshift_exactly_once_and_history_includes_them() {
    let redshift = Redshift::start(1000).await;
    let app = spawn_app_on(&redshift, &[("REDSHIFT_CHECK_INTERVAL_SECS", "1")]).await;
    redshift.standin.set_fault(Fault::RefuseConnections);
    let mut ids = Vec::new();
    for i in 0..12 {
        let body = record(
            &app,
            json!({"contactName": "Outage Otto", "durationSeconds": i}),
        )
        .await;
        assert_eq!(body["source"], "sqlite");
        ids.push(body["call"]["id"].as_str().unwrap().to_string());
    }
    assert_eq!(pending(&app).await, 12);
    assert_eq!(redshift.row_count().await, 0);

    redshift.standin.clear_fault();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The first request after the interval probes: it replays the waiting writes before it
    // answers (so that every environment reads them from Redshift from now on), and is answered
    // by Redshift's side.
    let first = app.get("/api/calls/history?contact=Outage%20Otto").await;
    assert_eq!(first.body["source"], "redshift");
    assert_eq!(
        first.body["count"], 12,
        "the waiting writes are in every answer"
    );
    // Already replayed: nothing between requests does it while on SQLite.
    assert_eq!(pending(&app).await, 0, "replayed by the probe");
    let history = app.get("/api/calls/history?contact=Outage%20Otto").await;
    assert_eq!(history.body["source"], "redshift");
    assert_eq!(history.body["count"], 12);
    for id in &ids {
        assert_eq!(redshift.copies_of(id).await, 1, "{id}");
    }
    let status = app.get("/db/status").await;
    assert_eq!(status.body["sync"]["pendingWrites"], 0);
    assert!(status.body["sync"]["lastReplayAt"].as_str().is_some());
    assert!(common::logs().contains("🔁 Replayed writes from the local backup to Redshift"));
}

#[tokio::test]
async fn a_replay_failing_mid_way_resumes_without_loss_or_duplicates() {
    let redshift = Redshift::start(1000).await;
    let app = spawn_app_on(&redshift, &[("REDSHIFT_CHECK_INTERVAL_SECS", "3600")]).await;
    app.post("/db/force-sqlite", "").await;
    let batch = call_history::store::journal::REPLAY_BATCH;
    let total = 2 * batch + 50;
    for i in 0..total {
        let name = if i == batch + batch / 2 {
            "Poison Pete"
        } else {
            "Batch Bea"
        };
        record(
            &app,
            json!({"id": format!("batch-{i:03}"), "contactName": name}),
        )
        .await;
    }
    assert_eq!(pending(&app).await, total as u64);

    // Redshift fails on one row of the second batch (not a refusal of its values: an error of
    // the cluster's own): that statement fails as a whole, an outage.
    let pg = redshift.postgres().await;
    pg.batch_execute(
        "CREATE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN
           IF NEW.contact_name = 'Poison Pete' THEN RAISE EXCEPTION 'poisoned row'; END IF;
           RETURN NEW; END $$ LANGUAGE plpgsql;
         CREATE TRIGGER refuse_poison BEFORE INSERT ON calls FOR EACH ROW EXECUTE FUNCTION refuse_poison();",
    )
    .await
    .unwrap();
    // The retry's replay is its probe: the failing batch is an outage, and the first batch,
    // which landed, left the journal.
    let retried = app.post("/db/retry-redshift", "").await;
    assert_eq!(retried.body["currentSource"], "sqlite");
    assert_eq!(retried.body["redshift"]["message"], "Statement failed");
    assert!(
        common::logs().contains("poisoned row"),
        "the database's own words go to the log"
    );
    let in_redshift = redshift.row_count().await;
    assert_eq!(in_redshift, batch as i64, "the first batch landed");
    assert_eq!(
        pending(&app).await,
        (total - batch) as u64,
        "and only it left the journal"
    );

    pg.batch_execute("DROP TRIGGER refuse_poison ON calls")
        .await
        .unwrap();
    let retried = app.post("/db/retry-redshift", "").await;
    assert_eq!(retried.body["currentSource"], "redshift");
    assert!(
        eventually(Duration::from_secs(10), || async {
            pending(&app).await == 0
        })
        .await
    );
    assert_eq!(redshift.row_count().await, total as i64);
    assert!(redshift.duplicated_ids().await.is_empty());
}

#[tokio::test]
async fn a_replay_whose_journal_was_not_cleared_is_not_applied_twice() {
    let redshift = Redshift::start(1000).await;
    let app = spawn_app_on(&redshift, &[]).await;
    app.post("/db/force-sqlite", "").await;
    let mut calls = Vec::new();
    for i in 0..5 {
        calls.push(
            record(
                &app,
                json!({"id": format!("died-{i}"), "contactName": "Dying Dora"}),
            )
            .await["call"]
                .clone(),
        );
    }
    // As if an earlier replay had reached Redshift and the process died before clearing the
    // journal: Redshift already holds three of them.
    let redshift_store = app.store.redshift().unwrap();
    let sqlite = app.store.sqlite().unwrap();
    let journaled: Vec<_> = sqlite
        .pending_batch(3)
        .await
        .unwrap()
        .calls
        .into_iter()
        .map(|(_, call)| call)
        .collect();
    let stored = redshift_store
        .session()
        .insert_missing(&journaled)
        .await
        .unwrap();
    assert_eq!(stored.len(), 3);

    let retried = app.post("/db/retry-redshift", "").await;
    assert_eq!(retried.body["currentSource"], "redshift");
    for call in &calls {
        assert_eq!(redshift.copies_of(call["id"].as_str().unwrap()).await, 1);
        let stored = app
            .get(&format!("/api/calls/{}", call["id"].as_str().unwrap()))
            .await;
        assert_eq!(stored.body["call"], *call, "exactly the call acknowledged");
    }
}

#[tokio::test]
async fn five_thousand_journaled_writes_survive_a_restart_and_replay_exactly_once() {
    let redshift = Redshift::start(1000).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    journal_in_a_recycled_environment(&redshift, &path, 5_000).await;
    let app = spawn_app_on(
        &redshift,
        &[
            ("SQLITE_PATH", path.to_str().unwrap()),
            ("REDSHIFT_TIMEOUT_MS", "10000"),
        ],
    )
    .await;
    assert_eq!(
        pending(&app).await,
        5_000,
        "the journal outlives the process"
    );
    let inserts = || redshift.standin.operation_count("BatchExecuteStatement");
    let inserts_before = inserts();
    let mut rounds = 0;
    while pending(&app).await > 0 {
        rounds += 1;
        assert!(rounds <= 20, "replay makes progress");
        app.post("/db/retry-redshift", "").await;
    }
    assert_eq!(redshift.row_count().await, 5_000);
    assert!(redshift.duplicated_ids().await.is_empty());
    // Batched: one multi-row insert per batch (a batch cut off at a deadline and sent again
    // at most once a round).
    let statements = inserts() - inserts_before;
    let batches = 5_000 / call_history::store::journal::REPLAY_BATCH;
    assert!(
        statements <= batches + rounds,
        "{statements} insert statements for 5,000 rows"
    );
}

/// An environment that took `n` writes during an outage and was then recycled: its file at
/// `path` holds them in its journal.
async fn journal_in_a_recycled_environment(redshift: &Redshift, path: &std::path::Path, n: i64) {
    let app = spawn_app_on(redshift, &[("SQLITE_PATH", path.to_str().unwrap())]).await;
    app.post("/db/force-sqlite", "").await;
    let sqlite = app.store.sqlite().unwrap();
    let now = chrono::Utc::now();
    for i in 0..n {
        let call = call_history::store::Call {
            id: format!("bulk-{i:05}"),
            contact_name: format!("Bulk {}", i % 37),
            account_name: (i % 3 == 0).then(|| "Bulk Co".to_string()),
            started_at: call_history::store::truncate_to_micros(now - chrono::Duration::seconds(i)),
            duration_seconds: Some(i),
            outcome: None,
            notes: Some(format!("note {i}")),
            created_at: call_history::store::truncate_to_micros(now),
        };
        sqlite.insert(&call).await.unwrap();
    }
}

/// A journal larger than one deadline's worth of replay, on a cluster that turns slow half-way
/// through the replay, so that the deadline cuts a statement short: the probe that replayed
/// part of the journal still brings the environment back to Redshift (Redshift took the
/// batches before), and the rest follows.
#[tokio::test]
async fn a_replay_cut_short_by_its_deadline_still_brings_redshift_back() {
    let redshift = Redshift::start(1000).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    journal_in_a_recycled_environment(&redshift, &path, 3_000).await;
    let app = spawn_app_on(
        &redshift,
        &[
            ("SQLITE_PATH", path.to_str().unwrap()),
            ("REDSHIFT_TIMEOUT_MS", "1000"),
            // A replay that meets the cut statement's lock is tried again after this.
            ("REDSHIFT_CHECK_INTERVAL_SECS", "2"),
        ],
    )
    .await;
    // Each of a replay batch's queries takes this long: a batch is a fraction of the deadline.
    redshift
        .standin
        .set_statement_time(Duration::from_millis(100));
    app.post("/db/force-sqlite", "").await;
    let (retried, ()) = tokio::join!(app.post("/db/retry-redshift", ""), async {
        // Once the replay's first batch is in, its next statements run long.
        assert!(
            eventually(Duration::from_secs(10), || async {
                redshift.row_count().await > 0
            })
            .await,
            "the replay's first batch reaches Redshift"
        );
        redshift
            .standin
            .set_statement_time(Duration::from_millis(1500));
    });
    assert_eq!(
        retried.body["currentSource"], "redshift",
        "{}",
        retried.body
    );
    redshift.standin.set_statement_time(Duration::ZERO);
    let left = pending(&app).await;
    assert!(left > 0 && left < 3_000, "{left} writes still waiting");
    assert!(
        eventually(Duration::from_secs(60), || async {
            pending(&app).await == 0
        })
        .await,
        "the rest is replayed between requests"
    );
    assert_eq!(redshift.row_count().await, 3_000);
    assert_eq!(
        app.get("/db/status").await.body["currentSource"],
        "redshift"
    );
}

#[tokio::test]
async fn the_same_id_during_the_outage_and_after_recovery() {
    let redshift = Redshift::start(1000).await;
    let app = spawn_app_on(&redshift, &[]).await;
    // Written to Redshift before the outage, so the backup learns it too.
    record(&app, json!({"id": "known-1", "contactName": "Known Kim"})).await;
    app.post("/db/force-sqlite", "").await;
    // A write Redshift took is in the backup before it is acknowledged.
    let during = app
        .post_json(
            "/api/calls",
            &json!({"id": "known-1", "contactName": "Known Kim"}),
        )
        .await;
    assert_eq!(
        during.status, 200,
        "a retry during the outage is recognised: {}",
        during.body
    );
    let conflict = app
        .post_json(
            "/api/calls",
            &json!({"id": "known-1", "contactName": "Other Olaf"}),
        )
        .await;
    assert_eq!(conflict.status, 409);

    record(&app, json!({"id": "outage-1", "contactName": "Olive"})).await;
    app.post("/db/retry-redshift", "").await;
    let after = app
        .post_json(
            "/api/calls",
            &json!({"id": "outage-1", "contactName": "Olive"}),
        )
        .await;
    assert_eq!(after.status, 200);
    assert_eq!(after.body["source"], "redshift");
    let different = app
        .post_json(
            "/api/calls",
            &json!({"id": "outage-1", "contactName": "Not Olive"}),
        )
        .await;
    assert_eq!(different.status, 409);
    assert_eq!(redshift.copies_of("known-1").await, 1);
    assert_eq!(redshift.copies_of("outage-1").await, 1);
}

#[tokio::test]
async fn backup_reads_are_refreshed_by_redshift_reads() {
    let redshift = Redshift::start(1000).await;
    let app = spawn_app_on(&redshift, &[]).await;
    // Calls this environment has never written: only Redshift has them.
    let pg = redshift.postgres().await;
    pg.batch_execute(
        "INSERT INTO calls (id, contact_name, started_at, created_at) VALUES
           ('fresh-1', 'Fresh Fay', '2026-03-01 10:00:00', '2026-03-01 10:05:00'),
           ('fresh-2', 'Fresh Fay', '2026-03-02 10:00:00', '2026-03-02 10:05:00')",
    )
    .await
    .unwrap();
    let from_redshift = app.get("/api/calls/history?contact=Fresh%20Fay").await;
    assert_eq!(from_redshift.body["source"], "redshift");
    assert_eq!(from_redshift.body["count"], 2);

    app.post("/db/force-sqlite", "").await;
    let mut from_backup = app.get("/api/calls/history?contact=Fresh%20Fay").await;
    for _ in 0..40 {
        if from_backup.body["count"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        from_backup = app.get("/api/calls/history?contact=Fresh%20Fay").await;
    }
    assert_eq!(from_backup.body["source"], "sqlite");
    assert_eq!(from_backup.body["calls"], from_redshift.body["calls"]);
}

#[tokio::test]
async fn a_cold_start_from_a_snapshot_serves_recent_history() {
    let redshift = Redshift::start(50).await;
    let app = spawn_app_on(&redshift, &[]).await;
    for i in 0..120 {
        record(
            &app,
            json!({"id": format!("snap-{i:03}"), "contactName": "Snap Sam",
                            "startedAt": format!("2026-05-01T10:{:02}:{:02}Z", i / 60, i % 60)}),
        )
        .await;
    }
    // Writes the account's quota throttled were journaled: they reach Redshift first. And the
    // writes spent the quota of this second; an operator's snapshot comes later.
    assert!(
        eventually(Duration::from_secs(10), || async {
            pending(&app).await == 0
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The real command, as `make snapshot` runs it (asynchronously: the stand-in runs on this
    // test's runtime).
    let dir = tempfile::tempdir().unwrap();
    let seed_path = dir.path().join("seed.sql");
    let output = redshift
        .service_command()
        .arg("snapshot")
        .arg(&seed_path)
        .env("SQLITE_PATH", dir.path().join("unused.db"))
        .output()
        .await
        .expect("snapshot runs");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let seed = std::fs::read_to_string(&seed_path).unwrap();

    // A cold start in an outage: a fresh /tmp, the snapshot as shipped data.
    let cold = SqliteStore::open_with(
        &dir.path().join("cold.db"),
        SqliteOptions {
            journal_writes: true,
            ..SqliteOptions::default()
        },
        &seed,
    )
    .unwrap();
    let query = HistoryQuery {
        contact: Some("Snap Sam".into()),
        limit: 500,
        ..HistoryQuery::default()
    };
    let served = cold.history(&query).await.unwrap();
    let in_redshift = app
        .store
        .redshift()
        .unwrap()
        .session()
        .history(&query)
        .await
        .unwrap();
    assert_eq!(served.len(), 120);
    assert_eq!(served, in_redshift);
}

#[tokio::test]
async fn redshift_reads_rewrite_in_the_backup_only_what_changed() {
    let redshift = Redshift::start(1000).await;
    let app = spawn_app_on(&redshift, &[]).await;
    let pg = redshift.postgres().await;
    pg.batch_execute(
        "INSERT INTO calls (id, contact_name, started_at, notes, created_at) VALUES
           ('steady-1', 'Steady Sam', '2026-03-01 10:00:00', 'first', '2026-03-01 10:05:00')",
    )
    .await
    .unwrap();
    let local = rusqlite::Connection::open(&app.sqlite_path).unwrap();
    let notes = || {
        local
            .query_row("SELECT notes FROM calls WHERE id = 'steady-1'", [], |r| {
                r.get::<_, String>(0)
            })
            .ok()
    };
    let read = || app.get("/api/calls/history?contact=Steady%20Sam");
    assert_eq!(read().await.body["source"], "redshift");
    for _ in 0..40 {
        if notes().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(notes().as_deref(), Some("first"));

    // The same rows again: nothing is written (data_version moves with every commit made by
    // another connection).
    let version = |c: &rusqlite::Connection| {
        c.query_row("PRAGMA data_version", [], |r| r.get::<_, i64>(0))
            .unwrap()
    };
    let before = version(&local);
    for _ in 0..3 {
        assert_eq!(read().await.body["source"], "redshift");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(version(&local), before, "unchanged rows were written again");

    // A row Redshift changed is copied.
    pg.batch_execute("UPDATE calls SET notes = 'second' WHERE id = 'steady-1'")
        .await
        .unwrap();
    read().await;
    for _ in 0..40 {
        if notes().as_deref() == Some("second") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(notes().as_deref(), Some("second"));
    // With its answer: the call as Redshift serves it.
    let answer: String = local
        .query_row("SELECT answer FROM calls WHERE id = 'steady-1'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let served = read().await.body;
    assert_eq!(served["calls"][0]["notes"], "second");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&answer).unwrap(),
        served["calls"][0]
    );
}
