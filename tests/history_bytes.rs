//! The read answers, byte for byte: history and one call on SQLite, pinned against fixtures that
//! were recorded from the code as it was before history was written straight from the rows.
//! The database holds what makes serialisation hard: text to escape, text beyond ASCII, empty
//! strings and nulls, every kind of fractional second, timestamps stored in other RFC 3339 forms
//! than the canonical one, and rows that cannot be read back at all (skipped, never failing the
//! answer).
//!
//! `UPDATE_FIXTURES=1 cargo test --test history_bytes` rewrites the fixtures; only do that for a
//! change of the answers that is meant.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::Request;
use call_history::config::Config;
use tower::ServiceExt;

/// Requests whose answers are pinned, and the fixture file of each.
const PINNED: &[(&str, &str)] = &[
    ("/api/calls/history", "history-default"),
    ("/api/calls/history?limit=500", "history-500"),
    ("/api/calls/history?limit=3&offset=2", "history-page"),
    (
        "/api/calls/history?contact=Zo%C3%AB%20%22Q%22",
        "history-contact",
    ),
    (
        "/api/calls/history?since=2024-11-05T00:00:00Z&until=2024-11-06T00:00:00Z",
        "history-window",
    ),
    ("/api/calls/history?contact=Nobody", "history-empty"),
    (
        "/api/calls/00000000-0000-4000-8000-000000000001",
        "call-sample",
    ),
    ("/api/calls/escapes", "call-escapes"),
    ("/api/calls/offset-time", "call-offset-time"),
    ("/api/calls/bad-date", "call-unreadable"),
];

/// Rows added to the shipped sample: readable ones first, then unreadable ones.
const EXTRA_ROWS: &str = r#"
INSERT INTO calls (id, contact_name, account_name, started_at, duration_seconds, outcome, notes, created_at) VALUES ('escapes', 'Zoë "Q"', 'Back\slash / slash', '2025-01-02T03:04:05.123456Z', 0,
    'tab	and newline
and ' || char(1) || char(31) || char(127) || ' controls', 'emoji 📞 and ' || char(8232) || ' separator', '2025-01-02T03:04:05.120000Z');
INSERT INTO calls (id, contact_name, account_name, started_at, duration_seconds, outcome, notes, created_at) VALUES ('empty-strings', 'E', '', '2025-01-02T03:00:00.000000Z', NULL, '', '', '2025-01-02T03:00:00.100000Z');
INSERT INTO calls (id, contact_name, account_name, started_at, duration_seconds, outcome, notes, created_at) VALUES ('nulls', 'N', NULL, '2025-01-02T02:00:00.000001Z', NULL, NULL, NULL, '2025-01-02T02:00:00.999000Z');
INSERT INTO calls (id, contact_name, account_name, started_at, duration_seconds, outcome, notes, created_at) VALUES ('offset-time', 'Zoë "Q"', 'A', '2025-01-02T05:00:00+02:00', 5, 'connected', 'stored by hand', '2025-01-02T03:00:00.5Z');
INSERT INTO calls (id, contact_name, account_name, started_at, duration_seconds, outcome, notes, created_at) VALUES ('no-fraction', 'F', 'A', '2025-01-01T23:59:59Z', 9223372036854775807, 'x', 'y', '2025-01-01T23:59:59.000000Z');
INSERT INTO calls (id, contact_name, account_name, started_at, duration_seconds, outcome, notes, created_at) VALUES ('leap-day', 'L', 'A', '2024-02-29T12:00:00.000100Z', 1, 'x', 'y', '2024-02-29T12:00:00.000000Z');
INSERT INTO calls (id, contact_name, account_name, started_at, duration_seconds, outcome, notes, created_at) VALUES ('year-one', 'Y', 'A', '0001-01-01T00:00:00.000000Z', 1, 'x', 'y', '0001-01-01T00:00:00.000000Z');
INSERT INTO calls (id, contact_name, account_name, started_at, duration_seconds, outcome, notes, created_at) VALUES ('year-9999', 'Y', 'A', '9999-12-31T23:59:59.999999Z', 1, 'x', 'y', '9999-12-31T23:59:59.999999Z');
INSERT INTO calls (id, contact_name, account_name, started_at, duration_seconds, outcome, notes, created_at) VALUES ('lower-case', 'C', 'A', '2025-01-02T01:00:00.000000z', 1, 'x', 'y', '2025-01-02t01:00:00.000000Z');
INSERT INTO calls (id, contact_name, account_name, started_at, duration_seconds, outcome, notes, created_at) VALUES ('nanos', 'C', 'A', '2025-01-02T00:30:00.123456789Z', 1, 'x', 'y', '2025-01-02T00:30:00.000000Z');
INSERT INTO calls (id, contact_name, account_name, started_at, duration_seconds, outcome, notes, created_at) VALUES ('bad-date', 'B', 'A', '2023-02-29T12:00:00.000000Z', 1, 'x', 'y', '2023-02-29T12:00:00.000000Z');
INSERT INTO calls (id, contact_name, account_name, started_at, duration_seconds, outcome, notes, created_at) VALUES ('bad-hour', 'B', 'A', '2025-01-02T24:00:00.000000Z', 1, 'x', 'y', '2025-01-02T00:00:00.000000Z');
INSERT INTO calls (id, contact_name, account_name, started_at, duration_seconds, outcome, notes, created_at) VALUES ('bad-created', 'B', 'A', '2025-01-02T00:00:00.000000Z', 1, 'x', 'y', 'yesterday');
INSERT INTO calls (id, contact_name, account_name, started_at, duration_seconds, outcome, notes, created_at) VALUES ('bad-utf8', CAST(x'41ff42' AS TEXT), 'A', '2025-01-02T00:10:00.000000Z', 1, 'x', 'y', '2025-01-02T00:00:00.000000Z');
INSERT INTO calls (id, contact_name, account_name, started_at, duration_seconds, outcome, notes, created_at) VALUES ('blob-name', x'4142', 'A', '2025-01-02T00:20:00.000000Z', 1, 'x', 'y', '2025-01-02T00:00:00.000000Z');
INSERT INTO calls (id, contact_name, account_name, started_at, duration_seconds, outcome, notes, created_at) VALUES ('real-duration', 'R', 'A', '2025-01-02T00:40:00.000000Z', 1.5, 'x', 'y', '2025-01-02T00:00:00.000000Z');
INSERT INTO calls (id, contact_name, account_name, started_at, duration_seconds, outcome, notes, created_at) VALUES ('text-duration', 'T', 'A', '2025-01-02T00:50:00.000000Z', '12 s', 'x', 'y', '2025-01-02T00:00:00.000000Z');
INSERT INTO calls (id, contact_name, account_name, started_at, duration_seconds, outcome, notes, created_at) VALUES ('blob-notes', 'T', 'A', '2025-01-02T00:55:00.000000Z', 2, 'x', x'00', '2025-01-02T00:00:00.000000Z');
"#;

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/answers")
        .join(format!("{name}.txt"))
}

/// Status, the headers a client reads, and the body exactly as sent.
async fn answer(router: &axum::Router, uri: &str) -> Vec<u8> {
    let response = router
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let mut text = format!("{}\n", response.status().as_u16()).into_bytes();
    for (name, value) in response.headers() {
        text.extend_from_slice(name.as_str().as_bytes());
        text.extend_from_slice(b": ");
        text.extend_from_slice(value.as_bytes());
        text.push(b'\n');
    }
    text.push(b'\n');
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    text.extend_from_slice(&body);
    text
}

async fn app_on(path: &Path) -> axum::Router {
    let (config, problems) = Config::from_lookup(|name| match name {
        "SQLITE_PATH" => Some(path.display().to_string()),
        _ => None,
    });
    assert!(problems.is_empty(), "{problems:?}");
    call_history::build_app(&config).await.router
}

/// The pinned answers as `router` gives them now, each with its fixture's name.
async fn answers(router: &axum::Router) -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let mut answers = Vec::new();
    for &(uri, name) in PINNED {
        answers.push((uri, name, answer(router, uri).await));
    }
    answers
}

fn calls_without_answer(path: &Path) -> i64 {
    rusqlite::Connection::open(path)
        .expect("open")
        .query_row("SELECT COUNT(*) FROM calls WHERE answer IS NULL", [], |r| {
            r.get(0)
        })
        .expect("count")
}

fn by_hand(path: &Path, sql: &str) {
    rusqlite::Connection::open(path)
        .expect("open")
        .execute_batch(sql)
        .expect("written by hand");
}

/// Every way a call reaches history gives the same bytes: rows added by hand, written from
/// their columns; their answers written when the file is opened again; every answer cleared by
/// hand, all written from the columns again.
#[tokio::test]
async fn read_answers_are_byte_for_byte_what_they_were() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join("answers.db");
    let first = app_on(&path).await;
    assert_eq!(
        calls_without_answer(&path),
        0,
        "the sample's answers are written"
    );
    // Before anything is added: the sample alone, from its stored answers.
    let sample_only = answers(&first).await;
    by_hand(&path, EXTRA_ROWS);
    let added = answers(&first).await;

    let update = std::env::var_os("UPDATE_FIXTURES").is_some();
    if update {
        for (_, name, got) in &added {
            let path = fixture_path(name);
            std::fs::create_dir_all(path.parent().expect("folder")).expect("fixtures folder");
            std::fs::write(&path, got).expect("fixture written");
        }
    }
    let second = app_on(&path).await;
    let unreadable = 8;
    assert_eq!(
        calls_without_answer(&path),
        unreadable,
        "opening the file writes the answers of the readable rows added by hand"
    );
    let reopened = answers(&second).await;
    by_hand(&path, "UPDATE calls SET answer = NULL");
    let cleared = answers(&second).await;

    // Only the sample's calls are in these answers, so they were the same before the rows were
    // added.
    let sample_only = sample_only
        .into_iter()
        .filter(|(_, name, _)| ["history-window", "history-empty", "call-sample"].contains(name))
        .collect::<Vec<_>>();
    assert_eq!(sample_only.len(), 3);
    let mut differing = Vec::new();
    for (how, answers) in [
        ("sample only", &sample_only),
        ("added", &added),
        ("reopened", &reopened),
        ("cleared", &cleared),
    ] {
        for (uri, name, got) in answers {
            let want = std::fs::read(fixture_path(name)).expect("fixture present");
            if *got != want {
                differing.push(format!(
                    "{how}: {uri} ({name}):\n--- want\n{}\n--- got\n{}",
                    String::from_utf8_lossy(&want),
                    String::from_utf8_lossy(got)
                ));
            }
        }
    }
    assert!(differing.is_empty(), "{}", differing.join("\n\n"));
}
