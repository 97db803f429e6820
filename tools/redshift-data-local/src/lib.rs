//! A local stand-in for the Amazon Redshift Data API and Amazon CloudWatch.
//!
//! No Redshift cluster can be reached from development machines or CI, so
//! this crate speaks the Data API's wire protocol (the one `aws-sdk-redshiftdata`
//! uses) and runs the SQL on a real PostgreSQL server, the engine Redshift
//! descends from. It keeps the Data API's semantics (asynchronous statements,
//! typed result fields, paged results, the API's error types), rejects SQL
//! that Redshift would reject where that is cheap to detect, and misbehaves
//! on demand ([`Fault`]) so that every failure path of a client can be tested.
//! A CloudWatch endpoint captures the metrics a client puts, and a
//! Secrets Manager endpoint ([`SecretsManager`]) answers `GetSecretValue`.
//!
//! It is never kinder than AWS, because a kind stand-in hides the failures that
//! matter: it enforces the Data API's account-wide quotas ([`Quotas`], AWS's
//! figures by default, shared by every client) and its limit on active statements
//! ([`AWS_ACTIVE_STATEMENTS`]), can take AWS's time (a round trip per call, a run
//! time per SQL statement), and isolates transactions as Redshift does
//! ([`Isolation`]), Redshift's table-level write conflicts (error 1023) included.
//!
//! Every statement runs in the database of [`Options::database_url`]; the
//! `Database` member of requests is only echoed back.
//!
//! ```no_run
//! # async fn demo() -> Result<(), redshift_data_local::StandInError> {
//! use redshift_data_local::{Options, StandIn, create_scratch_database};
//! let url = create_scratch_database("postgres://postgres@127.0.0.1:55432/postgres").await?;
//! let standin = StandIn::start(Options::new(url)).await?;
//! // point the SDK at it: AWS_ENDPOINT_URL_REDSHIFT_DATA=standin.data_api_url()
//! standin.shutdown().await;
//! # Ok(()) }
//! ```

mod active_statements;
mod cloudwatch;
mod control;
mod data_api;
mod endpoint;
mod error;
mod fault;
mod isolation;
mod latency;
mod quota;
mod recorder;
mod scratch;
mod secrets_manager;
mod server;
mod sql;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::error;

pub use crate::active_statements::AWS_ACTIVE_STATEMENTS;
pub use crate::cloudwatch::{CapturedMetric, StatisticValues};
pub use crate::error::StandInError;
pub use crate::fault::Fault;
pub use crate::isolation::{Isolation, UnknownIsolation};
pub use crate::quota::{AWS_QUOTAS, Quota, QuotaError, Quotas};
pub use crate::scratch::create_scratch_database;
pub use crate::secrets_manager::SecretsManager;

use crate::active_statements::ActiveStatementsLimit;
use crate::cloudwatch::CloudWatch;
use crate::cloudwatch::MetricStore;
use crate::control::Controls;
use crate::data_api::{DataApi, DataApiParts, Database};
use crate::endpoint::Endpoint;
use crate::fault::FaultSwitch;
use crate::latency::Latency;
use crate::quota::RateLimiter;
use crate::recorder::OperationCounter;
use crate::server::HttpServer;

/// Rows per GetStatementResult page unless told otherwise.
pub const DEFAULT_PAGE_SIZE: usize = 1000;

/// How to start a [`StandIn`].
#[derive(Debug, Clone)]
pub struct Options {
    /// PostgreSQL connection string of the database the statements run in.
    pub database_url: String,
    /// Rows per GetStatementResult page (at least 1).
    pub page_size: usize,
    /// Where the Data API listens; port 0 picks a free port.
    pub data_api_addr: SocketAddr,
    /// Where the CloudWatch endpoint listens; port 0 picks a free port.
    pub cloudwatch_addr: SocketAddr,
    /// The Data API's account-wide quotas per operation; `None` lifts them all.
    pub quotas: Option<Quotas>,
    /// The most statements active (submitted, not yet ended) at once, beyond which a submission
    /// is refused with `ActiveStatementsExceededException`; `None` lifts the limit.
    pub active_statements: Option<usize>,
    /// The network's round trip, added to the time every Data API call takes (not overlapped
    /// with it, as on AWS).
    pub round_trip: Duration,
    /// The time each SQL statement takes before it runs (the queue, planning, compilation): all
    /// of an ExecuteStatement, and each of a batch's in turn, as AWS runs a batch's statements
    /// one after another.
    pub statement_time: Duration,
    /// How concurrent transactions are isolated.
    pub isolation: Isolation,
}

impl Options {
    /// Defaults: pages of [`DEFAULT_PAGE_SIZE`] rows, both endpoints on free ports of
    /// 127.0.0.1, AWS's quotas ([`Quotas::aws`]) and limit on active statements
    /// ([`AWS_ACTIVE_STATEMENTS`]), SERIALIZABLE, and no added latency (tests need speed; a
    /// benchmark sets AWS-like delays itself).
    pub fn new(database_url: impl Into<String>) -> Self {
        let any_local_port = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        Self {
            database_url: database_url.into(),
            page_size: DEFAULT_PAGE_SIZE,
            data_api_addr: any_local_port,
            cloudwatch_addr: any_local_port,
            quotas: Some(Quotas::aws()),
            active_statements: Some(AWS_ACTIVE_STATEMENTS),
            round_trip: Duration::ZERO,
            statement_time: Duration::ZERO,
            isolation: Isolation::default(),
        }
    }
}

/// A running stand-in: the Data API and CloudWatch endpoints, and optionally
/// a control API. Everything stops on [`StandIn::shutdown`] or when dropped.
pub struct StandIn {
    controls: Controls,
    control_servers: Mutex<Vec<HttpServer>>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl StandIn {
    /// Checks that PostgreSQL answers and installs the Redshift functions it lacks
    /// (`GETDATE()`), then starts both endpoints. Must be called inside a Tokio runtime, which
    /// then runs the stand-in.
    pub async fn start(opts: Options) -> Result<StandIn, StandInError> {
        let database = Database::new(&opts.database_url, opts.isolation)?;
        database.prepare().await?;
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let operations = Arc::new(OperationCounter::default());
        let metrics = Arc::new(MetricStore::default());
        let limiter = Arc::new(RateLimiter::new(opts.quotas));
        let latency = Arc::new(Latency::new(opts.round_trip, opts.statement_time));
        let active_statements = Arc::new(ActiveStatementsLimit::new(opts.active_statements));

        let data_fault = FaultSwitch::default();
        let data_api = DataApi::new(DataApiParts {
            database,
            page_size: opts.page_size,
            fault: data_fault.clone(),
            operations: operations.clone(),
            limiter: limiter.clone(),
            latency: latency.clone(),
            active_statements: active_statements.clone(),
            shutdown: shutdown.clone(),
            tasks: tasks.clone(),
        });
        let data_router = data_api::router(Arc::new(data_api));
        let data_server = HttpServer::start(
            "data-api",
            opts.data_api_addr,
            data_router,
            shutdown.clone(),
            tasks.clone(),
        )?;

        let cloudwatch_fault = FaultSwitch::default();
        let cloudwatch = CloudWatch {
            fault: cloudwatch_fault.clone(),
            operations: operations.clone(),
            metrics: metrics.clone(),
        };
        let cloudwatch_router = cloudwatch::router(Arc::new(cloudwatch));
        let cloudwatch_server = HttpServer::start(
            "cloudwatch",
            opts.cloudwatch_addr,
            cloudwatch_router,
            shutdown.clone(),
            tasks.clone(),
        )?;

        Ok(StandIn {
            controls: Controls {
                data_api: Arc::new(Endpoint::new(data_server, data_fault)),
                cloudwatch: Arc::new(Endpoint::new(cloudwatch_server, cloudwatch_fault)),
                operations,
                metrics,
                limiter,
                latency,
                active_statements,
            },
            control_servers: Mutex::new(Vec::new()),
            shutdown,
            tasks,
        })
    }

    /// The Data API's URL, for `AWS_ENDPOINT_URL_REDSHIFT_DATA`.
    pub fn data_api_url(&self) -> String {
        self.controls.data_api.server.url()
    }

    /// The CloudWatch endpoint's URL, for `AWS_ENDPOINT_URL_CLOUDWATCH`.
    pub fn cloudwatch_url(&self) -> String {
        self.controls.cloudwatch.server.url()
    }

    /// Makes the Data API misbehave, from the next request or connection on.
    pub fn set_fault(&self, fault: Fault) {
        log_failure(self.controls.data_api.set_fault(fault));
    }

    pub fn clear_fault(&self) {
        log_failure(self.controls.data_api.clear_fault());
    }

    /// Makes the CloudWatch endpoint misbehave (`Hang`, `HttpStatus`,
    /// `Throttle`, `Slow`, `RefuseConnections` apply to it).
    pub fn set_cloudwatch_fault(&self, fault: Fault) {
        log_failure(self.controls.cloudwatch.set_fault(fault));
    }

    pub fn clear_cloudwatch_fault(&self) {
        log_failure(self.controls.cloudwatch.clear_fault());
    }

    /// Requests received for an operation: a Data API `X-Amz-Target`
    /// operation (`ExecuteStatement`, ...) or a CloudWatch one (`PutMetricData`).
    /// Requests refused by a fault or a quota count; refused connections do not.
    pub fn operation_count(&self, operation: &str) -> usize {
        self.controls.operations.count(operation)
    }

    /// Data API calls of `operation` refused with `ThrottlingException` because they were
    /// beyond its quota (not those refused by an injected [`Fault::Throttle`]).
    pub fn throttle_count(&self, operation: &str) -> usize {
        self.controls.limiter.throttle_count(operation)
    }

    /// The quotas in force; empty when they are lifted.
    pub fn quotas(&self) -> Quotas {
        self.controls.limiter.quotas()
    }

    /// Replaces every quota (`None` lifts them all); the buckets start full.
    pub fn set_quotas(&self, quotas: Option<Quotas>) {
        self.controls.limiter.replace(quotas);
    }

    /// Sets (`Some`) or lifts (`None`) one operation's quota; its bucket starts full.
    pub fn set_quota(&self, operation: &str, quota: Option<Quota>) -> Result<(), QuotaError> {
        self.controls.limiter.set(operation, quota)
    }

    /// The most statements that may be active at once; `None` when there is no limit.
    pub fn active_statements_limit(&self) -> Option<usize> {
        self.controls.active_statements.get()
    }

    /// Sets (`Some`) or lifts (`None`) the limit on active statements, for submissions from
    /// now on; statements already active stay so.
    pub fn set_active_statements_limit(&self, limit: Option<usize>) {
        self.controls.active_statements.set(limit);
    }

    /// Adds `delay` to every Data API call, on top of the time the call itself takes.
    pub fn set_round_trip(&self, delay: Duration) {
        self.controls.latency.set_round_trip(delay);
    }

    /// Makes each SQL statement submitted from now on (each of a batch's in turn) run at least
    /// `delay`.
    pub fn set_statement_time(&self, delay: Duration) {
        self.controls.latency.set_statement_time(delay);
    }

    pub fn round_trip(&self) -> Duration {
        self.controls.latency.round_trip()
    }

    pub fn statement_time(&self) -> Duration {
        self.controls.latency.statement_time()
    }

    /// Every datum of every PutMetricData received, in order.
    pub fn metrics(&self) -> Vec<CapturedMetric> {
        self.controls.metrics.all()
    }

    pub fn clear_metrics(&self) {
        self.controls.metrics.clear();
    }

    /// Serves the control API (fault injection over HTTP) on `addr` and
    /// returns its URL. It stops with the stand-in.
    pub async fn serve_control(&self, addr: SocketAddr) -> Result<String, StandInError> {
        let router = control::router(self.controls.clone());
        let server = HttpServer::start(
            "control",
            addr,
            router,
            self.shutdown.clone(),
            self.tasks.clone(),
        )?;
        let url = server.url();
        lock(&self.control_servers).push(server);
        Ok(url)
    }

    /// Stops listening, drops open connections, aborts running statements
    /// and waits for all of that to finish.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.controls.data_api.server.close();
        self.controls.cloudwatch.server.close();
        for server in lock(&self.control_servers).iter() {
            server.close();
        }
        self.tasks.close();
        self.tasks.wait().await;
    }
}

impl Drop for StandIn {
    /// A stand-in dropped without `shutdown` (a failing test) still stops.
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Locks `mutex` even when a panic poisoned it: every critical section in this crate is one
/// read or one update, so a panic cannot have left the value half-changed.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn log_failure(result: Result<(), StandInError>) {
    if let Err(err) = result {
        error!(error = %err, "could not apply the fault change");
    }
}
