//! Benchmarks of the service against the spec's budgets. Run by `make bench` (scripts/bench.sh),
//! which also measures HTTP throughput with wrk; results are written as Markdown to the path in
//! `BENCH_OUT` (default bench/results/latest.md).
//!
//! Sections needing PostgreSQL (the Redshift stand-in) run when `DATABASE_URL` is set.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request};
use call_history::config::Config;
use call_history::store::{Call, CallStore, HistoryQuery};
use redshift_data_local::{create_scratch_database, Fault, Options, StandIn};
use tower::ServiceExt;

const HISTORY: &str = "/api/calls/history?limit=50";

struct Report(String);

impl Report {
    fn section(&mut self, title: &str) {
        let _ = write!(
            self.0,
            "\n## {title}\n\n| measure | value | budget |\n|---|---|---|\n"
        );
    }
    fn row(&mut self, measure: &str, value: String, budget: &str) {
        println!("{measure}: {value} (budget: {budget})");
        let _ = writeln!(self.0, "| {measure} | {value} | {budget} |");
    }
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn config(vars: &[(&str, String)]) -> Config {
    let (config, problems) = Config::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    });
    assert!(problems.is_empty(), "{problems:?}");
    config
}

/// Fills a new local database with `n` calls in one transaction.
fn seed_sqlite(path: &Path, n: usize) {
    let conn = rusqlite::Connection::open(path).expect("open");
    let tx = conn.unchecked_transaction().expect("transaction");
    {
        let mut stmt = tx
            .prepare(
                "INSERT OR IGNORE INTO calls (id, contact_name, account_name, started_at, duration_seconds, outcome, notes, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'connected', ?6, ?4)",
            )
            .expect("prepare");
        let start = chrono::Utc::now();
        for i in 0..n {
            let at = (start - chrono::Duration::seconds(i as i64 * 37))
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            stmt.execute(rusqlite::params![
                format!("bench-{i:06}"),
                format!("Contact {}", i % 500),
                format!("Account {}", i % 50),
                at,
                (i % 1800) as i64,
                format!("Benchmark call number {i} with a sentence of notes."),
            ])
            .expect("insert");
        }
    }
    tx.commit().expect("commit");
}

/// One request through the router, with its parsed JSON answer.
async fn request(router: &axum::Router, method: Method, uri: &str) -> (u16, serde_json::Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .expect("request");
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

/// Times whole requests, up to the last byte of the body (not parsed: that is the client's cost).
async fn time_requests(router: &axum::Router, uri: &str, n: usize) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let response = router
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        samples.push(started.elapsed());
        assert_eq!(status, 200);
        assert!(!body.is_empty());
    }
    samples
}

async fn sqlite_in_process(report: &mut Report) {
    report.section("History on SQLite, in-process (limit 50, 10,000 calls)");
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("bench.db");
    let app =
        call_history::build_app(&config(&[("SQLITE_PATH", path.display().to_string())])).await;
    seed_sqlite(&path, 10_000);
    time_requests(&app.router, HISTORY, 500).await; // warm caches and prepared statements
    let mut samples = time_requests(&app.router, HISTORY, 5_000).await;
    report.row(
        "router, p50",
        ms(percentile(&mut samples, 0.50)),
        "< 0.3 ms",
    );
    report.row("router, p99", ms(percentile(&mut samples, 0.99)), "");

    // The same rows straight from rusqlite, for comparison.
    let store = app.store.sqlite().expect("sqlite").clone();
    let query = HistoryQuery::default();
    let mut raw = Vec::new();
    for i in 0..5_500 {
        let started = Instant::now();
        let calls: Vec<Call> = store.history(&query).await.expect("history");
        if i >= 500 {
            raw.push(started.elapsed());
        }
        assert_eq!(calls.len(), 50);
    }
    report.row(
        "SqliteStore::history, p50",
        ms(percentile(&mut raw, 0.50)),
        "",
    );
    let conn = rusqlite::Connection::open(&path).expect("open");
    let mut stmt = conn
        .prepare("SELECT id, contact_name, account_name, started_at, duration_seconds, outcome, notes, created_at FROM calls ORDER BY started_at DESC, id DESC LIMIT 50")
        .expect("prepare");
    let mut bare = Vec::new();
    for i in 0..5_500 {
        let started = Instant::now();
        // Every column, as the store reads them (timestamps stay text here).
        type Row = (
            String,
            String,
            Option<String>,
            String,
            Option<i64>,
            Option<String>,
            Option<String>,
            String,
        );
        let rows: Vec<Row> = stmt
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ))
            })
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        if i >= 500 {
            bare.push(started.elapsed());
        }
        assert_eq!(rows.len(), 50);
    }
    report.row(
        "raw rusqlite query of the same rows (8 columns, no JSON), p50",
        ms(percentile(&mut bare, 0.50)),
        "",
    );
}

struct OnStandIn {
    standin: StandIn,
    router: axum::Router,
    store: std::sync::Arc<call_history::store::failover::FailoverStore>,
    _dir: tempfile::TempDir,
}

async fn app_on_standin(admin_url: &str, extra: &[(&str, &str)]) -> OnStandIn {
    let database_url = create_scratch_database(admin_url)
        .await
        .expect("scratch database");
    let standin = StandIn::start(Options::new(database_url))
        .await
        .expect("stand-in");
    std::env::set_var("AWS_ENDPOINT_URL_REDSHIFT_DATA", standin.data_api_url());
    std::env::set_var("AWS_ENDPOINT_URL_CLOUDWATCH", standin.cloudwatch_url());
    let dir = tempfile::tempdir().expect("tmp");
    let mut vars: Vec<(&str, String)> = vec![
        ("REDSHIFT_CLUSTER_ID", "bench".into()),
        ("REDSHIFT_DATABASE", "bench".into()),
        ("REDSHIFT_DB_USER", "bench".into()),
        ("SQLITE_PATH", dir.path().join("b.db").display().to_string()),
    ];
    vars.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let app = call_history::build_app(&config(&vars)).await;
    app.store
        .redshift()
        .expect("configured")
        .apply_schema()
        .await
        .expect("schema");
    OnStandIn {
        standin,
        router: app.router,
        store: app.store,
        _dir: dir,
    }
}

async fn redshift_paths(report: &mut Report, admin_url: &str) {
    report.section("Redshift path against the stand-in (PostgreSQL behind the Data API)");
    let deadline_ms = 1000;
    let on = app_on_standin(
        admin_url,
        &[
            ("REDSHIFT_TIMEOUT_MS", "1000"),
            ("REDSHIFT_CHECK_INTERVAL_SECS", "1"),
        ],
    )
    .await;
    let redshift = on.store.redshift().expect("configured");
    let calls: Vec<Call> = (0..200)
        .map(|i| Call {
            id: format!("rs-{i}"),
            contact_name: format!("Contact {}", i % 20),
            account_name: Some("Bench".into()),
            started_at: call_history::store::truncate_to_micros(
                chrono::Utc::now() - chrono::Duration::minutes(i),
            ),
            duration_seconds: Some(i),
            outcome: None,
            notes: None,
            created_at: call_history::store::truncate_to_micros(chrono::Utc::now()),
        })
        .collect();
    for chunk in calls.chunks(100) {
        redshift.insert_missing(chunk).await.expect("seed");
    }
    time_requests(&on.router, HISTORY, 20).await;
    let before = on.standin.operation_count("ExecuteStatement")
        + on.standin.operation_count("GetStatementResult")
        + on.standin.operation_count("DescribeStatement");
    let mut samples = time_requests(&on.router, HISTORY, 200).await;
    let after = on.standin.operation_count("ExecuteStatement")
        + on.standin.operation_count("GetStatementResult")
        + on.standin.operation_count("DescribeStatement");
    report.row(
        "history on Redshift, p50",
        ms(percentile(&mut samples, 0.50)),
        "",
    );
    report.row(
        "history on Redshift, p99",
        ms(percentile(&mut samples, 0.99)),
        "",
    );
    report.row(
        "Data API calls per history request",
        format!("{:.2}", (after - before) as f64 / 200.0),
        "2 (execute with wait, get result)",
    );

    on.standin.set_fault(Fault::Hang);
    let started = Instant::now();
    let (_, body) = request(&on.router, Method::GET, HISTORY).await;
    let first = started.elapsed();
    assert_eq!(body["source"], "sqlite");
    report.row(
        &format!("first request after Redshift hangs (deadline {deadline_ms} ms)"),
        ms(first),
        &format!("< {} ms", deadline_ms + 100),
    );
    let mut after_hang = time_requests(&on.router, HISTORY, 200).await;
    report.row(
        "requests after that, until the next probe, p50",
        ms(percentile(&mut after_hang, 0.50)),
        "same as on SQLite",
    );

    on.standin.clear_fault();
    let cleared = Instant::now();
    loop {
        let (_, body) = request(&on.router, Method::GET, HISTORY).await;
        if body["source"] == "redshift" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    report.row(
        "Redshift back → first Redshift-served request (check interval 1 s)",
        ms(cleared.elapsed()),
        "≤ interval",
    );

    on.standin.set_fault(Fault::FailStatements("bench".into()));
    request(&on.router, Method::GET, HISTORY).await;
    on.standin.clear_fault();
    let retry = Instant::now();
    let (_, body) = request(&on.router, Method::POST, "/db/retry-redshift").await;
    assert_eq!(body["currentSource"], "redshift");
    report.row(
        "POST /db/retry-redshift → back on Redshift",
        ms(retry.elapsed()),
        "",
    );
}

async fn replay_throughput(report: &mut Report, admin_url: &str) {
    report.section("Replay of writes taken during an outage (5,000 rows)");
    let on = app_on_standin(admin_url, &[("REDSHIFT_TIMEOUT_MS", "20000")]).await;
    request(&on.router, Method::POST, "/db/force-sqlite").await;
    let sqlite = on.store.sqlite().expect("sqlite");
    let now = chrono::Utc::now();
    for i in 0..5_000 {
        let call = Call {
            id: format!("replay-{i:05}"),
            contact_name: format!("Contact {}", i % 100),
            account_name: Some("Replay Co".into()),
            started_at: call_history::store::truncate_to_micros(now - chrono::Duration::seconds(i)),
            duration_seconds: Some(i),
            outcome: Some("connected".into()),
            notes: Some(format!("written during the outage, number {i}")),
            created_at: call_history::store::truncate_to_micros(now),
        };
        sqlite.insert(&call).await.expect("journaled");
    }
    let submitted = || {
        on.standin.operation_count("ExecuteStatement")
            + on.standin.operation_count("BatchExecuteStatement")
    };
    let statements_before = submitted();
    let started = Instant::now();
    let mut replayed = 0;
    while replayed < 5_000 {
        let report = on.store.replay().await.expect("replay");
        replayed += report.replayed;
    }
    let elapsed = started.elapsed();
    let statements = submitted() - statements_before;
    report.row(
        "rows per second",
        format!("{:.0}", 5_000.0 / elapsed.as_secs_f64()),
        "",
    );
    report.row(
        "Data API statements per 1,000 rows",
        format!("{:.0}", statements as f64 / 5.0),
        "",
    );
    report.row("total", ms(elapsed), "");
}

async fn cold_start(report: &mut Report) {
    let Ok(binary) = std::env::var("BENCH_BINARY") else {
        return;
    };
    report.section("Cold start of the release binary, SQLite (database file missing)");
    let mut starts = Vec::new();
    let mut peak_kb = 0u64;
    for run in 0..10 {
        let dir = tempfile::tempdir().expect("tmp");
        let port = 18_000 + run;
        let started = Instant::now();
        let mut child = std::process::Command::new(&binary)
            .env_clear()
            .env("PORT", port.to_string())
            .env("SQLITE_PATH", dir.path().join("cold.db"))
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("binary starts");
        let client = reqwest::Client::new();
        loop {
            if let Ok(response) = client
                .get(format!("http://127.0.0.1:{port}{HISTORY}"))
                .send()
                .await
            {
                if response.status() == 200 {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        starts.push(started.elapsed());
        for _ in 0..200 {
            let _ = client
                .get(format!("http://127.0.0.1:{port}{HISTORY}"))
                .send()
                .await;
        }
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
        if let Some(kb) = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        {
            peak_kb = peak_kb.max(kb);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    report.row(
        "process start → first answered history request, p50 of 10",
        ms(percentile(&mut starts, 0.5)),
        "< 50 ms",
    );
    report.row(
        "peak memory (VmHWM) after 200 requests",
        format!("{:.1} MB", peak_kb as f64 / 1024.0),
        "< 40 MB",
    );
}

#[tokio::main]
async fn main() {
    // Quiet: the service's per-request logs would dominate the timings.
    let mut report = Report(format!(
        "# Benchmark results\n\nMachine: {} cores. Run: `make bench`. Date: {}.\n",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    ));
    std::env::set_var("AWS_ACCESS_KEY_ID", "bench");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "bench");
    std::env::set_var("AWS_REGION", "us-east-1");
    sqlite_in_process(&mut report).await;
    cold_start(&mut report).await;
    match std::env::var("DATABASE_URL") {
        Ok(admin_url) => {
            redshift_paths(&mut report, &admin_url).await;
            replay_throughput(&mut report, &admin_url).await;
        }
        Err(_) => println!("DATABASE_URL not set: Redshift sections skipped"),
    }
    let out = std::env::var("BENCH_OUT").unwrap_or_else(|_| "bench/results/latest.md".into());
    if let Some(parent) = Path::new(&out).parent() {
        std::fs::create_dir_all(parent).expect("results folder");
    }
    std::fs::write(&out, report.0).expect("results written");
    println!("results written to {out}");
}
