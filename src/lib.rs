//! Call history API: Redshift through the Data API, with an automatic SQLite fallback.
//!
//! - [`config`]: environment, read once at start.
//! - [`api`]: the HTTP router and its JSON shapes, shared by Lambda and the local server.
//! - [`lambda`]: the Lambda edge: API Gateway events in, API Gateway responses out, never a panic.
//! - [`lifecycle`]: Lambda's lifecycle: the work after each answer, and at shutdown.
//! - [`server`]: the local HTTP server, with its limits and timeouts.
//! - [`store`]: the call store trait, the Redshift and SQLite stores, and the failover adapter.
//! - [`metrics`]: CloudWatch metrics on every switch.
//! - [`background`]: work that finishes after an answer (and, in Lambda, before the freeze).
//! - [`snapshot`]: rebuilds the shipped sample data from Redshift.
//! - [`seed_redshift`]: loads the shipped sample data into Redshift (a fresh warehouse, the stand-in).

pub mod admin_secret;
pub mod api;
pub mod background;
pub mod config;
pub mod lambda;
pub mod lifecycle;
pub mod logging;
pub mod metrics;
pub mod seed_redshift;
pub mod server;
pub mod snapshot;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

use api::admin_policy::AdminPolicy;
use api::AppState;
use background::Background;
use config::{Config, RedshiftConfig};
use metrics::Metrics;
use store::backup::Backup;
use store::failover::{FailoverSettings, FailoverStore};
use store::redshift::meter::{DataApiMeter, MeterInterceptor};
use store::redshift::RedshiftStore;
use store::sqlite::SqliteOptions;

/// The running service: its router and the store behind it.
pub struct App {
    pub router: axum::Router,
    pub store: Arc<FailoverStore>,
    /// Work that finishes after answers.
    pub background: Background,
}

/// A command that works on Redshift itself (`migrate`, `snapshot`, `seed-redshift`) was run
/// without it.
#[derive(Debug, thiserror::Error)]
#[error(
    "Redshift is not configured: set REDSHIFT_CLUSTER_ID or REDSHIFT_WORKGROUP and REDSHIFT_DATABASE"
)]
pub struct RedshiftNotConfigured;

impl App {
    /// The Redshift store, for the commands that need it.
    pub fn configured_redshift(&self) -> Result<&RedshiftStore, RedshiftNotConfigured> {
        self.store.redshift().ok_or(RedshiftNotConfigured)
    }
}

/// Builds the whole service from its configuration. Never fails: whatever cannot be set up is
/// logged and the service serves with what it has.
pub async fn build_app(config: &Config) -> App {
    let options = SqliteOptions {
        journal_writes: config.redshift.is_some(),
        shared: config.sqlite_shared,
        seed: config.sqlite_seed,
    };
    let background = Background::default();
    let needs_aws = config.redshift.is_some() || config.admin_token_secret_arn.is_some();
    let (backup, aws) = if needs_aws {
        // Opening the backup waits for the disk (a new file is created and synced); loading the
        // SDK's configuration waits for its files and the CPU, and reading the admin token's
        // secret for Secrets Manager: at start-up they overlap.
        tokio::join!(
            open_backup_off_thread(config.sqlite_path.clone(), options),
            aws_services(config, &background),
        )
    } else {
        let backup = Backup::open(&config.sqlite_path, options);
        let aws = AwsServices {
            redshift: None,
            metrics: Metrics::disabled(),
            admin: environment_admin_policy(config),
        };
        (backup, aws)
    };
    let settings = FailoverSettings {
        check_interval: config.check_interval,
        force_sqlite: config.force_sqlite,
        heartbeat_every: config.metrics_heartbeat,
        replica: config.replica,
        redshift_incomplete: config.redshift_incomplete.clone(),
    };
    let metrics = Arc::new(aws.metrics);
    let store = FailoverStore::new(aws.redshift, backup, settings, metrics, background.clone());
    let store = Arc::new(store.await);
    let state = AppState {
        store: Arc::clone(&store),
        admin: aws.admin,
    };
    App {
        router: api::router(state),
        store,
        background,
    }
}

impl App {
    /// The local server's upkeep: pulls the replica ahead of its readers, replays waiting
    /// writes and puts the minute's metrics, on a timer, until the process ends. (In Lambda the
    /// function's extension does the same after each answer.)
    pub fn run_upkeep(&self) {
        let store = Arc::clone(&self.store);
        let settings = *store.replica().settings();
        let tick = match settings.enabled() {
            true => (settings.max_staleness / 4).max(Duration::from_millis(50)),
            false => Duration::from_secs(1),
        };
        tokio::spawn(async move {
            let mut timer = tokio::time::interval(tick);
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                timer.tick().await;
                store
                    .maintain(store.redshift().map_or(tick, |r| r.timeout()))
                    .await;
            }
        });
    }
}

/// What start-up takes from AWS, all on one SDK configuration.
struct AwsServices {
    redshift: Option<RedshiftStore>,
    metrics: Metrics,
    admin: AdminPolicy,
}

/// Loads the SDK's configuration once, builds the Redshift and CloudWatch clients on it when
/// Redshift is configured, and reads the admin token of `ADMIN_TOKEN_SECRET_ARN` when that is
/// set (once per cold start).
async fn aws_services(config: &Config, background: &Background) -> AwsServices {
    let region_hint = config.redshift.as_ref().and_then(|r| r.region_hint.clone());
    let sdk = load_sdk_config(region_hint).await;
    let (redshift, metrics) = match &config.redshift {
        Some(redshift_config) => redshift_services(&sdk, config, redshift_config, background),
        None => (None, Metrics::disabled()),
    };
    let admin = match &config.admin_token_secret_arn {
        Some(arn) => admin_secret::admin_policy(&sdk, arn).await,
        None => environment_admin_policy(config),
    };
    AwsServices {
        redshift,
        metrics,
        admin,
    }
}

/// Who may use the admin endpoints when no secret holds the token: `ADMIN_TOKEN`, if set.
fn environment_admin_policy(config: &Config) -> AdminPolicy {
    AdminPolicy::new(config.admin_token.clone(), config.in_lambda)
}

/// [`Backup::open`] on the blocking pool.
async fn open_backup_off_thread(path: std::path::PathBuf, options: SqliteOptions) -> Backup {
    tokio::task::spawn_blocking(move || Backup::open(&path, options))
        .await
        // Opening never panics by design; should it, start-up fails as it would have inline.
        .unwrap_or_else(|failed| std::panic::resume_unwind(failed.into_panic()))
}

/// The Redshift store and the metrics client, on the SDK's configuration.
fn redshift_services(
    sdk: &SdkConfig,
    config: &Config,
    redshift_config: &RedshiftConfig,
    background: &Background,
) -> (Option<RedshiftStore>, Metrics) {
    let redshift = redshift_store(sdk, redshift_config, config.redshift_timeout, background);
    let metrics = Metrics::new(
        Some(cloudwatch_client(sdk)),
        config.metrics_namespace.clone(),
        config.function_name.clone(),
        background.clone(),
    );
    (Some(redshift), metrics)
}

/// The SDK's own configuration chain (environment, profile, Lambda role); the region falls back
/// to the one in `REDSHIFT_HOST`, then to us-east-1.
async fn load_sdk_config(region_hint: Option<String>) -> SdkConfig {
    let fallback_region = region_hint.unwrap_or_else(|| "us-east-1".to_string());
    let region = RegionProviderChain::default_provider().or_else(Region::new(fallback_region));
    aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .load()
        .await
}

fn redshift_store(
    sdk: &SdkConfig,
    redshift: &RedshiftConfig,
    deadline: Duration,
    background: &Background,
) -> RedshiftStore {
    // Backstops only: every call also runs under the request's own deadline.
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(deadline.min(Duration::from_secs(3)))
        .operation_timeout(deadline)
        .build();
    // A few quick retries for throttling and transient errors, within the request's deadline.
    let retries = RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(50))
        .with_max_backoff(Duration::from_millis(500));
    let meter = Arc::new(DataApiMeter::default());
    let client_config = aws_sdk_redshiftdata::config::Builder::from(sdk)
        .timeout_config(timeouts)
        .retry_config(retries)
        .interceptor(MeterInterceptor(Arc::clone(&meter)))
        .build();
    RedshiftStore::new(
        aws_sdk_redshiftdata::Client::from_conf(client_config),
        redshift.clone(),
        deadline,
        meter,
        background.clone(),
    )
}

fn cloudwatch_client(sdk: &SdkConfig) -> aws_sdk_cloudwatch::Client {
    let config = aws_sdk_cloudwatch::config::Builder::from(sdk)
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(metrics::PUT_TIMEOUT)
                .build(),
        )
        .retry_config(RetryConfig::disabled())
        .build();
    aws_sdk_cloudwatch::Client::from_conf(config)
}
