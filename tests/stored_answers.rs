//! Each call's answer kept beside it in the local backup: written with the call, copied out by
//! history, and never outliving the columns it was written from, whoever changes them.

mod common;

use common::{spawn_app, TestApp};
use serde_json::{json, Value};

/// The history answer's bytes, as sent.
async fn history_text(app: &TestApp, query: &str) -> String {
    let response = app
        .client
        .get(app.url(&format!("/api/calls/history{query}")))
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), 200);
    response.text().await.expect("body")
}

fn local(app: &TestApp) -> rusqlite::Connection {
    rusqlite::Connection::open(&app.sqlite_path).expect("open the backup")
}

fn stored_answer(conn: &rusqlite::Connection, id: &str) -> Option<String> {
    conn.query_row("SELECT answer FROM calls WHERE id = ?1", [id], |r| r.get(0))
        .expect("the call is there")
}

#[tokio::test]
async fn calls_written_through_the_api_read_back_the_same_from_their_answers_or_columns() {
    let app = spawn_app(&[]).await;
    let calls = [
        json!({"id": "plain", "contactName": "Pat", "startedAt": "2026-01-01T10:00:00Z"}),
        json!({"id": "fraction", "contactName": "Pat", "accountName": "", "durationSeconds": 0,
               "startedAt": "2026-01-01T09:00:00.120+02:00", "outcome": "connected"}),
        json!({"id": "escapes", "contactName": "Zoë \"Q\" \\ /", "notes": "tab\tnew\nline \u{1} \u{2028} 📞",
               "startedAt": "2026-01-01T08:00:00.123456789Z", "durationSeconds": 9_007_199_254_740_993_i64}),
    ];
    for call in &calls {
        assert_eq!(app.post_json("/api/calls", call).await.status, 201);
    }
    let conn = local(&app);
    for id in ["plain", "fraction", "escapes"] {
        assert!(stored_answer(&conn, id).is_some(), "{id} has its answer");
    }
    let from_answers = history_text(&app, "?contact=Pat").await;
    let escapes_from_answers = history_text(&app, "?limit=500").await;

    conn.execute_batch("UPDATE calls SET answer = NULL")
        .expect("cleared by hand");
    assert_eq!(history_text(&app, "?contact=Pat").await, from_answers);
    assert_eq!(history_text(&app, "?limit=500").await, escapes_from_answers);

    // And they are the calls as written, not just the same text twice.
    let history: Value = serde_json::from_str(&from_answers).expect("JSON");
    assert_eq!(history["count"], 2);
    assert_eq!(history["calls"][0]["id"], "plain");
    assert_eq!(history["calls"][1]["startedAt"], "2026-01-01T07:00:00.120Z");
    let all: Value = serde_json::from_str(&escapes_from_answers).expect("JSON");
    let escapes = all["calls"]
        .as_array()
        .and_then(|calls| calls.iter().find(|c| c["id"] == "escapes"))
        .expect("listed");
    assert_eq!(escapes["contactName"], calls[2]["contactName"]);
    assert_eq!(escapes["notes"], calls[2]["notes"]);
    assert_eq!(escapes["startedAt"], "2026-01-01T08:00:00.123456Z");
}

#[tokio::test]
async fn a_call_changed_by_hand_is_never_answered_with_its_old_answer() {
    let app = spawn_app(&[]).await;
    let call = json!({"id": "edited", "contactName": "Eve", "notes": "before",
                      "startedAt": "2026-02-01T10:00:00Z"});
    assert_eq!(app.post_json("/api/calls", &call).await.status, 201);
    let conn = local(&app);
    assert!(stored_answer(&conn, "edited").is_some());

    // As an older version of the service sharing the file, or someone fixing a row, would.
    conn.execute("UPDATE calls SET notes = 'after' WHERE id = 'edited'", [])
        .expect("changed by hand");
    assert_eq!(
        stored_answer(&conn, "edited"),
        None,
        "the old answer is cleared"
    );
    let history: Value =
        serde_json::from_str(&history_text(&app, "?contact=Eve").await).expect("JSON");
    assert_eq!(history["calls"][0]["notes"], "after");

    // Setting the answer along with the columns, as the service does, keeps it.
    conn.execute(
        "UPDATE calls SET notes = 'again', answer = '{\"id\":\"edited\"}' WHERE id = 'edited'",
        [],
    )
    .expect("changed with its answer");
    assert_eq!(
        stored_answer(&conn, "edited").as_deref(),
        Some("{\"id\":\"edited\"}")
    );

    // Opening the file again writes the answers of calls that lack one.
    conn.execute("UPDATE calls SET notes = 'last' WHERE id = 'edited'", [])
        .expect("changed by hand");
    assert_eq!(stored_answer(&conn, "edited"), None);
    let reopened = spawn_app(&[("SQLITE_PATH", &app.sqlite_path.display().to_string())]).await;
    let answer = stored_answer(&conn, "edited").expect("written at opening");
    let answer: Value = serde_json::from_str(&answer).expect("JSON");
    assert_eq!(answer["notes"], "last");
    let history: Value =
        serde_json::from_str(&history_text(&reopened, "?contact=Eve").await).expect("JSON");
    assert_eq!(history["calls"][0], answer);
}

#[tokio::test]
async fn a_backup_from_before_answers_were_kept_is_given_them_and_keeps_its_calls() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join("old.db");
    {
        let conn = rusqlite::Connection::open(&path).expect("create");
        conn.execute_batch(include_str!("fixtures/sqlite-schema-v3.sql"))
            .expect("old schema");
        conn.execute_batch(
            "INSERT INTO calls (id, contact_name, started_at, notes, created_at) VALUES
               ('old-1', 'Olga', '2025-05-01T10:00:00.000000Z', 'kept', '2025-05-01T10:01:00.000000Z'),
               ('old-2', 'Olga', '2025-05-01T09:00:00.000000Z', NULL, '2025-05-01T09:01:00.000000Z');
             INSERT INTO pending_sync (id, queued_at) VALUES ('old-1', '2025-05-01T10:01:00.000000Z');
             PRAGMA user_version = 3;",
        )
        .expect("old rows");
        // More calls than one batch of answers, so that they are written in several.
        let tx = conn.unchecked_transaction().expect("transaction");
        let mut stmt = tx
            .prepare(
                "INSERT INTO calls (id, contact_name, started_at, created_at) \
                 VALUES (?1, 'Many', '2025-04-01T00:00:00.000000Z', '2025-04-01T00:00:00.000000Z')",
            )
            .expect("prepare");
        for i in 0..1_234 {
            stmt.execute([format!("many-{i:04}")]).expect("insert");
        }
        drop(stmt);
        tx.commit().expect("commit");
    }
    let app = spawn_app(&[("SQLITE_PATH", &path.display().to_string())]).await;
    let conn = local(&app);
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, 5);
    let answer =
        stored_answer(&conn, "old-1").expect("written when the file was brought up to date");
    let history: Value =
        serde_json::from_str(&history_text(&app, "?contact=Olga").await).expect("JSON");
    assert_eq!(history["count"], 2);
    assert_eq!(
        history["calls"][0],
        serde_json::from_str::<Value>(&answer).expect("JSON")
    );
    assert_eq!(history["calls"][0]["notes"], "kept");
    assert_eq!(history["calls"][1]["notes"], Value::Null);
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).expect(sql) };
    assert_eq!(
        count("SELECT COUNT(*) FROM pending_sync"),
        1,
        "the journal is kept"
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM calls"),
        1_236,
        "no sample calls are added to a file that had calls"
    );
    assert_eq!(count("SELECT COUNT(*) FROM calls WHERE answer IS NULL"), 0);
    let many: Value =
        serde_json::from_str(&history_text(&app, "?contact=Many&limit=500&offset=1000").await)
            .expect("JSON");
    assert_eq!(many["count"], 234);

    // The migrated file has the trigger too.
    conn.execute("UPDATE calls SET notes = 'changed' WHERE id = 'old-2'", [])
        .expect("changed by hand");
    assert_eq!(stored_answer(&conn, "old-2"), None);
}
