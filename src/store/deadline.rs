//! One deadline per request: everything a request does on Redshift (replay, the statement,
//! DescribeStatement, every page of GetStatementResult) shares it, so a slow or hung Redshift
//! costs at most `REDSHIFT_TIMEOUT_MS`, however many calls the work takes.

use std::future::Future;
use std::time::{Duration, Instant};

use super::StoreError;

/// The Data API holds an answer for at most this long (`WaitTimeSeconds`).
const MAX_SERVER_WAIT_SECS: u64 = 30;

/// Room kept after a server-side wait for its answer to come back: a call still waiting when
/// the deadline passes has not told us its statement's id, so that statement could not be
/// cancelled.
const WAIT_SLACK: Duration = Duration::from_millis(250);

#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    at: Instant,
}

impl Deadline {
    pub fn after(budget: Duration) -> Self {
        Deadline {
            at: Instant::now() + budget,
        }
    }

    /// The same deadline, `by` later.
    pub fn extended(&self, by: Duration) -> Deadline {
        Deadline { at: self.at + by }
    }

    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// Runs `work` until it ends or the deadline passes (a timeout error then).
    pub async fn run<T>(
        &self,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout_at(self.at.into(), work)
            .await
            .unwrap_or_else(|_| Err(StoreError::timeout()))
    }

    /// `WaitTimeSeconds` for a Data API call: whole seconds that fit in what is left with
    /// [`WAIT_SLACK`] to spare, at most the API's 30. `None` when less than a second would be
    /// left: the caller polls.
    pub fn server_wait_secs(&self) -> Option<i32> {
        let secs = self
            .remaining()
            .saturating_sub(WAIT_SLACK)
            .as_secs()
            .min(MAX_SERVER_WAIT_SECS);
        // Bounded by MAX_SERVER_WAIT_SECS, so the conversion cannot fail.
        (secs > 0).then(|| i32::try_from(secs).unwrap_or(30))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_wait_never_exceeds_what_is_left() {
        assert_eq!(
            Deadline::after(Duration::from_millis(1_999)).server_wait_secs(),
            Some(1)
        );
        // Under a second and the slack: a wait of a second could outlast the deadline.
        assert_eq!(
            Deadline::after(Duration::from_millis(1_200)).server_wait_secs(),
            None
        );
        assert_eq!(
            Deadline::after(Duration::from_millis(900)).server_wait_secs(),
            None
        );
        assert_eq!(
            Deadline::after(Duration::from_secs(90)).server_wait_secs(),
            Some(30)
        );
    }

    #[tokio::test]
    async fn work_past_the_deadline_is_a_timeout() {
        let deadline = Deadline::after(Duration::from_millis(20));
        let slow = async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(())
        };
        let err = deadline.run(slow).await.unwrap_err();
        assert!(err.is_timeout());
        assert_eq!(deadline.remaining(), Duration::ZERO);
    }
}
