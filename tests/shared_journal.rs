//! A journal shared by several environments (EFS in production): real `call-history`
//! processes on one SQLite file in shared mode, against the Redshift stand-in (which, like
//! Redshift, enforces no key). Writes taken during an outage reach Redshift exactly once even
//! when the environment that took them is gone.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{eventually, Redshift};
use redshift_data_local::Fault;
use serde_json::{json, Value};
use tokio::process::Child;

/// One environment: the release of this build, run as a process of its own.
struct Environment {
    child: Child,
    base: String,
    http: reqwest::Client,
    log: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Environment {
    async fn start(redshift: &Redshift, file: &Path, extra: &[(&str, &str)]) -> Environment {
        let port = free_port();
        let log = file.with_extension(format!("{port}.log"));
        let mut command = redshift.service_command();
        command
            .env("PORT", port.to_string())
            .env("SQLITE_PATH", file)
            .env("SQLITE_SHARED", "true")
            .env("REDSHIFT_CHECK_INTERVAL_SECS", "3600")
            .env("REDSHIFT_TIMEOUT_MS", "3000")
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::null())
            .kill_on_drop(true);
        for (name, value) in extra {
            command.env(name, value);
        }
        let child = command.spawn().expect("the service starts");
        let environment = Environment {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            log,
        };
        for _ in 0..200 {
            if environment
                .http
                .get(environment.url("/db/healthz"))
                .send()
                .await
                .is_ok()
            {
                return environment;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the service did not start: {}", environment.log());
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    async fn record(&self, id: &str) -> Value {
        let response = self
            .http
            .post(self.url("/api/calls"))
            .json(&json!({"id": id, "contactName": "Shared Sam", "notes": ""}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{id}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["source"], "sqlite", "{id}: taken by the backup");
        body["call"].clone()
    }

    async fn retry(&self) -> Value {
        let response = self
            .http
            .post(self.url("/db/retry-redshift"))
            .send()
            .await
            .unwrap();
        response.json().await.unwrap()
    }

    async fn pending(&self) -> u64 {
        self.get("/db/status").await.1["sync"]["pendingWrites"]
            .as_u64()
            .unwrap()
    }

    /// Ends the process at once, as Lambda ends an environment it recycles.
    async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }
}

async fn ids_in_redshift(redshift: &Redshift) -> BTreeSet<String> {
    let pg = redshift.postgres().await;
    let rows = pg.query("SELECT id FROM calls", &[]).await.unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

/// The replay lease in the shared file: its holder and when it expires (ms since the epoch).
fn replay_lease(file: &Path) -> Option<(String, i64)> {
    let db = rusqlite::Connection::open(file).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db.query_row(
        "SELECT holder, expires_at FROM leases WHERE name = 'replay'",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
    .ok()
}

/// A warehouse with its table, and a scratch folder for the shared file.
async fn setting() -> (Redshift, tempfile::TempDir) {
    let redshift = Redshift::start(1000).await;
    let schema = common::spawn_app_on(&redshift, &[]).await;
    drop(schema);
    (redshift, tempfile::tempdir().unwrap())
}

#[tokio::test]
async fn three_environments_write_one_is_killed_and_a_survivor_replays_everything_once() {
    let (redshift, dir) = setting().await;
    let file = dir.path().join("shared.db");
    redshift.standin.set_fault(Fault::RefuseConnections);
    let environments = [
        Environment::start(&redshift, &file, &[]).await,
        Environment::start(&redshift, &file, &[]).await,
        Environment::start(&redshift, &file, &[]).await,
    ];
    let mut written = BTreeSet::new();
    for round in 0..20 {
        for (n, environment) in environments.iter().enumerate() {
            let id = format!("env{n}-{round:02}");
            environment.record(&id).await;
            written.insert(id);
        }
    }
    let [first, second, third] = environments;
    // The third environment is recycled before Redshift returns: its writes are on the file.
    third.kill().await;
    redshift.standin.clear_fault();

    let retried = first.retry().await;
    assert_eq!(retried["currentSource"], "redshift", "{retried}");
    assert_eq!(
        ids_in_redshift(&redshift).await,
        written,
        "every write, whoever took it"
    );
    assert!(redshift.duplicated_ids().await.is_empty());
    assert_eq!(first.pending().await, 0);
    let again = second.retry().await;
    assert_eq!(again["currentSource"], "redshift");
    assert_eq!(second.pending().await, 0);
    assert_eq!(
        redshift.row_count().await,
        written.len() as i64,
        "nothing twice"
    );
    for id in ["env2-00", "env2-19", "env0-07"] {
        assert_eq!(second.get(&format!("/api/calls/{id}")).await.0, 200, "{id}");
    }
}

#[tokio::test]
async fn two_survivors_replaying_at_once_leave_one_row_per_id() {
    let (redshift, dir) = setting().await;
    let file = dir.path().join("shared.db");
    redshift.standin.set_fault(Fault::RefuseConnections);
    let a = Environment::start(&redshift, &file, &[]).await;
    let b = Environment::start(&redshift, &file, &[]).await;
    let mut written = BTreeSet::new();
    for i in 0..300 {
        let (environment, id) = if i % 2 == 0 {
            (&a, format!("a-{i:03}"))
        } else {
            (&b, format!("b-{i:03}"))
        };
        environment.record(&id).await;
        written.insert(id);
    }
    redshift.standin.clear_fault();
    // Redshift is slow: both replays overlap in time.
    redshift
        .standin
        .set_fault(Fault::Slow(Duration::from_millis(100)));
    let started = Instant::now();
    while a.pending().await + b.pending().await > 0 {
        let (ra, rb) = tokio::join!(a.retry(), b.retry());
        assert!(started.elapsed() < Duration::from_secs(60), "{ra} {rb}");
    }
    redshift.standin.clear_fault();
    assert_eq!(ids_in_redshift(&redshift).await, written);
    assert!(redshift.duplicated_ids().await.is_empty());
    let logs = a.log() + &b.log();
    assert!(logs.contains("🔁 Replayed writes from the local backup to Redshift"));
}

#[tokio::test]
async fn a_lease_whose_holder_was_killed_is_taken_over_after_it_expires() {
    let (redshift, dir) = setting().await;
    let file = dir.path().join("shared.db");
    redshift.standin.set_fault(Fault::RefuseConnections);
    let holder = Environment::start(&redshift, &file, &[]).await;
    let other = Environment::start(&redshift, &file, &[]).await;
    // The other environment meets the outage too.
    assert_eq!(other.get("/api/calls/history").await.1["source"], "sqlite");
    let mut written = BTreeSet::new();
    for i in 0..50 {
        let id = format!("lease-{i:02}");
        holder.record(&id).await;
        written.insert(id);
    }
    // Redshift answers, but its statements take long to start: the holder's replay hangs with
    // the lease taken (for its 3 s deadline) when it is killed.
    redshift.standin.clear_fault();
    redshift
        .standin
        .set_fault(Fault::StayStarted(Duration::from_secs(2)));
    let batches = || redshift.standin.operation_count("BatchExecuteStatement");
    let before = batches();
    let http = holder.http.clone();
    let url = holder.url("/db/retry-redshift");
    let replaying = tokio::spawn(async move { http.post(url).send().await });
    let started = Instant::now();
    while batches() == before {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the holder replays"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    holder.kill().await;
    let _ = replaying.await;
    redshift.standin.clear_fault();
    let lease = replay_lease(&file).expect("the killed holder's lease");

    // Within the lease, the other environment does not replay: it finds the lease taken. Redshift
    // answers it, so it serves from Redshift meanwhile, the waiting writes in its answers.
    let blocked = other.retry().await;
    let (holder_after, expires_at) = replay_lease(&file).expect("a lease");
    assert!(
        (holder_after.as_str(), expires_at) == (lease.0.as_str(), lease.1)
            && chrono::Utc::now().timestamp_millis() < expires_at,
        "the killed holder's lease was still in force when the other was answered"
    );
    assert_eq!(blocked["currentSource"], "redshift", "{blocked}");
    assert_eq!(other.pending().await, 50);
    assert_eq!(
        other
            .get("/api/calls/history?contact=Shared%20Sam&limit=500")
            .await
            .1["count"],
        50
    );
    // Once it expires, the other takes over.
    assert!(
        eventually(Duration::from_secs(20), || async {
            other.retry().await;
            other.pending().await == 0
        })
        .await,
        "the other replays once the lease has expired"
    );
    let (_, taken_over) = other.get("/db/status").await;
    assert_eq!(taken_over["currentSource"], "redshift", "{taken_over}");
    // The killed holder's statement may still have run on the warehouse: nothing twice.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(ids_in_redshift(&redshift).await, written);
    assert!(redshift.duplicated_ids().await.is_empty());
}

#[tokio::test]
async fn environments_starting_together_create_the_shared_file_once() {
    let (redshift, dir) = setting().await;
    let file = dir.path().join("fresh.db");
    let sample = [("SQLITE_SEED", "sample")];
    let (a, b, c) = tokio::join!(
        Environment::start(&redshift, &file, &sample),
        Environment::start(&redshift, &file, &sample),
        Environment::start(&redshift, &file, &sample),
    );
    for environment in [&a, &b, &c] {
        let (status, body) = environment.get("/db/status").await;
        assert_eq!(status, 200);
        assert_eq!(body["databases"]["sqlite"]["available"], true, "{body}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("creating"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let conn = rusqlite::Connection::open(&file).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        mode, "delete",
        "a rollback journal, never WAL, on a shared file"
    );
    let samples: i64 = conn
        .query_row("SELECT COUNT(*) FROM calls", [], |r| r.get(0))
        .unwrap();
    assert_eq!(samples, 15, "the sample data, once");
}

/// An environment that stays on Redshift finds, by counting the shared journal now and then,
/// the writes another environment journaled before it went away, and replays them between its
/// own requests: nobody has to fall back, probe or start for them to reach Redshift.
#[tokio::test]
async fn a_healthy_environment_replays_what_another_journaled_on_the_shared_file() {
    let (redshift, dir) = setting().await;
    let file = dir.path().join("shared.db");
    let healthy =
        Environment::start(&redshift, &file, &[("REDSHIFT_CHECK_INTERVAL_SECS", "1")]).await;
    let (status, body) = healthy.get("/api/calls/history").await;
    assert_eq!(
        (status, body["source"].as_str()),
        (200, Some("redshift")),
        "{body}"
    );
    let forced = Environment::start(&redshift, &file, &[("FORCE_SQLITE", "true")]).await;
    forced.record("left-behind-1").await;
    forced.kill().await;
    // Only reads keep the healthy environment busy; its upkeep does the rest.
    assert!(
        eventually(Duration::from_secs(15), || async {
            healthy.get("/api/calls/history").await;
            ids_in_redshift(&redshift).await.contains("left-behind-1")
        })
        .await,
        "the write another environment journaled never reached Redshift: {}",
        healthy.log()
    );
    assert!(redshift.duplicated_ids().await.is_empty());
}

/// A lookup of an id the shared copy does not know waits for a pull sent after it. When the
/// environment that holds the pull lease (one that went away mid-pull) does not finish within
/// the request, the copy cannot say the call is not there: Redshift may hold it, so the answer
/// is never a 404. Once the lease is free, the lookup's own pull brings the call.
#[tokio::test]
async fn a_miss_while_another_environment_holds_the_pull_is_never_answered_404() {
    let (redshift, dir) = setting().await;
    let file = dir.path().join("shared.db");
    let environment = Environment::start(
        &redshift,
        &file,
        &[
            ("READ_MAX_STALENESS_MS", "600000"),
            ("REDSHIFT_TIMEOUT_MS", "1000"),
        ],
    )
    .await;
    // The first read pulls the window: the warehouse holds fewer calls than it, so all of them.
    let (status, first) = environment.get("/api/calls/history").await;
    assert_eq!((status, first["source"].as_str()), (200, Some("redshift")));

    redshift
        .postgres()
        .await
        .batch_execute(
            "INSERT INTO calls (id, contact_name, started_at, created_at) \
             VALUES ('stored-elsewhere', 'Other Otto', now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC')",
        )
        .await
        .expect("a call another environment stored");
    let db = rusqlite::Connection::open(&file).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    let an_hour_on = chrono::Utc::now().timestamp_millis() + 3_600_000;
    db.execute(
        "INSERT OR REPLACE INTO leases (name, holder, expires_at) VALUES ('pull', 'gone', ?1)",
        [an_hour_on],
    )
    .unwrap();

    let (status, held_up) = environment.get("/api/calls/stored-elsewhere").await;
    assert_ne!(status, 404, "{held_up}");
    assert_ne!(held_up["source"], "redshift", "{held_up}");

    db.execute("DELETE FROM leases WHERE name = 'pull'", [])
        .unwrap();
    let (status, found) = environment.get("/api/calls/stored-elsewhere").await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["call"]["contactName"], "Other Otto", "{found}");
    assert_eq!(found["source"], "redshift");
}
