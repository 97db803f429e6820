//! What the shutdown phase reports: how each process ended, and when.

use std::process::ExitStatus;
use std::time::Duration;

use crate::events::ShutdownReason;
use crate::extension::ExtensionKind;

/// What happened during the shutdown phase.
#[derive(Clone, Debug)]
pub struct ShutdownReport {
    pub reason: ShutdownReason,
    /// The phase's limit, from the registered extensions.
    pub budget: Duration,
    /// Whether the runtime got SIGTERM (it does not when no extension is registered).
    pub sigterm_sent: bool,
    /// `None` when no runtime was started.
    pub runtime: Option<ProcessEnd>,
    pub extensions: Vec<ExtensionShutdown>,
    /// From the start of the phase until every process had ended.
    pub duration: Duration,
    /// Everything the environment's processes wrote to standard output and standard error,
    /// their last words at shutdown included.
    pub stdout: String,
    pub stderr: String,
}

/// How a process ended.
#[derive(Clone, Debug)]
pub struct ProcessEnd {
    /// `None` when the status could not be read.
    pub status: Option<ExitStatus>,
    /// Ended by SIGKILL from the double, its time being up.
    pub killed: bool,
    /// When it ended, from the start of the phase; `None` when it had ended before.
    pub ended_after: Option<Duration>,
}

/// One registered extension during the shutdown phase.
#[derive(Clone, Debug)]
pub struct ExtensionShutdown {
    pub name: String,
    pub kind: ExtensionKind,
    /// When SHUTDOWN was delivered, from the start of the phase; `None` when it was not
    /// (not subscribed, or an internal extension).
    pub shutdown_delivered_after: Option<Duration>,
    /// How its process ended; `None` for internal extensions, which live in the runtime.
    pub process: Option<ProcessEnd>,
}
