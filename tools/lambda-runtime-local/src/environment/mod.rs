//! The execution environment's lifecycle, as Lambda documents it: init, invocations with the
//! freeze between them, resets, shutdown.
//!
//! Everything hinges on one rule ("Lambda freezes the execution environment when the runtime and
//! each extension have completed and there are no pending events"): a participant has completed
//! when it is waiting on its `next` call. So every `next` call re-evaluates the state
//! ([`Shared::settle`]): the last one to arrive ends init or the invoke phase, and then either the
//! next event goes out at once (an on-demand cold start) or the processes are stopped with
//! SIGSTOP until [`Shared::invoke`] thaws them with SIGCONT.

mod shutdown;

use std::net::SocketAddr;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustix::process::Signal;
use tokio::process::Child;
use tokio::sync::{oneshot, watch};

use crate::events::{ExtensionEvent, RuntimeEvent, ShutdownReason, trace_header, unix_ms_after};
use crate::extension::{ErrorReport, Extension, ExtensionKind, RegisteredExtension};
use crate::invocation::{Invocation, PendingInvocation, Reply, Reset, Response};
use crate::participant::Participant;
use crate::process::{Output, ProcessSlot, Role, pid_of};
use crate::refusal::{Refusal, Refused, lambda};
use crate::shutdown_report::ShutdownReport;
use crate::{Error, Options};

/// Lambda takes at most 10 extensions per function (`core.MaxAgentsAllowed`): an internal
/// extension past it is refused at registration, an external one is not started.
pub(crate) const MAX_EXTENSIONS: usize = 10;

/// Where the environment is in its lifecycle.
#[derive(Clone, Debug, Default)]
pub(crate) enum Phase {
    /// Until the runtime and every registered extension wait on `next`.
    #[default]
    Init,
    /// Frozen, waiting for an invocation.
    Idle,
    /// An event is out; until the runtime has answered and everyone waits on `next` again.
    Invoking,
    /// No event will reach this environment again.
    Down(Down),
}

/// Why the environment serves no more events.
#[derive(Clone, Debug)]
pub(crate) enum Down {
    /// Init failed (a process ended, an error was reported, or it took too long).
    InitFailed(String),
    /// An invocation failed and Lambda reset the environment.
    Reset(Reset),
    /// The environment was shut down while idle.
    Spindown,
}

/// The answer to a registration.
pub(crate) struct Registration {
    pub id: String,
    pub body: serde_json::Value,
}

/// An invocation asked for but not yet delivered (a cold start's, during init).
#[derive(Debug)]
struct Queued {
    request_id: String,
    event: Bytes,
    requested_at: Instant,
    reply: Reply,
}

/// The invocation in progress.
#[derive(Debug)]
struct Current {
    request_id: String,
    requested_at: Instant,
    delivered_at: Instant,
    answer: Option<(Response, Instant)>,
    invoked_extensions: Vec<String>,
    reply: Reply,
}

impl Current {
    /// Ends the invocation and sends its record to whoever waits for it.
    fn finish(self, state: &State, frozen_at: Option<Instant>, reset: Option<Reset>) {
        let now = Instant::now();
        let (response, response_at) = self.answer.unwrap_or_else(|| {
            let reset = reset.clone().unwrap_or(Reset::TimedOut);
            (Response::NoAnswer(reset), now)
        });
        let extensions_done_at = state
            .extensions
            .iter()
            .filter(|extension| self.invoked_extensions.contains(&extension.name))
            .filter_map(|extension| extension.participant.next_at)
            .filter(|at| *at >= self.delivered_at)
            .max();
        let runtime_next_at = state
            .runtime
            .next_at
            .filter(|at| *at >= response_at && reset.is_none());
        let mut reply = self.reply;
        if let Some(caller) = reply.response.take() {
            let _ = caller.send((response.clone(), response_at));
        }
        let _ = reply.done.send(Invocation {
            request_id: self.request_id,
            response,
            requested_at: self.requested_at,
            delivered_at: self.delivered_at,
            response_at,
            runtime_next_at,
            extensions_done_at: extensions_done_at.filter(|_| reset.is_none()),
            frozen_at,
            invoked_extensions: self.invoked_extensions,
            reset,
        });
    }
}

/// Where the shutdown phase is.
#[derive(Debug, Default)]
pub(crate) enum ShutdownProgress {
    #[default]
    NotStarted,
    Running,
    Done(ShutdownReport),
}

/// Everything the double knows about the environment.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub phase: Phase,
    pub init_started_at: Option<Instant>,
    pub init_ended_at: Option<Instant>,
    pub runtime: Participant<RuntimeEvent>,
    pub extensions: Vec<Extension>,
    /// Names of the external extensions started so far, registered or not.
    pub externals_started: Vec<String>,
    pub processes: Vec<ProcessSlot>,
    pub frozen_since: Option<Instant>,
    /// How many times the environment was frozen.
    pub freezes: usize,
    queued: Option<Queued>,
    current: Option<Current>,
    pub refusals: Vec<Refusal>,
    pub shutdown: ShutdownProgress,
}

impl State {
    fn everyone_waits(&self) -> bool {
        self.runtime.waits()
            && self
                .extensions
                .iter()
                .all(|extension| extension.participant.waits())
    }

    /// Who init or the invoke phase is still waiting for, for error messages.
    pub fn not_waiting(&self) -> String {
        let mut names = Vec::new();
        if !self.runtime.waits() {
            names.push("the runtime".to_string());
        }
        for extension in &self.extensions {
            if !extension.participant.waits() {
                names.push(format!("the extension {}", extension.name));
            }
        }
        names.join(", ")
    }

    pub fn process(&self, role: &Role) -> Option<&ProcessSlot> {
        self.processes.iter().find(|process| process.role == *role)
    }

    /// Stops every process of the environment, as Lambda freezes the micro-VM.
    fn freeze(&mut self, now: Instant) {
        for process in &self.processes {
            process.signal_group(Signal::STOP);
        }
        self.frozen_since = Some(now);
        self.freezes += 1;
    }

    /// Lets the processes run again.
    pub fn thaw(&mut self) {
        if self.frozen_since.take().is_some() {
            for process in &self.processes {
                process.signal_group(Signal::CONT);
            }
        }
    }

    pub fn extension_mut(&mut self, id: &str) -> Result<&mut Extension, Refused> {
        self.extensions
            .iter_mut()
            .find(|extension| extension.id == id)
            .ok_or_else(|| {
                Refused::forbidden(
                    lambda::UNKNOWN_EXTENSION_IDENTIFIER,
                    format!("no extension is registered as {id:?}"),
                )
            })
    }

    /// Lambda turns registration off once the runtime has asked for its first invocation, even
    /// while extensions still keep init going (rapid's `doRuntimeDomainInit`: the wait for the
    /// runtime's first `next`, then `registrationService.TurnOff()`); and of course after init.
    fn registration_closed(&self) -> bool {
        !matches!(self.phase, Phase::Init) || self.runtime.next_at.is_some()
    }

    pub fn has_internal_extension(&self) -> bool {
        self.extensions
            .iter()
            .any(|extension| extension.kind == ExtensionKind::Internal)
    }

    /// Delivers SHUTDOWN to every extension subscribed to it.
    pub fn deliver_shutdown(&mut self, reason: ShutdownReason, deadline_ms: u64, now: Instant) {
        for extension in self.extensions.iter_mut().filter(|e| e.shutdown) {
            extension.participant.deliver(ExtensionEvent::Shutdown {
                shutdown_reason: reason,
                deadline_ms,
            });
            extension.shutdown_delivered_at = Some(now);
        }
    }
}

/// The state behind the HTTP API and the [`LocalLambda`](crate::LocalLambda) handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub options: Options,
    pub address: SocketAddr,
    pub output: Output,
    state: Mutex<State>,
    changed: watch::Sender<u64>,
}

impl Shared {
    pub fn new(options: Options, address: SocketAddr) -> Arc<Shared> {
        Arc::new(Shared {
            options,
            address,
            output: Output::default(),
            state: Mutex::new(State::default()),
            changed: watch::Sender::new(0),
        })
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes everyone waiting in [`Shared::wait_until`].
    pub fn notify(&self) {
        self.changed.send_modify(|version| *version += 1);
    }

    /// Waits until `check` finds what it looks for, or `deadline` passes (then one last look).
    pub async fn wait_until<T>(
        &self,
        deadline: Option<Instant>,
        mut check: impl FnMut(&State) -> Option<T>,
    ) -> Option<T> {
        let mut changes = self.changed.subscribe();
        loop {
            if let Some(found) = check(&self.state()) {
                return Some(found);
            }
            let changed = match deadline {
                Some(deadline) => {
                    tokio::time::timeout_at(deadline.into(), changes.changed())
                        .await
                        .unwrap_or(Ok(()))
                        .is_ok()
                        && Instant::now() < deadline
                }
                None => changes.changed().await.is_ok(),
            };
            if !changed {
                return check(&self.state());
            }
        }
    }

    pub fn keep_refusal(&self, refusal: Refusal) {
        self.state().refusals.push(refusal);
        self.notify();
    }

    // ---- processes ---------------------------------------------------------------------

    /// Takes a process started at `started_at` into the environment and watches for its end.
    /// The first process's start is the start of init.
    pub fn adopt(
        self: &Arc<Self>,
        child: Child,
        role: Role,
        started_at: Instant,
    ) -> Result<(), Error> {
        let pid = pid_of(&child).ok_or_else(|| Error::Spawn {
            what: format!("{role:?}"),
            source: std::io::Error::other("the process ended before it could be watched"),
        })?;
        {
            let mut state = self.state();
            state.init_started_at.get_or_insert(started_at);
            state.processes.push(ProcessSlot {
                role: role.clone(),
                pid,
                exit: None,
            });
        }
        let shared = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut child = child;
            let status = child.wait().await.ok();
            if let Some(shared) = shared.upgrade() {
                shared.process_ended(&role, status);
            }
        });
        self.notify();
        Ok(())
    }

    fn process_ended(self: &Arc<Self>, role: &Role, status: Option<ExitStatus>) {
        let mut state = self.state();
        let now = Instant::now();
        let Some(slot) = state.processes.iter_mut().find(|p| p.role == *role) else {
            return;
        };
        slot.exit = Some((status, now));
        let reset = match role {
            Role::Runtime => Reset::RuntimeExited(status),
            Role::ExternalExtension(name) => Reset::ExtensionExited {
                name: name.clone(),
                status,
            },
        };
        self.process_failed(&mut state, reset);
        drop(state);
        self.notify();
    }

    // ---- the lifecycle ---------------------------------------------------------------------

    /// Re-evaluates the environment after someone asked for `next`: ends init or the invoke
    /// phase when everyone waits, then delivers what is due or freezes.
    fn settle(self: &Arc<Self>, state: &mut State, now: Instant) {
        if !state.everyone_waits() {
            return;
        }
        let finished = match state.phase {
            Phase::Init => {
                state.init_ended_at = Some(now);
                None
            }
            Phase::Invoking => state.current.take(),
            Phase::Idle | Phase::Down(_) => return,
        };
        state.phase = Phase::Idle;
        if let Some(queued) = state.queued.take() {
            // An on-demand cold start: the event that caused init goes out as init ends.
            self.start_invocation(state, queued, now);
            return;
        }
        state.freeze(now);
        if let Some(current) = finished {
            current.finish(state, Some(now), None);
        }
    }

    /// Queues an invocation; it goes out at once when the environment is idle, or as init ends.
    pub fn invoke(
        self: &Arc<Self>,
        event: Bytes,
        requested_at: Instant,
    ) -> Result<PendingInvocation, Error> {
        let mut state = self.state();
        match &state.phase {
            Phase::Init if state.queued.is_none() => {}
            Phase::Idle => {}
            Phase::Init | Phase::Invoking => return Err(Error::Busy),
            Phase::Down(down) => return Err(Error::NotReady(format!("{down:?}"))),
        }
        let request_id = uuid::Uuid::new_v4().to_string();
        let (pending, reply) = PendingInvocation::new(request_id.clone());
        state.queued = Some(Queued {
            request_id,
            event,
            requested_at,
            reply,
        });
        if matches!(state.phase, Phase::Idle) {
            self.settle_idle(&mut state);
        }
        drop(state);
        self.notify();
        Ok(pending)
    }

    /// Delivers the queued invocation of an idle environment.
    fn settle_idle(self: &Arc<Self>, state: &mut State) {
        if let Some(queued) = state.queued.take() {
            self.start_invocation(state, queued, Instant::now());
        }
    }

    /// Thaws the environment and hands the event to the runtime and INVOKE to every extension
    /// subscribed to it, at the same time.
    fn start_invocation(self: &Arc<Self>, state: &mut State, queued: Queued, now: Instant) {
        let timeout = self.options.function_timeout;
        let event = RuntimeEvent {
            request_id: queued.request_id.clone(),
            deadline_ms: unix_ms_after(timeout),
            function_arn: self.options.function_arn(),
            trace_id: trace_header(),
            body: queued.event,
        };
        state.thaw();
        let mut invoked_extensions = Vec::new();
        for extension in state.extensions.iter_mut().filter(|e| e.invoke) {
            extension
                .participant
                .deliver(ExtensionEvent::invoke(&event));
            invoked_extensions.push(extension.name.clone());
        }
        state.runtime.deliver(event);
        state.current = Some(Current {
            request_id: queued.request_id.clone(),
            requested_at: queued.requested_at,
            delivered_at: now,
            answer: None,
            invoked_extensions,
            reply: queued.reply,
        });
        state.phase = Phase::Invoking;
        self.arm_deadline(queued.request_id, now + timeout);
    }

    /// Resets the environment if the invocation is still running at its deadline.
    fn arm_deadline(self: &Arc<Self>, request_id: String, deadline: Instant) {
        let shared = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep_until(deadline.into()).await;
            if let Some(shared) = shared.upgrade() {
                shared.deadline_passed(&request_id);
            }
        });
    }

    fn deadline_passed(self: &Arc<Self>, request_id: &str) {
        let mut state = self.state();
        let running = state
            .current
            .as_ref()
            .is_some_and(|current| current.request_id == request_id);
        if running {
            self.reset(&mut state, Reset::TimedOut);
        }
        drop(state);
        self.notify();
    }

    /// Lambda's reset after a failed invocation: the invocation ends (without an answer if it
    /// had none), and the shutdown phase runs with reason `timeout` or `failure`.
    fn reset(self: &Arc<Self>, state: &mut State, reset: Reset) {
        let reason = match reset {
            Reset::TimedOut => ShutdownReason::Timeout,
            _ => ShutdownReason::Failure,
        };
        if let Some(current) = state.current.take() {
            current.finish(state, None, Some(reset.clone()));
        }
        self.go_down(state, Down::Reset(reset), reason);
    }

    /// A process exited or an extension reported an error: during init, init fails; later, the
    /// environment is reset.
    fn process_failed(self: &Arc<Self>, state: &mut State, reset: Reset) {
        match state.phase {
            Phase::Init => self.fail_init_in(state, format!("{reset:?} during init")),
            Phase::Idle | Phase::Invoking => self.reset(state, reset),
            Phase::Down(_) => {}
        }
    }

    fn go_down(self: &Arc<Self>, state: &mut State, down: Down, reason: ShutdownReason) {
        if matches!(state.phase, Phase::Down(_)) {
            return;
        }
        state.phase = Phase::Down(down);
        // A cold start's event that never went out: its caller hears of init's failure.
        state.queued = None;
        self.begin_shutdown(state, reason);
    }

    /// Ends init as failed (a process could not start, or init took too long), which shuts the
    /// environment down.
    pub fn fail_init(self: &Arc<Self>, reason: String) {
        let mut state = self.state();
        self.fail_init_in(&mut state, reason);
        drop(state);
        self.notify();
    }

    /// Ends init as failed, with the state at hand; nothing happens once init is over.
    fn fail_init_in(self: &Arc<Self>, state: &mut State, reason: String) {
        if matches!(state.phase, Phase::Init) {
            self.go_down(state, Down::InitFailed(reason), ShutdownReason::Failure);
        }
    }

    /// Starts the shutdown phase once; [`Shared::shutdown_report`] waits for its end.
    pub fn begin_shutdown(self: &Arc<Self>, state: &mut State, reason: ShutdownReason) {
        if !matches!(state.shutdown, ShutdownProgress::NotStarted) {
            return;
        }
        if !matches!(state.phase, Phase::Down(_)) {
            state.phase = Phase::Down(Down::Spindown);
        }
        state.shutdown = ShutdownProgress::Running;
        tokio::spawn(shutdown::run(self.clone(), reason));
    }

    pub fn finish_shutdown(&self, report: ShutdownReport) {
        self.state().shutdown = ShutdownProgress::Done(report);
        self.notify();
    }

    // ---- the Runtime API -------------------------------------------------------------------

    pub fn runtime_asks_next(self: &Arc<Self>) -> Result<oneshot::Receiver<RuntimeEvent>, Refused> {
        let mut state = self.state();
        let now = Instant::now();
        // Neither refusal is confirmed by the emulator, which hands the same event out again
        // (`RuntimeRunningState.Ready()`) or parks the second call beside the first: kept as
        // the double's loud refusals (400), harsher than Lambda.
        if let Some(current) = &state.current
            && current.answer.is_none()
        {
            return Err(Refused::bad_request(
                lambda::INVALID_STATE_TRANSITION,
                format!(
                    "the runtime asked for its next invocation before answering {}",
                    current.request_id
                ),
            ));
        }
        let receiver = state.runtime.ask(now).map_err(|_| {
            Refused::bad_request(
                lambda::INVALID_STATE_TRANSITION,
                "a next call is already waiting; the double serves one at a time",
            )
        })?;
        self.settle(&mut state, now);
        drop(state);
        self.notify();
        Ok(receiver)
    }

    /// Takes the runtime's answer and passes it to the caller at once. As Lambda, it checks
    /// the request id first (400), then that the invocation is still unanswered (403).
    pub fn runtime_answers(&self, request_id: &str, response: Response) -> Result<(), Refused> {
        let mut state = self.state();
        let now = Instant::now();
        let Some(current) = state
            .current
            .as_mut()
            .filter(|current| current.request_id == request_id)
        else {
            return Err(Refused::bad_request(
                lambda::INVALID_REQUEST_ID,
                format!("{request_id} is not the invocation in progress"),
            ));
        };
        if current.answer.is_some() {
            return Err(Refused::forbidden(
                lambda::INVALID_STATE_TRANSITION,
                format!("{request_id} has been answered already"),
            ));
        }
        if let Some(caller) = current.reply.response.take() {
            let _ = caller.send((response.clone(), now));
        }
        current.answer = Some((response, now));
        drop(state);
        self.notify();
        Ok(())
    }

    pub fn runtime_init_error(
        self: &Arc<Self>,
        error_type: &str,
        body: &[u8],
    ) -> Result<(), Refused> {
        let mut state = self.state();
        if !matches!(state.phase, Phase::Init) || state.runtime.next_at.is_some() {
            return Err(Refused::forbidden(
                lambda::INVALID_STATE_TRANSITION,
                "an init error can only be reported during init, before the runtime's first \
                 next call",
            ));
        }
        let reason = format!(
            "the runtime reported an init error ({error_type}): {}",
            String::from_utf8_lossy(body)
        );
        self.fail_init_in(&mut state, reason);
        drop(state);
        self.notify();
        Ok(())
    }

    // ---- the Extensions API ----------------------------------------------------------------

    pub fn register_extension(
        &self,
        name: &str,
        events: &[String],
        wants_account_id: bool,
    ) -> Result<Registration, Refused> {
        let mut state = self.state();
        // Lambda knows its external extensions by name before they register; any other name
        // is an internal extension.
        let kind = if state
            .externals_started
            .iter()
            .any(|started| started == name)
        {
            ExtensionKind::External
        } else {
            ExtensionKind::Internal
        };
        check_registration(&state, name, kind, events)?;
        let shutdown = events.iter().any(|event| event == "SHUTDOWN");
        let id = uuid::Uuid::new_v4().to_string();
        state.extensions.push(Extension {
            id: id.clone(),
            name: name.to_string(),
            kind,
            invoke: events.iter().any(|event| event == "INVOKE"),
            shutdown,
            participant: Participant::default(),
            shutdown_delivered_at: None,
            failed: None,
        });
        drop(state);
        self.notify();
        Ok(Registration {
            id,
            body: self.registration_body(wants_account_id),
        })
    }

    fn registration_body(&self, wants_account_id: bool) -> serde_json::Value {
        let mut body = serde_json::json!({
            "functionName": self.options.function_name,
            "functionVersion": self.options.function_version,
            "handler": self.options.handler,
        });
        if wants_account_id {
            body["accountId"] = self.options.account_id.clone().into();
        }
        body
    }

    pub fn extension_asks_next(
        self: &Arc<Self>,
        id: &str,
    ) -> Result<oneshot::Receiver<ExtensionEvent>, Refused> {
        let mut state = self.state();
        let now = Instant::now();
        let extension = state.extension_mut(id)?;
        if extension.failed.is_some() {
            return Err(failed_extension(&extension.name));
        }
        let name = extension.name.clone();
        let receiver = extension.participant.ask(now).map_err(|_| {
            Refused::forbidden(
                lambda::INVALID_EXTENSION_STATE,
                format!("{name} called next while its next call waits"),
            )
        })?;
        self.settle(&mut state, now);
        drop(state);
        self.notify();
        Ok(receiver)
    }

    /// `/extension/init/error` and `/extension/exit/error`: Lambda resets the environment, and
    /// refuses the extension's further calls but a repeat of the same report, which it accepts
    /// and ignores. An init error is refused once the extension has called `next`.
    pub fn extension_failed(
        self: &Arc<Self>,
        id: &str,
        report: ErrorReport,
        error_type: &str,
    ) -> Result<(), Refused> {
        let mut state = self.state();
        let extension = state.extension_mut(id)?;
        match extension.failed {
            Some(earlier) if earlier == report => return Ok(()),
            Some(_) => return Err(failed_extension(&extension.name)),
            None if report == ErrorReport::Init && extension.participant.next_at.is_some() => {
                return Err(Refused::forbidden(
                    lambda::INVALID_EXTENSION_STATE,
                    format!(
                        "{} has called next: its init is over, it may report an exit error only",
                        extension.name
                    ),
                ));
            }
            None => {}
        }
        extension.failed = Some(report);
        let name = extension.name.clone();
        let reset = Reset::ExtensionFailed {
            name,
            error_type: error_type.to_string(),
        };
        self.process_failed(&mut state, reset);
        drop(state);
        self.notify();
        Ok(())
    }

    // ---- for the handle ---------------------------------------------------------------------

    pub fn registered_extensions(&self) -> Vec<RegisteredExtension> {
        self.state()
            .extensions
            .iter()
            .map(|extension| RegisteredExtension {
                name: extension.name.clone(),
                kind: extension.kind,
                invoke: extension.invoke,
                shutdown: extension.shutdown,
            })
            .collect()
    }

    pub fn init_duration(&self) -> Option<Duration> {
        let state = self.state();
        Some(
            state
                .init_ended_at?
                .saturating_duration_since(state.init_started_at?),
        )
    }
}

/// "After Lambda receives the error, no further API calls succeed."
fn failed_extension(name: &str) -> Refused {
    Refused::forbidden(
        lambda::INVALID_EXTENSION_STATE,
        format!("{name} reported an error; Lambda accepts no further calls from it"),
    )
}

/// Lambda's rules for `Register`, checked in Lambda's order (`agentRegisterHandler`): the
/// events first; then an external extension may register once; an internal one only while
/// registration is open, within the limit of ten, under a name not taken.
fn check_registration(
    state: &State,
    name: &str,
    kind: ExtensionKind,
    events: &[String],
) -> Result<(), Refused> {
    for event in events {
        let problem = match (event.as_str(), kind) {
            ("INVOKE", _) | ("SHUTDOWN", ExtensionKind::External) => continue,
            ("SHUTDOWN", ExtensionKind::Internal) => {
                "ShutdownEventNotSupportedForInternalExtension (an internal extension lives in \
                 the runtime process and learns of the shutdown through SIGTERM)"
            }
            _ => "ErrorInvalidEventType (extensions register for INVOKE and SHUTDOWN)",
        };
        return Err(Refused::forbidden(
            lambda::INVALID_EVENT_TYPE,
            format!("{name}: {event}: {problem}"),
        ));
    }
    let taken = state
        .extensions
        .iter()
        .any(|extension| extension.name == name);
    if kind == ExtensionKind::Internal {
        if state.registration_closed() {
            return Err(Refused::forbidden(
                lambda::REGISTRATION_CLOSED,
                format!(
                    "{name}: extension registration closed already (it closes when the runtime \
                     asks for its first invocation)"
                ),
            ));
        }
        if state.extensions.len() >= MAX_EXTENSIONS {
            return Err(Refused::forbidden(
                lambda::TOO_MANY_EXTENSIONS,
                format!("{name}: extension limit ({MAX_EXTENSIONS}) reached"),
            ));
        }
    }
    if taken {
        return Err(Refused::forbidden(
            lambda::INVALID_EXTENSION_STATE,
            format!("an extension named {name} is registered already"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    fn shared() -> Arc<Shared> {
        Shared::new(Options::default(), SocketAddr::from(([127, 0, 0, 1], 9)))
    }

    #[test]
    fn registration_closes_at_the_runtimes_first_next_not_at_the_end_of_init() {
        let shared = shared();
        let invoke = ["INVOKE".to_string()];
        assert!(shared.register_extension("early", &invoke, false).is_ok());
        let _waiting = shared.runtime_asks_next().unwrap();
        assert!(
            matches!(shared.state().phase, Phase::Init),
            "the extension that has not called next keeps init going"
        );

        let Err(refused) = shared.register_extension("late", &invoke, false) else {
            panic!("registered after the runtime's first next");
        };

        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert_eq!(refused.error_type, lambda::REGISTRATION_CLOSED);
        assert_eq!(shared.registered_extensions().len(), 1);
    }

    #[test]
    fn the_runtime_reports_an_init_error_only_before_its_first_next() {
        let shared = shared();
        assert!(shared.register_extension("early", &[], false).is_ok());
        let _waiting = shared.runtime_asks_next().unwrap();

        let refused = shared
            .runtime_init_error("Runtime.Boom", b"{}")
            .unwrap_err();

        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert_eq!(refused.error_type, lambda::INVALID_STATE_TRANSITION);
        assert!(matches!(shared.state().phase, Phase::Init));
    }
}
