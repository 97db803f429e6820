//! Who may use the admin endpoints with a bearer token: the local server and a public API
//! (under IAM or JWT the gateway decides, see `access`).

use std::sync::Arc;

use axum::http::HeaderMap;

use super::error::ApiError;

/// The refusal while the admin endpoints are closed. Closed means no token is set, or the one of
/// `ADMIN_TOKEN_SECRET_ARN` could not be read (the log line says why; the client is not told).
const CLOSED_MESSAGE: &str = "Admin endpoints are disabled: no admin token is configured \
    (ADMIN_TOKEN or ADMIN_TOKEN_SECRET_ARN) or it could not be read (see the function's log).";

/// Who may use the admin endpoints. Cheap to clone: axum clones the state, this with it, for
/// every request.
#[derive(Clone)]
pub enum AdminPolicy {
    /// `Authorization: Bearer <token>` required.
    Token(Arc<str>),
    /// Local server without a token: open, so the guide's curl walkthrough works.
    Open,
    /// Inside Lambda without a token: never open to the internet.
    Closed,
}

impl AdminPolicy {
    pub fn new(token: Option<String>, in_lambda: bool) -> Self {
        match (token, in_lambda) {
            (Some(token), _) => AdminPolicy::Token(token.into()),
            (None, false) => AdminPolicy::Open,
            (None, true) => AdminPolicy::Closed,
        }
    }

    pub fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let expected = match self {
            AdminPolicy::Open => return Ok(()),
            AdminPolicy::Closed => return Err(ApiError::Forbidden(CLOSED_MESSAGE.into())),
            AdminPolicy::Token(token) => token,
        };
        let given = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        match given {
            None => Err(ApiError::Unauthorized(
                "This admin endpoint needs an Authorization: Bearer <token> header.".into(),
            )),
            Some(given) if constant_time_eq(given.as_bytes(), expected.as_bytes()) => Ok(()),
            Some(_) => Err(ApiError::Forbidden("The admin token is not valid.".into())),
        }
    }
}

/// Compares without an early exit, so response time does not reveal how much of a guess matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
        headers
    }

    #[test]
    fn admin_policy_follows_token_and_place() {
        let token = AdminPolicy::new(Some("s3cret-token-123".into()), true);
        assert!(token.authorize(&bearer("s3cret-token-123")).is_ok());
        assert!(matches!(
            token.authorize(&bearer("wrong")),
            Err(ApiError::Forbidden(_))
        ));
        assert!(matches!(
            token.authorize(&HeaderMap::new()),
            Err(ApiError::Unauthorized(_))
        ));
        assert!(AdminPolicy::new(None, false)
            .authorize(&HeaderMap::new())
            .is_ok());
        assert!(matches!(
            AdminPolicy::new(None, true).authorize(&bearer("x")),
            Err(ApiError::Forbidden(_))
        ));
    }
}
