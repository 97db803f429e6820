//! `call-history seed-redshift` against the stand-in: a fresh warehouse gets the sample calls the
//! backup ships with, once, so that Redshift and SQLite show the same history.

mod common;

use std::collections::BTreeSet;

use call_history::seed_redshift::{sample_calls, seed, SeedReport};
use common::{spawn_app_on, Redshift};
use serde_json::Value;

fn ids(reply: &Value) -> BTreeSet<String> {
    reply["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_string())
        .collect()
}

#[tokio::test]
async fn sample_calls_are_loaded_once_and_both_databases_then_agree() {
    let redshift = Redshift::start(1000).await;
    let app = spawn_app_on(&redshift, &[]).await;
    let store = app.store.redshift().expect("configured");
    let shipped = sample_calls().await.expect("sample calls").len();
    assert_eq!(redshift.row_count().await, 0, "a fresh warehouse is empty");

    let first = seed(store).await.expect("seeded");
    assert_eq!(
        first,
        SeedReport {
            sample_calls: shipped,
            added: shipped as i64
        }
    );
    assert_eq!(redshift.row_count().await, shipped as i64);

    // Again: nothing added, nothing doubled.
    let again = seed(store).await.expect("seeded again");
    assert_eq!(again.added, 0);
    assert_eq!(redshift.row_count().await, shipped as i64);

    let on_redshift = app.get("/api/calls/history?limit=500").await;
    assert_eq!(on_redshift.body["source"], "redshift");
    app.post("/db/force-sqlite", "").await;
    let on_sqlite = app.get("/api/calls/history?limit=500").await;
    assert_eq!(on_sqlite.body["source"], "sqlite");
    assert_eq!(on_redshift.body["count"], shipped);
    assert_eq!(ids(&on_redshift.body), ids(&on_sqlite.body));
    assert_eq!(
        on_redshift.body["calls"], on_sqlite.body["calls"],
        "the same calls, field for field"
    );
}

#[tokio::test]
async fn calls_recorded_before_seeding_are_kept_as_they_are() {
    let redshift = Redshift::start(1000).await;
    let app = spawn_app_on(&redshift, &[]).await;
    let store = app.store.redshift().expect("configured");
    let sample = sample_calls().await.expect("sample calls");
    // A call already in the warehouse under a sample id, with other content: seeding keeps it.
    let mine = serde_json::json!({"id": sample[0].id, "contactName": "Someone Else"});
    let created = app.post_json("/api/calls", &mine).await;
    assert_eq!(
        (created.status, created.body["source"].as_str()),
        (201, Some("redshift"))
    );

    let report = seed(store).await.expect("seeded");
    assert_eq!(report.added, sample.len() as i64 - 1);
    assert_eq!(redshift.copies_of(&sample[0].id).await, 1);
    let kept = app.get(&format!("/api/calls/{}", sample[0].id)).await;
    assert_eq!(kept.body["call"]["contactName"], "Someone Else");
}
