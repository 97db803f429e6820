//! The Data API's request quotas: account-wide token buckets, one per operation.
//!
//! AWS meters the Data API per account and Region: every client of the account (every Lambda
//! environment, every other program) draws on the same per-operation rate, and a call beyond it
//! is refused with `ThrottlingException` ("Rate exceeded", HTTP 400). A stand-in without quotas
//! hides what that does to a fleet, so the quotas are on by default, with AWS's figures, and
//! shared by every client of one stand-in as they are by every client of one account.
//!
//! The figures are the defaults AWS publishes under "Quotas for Amazon Redshift Data API" in
//! the Amazon Redshift Management Guide
//! (<https://docs.aws.amazon.com/redshift/latest/mgmt/amazon-redshift-limits.html>), in calls
//! per second. AWS documents no burst capacity for them, so a bucket holds one second's worth.
//! AWS also meters operations the stand-in does not serve (ListStatements, DescribeTable,
//! GetStatementResultV2, ...): they are refused as unknown before any quota applies, so they
//! have no bucket here.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::lock;

/// AWS's default quotas, in calls per second, for the operations the stand-in serves.
pub const AWS_QUOTAS: [(&str, u32); 5] = [
    ("ExecuteStatement", 30),
    ("BatchExecuteStatement", 20),
    ("GetStatementResult", 20),
    ("DescribeStatement", 100),
    ("CancelStatement", 10),
];

/// Why a quota or an operation name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    /// Not an operation the stand-in serves: a typo would otherwise set a quota nothing uses.
    #[error("{0:?} is not a Data API operation of the stand-in ({ops})", ops = operation_names())]
    UnknownOperation(String),
    /// Not `RATE` or `RATE/BURST` in whole calls.
    #[error("{0:?} is not a quota: give calls per second, optionally /burst (e.g. 30 or 30/60)")]
    InvalidQuota(String),
    /// A positive rate with a burst of 0: the bucket holds no token, so the rate would never
    /// admit a call. Refused because the rate says calls were meant to pass.
    #[error(
        "a quota of {} calls per second with a burst of 0 admits no call at all: give a burst of at least 1 (or 0/0 to refuse every call)",
        .0.per_second
    )]
    ZeroBurst(Quota),
}

fn operation_names() -> String {
    AWS_QUOTAS.map(|(name, _)| name).join(", ")
}

/// Whether the stand-in serves `operation`, so that a quota on it means something.
fn check_operation(operation: &str) -> Result<(), QuotaError> {
    if AWS_QUOTAS.iter().any(|(name, _)| *name == operation) {
        Ok(())
    } else {
        Err(QuotaError::UnknownOperation(operation.to_owned()))
    }
}

/// One operation's quota: a steady rate, and how many calls may arrive at once after a quiet
/// spell (the bucket's capacity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Quota {
    /// Calls per second refilled into the bucket; 0 refuses every call once the burst is spent.
    pub per_second: u32,
    /// Calls the bucket holds when full: at least 1 unless the rate is 0 too, since a bucket
    /// that holds nothing admits no call whatever its rate.
    pub burst: u32,
}

impl Quota {
    /// `calls` per second with a burst of one second's worth, as AWS's quotas behave when
    /// nothing else is documented.
    pub fn per_second(calls: u32) -> Self {
        Self {
            per_second: calls,
            burst: calls,
        }
    }

    /// Refuses a quota that cannot mean what it says: a rate with no burst to hold its tokens.
    /// 0/0, which refuses every call, is allowed: it says so.
    fn check(self) -> Result<Self, QuotaError> {
        if self.burst == 0 && self.per_second > 0 {
            Err(QuotaError::ZeroBurst(self))
        } else {
            Ok(self)
        }
    }
}

/// Whether `quota` may be set on `operation` (`None`, lifting it, always may).
fn check_change(operation: &str, quota: Option<Quota>) -> Result<(), QuotaError> {
    check_operation(operation)?;
    match quota {
        Some(quota) => quota.check().map(|_| ()),
        None => Ok(()),
    }
}

/// `30` (burst 30) or `30/60` (burst 60).
impl FromStr for Quota {
    type Err = QuotaError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || QuotaError::InvalidQuota(text.to_owned());
        let (rate, burst) = match text.split_once('/') {
            Some((rate, burst)) => (rate, Some(burst)),
            None => (text, None),
        };
        let per_second: u32 = rate.trim().parse().map_err(|_| invalid())?;
        let burst = match burst {
            Some(burst) => burst.trim().parse().map_err(|_| invalid())?,
            None => per_second,
        };
        Self { per_second, burst }.check()
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.per_second, self.burst)
    }
}

/// A quota per operation; an operation without one is not limited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quotas {
    by_operation: BTreeMap<String, Quota>,
}

impl Quotas {
    /// AWS's published defaults ([`AWS_QUOTAS`]).
    pub fn aws() -> Self {
        let by_operation = AWS_QUOTAS
            .iter()
            .map(|(name, rate)| ((*name).to_owned(), Quota::per_second(*rate)))
            .collect();
        Self { by_operation }
    }

    /// Sets (`Some`) or lifts (`None`) the quota of one operation.
    pub fn set(&mut self, operation: &str, quota: Option<Quota>) -> Result<(), QuotaError> {
        check_change(operation, quota)?;
        match quota {
            Some(quota) => self.by_operation.insert(operation.to_owned(), quota),
            None => self.by_operation.remove(operation),
        };
        Ok(())
    }

    /// The same quotas with one operation's changed: for building options in one expression.
    pub fn with(mut self, operation: &str, quota: Option<Quota>) -> Result<Self, QuotaError> {
        self.set(operation, quota)?;
        Ok(self)
    }

    pub fn get(&self, operation: &str) -> Option<Quota> {
        self.by_operation.get(operation).copied()
    }

    /// Every limited operation and its quota, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Quota)> {
        self.by_operation
            .iter()
            .map(|(name, q)| (name.as_str(), *q))
    }

    pub fn is_empty(&self) -> bool {
        self.by_operation.is_empty()
    }
}

/// One operation's bucket of call tokens.
#[derive(Debug)]
struct Bucket {
    quota: Quota,
    tokens: f64,
    refilled_at: Instant,
}

impl Bucket {
    /// A full bucket: a quota set (at start or at runtime) begins with its whole burst.
    fn full(quota: Quota) -> Self {
        Self {
            quota,
            tokens: f64::from(quota.burst),
            refilled_at: Instant::now(),
        }
    }

    /// Takes one token if there is one. A refused call takes nothing: it had nothing to take.
    fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        let capacity = f64::from(self.quota.burst);
        self.tokens = (self.tokens + elapsed * f64::from(self.quota.per_second)).min(capacity);
        self.refilled_at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug, Default)]
struct LimiterState {
    buckets: BTreeMap<String, Bucket>,
    throttled: BTreeMap<String, usize>,
}

impl LimiterState {
    /// Sets (a full bucket) or lifts one operation's quota, which must have been checked.
    fn put(&mut self, operation: &str, quota: Option<Quota>) {
        match quota {
            Some(quota) => self
                .buckets
                .insert(operation.to_owned(), Bucket::full(quota)),
            None => self.buckets.remove(operation),
        };
    }
}

/// The buckets of one stand-in, shared by every client, and the count of calls each refused.
#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    state: Mutex<LimiterState>,
}

impl RateLimiter {
    pub(crate) fn new(quotas: Option<Quotas>) -> Self {
        let limiter = Self::default();
        limiter.replace(quotas);
        limiter
    }

    /// Whether a call of `operation` arriving now is within its quota. Every call is checked,
    /// an SDK's retries included; a refused one is counted as throttled.
    pub(crate) fn admit(&self, operation: &str) -> bool {
        let mut state = lock(&self.state);
        let admitted = match state.buckets.get_mut(operation) {
            Some(bucket) => bucket.try_take(Instant::now()),
            None => true,
        };
        if !admitted {
            *state.throttled.entry(operation.to_owned()).or_default() += 1;
        }
        admitted
    }

    /// Replaces every quota (`None`: no quotas at all); the new buckets start full.
    pub(crate) fn replace(&self, quotas: Option<Quotas>) {
        let buckets = quotas
            .unwrap_or_default()
            .by_operation
            .into_iter()
            .map(|(name, quota)| (name, Bucket::full(quota)))
            .collect();
        lock(&self.state).buckets = buckets;
    }

    /// Sets or lifts one operation's quota; a new bucket starts full.
    pub(crate) fn set(&self, operation: &str, quota: Option<Quota>) -> Result<(), QuotaError> {
        check_change(operation, quota)?;
        lock(&self.state).put(operation, quota);
        Ok(())
    }

    /// Sets or lifts several operations' quotas, all or none: every change is checked before
    /// any applies, so a typo in one leaves the others as they were.
    pub(crate) fn set_all(
        &self,
        changes: &BTreeMap<String, Option<Quota>>,
    ) -> Result<(), QuotaError> {
        for (operation, quota) in changes {
            check_change(operation, *quota)?;
        }
        let mut state = lock(&self.state);
        for (operation, quota) in changes {
            state.put(operation, *quota);
        }
        Ok(())
    }

    pub(crate) fn quotas(&self) -> Quotas {
        let by_operation = lock(&self.state)
            .buckets
            .iter()
            .map(|(name, bucket)| (name.clone(), bucket.quota))
            .collect();
        Quotas { by_operation }
    }

    pub(crate) fn throttle_count(&self, operation: &str) -> usize {
        lock(&self.state)
            .throttled
            .get(operation)
            .copied()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_bucket_admits_its_burst_then_refills_at_its_rate() {
        let start = Instant::now();
        let mut bucket = Bucket::full(Quota::per_second(10));
        bucket.refilled_at = start;
        assert_eq!((0..12).filter(|_| bucket.try_take(start)).count(), 10);
        assert!(!bucket.try_take(start + Duration::from_millis(50)));
        assert!(bucket.try_take(start + Duration::from_millis(160)));
        // A long pause refills no more than the burst.
        let later = start + Duration::from_secs(60);
        assert_eq!((0..20).filter(|_| bucket.try_take(later)).count(), 10);
    }

    #[test]
    fn refused_calls_are_counted_per_operation() {
        let limiter = RateLimiter::new(Some(Quotas::aws()));
        limiter
            .set("CancelStatement", Some(Quota::per_second(0)))
            .unwrap();
        assert!(!limiter.admit("CancelStatement"));
        assert!(limiter.admit("DescribeStatement"));
        assert!(
            limiter.admit("NoSuchOperation"),
            "unknown operations are not limited"
        );
        assert_eq!(limiter.throttle_count("CancelStatement"), 1);
        assert_eq!(limiter.throttle_count("DescribeStatement"), 0);
    }

    #[test]
    fn quotas_parse_and_refuse_unknown_operations() {
        assert_eq!("30".parse(), Ok(Quota::per_second(30)));
        assert_eq!(
            "5/40".parse(),
            Ok(Quota {
                per_second: 5,
                burst: 40
            })
        );
        assert!("fast".parse::<Quota>().is_err());
        assert_eq!(
            Quotas::aws().with("ExecuteStatment", None),
            Err(QuotaError::UnknownOperation("ExecuteStatment".into()))
        );
        assert_eq!(
            Quotas::aws().get("DescribeStatement"),
            Some(Quota::per_second(100))
        );
    }

    #[test]
    fn a_rate_with_a_burst_of_zero_is_refused_everywhere() {
        let never = Quota {
            per_second: 5,
            burst: 0,
        };
        assert_eq!("5/0".parse::<Quota>(), Err(QuotaError::ZeroBurst(never)));
        assert!(
            QuotaError::ZeroBurst(never)
                .to_string()
                .contains("burst of 0 admits no call"),
            "the error says why"
        );
        assert_eq!(
            Quotas::aws().with("ExecuteStatement", Some(never)),
            Err(QuotaError::ZeroBurst(never))
        );
        let limiter = RateLimiter::new(Some(Quotas::aws()));
        assert_eq!(
            limiter.set("ExecuteStatement", Some(never)),
            Err(QuotaError::ZeroBurst(never))
        );
        // Refusing every call on purpose says so, and stays allowed.
        assert_eq!("0/0".parse(), Ok(Quota::per_second(0)));
        assert_eq!(limiter.quotas(), Quotas::aws(), "nothing changed");
    }

    #[test]
    fn a_set_of_changes_with_one_bad_change_applies_none() {
        let limiter = RateLimiter::new(Some(Quotas::aws()));
        let changes = BTreeMap::from([
            ("CancelStatement".to_owned(), None),
            ("DescribeStatement".to_owned(), Some(Quota::per_second(7))),
            ("ListStatements".to_owned(), Some(Quota::per_second(7))),
        ]);
        assert_eq!(
            limiter.set_all(&changes),
            Err(QuotaError::UnknownOperation("ListStatements".into()))
        );
        assert_eq!(limiter.quotas(), Quotas::aws());
    }
}
