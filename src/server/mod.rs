//! The local HTTP server: the same router as in Lambda, on hyper, with the limits API Gateway
//! would otherwise enforce, and every refusal in the `{"error": ...}` shape.
//!
//! - [`limits`]: the project's own limits (URL, headers, body read time), enforced in a layer
//!   that answers JSON 414 / 431 / 408.
//! - [`hyper_errors`]: hyper answers a few requests itself, before any layer sees them (a URL
//!   over 64 KiB, a head over its buffer, a head that is not HTTP); those answers get the same
//!   JSON body. A head that stalls is answered 408 in JSON as well.
//!
//! hyper's own limits are set well above the project's, so that the layer is what normally
//! answers; [`ServerLimits`] holds both.

mod hyper_errors;
pub mod limits;

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use axum::extract::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

pub use crate::api::limits::ServerLimits;

/// Why the local server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "Port {port} is already in use: stop the program that holds it, or set PORT to another port (for example PORT={suggestion})."
    )]
    PortInUse { port: u16, suggestion: u16 },
    #[error("Cannot listen on {address}: {source}.")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
}

/// Listens on `address`; a port that is taken becomes one sentence naming it and `PORT`.
pub async fn bind(address: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(address).await.map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            ServeError::PortInUse {
                port: address.port(),
                suggestion: address.port().wrapping_add(1).max(1024),
            }
        } else {
            ServeError::Bind { address, source }
        }
    })
}

/// Serves `router` on `listener` until `shutdown` completes, then lets open requests finish
/// (for at most [`GRACE_PERIOD`]).
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) {
    let service = limits::apply(router, &limits);
    let (stop, stopped) = watch::channel(false);
    let connections = TaskTracker::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: wait a little instead of spinning.
                    tracing::warn!(error = %err, "⚠️ Could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        connections.spawn(serve_connection(
            stream,
            service.clone(),
            limits.clone(),
            stopped.clone(),
        ));
    }
    drop(listener);
    connections.close();
    let _ = stop.send(true);
    if tokio::time::timeout(GRACE_PERIOD, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("⚠️ Some requests were still running at shutdown");
    }
}

/// How long shutdown waits for requests in progress.
pub const GRACE_PERIOD: Duration = Duration::from_secs(5);

/// One connection: HTTP/1.1 with keep-alive, hyper's header read timeout, and JSON for the
/// answers hyper gives itself.
async fn serve_connection(
    stream: TcpStream,
    service: axum::Router,
    limits: ServerLimits,
    mut stop: watch::Receiver<bool>,
) {
    let io = TokioIo::new(hyper_errors::JsonErrors::new(stream, limits.clone()));
    // A boxed future is `Unpin`, which `poll_without_shutdown` needs.
    let hyper_service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let service = service.clone();
        Box::pin(async move {
            let response = service
                .oneshot(request.map(axum::body::Body::new))
                .await
                .unwrap_or_else(|never: Infallible| match never {});
            Ok::<_, Infallible>(response)
        }) as Pin<Box<dyn Future<Output = _> + Send>>
    });
    let mut connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits::HYPER_MAX_BUF_BYTES)
        .max_headers(limits::HYPER_MAX_HEADERS)
        .serve_connection(io, hyper_service);
    let mut stopping = false;
    let result = loop {
        tokio::select! {
            result = poll_fn(|cx| connection.poll_without_shutdown(cx)) => break result,
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    Pin::new(&mut connection).graceful_shutdown();
                }
            }
        }
    };
    let parts = connection.into_parts();
    let mut io = parts.io.into_inner();
    match result {
        // A head that started but did not finish in time: the client is still there to be told.
        Err(err) if err.is_timeout() && !parts.read_buf.is_empty() => {
            io.answer_timeout().await;
        }
        Err(err) => tracing::debug!(error = %err, "connection ended with an error"),
        Ok(()) => {}
    }
    let _ = io.shutdown().await;
}
