//! One invocation, as its caller and Lambda's metrics see it.

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::Error;

/// What the caller of an invocation gets back.
#[derive(Clone, Debug)]
pub enum Response {
    /// The runtime posted to `/runtime/invocation/{id}/response`.
    Success(Bytes),
    /// The runtime posted to `/runtime/invocation/{id}/error` (or answered with more than a
    /// synchronous invocation may return: `Function.ResponseSizeTooLarge`).
    FunctionError {
        /// The `Lambda-Runtime-Function-Error-Type` header, when the runtime sent one.
        error_type: Option<String>,
        body: Bytes,
    },
    /// The environment was reset before the runtime answered.
    NoAnswer(Reset),
}

impl Response {
    /// The successful answer as JSON.
    pub fn json(&self) -> Result<Value, Error> {
        match self {
            Response::Success(body) => serde_json::from_slice(body).map_err(Error::ResponseNotJson),
            other => Err(Error::NoSuccess(format!("{other:?}"))),
        }
    }
}

/// Why Lambda reset the environment during an invocation: the reset runs the shutdown phase
/// (with reason `timeout` or `failure`), and no further event reaches this environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reset {
    /// The invoke phase (runtime and extensions) outlasted the function timeout.
    TimedOut,
    /// The runtime process ended.
    RuntimeExited(Option<ExitStatus>),
    /// An external extension's process ended.
    ExtensionExited {
        name: String,
        status: Option<ExitStatus>,
    },
    /// An extension reported `/extension/init/error` or `/extension/exit/error`.
    ExtensionFailed { name: String, error_type: String },
}

/// One invocation from the moment it was asked for until the environment froze again.
#[derive(Clone, Debug)]
pub struct Invocation {
    /// `Lambda-Runtime-Aws-Request-Id`, and `requestId` of the extensions' INVOKE.
    pub request_id: String,
    /// What went back to the caller.
    pub response: Response,
    /// When the caller asked (for a cold start: when the process was started).
    pub requested_at: Instant,
    /// When the event went to the runtime (and INVOKE to the extensions), thawing the
    /// environment.
    pub delivered_at: Instant,
    /// When the caller got [`Invocation::response`]: the runtime's POST, which Lambda passes on
    /// at once even while extensions still work.
    pub response_at: Instant,
    /// When the runtime asked for its next invocation after answering.
    pub runtime_next_at: Option<Instant>,
    /// When the last extension that got INVOKE asked for its next event; `None` when no
    /// extension subscribes to INVOKE.
    pub extensions_done_at: Option<Instant>,
    /// When the environment was frozen after the invocation; `None` after a reset.
    pub frozen_at: Option<Instant>,
    /// The extensions that got INVOKE, by name.
    pub invoked_extensions: Vec<String>,
    /// Set when the environment was reset during this invocation.
    pub reset: Option<Reset>,
}

impl Invocation {
    /// How long the environment ran after the caller had its answer: work that Lambda bills
    /// and that delays the freeze, done by extensions (and by the runtime before its next call).
    pub fn post_answer(&self) -> Option<Duration> {
        self.frozen_at
            .map(|frozen| frozen.saturating_duration_since(self.response_at))
    }

    /// From the caller's request to its answer (for a cold start this includes init).
    pub fn latency(&self) -> Duration {
        self.response_at
            .saturating_duration_since(self.requested_at)
    }
}

/// The ends through which an invocation reports back to its caller.
#[derive(Debug)]
pub(crate) struct Reply {
    pub response: Option<oneshot::Sender<(Response, Instant)>>,
    pub done: oneshot::Sender<Invocation>,
}

/// An invocation sent with [`LocalLambda::send`](crate::LocalLambda::send): its response comes
/// as soon as the runtime posts it, the full record once the environment froze again.
#[derive(Debug)]
pub struct PendingInvocation {
    request_id: String,
    response: Option<oneshot::Receiver<(Response, Instant)>>,
    done: oneshot::Receiver<Invocation>,
}

impl PendingInvocation {
    pub(crate) fn new(request_id: String) -> (PendingInvocation, Reply) {
        let (response_tx, response_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        let pending = PendingInvocation {
            request_id,
            response: Some(response_rx),
            done: done_rx,
        };
        let reply = Reply {
            response: Some(response_tx),
            done: done_tx,
        };
        (pending, reply)
    }

    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// Waits for the answer as the caller gets it, and the instant it came. Resolves while
    /// extensions may still be working.
    pub async fn response(&mut self) -> Result<(Response, Instant), Error> {
        let receiver = self
            .response
            .take()
            .ok_or_else(|| Error::InvocationLost(self.request_id.clone()))?;
        receiver
            .await
            .map_err(|_| Error::InvocationLost(self.request_id.clone()))
    }

    /// Waits until the invoke phase is over (the environment is frozen again, or was reset).
    pub async fn finished(self) -> Result<Invocation, Error> {
        self.done
            .await
            .map_err(|_| Error::InvocationLost(self.request_id))
    }
}
