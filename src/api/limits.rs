//! What a request may be: the body size the router takes, and the limits the local server
//! enforces in front of it (a URL over 8 KiB, headers over 16 KiB or more than 100 of them, a
//! head or body that does not arrive in time), with their refusals in words. The server applies
//! them (`crate::server`); the OpenAPI description documents them.

use std::time::Duration;

use super::error::ApiError;

/// Largest request body taken: a call with the longest notes fits several times over.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

#[derive(Clone, Debug)]
pub struct ServerLimits {
    /// Longest request target (path and query) taken.
    pub max_uri_bytes: usize,
    /// Largest sum of header names and values taken.
    pub max_header_bytes: usize,
    /// Most headers taken.
    pub max_headers: usize,
    /// Time for a request head to arrive once it has started (hyper's header read timeout).
    pub header_read_timeout: Duration,
    /// Time for a request body to arrive once its head has.
    pub body_read_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_uri_bytes: 8 * 1024,
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
        }
    }
}

impl ServerLimits {
    pub fn uri_too_long(&self) -> ApiError {
        ApiError::UriTooLong(format!(
            "The URL is longer than {} KiB.",
            self.max_uri_bytes / 1024
        ))
    }

    pub fn headers_too_large(&self) -> ApiError {
        ApiError::HeadersTooLarge(format!(
            "The request headers are larger than {} KiB or more than {} in number.",
            self.max_header_bytes / 1024,
            self.max_headers
        ))
    }

    pub fn head_timeout(&self) -> ApiError {
        ApiError::RequestTimeout(format!(
            "The request headers did not arrive within {}.",
            seconds(self.header_read_timeout)
        ))
    }

    pub fn body_timeout(&self) -> ApiError {
        ApiError::RequestTimeout(format!(
            "The request body did not arrive within {}.",
            seconds(self.body_read_timeout)
        ))
    }
}

fn seconds(duration: Duration) -> String {
    match duration.as_secs() {
        1 => "1 second".to_string(),
        0 => format!("{} ms", duration.as_millis()),
        n => format!("{n} seconds"),
    }
}
