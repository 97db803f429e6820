//! What a client reads when something is wrong: error sentences in the API's own words, and the
//! `X-Data-Source` header on every answer, errors included.

mod common;

use common::{logs, spawn_app};

#[tokio::test]
async fn range_errors_state_the_range_of_that_parameter() {
    let app = spawn_app(&[]).await;
    for (query, error) in [
        (
            "limit=abc",
            "limit must be a whole number from 1 to 500, not \"abc\".",
        ),
        (
            "limit=501",
            "limit must be a whole number from 1 to 500, not \"501\".",
        ),
        (
            "offset=-5",
            "offset must be a whole number from 0 to 4294967295, not \"-5\".",
        ),
    ] {
        let reply = app.get(&format!("/api/calls/history?{query}")).await;
        assert_eq!(reply.status, 400, "{query}");
        assert_eq!(reply.body["error"], error, "{query}");
    }
}

#[tokio::test]
async fn a_body_that_is_not_an_object_is_refused_in_plain_words_and_not_stored() {
    let app = spawn_app(&[]).await;
    let before = app.get("/api/calls/history?limit=500").await.body["count"].clone();
    // An array in field order would otherwise be read as a call.
    for body in [r#"["id-from-array","Ada Lovelace"]"#, "[1,2]"] {
        let reply = app.post("/api/calls", body).await;
        assert_eq!(reply.status, 400, "{body}");
        assert_eq!(
            reply.body["error"],
            "The request body is not a valid call record: it must be a JSON object such as \
             {\"contactName\": \"Ada Lovelace\"}, not a list."
        );
    }
    assert_eq!(app.get("/api/calls/id-from-array").await.status, 404);
    let after = app.get("/api/calls/history?limit=500").await.body["count"].clone();
    assert_eq!(before, after);
}

#[tokio::test]
async fn a_field_of_the_wrong_type_is_named() {
    let app = spawn_app(&[]).await;
    let reply = app
        .post("/api/calls", r#"{"contactName":"Ada","accountName":7}"#)
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.body["error"],
        "The request body is not a valid call record: accountName must be text (a JSON string), \
         not the number 7."
    );
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_both_carry_the_data_source() {
    let app = spawn_app(&[]).await;
    let unknown = app.get("/api/nope").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.body["error"], "There is no endpoint at /api/nope.");
    let wrong_method = app.send(app.client.delete(app.url("/db/status"))).await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(
        wrong_method.body["error"],
        "DELETE is not allowed on /db/status."
    );
    for reply in [&unknown, &wrong_method] {
        assert_eq!(reply.source_header.as_deref(), Some("sqlite"));
        assert_eq!(
            reply.content_type.as_deref(),
            Some("application/json; charset=utf-8")
        );
    }
}

#[tokio::test]
async fn the_log_counts_one_call_in_the_singular() {
    let app = spawn_app(&[]).await;
    let reply = app.get("/api/calls/history?limit=1").await;
    assert_eq!(reply.body["count"], 1);
    let log = logs();
    assert!(log.contains("✅ Found 1 call from sqlite 💾"), "{log}");
    assert!(!log.contains("Found 1 calls"), "{log}");
}

/// Every error a client can cause is one sentence of the API's own words: no Rust type names,
/// no parser jargon.
#[tokio::test]
async fn error_sentences_speak_the_api_language() {
    let app = spawn_app(&[]).await;
    let mut errors = Vec::new();
    for query in [
        "limit=abc",
        "limit=0",
        "offset=x",
        "since=yesterday",
        "until=2024-13-01T00:00:00Z",
        "colour=red",
        "limit=1&limit=2",
        "contact=",
        "since=2024-02-01T00:00:00Z&until=2024-01-01T00:00:00Z",
    ] {
        errors.push(app.get(&format!("/api/calls/history?{query}")).await);
    }
    for body in [
        "",
        "[]",
        "\"text\"",
        "null",
        "{\"contactName\": ",
        "{\"contactName\":\"A\"} {}",
        "{\"contactName\":\"A\",\"colour\":1}",
        "{\"contactName\":\"A\",\"durationSeconds\":-1}",
        "{\"contactName\":\"A\",\"durationSeconds\":\"1\"}",
        "{\"contactName\":\"A\",\"startedAt\":\"noon\"}",
        "{\"contactName\":\"A\",\"id\":\"has space\"}",
        "{\"contactName\":\"  \"}",
        "{}",
    ] {
        errors.push(app.post("/api/calls", body).await);
    }
    errors.push(app.get("/api/calls/has%20space").await);
    errors.push(app.get("/api/calls/no-such-call").await);
    for reply in errors {
        assert!((400..500).contains(&reply.status), "{:?}", reply.body);
        let error = reply.body["error"].as_str().expect("an error sentence");
        assert!(error.ends_with('.'), "one full sentence: {error}");
        for jargon in ["NewCall", "struct", "EOF", "sequence", "u32", "serde"] {
            assert!(!error.contains(jargon), "{jargon} in {error}");
        }
        assert_eq!(reply.source_header.as_deref(), Some("sqlite"), "{error}");
    }
}
