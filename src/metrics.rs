//! CloudWatch metrics: every switch between databases, the running fallback, the replica's age
//! and the Data API's throttling, writes set aside, and writes a shutdown could not save.
//!
//! A put never delays an answer: it runs as [`Background`] work, with no retries and at most
//! [`PUT_TIMEOUT`]; in Lambda the function's extension lets it finish before the environment
//! freezes. A slow or failing CloudWatch never fails a request. Failures are logged once until
//! a put succeeds again, so an outage of CloudWatch does not flood the logs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use aws_sdk_cloudwatch::Client;

use crate::background::Background;

/// Longest time a put may take.
pub const PUT_TIMEOUT: Duration = Duration::from_millis(250);

/// The one dimension of every metric: the function's name, so that two stacks never mix.
pub const FUNCTION_NAME_DIMENSION: &str = "FunctionName";

/// Metric names, as the template's alarms and dashboard and the README use them.
pub mod names {
    /// 1 while Redshift serves, 0 while SQLite does.
    pub const DATABASE_SOURCE: &str = "DatabaseSource";
    /// One per fallback to SQLite caused by a Redshift failure.
    pub const FALLBACK_EVENTS: &str = "FallbackEvents";
    /// One per switch to SQLite asked for through `/db/force-sqlite`.
    pub const FORCED_FALLBACK_EVENTS: &str = "ForcedFallbackEvents";
    /// One per return to Redshift.
    pub const RECOVERY_EVENTS: &str = "RecoveryEvents";
    /// On recovery: how long the fallback that just ended lasted.
    pub const FALLBACK_DURATION: &str = "FallbackDurationSeconds";
    /// While on SQLite, at most once a minute: how long the fallback has lasted so far. 0 on the
    /// return to Redshift: the data point that clears the template's fallback-too-long alarm.
    pub const FALLBACK_ELAPSED: &str = "FallbackElapsedSeconds";
    /// One per journaled write that Redshift refused at replay and that was set aside (kept in
    /// the local backup with its reason), so that the rest of the journal could replay.
    pub const REJECTED_WRITES: &str = "RejectedWrites";
    /// One per Data API call answered `ThrottlingException`: the account's quota is shared by
    /// every environment and every other program, so throttling is watched, not failed over.
    pub const DATA_API_THROTTLES: &str = "DataApiThrottles";
    /// How old the local replica's last pull from Redshift is, in seconds: reads are answered
    /// from it only within the staleness bound, so a growing age means pulls are failing.
    pub const REPLICA_AGE: &str = "ReplicaAgeSeconds";
    /// Acknowledged writes still waiting for Redshift when the environment shut down without a
    /// shared journal: each one is lost with the environment's `/tmp`.
    pub const WRITES_LOST_AT_SHUTDOWN: &str = "WritesLostAtShutdown";
    /// Writes whose id Redshift already held with other content: the first write kept its
    /// content, the later one was not stored as sent.
    pub const CONFLICTING_WRITES: &str = "ConflictingWrites";
}

/// What the metrics report.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SwitchEvent {
    FellBack,
    Forced,
    Recovered {
        fallback: Duration,
    },
    /// A heartbeat while on the backup.
    StillOnSqlite {
        elapsed: Duration,
    },
    WritesSetAside {
        count: u64,
    },
    Conflicts {
        count: u64,
    },
    /// The minute's report on the Data API and the replica.
    Minute {
        throttles: u64,
        replica_age: Option<Duration>,
    },
    WritesLostAtShutdown {
        count: u64,
    },
}

pub struct Metrics {
    client: Option<Client>,
    namespace: String,
    function_name: String,
    /// Shared with puts that finish in the background.
    failure_logged: Arc<AtomicBool>,
    background: Background,
}

impl Metrics {
    /// `client` is `None` where nothing can switch (Redshift not configured).
    pub fn new(
        client: Option<Client>,
        namespace: String,
        function_name: String,
        background: Background,
    ) -> Self {
        Metrics {
            client,
            namespace,
            function_name,
            failure_logged: Arc::new(AtomicBool::new(false)),
            background,
        }
    }

    pub fn disabled() -> Self {
        Metrics::new(None, String::new(), String::new(), Background::default())
    }

    /// Puts the metrics of `event` as background work. Never fails, never waits.
    pub fn record(&self, event: SwitchEvent) {
        if let Some(put) = self.put(event) {
            self.background.spawn(put);
        }
    }

    /// Puts the metrics of `event` and waits for the put (at most [`PUT_TIMEOUT`]): at
    /// shutdown, when nothing comes after.
    pub async fn record_now(&self, event: SwitchEvent) {
        if let Some(put) = self.put(event) {
            put.await;
        }
    }

    fn put(&self, event: SwitchEvent) -> Option<impl std::future::Future<Output = ()> + Send> {
        let client = self.client.as_ref()?;
        let data = self.data_for(event);
        if data.is_empty() {
            return None;
        }
        let put = client
            .put_metric_data()
            .namespace(&self.namespace)
            .set_metric_data(Some(data))
            .send();
        let failure_logged = Arc::clone(&self.failure_logged);
        // The client's operation timeout (PUT_TIMEOUT) ends a put that gets no answer.
        Some(async move {
            match put.await {
                Ok(_) => failure_logged.store(false, Ordering::Relaxed),
                Err(err) => {
                    if !failure_logged.swap(true, Ordering::Relaxed) {
                        let reason = aws_sdk_cloudwatch::error::DisplayErrorContext(err);
                        tracing::warn!(reason = %reason, "CloudWatch metrics could not be put; requests are unaffected");
                    }
                }
            }
        })
    }

    fn data_for(&self, event: SwitchEvent) -> Vec<MetricDatum> {
        let count = |name| self.datum(name, 1.0, StandardUnit::Count);
        let source = |value| self.datum(names::DATABASE_SOURCE, value, StandardUnit::None);
        match event {
            SwitchEvent::FellBack => vec![source(0.0), count(names::FALLBACK_EVENTS)],
            SwitchEvent::Forced => vec![source(0.0), count(names::FORCED_FALLBACK_EVENTS)],
            SwitchEvent::Recovered { fallback } => vec![
                source(1.0),
                count(names::RECOVERY_EVENTS),
                self.datum(
                    names::FALLBACK_DURATION,
                    fallback.as_secs_f64(),
                    StandardUnit::Seconds,
                ),
                // The fallback is over: the alarm on the running duration clears on this point.
                self.datum(names::FALLBACK_ELAPSED, 0.0, StandardUnit::Seconds),
            ],
            SwitchEvent::StillOnSqlite { elapsed } => vec![
                source(0.0),
                self.datum(
                    names::FALLBACK_ELAPSED,
                    elapsed.as_secs_f64(),
                    StandardUnit::Seconds,
                ),
            ],
            SwitchEvent::WritesSetAside { count } => {
                vec![self.datum(names::REJECTED_WRITES, count as f64, StandardUnit::Count)]
            }
            SwitchEvent::Conflicts { count } => {
                vec![self.datum(names::CONFLICTING_WRITES, count as f64, StandardUnit::Count)]
            }
            SwitchEvent::Minute {
                throttles,
                replica_age,
            } => {
                let mut data = vec![self.datum(
                    names::DATA_API_THROTTLES,
                    throttles as f64,
                    StandardUnit::Count,
                )];
                if let Some(age) = replica_age {
                    data.push(self.datum(
                        names::REPLICA_AGE,
                        age.as_secs_f64(),
                        StandardUnit::Seconds,
                    ));
                }
                data
            }
            SwitchEvent::WritesLostAtShutdown { count } => vec![self.datum(
                names::WRITES_LOST_AT_SHUTDOWN,
                count as f64,
                StandardUnit::Count,
            )],
        }
    }

    fn datum(&self, name: &str, value: f64, unit: StandardUnit) -> MetricDatum {
        MetricDatum::builder()
            .metric_name(name)
            .value(value)
            .unit(unit)
            .timestamp(std::time::SystemTime::now().into())
            .dimensions(
                Dimension::builder()
                    .name(FUNCTION_NAME_DIMENSION)
                    .value(&self.function_name)
                    .build(),
            )
            .build()
    }
}
