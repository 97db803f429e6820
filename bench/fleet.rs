//! A fleet of Lambda environments against one metered warehouse: several processes of the
//! release binary (each its own backup file, or one shared file as on EFS), the Redshift
//! stand-in enforcing AWS's Data API quotas with 150 ms statements and 10 ms calls, and a steady
//! load of history reads and writes spread over the environments. Reports what the spec's scale
//! budget asks: answers from the backup, throttled calls, read latency, Data API calls per
//! request, how soon a write made in one environment is in every other's history, and an audit
//! of the warehouse. Results go to `bench/results/fleet.md`.
//!
//! Needs DATABASE_URL (scripts/bench.sh starts PostgreSQL) and BENCH_BINARY (the release
//! binary). BENCH_FLEET_SECONDS (default 30) sets each run's length.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redshift_data_local::{create_scratch_database, Options, StandIn};
use serde_json::{json, Value};

/// One run of the fleet: its shape and its load.
struct Scenario {
    name: &'static str,
    environments: usize,
    shared_file: bool,
    reads_per_second: u32,
    writes_per_second: u32,
}

const SCENARIOS: [Scenario; 2] = [
    Scenario {
        name: "4 environments, each its own file",
        environments: 4,
        shared_file: false,
        reads_per_second: 80,
        writes_per_second: 4,
    },
    Scenario {
        name: "16 environments, one shared file",
        environments: 16,
        shared_file: true,
        reads_per_second: 400,
        writes_per_second: 4,
    },
];

/// What the stand-in does per statement and per call, as the spec's scale budget has it.
const STATEMENT_TIME: Duration = Duration::from_millis(150);
const ROUND_TRIP: Duration = Duration::from_millis(10);
/// Every acknowledged write in every other environment's history within this.
const VISIBILITY_BUDGET: Duration = Duration::from_secs(2);
const DATA_API_OPERATIONS: [&str; 5] = [
    "ExecuteStatement",
    "BatchExecuteStatement",
    "DescribeStatement",
    "GetStatementResult",
    "CancelStatement",
];

/// One environment: a process of the release binary on a port of its own.
struct Environment {
    child: tokio::process::Child,
    base: String,
}

impl Drop for Environment {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// What the load saw.
#[derive(Default)]
struct Observed {
    read_latencies: Vec<Duration>,
    reads_by_source: BTreeMap<String, usize>,
    unexpected: Vec<String>,
    /// Acknowledged writes: id, the environment that took it, when it was acknowledged.
    writes: Vec<(String, usize, Instant)>,
    write_sources: BTreeMap<String, usize>,
    /// When each environment first showed each write in its history.
    first_seen: HashMap<(String, usize), Instant>,
}

#[tokio::main]
async fn main() {
    let admin = std::env::var("DATABASE_URL").expect("DATABASE_URL (scripts/bench.sh sets it)");
    let binary = std::env::var("BENCH_BINARY").expect("BENCH_BINARY (scripts/bench.sh sets it)");
    let seconds: u64 = std::env::var("BENCH_FLEET_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let mut report = String::from("# A fleet of environments against one metered warehouse\n\n");
    let _ = writeln!(
        report,
        "Run: `make bench` (bench/fleet.rs). Date: {} UTC. The release binary, one process per \
         environment, default settings (`READ_MAX_STALENESS_MS` 1000). The stand-in enforces the \
         Data API's account quotas (ExecuteStatement 30/s, BatchExecuteStatement 20/s, \
         GetStatementResult 20/s, DescribeStatement 100/s, CancelStatement 10/s), each \
         statement runs {} ms and each call takes {} ms. Each run: {seconds} s of steady writes and \
         history reads (`limit=50`) spread evenly over the environments, after one read each to \
         warm up; the reads go on 3 s after the last write, then one `limit=500` read per \
         environment. Visibility: from a write's 201 to the first read of each other \
         environment that shows it. All on this 2-core machine, loopback only.\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M"),
        STATEMENT_TIME.as_millis(),
        ROUND_TRIP.as_millis()
    );
    let mut calls_per_second = Vec::new();
    for scenario in &SCENARIOS {
        let (section, data_api_rate) =
            run(scenario, &admin, &binary, Duration::from_secs(seconds)).await;
        report.push_str(&section);
        calls_per_second.push((scenario.name, data_api_rate));
    }
    let _ = writeln!(
        report,
        "\nData API calls per second: {} (budget: the shared file's no higher than the 4 \
         environments').",
        calls_per_second
            .iter()
            .map(|(name, rate)| format!("{rate:.1} with {name}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/results/fleet.md");
    std::fs::write(&out, &report).expect("results written");
    print!("{report}");
    eprintln!("results written to {}", out.display());
}

/// One scenario: a fresh warehouse and fleet, the load, the report's section, and the Data API
/// calls per second it cost.
async fn run(scenario: &Scenario, admin: &str, binary: &str, length: Duration) -> (String, f64) {
    let database_url = create_scratch_database(admin)
        .await
        .expect("scratch database");
    let mut options = Options::new(database_url.clone());
    options.statement_time = STATEMENT_TIME;
    options.round_trip = ROUND_TRIP;
    let standin = StandIn::start(options).await.expect("stand-in");
    let dir = tempfile::tempdir().expect("temporary folder");
    migrate(binary, &standin, dir.path()).await;
    let fleet = start_fleet(scenario, binary, &standin, dir.path()).await;
    let client = reqwest::Client::new();
    for environment in &fleet {
        get_json(&client, &format!("{}/api/calls/history", environment.base)).await;
    }
    let before = operation_counts(&standin);
    let throttles_before = throttle_count(&standin);
    let observed = Arc::new(Mutex::new(Observed::default()));
    let started = Instant::now();
    load(scenario, &fleet, &client, Arc::clone(&observed), length).await;
    let elapsed = started.elapsed();
    let after = operation_counts(&standin);
    let throttles = throttle_count(&standin) - throttles_before;
    let calls: usize = DATA_API_OPERATIONS
        .iter()
        .map(|op| after[*op] - before[*op])
        .sum();
    let observed = Arc::try_unwrap(observed)
        .ok()
        .expect("the load is over")
        .into_inner()
        .expect("not poisoned");
    let audit = audit(&database_url, &observed).await;
    let rate = calls as f64 / elapsed.as_secs_f64();
    let section = section(scenario, &observed, calls, throttles, rate, &audit);
    drop(fleet);
    standin.shutdown().await;
    (section, rate)
}

/// Creates the warehouse's tables with the binary's own `migrate`.
async fn migrate(binary: &str, standin: &StandIn, dir: &std::path::Path) {
    let status = service_command(binary, standin)
        .arg("migrate")
        .env("SQLITE_PATH", dir.join("migrate.db"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .expect("migrate runs");
    assert!(status.success(), "migrate failed");
}

fn service_command(binary: &str, standin: &StandIn) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(binary);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("REDSHIFT_CLUSTER_ID", "fleet")
        .env("REDSHIFT_DATABASE", "fleet")
        .env("REDSHIFT_DB_USER", "fleet")
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL_REDSHIFT_DATA", standin.data_api_url())
        .env("AWS_ENDPOINT_URL_CLOUDWATCH", standin.cloudwatch_url())
        .env("RUST_LOG", "warn");
    command
}

async fn start_fleet(
    scenario: &Scenario,
    binary: &str,
    standin: &StandIn,
    dir: &std::path::Path,
) -> Vec<Environment> {
    let mut fleet = Vec::with_capacity(scenario.environments);
    for i in 0..scenario.environments {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a free port")
            .local_addr()
            .expect("its address")
            .port();
        let file = match scenario.shared_file {
            true => dir.join("shared.db"),
            false => dir.join(format!("env-{i}.db")),
        };
        let child = service_command(binary, standin)
            .env("PORT", port.to_string())
            .env("SQLITE_PATH", file)
            .env("SQLITE_SHARED", scenario.shared_file.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the environment starts");
        fleet.push(Environment {
            child,
            base: format!("http://127.0.0.1:{port}"),
        });
    }
    let client = reqwest::Client::new();
    for environment in &fleet {
        let healthz = format!("{}/db/healthz", environment.base);
        let mut waited = Duration::ZERO;
        while client.get(&healthz).send().await.is_err() {
            assert!(
                waited < Duration::from_secs(20),
                "an environment did not start"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
            waited += Duration::from_millis(25);
        }
    }
    fleet
}

/// Steady load: each environment gets its share of reads on a timer of its own, and writes go
/// round the environments on another; reads record which writes they show.
async fn load(
    scenario: &Scenario,
    fleet: &[Environment],
    client: &reqwest::Client,
    observed: Arc<Mutex<Observed>>,
    length: Duration,
) {
    // Writes stop at `writes_until`; reads go on a little longer, so that the last writes'
    // visibility is measured by the same steady reads as the others'.
    let writes_until = Instant::now() + length;
    let reads_until = writes_until + VISIBILITY_BUDGET + Duration::from_secs(1);
    let per_environment =
        Duration::from_secs_f64(scenario.environments as f64 / scenario.reads_per_second as f64);
    let mut tasks = Vec::new();
    for (index, environment) in fleet.iter().enumerate() {
        let (client, observed) = (client.clone(), Arc::clone(&observed));
        let url = format!("{}/api/calls/history?limit=50", environment.base);
        tasks.push(tokio::spawn(async move {
            let mut timer = tokio::time::interval(per_environment);
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut reads = Vec::new();
            while Instant::now() < reads_until {
                timer.tick().await;
                let (client, url, observed) = (client.clone(), url.clone(), Arc::clone(&observed));
                reads.push(tokio::spawn(async move {
                    read(&client, &url, index, &observed).await
                }));
            }
            for read in reads {
                let _ = read.await;
            }
        }));
    }
    let bases: Vec<String> = fleet.iter().map(|e| e.base.clone()).collect();
    let writes_every = Duration::from_secs_f64(1.0 / scenario.writes_per_second as f64);
    let (writer, writes_observed) = (client.clone(), Arc::clone(&observed));
    tasks.push(tokio::spawn(async move {
        // Open-loop: each write leaves on its tick whatever earlier ones still wait for (a
        // write is two statements on Redshift at 150 ms each, longer than a tick), so the
        // fleet gets the rate the scenario names.
        let mut timer = tokio::time::interval(writes_every);
        let mut n = 0usize;
        let mut writes = Vec::new();
        while Instant::now() < writes_until {
            timer.tick().await;
            let index = n % bases.len();
            let (writer, base) = (writer.clone(), bases[index].clone());
            let observed = Arc::clone(&writes_observed);
            writes.push(tokio::spawn(async move {
                let id = format!("fleet-{n:05}");
                write(&writer, &base, &id, index, &observed).await;
            }));
            n += 1;
        }
        for write in writes {
            let _ = write.await;
        }
    }));
    for task in tasks {
        let _ = task.await;
    }
    // A last, wider read of each environment: what it never showed in its newest 50.
    for (index, environment) in fleet.iter().enumerate() {
        let url = format!("{}/api/calls/history?limit=500", environment.base);
        read(client, &url, index, &observed).await;
    }
}

async fn read(client: &reqwest::Client, url: &str, index: usize, observed: &Mutex<Observed>) {
    let started = Instant::now();
    let reply = client.get(url).send().await;
    let latency = started.elapsed();
    let body: Value = match reply {
        Ok(reply) if reply.status().is_success() => reply.json().await.unwrap_or(Value::Null),
        Ok(reply) => {
            lock(observed)
                .unexpected
                .push(format!("read answered {}", reply.status()));
            return;
        }
        Err(err) => {
            lock(observed)
                .unexpected
                .push(format!("read failed: {err}"));
            return;
        }
    };
    let seen_at = Instant::now();
    let mut observed = lock(observed);
    observed.read_latencies.push(latency);
    let source = body["source"].as_str().unwrap_or("none").to_string();
    *observed.reads_by_source.entry(source).or_default() += 1;
    for call in body["calls"].as_array().into_iter().flatten() {
        if let Some(id) = call["id"].as_str().filter(|id| id.starts_with("fleet-")) {
            observed
                .first_seen
                .entry((id.to_string(), index))
                .or_insert(seen_at);
        }
    }
}

async fn write(
    client: &reqwest::Client,
    base: &str,
    id: &str,
    index: usize,
    observed: &Mutex<Observed>,
) {
    let body = json!({"id": id, "contactName": "Fleet Flo", "notes": "written by the fleet bench"});
    let reply = client
        .post(format!("{base}/api/calls"))
        .json(&body)
        .send()
        .await;
    let acknowledged = Instant::now();
    match reply {
        Ok(reply) if reply.status().as_u16() == 201 => {
            let body: Value = reply.json().await.unwrap_or(Value::Null);
            let source = body["source"].as_str().unwrap_or("none").to_string();
            let mut observed = lock(observed);
            *observed.write_sources.entry(source).or_default() += 1;
            observed.writes.push((id.to_string(), index, acknowledged));
        }
        Ok(reply) => lock(observed)
            .unexpected
            .push(format!("write {id} answered {}", reply.status())),
        Err(err) => lock(observed)
            .unexpected
            .push(format!("write {id} failed: {err}")),
    }
}

fn lock(observed: &Mutex<Observed>) -> std::sync::MutexGuard<'_, Observed> {
    observed.lock().unwrap_or_else(|p| p.into_inner())
}

fn operation_counts(standin: &StandIn) -> HashMap<&'static str, usize> {
    DATA_API_OPERATIONS
        .iter()
        .map(|op| (*op, standin.operation_count(op)))
        .collect()
}

fn throttle_count(standin: &StandIn) -> usize {
    DATA_API_OPERATIONS
        .iter()
        .map(|op| standin.throttle_count(op))
        .sum()
}

/// What the warehouse holds of the acknowledged writes.
struct Audit {
    missing: usize,
    duplicated: usize,
}

async fn audit(database_url: &str, observed: &Observed) -> Audit {
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
        .await
        .expect("postgres");
    tokio::spawn(connection);
    let rows = client
        .query(
            "SELECT id, COUNT(*) FROM calls WHERE id LIKE 'fleet-%' GROUP BY id",
            &[],
        )
        .await
        .expect("audit");
    let held: HashMap<String, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    Audit {
        missing: observed
            .writes
            .iter()
            .filter(|(id, _, _)| !held.contains_key(id))
            .count(),
        duplicated: held.values().filter(|n| **n > 1).count(),
    }
}

/// How long after its acknowledgement each write was first in each other environment's history.
fn visibility_lags(observed: &Observed, environments: usize) -> (Vec<Duration>, usize) {
    let mut lags = Vec::new();
    let mut never = 0;
    for (id, writer, acknowledged) in &observed.writes {
        for index in (0..environments).filter(|i| i != writer) {
            match observed.first_seen.get(&(id.clone(), index)) {
                Some(seen) => lags.push(seen.saturating_duration_since(*acknowledged)),
                None => never += 1,
            }
        }
    }
    lags.sort();
    (lags, never)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn section(
    scenario: &Scenario,
    observed: &Observed,
    calls: usize,
    throttles: usize,
    rate: f64,
    audit: &Audit,
) -> String {
    let mut latencies = observed.read_latencies.clone();
    latencies.sort();
    let reads = latencies.len();
    let from_backup = observed.reads_by_source.get("sqlite").copied().unwrap_or(0)
        + observed.write_sources.get("sqlite").copied().unwrap_or(0);
    let requests = reads + observed.writes.len();
    let (lags, never) = visibility_lags(observed, scenario.environments);
    let p99 = percentile(&latencies, 0.99);
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n## {} ({} reads/s + {} writes/s)\n",
        scenario.name, scenario.reads_per_second, scenario.writes_per_second
    );
    let _ = writeln!(out, "| measure | value | budget |");
    let _ = writeln!(out, "|---|---|---|");
    let _ = writeln!(out, "| reads answered | {reads} |  |");
    let _ = writeln!(
        out,
        "| writes acknowledged | {} |  |",
        observed.writes.len()
    );
    let _ = writeln!(
        out,
        "| answers from the backup (`source: sqlite`) | {from_backup} | 0 ({}) |",
        verdict(from_backup == 0)
    );
    let _ = writeln!(
        out,
        "| throttled Data API calls | {throttles} | 0 ({}) |",
        verdict(throttles == 0)
    );
    let _ = writeln!(
        out,
        "| read latency p50 / p99 / max | {} / {} / {} | p99 ≤ 20 ms ({}) |",
        ms(percentile(&latencies, 0.5)),
        ms(p99),
        ms(percentile(&latencies, 1.0)),
        verdict(p99 <= Duration::from_millis(20))
    );
    let _ = writeln!(
        out,
        "| Data API calls / per request / per second | {calls} / {:.3} / {rate:.1} |  |",
        calls as f64 / requests.max(1) as f64
    );
    let worst = lags.last().copied().unwrap_or_default();
    let _ = writeln!(
        out,
        "| a write in every other environment's history: p50 / p99 / max after its 201 | {} / {} / {} | ≤ 2 s ({}) |",
        ms(percentile(&lags, 0.5)),
        ms(percentile(&lags, 0.99)),
        ms(worst),
        verdict(worst <= VISIBILITY_BUDGET && never == 0)
    );
    let _ = writeln!(
        out,
        "| writes never seen in some other environment | {never} | 0 ({}) |",
        verdict(never == 0)
    );
    let _ = writeln!(
        out,
        "| acknowledged writes missing from the warehouse / ids stored twice | {} / {} | 0 / 0 ({}) |",
        audit.missing,
        audit.duplicated,
        verdict(audit.missing == 0 && audit.duplicated == 0)
    );
    let _ = writeln!(
        out,
        "| unexpected answers (not 2xx) or failed requests | {} | 0 ({}) |",
        observed.unexpected.len(),
        verdict(observed.unexpected.is_empty())
    );
    if !observed.unexpected.is_empty() {
        let _ = writeln!(
            out,
            "\nFirst unexpected: {:?}",
            &observed.unexpected[..observed.unexpected.len().min(5)]
        );
    }
    out
}

async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    client
        .get(url)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .unwrap_or(Value::Null)
}
