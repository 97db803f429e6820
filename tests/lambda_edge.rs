//! Every event API Gateway can deliver gets an HTTP answer with a JSON body: events built from
//! the real HTTP API (payload 2.0) and REST API (payload 1.0) shapes, including the ones that
//! `lambda_http` alone cannot convert, go through the Lambda edge in-process, and once through
//! the real binary under a local Lambda (`lambda-runtime-local`), which freezes it between
//! invocations as Lambda does.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use call_history::config::Config;
use common::events::{http_get, http_post_call, sample};
use lambda_http::{Context, LambdaEvent};
use lambda_runtime_local::{LocalLambda, Options};
use serde_json::{json, Value};

const ADMIN_TOKEN: &str = "example-admin-token";

/// A REST API (payload 1.0) event, the shape `lambda_http` tries first.
fn rest_get(path: &str, stage: &str, query: Value) -> Value {
    json!({
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": "GET",
        "headers": {
            "Accept": "application/json",
            "Host": "abcdef1234.execute-api.us-east-1.amazonaws.com",
            "X-Forwarded-Proto": "https"
        },
        "multiValueHeaders": {
            "Accept": ["application/json"],
            "Host": ["abcdef1234.execute-api.us-east-1.amazonaws.com"],
            "X-Forwarded-Proto": ["https"]
        },
        "queryStringParameters": query.clone(),
        "multiValueQueryStringParameters": query.as_object().map(|q| {
            q.iter().map(|(k, v)| (k.clone(), json!([v]))).collect::<serde_json::Map<_, _>>()
        }),
        "pathParameters": {"proxy": path.trim_start_matches('/')},
        "stageVariables": null,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abcdef1234",
            "domainName": "abcdef1234.execute-api.us-east-1.amazonaws.com",
            "httpMethod": "GET",
            "identity": {"sourceIp": "203.0.113.10", "userAgent": "curl/8.5.0"},
            "path": format!("/{stage}{path}"),
            "protocol": "HTTP/1.1",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "requestTimeEpoch": 1710238572129_i64,
            "resourceId": "abc123",
            "resourcePath": "/{proxy+}",
            "stage": stage
        },
        "body": null,
        "isBase64Encoded": false
    })
}

/// One case: the event, the status it must get, and what else to check in the JSON body.
struct Case {
    name: &'static str,
    event: Value,
    status: u16,
    check: fn(&Value),
}

/// Some calls, every one of them with Ada Lovelace: a filter on her name that was applied.
fn only_ada_lovelace(body: &Value) {
    let calls = body["calls"].as_array().expect("calls");
    assert!(!calls.is_empty(), "{body}");
    assert!(calls.iter().all(|c| c["contactName"] == "Ada Lovelace"));
}

fn cases() -> Vec<Case> {
    let mut with_stage = http_get("/prod/api/calls/history", "limit=2");
    with_stage["requestContext"]["stage"] = json!("prod");
    let mut with_cookies = http_get("/db/status", "");
    with_cookies["cookies"] = json!(["session=abc", "theme=dark; bad\u{1}"]);
    let mut odd_headers = http_get("/db/status", "");
    odd_headers["headers"]["x-contact"] = json!("José Müller");
    odd_headers["headers"]["host"] = json!("not a host");
    odd_headers["headers"]["x-forwarded-proto"] = json!("ht tp");
    odd_headers["requestContext"]["domainName"] = json!("also not/a host");
    let mut admin = sample("db-force-sqlite");
    admin["headers"]["authorization"] = json!("Bearer wrong-tøken");
    let valid_base64 = base64::engine::general_purpose::STANDARD
        .encode(r#"{"contactName":"Base Sixtyfour","durationSeconds":5}"#);
    let history = |body: &Value| assert!(body["calls"].is_array(), "{body}");
    let error = |body: &Value| {
        assert!(
            body["error"].as_str().is_some_and(|e| e.ends_with('.')),
            "{body}"
        )
    };
    vec![
        Case {
            name: "raw query with double quotes",
            event: http_get("/api/calls/history", r#"contact="Ada""#),
            status: 200,
            check: |body| assert_eq!(body["count"], 0, "{body}"),
        },
        Case {
            name: "raw query with a raw space",
            event: http_get("/api/calls/history", "contact=Ada Lovelace"),
            status: 200,
            check: only_ada_lovelace,
        },
        Case {
            name: "raw query with angle brackets",
            event: http_get("/api/calls/history", "contact=<b>"),
            status: 200,
            check: |body| assert_eq!(body["count"], 0, "{body}"),
        },
        Case {
            name: "raw query with a lone percent sign",
            event: http_get("/api/calls/history", "contact=100%"),
            status: 200,
            check: history,
        },
        Case {
            name: "repeated query keys",
            event: http_get("/api/calls/history", "limit=1&limit=2"),
            status: 400,
            check: |body| assert!(body["error"].as_str().unwrap().contains("more than once")),
        },
        Case {
            name: "body marked base64 that is not base64",
            event: http_post_call("{\"contactName\":\"Ada\"}", true),
            status: 400,
            check: |body| assert!(body["error"].as_str().unwrap().contains("base64")),
        },
        Case {
            name: "body in valid base64",
            event: http_post_call(&valid_base64, true),
            status: 201,
            check: |body| assert_eq!(body["call"]["contactName"], "Base Sixtyfour"),
        },
        Case {
            name: "percent-encoded dot segments",
            event: http_get("/api/calls/%2e%2e", ""),
            status: 404,
            check: error,
        },
        Case {
            name: "raw space and quote in the path",
            event: http_get("/api/calls/a \"b\"", ""),
            status: 400,
            check: error,
        },
        Case {
            name: "named stage in the raw path",
            event: with_stage,
            status: 200,
            check: |body| assert_eq!(body["count"], 2, "{body}"),
        },
        Case {
            name: "cookies, one of them unusable",
            event: with_cookies,
            status: 200,
            check: |body| assert!(body["currentSource"].is_string(), "{body}"),
        },
        Case {
            name: "non-ASCII header, bad host, bad scheme",
            event: odd_headers,
            status: 200,
            check: |body| assert!(body["currentSource"].is_string(), "{body}"),
        },
        Case {
            name: "non-ASCII bearer token",
            event: admin,
            status: 401,
            check: error,
        },
        Case {
            name: "REST API event under stage prod",
            event: rest_get(
                "/api/calls/history",
                "prod",
                json!({"contact": "Ada Lovelace"}),
            ),
            status: 200,
            check: only_ada_lovelace,
        },
        Case {
            name: "REST API event with a quote in a query value",
            event: rest_get(
                "/api/calls/history",
                "prod",
                json!({"contact": "\"Ada\" <b>"}),
            ),
            status: 200,
            check: |body| assert_eq!(body["count"], 0, "{body}"),
        },
        Case {
            name: "REST API event with a space in the path",
            event: rest_get("/db/no such", "$default", json!(null)),
            status: 404,
            check: error,
        },
        Case {
            name: "not an API Gateway event",
            event: json!({"source": "aws.events", "detail": {}}),
            status: 400,
            check: error,
        },
        Case {
            name: "not even an object",
            event: json!([1, 2, 3]),
            status: 400,
            check: error,
        },
    ]
}

/// The JSON body of a Lambda answer, after checking that it is an HTTP answer saying JSON.
fn json_body(name: &str, answer: &Value) -> (u16, Value) {
    let status = answer["statusCode"]
        .as_u64()
        .unwrap_or_else(|| panic!("{name}: not an HTTP answer: {answer}"));
    let content_type = answer["headers"]["content-type"]
        .as_str()
        .or_else(|| answer["multiValueHeaders"]["content-type"][0].as_str())
        .unwrap_or_else(|| panic!("{name}: no content type: {answer}"));
    assert!(content_type.starts_with("application/json"), "{name}");
    let text = answer["body"].as_str().expect("a text body");
    let body = serde_json::from_str(text).unwrap_or_else(|_| panic!("{name}: JSON body: {text}"));
    (status as u16, body)
}

fn lambda_config(sqlite: &Path) -> Config {
    let vars: HashMap<&str, String> = HashMap::from([
        ("ADMIN_TOKEN", ADMIN_TOKEN.to_string()),
        ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9".to_string()),
        ("SQLITE_PATH", sqlite.display().to_string()),
        // The cases filter on the sample calls, as under `make watch`.
        ("SQLITE_SEED", "sample".to_string()),
    ]);
    let (config, problems) = Config::from_lookup(|name| vars.get(name).cloned());
    assert!(problems.is_empty(), "{problems:?}");
    config
}

#[tokio::test]
async fn every_event_gets_an_http_answer_with_a_json_body() {
    let dir = tempfile::tempdir().unwrap();
    let app = call_history::build_app(&lambda_config(&dir.path().join("crm.db"))).await;
    for case in cases() {
        let event = LambdaEvent::new(case.event.clone(), Context::default());
        let answer = call_history::lambda::handle_event(app.router.clone(), event).await;
        let (status, body) = json_body(case.name, &answer);
        assert_eq!(status, case.status, "{}: {body}", case.name);
        (case.check)(&body);
    }
}

#[tokio::test]
async fn answers_keep_the_shape_of_the_api_that_asked() {
    let dir = tempfile::tempdir().unwrap();
    let app = call_history::build_app(&lambda_config(&dir.path().join("crm.db"))).await;
    let answer = |event: Value| {
        let router = app.router.clone();
        async move {
            call_history::lambda::handle_event(router, LambdaEvent::new(event, Context::default()))
                .await
        }
    };
    // REST API answers carry their headers as lists, HTTP API answers as strings.
    let rest = answer(rest_get("/db/status", "prod", json!(null))).await;
    assert_eq!(rest["statusCode"], 200, "{rest}");
    assert_eq!(rest["multiValueHeaders"]["x-data-source"][0], "sqlite");
    let http = answer(http_get("/db/status", "")).await;
    assert_eq!(http["headers"]["x-data-source"], "sqlite", "{http}");
    // A refusal before the router keeps the shape too.
    let mut refused = rest_get("/api/calls", "prod", json!(null));
    refused["httpMethod"] = json!("POST");
    refused["body"] = json!("%%%");
    refused["isBase64Encoded"] = json!(true);
    let refused = answer(refused).await;
    assert_eq!(refused["statusCode"], 400, "{refused}");
    assert!(refused["multiValueHeaders"]["content-type"].is_array());
}

// ---- the binary under a local Lambda -----------------------------------------------------

/// The function as the template configures it (256 MB, 29 s), with Lambda's own defaults for
/// the rest; init may take longer than Lambda's 10 s, as a debug build on a busy machine can.
fn lambda_options() -> Options {
    Options {
        function_name: "call-history".to_string(),
        memory_size_mb: 256,
        function_timeout: Duration::from_secs(29),
        init_timeout: Duration::from_secs(60),
        ..Options::default()
    }
}

/// Runs the binary under a local Lambda (freezing between invocations, as Lambda does) with
/// `env` (besides the Lambda variables, `ADMIN_TOKEN`, the sample calls and a fresh
/// `SQLITE_PATH`), hands it `events` one by one and returns its answers in order. Each
/// invocation must end with the environment frozen, and the shutdown must go as Lambda's.
async fn answers_of_the_binary(events: &[Value], env: &[(&str, &str)]) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let lambda = LocalLambda::start(lambda_options()).await.unwrap();
    let mut function = tokio::process::Command::new(env!("CARGO_BIN_EXE_call-history"));
    function
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SQLITE_SEED", "sample")
        .env("AWS_LAMBDA_LOG_LEVEL", "WARN")
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("SQLITE_PATH", dir.path().join("crm.db"))
        .envs(env.iter().copied());
    if let Err(err) = lambda.spawn(function).await {
        panic!("the binary did not start as a Lambda function: {err}");
    }
    let mut answers = Vec::with_capacity(events.len());
    for (i, event) in events.iter().enumerate() {
        let invocation = lambda.invoke(event).await.unwrap();
        let answer = invocation.response.json().unwrap_or_else(|err| {
            panic!("event {i}: {err}; the function wrote:\n{}", lambda.stderr())
        });
        assert!(
            invocation.frozen_at.is_some(),
            "event {i}: the environment froze after the answer"
        );
        answers.push(answer);
    }
    assert!(lambda.refusals().is_empty(), "{:?}", lambda.refusals());
    let report = lambda.shutdown().await.unwrap();
    let runtime = report.runtime.expect("the binary ran");
    // The internal extension makes Lambda send SIGTERM; the binary exits 0 within its 500 ms.
    assert!(report.sigterm_sent);
    assert!(
        !runtime.killed,
        "the binary was killed at the end of its shutdown time; it wrote:\n{}",
        report.stderr
    );
    assert_eq!(runtime.status.and_then(|status| status.code()), Some(0));
    answers
}

#[tokio::test]
async fn the_binary_answers_every_event_under_a_lambda_runtime_api() {
    let cases = cases();
    let events: Vec<Value> = cases.iter().map(|case| case.event.clone()).collect();
    let answers = answers_of_the_binary(&events, &[]).await;
    for (case, answer) in cases.iter().zip(&answers) {
        let (status, body) = json_body(case.name, answer);
        assert_eq!(status, case.status, "{}: {body}", case.name);
        (case.check)(&body);
    }
}

/// The access mode as the template sets it (`API_AUTHORIZATION=JWT`, `JWT_ADMIN_SCOPE`): the
/// binary reads it at start and asks the gateway's verdict of every route but the health check
/// and the page. Validating the token is the gateway's alone: the event carries its verdict.
#[tokio::test]
async fn the_binary_takes_its_access_mode_from_the_template_variables() {
    let verified = |mut event: Value, scopes: &[&str]| {
        event["requestContext"]["authorizer"] = json!({
            "jwt": {"claims": {"sub": "user-1", "exp": 1710242165}, "scopes": scopes}
        });
        event
    };
    let history = http_get("/api/calls/history", "limit=2");
    let mut force = sample("db-force-sqlite");
    force["headers"]
        .as_object_mut()
        .unwrap()
        .remove("authorization");
    let events = vec![
        verified(history.clone(), &[]),
        history,
        verified(force.clone(), &["call-history/read"]),
        verified(force, &["call-history/admin"]),
        http_get("/db/healthz", ""),
    ];
    let env = [
        ("API_AUTHORIZATION", "JWT"),
        ("JWT_ADMIN_SCOPE", "call-history/admin"),
    ];
    let answers = answers_of_the_binary(&events, &env).await;
    let statuses: Vec<u16> = answers
        .iter()
        .map(|answer| json_body("access mode", answer).0)
        .collect();
    assert_eq!(statuses, [200, 401, 403, 200, 200]);
}
