//! A broken local disk, at start and while running: the backup recreates what it can, reports
//! what it cannot, never serves garbage and never claims a write it did not make. Redshift is
//! configured but unreachable throughout, so every write is the backup's to take or refuse.
//!
//! The read-only and full-disk cases need root (`chattr +i`, a small tmpfs), as the test
//! machines and CI run; elsewhere they say so and stop.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{logs, spawn_app, TestApp};
use serde_json::{json, Value};

/// A Redshift that refuses connections: configured, never reachable.
async fn app_on(path: &Path) -> TestApp {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let endpoint = format!("http://127.0.0.1:{closed}");
    let path = path.to_str().unwrap().to_string();
    common::spawn_app_with(
        &[
            ("SQLITE_PATH", path.as_str()),
            ("REDSHIFT_CLUSTER_ID", "crm-cluster"),
            ("REDSHIFT_DATABASE", "crm_db"),
            ("REDSHIFT_DB_USER", "app_user"),
            ("REDSHIFT_CHECK_INTERVAL_SECS", "3600"),
            // The disk's behaviour is the subject; the sample calls give it rows to keep.
            ("SQLITE_SEED", "sample"),
        ],
        &[
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL_REDSHIFT_DATA", endpoint.as_str()),
            ("AWS_ENDPOINT_URL_CLOUDWATCH", endpoint.as_str()),
        ],
    )
    .await
}

async fn record(app: &TestApp, id: &str) -> common::Reply {
    app.post_json("/api/calls", &json!({"id": id, "contactName": "Disk Dana"}))
        .await
}

async fn sqlite_status(app: &TestApp) -> Value {
    app.get("/db/status").await.body["databases"]["sqlite"].clone()
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", path.display()))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

#[tokio::test]
async fn a_damaged_file_and_its_wal_files_are_moved_aside_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("damaged.db");
    std::fs::write(&path, b"not a database, only bytes ".repeat(200)).unwrap();
    std::fs::write(with_suffix(&path, "-wal"), b"stale wal").unwrap();
    std::fs::write(with_suffix(&path, "-shm"), b"stale shm").unwrap();
    let app = spawn_app(&[("SQLITE_PATH", path.to_str().unwrap())]).await;
    let history = app.get("/api/calls/history").await;
    assert_eq!(history.body["source"], "sqlite");
    assert_eq!(history.body["count"], 15, "the sample data, afresh");
    let aside = dir.path().join("damaged.unreadable");
    assert!(aside.exists(), "the damaged file is kept for inspection");
    // Its WAL files went with it (or SQLite removed them as its own): none of the stale bytes
    // sit beside the new database.
    for suffix in ["-wal", "-shm"] {
        if let Ok(bytes) = std::fs::read(with_suffix(&path, suffix)) {
            assert!(
                !bytes.starts_with(b"stale"),
                "{suffix} beside the new database"
            );
        }
    }
}

#[tokio::test]
async fn a_busy_file_is_not_mistaken_for_damage_and_is_opened_once_free() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busy.db");
    {
        let store =
            call_history::store::sqlite::SqliteStore::open(&path, Default::default()).unwrap();
        let (call, _) = call_history::api::call_input::parse_new_call(
            br#"{"id":"kept-1","contactName":"Kept"}"#,
        )
        .unwrap();
        store.insert(&call).await.unwrap();
    }
    // Another process holds the whole file: opening it fails for now.
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder
        .execute_batch("PRAGMA journal_mode = DELETE; BEGIN EXCLUSIVE;")
        .unwrap();
    let app = app_on(&path).await;
    let sqlite = sqlite_status(&app).await;
    assert_eq!(sqlite["available"], false);
    assert_eq!(sqlite["message"], "Database locked");
    // Redshift fails too: nothing serves.
    assert_eq!(
        app.get("/api/calls/history").await.body["source"],
        "unavailable"
    );
    assert_eq!(app.get("/db/healthz").await.status, 503);
    assert_eq!(record(&app, "while-locked").await.status, 503);
    assert!(
        !dir.path().join("busy.unreadable").exists(),
        "kept, not moved aside"
    );

    holder.execute_batch("COMMIT").unwrap();
    drop(holder);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let kept = app.get("/api/calls/kept-1").await;
    assert_eq!(kept.status, 200, "{}", kept.body);
    assert_eq!(kept.body["source"], "sqlite");
    assert_eq!(sqlite_status(&app).await["available"], true);
}

#[tokio::test]
async fn a_backup_that_could_not_be_opened_is_opened_again_later() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("not-yet");
    let path = folder.join("later.db");
    let app = app_on(&path).await;
    let history = app.get("/api/calls/history").await;
    assert_eq!(history.body["source"], "unavailable");
    assert_eq!(history.body["count"], 0);
    assert_eq!(record(&app, "too-early").await.status, 503);
    let message = sqlite_status(&app).await["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        message,
        format!(
            "Database file cannot be opened: the folder {} does not exist; set SQLITE_PATH to a writable file",
            folder.display()
        )
    );

    std::fs::create_dir(&folder).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let history = app.get("/api/calls/history").await;
    assert_eq!(history.body["source"], "sqlite");
    assert_eq!(history.body["count"], 15);
    assert_eq!(record(&app, "in-time").await.status, 201);
}

#[tokio::test]
async fn a_file_deleted_while_running_is_recreated_with_everything_it_held() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deleted.db");
    let app = app_on(&path).await;
    for i in 0..3 {
        assert_eq!(record(&app, &format!("before-{i}")).await.status, 201);
    }
    for suffix in ["", "-wal", "-shm"] {
        std::fs::remove_file(with_suffix(&path, suffix)).unwrap();
    }
    let after = record(&app, "after-delete").await;
    assert_eq!(after.status, 201);
    assert!(path.exists(), "recreated");
    assert!(logs().contains("recreated with every call and write it held"));
    let status = app.get("/db/status").await.body;
    assert_eq!(status["sync"]["pendingWrites"], 4);

    // What was acknowledged is on disk: a new environment on the same path finds it all.
    let restarted = app_on(&path).await;
    for id in ["before-0", "before-1", "before-2", "after-delete"] {
        assert_eq!(
            restarted.get(&format!("/api/calls/{id}")).await.status,
            200,
            "{id}"
        );
    }
    assert_eq!(
        restarted.get("/db/status").await.body["sync"]["pendingWrites"],
        4
    );
}

#[tokio::test]
async fn a_file_truncated_or_overwritten_while_running_is_never_served_as_garbage() {
    for damage in ["truncate", "overwrite"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("damage.db");
        let app = app_on(&path).await;
        assert_eq!(record(&app, "before").await.status, 201);
        match damage {
            "truncate" => std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(0)
                .unwrap(),
            _ => std::fs::write(&path, b"garbage ".repeat(4096)).unwrap(),
        }
        // The next write notices, recreates the file from what the open connection still
        // reads, and is stored in a file that a new environment can open.
        let after = record(&app, "after").await;
        assert_eq!(after.status, 201, "{damage}: {}", after.body);
        let restarted = app_on(&path).await;
        let read = restarted.get("/api/calls/after").await;
        assert_eq!(
            read.status, 200,
            "{damage}: an acknowledged write is on disk"
        );
        let history = restarted.get("/api/calls/history?limit=500").await;
        assert_eq!(history.body["source"], "sqlite", "{damage}");
        for call in history.body["calls"].as_array().unwrap() {
            assert!(
                call["id"].is_string() && call["contactName"].is_string(),
                "{call}"
            );
        }
    }
}

/// Makes a file immutable for as long as it lives (root only).
struct Immutable(PathBuf);

impl Immutable {
    fn set(path: &Path) -> Immutable {
        let ok = Command::new("chattr").arg("+i").arg(path).status().unwrap();
        assert!(ok.success(), "chattr +i");
        Immutable(path.to_path_buf())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[tokio::test]
async fn a_read_only_file_answers_reads_refuses_writes_and_says_so() {
    if !is_root() {
        eprintln!("skipped: making a file read-only for this process needs root (chattr +i)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("read-only.db");
    {
        let app = app_on(&path).await;
        assert_eq!(record(&app, "written-before").await.status, 201);
    }
    let _guard = Immutable::set(&path);
    let app = app_on(&path).await;
    assert_eq!(app.get("/api/calls/written-before").await.status, 200);
    let refused = record(&app, "not-stored").await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.source_header.as_deref(), Some("unavailable"));
    let sqlite = sqlite_status(&app).await;
    assert_eq!(sqlite["available"], true, "reads still work");
    assert_eq!(sqlite["writable"], false);
    assert_eq!(sqlite["message"], "Read-only database file: writes failing");
    assert_eq!(app.get("/db/healthz").await.status, 200);
    assert_eq!(app.get("/api/calls/not-stored").await.status, 404);
}

/// A small tmpfs mounted for as long as it lives (root only).
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(ok.success(), "mount tmpfs");
        SmallDisk(at.to_path_buf())
    }

    /// Fills what is left with one file; returns it.
    fn fill(&self) -> PathBuf {
        let filler = self.0.join("filler");
        let _ = Command::new("dd")
            .args(["if=/dev/zero", "bs=4k"])
            .arg(format!("of={}", filler.display()))
            .output();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test]
async fn a_full_disk_refuses_writes_says_so_and_recovers_when_space_returns() {
    if !is_root() {
        eprintln!("skipped: a small disk for this process needs root (mount -t tmpfs)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(&dir.path().join("tmp"), "2m");
    let path = disk.0.join("local_crm.db");

    // While running.
    let app = app_on(&path).await;
    assert_eq!(record(&app, "with-space").await.status, 201);
    let filler = disk.fill();
    let mut refused = None;
    for i in 0..50 {
        // The WAL may still have room for a few; then writes fail.
        let reply = record(&app, &format!("full-{i}")).await;
        if reply.status == 503 {
            refused = Some(format!("full-{i}"));
            break;
        }
        assert_eq!(reply.status, 201);
    }
    let refused = refused.expect("a full disk refuses writes");
    assert_eq!(
        app.get(&format!("/api/calls/{refused}")).await.status,
        404,
        "not claimed"
    );
    let sqlite = sqlite_status(&app).await;
    assert_eq!(sqlite["writable"], false);
    assert_eq!(sqlite["message"], "Disk full: writes failing");
    assert_eq!(app.get("/api/calls/with-space").await.status, 200);
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(record(&app, "space-again").await.status, 201);
    assert_eq!(sqlite_status(&app).await["writable"], true);
    drop(app);

    // At start, with no room to create the file.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(with_suffix(&path, suffix));
    }
    let filler = disk.fill();
    let app = app_on(&path).await;
    assert_eq!(
        app.get("/api/calls/history").await.body["source"],
        "unavailable"
    );
    assert_eq!(record(&app, "no-room").await.status, 503);
    assert_eq!(app.get("/db/healthz").await.status, 503);
    std::fs::remove_file(&filler).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(app.get("/api/calls/history").await.body["source"], "sqlite");
    assert_eq!(record(&app, "room-again").await.status, 201);
}

#[tokio::test]
async fn on_a_shared_file_another_environments_repair_is_used_not_repaired_again() {
    use call_history::store::backup::Backup;
    use call_history::store::sqlite::{SqliteOptions, SqliteStore};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let shared = SqliteOptions {
        journal_writes: true,
        shared: true,
        ..SqliteOptions::default()
    };
    let this = Backup::open(&path, shared);
    let before = this.store_for_write().unwrap();

    // Another environment recreates the file: a new database, holding a write of its own.
    let theirs = dir.path().join("theirs.db");
    {
        let store = SqliteStore::open(&theirs, shared).unwrap();
        let (call, _) = call_history::api::call_input::parse_new_call(
            br#"{"id":"theirs-1","contactName":"Kept"}"#,
        )
        .unwrap();
        store.insert(&call).await.unwrap();
    }
    // A write of this environment under way meanwhile, on the file it has open: after the
    // other environment's copy was taken, so not in it, and before that copy replaces the file
    // (after, SQLite itself refuses writes to a file moved away).
    let (late, _) = call_history::api::call_input::parse_new_call(
        br#"{"id":"ours-late","contactName":"Kept"}"#,
    )
    .unwrap();
    before.insert(&late).await.unwrap();
    std::fs::rename(&theirs, &path).unwrap();

    let store = this.store_for_write().unwrap();
    assert!(
        store.get("theirs-1").await.unwrap().is_some(),
        "the other environment's file is used, with its write"
    );
    assert!(
        store.get("ours-late").await.unwrap().is_some(),
        "this environment's late write is copied into it"
    );
    assert_eq!(
        store.pending_count().await.unwrap(),
        2,
        "both writes wait for replay"
    );
    assert!(!path.with_extension("unreadable").exists());
    // The old store takes no more writes.
    let (refused, _) = call_history::api::call_input::parse_new_call(
        br#"{"id":"ours-refused","contactName":"K"}"#,
    )
    .unwrap();
    assert!(before.insert(&refused).await.is_err());
}

/// Writes under way while the file is found deleted and recreated: the copy is taken only once
/// every write already on the old file has finished, and a write that reaches the old file after
/// that is made on the new one, so every acknowledged write is in the file at the path.
#[tokio::test]
async fn writes_under_way_while_the_file_is_recreated_all_reach_the_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("racing.db");
    let app = std::sync::Arc::new(app_on(&path).await);
    let writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let writers: Vec<_> = (0..8)
        .map(|writer| {
            let (app, writing) = (app.clone(), writing.clone());
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                let mut n = 0;
                while writing.load(std::sync::atomic::Ordering::Relaxed) {
                    let id = format!("w{writer}-{n}");
                    n += 1;
                    let reply = record(&app, &id).await;
                    // Not one write refused either: one that reached the old file is made
                    // again on the new.
                    assert_eq!(reply.status, 201, "{id}: {}", reply.body);
                    acknowledged.push(id);
                }
                acknowledged
            })
        })
        .collect();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(with_suffix(&path, suffix));
        }
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    writing.store(false, std::sync::atomic::Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.unwrap());
    }
    assert!(acknowledged.len() > 50, "{} writes", acknowledged.len());

    let on_disk: std::collections::HashSet<String> = {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let mut stmt = conn.prepare("SELECT id FROM calls").unwrap();
        let ids = stmt.query_map([], |r| r.get(0)).unwrap();
        ids.collect::<Result<_, _>>().unwrap()
    };
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|id| !on_disk.contains(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes are not in the file: {lost:?}",
        lost.len(),
        acknowledged.len()
    );
}
