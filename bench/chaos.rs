//! A bounded load test under a misbehaving warehouse, on loopback only. Run by `make bench`
//! (needs `DATABASE_URL`, which scripts/bench.sh provides); results go to the Markdown file in
//! `CHAOS_OUT` (default bench/results/chaos.md).
//!
//! 32 clients read and write over HTTP while the Redshift stand-in is switched between working,
//! hanging, answering 503, throttling and being slow every few seconds. 1 % of the writes carry
//! values the API refuses (a NUL, year 0) and 1 % carry notes longer than the warehouse's
//! (narrowed) column: Redshift refuses those when it serves, and sets them aside at replay when
//! the backup took them. Afterwards the warehouse is audited: every acknowledged write is there
//! exactly once with its values, except the ones set aside, which are exactly the refused ones.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redshift_data_local::Fault;
use serde_json::{json, Value};

mod support;

const CLIENTS: usize = 32;
const RUN_FOR: Duration = Duration::from_secs(40);
const PHASE: Duration = Duration::from_secs(4);
const DEADLINE_MS: u64 = 1500;
/// The warehouse's notes column in this run, narrower than the service's own schema.
const NARROW_NOTES: usize = 1000;

/// What the clients saw.
#[derive(Default)]
struct Tally {
    statuses: HashMap<u16, u64>,
    /// Acknowledged writes: id, and the call as acknowledged.
    acknowledged: HashMap<String, Value>,
    /// Ids of acknowledged writes with notes the warehouse refuses.
    too_long: Vec<String>,
    refused_by_api: u64,
    refused_by_redshift: u64,
    /// Latency per phase (fault name).
    latencies: HashMap<&'static str, Vec<Duration>>,
    requests: u64,
    unexpected: Vec<String>,
    /// Requests over the budget: what they were, in which phase, when, and how long they took.
    over_budget: Vec<SlowRequest>,
}

struct SlowRequest {
    took: Duration,
    phase: &'static str,
    what: &'static str,
    started_after: Duration,
}

/// What a request may take: the deadline, and the margin for answering from the backup.
const BUDGET: Duration = Duration::from_millis(DEADLINE_MS + 100);

fn phases() -> Vec<(&'static str, Option<Fault>)> {
    vec![
        ("ok", None),
        ("hang", Some(Fault::Hang)),
        ("ok", None),
        ("5xx", Some(Fault::HttpStatus(503))),
        ("throttle", Some(Fault::Throttle)),
        ("ok", None),
        ("slow 700 ms", Some(Fault::Slow(Duration::from_millis(700)))),
        ("ok", None),
        ("hang", Some(Fault::Hang)),
        ("ok", None),
    ]
}

#[tokio::main]
async fn main() {
    let Ok(admin_url) = std::env::var("DATABASE_URL") else {
        eprintln!("chaos: DATABASE_URL is not set (make bench starts PostgreSQL); skipped");
        return;
    };
    // The service's log, for a run with `RUST_LOG` set (make bench turns it off).
    call_history::logging::init(false);
    let dir = tempfile::tempdir().expect("tmp");
    let support::OnStandIn {
        standin,
        app,
        database_url,
    } = support::on_standin(
        &admin_url,
        &[
            ("REDSHIFT_TIMEOUT_MS", DEADLINE_MS.to_string()),
            ("REDSHIFT_CHECK_INTERVAL_SECS", "2".to_string()),
            (
                "SQLITE_PATH",
                dir.path().join("chaos.db").display().to_string(),
            ),
        ],
    )
    .await;
    // Replays and pulls between requests, as the local server and Lambda's extension do.
    app.run_upkeep();
    let (pg, connection) = tokio_postgres::connect(&database_url, tokio_postgres::NoTls)
        .await
        .expect("postgres");
    tokio::spawn(connection);
    pg.batch_execute(&format!(
        "ALTER TABLE calls ALTER COLUMN notes TYPE VARCHAR({NARROW_NOTES})"
    ))
    .await
    .expect("narrow the column");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let router = app.router.clone();
    tokio::spawn(async move { axum::serve(listener, router).await });

    let tally = Arc::new(Mutex::new(Tally::default()));
    let phase_name = Arc::new(Mutex::new("ok"));
    let started = Instant::now();
    tracing::info!("chaos: the clients start");
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (tally, phase_name, base) = (tally.clone(), phase_name.clone(), base.clone());
            tokio::spawn(
                async move { run_client(client, &base, &tally, &phase_name, started).await },
            )
        })
        .collect();
    for (name, fault) in phases().into_iter().cycle() {
        if started.elapsed() >= RUN_FOR {
            break;
        }
        *phase_name.lock().expect("phase") = name;
        match fault {
            Some(fault) => standin.set_fault(fault),
            None => standin.clear_fault(),
        }
        tokio::time::sleep(PHASE).await;
    }
    standin.clear_fault();
    for client in clients {
        client.await.expect("client");
    }

    // Back to Redshift with an empty journal, then the audit.
    let http = reqwest::Client::new();
    let recovery_started = Instant::now();
    loop {
        let status = db_status(&http, &base).await;
        if status["currentSource"] == "redshift" && status["sync"]["pendingWrites"] == 0 {
            break;
        }
        assert!(
            recovery_started.elapsed() < Duration::from_secs(120),
            "recovery: {status}"
        );
        http.post(format!("{base}/db/retry-redshift"))
            .send()
            .await
            .expect("retry");
    }
    let recovery = recovery_started.elapsed();
    let status = db_status(&http, &base).await;
    let tally = std::mem::take(&mut *tally.lock().expect("tally"));
    let audit = audit(&pg, &tally).await;
    let report = report(&tally, &status, &audit, recovery);
    print!("{report}");
    let out = std::env::var("CHAOS_OUT").unwrap_or_else(|_| "bench/results/chaos.md".into());
    std::fs::write(&out, report).expect("write results");
    println!("results written to {out}");
}

async fn db_status(http: &reqwest::Client, base: &str) -> Value {
    let response = http.get(format!("{base}/db/status")).send().await;
    response.expect("status").json().await.expect("JSON")
}

async fn run_client(
    client: usize,
    base: &str,
    tally: &Mutex<Tally>,
    phase_name: &Mutex<&'static str>,
    started: Instant,
) {
    let http = reqwest::Client::new();
    let mut n = 0usize;
    let mut mine: Vec<String> = Vec::new();
    while started.elapsed() < RUN_FOR {
        n += 1;
        let phase = *phase_name.lock().expect("phase");
        let kind = (client * 7919 + n * 104_729) % 100;
        let request_started = Instant::now();
        let what = match kind {
            0..30 => "write",
            30..65 => "history",
            _ if mine.is_empty() => "history",
            _ => "by id",
        };
        let outcome = if kind < 30 {
            write(&http, base, client, n, kind, tally).await.map(|id| {
                if let Some(id) = id {
                    mine.push(id);
                }
            })
        } else if kind < 65 || mine.is_empty() {
            read(&http, &format!("{base}/api/calls/history?limit=20"))
                .await
                .map(|_| ())
        } else {
            let id = &mine[n % mine.len()];
            read(&http, &format!("{base}/api/calls/{id}"))
                .await
                .and_then(|status| {
                    // An acknowledged write is never 404.
                    if status == 404 {
                        Err(format!("{id} acknowledged, then 404"))
                    } else {
                        Ok(())
                    }
                })
        };
        let took = request_started.elapsed();
        let mut tally = tally.lock().expect("tally");
        tally.requests += 1;
        tally.latencies.entry(phase).or_default().push(took);
        if took > BUDGET {
            tally.over_budget.push(SlowRequest {
                took,
                phase,
                what,
                started_after: request_started.duration_since(started),
            });
        }
        if let Err(problem) = outcome {
            tally.unexpected.push(problem);
        }
    }
}

async fn read(http: &reqwest::Client, url: &str) -> Result<u16, String> {
    let response = http.get(url).send().await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    if status >= 500 {
        return Err(format!("GET {url}: {status}"));
    }
    Ok(status)
}

/// One write; the id when it was acknowledged.
async fn write(
    http: &reqwest::Client,
    base: &str,
    client: usize,
    n: usize,
    kind: usize,
    tally: &Mutex<Tally>,
) -> Result<Option<String>, String> {
    let id = format!("chaos-{client:02}-{n:05}");
    // 1 % refused by the API, 1 % refused by the warehouse (its column is narrower).
    let refused_by_api = kind == 0;
    let too_long = kind == 1;
    let notes = if too_long {
        "n".repeat(NARROW_NOTES + 1)
    } else {
        format!("note {n}")
    };
    let body = if refused_by_api {
        json!({"id": id, "contactName": "Chaos\u{0}Carl", "notes": notes})
    } else {
        json!({"id": id, "contactName": format!("Chaos {}", client % 5), "notes": notes, "outcome": "", "durationSeconds": n})
    };
    let response = http
        .post(format!("{base}/api/calls"))
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let reply: Value = response.json().await.map_err(|e| e.to_string())?;
    let mut tally = tally.lock().expect("tally");
    *tally.statuses.entry(status).or_default() += 1;
    match status {
        201 | 200 if !refused_by_api => {
            tally.acknowledged.insert(id.clone(), reply["call"].clone());
            if too_long {
                tally.too_long.push(id.clone());
            }
            Ok(Some(id))
        }
        400 if refused_by_api => {
            tally.refused_by_api += 1;
            Ok(None)
        }
        400 if too_long
            && reply["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("Redshift refused")) =>
        {
            tally.refused_by_redshift += 1;
            Ok(None)
        }
        other => Err(format!("POST {id}: {other} {reply}")),
    }
}

/// Copies, contact, notes, outcome, duration of one id in the warehouse.
type StoredRow = (i64, String, Option<String>, Option<String>, Option<i64>);

struct Audit {
    in_warehouse: usize,
    exactly_once_with_values: usize,
    missing: Vec<String>,
    duplicated: Vec<String>,
    differing: Vec<String>,
    set_aside_missing_as_expected: usize,
}

async fn audit(pg: &tokio_postgres::Client, tally: &Tally) -> Audit {
    let rows = pg
        .query(
            "SELECT id, COUNT(*), MIN(contact_name), MIN(notes), MIN(outcome), MIN(duration_seconds) FROM calls GROUP BY id",
            &[],
        )
        .await
        .expect("audit query");
    let stored: HashMap<String, StoredRow> = rows
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3), r.get(4), r.get(5))))
        .collect();
    let mut audit = Audit {
        in_warehouse: stored.len(),
        exactly_once_with_values: 0,
        missing: Vec::new(),
        duplicated: stored
            .iter()
            .filter(|(_, v)| v.0 > 1)
            .map(|(k, _)| k.clone())
            .collect(),
        differing: Vec::new(),
        set_aside_missing_as_expected: 0,
    };
    for (id, call) in &tally.acknowledged {
        match stored.get(id) {
            None if tally.too_long.contains(id) => audit.set_aside_missing_as_expected += 1,
            None => audit.missing.push(id.clone()),
            Some((1, contact, notes, outcome, duration)) => {
                let same = call["contactName"] == json!(contact)
                    && call["notes"] == json!(notes)
                    && call["outcome"] == json!(outcome)
                    && call["durationSeconds"] == json!(duration);
                if same {
                    audit.exactly_once_with_values += 1;
                } else {
                    audit.differing.push(id.clone());
                }
            }
            Some(_) => {}
        }
    }
    audit
}

fn report(tally: &Tally, status: &Value, audit: &Audit, recovery: Duration) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Load under a misbehaving warehouse\n");
    let _ = writeln!(
        out,
        "Run: `make bench` (bench/chaos.rs). Date: {}. Loopback only: {CLIENTS} clients for {} s; the stand-in \
         switched every {} s through ok, hang, ok, 503, throttle, ok, slow (700 ms a call), ok, hang, ok; \
         deadline {DEADLINE_MS} ms, check interval 2 s. 30 % writes (1 % with values the API refuses, 1 % with \
         notes longer than the warehouse's {NARROW_NOTES}-byte column), 35 % history, 35 % reads of the client's \
         own acknowledged writes.\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        RUN_FOR.as_secs(),
        PHASE.as_secs()
    );
    let fives: u64 = tally
        .statuses
        .iter()
        .filter(|(s, _)| **s >= 500)
        .map(|(_, n)| n)
        .sum();
    let _ = writeln!(out, "| measure | value | expected |\n|---|---|---|");
    let mut row = |measure: &str, value: String, expected: &str| {
        let _ = writeln!(out, "| {measure} | {value} | {expected} |");
    };
    row("requests", tally.requests.to_string(), "");
    row("5xx answers", fives.to_string(), "0");
    row(
        "other unexpected answers (404 for an acknowledged write, wrong status)",
        tally.unexpected.len().to_string(),
        "0",
    );
    row(
        "writes acknowledged",
        tally.acknowledged.len().to_string(),
        "",
    );
    row(
        "writes refused by the API (400)",
        tally.refused_by_api.to_string(),
        "all with a NUL",
    );
    row(
        "writes refused by Redshift while it served (400)",
        tally.refused_by_redshift.to_string(),
        "",
    );
    row(
        "acknowledged writes in the warehouse exactly once, values equal",
        audit.exactly_once_with_values.to_string(),
        "all but the set-aside",
    );
    row(
        "acknowledged writes missing from the warehouse",
        audit.missing.len().to_string(),
        "0",
    );
    row("ids stored twice", audit.duplicated.len().to_string(), "0");
    row(
        "acknowledged writes stored with other values",
        audit.differing.len().to_string(),
        "0",
    );
    row(
        "acknowledged over-long writes set aside (not in the warehouse)",
        audit.set_aside_missing_as_expected.to_string(),
        "= sync.rejectedWrites",
    );
    row(
        "sync.rejectedWrites in /db/status",
        status["sync"]["rejectedWrites"].to_string(),
        "",
    );
    row("rows in the warehouse", audit.in_warehouse.to_string(), "");
    row(
        "fallbacks / recoveries",
        format!(
            "{} / {}",
            status["fallback"]["fallbacks"], status["fallback"]["recoveries"]
        ),
        "",
    );
    row(
        "faults cleared → back on Redshift, journal empty",
        format!("{:.1} s", recovery.as_secs_f64()),
        "",
    );
    let _ = writeln!(out, "\n## Latency by phase\n\n| phase | requests | p50 | p99 | max | budget (deadline + 100 ms) |\n|---|---|---|---|---|---|");
    let mut names: Vec<_> = tally.latencies.keys().copied().collect();
    names.sort();
    for name in names {
        let mut samples = tally.latencies[name].clone();
        samples.sort();
        let at = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize];
        let max = samples[samples.len() - 1];
        let _ = writeln!(
            out,
            "| {name} | {} | {:.1} ms | {:.1} ms | {:.1} ms | {} |",
            samples.len(),
            at(0.5).as_secs_f64() * 1e3,
            at(0.99).as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3,
            if max <= BUDGET { "met" } else { "exceeded" }
        );
    }
    if !tally.over_budget.is_empty() {
        let _ = writeln!(
            out,
            "\nOver the budget (the phase is the one the request started in):\n"
        );
        for slow in &tally.over_budget {
            let _ = writeln!(
                out,
                "- {}, {:.1} s into the run, in phase {}: {:.1} ms",
                slow.what,
                slow.started_after.as_secs_f64(),
                slow.phase,
                slow.took.as_secs_f64() * 1e3
            );
        }
    }
    if !tally.unexpected.is_empty() || !audit.missing.is_empty() || !audit.differing.is_empty() {
        let _ = writeln!(out, "\n## Problems\n");
        for problem in tally
            .unexpected
            .iter()
            .chain(&audit.missing)
            .chain(&audit.differing)
            .take(20)
        {
            let _ = writeln!(out, "- {problem}");
        }
    }
    out
}
