//! The shutdown phase, in the order and within the limits Lambda documents: the runtime is shut
//! down first (SIGTERM when graceful shutdown applies, SIGKILL when its share of the limit is
//! over), then SHUTDOWN goes to every external extension subscribed to it, and whatever still
//! runs when the limit is over is ended with SIGKILL.
//!
//! The limit depends on the registered extensions: none at all gives 0 ms (no SIGTERM: the
//! runtime is killed at once); internal extensions only give 500 ms; external extensions give
//! 2,000 ms, of which the runtime has 300 ms (500 ms with an internal extension too).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::process::Signal;

use super::{Shared, State};
use crate::events::{ShutdownReason, unix_ms_after};
use crate::extension::ExtensionKind;
use crate::process::Role;
use crate::shutdown_report::{ExtensionShutdown, ProcessEnd, ShutdownReport};

const LIMIT_WITH_EXTERNAL_EXTENSIONS: Duration = Duration::from_millis(2_000);
const LIMIT_WITH_INTERNAL_EXTENSIONS: Duration = Duration::from_millis(500);
const RUNTIME_SHARE_BESIDE_EXTERNAL_EXTENSIONS: Duration = Duration::from_millis(300);

/// How long a SIGKILLed process may take to be reaped before the report gives up on its status.
/// Never reached in practice: SIGKILL cannot be caught.
const REAP_LIMIT: Duration = Duration::from_secs(10);

/// The limits of this shutdown.
struct Limits {
    budget: Duration,
    runtime_share: Duration,
}

impl Limits {
    fn of(state: &State) -> Limits {
        let external = state
            .extensions
            .iter()
            .any(|extension| extension.kind == ExtensionKind::External)
            || !state.externals_started.is_empty();
        let internal = state.has_internal_extension();
        match (external, internal) {
            (true, true) => Limits {
                budget: LIMIT_WITH_EXTERNAL_EXTENSIONS,
                runtime_share: LIMIT_WITH_INTERNAL_EXTENSIONS,
            },
            (true, false) => Limits {
                budget: LIMIT_WITH_EXTERNAL_EXTENSIONS,
                runtime_share: RUNTIME_SHARE_BESIDE_EXTERNAL_EXTENSIONS,
            },
            (false, true) => Limits {
                budget: LIMIT_WITH_INTERNAL_EXTENSIONS,
                runtime_share: LIMIT_WITH_INTERNAL_EXTENSIONS,
            },
            (false, false) => Limits {
                budget: Duration::ZERO,
                runtime_share: Duration::ZERO,
            },
        }
    }
}

/// Runs the shutdown phase and files its report.
pub(crate) async fn run(shared: Arc<Shared>, reason: ShutdownReason) {
    let started = Instant::now();
    let limits = {
        let mut state = shared.state();
        // Frozen processes must run to shut down; a stopped process would not even see SIGTERM.
        state.thaw();
        Limits::of(&state)
    };
    let (runtime, sigterm_sent) = end_runtime(&shared, &limits, started).await;
    let ended_externals = end_external_extensions(&shared, reason, started, limits.budget).await;
    kill_what_remains(&shared);
    let extensions = extension_reports(&shared, &ended_externals, started);
    shared.finish_shutdown(ShutdownReport {
        reason,
        budget: limits.budget,
        sigterm_sent,
        runtime,
        extensions,
        duration: started.elapsed(),
        stdout: shared.output.stdout(),
        stderr: shared.output.stderr(),
    });
}

/// SIGTERM and the runtime's share of the limit when graceful shutdown applies, SIGKILL after.
async fn end_runtime(
    shared: &Shared,
    limits: &Limits,
    started: Instant,
) -> (Option<ProcessEnd>, bool) {
    let alive = {
        let state = shared.state();
        match state.process(&Role::Runtime) {
            None => return (None, false),
            Some(process) => process.is_alive(),
        }
    };
    if !alive {
        return (Some(ended_before(shared, &Role::Runtime)), false);
    }
    let graceful = !limits.runtime_share.is_zero();
    if graceful {
        signal_runtime(shared, Signal::TERM);
    }
    let ended =
        graceful && wait_for_end(shared, &Role::Runtime, started + limits.runtime_share).await;
    if !ended {
        kill_group(shared, &Role::Runtime);
    }
    let end = reap(shared, &Role::Runtime, started, !ended).await;
    (Some(end), graceful)
}

/// SHUTDOWN to the external extensions subscribed to it; SIGKILL for what still runs when the
/// limit is over. Returns how each external extension's process ended, by name.
async fn end_external_extensions(
    shared: &Shared,
    reason: ShutdownReason,
    started: Instant,
    budget: Duration,
) -> Vec<(String, ProcessEnd)> {
    let deadline = started + budget;
    let roles: Vec<Role> = {
        let mut state = shared.state();
        let now = Instant::now();
        let deadline_ms = unix_ms_after(deadline.saturating_duration_since(now));
        state.deliver_shutdown(reason, deadline_ms, now);
        state
            .processes
            .iter()
            .filter(|process| matches!(process.role, Role::ExternalExtension(_)))
            .map(|process| process.role.clone())
            .collect()
    };
    shared.notify();
    let mut ended = Vec::new();
    for role in roles {
        let on_time = wait_for_end(shared, &role, deadline).await;
        if !on_time {
            kill_group(shared, &role);
        }
        let end = reap(shared, &role, started, !on_time).await;
        if let Role::ExternalExtension(name) = role {
            ended.push((name, end));
        }
    }
    ended
}

fn extension_reports(
    shared: &Shared,
    ended_externals: &[(String, ProcessEnd)],
    started: Instant,
) -> Vec<ExtensionShutdown> {
    let state = shared.state();
    state
        .extensions
        .iter()
        .map(|extension| ExtensionShutdown {
            name: extension.name.clone(),
            kind: extension.kind,
            shutdown_delivered_after: extension
                .shutdown_delivered_at
                .map(|at| at.saturating_duration_since(started)),
            process: ended_externals
                .iter()
                .find(|(name, _)| *name == extension.name)
                .map(|(_, end)| end.clone()),
        })
        .collect()
}

/// On Lambda the whole environment goes away: children the processes left behind too.
fn kill_what_remains(shared: &Shared) {
    let state = shared.state();
    for process in &state.processes {
        process.kill_group_remains();
    }
}

fn signal_runtime(shared: &Shared, signal: Signal) {
    if let Some(process) = shared.state().process(&Role::Runtime) {
        process.signal_process(signal);
    }
}

fn kill_group(shared: &Shared, role: &Role) {
    if let Some(process) = shared.state().process(role) {
        process.signal_group(Signal::KILL);
    }
}

/// Whether the process ended before `deadline`.
async fn wait_for_end(shared: &Shared, role: &Role, deadline: Instant) -> bool {
    shared
        .wait_until(Some(deadline), |state| {
            state
                .process(role)
                .and_then(|process| process.exit)
                .map(|_| ())
        })
        .await
        .is_some()
}

/// Waits for the process's status after it was killed (or ended by itself).
async fn reap(shared: &Shared, role: &Role, started: Instant, killed: bool) -> ProcessEnd {
    let exit = shared
        .wait_until(Some(Instant::now() + REAP_LIMIT), |state| {
            state.process(role).and_then(|process| process.exit)
        })
        .await;
    ProcessEnd {
        status: exit.and_then(|(status, _)| status),
        killed,
        ended_after: exit.and_then(|(_, at)| at.checked_duration_since(started)),
    }
}

fn ended_before(shared: &Shared, role: &Role) -> ProcessEnd {
    let state = shared.state();
    ProcessEnd {
        status: state
            .process(role)
            .and_then(|process| process.exit)
            .and_then(|(status, _)| status),
        killed: false,
        ended_after: None,
    }
}
