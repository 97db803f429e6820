//! Writes to Redshift, through the real SDK against the stand-in: writers take turns on a lock
//! readers never wait for, under either isolation level no id is stored twice, concurrent writes
//! share statements, the backup takes no write while Redshift is healthy, and a replay that
//! meets another version of its call says so.

mod common;

use std::time::Duration;

use common::{eventually, logs, spawn_app_on, Redshift, TestApp};
use futures::future::join_all;
use redshift_data_local::{Fault, Isolation};
use serde_json::{json, Value};

async fn status(app: &TestApp) -> Value {
    app.get("/db/status").await.body
}

/// A history read that asks Redshift (no replica kept) while another writer's transaction holds
/// the writers' lock with an insert under way: it answers from Redshift at once. Under the
/// former `LOCK calls` it would have waited for that transaction, and fallen back at its
/// deadline.
#[tokio::test]
async fn a_read_during_an_open_write_transaction_does_not_wait_for_it() {
    let redshift = Redshift::start(1000).await;
    let app = spawn_app_on(
        &redshift,
        &[
            ("READ_MAX_STALENESS_MS", "0"),
            ("REDSHIFT_TIMEOUT_MS", "3000"),
        ],
    )
    .await;
    let (mut writer, connection) =
        tokio_postgres::connect(&redshift.database_url, tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    let open = writer.transaction().await.unwrap();
    open.batch_execute(
        "LOCK TABLE calls_write_lock;
         INSERT INTO calls (id, contact_name, started_at, created_at)
         VALUES ('uncommitted', 'Open Olga', TIMESTAMP '2026-01-01 10:00:00', TIMESTAMP '2026-01-01 10:00:00');",
    )
    .await
    .unwrap();
    let read = app.get("/api/calls/history").await;
    assert_eq!(read.body["source"], "redshift", "{}", read.body);
    assert_eq!(read.body["count"], 0, "the uncommitted call is not seen");
    // A writer does wait for the lock, and goes once it is free.
    let waiting = app.send_in_background(
        app.client
            .post(app.url("/api/calls"))
            .json(&json!({"id": "after-the-lock", "contactName": "Patient Pat"})),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "writers take turns");
    open.commit().await.unwrap();
    let written = waiting.await.unwrap();
    assert_eq!(
        (written.status, written.body["source"].as_str()),
        (201, Some("redshift"))
    );
}

async fn twenty_creates_of_one_id(isolation: Isolation) {
    let redshift = Redshift::start_with(1000, |options| options.isolation = isolation).await;
    let app = spawn_app_on(&redshift, &[("REDSHIFT_TIMEOUT_MS", "10000")]).await;
    let body =
        json!({"id": "same-id", "contactName": "Twin Tim", "startedAt": "2026-01-01T10:00:00Z"});
    let replies = join_all((0..20).map(|_| app.post_json("/api/calls", &body))).await;
    let created = replies.iter().filter(|r| r.status == 201).count();
    let repeated = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!((created, repeated), (1, 19), "{isolation:?}");
    assert_eq!(redshift.copies_of("same-id").await, 1, "{isolation:?}");
}

#[tokio::test]
async fn twenty_concurrent_creates_of_one_id_leave_one_row_under_serializable() {
    twenty_creates_of_one_id(Isolation::Serializable).await;
}

#[tokio::test]
async fn twenty_concurrent_creates_of_one_id_leave_one_row_under_snapshot_isolation() {
    twenty_creates_of_one_id(Isolation::Snapshot).await;
}

/// Two environments (their own files), two environments in separate rooms, each answering one
/// request at a time, as Lambda runs them, across an outage and its end.
#[tokio::test]
async fn after_an_outage_redshift_takes_every_write_and_every_call_reads_back_everywhere() {
    let redshift = Redshift::start(1000).await;
    let settings = [
        ("REDSHIFT_CHECK_INTERVAL_SECS", "1"),
        ("READ_MAX_STALENESS_MS", "500"),
    ];
    let a = spawn_app_on(&redshift, &settings).await;
    let b = spawn_app_on(&redshift, &settings).await;
    redshift.standin.set_fault(Fault::RefuseConnections);
    for i in 0..5 {
        let body = json!({"id": format!("outage-{i}"), "contactName": "Outage Otto"});
        let reply = a.post_json("/api/calls", &body).await;
        assert_eq!(
            (reply.status, reply.body["source"].as_str()),
            (201, Some("sqlite"))
        );
    }
    redshift.standin.clear_fault();
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // The first write after recovery is Redshift's, not the backup's.
    let mut ids: Vec<String> = (0..5).map(|i| format!("outage-{i}")).collect();
    for round in 0..10 {
        let (writer, other) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let id = format!("after-{round}");
        let body = json!({"id": id, "contactName": "After Ava"});
        let reply = writer.post_json("/api/calls", &body).await;
        assert_eq!(
            (reply.status, reply.body["source"].as_str()),
            (201, Some("redshift")),
            "{id}: {}",
            reply.body
        );
        ids.push(id);
        for id in &ids {
            for environment in [writer, other] {
                let read = environment.get(&format!("/api/calls/{id}")).await;
                assert_eq!(read.status, 200, "{id}: {}", read.body);
                assert_eq!(read.body["source"], "redshift", "{id}");
            }
        }
    }
    // The journal drained while the writes kept coming.
    assert!(
        eventually(Duration::from_secs(5), || async {
            status(&a).await["sync"]["pendingWrites"] == 0
        })
        .await
    );
    for id in &ids {
        assert_eq!(redshift.copies_of(id).await, 1, "{id}");
    }
    let everywhere = b.get("/api/calls/history?contact=Outage%20Otto").await;
    assert!(
        eventually(Duration::from_secs(3), || async {
            b.get("/api/calls/history?contact=Outage%20Otto").await.body["count"] == 5
        })
        .await,
        "{}",
        everywhere.body
    );
}

#[tokio::test]
async fn a_call_with_every_optional_field_missing_or_empty_is_taken_by_redshift() {
    let redshift = Redshift::start(1000).await;
    let app = spawn_app_on(&redshift, &[]).await;
    for body in [
        json!({"id": "bare", "contactName": "Bare Bo"}),
        json!({"id": "empties", "contactName": "Empty Em", "accountName": "", "outcome": "", "notes": ""}),
        json!({"id": "nulls", "contactName": "Null Nell", "accountName": null, "durationSeconds": null, "outcome": null, "notes": null}),
    ] {
        let reply = app.post_json("/api/calls", &body).await;
        assert_eq!(
            (reply.status, reply.body["source"].as_str()),
            (201, Some("redshift")),
            "{body}: {}",
            reply.body
        );
    }
    assert_eq!(redshift.row_count().await, 3);
    assert_eq!(status(&app).await["currentSource"], "redshift");
}

#[tokio::test]
async fn concurrent_writes_in_one_environment_share_statements() {
    let redshift = Redshift::start_unmetered(1000).await;
    let app = spawn_app_on(&redshift, &[("REDSHIFT_TIMEOUT_MS", "10000")]).await;
    // Each statement takes a while, as on a real cluster: writes arriving meanwhile queue.
    redshift
        .standin
        .set_statement_time(Duration::from_millis(100));
    let inserts = || redshift.standin.operation_count("BatchExecuteStatement");
    let before = inserts();
    let bodies: Vec<Value> = (0..40)
        .map(|i| json!({"id": format!("together-{i:02}"), "contactName": "Together Tom"}))
        .collect();
    let replies = join_all(bodies.iter().map(|body| app.post_json("/api/calls", body))).await;
    for reply in &replies {
        assert_eq!(
            (reply.status, reply.body["source"].as_str()),
            (201, Some("redshift"))
        );
    }
    let statements = inserts() - before;
    assert!(statements < 40, "{statements} statements for 40 writes");
    assert_eq!(redshift.row_count().await, 40);
    assert!(redshift.duplicated_ids().await.is_empty());
}

/// Concurrent writes (each statement slow, as on a real cluster) of which Redshift refuses one:
/// only that one is answered 400; the rest are taken by Redshift in a handful of statements
/// (the batch is halved around the refused write, not retried a write at a time).
#[tokio::test]
async fn a_refused_write_among_concurrent_ones_is_the_only_one_refused() {
    let redshift = Redshift::start(1000).await;
    let app = spawn_app_on(&redshift, &[("REDSHIFT_TIMEOUT_MS", "10000")]).await;
    narrow_notes(&redshift).await;
    redshift
        .standin
        .set_statement_time(Duration::from_millis(100));
    let inserts = || redshift.standin.operation_count("BatchExecuteStatement");
    let before = inserts();
    let replies = join_all(
        concurrent_writes("halved", 40)
            .iter()
            .map(|body| app.post_json("/api/calls", body)),
    )
    .await;
    let answers: Vec<(u16, Option<&str>)> = replies
        .iter()
        .map(|reply| (reply.status, reply.body["source"].as_str()))
        .collect();
    assert_eq!(answers[TOO_LONG].0, 400, "{answers:?}");
    assert_eq!(replies[TOO_LONG].source_header.as_deref(), Some("redshift"));
    for (i, answer) in answers.iter().enumerate().filter(|(i, _)| *i != TOO_LONG) {
        assert_eq!(*answer, (201, Some("redshift")), "write {i}");
    }
    let statements = inserts() - before;
    assert!(statements <= 20, "{statements} statements for 40 writes");
    assert_eq!(redshift.row_count().await, 39);
    assert_eq!(status(&app).await["fallback"]["fallbacks"], 0);
}

/// The same with a deadline too short to narrow the refused write down: the writes left when
/// time runs out are back-pressure, not an outage. They go to the journal (201 from the backup)
/// without a fallback, and reach Redshift at the next replay; the refused one is set aside there.
#[tokio::test]
async fn writes_that_outrun_their_deadline_around_a_refused_one_are_journaled_without_a_fallback() {
    let redshift = Redshift::start(1000).await;
    let app = spawn_app_on(
        &redshift,
        &[
            ("REDSHIFT_TIMEOUT_MS", "1000"),
            ("REDSHIFT_CHECK_INTERVAL_SECS", "3600"),
        ],
    )
    .await;
    narrow_notes(&redshift).await;
    // The first contact (a pull of the replica) made while statements are quick.
    assert_eq!(app.get("/api/calls/history").await.status, 200);
    redshift
        .standin
        .set_statement_time(Duration::from_millis(300));
    let replies = join_all(
        concurrent_writes("outran", 40)
            .iter()
            .map(|body| app.post_json("/api/calls", body)),
    )
    .await;
    let from_backup = replies
        .iter()
        .filter(|reply| reply.source_header.as_deref() == Some("sqlite"))
        .count();
    // 200: a statement abandoned at the deadline committed after all, and a pull brought the
    // call into the backup before the write reached it (the same call, already stored).
    for (i, reply) in replies.iter().enumerate() {
        assert!(
            matches!(reply.status, 200 | 201 | 400),
            "write {i}: {} {}",
            reply.status,
            reply.body
        );
    }
    assert!(
        from_backup > 0,
        "the deadline ran out before every write was narrowed down"
    );
    let after = status(&app).await;
    assert_eq!(after["fallback"]["fallbacks"], 0, "{after}");
    assert_eq!(after["currentSource"], "redshift");

    redshift.standin.set_statement_time(Duration::ZERO);
    let replayed = app.post("/db/retry-redshift", "").await;
    assert_eq!(replayed.body["currentSource"], "redshift");
    let sync = status(&app).await["sync"].clone();
    assert_eq!(sync["pendingWrites"], 0, "{sync}");
    assert_eq!(redshift.row_count().await, 39);
}

/// The warehouse's notes column narrower than the service's schema: Redshift refuses longer
/// notes.
async fn narrow_notes(redshift: &Redshift) {
    redshift
        .postgres()
        .await
        .batch_execute("ALTER TABLE calls ALTER COLUMN notes TYPE VARCHAR(20)")
        .await
        .expect("narrow the column");
}

/// Which of [`concurrent_writes`] has notes the narrowed column refuses.
const TOO_LONG: usize = 17;

/// `n` new calls; the one at [`TOO_LONG`] has notes longer than the narrowed column.
fn concurrent_writes(prefix: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let notes = if i == TOO_LONG {
                "x".repeat(30)
            } else {
                format!("note {i}")
            };
            json!({"id": format!("{prefix}-{i:02}"), "contactName": "Batch Bea", "notes": notes})
        })
        .collect()
}

/// A write journaled during an outage whose id another environment gave Redshift meanwhile, with
/// other content: Redshift's version stays, the journaled one is set aside as a conflict,
/// counted, logged and measured; the rest of the journal replays.
#[tokio::test]
async fn a_conflicting_replay_is_set_aside_and_reported() {
    let redshift = Redshift::start(1000).await;
    let a = spawn_app_on(&redshift, &[("REDSHIFT_CHECK_INTERVAL_SECS", "3600")]).await;
    let b = spawn_app_on(&redshift, &[]).await;
    a.post("/db/force-sqlite", "").await;
    for (id, contact) in [("shared-id", "Version A"), ("only-a", "Alone Al")] {
        let reply = a
            .post_json("/api/calls", &json!({"id": id, "contactName": contact}))
            .await;
        assert_eq!(
            (reply.status, reply.body["source"].as_str()),
            (201, Some("sqlite"))
        );
    }
    let other = b
        .post_json(
            "/api/calls",
            &json!({"id": "shared-id", "contactName": "Version B"}),
        )
        .await;
    assert_eq!(
        (other.status, other.body["source"].as_str()),
        (201, Some("redshift"))
    );

    let retried = a.post("/db/retry-redshift", "").await;
    assert_eq!(retried.body["currentSource"], "redshift");
    let sync = status(&a).await["sync"].clone();
    assert_eq!(sync["pendingWrites"], 0, "{sync}");
    assert_eq!(sync["conflictingWrites"], 1, "{sync}");
    assert_eq!(sync["rejectedWrites"], 0, "{sync}");
    assert_eq!(redshift.copies_of("shared-id").await, 1);
    assert_eq!(redshift.copies_of("only-a").await, 1);
    let pg = redshift.postgres().await;
    let kept: String = pg
        .query_one("SELECT contact_name FROM calls WHERE id = 'shared-id'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(kept, "Version B", "Redshift's version stays");
    assert!(logs().contains("conflicts with the call Redshift holds under its id"));
    a.settled().await;
    assert!(redshift
        .standin
        .metrics()
        .iter()
        .any(|m| m.metric_name == "ConflictingWrites" && m.value == Some(1.0)));
}
