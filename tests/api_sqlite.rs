//! Every endpoint over real HTTP, with Redshift not configured: SQLite is primary.

mod common;

use common::{logs, spawn_app, spawn_app_with};
use serde_json::json;

#[tokio::test]
async fn status_and_healthz_describe_sqlite_primary() {
    let app = spawn_app(&[]).await;

    let status = app.get("/db/status").await;
    assert_eq!(status.status, 200);
    assert_eq!(status.source_header.as_deref(), Some("sqlite"));
    assert_eq!(
        status.content_type.as_deref(),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(status.body["currentSource"], "sqlite");
    assert_eq!(status.body["sourceEmoji"], "💾");
    assert_eq!(status.body["sourceName"], "SQLite (Local Backup)");
    assert_eq!(status.body["databases"]["activeSource"], "sqlite");
    assert_eq!(status.body["databases"]["redshift"]["available"], false);
    assert_eq!(
        status.body["databases"]["redshift"]["message"],
        "Not configured"
    );
    assert_eq!(
        status.body["databases"]["sqlite"],
        json!({"available": true, "writable": true, "message": "Connected"})
    );
    assert_eq!(
        status.body["message"],
        "⚠️ Running on local backup - Redshift unavailable"
    );

    let health = app.get("/db/healthz").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.body["status"], "healthy");
    assert_eq!(health.body["activeSource"], "sqlite");
    assert_eq!(
        health.body["databases"]["redshift"],
        json!({"available": false, "message": "Not configured", "emoji": "❌"})
    );
    assert_eq!(
        health.body["databases"]["sqlite"],
        json!({"available": true, "message": "Connected", "emoji": "✅"})
    );
    assert_eq!(health.body["message"], "💾 Using SQLite (backup)");
}

#[tokio::test]
async fn history_serves_shipped_sample_newest_first_with_filters() {
    let app = spawn_app(&[]).await;
    let history = app.get("/api/calls/history").await;
    assert_eq!(history.status, 200);
    assert_eq!(history.source_header.as_deref(), Some("sqlite"));
    assert_eq!(history.body["source"], "sqlite");
    assert_eq!(history.body["message"], "Using local backup database");
    let calls = history.body["calls"].as_array().expect("calls array");
    assert_eq!(calls.len(), 15);
    assert_eq!(history.body["count"], 15);
    let starts: Vec<&str> = calls
        .iter()
        .map(|c| c["startedAt"].as_str().unwrap())
        .collect();
    let mut sorted = starts.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(starts, sorted, "newest first");
    for field in [
        "id",
        "contactName",
        "accountName",
        "startedAt",
        "durationSeconds",
        "outcome",
        "notes",
        "createdAt",
    ] {
        assert!(calls[0].get(field).is_some(), "field {field} present");
    }

    let page = app.get("/api/calls/history?limit=3&offset=2").await;
    let page_ids: Vec<&str> = page.body["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    let all_ids: Vec<&str> = calls.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(page_ids, all_ids[2..5]);

    let ada = app.get("/api/calls/history?contact=Ada%20Lovelace").await;
    let ada_calls = ada.body["calls"].as_array().unwrap();
    assert_eq!(ada_calls.len(), 2);
    assert!(ada_calls.iter().all(|c| c["contactName"] == "Ada Lovelace"));

    let window = app
        .get("/api/calls/history?since=2024-11-05T00:00:00Z&until=2024-11-06T00:00:00Z")
        .await;
    let window_calls = window.body["calls"].as_array().unwrap();
    assert_eq!(window_calls.len(), 3);
    assert!(window_calls
        .iter()
        .all(|c| c["startedAt"].as_str().unwrap().starts_with("2024-11-05")));
}

#[tokio::test]
async fn history_refuses_bad_parameters_in_words() {
    let app = spawn_app(&[]).await;
    for (query, words) in [
        ("limit=0", "limit must be a whole number from 1 to 500"),
        ("limit=501", "limit must be a whole number from 1 to 500"),
        ("limit=abc", "limit must be a whole number"),
        ("offset=-5", "offset must be a whole number"),
        ("since=yesterday", "since must be an RFC 3339 timestamp"),
        ("until=2024-13-01", "until must be an RFC 3339 timestamp"),
        ("colour=red", "Unknown query parameter \"colour\""),
        ("limit=5&limit=6", "more than once"),
        (
            "since=2024-02-01T00:00:00Z&until=2024-01-01T00:00:00Z",
            "since must not be later than until",
        ),
    ] {
        let reply = app.get(&format!("/api/calls/history?{query}")).await;
        assert_eq!(reply.status, 400, "{query}");
        let error = reply.body["error"].as_str().expect("error text");
        assert!(error.contains(words), "{query}: {error}");
        assert_eq!(
            reply.source_header.as_deref(),
            Some("sqlite"),
            "header on errors too"
        );
    }
}

#[tokio::test]
async fn record_then_read_back_and_idempotent_retries() {
    let app = spawn_app(&[]).await;
    let body = json!({
        "contactName": "Grace Hopper", "accountName": "Navy", "durationSeconds": 300,
        "outcome": "connected", "notes": "Discussed COBOL", "startedAt": "2026-01-02T03:04:05.678Z"
    });
    let created = app.post_json("/api/calls", &body).await;
    assert_eq!(created.status, 201);
    assert_eq!(created.source_header.as_deref(), Some("sqlite"));
    assert_eq!(created.body["source"], "sqlite");
    let call = &created.body["call"];
    let id = call["id"].as_str().expect("server id");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "server ids are UUIDs");
    assert_eq!(call["startedAt"], "2026-01-02T03:04:05.678Z");
    assert!(call["createdAt"].as_str().unwrap().ends_with('Z'));

    let fetched = app.get(&format!("/api/calls/{id}")).await;
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.body["call"], *call);
    assert_eq!(fetched.body["source"], "sqlite");

    let newest = app.get("/api/calls/history?limit=1").await;
    assert_eq!(newest.body["calls"][0]["id"], id);

    // Client-chosen id: first 201, the same again 200 with the stored call, a different body 409.
    let with_id = json!({"id": "crm-42", "contactName": "Alan Turing", "durationSeconds": 12});
    let first = app.post_json("/api/calls", &with_id).await;
    assert_eq!(first.status, 201);
    let again = app.post_json("/api/calls", &with_id).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["call"], first.body["call"]);
    let changed = app
        .post_json(
            "/api/calls",
            &json!({"id": "crm-42", "contactName": "Alan Turing", "durationSeconds": 13}),
        )
        .await;
    assert_eq!(changed.status, 409);
    assert!(changed.body["error"].as_str().unwrap().contains("crm-42"));
    let history = app.get("/api/calls/history?contact=Alan%20Turing").await;
    let stored: Vec<_> = history.body["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["id"] == "crm-42")
        .collect();
    assert_eq!(stored.len(), 1, "stored exactly once");
    assert_eq!(stored[0]["durationSeconds"], 12);
}

#[tokio::test]
async fn bad_bodies_get_clear_400s_and_nothing_is_stored() {
    let app = spawn_app(&[]).await;
    for (body, words) in [
        (r#"{"contactName": "#, "not valid JSON"),
        ("", "empty"),
        (r#"{"durationSeconds": 10}"#, "contactName is required"),
        (r#"{"contactName": ""}"#, "contactName must not be blank"),
        (
            r#"{"contactName":"X","colour":"red"}"#,
            "unknown field `colour`",
        ),
        (
            r#"{"contactName":"X","durationSeconds":-1}"#,
            "durationSeconds must be a whole number",
        ),
        (
            r#"{"contactName":"X","durationSeconds":"ten"}"#,
            "not a valid call record",
        ),
        (
            r#"{"contactName":"X","startedAt":"noon"}"#,
            "startedAt must be an RFC 3339 timestamp",
        ),
        (
            r#"{"contactName":"X","id":"no spaces allowed"}"#,
            "call id must be",
        ),
        (r#"{"contactName": 7}"#, "not a valid call record"),
        (r#"["contactName"]"#, "not a valid call record"),
    ] {
        let reply = app.post("/api/calls", body).await;
        assert_eq!(reply.status, 400, "{body}");
        let error = reply.body["error"].as_str().expect("error text");
        assert!(error.contains(words), "{body}: {error}");
    }
    let too_long_notes = json!({"contactName": "X", "notes": "n".repeat(10_001)});
    assert_eq!(
        app.post_json("/api/calls", &too_long_notes).await.status,
        400
    );
    let huge = json!({"contactName": "X", "notes": "n".repeat(300 * 1024)});
    let reply = app.post_json("/api/calls", &huge).await;
    assert_eq!(reply.status, 413);
    assert!(reply.body["error"]
        .as_str()
        .unwrap()
        .contains("larger than"));

    let history = app.get("/api/calls/history?limit=500").await;
    assert_eq!(history.body["count"], 15, "no bad request stored anything");
}

#[tokio::test]
async fn unknown_ids_routes_and_methods() {
    let app = spawn_app(&[]).await;
    let missing = app
        .get("/api/calls/0f0f0f0f-0000-4000-8000-00000000dead")
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.source_header.as_deref(), Some("sqlite"));
    assert!(missing.body["error"]
        .as_str()
        .unwrap()
        .contains("No call with id"));

    let garbled = app.get("/api/calls/%FF%FE").await;
    assert_eq!(garbled.status, 400);
    assert!(garbled.body["error"]
        .as_str()
        .unwrap()
        .contains("not valid text"));

    let route = app.get("/nope").await;
    assert_eq!(route.status, 404);
    assert_eq!(route.body["error"], "There is no endpoint at /nope.");

    let method = app.send(app.client.delete(app.url("/db/status"))).await;
    assert_eq!(method.status, 405);
    assert!(method.body["error"]
        .as_str()
        .unwrap()
        .contains("DELETE is not allowed"));
    let method = app.get("/db/force-sqlite").await;
    assert_eq!(method.status, 405);
}

/// The guide's "Testing the Fallback", Test 1 and Test 2, as a user runs them locally.
#[tokio::test]
async fn guide_walkthrough_without_redshift() {
    let app = spawn_app(&[]).await;
    let forced = app.post("/db/force-sqlite", "").await;
    assert_eq!(forced.status, 200);
    assert_eq!(forced.body["message"], "Switched to SQLite backup database");
    assert_eq!(forced.body["source"], "sqlite");
    // The answer, the log and the status tell one story: nothing was forced.
    assert_eq!(
        forced.body["note"],
        "Redshift is not configured; already serving from SQLite"
    );
    assert!(logs().contains("💾 Redshift is not configured; already serving from SQLite"));
    let status = app.get("/db/status").await;
    assert_eq!(status.body["currentSource"], "sqlite");
    assert_eq!(
        status.body["databases"]["redshift"]["message"],
        "Not configured"
    );
    assert_eq!(status.body["databases"]["redshift"]["forced"], false);
    assert_eq!(status.body["fallback"]["forcedSwitches"], 0);
    let history = app.get("/api/calls/history").await;
    assert_eq!(history.body["source"], "sqlite");

    let retried = app.post("/db/retry-redshift", "").await;
    assert_eq!(retried.status, 200);
    assert_eq!(retried.body["message"], "Retrying Redshift connection");
    assert_eq!(
        retried.body["currentSource"], "sqlite",
        "no Redshift to return to"
    );
    assert_eq!(app.get("/db/status").await.body["currentSource"], "sqlite");
    let log = logs();
    assert!(log.contains("📊 Fetching call history (with automatic fallback)..."));
    assert!(log.contains("💾 Executing query on local SQLite"));
    assert!(log.contains("✅ Found 15 calls from sqlite 💾"));
}

#[tokio::test]
async fn admin_endpoints_need_the_token_when_one_is_set() {
    let token = "an-admin-token-of-some-length";
    let app = spawn_app(&[("ADMIN_TOKEN", token)]).await;
    let none = app.post("/db/force-sqlite", "").await;
    assert_eq!(none.status, 401);
    assert!(none.body["error"]
        .as_str()
        .unwrap()
        .contains("Authorization: Bearer"));
    let wrong = app
        .send(
            app.client
                .post(app.url("/db/retry-redshift"))
                .bearer_auth("guess"),
        )
        .await;
    assert_eq!(wrong.status, 403);
    let right = app
        .send(
            app.client
                .post(app.url("/db/force-sqlite"))
                .bearer_auth(token),
        )
        .await;
    assert_eq!(right.status, 200);
    assert!(!logs().contains(token), "the token never reaches a log");
}

#[tokio::test]
async fn admin_endpoints_refuse_inside_lambda_without_a_token() {
    let app = spawn_app(&[("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")]).await;
    let reply = app.post("/db/force-sqlite", "").await;
    assert_eq!(reply.status, 403);
    let error = reply.body["error"].as_str().unwrap();
    assert!(error.contains("no admin token is configured"), "{error}");
    // Reads stay open.
    assert_eq!(app.get("/db/status").await.status, 200);
}

#[tokio::test]
async fn cold_start_materialises_a_missing_database_and_replaces_an_unreadable_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested-missing.db");
    assert!(!path.exists());
    let app = spawn_app(&[("SQLITE_PATH", path.to_str().unwrap())]).await;
    assert_eq!(app.get("/api/calls/history").await.body["count"], 15);
    assert!(path.exists(), "materialised on cold start");

    let garbage = dir.path().join("garbage.db");
    std::fs::write(
        &garbage,
        b"this is not a SQLite database, just some bytes that are long enough".repeat(100),
    )
    .unwrap();
    let app = spawn_app(&[("SQLITE_PATH", garbage.to_str().unwrap())]).await;
    let history = app.get("/api/calls/history").await;
    assert_eq!(history.body["source"], "sqlite");
    assert_eq!(history.body["count"], 15);
    assert!(
        dir.path().join("garbage.unreadable").exists(),
        "the bad file is kept aside"
    );
}

#[tokio::test]
async fn a_warm_restart_keeps_recorded_calls() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keep.db");
    let vars = [("SQLITE_PATH", path.to_str().unwrap())];
    let app = spawn_app(&vars).await;
    let created = app
        .post_json("/api/calls", &json!({"contactName": "Barbara Liskov"}))
        .await;
    assert_eq!(created.status, 201);
    drop(app);
    let again = spawn_app(&vars).await;
    let id = created.body["call"]["id"].as_str().unwrap();
    assert_eq!(again.get(&format!("/api/calls/{id}")).await.status, 200);
}

#[tokio::test]
async fn with_no_database_reads_are_empty_and_writes_refused() {
    let app = spawn_app_with(
        &[("SQLITE_PATH", "/nonexistent-folder/for/sure/local_crm.db")],
        &[],
    )
    .await;
    let history = app.get("/api/calls/history").await;
    assert_eq!(history.status, 200);
    assert_eq!(history.source_header.as_deref(), Some("unavailable"));
    assert_eq!(
        history.body,
        json!({"calls": [], "count": 0, "source": "unavailable", "message": "No database available", "asOf": null})
    );

    let one = app
        .get("/api/calls/00000000-0000-4000-8000-000000000001")
        .await;
    assert_eq!(one.status, 200);
    assert_eq!(
        one.body,
        json!({"call": null, "source": "unavailable", "asOf": null})
    );

    let write = app
        .post_json("/api/calls", &json!({"contactName": "Nobody"}))
        .await;
    assert_eq!(write.status, 503);
    assert_eq!(write.source_header.as_deref(), Some("unavailable"));
    assert!(write.body["error"].as_str().unwrap().contains("not stored"));

    let health = app.get("/db/healthz").await;
    assert_eq!(health.status, 503);
    assert_eq!(health.body["status"], "unhealthy");
    assert_eq!(health.body["message"], "❌ No database available");
    let status = app.get("/db/status").await;
    assert_eq!(status.body["currentSource"], "unavailable");
    assert_eq!(status.body["sourceEmoji"], "❌");
    assert_eq!(status.body["message"], "❌ No database available");
}

#[tokio::test]
async fn concurrent_writes_are_all_kept() {
    let app = std::sync::Arc::new(spawn_app(&[]).await);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.post_json(
                "/api/calls",
                &json!({"id": format!("burst-{i}"), "contactName": "Burst"}),
            )
            .await
            .status
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 201);
    }
    let burst = app.get("/api/calls/history?contact=Burst&limit=500").await;
    assert_eq!(burst.body["count"], 40);
}
