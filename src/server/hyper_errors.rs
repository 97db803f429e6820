//! JSON bodies for the answers hyper gives by itself.
//!
//! hyper refuses a few request heads before any service sees them: a request target over
//! 64 KiB (414, a fixed limit), a head larger than its read buffer or with more headers than it
//! takes (431), a head that is not HTTP (400). It answers those with a status line and
//! `content-length: 0`, then closes the connection. The router never answers 400, 414 or 431
//! without a JSON body, so such an answer on the way out can only be hyper's: [`JsonErrors`]
//! sends the same status with the `{"error": ...}` body instead. Nothing of the request is read
//! here; hyper does all the parsing.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::ServerLimits;
use crate::api::error::ApiError;

/// A connection's socket, with hyper's empty error answers replaced by JSON ones.
pub struct JsonErrors<T> {
    inner: T,
    limits: ServerLimits,
    /// A replacement being written: its bytes, how many are written, and how many bytes of
    /// hyper's answer it stands for (reported written once it is).
    replacing: Option<(Vec<u8>, usize, usize)>,
}

impl<T> JsonErrors<T> {
    pub fn new(inner: T, limits: ServerLimits) -> Self {
        JsonErrors {
            inner,
            limits,
            replacing: None,
        }
    }

    /// The JSON answer standing in for hyper's empty one, if `written` is one.
    fn replacement_for(&self, written: &[u8]) -> Option<Vec<u8>> {
        let error = match hyper_error_status(written)? {
            StatusCode::URI_TOO_LONG => self.limits.uri_too_long(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => self.limits.headers_too_large(),
            _ => ApiError::BadRequest("The request is not valid HTTP/1.1.".into()),
        };
        Some(raw_json_response(&error))
    }
}

impl<T: AsyncWrite + Unpin> JsonErrors<T> {
    /// Tells a client whose request head stalled that it took too long.
    pub async fn answer_timeout(&mut self) {
        let answer = raw_json_response(&self.limits.head_timeout());
        let _ = self.inner.write_all(&answer).await;
    }
}

/// hyper's own error answers are a status line, a date and `content-length: 0`.
const MAX_HYPER_ERROR_HEAD: usize = 256;

/// The status of an empty error answer of hyper's own (a head alone, `content-length: 0`,
/// status 400, 414 or 431), or `None` for anything else.
fn hyper_error_status(written: &[u8]) -> Option<StatusCode> {
    // A head alone, and a short one: anything longer is not hyper's refusal (and is not scanned).
    if written.len() > MAX_HYPER_ERROR_HEAD || !written.starts_with(b"HTTP/1.1 4") {
        return None;
    }
    let head = written.strip_suffix(b"\r\n\r\n")?;
    if head.windows(4).any(|w| w == b"\r\n\r\n") {
        return None;
    }
    let status = head.strip_prefix(b"HTTP/1.1 ")?.get(..3)?;
    let status = StatusCode::from_bytes(status).ok()?;
    let known = [
        StatusCode::BAD_REQUEST,
        StatusCode::URI_TOO_LONG,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
    ];
    let empty = head
        .split(|&b| b == b'\n')
        .any(|line| line.eq_ignore_ascii_case(b"content-length: 0\r"));
    (known.contains(&status) && empty).then_some(status)
}

/// A complete HTTP/1.1 answer with the error's JSON body, closing the connection (as hyper does
/// after refusing a head).
fn raw_json_response(error: &ApiError) -> Vec<u8> {
    let status = error.status();
    let body = serde_json::json!({ "error": error.to_string() }).to_string();
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
        body
    )
    .into_bytes()
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonErrors<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonErrors<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.replacing.is_none() {
            if let Some(answer) = this.replacement_for(buf) {
                this.replacing = Some((answer, 0, buf.len()));
            }
        }
        let Some((answer, written, stands_for)) = &mut this.replacing else {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        };
        while *written < answer.len() {
            match ready!(Pin::new(&mut this.inner).poll_write(cx, &answer[*written..])) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => *written += n,
                Err(err) => return Poll::Ready(Err(err)),
            }
        }
        let stands_for = *stands_for;
        this.replacing = None;
        Poll::Ready(Ok(stands_for))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    /// hyper writes an answer with a body as its head and body in separate buffers (no copy of
    /// the body), and an answer without one, as its own errors are, as the head alone: only a
    /// write of one buffer can be one of those, and goes through [`Self::poll_write`].
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match bufs {
            [only] => self.poll_write(cx, only),
            // A replacement under way is finished first (hyper retries the write it started).
            [first, ..] if self.replacing.is_some() => self.poll_write(cx, first),
            _ => Pin::new(&mut self.inner).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hyper_empty_error_answers_are_recognised() {
        let hyper_414 = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: Mon, 30 Nov 2026 08:00:00 GMT\r\n\r\n";
        assert_eq!(
            hyper_error_status(hyper_414),
            Some(StatusCode::URI_TOO_LONG)
        );
        let ours = raw_json_response(&ApiError::UriTooLong("The URL is too long.".into()));
        assert_eq!(hyper_error_status(&ours), None);
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(hyper_error_status(ok), None);
        let with_body =
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n";
        assert_eq!(hyper_error_status(with_body), None);
    }
}
