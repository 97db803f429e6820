//! Replay throughput of the journal, with the backup on its own (WAL, as in /tmp) and shared by
//! several environments (rollback journal and a replay lease, as on EFS; here on local disk).
//! Run by `make bench` (needs `DATABASE_URL`); results go to the Markdown file in `JOURNAL_OUT`
//! (default bench/results/journal.md).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use call_history::store::Call;

mod support;

const ROWS: usize = 5_000;
/// How long the replay may take before the bench fails: many times what it takes, so that only
/// a replay that stopped making progress reaches it.
const REPLAY_LIMIT: Duration = Duration::from_secs(120);

struct Measured {
    elapsed: Duration,
    statements: usize,
    requests: usize,
}

async fn replay(admin_url: &str, shared: bool) -> Measured {
    let dir = tempfile::tempdir().expect("tmp");
    let support::OnStandIn { standin, app, .. } = support::on_standin(
        admin_url,
        &[
            ("REDSHIFT_TIMEOUT_MS", "5000".to_string()),
            (
                "SQLITE_PATH",
                dir.path().join("journal.db").display().to_string(),
            ),
            ("SQLITE_SHARED", shared.to_string()),
        ],
    )
    .await;
    let sqlite = app.store.sqlite().expect("backup");
    let now = chrono::Utc::now();
    for i in 0..ROWS {
        let call = Call {
            id: format!("journal-{i:05}"),
            contact_name: format!("Contact {}", i % 97),
            account_name: Some(String::new()),
            started_at: call_history::store::truncate_to_micros(
                now - chrono::Duration::seconds(i as i64),
            ),
            duration_seconds: Some(i as i64),
            outcome: Some("connected".into()),
            notes: Some(format!("written during the outage, number {i}")),
            created_at: call_history::store::truncate_to_micros(now),
        };
        sqlite.insert(&call).await.expect("journaled");
    }
    app.store.journal().recount(&sqlite).await;
    let submitted = || {
        standin.operation_count("ExecuteStatement")
            + standin.operation_count("BatchExecuteStatement")
    };
    let before = submitted();
    let started = Instant::now();
    let mut requests = 0;
    while app.store.journal().pending() > 0 {
        assert!(
            started.elapsed() < REPLAY_LIMIT,
            "{} rows still pending after {REPLAY_LIMIT:?} of replay",
            app.store.journal().pending()
        );
        requests += 1;
        app.store.replay().await.expect("replay");
    }
    let measured = Measured {
        elapsed: started.elapsed(),
        statements: submitted() - before,
        requests,
    };
    standin.shutdown().await;
    measured
}

#[tokio::main]
async fn main() {
    let Ok(admin_url) = std::env::var("DATABASE_URL") else {
        eprintln!("journal: DATABASE_URL is not set (make bench starts PostgreSQL); skipped");
        return;
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Replay of the journal\n\nRun: `make bench` (bench/journal.rs). Date: {}. {ROWS} journaled writes replayed to the \
         stand-in (PostgreSQL behind the Data API, on this machine) by one environment, one deadline (5 s) per replay \
         call, batches of {} rows.\n\n| backup | rows per second | statements per 1,000 rows | replay calls | total |\n|---|---|---|---|---|",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        call_history::store::journal::REPLAY_BATCH
    );
    for (name, shared) in [
        ("on its own (WAL, /tmp)", false),
        ("shared (rollback journal, lease; EFS mode)", true),
    ] {
        let m = replay(&admin_url, shared).await;
        let line = format!(
            "| {name} | {:.0} | {:.0} | {} | {:.0} ms |",
            ROWS as f64 / m.elapsed.as_secs_f64(),
            m.statements as f64 * 1000.0 / ROWS as f64,
            m.requests,
            m.elapsed.as_secs_f64() * 1e3
        );
        println!("{line}");
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(
        out,
        "\nOn EFS each SQLite write is a network round trip (typically 1–5 ms), so a shared backup's own writes \
         (marking a batch replayed, the lease) cost more there than here; the Data API's round trips dominate either way."
    );
    let path = std::env::var("JOURNAL_OUT").unwrap_or_else(|_| "bench/results/journal.md".into());
    std::fs::write(&path, out).expect("write results");
    println!("results written to {path}");
}
