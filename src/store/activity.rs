//! What requests leave behind for the work between them (see `upkeep`): when reads came, how
//! old the replica was when it answered, and when the next replay may run.

use std::time::{Duration, Instant};

/// What the environment has been doing, for the work between requests.
#[derive(Debug)]
pub struct Activity {
    /// When a read was last answered from the replica.
    pub(super) last_read_at: Option<Instant>,
    /// The oldest the replica was when it answered, since the last minute's metrics.
    pub(super) max_age: Option<Duration>,
    pub(super) minute_started: Instant,
    /// The meter's throttle count when the last minute's metrics were put.
    pub(super) throttles_reported: u64,
    /// After a failed replay, the next waits until then.
    pub(super) replay_not_before: Option<Instant>,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            last_read_at: None,
            max_age: None,
            minute_started: Instant::now(),
            throttles_reported: 0,
            replay_not_before: None,
        }
    }
}
