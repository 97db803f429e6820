//! The double is as strict as Lambda: a function built on `lambda_runtime` and
//! `lambda-extension` (the `lambda-fixture` program) is frozen when Lambda would freeze it, its
//! background work waits for the next thaw, extensions delay the freeze but not the answer, and
//! shutdown sends what Lambda sends in Lambda's order and limits.
//!
//! No assertion puts an upper bound on a duration: the machine is shared. Lower bounds and
//! orders are what Lambda's rules guarantee.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

use lambda_runtime_local::{
    Error, ExtensionKind, LocalLambda, MAX_RESPONSE_BYTES, Options, Reset, Response, ShutdownReason,
};
use serde_json::{Value, json};
use tokio::process::Command;

/// Generous limits: a debug build on a busy machine is slow to start; Lambda's own limits are
/// tested where they are the point.
fn options() -> Options {
    Options {
        function_timeout: Duration::from_secs(60),
        init_timeout: Duration::from_secs(60),
        ..Options::default()
    }
}

fn fixture(mode: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lambda-fixture"));
    command.arg(mode);
    command
}

fn function() -> Command {
    fixture("function")
}

async fn started(command: Command) -> LocalLambda {
    let lambda = LocalLambda::start(options()).await.expect("the API starts");
    lambda.spawn(command).await.expect("init ends");
    lambda
}

fn json_of(response: &Response) -> Value {
    response.json().expect("a JSON success")
}

/// The state letter of `/proc/<pid>/stat` (`T` when stopped by a signal).
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = stat.rsplit_once(") ")?.1;
    after_name.chars().next()
}

/// Waits (boundedly: this is liveness, not speed) until the kernel shows the process stopped.
async fn stopped_by_the_kernel(pid: u32) -> bool {
    for _ in 0..500 {
        if process_state(pid) == Some('T') {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn a_function_without_extensions_is_frozen_right_after_its_response() {
    let lambda = started(function()).await;
    assert!(lambda.init_duration().is_some());
    assert!(lambda.is_frozen(), "init ends with a freeze");
    assert_eq!(lambda.freeze_count(), 1);

    let invocation = lambda.invoke(&json!({ "echo": "hi" })).await.unwrap();

    assert_eq!(json_of(&invocation.response), json!({ "echo": "hi" }));
    assert!(invocation.invoked_extensions.is_empty());
    assert_eq!(invocation.extensions_done_at, None);
    let runtime_next = invocation
        .runtime_next_at
        .expect("the runtime asked for more");
    assert!(runtime_next >= invocation.response_at);
    let frozen = invocation.frozen_at.expect("frozen after the invocation");
    assert!(
        frozen >= runtime_next,
        "frozen once the runtime waits, not before"
    );
    assert!(lambda.is_frozen());
    assert_eq!(lambda.freeze_count(), 2);
    let pid = lambda.runtime_pid().unwrap();
    assert!(
        stopped_by_the_kernel(pid).await,
        "the process is really stopped"
    );
    assert!(lambda.refusals().is_empty(), "{:?}", lambda.refusals());
}

#[tokio::test]
async fn background_work_left_after_the_answer_runs_only_at_the_next_thaw() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("background");
    let lambda = started(function()).await;

    let first = lambda
        .invoke(&json!({ "write_later": { "path": marker, "after_ms": 200 } }))
        .await
        .unwrap();
    assert_eq!(json_of(&first.response), json!({ "scheduled": true }));
    assert!(lambda.is_frozen());
    // Five times the task's delay: it would have written by now had the process run on.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert!(!marker.exists(), "the background task ran while frozen");
    assert!(lambda.is_frozen());

    // The next invocation thaws the process, and the task finishes while it runs.
    let second = lambda
        .invoke(&json!({ "wait_for_file": { "path": marker, "within_ms": 30_000 } }))
        .await
        .unwrap();
    assert_eq!(json_of(&second.response), json!({ "appeared": true }));
    assert!(marker.exists());
}

fn function_with_internal_extension(events: &str, work_dir: &Path) -> Command {
    let mut command = function();
    command
        .env("FIXTURE_INTERNAL_EXTENSION_EVENTS", events)
        .env("FIXTURE_EXTENSION_WORK_DIR", work_dir)
        .env("FIXTURE_EXTENSION_WORK_MS", "300");
    command
}

#[tokio::test]
async fn an_internal_extension_delays_the_freeze_but_not_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let lambda = started(function_with_internal_extension("INVOKE", dir.path())).await;
    let extensions = lambda.extensions();
    assert_eq!(extensions.len(), 1);
    assert_eq!(extensions[0].name, "fixture-internal");
    assert_eq!(extensions[0].kind, ExtensionKind::Internal);
    assert!(extensions[0].invoke && !extensions[0].shutdown);

    let mut pending = lambda.send(&json!({ "echo": 1 })).unwrap();
    let (response, answered_at) = pending.response().await.unwrap();
    assert_eq!(json_of(&response), json!({ "echo": 1 }));
    let marker = dir.path().join(pending.request_id());
    let invocation = pending.finished().await.unwrap();

    assert_eq!(invocation.response_at, answered_at);
    assert_eq!(invocation.invoked_extensions, ["fixture-internal"]);
    let done = invocation
        .extensions_done_at
        .expect("the extension called next");
    assert!(
        invocation.response_at < done,
        "the caller had its answer before the extension's work ended"
    );
    let frozen = invocation.frozen_at.expect("frozen after the extension");
    assert!(frozen >= done);
    assert!(frozen >= invocation.runtime_next_at.unwrap());
    assert!(frozen.duration_since(invocation.delivered_at) >= Duration::from_millis(300));
    assert!(invocation.post_answer().is_some());
    assert!(lambda.is_frozen());
    assert!(marker.exists(), "the extension's work is done once frozen");
}

#[tokio::test]
async fn a_cold_start_delivers_its_event_as_init_ends() {
    let lambda = LocalLambda::start(options()).await.unwrap();

    let invocation = lambda
        .cold_start(function(), &json!({ "echo": "cold" }))
        .await
        .unwrap();

    assert_eq!(json_of(&invocation.response), json!({ "echo": "cold" }));
    assert!(lambda.init_duration().is_some());
    assert!(invocation.frozen_at.is_some());
    assert!(lambda.is_frozen());
    assert_eq!(
        lambda.freeze_count(),
        1,
        "no freeze between init and the event: the one freeze came after the invocation"
    );
}

#[tokio::test]
async fn without_extensions_shutdown_kills_the_runtime_at_once() {
    let lambda = started(function()).await;
    lambda.invoke(&json!({ "echo": 0 })).await.unwrap();

    let report = lambda.shutdown().await.unwrap();

    assert_eq!(report.reason, ShutdownReason::Spindown);
    assert_eq!(report.budget, Duration::ZERO);
    assert!(
        !report.sigterm_sent,
        "no graceful shutdown without an extension"
    );
    let runtime = report.runtime.expect("a runtime ran");
    assert!(runtime.killed);
    assert_eq!(runtime.status.and_then(|s| s.signal()), Some(9));
}

#[tokio::test]
async fn with_an_internal_extension_the_runtime_gets_sigterm_first() {
    let dir = tempfile::tempdir().unwrap();
    let sigterm_marker = dir.path().join("sigterm");
    let mut command = function_with_internal_extension("", dir.path());
    command.env(
        "FIXTURE_ON_SIGTERM",
        format!("exit:{}", sigterm_marker.display()),
    );
    let lambda = started(command).await;

    let report = lambda.shutdown().await.unwrap();

    assert_eq!(report.budget, Duration::from_millis(500));
    assert!(report.sigterm_sent);
    let runtime = report.runtime.unwrap();
    assert!(!runtime.killed, "it exited within its time");
    assert_eq!(runtime.status.and_then(|s| s.code()), Some(0));
    assert!(sigterm_marker.exists());
    assert_eq!(report.extensions.len(), 1);
    assert_eq!(report.extensions[0].kind, ExtensionKind::Internal);
    assert_eq!(report.extensions[0].shutdown_delivered_after, None);
}

#[tokio::test]
async fn a_runtime_that_ignores_sigterm_is_killed_when_its_time_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = function_with_internal_extension("INVOKE", dir.path());
    command.env("FIXTURE_ON_SIGTERM", "ignore");
    let lambda = started(command).await;

    let report = lambda.shutdown().await.unwrap();

    assert!(report.sigterm_sent);
    let runtime = report.runtime.unwrap();
    assert!(runtime.killed);
    assert_eq!(runtime.status.and_then(|s| s.signal()), Some(9));
    let ended = runtime.ended_after.expect("ended during the phase");
    assert!(
        ended >= Duration::from_millis(500),
        "killed after {ended:?}"
    );
}

#[tokio::test]
async fn an_external_extension_gets_shutdown_once_the_runtime_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let shutdown_marker = dir.path().join("shutdown.json");
    let lambda = LocalLambda::start(options()).await.unwrap();
    let mut extension = fixture("external-extension");
    extension
        .env("FIXTURE_EXTENSION_NAME", "fixture-external")
        .env("FIXTURE_SHUTDOWN_MARKER", &shutdown_marker);
    lambda
        .spawn_external_extension("fixture-external", extension)
        .await
        .unwrap();
    lambda.spawn(function()).await.unwrap();
    let extensions = lambda.extensions();
    assert_eq!(extensions[0].kind, ExtensionKind::External);
    assert!(extensions[0].invoke && extensions[0].shutdown);

    let invocation = lambda.invoke(&json!({ "echo": 2 })).await.unwrap();
    assert_eq!(invocation.invoked_extensions, ["fixture-external"]);
    let frozen = invocation.frozen_at.expect("frozen after the invocation");
    let extension_done = invocation
        .extensions_done_at
        .expect("the extension called next");
    assert!(frozen >= extension_done);
    let report = lambda.shutdown().await.unwrap();

    assert_eq!(report.budget, Duration::from_millis(2_000));
    assert!(report.sigterm_sent);
    let runtime = report.runtime.unwrap();
    assert!(!runtime.killed, "SIGTERM's default action ended it");
    assert_eq!(runtime.status.and_then(|s| s.signal()), Some(15));
    let extension = &report.extensions[0];
    let delivered = extension
        .shutdown_delivered_after
        .expect("SHUTDOWN went out");
    assert!(
        delivered >= runtime.ended_after.unwrap(),
        "the runtime is shut down first"
    );
    let process = extension.process.as_ref().unwrap();
    assert!(!process.killed);
    assert_eq!(process.status.and_then(|s| s.code()), Some(0));
    let event: Value = serde_json::from_slice(&std::fs::read(&shutdown_marker).unwrap()).unwrap();
    assert_eq!(event["reason"], "spindown");
    assert!(event["deadline_ms"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn registering_after_init_is_refused() {
    let lambda = started(function()).await;

    let invocation = lambda
        .invoke(&json!({ "register_extension": "too-late" }))
        .await
        .unwrap();

    let answer = json_of(&invocation.response);
    assert_eq!(answer["registered"], false, "{answer}");
    assert!(lambda.extensions().is_empty());
    let refusals = lambda.refusals();
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0].path, "/2020-01-01/extension/register");
    assert_eq!(refusals[0].status, 403);
    assert_eq!(refusals[0].error_type, "Extension.RegistrationClosed");
}

#[tokio::test]
async fn an_internal_extension_may_not_subscribe_to_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let lambda = LocalLambda::start(options()).await.unwrap();

    let init = lambda
        .spawn(function_with_internal_extension(
            "INVOKE,SHUTDOWN",
            dir.path(),
        ))
        .await;

    assert!(matches!(init, Err(Error::InitFailed { .. })), "{init:?}");
    let refusals = lambda.refusals();
    assert!(
        refusals
            .iter()
            .any(|r| r.status == 403 && r.error_type == "Extension.InvalidEventType"),
        "{refusals:?}"
    );
}

#[tokio::test]
async fn an_invoke_phase_past_the_function_timeout_resets_the_environment() {
    let lambda = LocalLambda::start(Options {
        function_timeout: Duration::from_secs(1),
        ..options()
    })
    .await
    .unwrap();
    lambda.spawn(function()).await.unwrap();

    let invocation = lambda.invoke(&json!({ "sleep_ms": 30_000 })).await.unwrap();

    assert!(matches!(
        invocation.response,
        Response::NoAnswer(Reset::TimedOut)
    ));
    assert_eq!(invocation.reset, Some(Reset::TimedOut));
    assert_eq!(invocation.frozen_at, None);
    assert!(
        invocation
            .response_at
            .duration_since(invocation.delivered_at)
            >= Duration::from_secs(1)
    );
    assert_eq!(lambda.reset(), Some(Reset::TimedOut));
    assert!(matches!(
        lambda.invoke(&json!({ "echo": 3 })).await,
        Err(Error::NotReady(_))
    ));
    let report = lambda.shutdown().await.unwrap();
    assert_eq!(report.reason, ShutdownReason::Timeout);
    assert!(report.runtime.unwrap().killed);
}

#[tokio::test]
async fn a_function_error_reaches_the_caller_as_one() {
    let lambda = started(function()).await;

    let invocation = lambda.invoke(&json!({ "fail": "no luck" })).await.unwrap();

    let Response::FunctionError { body, .. } = &invocation.response else {
        panic!("{:?}", invocation.response);
    };
    assert!(String::from_utf8_lossy(body).contains("no luck"));
    assert!(invocation.frozen_at.is_some());
}

#[tokio::test]
async fn what_lambda_does_not_serve_is_refused_and_kept() {
    let lambda = started(function()).await;
    let base = format!("http://{}", lambda.address());
    let client = reqwest::Client::new();

    let telemetry = client
        .put(format!("{base}/2022-07-01/telemetry"))
        .body("{}")
        .send()
        .await
        .unwrap();
    let anonymous_next = client
        .get(format!("{base}/2020-01-01/extension/event/next"))
        .send()
        .await
        .unwrap();
    let malformed_next = client
        .get(format!("{base}/2020-01-01/extension/event/next"))
        .header("Lambda-Extension-Identifier", "not-a-uuid")
        .send()
        .await
        .unwrap();
    let stray_answer = client
        .post(format!(
            "{base}/2018-06-01/runtime/invocation/no-such-id/response"
        ))
        .body("{}")
        .send()
        .await
        .unwrap();

    assert_eq!(telemetry.status(), 501);
    assert_eq!(anonymous_next.status(), 403);
    assert_eq!(malformed_next.status(), 403);
    assert_eq!(stray_answer.status(), 400);
    let kinds: Vec<String> = lambda
        .refusals()
        .into_iter()
        .map(|refusal| refusal.error_type)
        .collect();
    assert_eq!(
        kinds,
        [
            "Unmodelled.LogsOrTelemetryApi",
            "Extension.MissingExtensionIdentifier",
            "Extension.InvalidExtensionIdentifier",
            "InvalidRequestID"
        ]
    );
    assert!(lambda.is_frozen(), "refusals do not thaw the environment");
}

/// The error types of the refusals so far, with their statuses.
fn refused(lambda: &LocalLambda) -> Vec<(u16, String)> {
    lambda
        .refusals()
        .into_iter()
        .map(|refusal| (refusal.status, refusal.error_type))
        .collect()
}

/// `Register` as an extension calls it, with `name` in `Lambda-Extension-Name`; its status and
/// `Lambda-Extension-Identifier`.
async fn register(lambda: &LocalLambda, name: Option<&str>, body: &str) -> (u16, Option<String>) {
    let mut request = reqwest::Client::new()
        .post(format!(
            "http://{}/2020-01-01/extension/register",
            lambda.address()
        ))
        .body(body.to_string());
    if let Some(name) = name {
        request = request.header("Lambda-Extension-Name", name);
    }
    let response = request.send().await.unwrap();
    let id = response
        .headers()
        .get("Lambda-Extension-Identifier")
        .map(|id| id.to_str().unwrap().to_string());
    (response.status().as_u16(), id)
}

#[tokio::test]
async fn registrations_are_refused_as_lambda_refuses_them() {
    let lambda = LocalLambda::start(options()).await.unwrap();
    let status = |(status, _): (u16, Option<String>)| status;

    let invoke = r#"{"events": ["INVOKE"]}"#;
    assert_eq!(status(register(&lambda, None, invoke).await), 403);
    assert_eq!(status(register(&lambda, Some(""), invoke).await), 403);
    assert_eq!(status(register(&lambda, Some("a"), "").await), 403);
    assert_eq!(status(register(&lambda, Some("a"), "INVOKE").await), 403);
    let deprecated = r#"{"configurationKeys": ["KEY"]}"#;
    assert_eq!(status(register(&lambda, Some("a"), deprecated).await), 403);
    let shutdown = r#"{"events": ["INVOKE", "SHUTDOWN"]}"#;
    assert_eq!(status(register(&lambda, Some("a"), shutdown).await), 403);
    let unknown = r#"{"EVENTS": ["RESET"]}"#;
    assert_eq!(status(register(&lambda, Some("a"), unknown).await), 403);
    // Lambda reads the body as Go does: keys whatever their case, `null` for nothing.
    let capitalised = r#"{"Events": ["INVOKE"], "other": 1}"#;
    assert_eq!(status(register(&lambda, Some("a"), capitalised).await), 200);
    assert_eq!(status(register(&lambda, Some("b"), "null").await), 200);
    assert_eq!(status(register(&lambda, Some("a"), "{}").await), 403);

    let extensions = lambda.extensions();
    assert_eq!(extensions.len(), 2);
    assert!(extensions[0].invoke && !extensions[0].shutdown);
    assert!(!extensions[1].invoke && !extensions[1].shutdown);
    let forbidden = |error_type: &str| (403, error_type.to_string());
    assert_eq!(
        refused(&lambda),
        [
            forbidden("Extension.InvalidExtensionName"),
            forbidden("Extension.InvalidExtensionName"),
            forbidden("InvalidRequestFormat"),
            forbidden("InvalidRequestFormat"),
            forbidden("InvalidRequestFormat"),
            forbidden("Extension.InvalidEventType"),
            forbidden("Extension.InvalidEventType"),
            forbidden("Extension.InvalidExtensionState"),
        ]
    );
}

#[tokio::test]
async fn an_extension_error_report_is_taken_once_as_lambda_takes_it() {
    let lambda = LocalLambda::start(options()).await.unwrap();
    let (_, id) = register(&lambda, Some("failing"), "{}").await;
    let id = id.expect("registered");
    let client = reqwest::Client::new();
    let base = format!("http://{}/2020-01-01/extension", lambda.address());
    let call = |path: &str, error_type: Option<&str>| {
        let mut request = client
            .post(format!("{base}/{path}"))
            .header("Lambda-Extension-Identifier", &id);
        if let Some(error_type) = error_type {
            request = request.header("Lambda-Extension-Function-Error-Type", error_type);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };

    assert_eq!(call("init/error", None).await, 403);
    assert_eq!(call("init/error", Some("Extension.Boom")).await, 202);
    // Lambda takes the same report again, and ignores it; nothing else.
    assert_eq!(call("init/error", Some("Extension.Boom")).await, 202);
    assert_eq!(call("exit/error", Some("Extension.Boom")).await, 403);
    let next = client
        .get(format!("{base}/event/next"))
        .header("Lambda-Extension-Identifier", &id)
        .send()
        .await
        .unwrap();
    assert_eq!(next.status(), 403);

    let forbidden = |error_type: &str| (403, error_type.to_string());
    assert_eq!(
        refused(&lambda),
        [
            forbidden("Extension.MissingHeader"),
            forbidden("Extension.InvalidExtensionState"),
            forbidden("Extension.InvalidExtensionState"),
        ]
    );
    let init = lambda.shutdown().await.unwrap();
    assert_eq!(init.reason, ShutdownReason::Failure);
}

/// The test plays the runtime: it asks for the event and answers it over HTTP.
#[tokio::test]
async fn answers_are_taken_as_lambda_takes_them() {
    let lambda = LocalLambda::start(options()).await.unwrap();
    let base = format!("http://{}/2018-06-01/runtime/invocation", lambda.address());
    let client = reqwest::Client::new();
    let next = |client: reqwest::Client, base: String| async move {
        let event = client.get(format!("{base}/next")).send().await.unwrap();
        let id = &event.headers()["lambda-runtime-aws-request-id"];
        id.to_str().unwrap().to_string()
    };

    // The largest answer Lambda passes on, then the same answer again.
    let mut largest = lambda.send(&json!({ "n": 1 })).unwrap();
    let id = next(client.clone(), base.clone()).await;
    let answer = |id: &str, bytes: usize| {
        client
            .post(format!("{base}/{id}/response"))
            .body(vec![b'a'; bytes])
            .send()
    };
    assert_eq!(answer(&id, MAX_RESPONSE_BYTES).await.unwrap().status(), 202);
    assert_eq!(answer(&id, 2).await.unwrap().status(), 403);
    let (response, _) = largest.response().await.unwrap();
    assert!(matches!(response, Response::Success(body) if body.len() == MAX_RESPONSE_BYTES));
    let waiting = tokio::spawn(next(client.clone(), base.clone()));
    largest.finished().await.unwrap();

    // One byte more fails the invocation; the runtime hears 413.
    let too_large = lambda.send(&json!({ "n": 2 })).unwrap();
    let id = waiting.await.unwrap();
    assert_eq!(
        answer(&id, MAX_RESPONSE_BYTES + 1).await.unwrap().status(),
        413
    );
    tokio::spawn(next(client.clone(), base.clone()));
    let invocation = too_large.finished().await.unwrap();
    let Response::FunctionError { error_type, body } = &invocation.response else {
        panic!("{:?}", invocation.response);
    };
    assert_eq!(error_type.as_deref(), Some("Function.ResponseSizeTooLarge"));
    let body: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(body["errorType"], "Function.ResponseSizeTooLarge");

    assert_eq!(
        refused(&lambda),
        [
            (403, "InvalidStateTransition".to_string()),
            (413, "RequestEntityTooLarge".to_string())
        ]
    );
}
