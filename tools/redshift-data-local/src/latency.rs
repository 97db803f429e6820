//! The time AWS takes: a round trip per Data API call and a run time per statement.
//!
//! On AWS a Data API call costs a network round trip and a statement hundreds of milliseconds
//! end to end, however small; PostgreSQL on the same machine answers in microseconds. A design
//! that spends calls or statements per request looks free against such a stand-in, so both
//! costs can be added, at start or while running. They default to zero so that tests stay fast.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Both delays, shared by the Data API's handlers and statements and by the control API.
#[derive(Debug, Default)]
pub(crate) struct Latency {
    round_trip_nanos: AtomicU64,
    statement_nanos: AtomicU64,
}

impl Latency {
    pub(crate) fn new(round_trip: Duration, statement_time: Duration) -> Self {
        let latency = Self::default();
        latency.set_round_trip(round_trip);
        latency.set_statement_time(statement_time);
        latency
    }

    /// The network's time for one call, added to whatever time the call itself takes.
    pub(crate) fn round_trip(&self) -> Duration {
        Duration::from_nanos(self.round_trip_nanos.load(Ordering::Relaxed))
    }

    /// The time each SQL statement takes before it runs (queue, planning, compilation): all of
    /// an ExecuteStatement, each of a batch's.
    pub(crate) fn statement_time(&self) -> Duration {
        Duration::from_nanos(self.statement_nanos.load(Ordering::Relaxed))
    }

    pub(crate) fn set_round_trip(&self, delay: Duration) {
        self.round_trip_nanos.store(nanos(delay), Ordering::Relaxed);
    }

    pub(crate) fn set_statement_time(&self, delay: Duration) {
        self.statement_nanos.store(nanos(delay), Ordering::Relaxed);
    }
}

/// Delays beyond 584 years saturate.
fn nanos(delay: Duration) -> u64 {
    u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX)
}
