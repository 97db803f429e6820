//! Work that finishes after a request has its answer: metric puts, cancels of statements
//! abandoned at a deadline, copies into the backup.
//!
//! Lambda freezes the environment as soon as the function has answered and every extension has
//! asked for its next event; work merely left running would go on only at the next thaw, maybe
//! never. So such work is spawned here, where it is counted: the function's internal extension
//! waits for it ([`Background::settle`]) after each answer, before it lets the environment
//! freeze. The local server needs no waiting: its tasks simply run.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

/// A count of the work under way, and a way to wait for it. Cheap to clone.
#[derive(Clone, Default)]
pub struct Background {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    running: AtomicUsize,
    idle: Notify,
}

impl Background {
    /// Runs `work` on its own task, counted until it ends.
    pub fn spawn<F>(&self, work: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.inner.running.fetch_add(1, Ordering::AcqRel);
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move {
            // Counted down even if `work` panics: the guard runs on unwind.
            let _done = Done(inner);
            work.await;
        });
    }

    /// How many pieces of work are still running.
    pub fn running(&self) -> usize {
        self.inner.running.load(Ordering::Acquire)
    }

    /// Waits until no work runs, or `budget` has passed. True when everything finished.
    pub async fn settle(&self, budget: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.inner.idle.notified();
                if self.running() == 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(budget, wait).await.is_ok()
    }
}

struct Done(Arc<Inner>);

impl Drop for Done {
    fn drop(&mut self) {
        if self.0.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn settle_waits_for_every_piece_of_work_and_no_longer() {
        let background = Background::default();
        let finished = Arc::new(AtomicUsize::new(0));
        for delay in [10, 30, 50] {
            let finished = Arc::clone(&finished);
            background.spawn(async move {
                tokio::time::sleep(Duration::from_millis(delay)).await;
                finished.fetch_add(1, Ordering::SeqCst);
            });
        }
        assert!(background.settle(Duration::from_secs(5)).await);
        assert_eq!(finished.load(Ordering::SeqCst), 3);
        assert_eq!(background.running(), 0);

        background.spawn(std::future::pending());
        assert!(!background.settle(Duration::from_millis(20)).await);
        assert_eq!(background.running(), 1);
    }
}
