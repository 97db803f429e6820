//! A small HTTP/1.1 server whose listening socket can be closed and reopened on
//! the same port.
//!
//! `axum::serve` cannot do this: to imitate an unreachable service the socket
//! must really be closed (so that clients get `ECONNREFUSED`) and the
//! connections a client keeps alive in its pool must be dropped too, otherwise
//! the client would keep talking to a "down" service through them.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::error::StandInError;
use crate::lock;

/// How many connections may wait in the kernel's accept queue.
const BACKLOG: u32 = 1024;

/// The listening socket, shared by the accept loop and by [`HttpServer::close`],
/// which must be able to close it synchronously.
type ListenerSlot = Arc<Mutex<Option<TcpListener>>>;

/// One period during which the server listens: closing the server ends it.
struct Session {
    listener: ListenerSlot,
    /// Cancelled when the session ends; stops the accept loop and drops every
    /// connection accepted during the session.
    stop: CancellationToken,
}

/// An HTTP server for one of the stand-in's endpoints.
pub(crate) struct HttpServer {
    name: &'static str,
    addr: SocketAddr,
    router: Router,
    runtime: Handle,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    session: Mutex<Option<Session>>,
}

impl HttpServer {
    /// Listens on `addr` (port 0 picks a free port) and serves `router`. Every
    /// task it spawns is tracked by `tasks` and stops when `shutdown` is cancelled.
    pub(crate) fn start(
        name: &'static str,
        addr: SocketAddr,
        router: Router,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Result<Self, StandInError> {
        let listener = bind(addr)?;
        let addr = listener
            .local_addr()
            .map_err(|source| StandInError::Bind { addr, source })?;
        let server = Self {
            name,
            addr,
            router,
            runtime: Handle::current(),
            shutdown,
            tasks,
            session: Mutex::new(None),
        };
        *server.lock_session() = Some(server.spawn_session(listener));
        info!(endpoint = name, %addr, "listening");
        Ok(server)
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Closes the listening socket before returning, so that the very next
    /// connection attempt is refused, and drops every open connection.
    pub(crate) fn close(&self) {
        if let Some(session) = self.lock_session().take() {
            lock(&session.listener).take();
            session.stop.cancel();
            info!(endpoint = self.name, addr = %self.addr, "listener closed");
        }
    }

    /// Listens again on the same port after [`HttpServer::close`]; does nothing
    /// when the server is listening.
    pub(crate) fn reopen(&self) -> Result<(), StandInError> {
        let mut session = self.lock_session();
        if session.is_none() {
            let _runtime = self.runtime.enter();
            *session = Some(self.spawn_session(bind(self.addr)?));
            info!(endpoint = self.name, addr = %self.addr, "listening again");
        }
        Ok(())
    }

    fn spawn_session(&self, listener: TcpListener) -> Session {
        let session = Session {
            listener: Arc::new(Mutex::new(Some(listener))),
            stop: self.shutdown.child_token(),
        };
        let accept_loop = accept_loop(
            self.name,
            session.listener.clone(),
            self.router.clone(),
            session.stop.clone(),
            self.tasks.clone(),
            self.runtime.clone(),
        );
        self.tasks.spawn_on(accept_loop, &self.runtime);
        session
    }

    fn lock_session(&self) -> MutexGuard<'_, Option<Session>> {
        lock(&self.session)
    }
}

/// Binds with `SO_REUSEADDR` so that the port can be bound again while
/// connections of the previous listener linger in `TIME_WAIT`.
fn bind(addr: SocketAddr) -> Result<TcpListener, StandInError> {
    let bind_error = |source| StandInError::Bind { addr, source };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(bind_error)?;
    socket.set_reuseaddr(true).map_err(bind_error)?;
    socket.bind(addr).map_err(bind_error)?;
    socket.listen(BACKLOG).map_err(bind_error)
}

async fn accept_loop(
    name: &'static str,
    listener: ListenerSlot,
    router: Router,
    stop: CancellationToken,
    tasks: TaskTracker,
    runtime: Handle,
) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = accept(&listener) => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                debug!(endpoint = name, %peer, "connection accepted");
                let connection = serve_connection(name, stream, router.clone(), stop.clone());
                tasks.spawn_on(connection, &runtime);
            }
            Err(error) if stop.is_cancelled() => {
                debug!(endpoint = name, %error, "accept loop stopped");
                return;
            }
            Err(error) => {
                warn!(endpoint = name, %error, "accept failed");
                // Out of file descriptors and the like: do not spin.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Accepts from the shared slot without holding its lock across an await, so
/// that [`HttpServer::close`] can take the listener out at any time.
async fn accept(listener: &ListenerSlot) -> io::Result<(TcpStream, SocketAddr)> {
    poll_fn(|cx| match lock(listener).as_ref() {
        Some(listener) => listener.poll_accept(cx),
        None => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
    })
    .await
}

async fn serve_connection(
    name: &'static str,
    stream: TcpStream,
    router: Router,
    stop: CancellationToken,
) {
    let service = TowerToHyperService::new(router);
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        result = connection => {
            if let Err(error) = result {
                debug!(endpoint = name, %error, "connection ended with an error");
            }
        }
        // Dropping the connection closes the socket without answering.
        () = stop.cancelled() => debug!(endpoint = name, "connection dropped"),
    }
}
