//! `make watch` then `make invoke`, as often as a person likes: one function instance keeps its
//! database between invocations, and every sample event in `events/` must get the status
//! `events/expected.json` records on the first send and on every send after it.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use call_history::config::Config;

/// Sends the event through the Lambda entry of an already built app.
async fn invoke(router: &axum::Router, event_file: &Path) -> u16 {
    let event = std::fs::read_to_string(event_file).expect("event readable");
    common::invoke_lambda(router, &event).await.status()
}

#[tokio::test]
async fn every_event_gets_its_expected_status_again_and_again_on_one_database() {
    let events = Path::new(env!("CARGO_MANIFEST_DIR")).join("events");
    let expected: BTreeMap<String, u16> =
        serde_json::from_str(&std::fs::read_to_string(events.join("expected.json")).unwrap())
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sqlite_path = dir.path().join("watch.db").display().to_string();
    // As under `make watch`: inside the Lambda runtime, with the sample events' admin token.
    let vars = [
        ("ADMIN_TOKEN", "example-admin-token"),
        ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
        ("SQLITE_PATH", sqlite_path.as_str()),
        ("SQLITE_SEED", "sample"),
    ];
    let (config, problems) = Config::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    });
    assert!(problems.is_empty(), "{problems:?}");
    let app = call_history::build_app(&config).await;

    for round in 1..=2 {
        for (file, want) in &expected {
            let status = invoke(&app.router, &events.join(file)).await;
            assert_eq!(status, *want, "{file}, send number {round}");
        }
    }
}
