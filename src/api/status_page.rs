//! `GET /`: the status page for people (the guide's "Frontend Integration").
//!
//! One self-contained HTML document, compiled into the binary: its style and script are inline,
//! so the page needs nothing but the JSON endpoints it reads (`/db/status`,
//! `/api/calls/history`, `POST /api/calls` and the admin switches). The Content-Security-Policy
//! allows exactly that inline style and script by their SHA-256 hashes, and nothing else: no other
//! script, no inline event handlers, no requests to other origins, no form submissions.
//!
//! The document is a shell without data: everything it shows comes from its JSON requests,
//! which carry the token typed into its token field as `Authorization: Bearer`. So under a JWT
//! authorizer the shell can be served to a browser's navigation (which cannot carry a bearer
//! token) while every request for data needs the token. The one thing the shell says about its
//! deployment is the API's access mode (`data-access` on `<body>`): on a public API the page
//! neither asks for nor shows call data.

use std::sync::LazyLock;

use axum::http::header::{self, HeaderValue};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::access::Access;

const TEMPLATE: &str = include_str!("status_page/page.html");
const STYLE: &str = include_str!("status_page/page.css");
const SCRIPT: &str = include_str!("status_page/page.js");

/// Where the template takes its inline style and script.
const STYLE_SLOT: &str = "<!-- style -->";
const SCRIPT_SLOT: &str = "<!-- script -->";
/// Where the template takes the API's access mode (the value of `data-access` on `<body>`).
const ACCESS_SLOT: &str = "{{access}}";

/// The document and its policy, built on the first request rather than at start, so that a cold
/// start that never serves the page pays nothing for it.
struct StatusPage {
    /// The document with the access mode's slot still in it.
    html: String,
    content_security_policy: HeaderValue,
}

static PAGE: LazyLock<StatusPage> = LazyLock::new(StatusPage::build);

impl StatusPage {
    fn build() -> Self {
        let html = TEMPLATE
            .replacen(STYLE_SLOT, &format!("<style>{STYLE}</style>"), 1)
            .replacen(SCRIPT_SLOT, &format!("<script>{SCRIPT}</script>"), 1);
        let policy = content_security_policy(&csp_hash(SCRIPT), &csp_hash(STYLE));
        StatusPage {
            html,
            // Hashes are base64 and the rest is fixed ASCII: always a valid header value.
            content_security_policy: HeaderValue::from_str(&policy)
                .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'")),
        }
    }
}

/// The policy: the page's own inline script and style (by hash), requests to its own origin only.
fn content_security_policy(script_hash: &str, style_hash: &str) -> String {
    [
        "default-src 'none'".to_string(),
        format!("script-src '{script_hash}'"),
        format!("style-src '{style_hash}'"),
        "connect-src 'self'".to_string(),
        // The favicon is a data: URL, so the browser asks for no /favicon.ico.
        "img-src data:".to_string(),
        "base-uri 'none'".to_string(),
        "form-action 'none'".to_string(),
        "frame-ancestors 'none'".to_string(),
    ]
    .join("; ")
}

/// A CSP source expression for an inline element: `sha256-<base64 of the SHA-256 of its text>`.
fn csp_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(digest.as_slice())
    )
}

#[utoipa::path(
    get,
    path = "/",
    tag = "meta",
    summary = "The status page for people: serving database, health, newest calls",
    responses((status = 200, description = "A self-contained HTML page.", content_type = "text/html", body = String))
)]
pub async fn page(access: Access) -> Response {
    let page = &*PAGE;
    // The mode is not part of the inline script or style, so the policy's hashes hold for every
    // mode; the document is a few kilobytes, copied once per request.
    let html = page.html.replacen(ACCESS_SLOT, access.page_name(), 1);
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            page.content_security_policy.clone(),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        // The page is the same for every deploy's lifetime, but a new deploy must show at once.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    (headers, html).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text between the first `open` tag and its closing tag in `html`.
    fn inline(html: &str, open: &str, close: &str) -> String {
        let start = html.find(open).expect("opening tag") + open.len();
        let end = start + html[start..].find(close).expect("closing tag");
        html[start..end].to_string()
    }

    #[test]
    fn the_policy_allows_exactly_the_inline_script_and_style() {
        let page = StatusPage::build();
        assert_eq!(page.html.matches("<script").count(), 1, "one script");
        assert_eq!(page.html.matches("<style").count(), 1, "one style");
        let policy = page.content_security_policy.to_str().unwrap();
        let script = inline(&page.html, "<script>", "</script>");
        let style = inline(&page.html, "<style>", "</style>");
        assert!(policy.contains(&format!("script-src '{}'", csp_hash(&script))));
        assert!(policy.contains(&format!("style-src '{}'", csp_hash(&style))));
        assert!(policy.starts_with("default-src 'none'"));
        assert!(!policy.contains("unsafe-inline"));
    }

    #[test]
    fn hashes_are_the_browsers_sha256_in_base64() {
        // echo -n 'abc' | openssl dgst -sha256 -binary | base64
        assert_eq!(
            csp_hash("abc"),
            "sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
    }

    #[test]
    fn the_script_never_builds_html_from_strings() {
        for risky in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
        ] {
            assert!(!SCRIPT.contains(risky), "page.js uses {risky}");
        }
        // Inline event handlers (` onclick="..."`) would need 'unsafe-inline' and are not used.
        let handler = TEMPLATE.split(" on").skip(1).find(|rest| {
            let name: String = rest.chars().take_while(char::is_ascii_alphabetic).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        });
        assert!(handler.is_none(), "inline event handler in page.html");
    }
}
