//! `GET /`, the status page for people, over local HTTP and through the Lambda entry. What the
//! page does in a browser is tested by `tests/browser/` (headless Chromium).

mod common;

use call_history::config::Config;

const BANNER: &str = "⚠️ Using local backup database - Some data may be out of sync";

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .expect("ASCII header")
}

#[tokio::test]
async fn the_page_is_html_with_a_strict_content_security_policy() {
    let app = common::spawn_app(&[]).await;
    let response = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "content-type"),
        "text/html; charset=utf-8"
    );
    assert_eq!(header(&response, "x-content-type-options"), "nosniff");
    assert_eq!(header(&response, "x-data-source"), "sqlite");
    let policy = header(&response, "content-security-policy").to_string();
    assert!(policy.starts_with("default-src 'none'"), "{policy}");
    assert!(policy.contains("script-src 'sha256-"), "{policy}");
    assert!(policy.contains("connect-src 'self'"), "{policy}");
    assert!(policy.contains("form-action 'none'"), "{policy}");
    assert!(!policy.contains("unsafe"), "{policy}");

    let html = response.text().await.unwrap();
    assert!(html.starts_with("<!doctype html>"));
    for needle in [
        "id=\"db-indicator\"",
        BANNER,
        "id=\"record-form\"",
        "id=\"access-token\"",
    ] {
        assert!(html.contains(needle), "the page lacks {needle}");
    }
    // Self-contained: nothing is loaded from anywhere else.
    for outside in ["src=\"http", "href=\"http", "src=\"//", "@import"] {
        assert!(!html.contains(outside), "the page loads {outside}");
    }
}

#[tokio::test]
async fn other_methods_on_the_page_get_a_json_405() {
    let app = common::spawn_app(&[]).await;
    let reply = app.post("/", "{}").await;
    assert_eq!(reply.status, 405);
    assert!(reply.body["error"].as_str().unwrap().contains("POST"));
    let head = app.client.head(app.url("/")).send().await.unwrap();
    assert_eq!(head.status(), 200);
}

/// An API Gateway HTTP API (payload 2.0) event for `GET /`, as the `$default` stage sends it.
const PAGE_EVENT: &str = r#"{
  "version": "2.0",
  "routeKey": "GET /",
  "rawPath": "/",
  "rawQueryString": "",
  "headers": { "accept": "text/html", "host": "example.execute-api.us-east-1.amazonaws.com" },
  "requestContext": {
    "accountId": "123456789012",
    "apiId": "example",
    "domainName": "example.execute-api.us-east-1.amazonaws.com",
    "domainPrefix": "example",
    "http": { "method": "GET", "path": "/", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.10", "userAgent": "test" },
    "requestId": "status-page",
    "routeKey": "GET /",
    "stage": "$default",
    "time": "12/Mar/2024:10:15:30 +0000",
    "timeEpoch": 1710238530123
  },
  "isBase64Encoded": false
}"#;

#[tokio::test]
async fn the_lambda_handler_serves_the_page_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dir.path().join("crm.db").display().to_string();
    let (config, problems) = Config::from_lookup(|name| match name {
        "AWS_LAMBDA_RUNTIME_API" => Some("127.0.0.1:9001".to_string()),
        "SQLITE_PATH" => Some(sqlite.clone()),
        _ => None,
    });
    assert!(problems.is_empty(), "{problems:?}");
    let app = call_history::build_app(&config).await;
    let answer = common::invoke_lambda(&app.router, PAGE_EVENT).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(answer.header("content-security-policy").is_some());
    assert_eq!(answer.header("x-data-source"), Some("sqlite"));
    assert!(answer.text().contains(BANNER));
}
