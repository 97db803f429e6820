//! Faults that tests inject so that every failure mode of the real services can
//! be reproduced on demand.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::lock;

/// A misbehaviour of an endpoint. It applies to every request (or connection)
/// that arrives after it is set, until it is cleared or replaced.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// The listener is closed: connection attempts get `ECONNREFUSED` and open
    /// connections are dropped. Clearing the fault listens on the same port again.
    RefuseConnections,
    /// Requests are read but never answered.
    Hang,
    /// Requests are answered with this HTTP status and the service's error body
    /// (500 internal error, 503 service unavailable, ...).
    HttpStatus(u16),
    /// Requests are answered with a throttling error ("Rate exceeded").
    Throttle,
    /// ExecuteStatement and BatchExecuteStatement are refused with
    /// `ActiveStatementsExceededException`.
    ActiveStatementsExceeded,
    /// Requests that carry `WaitTimeSeconds` are refused with
    /// `ActiveWaitingRequestsExceededException`; those without it are answered.
    ActiveWaitingRequestsExceeded,
    /// Statements are accepted but end FAILED with this error.
    FailStatements(String),
    /// Statements are accepted but end ABORTED.
    AbortStatements,
    /// Statements stay STARTED this long before they execute.
    StayStarted(Duration),
    /// Every response is delayed by this long.
    Slow(Duration),
}

/// The fault currently set on one endpoint, shared between the code that sets
/// it and the request handlers that obey it.
#[derive(Debug, Clone, Default)]
pub(crate) struct FaultSwitch {
    current: Arc<Mutex<Option<Fault>>>,
}

impl FaultSwitch {
    pub(crate) fn set(&self, fault: Option<Fault>) {
        *lock(&self.current) = fault;
    }

    /// While connections are refused, a request that arrives anyway (on a
    /// connection accepted before) is never answered nor counted: its
    /// connection is being dropped.
    pub(crate) async fn stall_if_refusing(&self) {
        if self.get() == Some(Fault::RefuseConnections) {
            std::future::pending::<()>().await;
        }
    }

    /// Applies the faults every endpoint obeys alike: waits out `Slow` and
    /// never returns for `Hang`. Returns the current fault for the protocol
    /// to answer.
    pub(crate) async fn obey_transport_faults(&self) -> Option<Fault> {
        let fault = self.get()?;
        match &fault {
            Fault::Slow(delay) => tokio::time::sleep(*delay).await,
            Fault::Hang => std::future::pending::<()>().await,
            _ => {}
        }
        Some(fault)
    }

    pub(crate) fn get(&self) -> Option<Fault> {
        lock(&self.current).clone()
    }
}
