//! Counts the Data API calls this environment makes and how many were throttled, the SDK's
//! retries included: the account's quotas count every attempt, so the meter does too. It sits in
//! the SDK client as an interceptor, where each attempt and its answer pass.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use aws_sdk_redshiftdata::error::ProvideErrorMetadata;
use aws_sdk_redshiftdata::operation::{
    batch_execute_statement::BatchExecuteStatementError, cancel_statement::CancelStatementError,
    describe_statement::DescribeStatementError, execute_statement::ExecuteStatementError,
    get_statement_result::GetStatementResultError,
};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextRef, Error, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use super::errors::is_throttling_code;

/// Calls and throttles: totals since start, and the last minute's.
#[derive(Debug, Default)]
pub struct DataApiMeter {
    calls: AtomicU64,
    throttles: AtomicU64,
    last_minute: Mutex<LastMinute>,
}

/// What the meter shows: counts over the last minute, and totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MeterReading {
    pub calls_last_minute: u64,
    pub throttles_last_minute: u64,
    pub calls: u64,
    pub throttles: u64,
}

impl DataApiMeter {
    pub fn reading(&self) -> MeterReading {
        let (calls_last_minute, throttles_last_minute) = self.lock().sum(Instant::now());
        MeterReading {
            calls_last_minute,
            throttles_last_minute,
            calls: self.calls.load(Ordering::Relaxed),
            throttles: self.throttles.load(Ordering::Relaxed),
        }
    }

    fn called(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.lock().add(Instant::now(), 1, 0);
    }

    fn throttled(&self) {
        self.throttles.fetch_add(1, Ordering::Relaxed);
        self.lock().add(Instant::now(), 0, 1);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LastMinute> {
        self.last_minute
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Sixty one-second buckets of (calls, throttles), the oldest overwritten.
#[derive(Debug)]
struct LastMinute {
    started: Instant,
    /// Per bucket: which second since `started` it holds, and its counts.
    buckets: [(u64, u64, u64); 60],
}

impl Default for LastMinute {
    fn default() -> Self {
        LastMinute {
            started: Instant::now(),
            buckets: [(u64::MAX, 0, 0); 60],
        }
    }
}

impl LastMinute {
    fn second(&self, now: Instant) -> u64 {
        now.duration_since(self.started).as_secs()
    }

    fn add(&mut self, now: Instant, calls: u64, throttles: u64) {
        let second = self.second(now);
        let bucket = &mut self.buckets[(second % 60) as usize];
        if bucket.0 != second {
            *bucket = (second, 0, 0);
        }
        bucket.1 += calls;
        bucket.2 += throttles;
    }

    fn sum(&self, now: Instant) -> (u64, u64) {
        let second = self.second(now);
        self.buckets
            .iter()
            .filter(|(at, _, _)| *at != u64::MAX && second.saturating_sub(*at) < 60)
            .fold((0, 0), |(c, t), (_, calls, throttles)| {
                (c + calls, t + throttles)
            })
    }
}

/// The interceptor that feeds a [`DataApiMeter`].
#[derive(Clone, Debug)]
pub struct MeterInterceptor(pub Arc<DataApiMeter>);

impl Intercept for MeterInterceptor {
    fn name(&self) -> &'static str {
        "DataApiMeter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.called();
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let code = match context.output_or_error() {
            Some(Err(err)) => err.as_operation_error().and_then(error_code),
            _ => None,
        };
        if code.is_some_and(is_throttling_code) {
            self.0.throttled();
        }
        Ok(())
    }
}

/// The error code of an operation error of any of the Data API operations the service uses.
fn error_code(error: &Error) -> Option<&str> {
    macro_rules! code_of {
        ($($ty:ty),*) => {
            $(if let Some(e) = error.downcast_ref::<$ty>() { return e.code(); })*
        };
    }
    code_of!(
        ExecuteStatementError,
        BatchExecuteStatementError,
        DescribeStatementError,
        GetStatementResultError,
        CancelStatementError
    );
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_last_minute_forgets_older_seconds() {
        let mut minute = LastMinute::default();
        let start = minute.started;
        minute.add(start, 3, 1);
        minute.add(start + Duration::from_secs(30), 2, 0);
        assert_eq!(minute.sum(start + Duration::from_secs(31)), (5, 1));
        assert_eq!(minute.sum(start + Duration::from_secs(61)), (2, 0));
        // The bucket of second 0 is reused at second 60.
        minute.add(start + Duration::from_secs(60), 1, 0);
        assert_eq!(minute.sum(start + Duration::from_secs(60)), (3, 0));
    }
}
