//! A local Lambda Runtime API and Extensions API that runs a function exactly as strictly as
//! Lambda does, never more kindly.
//!
//! A function that answers and leaves work running in the background looks fine under a plain
//! HTTP double: the process keeps running. On Lambda it does not: the execution environment is
//! frozen as soon as the runtime and every extension wait on their `next` call, so that work runs
//! only at the next thaw, or never. This double does what Lambda documents for the execution
//! environment's lifecycle (the Lambda Developer Guide, "Lambda execution environment
//! lifecycle" and "Using the Lambda Extensions API"):
//!
//! - **Init** ends when the runtime and every registered extension have asked for their next
//!   event. Registration closes earlier, at the runtime's first `next`; internal extensions may
//!   not subscribe to SHUTDOWN.
//! - **Freeze**: whenever everyone waits on `next` and no event is due, every process of the
//!   environment (each in a process group of its own, children included) is stopped with
//!   SIGSTOP; SIGCONT thaws it when the next event goes out.
//! - **Invoke**: the event goes to the runtime and INVOKE to every extension subscribed to it at
//!   the same time; the caller gets the answer the moment the runtime posts it, while
//!   extensions may still work; the freeze comes only after every extension called `next`. The
//!   function timeout bounds the whole phase; past it the environment is reset.
//! - **Shutdown**: the runtime first (SIGTERM only when an extension is registered, SIGKILL
//!   when its share is over), then SHUTDOWN to the external extensions subscribed to it, within
//!   0 ms (no extension), 500 ms (internal extensions) or 2,000 ms (external extensions).
//!
//! Every request Lambda refuses is refused with Lambda's status and `errorType` (as the
//! Runtime Interface Emulator has them), and kept (see [`LocalLambda::refusals`]). What the
//! double does not model it refuses loudly too: the Logs and Telemetry APIs, streamed
//! responses. Where it is harsher than Lambda, knowingly:
//!
//! - the runtime's `next` before it answered the invocation in progress, or while its `next`
//!   waits, is refused (400 `InvalidStateTransition`); Lambda hands the same event out again,
//!   or parks the second call;
//! - after a reset the environment stays down, where Lambda would initialise it again at the
//!   next invocation.
//!
//! Known gaps, where the double is kinder than Lambda (a function that passes here may still
//! fail there):
//!
//! - no memory limit: `memory_size_mb` only sets `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, nothing
//!   kills a process that uses more; nor the CPU share Lambda gives in proportion to memory;
//! - no sandbox: the processes run as the caller's user, with the caller's file system (no
//!   read-only code, no 512 MB limit on `/tmp`) and network, and without Lambda's limits of
//!   1,024 processes and threads and 1,024 file descriptors;
//! - the processes inherit the caller's environment variables unless the caller's `Command`
//!   clears them; the double adds Lambda's function variables, but neither credentials nor the
//!   rest of Lambda's reserved variables (`AWS_EXECUTION_ENV`, `LAMBDA_TASK_ROOT`, `TZ`, ...);
//! - a process that leaves its process group (`setsid`) escapes the freeze; it is killed only
//!   when the environment ends;
//! - an idle environment is never shut down on its own: only [`LocalLambda::shutdown`] does,
//!   where Lambda may do it at any time while frozen.
//!
//! An internal extension (the `lambda-extension` crate) registers inside the function before the
//! runtime asks for its first invocation, since that call closes registration; it may subscribe
//! to INVOKE only, and learns of the shutdown through SIGTERM:
//!
//! ```ignore
//! let extension = lambda_extension::Extension::new()
//!     .with_events(&["INVOKE"])
//!     .with_events_processor(lambda_extension::service_fn(after_each_invocation))
//!     .with_extension_name("my-internal-extension")
//!     .register()
//!     .await?;
//! tokio::try_join!(lambda_runtime::run_concurrent(handler), extension.run())?;
//! ```
//!
//! ```no_run
//! # async fn demo() -> Result<(), lambda_runtime_local::Error> {
//! use lambda_runtime_local::{LocalLambda, Options};
//! let lambda = LocalLambda::start(Options::default()).await?;
//! lambda.spawn(tokio::process::Command::new("target/debug/my-function")).await?;
//! let invocation = lambda.invoke(&serde_json::json!({"hello": "world"})).await?;
//! println!("answer {:?} after {:?}", invocation.response.json()?, invocation.latency());
//! println!("ran {:?} after answering, then froze", invocation.post_answer());
//! assert!(lambda.is_frozen());
//! let report = lambda.shutdown().await?;
//! println!("SIGTERM sent: {}, runtime: {:?}", report.sigterm_sent, report.runtime);
//! # Ok(()) }
//! ```

mod environment;
mod error;
mod events;
mod extension;
mod extensions_api;
mod invocation;
mod options;
mod participant;
mod process;
mod refusal;
mod refusal_log;
mod runtime_api;
mod shutdown_report;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::middleware::from_fn_with_state;
use bytes::Bytes;
use tokio::process::Command;

use crate::environment::{Down, MAX_EXTENSIONS, Phase, ShutdownProgress};
pub use crate::error::Error;
pub use crate::events::ShutdownReason;
pub use crate::extension::{ExtensionKind, RegisteredExtension};
pub use crate::invocation::{Invocation, PendingInvocation, Reset, Response};
pub use crate::options::Options;
pub use crate::process::Role;
pub use crate::refusal::Refusal;
pub use crate::runtime_api::MAX_RESPONSE_BYTES;
pub use crate::shutdown_report::{ExtensionShutdown, ProcessEnd, ShutdownReport};

use crate::environment::Shared;

/// A synchronous invocation's event is at most 6 MB, as on Lambda.
pub const MAX_EVENT_BYTES: usize = 6 * 1024 * 1024;

/// The shutdown phase lasts at most 2 s, and killed processes are reaped at once; past this the
/// double reports that shutdown hung rather than wait forever.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(30);

/// One execution environment: the HTTP API its processes talk to, and the processes.
///
/// Dropping it kills every process of the environment that still runs (SIGKILL to each process
/// group), so that a failed test leaves no stopped process behind.
#[derive(Debug)]
pub struct LocalLambda {
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl LocalLambda {
    /// Serves the Runtime API and the Extensions API on a free port of 127.0.0.1.
    pub async fn start(options: Options) -> Result<LocalLambda, Error> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(Error::Bind)?;
        let address = listener.local_addr().map_err(Error::Bind)?;
        let shared = Shared::new(options, address);
        let router = runtime_api::routes()
            .merge(extensions_api::routes())
            .fallback(refusal::unmodelled)
            .layer(from_fn_with_state(shared.clone(), refusal_log::record))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, router).await {
                tracing::error!(%err, "the local Lambda API stopped");
            }
        });
        Ok(LocalLambda { shared, server })
    }

    /// Where the API listens: the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> SocketAddr {
        self.shared.address
    }

    /// Starts an external extension (`Extension init`) and waits until it has registered under
    /// `name`, as Lambda does before it starts the runtime. Lambda takes the extension's file
    /// name for `name`.
    pub async fn spawn_external_extension(
        &self,
        name: &str,
        command: impl Into<Command>,
    ) -> Result<(), Error> {
        {
            let mut state = self.shared.state();
            if state.process(&Role::Runtime).is_some() || !matches!(state.phase, Phase::Init) {
                return Err(Error::ExtensionAfterRuntime(name.to_string()));
            }
            if state.externals_started.len() >= MAX_EXTENSIONS {
                // Lambda does not start it, and init fails.
                drop(state);
                let reason = format!("extension limit ({MAX_EXTENSIONS}) reached");
                self.shared.fail_init(format!("{name}: {reason}"));
                return Err(Error::ExtensionNotRegistered {
                    name: name.to_string(),
                    reason,
                });
            }
            state.externals_started.push(name.to_string());
        }
        let role = Role::ExternalExtension(name.to_string());
        self.start_process(command.into(), role.clone())?;
        self.wait_for_registration(name, &role).await
    }

    async fn wait_for_registration(&self, name: &str, role: &Role) -> Result<(), Error> {
        let deadline = Instant::now() + self.shared.options.init_timeout;
        let outcome = self
            .shared
            .wait_until(Some(deadline), |state| {
                let registered = state
                    .extensions
                    .iter()
                    .any(|e| e.name == name && e.kind == ExtensionKind::External);
                let ended = state.process(role).is_some_and(|p| !p.is_alive());
                match (registered, ended, &state.phase) {
                    (true, _, _) => Some(Ok(())),
                    (false, true, _) => Some(Err("its process ended".to_string())),
                    (false, false, Phase::Down(down)) => Some(Err(format!("{down:?}"))),
                    _ => None,
                }
            })
            .await
            .unwrap_or_else(|| {
                Err(format!(
                    "nothing within {:?}",
                    self.shared.options.init_timeout
                ))
            });
        outcome.map_err(|reason| Error::ExtensionNotRegistered {
            name: name.to_string(),
            reason,
        })
    }

    /// Starts the runtime process and waits for the end of init; the environment is frozen
    /// after it (as with provisioned concurrency) until [`LocalLambda::invoke`].
    pub async fn spawn(&self, command: impl Into<Command>) -> Result<(), Error> {
        self.start_process(command.into(), Role::Runtime)?;
        self.wait_for_init().await
    }

    /// An on-demand cold start: the invocation is pending while the runtime starts and goes
    /// out the moment init ends, without a freeze in between. Its
    /// [`latency`](Invocation::latency) is the cold start as the caller sees it.
    pub async fn cold_start(
        &self,
        command: impl Into<Command>,
        event: &serde_json::Value,
    ) -> Result<Invocation, Error> {
        let requested_at = Instant::now();
        let pending = self.shared.invoke(event_bytes(event)?, requested_at)?;
        self.start_process(command.into(), Role::Runtime)?;
        self.wait_for_init().await?;
        pending.finished().await
    }

    fn start_process(&self, command: Command, role: Role) -> Result<(), Error> {
        if role == Role::Runtime && self.shared.state().process(&Role::Runtime).is_some() {
            return Err(Error::RuntimeAlreadyStarted);
        }
        let started_at = Instant::now();
        let child = process::start(
            command,
            &role,
            &self.shared.options,
            self.shared.address,
            &self.shared.output,
        );
        let child = match child {
            Ok(child) => child,
            Err(source) => {
                // As on Lambda, an environment whose process cannot start has failed its init.
                self.shared
                    .fail_init(format!("{role:?} could not be started: {source}"));
                return Err(Error::Spawn {
                    what: format!("{role:?}"),
                    source,
                });
            }
        };
        self.shared.adopt(child, role, started_at)
    }

    /// Waits for the end of init, within the init limit.
    async fn wait_for_init(&self) -> Result<(), Error> {
        let limit = self.shared.options.init_timeout;
        let started = self
            .shared
            .state()
            .init_started_at
            .unwrap_or_else(Instant::now);
        let outcome = self
            .shared
            .wait_until(Some(started + limit), |state| {
                if state.init_ended_at.is_some() {
                    return Some(Ok(()));
                }
                match &state.phase {
                    Phase::Down(Down::InitFailed(reason)) => Some(Err(reason.clone())),
                    Phase::Down(other) => Some(Err(format!("{other:?}"))),
                    _ => None,
                }
            })
            .await;
        match outcome {
            Some(Ok(())) => Ok(()),
            Some(Err(reason)) => Err(self.init_failed(reason).await),
            None => {
                let waiting_for = self.shared.state().not_waiting();
                self.shared
                    .fail_init(format!("init did not end within {limit:?}"));
                Err(Error::InitTimedOut { limit, waiting_for })
            }
        }
    }

    /// The init failure with the end of the runtime's stderr, read once its processes ended.
    async fn init_failed(&self, reason: String) -> Error {
        let _ = self.shutdown_report().await;
        Error::InitFailed {
            reason,
            stderr_tail: tail(&self.stderr(), 4_000),
        }
    }

    /// Invokes the function and waits until the invoke phase is over: the environment frozen
    /// again, or reset.
    pub async fn invoke(&self, event: &serde_json::Value) -> Result<Invocation, Error> {
        self.send(event)?.finished().await
    }

    /// Sends an invocation without waiting for it: [`PendingInvocation::response`] resolves as
    /// soon as the runtime answers, [`PendingInvocation::finished`] once the phase is over.
    pub fn send(&self, event: &serde_json::Value) -> Result<PendingInvocation, Error> {
        self.shared.invoke(event_bytes(event)?, Instant::now())
    }

    /// Whether the environment's processes are stopped now.
    pub fn is_frozen(&self) -> bool {
        self.shared.state().frozen_since.is_some()
    }

    /// How many times the environment has been frozen so far (once at the end of init unless
    /// a cold start's event went out at once, then once after each invocation).
    pub fn freeze_count(&self) -> usize {
        self.shared.state().freezes
    }

    /// Why the environment was reset, if it was: it takes no invocation after that.
    pub fn reset(&self) -> Option<Reset> {
        match &self.shared.state().phase {
            Phase::Down(Down::Reset(reset)) => Some(reset.clone()),
            _ => None,
        }
    }

    /// From the first process's start to the end of init (Lambda's "Init Duration").
    pub fn init_duration(&self) -> Option<Duration> {
        self.shared.init_duration()
    }

    /// The runtime's process id, for reading its resource use.
    pub fn runtime_pid(&self) -> Option<u32> {
        let state = self.shared.state();
        let pid = state.process(&Role::Runtime)?.pid;
        u32::try_from(pid.as_raw_nonzero().get()).ok()
    }

    /// The extensions registered so far.
    pub fn extensions(&self) -> Vec<RegisteredExtension> {
        self.shared.registered_extensions()
    }

    /// Every request the double refused so far.
    pub fn refusals(&self) -> Vec<Refusal> {
        self.shared.state().refusals.clone()
    }

    /// What the environment's processes wrote to standard output so far.
    pub fn stdout(&self) -> String {
        self.shared.output.stdout()
    }

    /// What the environment's processes wrote to standard error so far.
    pub fn stderr(&self) -> String {
        self.shared.output.stderr()
    }

    /// Runs the shutdown phase (reason `spindown`), or waits for the one a reset started, and
    /// reports what happened.
    pub async fn shutdown(self) -> Result<ShutdownReport, Error> {
        {
            let mut state = self.shared.state();
            self.shared
                .begin_shutdown(&mut state, ShutdownReason::Spindown);
        }
        self.shared.notify();
        self.shutdown_report().await
    }

    async fn shutdown_report(&self) -> Result<ShutdownReport, Error> {
        self.shared
            .wait_until(Some(Instant::now() + SHUTDOWN_WAIT), |state| {
                match &state.shutdown {
                    ShutdownProgress::Done(report) => Some(report.clone()),
                    _ => None,
                }
            })
            .await
            .ok_or(Error::ShutdownHung(SHUTDOWN_WAIT))
    }
}

impl Drop for LocalLambda {
    fn drop(&mut self) {
        // Only groups whose leader still runs: a reaped leader's group id could in principle
        // belong to someone else by now. (The shutdown phase clears the rest right away.)
        for process in &self.shared.state().processes {
            process.signal_group(rustix::process::Signal::KILL);
        }
        self.server.abort();
    }
}

fn event_bytes(event: &serde_json::Value) -> Result<Bytes, Error> {
    let bytes = serde_json::to_vec(event).map_err(Error::Event)?;
    if bytes.len() > MAX_EVENT_BYTES {
        return Err(Error::EventTooLarge {
            size: bytes.len(),
            limit: MAX_EVENT_BYTES,
        });
    }
    Ok(Bytes::from(bytes))
}

/// The last `max` bytes of `text` (at a character boundary).
fn tail(text: &str, max: usize) -> String {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_string()
}
