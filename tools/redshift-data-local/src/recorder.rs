//! What the endpoints received, kept so that tests can assert on it: request counts per
//! operation (the CloudWatch endpoint keeps its metric data itself).

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::lock;

/// Requests received per operation name (`ExecuteStatement`, `PutMetricData`...).
#[derive(Debug, Default)]
pub(crate) struct OperationCounter {
    counts: Mutex<BTreeMap<String, usize>>,
}

impl OperationCounter {
    pub(crate) fn record(&self, operation: &str) {
        *lock(&self.counts).entry(operation.to_owned()).or_default() += 1;
    }

    pub(crate) fn count(&self, operation: &str) -> usize {
        lock(&self.counts).get(operation).copied().unwrap_or(0)
    }

    pub(crate) fn all(&self) -> BTreeMap<String, usize> {
        lock(&self.counts).clone()
    }

    /// Requests of every operation together.
    pub(crate) fn total(&self) -> usize {
        lock(&self.counts).values().sum()
    }
}
