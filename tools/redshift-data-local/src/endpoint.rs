//! An endpoint of the stand-in: its server and the fault it is told to show.

use tracing::info;

use crate::error::StandInError;
use crate::fault::{Fault, FaultSwitch};
use crate::server::HttpServer;

pub(crate) struct Endpoint {
    pub(crate) server: HttpServer,
    fault: FaultSwitch,
}

impl Endpoint {
    pub(crate) fn new(server: HttpServer, fault: FaultSwitch) -> Self {
        Self { server, fault }
    }

    /// Sets the fault; `RefuseConnections` closes the listener, any other
    /// fault listens again if it was closed.
    pub(crate) fn set_fault(&self, fault: Fault) -> Result<(), StandInError> {
        info!(addr = %self.server.addr(), ?fault, "fault set");
        let refuse = fault == Fault::RefuseConnections;
        self.fault.set(Some(fault));
        if refuse {
            self.server.close();
            Ok(())
        } else {
            self.server.reopen()
        }
    }

    pub(crate) fn clear_fault(&self) -> Result<(), StandInError> {
        info!(addr = %self.server.addr(), "fault cleared");
        self.fault.set(None);
        self.server.reopen()
    }
}
