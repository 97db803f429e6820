//! Every sample API Gateway event in `events/` goes through the function's Lambda entry (the
//! event's repair, lambda_http's conversion, the router, the answer's conversion) and gets the
//! status that `events/expected.json` records.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use call_history::config::Config;
use serde_json::Value;

async fn invoke(event_file: &Path, sqlite_path: &Path) -> (u16, Option<String>, Value) {
    let vars = [
        ("ADMIN_TOKEN", "example-admin-token".to_string()),
        ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001".to_string()),
        ("SQLITE_PATH", sqlite_path.display().to_string()),
        // As `make watch` runs it: the events resend and filter on the sample calls.
        ("SQLITE_SEED", "sample".to_string()),
    ];
    let (config, problems) = Config::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    });
    assert!(problems.is_empty(), "{problems:?}");
    let app = call_history::build_app(&config).await;
    let event = std::fs::read_to_string(event_file).expect("event readable");
    let answer = common::invoke_lambda(&app.router, &event).await;
    let source = answer.header("x-data-source").map(str::to_string);
    (answer.status(), source, answer.json())
}

#[tokio::test]
async fn every_event_gets_its_expected_answer() {
    let events = Path::new(env!("CARGO_MANIFEST_DIR")).join("events");
    let expected: BTreeMap<String, u16> =
        serde_json::from_str(&std::fs::read_to_string(events.join("expected.json")).unwrap())
            .unwrap();
    let on_disk = std::fs::read_dir(&events).unwrap().filter(|e| {
        let name = e.as_ref().unwrap().file_name();
        name != "expected.json"
    });
    assert_eq!(
        on_disk.count(),
        expected.len(),
        "every event file has an expected status"
    );

    for (file, want) in &expected {
        let dir = tempfile::tempdir().unwrap();
        let (status, source, body) = invoke(&events.join(file), &dir.path().join("crm.db")).await;
        assert_eq!(status, *want, "{file}: {body}");
        if status >= 400 {
            assert!(
                body["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{file}: error in words"
            );
        }
        assert_eq!(source.as_deref(), Some("sqlite"), "{file}: X-Data-Source");
    }
}

#[tokio::test]
async fn event_bodies_reach_the_handler_intact() {
    let events = Path::new(env!("CARGO_MANIFEST_DIR")).join("events");
    let dir = tempfile::tempdir().unwrap();
    let (_, _, created) = invoke(&events.join("calls-create.json"), &dir.path().join("a.db")).await;
    assert_eq!(created["call"]["contactName"], "Grace Hopper");
    assert_eq!(created["call"]["durationSeconds"], 300);

    let (_, _, got) = invoke(&events.join("calls-get.json"), &dir.path().join("b.db")).await;
    assert_eq!(got["call"]["id"], "00000000-0000-4000-8000-000000000001");

    let (_, _, history) = invoke(
        &events.join("calls-history-query.json"),
        &dir.path().join("c.db"),
    )
    .await;
    let calls = history["calls"].as_array().unwrap();
    assert!(!calls.is_empty());
    assert!(calls.iter().all(|c| c["contactName"] == "Ada Lovelace"));
}
