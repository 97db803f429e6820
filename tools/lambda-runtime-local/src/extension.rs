//! An extension as the environment knows it: where it runs, what it subscribed to.

use std::time::Instant;

use crate::events::ExtensionEvent;
use crate::participant::Participant;

/// Whether an extension runs inside the runtime process or as a process of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtensionKind {
    /// Registered from inside the runtime process; may not subscribe to SHUTDOWN.
    Internal,
    /// A process the double started with
    /// [`spawn_external_extension`](crate::LocalLambda::spawn_external_extension), registered
    /// under that name.
    External,
}

/// A registered extension.
#[derive(Debug)]
pub(crate) struct Extension {
    pub id: String,
    pub name: String,
    pub kind: ExtensionKind,
    pub invoke: bool,
    pub shutdown: bool,
    pub participant: Participant<ExtensionEvent>,
    pub shutdown_delivered_at: Option<Instant>,
    /// Set once it reported an init or exit error: Lambda takes none of its calls after that
    /// but a repeat of the same report.
    pub failed: Option<ErrorReport>,
}

/// The two error reports of the Extensions API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorReport {
    /// `/extension/init/error`: only before the extension's first `next`.
    Init,
    /// `/extension/exit/error`.
    Exit,
}

/// What callers can see of a registered extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisteredExtension {
    pub name: String,
    pub kind: ExtensionKind,
    /// Subscribed to INVOKE.
    pub invoke: bool,
    /// Subscribed to SHUTDOWN.
    pub shutdown: bool,
}
