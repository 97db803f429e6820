//! The control API over plain HTTP, with its effect seen through the SDK.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use aws_sdk_redshiftdata::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_redshiftdata::types::StatusString;
use serde_json::{Value, json};

use crate::common::{Env, cloudwatch_client, execute, put_one};

struct Control {
    http: reqwest::Client,
    url: String,
}

impl Control {
    async fn start(env: &Env) -> Self {
        let url = env
            .standin
            .serve_control(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .expect("serve the control API");
        Self {
            http: reqwest::Client::new(),
            url,
        }
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .json(body)
            .send()
            .await
            .expect("POST");
        (
            response.status().as_u16(),
            response.json().await.expect("a JSON answer"),
        )
    }

    async fn delete(&self, path: &str) -> u16 {
        let response = self
            .http
            .delete(format!("{}{path}", self.url))
            .send()
            .await
            .expect("DELETE");
        response.status().as_u16()
    }

    async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status().as_u16(), 200);
        response.json().await.expect("a JSON answer")
    }
}

#[tokio::test]
async fn faults_are_set_and_cleared_over_http() {
    let env = Env::start().await;
    let control = Control::start(&env).await;

    let (status, answer) = control
        .post("/fault", &json!({"fault": "http-status", "status": 503}))
        .await;
    assert_eq!(
        (status, answer["fault"]["status"].as_u64()),
        (200, Some(503))
    );
    let error = execute(&env.data, "SELECT 1")
        .send()
        .await
        .expect_err("503");
    assert_eq!(
        error.into_service_error().code(),
        Some("ServiceUnavailableException")
    );

    control
        .post("/fault", &json!({"fault": "refuse-connections"}))
        .await;
    let error = execute(&env.data, "SELECT 1")
        .send()
        .await
        .expect_err("refused");
    assert!(matches!(error, SdkError::DispatchFailure(_)), "{error:?}");

    assert_eq!(control.delete("/fault").await, 200);
    env.run_ok("SELECT 1").await;

    control
        .post(
            "/fault",
            &json!({"fault": "fail-statements", "message": "ERROR: boom"}),
        )
        .await;
    let failed = env.run("SELECT 1").await;
    assert_eq!(
        (failed.status(), failed.error()),
        (Some(&StatusString::Failed), Some("ERROR: boom"))
    );
    control
        .post("/fault", &json!({"fault": "stay-started", "seconds": 0.1}))
        .await;
    env.run_ok("SELECT 1").await;
    control
        .post("/fault", &json!({"fault": "slow", "millis": 10}))
        .await;
    env.run_ok("SELECT 1").await;
    assert_eq!(control.delete("/fault").await, 200);

    let operations = control.get("/operations").await;
    assert_eq!(
        operations["ExecuteStatement"].as_u64(),
        Some(env.standin.operation_count("ExecuteStatement") as u64)
    );
}

#[tokio::test]
async fn bad_fault_requests_are_refused() {
    let env = Env::start().await;
    let control = Control::start(&env).await;
    for body in [
        json!({"fault": "explode"}),
        json!({"fault": "http-status"}),
        json!({"fault": "http-status", "status": 1000}),
        json!({"fault": "stay-started", "seconds": -1}),
    ] {
        let (status, answer) = control.post("/fault", &body).await;
        assert_eq!(status, 400, "{body}");
        assert!(answer["error"].is_string(), "{answer}");
    }
    env.run_ok("SELECT 1").await;
}

#[tokio::test]
async fn captured_metrics_and_cloudwatch_faults_over_http() {
    let env = Env::start().await;
    let control = Control::start(&env).await;
    let client = cloudwatch_client(&env.standin.cloudwatch_url(), |b| b).await;
    let put = || put_one(&client, "FallbackEvents", 1.0);

    control
        .post(
            "/cloudwatch/fault",
            &json!({"fault": "http-status", "status": 500}),
        )
        .await;
    let error = put().await.expect_err("500");
    assert_eq!(
        error.into_service_error().code(),
        Some("InternalServiceError")
    );
    assert_eq!(control.delete("/cloudwatch/fault").await, 200);

    put().await.expect("PutMetricData");
    let metrics = control.get("/metrics").await;
    assert_eq!(metrics.as_array().map(Vec::len), Some(1));
    assert_eq!(metrics[0]["metricName"], "FallbackEvents");
    assert_eq!(metrics[0]["namespace"], "CallHistory");
    assert_eq!(metrics[0]["value"], 1.0);

    assert_eq!(control.delete("/metrics").await, 200);
    assert_eq!(control.get("/metrics").await, json!([]));
}

#[tokio::test]
async fn quotas_are_reported_and_changed_over_http() {
    let env = Env::start().await;
    let control = Control::start(&env).await;

    let aws = control.get("/quotas").await;
    assert_eq!(
        aws["ExecuteStatement"]["quota"],
        json!({"perSecond": 30, "burst": 30})
    );
    assert_eq!(aws["DescribeStatement"]["quota"]["perSecond"], 100);

    let (status, changed) = control
        .post(
            "/quotas",
            &json!({"ExecuteStatement": {"perSecond": 0, "burst": 1}, "CancelStatement": null}),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["CancelStatement"]["quota"], Value::Null);
    assert_eq!(changed["BatchExecuteStatement"]["quota"]["perSecond"], 20);
    let (_, one_second) = control
        .post("/quotas", &json!({"DescribeStatement": {"perSecond": 50}}))
        .await;
    assert_eq!(
        one_second["DescribeStatement"]["quota"],
        json!({"perSecond": 50, "burst": 50}),
        "the burst defaults to one second's worth"
    );

    let client = env.single_try_client().await;
    execute(&client, "SELECT 1")
        .send()
        .await
        .expect("the burst of 1");
    let throttled = execute(&client, "SELECT 1")
        .send()
        .await
        .expect_err("nothing left");
    assert_eq!(
        throttled.into_service_error().code(),
        Some("ThrottlingException")
    );
    let report = control.get("/quotas").await;
    assert_eq!(report["ExecuteStatement"]["calls"], 2);
    assert_eq!(report["ExecuteStatement"]["throttled"], 1);
    assert_eq!(report["DescribeStatement"]["throttled"], 0);
    // /operations keeps its shape: a count per operation, throttled calls included.
    assert_eq!(control.get("/operations").await["ExecuteStatement"], 2);

    assert_eq!(control.delete("/quotas").await, 200);
    execute(&client, "SELECT 1")
        .send()
        .await
        .expect("no quotas");
    assert_eq!(
        control.get("/quotas").await["ExecuteStatement"]["quota"],
        Value::Null
    );
    let (status, restored) = control.post("/quotas/aws", &json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(restored["CancelStatement"]["quota"]["perSecond"], 10);
    assert_eq!(env.standin.quotas(), redshift_data_local::Quotas::aws());

    for body in [
        json!({"ExecuteStatment": {"perSecond": 1, "burst": 1}}),
        json!({"ExecuteStatement": {"perSecond": -1, "burst": 1}}),
        json!({"ExecuteStatement": {"rate": 5}}),
        json!(["ExecuteStatement"]),
        // A rate with no burst would refuse every call forever.
        json!({"ExecuteStatement": {"perSecond": 5, "burst": 0}}),
    ] {
        let (status, answer) = control.post("/quotas", &body).await;
        assert_eq!(status, 400, "{body}");
        assert!(answer["error"].is_string(), "{answer}");
    }
    assert_eq!(
        env.standin.quotas(),
        redshift_data_local::Quotas::aws(),
        "unchanged"
    );
}

#[tokio::test]
async fn a_quota_change_with_one_bad_entry_changes_nothing() {
    let env = Env::start().await;
    let control = Control::start(&env).await;
    for body in [
        json!({"DescribeStatement": {"perSecond": 7}, "ExecuteStatment": {"perSecond": 1}}),
        json!({"CancelStatement": null, "ExecuteStatement": {"perSecond": 5, "burst": 0}}),
    ] {
        let (status, answer) = control.post("/quotas", &body).await;
        assert_eq!(status, 400, "{body}");
        assert!(answer["error"].is_string(), "{answer}");
        assert_eq!(
            env.standin.quotas(),
            redshift_data_local::Quotas::aws(),
            "the valid entry of {body} was not applied either"
        );
    }
    let (_, answer) = control
        .post(
            "/quotas",
            &json!({"ExecuteStatement": {"perSecond": 5, "burst": 0}}),
        )
        .await;
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("burst of 0")),
        "the error says what is wrong: {answer}"
    );
}

#[tokio::test]
async fn the_active_statements_limit_is_read_and_changed_over_http() {
    let env = Env::start().await;
    let control = Control::start(&env).await;
    assert_eq!(
        control.get("/active-statements").await,
        json!({"limit": 200})
    );
    let (status, answer) = control
        .post("/active-statements", &json!({"limit": 1}))
        .await;
    assert_eq!((status, answer), (200, json!({"limit": 1})));
    assert_eq!(env.standin.active_statements_limit(), Some(1));
    let (status, _) = control
        .post("/active-statements", &json!({"limit": null}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(env.standin.active_statements_limit(), None, "null lifts it");
    for body in [
        json!({}),
        json!({"limit": -1}),
        json!({"max": 3}),
        json!({"limit": 3, "extra": 1}),
    ] {
        let (status, _) = control.post("/active-statements", &body).await;
        assert_eq!(status, 400, "{body}");
    }
    assert_eq!(env.standin.active_statements_limit(), None, "unchanged");
}

#[tokio::test]
async fn latency_is_read_and_changed_over_http() {
    let env = Env::start().await;
    let control = Control::start(&env).await;
    assert_eq!(
        control.get("/latency").await,
        json!({"roundTripMillis": 0, "statementMillis": 0})
    );
    let (status, answer) = control
        .post("/latency", &json!({"statementMillis": 150}))
        .await;
    assert_eq!(
        (status, answer),
        (200, json!({"roundTripMillis": 0, "statementMillis": 150}))
    );
    control
        .post("/latency", &json!({"roundTripMillis": 10}))
        .await;
    assert_eq!(
        (env.standin.round_trip(), env.standin.statement_time()),
        (Duration::from_millis(10), Duration::from_millis(150))
    );
    let (status, _) = control.post("/latency", &json!({"roundTrip": 5})).await;
    assert_eq!(status, 400, "an unknown member is refused, not ignored");
}
