//! Writes to Redshift, through the real SDK against the stand-in: writers take turns on a lock
//! readers never wait for, under either isolation level no id is stored twice, concurrent writes
//! share statements, the backup takes no write while Redshift is healthy, and a replay that
//! meets another version of its call says so.

mod common;

use std::time::Duration;

use common::{eventually, logs, spawn_app_on, Redshift};
use futures::future::join_all;
use redshift_data_local::{Fault, Isolation};
use serde_json::{json, Value};

/// Settings of the environments below: no replica (every read a Redshift statement, and no
/// pulls between requests), and a deadline that outlasts the slow statements.
const SLOW_STATEMENTS: [(&str, &str); 3] = [
    ("READ_MAX_STALENESS_MS", "0"),
    ("REDSHIFT_TIMEOUT_MS", "20000"),
    ("REDSHIFT_CHECK_INTERVAL_SECS", "3600"),
];

/// Sessions of this database waiting for a lock on `$1`.
const WAITING_SQL: &str = "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
     WHERE l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
     AND c.relname = $1 AND NOT l.granted";

/// Locks on `calls` held in `$1` mode by sessions of this database.
const HELD_ON_CALLS_SQL: &str =
    "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
     WHERE l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
     AND c.relname = 'calls' AND l.mode = $1 AND l.granted";

/// Sessions of this database holding the writers' lock.
const HOLDING_THE_WRITE_LOCK_SQL: &str =
    "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
     WHERE l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
     AND c.relname = 'calls_write_lock' AND l.granted";

/// Other sessions of this database inside a transaction (running, waiting or idle in it).
const OPEN_TRANSACTIONS_SQL: &str = "SELECT count(*) FROM pg_stat_activity \
     WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL";

async fn count(pg: &tokio_postgres::Client, sql: &str, params: &[&str]) -> i64 {
    let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
        .iter()
        .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect();
    pg.query_one(sql, &params).await.expect("pg_locks").get(0)
}

/// Waits until the count `sql` gives is `wanted`.
async fn until_count(pg: &tokio_postgres::Client, sql: &str, params: &[&str], wanted: i64) {
    let reached = eventually(Duration::from_secs(30), || async {
        count(pg, sql, params).await == wanted
    })
    .await;
    assert!(
        reached,
        "{} instead of {wanted}: {sql} {params:?}",
        count(pg, sql, params).await
    );
}

/// A history read that asks Redshift (no replica kept) while a write of the service holds the
/// writers' lock in its open transaction and a second writer waits for its turn: nothing locks
/// `calls` itself, so the read answers from Redshift while that transaction is still open.
/// Under a `LOCK calls` (ACCESS EXCLUSIVE) it would have waited for the write to commit.
#[tokio::test]
async fn a_read_during_an_open_write_transaction_does_not_wait_for_it() {
    let redshift = Redshift::start(1000).await;
    let a = spawn_app_on(&redshift, &SLOW_STATEMENTS).await;
    let b = spawn_app_on(&redshift, &SLOW_STATEMENTS).await;
    for app in [&a, &b] {
        let first_contact = app.get("/api/calls/history").await;
        assert_eq!(first_contact.body["source"], "redshift");
    }
    let pg = redshift.postgres().await;

    // Each query of the next statement takes this long before it runs (the lock, then the
    // insert): once the lock is granted, the transaction holds it open for this long.
    redshift.standin.set_statement_time(Duration::from_secs(6));
    let first = a.send_in_background(
        a.client
            .post(a.url("/api/calls"))
            .json(&json!({"id": "held-open", "contactName": "Open Olga"})),
    );
    until_count(&pg, HOLDING_THE_WRITE_LOCK_SQL, &[], 1).await;
    redshift.standin.set_statement_time(Duration::ZERO);
    assert_eq!(
        count(&pg, HELD_ON_CALLS_SQL, &["AccessExclusiveLock"]).await,
        0,
        "the writer does not lock calls against its readers"
    );
    // A writer of another environment waits for the writers' lock.
    let second = b.send_in_background(
        b.client
            .post(b.url("/api/calls"))
            .json(&json!({"id": "after-the-turn", "contactName": "Patient Pat"})),
    );
    until_count(&pg, WAITING_SQL, &["calls_write_lock"], 1).await;

    let read = a.get("/api/calls/history").await;
    assert_eq!(read.body["source"], "redshift", "{}", read.body);
    assert_eq!(read.body["count"], 0, "the uncommitted call is not seen");
    // Answered while both writes were under way, the first's transaction still open.
    assert!(!first.is_finished() && !second.is_finished());
    assert_eq!(
        count(&pg, HOLDING_THE_WRITE_LOCK_SQL, &[]).await,
        1,
        "still open"
    );
    assert_eq!(
        count(&pg, WAITING_SQL, &["calls_write_lock"]).await,
        1,
        "still waiting"
    );

    // Each writer goes in turn, both to Redshift.
    for (write, id) in [(first, "held-open"), (second, "after-the-turn")] {
        let written = write.await.unwrap();
        assert_eq!(
            (written.status, written.body["source"].as_str()),
            (201, Some("redshift")),
            "{id}: {}",
            written.body
        );
        assert_eq!(redshift.copies_of(id).await, 1, "{id}");
    }
}

/// Twenty creates of one id at once, five through each of four environments, each environment
/// naming its own contact, while every statement runs long: each environment's writes share a
/// statement, and the environments' statements are concurrent transactions on the warehouse.
/// One row is left, one write is answered 201, and every other answer agrees with the row:
/// 200 where its call is the one stored, 409 where it is another.
async fn twenty_creates_of_one_id(isolation: Isolation) {
    let redshift = Redshift::start_with(1000, |options| options.isolation = isolation).await;
    let mut environments = Vec::new();
    for _ in 0..4 {
        environments.push(spawn_app_on(&redshift, &SLOW_STATEMENTS).await);
    }
    let pg = redshift.postgres().await;
    let contact = |environment: usize| format!("Twin {environment}");
    let writes: Vec<(usize, Value)> = (0..20)
        .map(|i| {
            let environment = i % environments.len();
            let body = json!({"id": "same-id", "contactName": contact(environment),
                              "startedAt": "2026-01-01T10:00:00Z"});
            (environment, body)
        })
        .collect();
    redshift
        .standin
        .set_statement_time(Duration::from_millis(200));
    let posts = join_all(
        writes
            .iter()
            .map(|(environment, body)| environments[*environment].post_json("/api/calls", body)),
    );
    // Two of the writers' transactions open at once.
    let overlap = eventually(Duration::from_secs(20), || async {
        count(&pg, OPEN_TRANSACTIONS_SQL, &[]).await >= 2
    });
    let (replies, overlapped) = tokio::join!(posts, overlap);
    assert!(
        overlapped,
        "{isolation:?}: the transactions never overlapped"
    );

    assert_eq!(redshift.copies_of("same-id").await, 1, "{isolation:?}");
    let kept: String = pg
        .query_one("SELECT contact_name FROM calls WHERE id = 'same-id'", &[])
        .await
        .unwrap()
        .get(0);
    let mut answers = (0, 0, 0);
    for ((environment, _), reply) in writes.iter().zip(&replies) {
        assert_eq!(
            reply.source_header.as_deref(),
            Some("redshift"),
            "{isolation:?}: {}",
            reply.body
        );
        let stored = contact(*environment) == kept;
        match (reply.status, stored) {
            (201, true) => answers.0 += 1,
            (200, true) => answers.1 += 1,
            (409, false) => answers.2 += 1,
            _ => panic!(
                "{isolation:?}: {} for {:?} where Redshift holds {kept:?}: {}",
                reply.status,
                contact(*environment),
                reply.body
            ),
        }
        if reply.status != 409 {
            assert_eq!(reply.body["call"]["contactName"], kept.as_str());
            assert_eq!(reply.body["call"]["id"], "same-id");
        }
    }
    assert_eq!(
        answers,
        (1, 4, 15),
        "{isolation:?}: one stored, its environment's others recognised, the rest refused"
    );
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
            a.status().await["sync"]["pendingWrites"] == 0
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
    assert_eq!(app.status().await["currentSource"], "redshift");
}

/// Writes that arrive while another write's statement is open (each statement slow, as on a real
/// cluster) queue, and go together: forty writes take at most three statements (the first, then
/// the rest in one, or two should some arrive after that one left), not one each.
#[tokio::test]
async fn concurrent_writes_in_one_environment_share_statements() {
    let redshift = Redshift::start(1000).await;
    let app = spawn_app_on(&redshift, &SLOW_STATEMENTS).await;
    let pg = redshift.postgres().await;
    redshift
        .standin
        .set_statement_time(Duration::from_millis(500));
    let inserts = || redshift.standin.operation_count("BatchExecuteStatement");
    let before = inserts();
    let bodies: Vec<Value> = (0..40)
        .map(|i| json!({"id": format!("together-{i:02}"), "contactName": "Together Tom"}))
        .collect();
    let first = app.post_json("/api/calls", &bodies[0]);
    let rest = async {
        // The first write's statement is open: the others come now.
        until_count(&pg, HOLDING_THE_WRITE_LOCK_SQL, &[], 1).await;
        join_all(
            bodies[1..]
                .iter()
                .map(|body| app.post_json("/api/calls", body)),
        )
        .await
    };
    let (first, rest) = tokio::join!(first, rest);
    for reply in std::iter::once(&first).chain(&rest) {
        assert_eq!(
            (reply.status, reply.body["source"].as_str()),
            (201, Some("redshift")),
            "{}",
            reply.body
        );
    }
    let statements = inserts() - before;
    assert!(
        (2..=3).contains(&statements),
        "{statements} statements for 40 writes"
    );
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
    assert_eq!(app.status().await["fallback"]["fallbacks"], 0);
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
    // Each of an insert's two queries (lock, insert) takes this long: about a fifth of the
    // deadline a statement.
    redshift
        .standin
        .set_statement_time(Duration::from_millis(100));
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
    let after = app.status().await;
    assert_eq!(after["fallback"]["fallbacks"], 0, "{after}");
    assert_eq!(after["currentSource"], "redshift");

    redshift.standin.set_statement_time(Duration::ZERO);
    // A replay (a statement abandoned above may still hold the writers' lock for a moment, so
    // one replay may not be enough on a loaded machine).
    assert!(
        eventually(Duration::from_secs(20), || async {
            let replayed = app.post("/db/retry-redshift", "").await;
            replayed.body["currentSource"] == "redshift"
                && app.status().await["sync"]["pendingWrites"] == 0
        })
        .await,
        "{}",
        app.status().await
    );
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
    let sync = a.status().await["sync"].clone();
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
    // The environment that acknowledged Version A keeps it, apart, through every pull since.
    let own = a.get("/api/calls/shared-id").await;
    assert_eq!(own.body["call"]["contactName"], "Version A", "{}", own.body);
    assert!(logs().contains("conflicts with the call Redshift holds under its id"));
    a.settled().await;
    assert!(redshift
        .standin
        .metrics()
        .iter()
        .any(|m| m.metric_name == "ConflictingWrites" && m.value == Some(1.0)));
}

/// Data API calls per operation the stand-in has received.
fn calls_by_operation(redshift: &Redshift) -> [usize; 4] {
    [
        "BatchExecuteStatement",
        "DescribeStatement",
        "ExecuteStatement",
        "GetStatementResult",
    ]
    .map(|op| redshift.standin.operation_count(op))
}

/// Data API calls per operation since `before`.
fn calls_since(redshift: &Redshift, before: [usize; 4]) -> [usize; 4] {
    let now = calls_by_operation(redshift);
    std::array::from_fn(|i| now[i] - before[i])
}

/// A new call is known stored from the insert's row count: the batch and one DescribeStatement,
/// no result to fetch. A call Redshift already held (stored by another program, unknown to this
/// environment's replica) is read after the commit, and the answer is what Redshift holds: 200
/// for the same call, 409 for another.
#[tokio::test]
async fn a_new_call_is_known_stored_by_its_row_count_and_a_held_one_is_read_after_the_commit() {
    let redshift = Redshift::start(1000).await;
    let app = spawn_app_on(
        &redshift,
        &[
            ("READ_MAX_STALENESS_MS", "600000"),
            ("REDSHIFT_CHECK_INTERVAL_SECS", "3600"),
        ],
    )
    .await;
    assert_eq!(
        app.get("/api/calls/history").await.body["source"],
        "redshift"
    );
    let pg = redshift.postgres().await;
    pg.batch_execute(
        "INSERT INTO calls (id, contact_name, account_name, started_at, duration_seconds, \
         outcome, notes, created_at) VALUES ('held-before', 'Earlier Eve', NULL, \
         '2026-01-01T10:00:00Z', NULL, NULL, NULL, '2026-01-01T10:00:01Z')",
    )
    .await
    .expect("a call stored by another program");

    let before = calls_by_operation(&redshift);
    let new = app
        .post_json(
            "/api/calls",
            &json!({"id": "brand-new", "contactName": "New Nora"}),
        )
        .await;
    assert_eq!(
        (new.status, new.body["source"].as_str()),
        (201, Some("redshift"))
    );
    assert_eq!(
        calls_since(&redshift, before),
        [1, 1, 0, 0],
        "batch, describe, execute, result"
    );
    assert_eq!(redshift.copies_of("brand-new").await, 1);

    let held = json!({"id": "held-before", "contactName": "Earlier Eve",
                      "startedAt": "2026-01-01T10:00:00Z"});
    let before = calls_by_operation(&redshift);
    let same = app.post_json("/api/calls", &held).await;
    assert_eq!(
        (same.status, same.body["source"].as_str()),
        (200, Some("redshift")),
        "{}",
        same.body
    );
    let created_at = same.body["call"]["createdAt"].as_str().unwrap_or_default();
    assert!(
        created_at.starts_with("2026-01-01T10:00:01"),
        "{}",
        same.body
    );
    assert_eq!(
        calls_since(&redshift, before),
        [1, 1, 1, 1],
        "the read of what Redshift holds is a statement of its own"
    );

    let other = json!({"id": "held-before", "contactName": "Someone Else"});
    let conflict = app.post_json("/api/calls", &other).await;
    assert_eq!(conflict.status, 409, "{}", conflict.body);
    assert_eq!(redshift.copies_of("held-before").await, 1);
}
