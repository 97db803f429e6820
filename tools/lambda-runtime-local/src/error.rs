//! What the caller of the double can be told went wrong.

use std::time::Duration;

/// An error of the double's own API (not an answer of the function: those are
/// [`Response`](crate::Response)s).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on 127.0.0.1: {0}")]
    Bind(#[source] std::io::Error),

    #[error("cannot start {what}: {source}")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },

    /// Lambda starts one runtime per execution environment.
    #[error("this environment already has its runtime process")]
    RuntimeAlreadyStarted,

    /// Lambda starts extensions before the runtime, during `Extension init`.
    #[error("external extensions start before the runtime; {0} came too late")]
    ExtensionAfterRuntime(String),

    #[error("the external extension {name} did not register: {reason}")]
    ExtensionNotRegistered { name: String, reason: String },

    #[error("init did not end within {limit:?}; still waiting for {waiting_for}")]
    InitTimedOut {
        limit: Duration,
        waiting_for: String,
    },

    #[error("init failed: {reason}; the runtime's stderr ends with:\n{stderr_tail}")]
    InitFailed { reason: String, stderr_tail: String },

    /// An invocation needs an initialised, idle environment.
    #[error("the environment cannot take an invocation now: {0}")]
    NotReady(String),

    /// Lambda runs one invocation at a time in an environment.
    #[error("an invocation is already in progress")]
    Busy,

    #[error("the event is {size} bytes; a synchronous invocation takes at most {limit}")]
    EventTooLarge { size: usize, limit: usize },

    #[error("the event could not be serialised: {0}")]
    Event(#[source] serde_json::Error),

    #[error("the environment stopped before the invocation {0} ended")]
    InvocationLost(String),

    #[error("the response is not JSON: {0}")]
    ResponseNotJson(#[source] serde_json::Error),

    #[error("the invocation has no successful response: {0}")]
    NoSuccess(String),

    #[error("the shutdown phase did not end within {0:?}")]
    ShutdownHung(Duration),
}
