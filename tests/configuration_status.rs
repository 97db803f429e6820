//! What `/db/status` and the start-up log say about each configuration, as an operator reads
//! them: Redshift complete (not checked until the first contact, never "Connected" before it),
//! half configured (what is missing), without AWS credentials (named in one line), and a backup
//! that cannot be opened (why, and which setting to change). The service's own binary, started
//! with only the variables each case sets.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::Redshift;
use serde_json::Value;

/// The service on a port of its own, with exactly `vars` (and no AWS credentials unless given).
struct Service {
    child: tokio::process::Child,
    base: String,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Service {
    async fn start(vars: &[(&str, String)]) -> Service {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.path().join("service.log");
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_call-history"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            // No profile, no instance metadata: the SDK finds no credentials unless given.
            .env("HOME", dir.path())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("PORT", port.to_string())
            .env("SQLITE_PATH", dir.path().join("crm.db"))
            .env("RUST_LOG", "info")
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let service = Service {
            child: command.spawn().expect("the service starts"),
            base: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        };
        for _ in 0..400 {
            if reqwest::get(format!("{}/db/healthz", service.base))
                .await
                .is_ok()
            {
                return service;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the service did not start: {}", service.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn get(&self, path: &str) -> Value {
        reqwest::get(format!("{}{path}", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn redshift_message(&self) -> String {
        self.get("/db/status").await["databases"]["redshift"]["message"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn cluster() -> Vec<(&'static str, String)> {
    vec![
        ("REDSHIFT_CLUSTER_ID", "crm-cluster".to_string()),
        ("REDSHIFT_DATABASE", "crm_db".to_string()),
        ("REDSHIFT_DB_USER", "app_user".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
    ]
}

#[tokio::test]
async fn a_complete_configuration_is_not_checked_until_the_first_contact() {
    let redshift = Redshift::start(1000).await;
    drop(common::spawn_app_on(&redshift, &[]).await);
    let mut vars = cluster();
    vars.extend([
        ("AWS_ACCESS_KEY_ID", "test".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
        (
            "AWS_ENDPOINT_URL_REDSHIFT_DATA",
            redshift.standin.data_api_url(),
        ),
        (
            "AWS_ENDPOINT_URL_CLOUDWATCH",
            redshift.standin.cloudwatch_url(),
        ),
    ]);
    let service = Service::start(&vars).await;
    assert_eq!(service.redshift_message().await, "Not checked yet");
    let status = service.get("/db/status").await;
    assert_eq!(status["databases"]["redshift"]["available"], false);
    assert!(service
        .log()
        .contains("(Redshift: Not checked yet; local SQLite: Connected)"));
    assert_eq!(
        service.get("/api/calls/history").await["source"],
        "redshift"
    );
    assert_eq!(service.redshift_message().await, "Connected");
}

#[tokio::test]
async fn a_half_configuration_says_what_is_missing() {
    let vars: Vec<_> = cluster()
        .into_iter()
        .filter(|(name, _)| *name != "REDSHIFT_DATABASE")
        .collect();
    let service = Service::start(&vars).await;
    assert_eq!(
        service.redshift_message().await,
        "Half configured: REDSHIFT_DATABASE is missing"
    );
    let log = service.log();
    assert!(
        log.contains(
            "Redshift is half configured: REDSHIFT_DATABASE is missing; serving from SQLite"
        ),
        "{log}"
    );
    assert!(log.contains("(Redshift: Half configured: REDSHIFT_DATABASE is missing;"));
    assert_eq!(service.get("/api/calls/history").await["source"], "sqlite");
}

#[tokio::test]
async fn missing_credentials_are_named_in_one_line() {
    let redshift = Redshift::start(1000).await;
    let mut vars = cluster();
    vars.push((
        "AWS_ENDPOINT_URL_REDSHIFT_DATA",
        redshift.standin.data_api_url(),
    ));
    let service = Service::start(&vars).await;
    let history = service.get("/api/calls/history").await;
    assert_eq!(history["source"], "sqlite");
    assert_eq!(service.redshift_message().await, "No AWS credentials");
    let log = service.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("falling back to local SQLite: No AWS credentials"))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert_eq!(
        redshift.standin.operation_count("ExecuteStatement"),
        0,
        "never sent"
    );
}

#[tokio::test]
async fn a_backup_that_cannot_be_opened_says_why_and_what_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("a-folder");
    std::fs::create_dir(&folder).unwrap();
    let missing = dir.path().join("missing").join("crm.db");
    for (path, why) in [
        (
            folder.clone(),
            format!("{} is a folder, not a file", folder.display()),
        ),
        (
            missing.clone(),
            format!(
                "the folder {} does not exist",
                missing.parent().unwrap().display()
            ),
        ),
    ] {
        let service = Service::start(&[("SQLITE_PATH", path.display().to_string())]).await;
        let status = service.get("/db/status").await;
        let message = status["databases"]["sqlite"]["message"].as_str().unwrap();
        assert_eq!(
            message,
            format!("Database file cannot be opened: {why}; set SQLITE_PATH to a writable file")
        );
        assert!(service.log().contains(&why), "{}", service.log());
    }
}

/// Sample calls belong to local demos (`make run`): a deployed function's backup, or one beside a
/// warehouse, never shows calls the warehouse never held.
#[tokio::test]
async fn a_deployed_backup_never_starts_with_sample_calls() {
    let in_lambda = [("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")];
    let beside_a_warehouse = [
        ("REDSHIFT_CLUSTER_ID", "crm-cluster"),
        ("REDSHIFT_DATABASE", "crm_db"),
        ("REDSHIFT_DB_USER", "app_user"),
        ("FORCE_SQLITE", "true"),
    ];
    for vars in [&in_lambda[..], &beside_a_warehouse[..]] {
        let app = common::spawn_app(vars).await;
        let history = app.get("/api/calls/history").await;
        assert_eq!(history.body["count"], 0, "{vars:?}: {}", history.body);
    }
    let demo = common::spawn_app(&[]).await;
    assert_eq!(demo.get("/api/calls/history").await.body["count"], 15);
}
