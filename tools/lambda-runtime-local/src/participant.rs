//! A runtime or an extension as Lambda sees it: through its `next` calls.

use std::collections::VecDeque;
use std::time::Instant;

use tokio::sync::oneshot;

/// A `next` call while another `next` call of the same participant still waits.
#[derive(Debug)]
pub(crate) struct AlreadyWaiting;

/// A runtime or an extension, seen through its `next` calls.
#[derive(Debug)]
pub(crate) struct Participant<E> {
    waiter: Option<oneshot::Sender<E>>,
    pending: VecDeque<E>,
    /// When it last asked for its next event.
    pub next_at: Option<Instant>,
}

impl<E> Default for Participant<E> {
    fn default() -> Self {
        Participant {
            waiter: None,
            pending: VecDeque::new(),
            next_at: None,
        }
    }
}

impl<E> Participant<E> {
    /// Whether it is waiting on `next` (a call whose connection has closed does not count).
    pub fn waits(&self) -> bool {
        self.waiter
            .as_ref()
            .is_some_and(|waiter| !waiter.is_closed())
    }

    /// Takes a `next` call: answered at once with a pending event, else parked until one comes.
    pub fn ask(&mut self, now: Instant) -> Result<oneshot::Receiver<E>, AlreadyWaiting> {
        if self.waits() {
            return Err(AlreadyWaiting);
        }
        self.next_at = Some(now);
        let (waiter, receiver) = oneshot::channel();
        match self.pending.pop_front() {
            Some(event) => {
                let _ = waiter.send(event);
            }
            None => self.waiter = Some(waiter),
        }
        Ok(receiver)
    }

    /// Hands over an event, or keeps it for the next call when nobody is listening.
    pub fn deliver(&mut self, event: E) {
        let undelivered = match self.waiter.take() {
            Some(waiter) => waiter.send(event).err(),
            None => Some(event),
        };
        if let Some(event) = undelivered {
            self.pending.push_back(event);
        }
    }
}
