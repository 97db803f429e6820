//! Benchmarks of the service against the spec's budgets. Run by `make bench` (scripts/bench.sh),
//! which also measures HTTP throughput with wrk; results are written as Markdown to the path in
//! `BENCH_OUT` (default bench/results/latest.md).
//!
//! Sections needing PostgreSQL (the Redshift stand-in) run when `DATABASE_URL` is set.

mod support;

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request};
use call_history::store::{Call, HistoryQuery};
use lambda_runtime_local::{LocalLambda, Options};
use redshift_data_local::Fault;
use support::{config, on_standin, OnStandIn};
use tempfile::TempDir;
use tower::ServiceExt;

const HISTORY: &str = "/api/calls/history?limit=50";
/// How long the waits below give what they wait for before the bench fails: many times what
/// it takes, so that only something broken reaches it.
const RECOVERY_LIMIT: Duration = Duration::from_secs(30);
const COLD_START_LIMIT: Duration = Duration::from_secs(10);

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
    time_spaced_requests(router, uri, n, Duration::ZERO).await
}

/// `n` requests one after another, `gap` apart: a steady reader rather than a tight loop, which
/// against a metered warehouse would measure its quotas instead of the service.
async fn time_spaced_requests(
    router: &axum::Router,
    uri: &str,
    n: usize,
    gap: Duration,
) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        tokio::time::sleep(gap).await;
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
    report.section("History on SQLite, in-process (10,000 calls)");
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("bench.db");
    let vars = [("SQLITE_PATH", path.display().to_string())];
    // The app makes the file, the calls go in beside it, and the app opens it again: the way
    // calls added by hand get their answers written.
    drop(call_history::build_app(&config(&vars)).await);
    seed_sqlite(&path, 10_000);
    let app = call_history::build_app(&config(&vars)).await;
    let store = app.store.sqlite().expect("sqlite").clone();
    let conn = rusqlite::Connection::open(&path).expect("open");
    for limit in [50, 500] {
        let uri = format!("/api/calls/history?limit={limit}");
        time_requests(&app.router, &uri, 500).await; // warm caches and prepared statements
        let mut router = time_requests(&app.router, &uri, 5_000).await;
        let router_p50 = percentile(&mut router, 0.50);
        let budget = if limit == 50 { "< 0.3 ms" } else { "" };
        report.row(
            &format!("limit {limit}: router, p50"),
            ms(router_p50),
            budget,
        );
        report.row(
            &format!("limit {limit}: router, p99"),
            ms(percentile(&mut router, 0.99)),
            "",
        );

        let query = HistoryQuery {
            limit,
            ..HistoryQuery::default()
        };
        let mut owned = time_store(5_500, limit, || async {
            store.history(&query).await.expect("history").len()
        })
        .await;
        report.row(
            &format!("limit {limit}: SqliteStore::history (owned calls), p50"),
            ms(percentile(&mut owned, 0.50)),
            "",
        );
        let mut json = time_store(5_500, limit, || async {
            store.history_json(&query).await.expect("history").count()
        })
        .await;
        report.row(
            &format!("limit {limit}: SqliteStore::history_json (the answer's JSON), p50"),
            ms(percentile(&mut json, 0.50)),
            "",
        );

        let mut bare = time_raw_query(&conn, limit, 5_500);
        let bare_p50 = percentile(&mut bare, 0.50);
        report.row(
            &format!(
                "limit {limit}: raw rusqlite query of the same rows (8 columns as owned values, no JSON), p50"
            ),
            ms(bare_p50),
            "",
        );
        report.row(
            &format!("limit {limit}: router ÷ raw query"),
            format!("{:.2}×", router_p50.as_secs_f64() / bare_p50.as_secs_f64()),
            "≤ 2×",
        );
        // The rows hold each call's JSON as well: the least any reader of them could do.
        let mut answers = time_raw_answers(&conn, limit, 5_500);
        let answers_p50 = percentile(&mut answers, 0.50);
        report.row(
            &format!(
                "limit {limit}: raw rusqlite query of the same rows' stored answers (1 column as owned text), p50"
            ),
            ms(answers_p50),
            "",
        );
        report.row(
            &format!("limit {limit}: router ÷ raw query of the stored answers"),
            format!(
                "{:.2}×",
                router_p50.as_secs_f64() / answers_p50.as_secs_f64()
            ),
            "",
        );
    }
}

/// The history query reading only each call's stored answer, into an owned `String`.
fn time_raw_answers(conn: &rusqlite::Connection, limit: u32, n: usize) -> Vec<Duration> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT answer FROM calls ORDER BY started_at DESC, id DESC LIMIT {limit}"
        ))
        .expect("prepare");
    time_reads(n, limit, || {
        let answers: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("every call has its answer");
        answers.len()
    })
}

/// Times `n` calls of a store read, after 500 to warm up, checking each read `expected` rows.
async fn time_store<F, Fut>(n: usize, expected: u32, read: F) -> Vec<Duration>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        let rows = read().await;
        if i >= 500 {
            samples.push(started.elapsed());
        }
        assert_eq!(rows, expected as usize);
    }
    samples
}

/// As [`time_store`], for a read made at once.
fn time_reads(n: usize, expected: u32, mut read: impl FnMut() -> usize) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        let rows = read();
        if i >= 500 {
            samples.push(started.elapsed());
        }
        assert_eq!(rows, expected as usize);
    }
    samples
}

/// The history query straight through rusqlite: every column read into an owned value, as
/// an application without a store in between would (timestamps stay text here).
fn time_raw_query(conn: &rusqlite::Connection, limit: u32, n: usize) -> Vec<Duration> {
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
    let mut stmt = conn
        .prepare(&format!("SELECT id, contact_name, account_name, started_at, duration_seconds, outcome, notes, created_at FROM calls ORDER BY started_at DESC, id DESC LIMIT {limit}"))
        .expect("prepare");
    time_reads(n, limit, || {
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
        rows.len()
    })
}

/// The service on a fresh stand-in, with its backup in a folder of its own (kept as long as the
/// service is).
async fn app_on_standin(admin_url: &str, extra: &[(&str, &str)]) -> (OnStandIn, TempDir) {
    let dir = tempfile::tempdir().expect("tmp");
    let mut vars = vec![("SQLITE_PATH", dir.path().join("b.db").display().to_string())];
    vars.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    (on_standin(admin_url, &vars).await, dir)
}

async fn redshift_paths(report: &mut Report, admin_url: &str) {
    report.section("Redshift path against the stand-in (PostgreSQL behind the Data API)");
    // Long enough for a server-side wait: WaitTimeSeconds never exceeds what is left of the
    // deadline, so with a deadline of a second or less every statement is polled instead.
    let deadline_ms = 1500;
    let deadline = deadline_ms.to_string();
    let (on, _dir) = app_on_standin(
        admin_url,
        &[
            ("REDSHIFT_TIMEOUT_MS", deadline.as_str()),
            ("REDSHIFT_CHECK_INTERVAL_SECS", "1"),
        ],
    )
    .await;
    // The work between requests a deployment does (pulls ahead of readers, replay, metrics):
    // the local server's timer here, the extension after each answer on Lambda.
    on.app.run_upkeep();
    let redshift = on.app.store.redshift().expect("configured");
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
        redshift
            .session()
            .insert_missing(chunk)
            .await
            .expect("seed");
    }
    time_requests(&on.app.router, HISTORY, 20).await;
    let data_api_calls = |standin: &redshift_data_local::StandIn| {
        [
            "ExecuteStatement",
            "GetStatementResult",
            "DescribeStatement",
        ]
        .iter()
        .map(|op| standin.operation_count(op))
        .sum::<usize>()
    };
    let mut samples = time_requests(&on.app.router, HISTORY, 200).await;
    report.row(
        "history from the replica (Redshift healthy, default bound 1 s), p50",
        ms(percentile(&mut samples, 0.50)),
        "as on SQLite",
    );
    report.row(
        "history from the replica, p99",
        ms(percentile(&mut samples, 0.99)),
        "",
    );
    // 20 reads a second for 3 s: what the pulls cost spread over the reads they serve.
    let before = data_api_calls(&on.standin);
    time_spaced_requests(&on.app.router, HISTORY, 60, Duration::from_millis(50)).await;
    let after = data_api_calls(&on.standin);
    report.row(
        "Data API calls per history request at 20 reads/s, the replica's pulls included",
        format!("{:.2}", (after - before) as f64 / 60.0),
        "well under 1 (pulls of 2 calls ahead of readers, about twice a bound, shared by every read)",
    );
    // Every read a statement (READ_MAX_STALENESS_MS=0), as the guide's literal behaviour.
    let (direct, _direct_dir) = app_on_standin(
        admin_url,
        &[
            ("REDSHIFT_TIMEOUT_MS", deadline.as_str()),
            ("READ_MAX_STALENESS_MS", "0"),
        ],
    )
    .await;
    time_requests(&direct.app.router, HISTORY, 20).await;
    // 10 reads a second, within the quotas (GetStatementResult: 20 a second for the account).
    let before = data_api_calls(&direct.standin);
    let mut samples =
        time_spaced_requests(&direct.app.router, HISTORY, 40, Duration::from_millis(100)).await;
    let after = data_api_calls(&direct.standin);
    report.row(
        "history on Redshift itself (READ_MAX_STALENESS_MS=0) at 10 reads/s, p50",
        ms(percentile(&mut samples, 0.50)),
        "",
    );
    report.row(
        "Data API calls per history request on Redshift itself",
        format!("{:.2}", (after - before) as f64 / 40.0),
        "2 (execute with wait, get result)",
    );

    on.standin.set_fault(Fault::Hang);
    // The replica answers until its last pull is a bound old; the first read after that pulls,
    // and meets the hang.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let started = Instant::now();
    let (_, body) = request(&on.app.router, Method::GET, HISTORY).await;
    let first = started.elapsed();
    assert_eq!(body["source"], "sqlite");
    report.row(
        &format!("first request after Redshift hangs (deadline {deadline_ms} ms)"),
        ms(first),
        &format!("< {} ms", deadline_ms + 100),
    );
    let mut after_hang = time_requests(&on.app.router, HISTORY, 200).await;
    report.row(
        "requests after that, until the next probe, p50",
        ms(percentile(&mut after_hang, 0.50)),
        "same as on SQLite",
    );

    on.standin.clear_fault();
    let cleared = Instant::now();
    loop {
        let (_, body) = request(&on.app.router, Method::GET, HISTORY).await;
        if body["source"] == "redshift" {
            break;
        }
        assert!(
            cleared.elapsed() < RECOVERY_LIMIT,
            "still on SQLite {RECOVERY_LIMIT:?} after Redshift came back: {body}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    report.row(
        "Redshift back → first Redshift-served request (check interval 1 s)",
        ms(cleared.elapsed()),
        "≤ interval",
    );

    on.standin.set_fault(Fault::FailStatements("bench".into()));
    request(&on.app.router, Method::GET, HISTORY).await;
    on.standin.clear_fault();
    let retry = Instant::now();
    let (_, body) = request(&on.app.router, Method::POST, "/db/retry-redshift").await;
    assert_eq!(body["currentSource"], "redshift");
    report.row(
        "POST /db/retry-redshift → back on Redshift",
        ms(retry.elapsed()),
        "",
    );
}

/// Cold starts measured for each figure.
const COLD_RUNS: usize = 20;

async fn cold_start(report: &mut Report) {
    let Ok(binary) = std::env::var("BENCH_BINARY") else {
        return;
    };
    report.section("Cold start of the release binary, SQLite (database file missing)");
    let mut local = Vec::new();
    let mut local_cpu = Vec::new();
    let mut peak_kb = 0u64;
    for _ in 0..COLD_RUNS {
        let start = local_cold_start(&binary).await;
        local.push(start.answered);
        local_cpu.push(start.cpu);
        peak_kb = peak_kb.max(start.peak_kb);
    }
    report.row(
        "local server: process start → first answered history request, p50",
        ms(percentile(&mut local, 0.5)),
        "≤ 15 ms (spec: < 50 ms)",
    );
    report.row(
        "local server: CPU time of the process until then, p50",
        ms(percentile(&mut local_cpu, 0.5)),
        "",
    );
    report.row(
        "peak memory (VmHWM) after 200 more requests",
        format!("{:.1} MB", peak_kb as f64 / 1024.0),
        "< 40 MB",
    );

    for (label, redshift) in [
        ("Lambda mode", false),
        ("Lambda mode, Redshift configured", true),
    ] {
        let mut polls = Vec::new();
        let mut answers = Vec::new();
        let mut cpu = Vec::new();
        let mut post_answer = Vec::new();
        for _ in 0..COLD_RUNS {
            let start = lambda_cold_start(&binary, redshift).await;
            polls.push(start.first_poll);
            if let Some(answered) = start.answered {
                answers.push(answered.latency);
                cpu.push(start.cpu);
                post_answer.push(answered.post_answer);
            }
        }
        report.row(
            &format!("{label}: process start → end of init (runtime and extension waiting), p50"),
            ms(percentile(&mut polls, 0.5)),
            "",
        );
        if !answers.is_empty() {
            report.row(
                &format!("{label}: process start → history answered to the Runtime API, p50"),
                ms(percentile(&mut answers, 0.5)),
                "≤ 15 ms",
            );
            report.row(
                &format!("{label}: CPU time of the process until frozen, p50"),
                ms(percentile(&mut cpu, 0.5)),
                "",
            );
            report.row(
                &format!("{label}: answer → environment frozen, p50"),
                ms(percentile(&mut post_answer, 0.5)),
                "",
            );
        }
    }
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// CPU time the process has used so far, all its threads (nanosecond counters in
/// `/proc/<pid>/task/*/schedstat`).
fn cpu_time(pid: u32) -> Duration {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Duration::ZERO;
    };
    let nanos: u64 = tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(nanos)
}

fn peak_memory_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
}

struct LocalStart {
    answered: Duration,
    cpu: Duration,
    peak_kb: u64,
}

/// Starts the binary as a local server on a new database and asks for history until it answers
/// (a connection attempt every 100 µs), then sends 200 more requests to see its peak memory.
async fn local_cold_start(binary: &str) -> LocalStart {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let started = Instant::now();
    let mut child = std::process::Command::new(binary)
        .env_clear()
        .env("PORT", port.to_string())
        .env("SQLITE_PATH", dir.path().join("cold.db"))
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("binary starts");
    let answered = tokio::task::spawn_blocking(move || {
        while !history_answers(port) {
            if started.elapsed() > COLD_START_LIMIT {
                return None;
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        Some(started.elapsed())
    })
    .await
    .expect("poll");
    let Some(answered) = answered else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{binary} did not answer a history request within {COLD_START_LIMIT:?}");
    };
    let cpu = cpu_time(child.id());
    let client = reqwest::Client::new();
    for _ in 0..200 {
        let _ = client
            .get(format!("http://127.0.0.1:{port}{HISTORY}"))
            .send()
            .await;
    }
    let peak_kb = peak_memory_kb(child.id());
    let _ = child.kill();
    let _ = child.wait();
    LocalStart {
        answered,
        cpu,
        peak_kb,
    }
}

/// One history request on a new connection: true when it was answered 200.
fn history_answers(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let request = format!("GET {HISTORY} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let mut answer = Vec::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_end(&mut answer).is_ok()
        && answer.starts_with(b"HTTP/1.1 200")
}

/// The history request as API Gateway (HTTP API, payload 2.0) hands it to the function.
const HISTORY_EVENT: &str = include_str!("../events/calls-history.json");

/// One cold start in Lambda mode, as `lambda-runtime-local` sees it.
struct LambdaStart {
    /// Process start → end of init: the runtime and the registered extension both waiting for
    /// their first event.
    first_poll: Duration,
    /// `None` when the run only measures init.
    answered: Option<LambdaAnswer>,
    cpu: Duration,
}

struct LambdaAnswer {
    /// Process start → the runtime's answer, as the caller sees it.
    latency: Duration,
    /// The answer → the environment frozen: what the process still ran after answering.
    post_answer: Duration,
}

/// The function as the template configures it; init must end within the bench's limit.
fn lambda_options() -> Options {
    Options {
        function_name: "call-history-bench".to_string(),
        memory_size_mb: 256,
        function_timeout: Duration::from_secs(29),
        init_timeout: COLD_START_LIMIT,
        ..Options::default()
    }
}

/// Starts the binary in Lambda mode on a new database, under a local Lambda that freezes it as
/// Lambda does. Without Redshift this is an on-demand cold start: the history event is pending
/// while the binary starts and goes out as init ends. With Redshift configured (an endpoint
/// that refuses connections: this measures what start-up costs, not Redshift) only init is
/// measured.
async fn lambda_cold_start(binary: &str, redshift: bool) -> LambdaStart {
    let lambda = LocalLambda::start(lambda_options())
        .await
        .expect("the local Lambda starts");
    let dir = tempfile::tempdir().expect("tmp");
    let command = lambda_command(binary, &dir, redshift);
    let answered = if redshift {
        lambda.spawn(command).await.expect("init ends");
        None
    } else {
        let event: serde_json::Value = serde_json::from_str(HISTORY_EVENT).expect("JSON event");
        let invocation = lambda
            .cold_start(command, &event)
            .await
            .expect("the cold start");
        let answer = invocation.response.json().expect("a JSON answer");
        assert_eq!(answer["statusCode"], 200, "{answer}");
        Some(LambdaAnswer {
            latency: invocation.latency(),
            post_answer: invocation.post_answer().expect("frozen after the answer"),
        })
    };
    let cpu = lambda.runtime_pid().map(cpu_time).unwrap_or_default();
    let first_poll = lambda.init_duration().expect("init ended");
    lambda.shutdown().await.expect("the environment shuts down");
    LambdaStart {
        first_poll,
        answered,
        cpu,
    }
}

/// The binary with the service's own variables; the local Lambda adds Lambda's.
fn lambda_command(binary: &str, dir: &TempDir, redshift: bool) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(binary);
    command
        .env_clear()
        .env("AWS_LAMBDA_LOG_LEVEL", "INFO")
        .env("SQLITE_PATH", dir.path().join("cold.db"));
    if redshift {
        command
            .env("REDSHIFT_CLUSTER_ID", "bench")
            .env("REDSHIFT_DATABASE", "bench")
            .env("REDSHIFT_DB_USER", "bench")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "bench")
            .env("AWS_SECRET_ACCESS_KEY", "bench")
            .env(
                "AWS_ENDPOINT_URL_REDSHIFT_DATA",
                format!("http://127.0.0.1:{}", free_port()),
            );
    }
    command
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
    sqlite_in_process(&mut report).await;
    cold_start(&mut report).await;
    match std::env::var("DATABASE_URL") {
        Ok(admin_url) => {
            // Replay throughput is bench/journal.rs's to measure.
            redshift_paths(&mut report, &admin_url).await;
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
