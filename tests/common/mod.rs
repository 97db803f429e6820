//! Shared test harness: spawns the real app on a free port and talks HTTP to it.
#![allow(dead_code)] // each test binary uses part of the harness

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use call_history::config::Config;
use call_history::server::ServerLimits;
use call_history::store::failover::FailoverStore;
use serde_json::Value;

pub struct TestApp {
    pub address: SocketAddr,
    pub store: Arc<FailoverStore>,
    /// Work that finishes after answers (metric puts, copies into the backup).
    pub background: call_history::background::Background,
    pub client: reqwest::Client,
    pub sqlite_path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// A response, read whole.
pub struct Reply {
    pub status: u16,
    pub source_header: Option<String>,
    /// `X-Data-As-Of`.
    pub as_of_header: Option<String>,
    pub content_type: Option<String>,
    pub body: Value,
}

impl TestApp {
    /// Waits for the work left after the answers so far (metric puts, copies): what Lambda's
    /// extension waits for before the environment may freeze.
    pub async fn settled(&self) {
        assert!(
            self.background
                .settle(std::time::Duration::from_secs(10))
                .await,
            "background work still running after 10 s"
        );
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> Reply {
        read(
            self.client
                .get(self.url(path))
                .send()
                .await
                .expect("request sent"),
        )
        .await
    }

    /// As [`TestApp::get`], for futures that outlive the path's borrow.
    pub async fn get_owned(&self, path: String) -> Reply {
        self.get(&path).await
    }

    pub async fn post(&self, path: &str, body: &str) -> Reply {
        read(
            self.client
                .post(self.url(path))
                .body(body.to_string())
                .send()
                .await
                .expect("request sent"),
        )
        .await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.post(path, &body.to_string()).await
    }

    /// `/db/status`'s body: both databases, the fallback, the journal, the replica.
    pub async fn status(&self) -> Value {
        self.get("/db/status").await.body
    }

    /// Sends `request` on a task of its own, for a test that acts while it is under way.
    pub fn send_in_background(
        &self,
        request: reqwest::RequestBuilder,
    ) -> tokio::task::JoinHandle<Reply> {
        tokio::spawn(async move { read(request.send().await.expect("request sent")).await })
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        read(request.send().await.expect("request sent")).await
    }
}

/// True once `done` holds, checked every 25 ms for at most `limit`: for what the service does
/// between requests (a replay, a pull), which a test waits for rather than sleeps through.
pub async fn eventually<F, Fut>(limit: std::time::Duration, mut done: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        if done().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    false
}

pub async fn read(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let source_header = header("x-data-source");
    let as_of_header = header("x-data-as-of");
    let content_type = header("content-type");
    let text = response.text().await.expect("body read");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply {
        status,
        source_header,
        as_of_header,
        content_type,
        body,
    }
}

/// Serialises the part of app construction that reads process-wide AWS variables, so that tests
/// running as threads of one process cannot see each other's endpoints.
static SDK_ENV: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Spawns the app with these configuration variables (SQLITE_PATH defaults to a fresh temporary
/// file) and these AWS SDK variables set in the process environment while it is built.
pub async fn spawn_app_with(vars: &[(&str, &str)], aws_env: &[(&str, &str)]) -> TestApp {
    capture_logs();
    let dir = tempfile::tempdir().expect("temporary folder");
    let mut map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let sqlite_path = map
        .entry("SQLITE_PATH".to_string())
        .or_insert_with(|| dir.path().join("local_crm.db").display().to_string())
        .clone();
    let (config, problems) = Config::from_lookup(|name| map.get(name).cloned());
    assert!(
        problems.is_empty() || map.contains_key("EXPECT_PROBLEMS"),
        "configuration problems: {problems:?}"
    );
    let app = {
        let _env = SDK_ENV.lock().await;
        for (name, value) in aws_env {
            std::env::set_var(name, value);
        }
        call_history::build_app(&config).await
    };
    // As the local server does: pulls ahead, replay and metrics between requests.
    app.run_upkeep();
    let address = serve_on_free_port(app.router.clone(), ServerLimits::default()).await;
    TestApp {
        address,
        store: app.store,
        background: app.background,
        client: reqwest::Client::new(),
        sqlite_path: sqlite_path.into(),
        _dir: dir,
    }
}

/// Serves the router with the local server (limits, timeouts and all) on a free port.
pub async fn serve_on_free_port(router: axum::Router, limits: ServerLimits) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(call_history::server::serve(
        listener,
        router,
        limits,
        std::future::pending(),
    ));
    address
}

pub async fn spawn_app(vars: &[(&str, &str)]) -> TestApp {
    spawn_app_with(vars, &[]).await
}

// ---- the Lambda entry --------------------------------------------------------------------

/// What the function answers an API Gateway event with, as the Lambda runtime sends it back.
pub struct LambdaAnswer(pub Value);

impl LambdaAnswer {
    pub fn status(&self) -> u16 {
        let status = self.0["statusCode"].as_u64();
        let status = status.unwrap_or_else(|| panic!("not an HTTP answer: {}", self.0));
        status as u16
    }

    /// A header, from an HTTP API answer (`headers`) or a REST API one (`multiValueHeaders`).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.0["headers"][name]
            .as_str()
            .or_else(|| self.0["multiValueHeaders"][name][0].as_str())
    }

    /// The body as text: what API Gateway sends when the answer is not base64.
    pub fn text(&self) -> &str {
        assert_ne!(self.0["isBase64Encoded"], true, "a text body: {}", self.0);
        self.0["body"].as_str().unwrap_or("")
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(self.text()).unwrap_or_else(|_| panic!("a JSON body: {}", self.0))
    }
}

/// Sends one API Gateway event (its JSON text) through the function's own entry,
/// `lambda::handle_event`: the event's repair, `lambda_http`'s conversion, the router and the
/// conversion of its answer, as in Lambda.
pub async fn invoke_lambda(router: &axum::Router, event: &str) -> LambdaAnswer {
    let event: Value = serde_json::from_str(event).expect("an event in JSON");
    let event = lambda_http::LambdaEvent::new(event, lambda_http::Context::default());
    LambdaAnswer(call_history::lambda::handle_event(router.clone(), event).await)
}

/// Fake credentials and a region: the real SDK signs requests, nothing checks them.
pub const FAKE_AWS: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
    ("AWS_REGION", "us-east-1"),
];

// ---- log capture -------------------------------------------------------------------------

#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        std::io::stdout().write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static LOGS: OnceLock<LogBuffer> = OnceLock::new();

/// Installs (once per process) a subscriber that keeps every log line for assertions.
pub fn capture_logs() {
    LOGS.get_or_init(|| {
        let buffer = LogBuffer::default();
        let writer = buffer.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter("info,aws_smithy_runtime=warn,aws_config=warn,hyper=warn")
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init();
        buffer
    });
}

/// Everything logged so far in this process. Assertions on it hold because every test runs in a
/// process of its own (cargo nextest, which `make test` installs and uses).
pub fn logs() -> String {
    let buffer = LOGS.get().expect("capture_logs called");
    String::from_utf8_lossy(&buffer.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

// ---- the Redshift stand-in ---------------------------------------------------------------

use redshift_data_local::{create_scratch_database, Options, StandIn};

/// A stand-in on its own fresh PostgreSQL database.
pub struct Redshift {
    pub standin: StandIn,
    pub database_url: String,
}

impl Redshift {
    /// A stand-in that meters the Data API as AWS does (the account's quotas).
    pub async fn start(page_size: usize) -> Redshift {
        Self::start_with(page_size, |_| {}).await
    }

    /// A stand-in without quotas, for a test that bursts calls to show something else.
    pub async fn start_unmetered(page_size: usize) -> Redshift {
        Self::start_with(page_size, |options| options.quotas = None).await
    }

    /// A stand-in with `options` changed as `change` says.
    pub async fn start_with(page_size: usize, change: impl FnOnce(&mut Options)) -> Redshift {
        let admin = std::env::var("DATABASE_URL").expect(
            "DATABASE_URL is not set: run `make test`, or `export \"$(scripts/pg-test-cluster.sh start)\"` first",
        );
        let database_url = create_scratch_database(&admin)
            .await
            .expect("scratch database");
        let mut options = Options::new(database_url.clone());
        options.page_size = page_size;
        change(&mut options);
        let standin = StandIn::start(options).await.expect("stand-in starts");
        Redshift {
            standin,
            database_url,
        }
    }

    /// A direct connection to the PostgreSQL database behind the stand-in, to check what
    /// Redshift really holds.
    pub async fn postgres(&self) -> tokio_postgres::Client {
        let (client, connection) =
            tokio_postgres::connect(&self.database_url, tokio_postgres::NoTls)
                .await
                .expect("postgres");
        tokio::spawn(connection);
        client
    }

    /// How many rows with this id Redshift holds.
    pub async fn copies_of(&self, id: &str) -> i64 {
        let pg = self.postgres().await;
        pg.query_one("SELECT COUNT(*) FROM calls WHERE id = $1", &[&id])
            .await
            .expect("count")
            .get(0)
    }

    /// Ids that Redshift holds more than once: it enforces no key, so this must stay empty.
    pub async fn duplicated_ids(&self) -> Vec<String> {
        let pg = self.postgres().await;
        let rows = pg
            .query("SELECT id FROM calls GROUP BY id HAVING COUNT(*) > 1", &[])
            .await
            .expect("duplicates");
        rows.iter().map(|r| r.get(0)).collect()
    }

    pub async fn row_count(&self) -> i64 {
        let pg = self.postgres().await;
        pg.query_one("SELECT COUNT(*) FROM calls", &[])
            .await
            .expect("count")
            .get(0)
    }

    pub fn executions(&self) -> usize {
        self.standin.operation_count("ExecuteStatement")
    }

    /// The service's own binary, with nothing of this process's environment but what points
    /// it at this stand-in: the cluster, fake credentials, the Data API and CloudWatch
    /// endpoints.
    pub fn service_command(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_call-history"));
        command
            .env_clear()
            .env("REDSHIFT_CLUSTER_ID", "crm-cluster")
            .env("REDSHIFT_DATABASE", "crm_db")
            .env("REDSHIFT_DB_USER", "app_user")
            .envs(FAKE_AWS)
            .env(
                "AWS_ENDPOINT_URL_REDSHIFT_DATA",
                self.standin.data_api_url(),
            )
            .env("AWS_ENDPOINT_URL_CLOUDWATCH", self.standin.cloudwatch_url());
        command
    }

    /// Statements submitted: single ones and transactions.
    pub fn statements(&self) -> usize {
        self.executions() + self.standin.operation_count("BatchExecuteStatement")
    }
}

/// Spawns the app on the stand-in, with the `calls` table created through the Data API.
pub async fn spawn_app_on(redshift: &Redshift, extra: &[(&str, &str)]) -> TestApp {
    let mut vars = vec![
        ("REDSHIFT_CLUSTER_ID", "crm-cluster"),
        ("REDSHIFT_DATABASE", "crm_db"),
        ("REDSHIFT_DB_USER", "app_user"),
        ("REDSHIFT_TIMEOUT_MS", "2000"),
    ];
    for (name, value) in extra {
        vars.retain(|(n, _)| n != name);
        vars.push((name, value));
    }
    let data_api = redshift.standin.data_api_url();
    let cloudwatch = redshift.standin.cloudwatch_url();
    let mut aws = FAKE_AWS.to_vec();
    aws.push(("AWS_ENDPOINT_URL_REDSHIFT_DATA", data_api.as_str()));
    aws.push(("AWS_ENDPOINT_URL_CLOUDWATCH", cloudwatch.as_str()));
    let app = spawn_app_with(&vars, &aws).await;
    app.store
        .redshift()
        .expect("configured")
        .migrate()
        .await
        .expect("schema applied");
    app
}

// ---- API Gateway events ------------------------------------------------------------------

pub mod events {
    use std::path::Path;

    use serde_json::{json, Value};

    /// A sample event from `events/`, as API Gateway sends it.
    pub fn sample(name: &str) -> Value {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("events")
            .join(format!("{name}.json"));
        serde_json::from_str(&std::fs::read_to_string(path).expect("event file")).expect("JSON")
    }

    /// An HTTP API (payload 2.0) GET with this raw path and raw query string.
    pub fn http_get(raw_path: &str, raw_query: &str) -> Value {
        let mut event = sample("calls-history");
        event["rawPath"] = json!(raw_path);
        event["rawQueryString"] = json!(raw_query);
        event["requestContext"]["http"]["path"] = json!(raw_path);
        event["routeKey"] = json!("$default");
        event["requestContext"]["routeKey"] = json!("$default");
        event
            .as_object_mut()
            .unwrap()
            .remove("queryStringParameters");
        event
    }

    /// An HTTP API POST of this body to `/api/calls`.
    pub fn http_post_call(body: &str, base64: bool) -> Value {
        let mut event = sample("calls-create");
        event["body"] = json!(body);
        event["isBase64Encoded"] = json!(base64);
        event["headers"]["content-length"] = json!(body.len().to_string());
        event
    }
}
