//! The CloudWatch endpoint through `aws-sdk-cloudwatch` (Smithy RPC v2 CBOR).

use std::time::{Duration, Instant};

use aws_sdk_cloudwatch::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudwatch::operation::put_metric_data::PutMetricDataError;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit, StatisticSet};
use redshift_data_local::{CapturedMetric, Fault, StatisticValues};

use crate::common::{Env, cloudwatch_client, put_one, short_timeout};

fn dimension(name: &str, value: &str) -> Dimension {
    Dimension::builder().name(name).value(value).build()
}

#[tokio::test]
async fn put_metric_data_is_captured() {
    let env = Env::start().await;
    let client = cloudwatch_client(&env.standin.cloudwatch_url(), |b| b).await;
    client
        .put_metric_data()
        .namespace("CallHistory")
        .metric_data(
            MetricDatum::builder()
                .metric_name("DatabaseSource")
                .value(0.0)
                .unit(StandardUnit::None)
                .dimensions(dimension("Function", "call-history"))
                .dimensions(dimension("Environment", "test"))
                .timestamp(DateTime::from_secs_f64(1_700_000_000.5))
                .storage_resolution(60)
                .build(),
        )
        .metric_data(
            MetricDatum::builder()
                .metric_name("FallbackDuration")
                .unit(StandardUnit::Seconds)
                .values(1.5)
                .values(3.0)
                .counts(2.0)
                .counts(1.0)
                .build(),
        )
        .metric_data(
            MetricDatum::builder()
                .metric_name("Latency")
                .unit(StandardUnit::Milliseconds)
                .statistic_values(
                    StatisticSet::builder()
                        .sample_count(4.0)
                        .sum(10.0)
                        .minimum(1.0)
                        .maximum(4.0)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("PutMetricData");

    let metrics = env.standin.metrics();
    assert_eq!(
        metrics[0],
        CapturedMetric {
            namespace: "CallHistory".into(),
            metric_name: "DatabaseSource".into(),
            value: Some(0.0),
            unit: Some("None".into()),
            dimensions: vec![
                ("Function".into(), "call-history".into()),
                ("Environment".into(), "test".into())
            ],
            timestamp: Some(1_700_000_000.5),
            values: vec![],
            counts: vec![],
            statistic_values: None,
            storage_resolution: Some(60),
        }
    );
    assert_eq!(metrics[1].metric_name, "FallbackDuration");
    assert_eq!(metrics[1].unit.as_deref(), Some("Seconds"));
    assert_eq!(
        (metrics[1].values.clone(), metrics[1].counts.clone()),
        (vec![1.5, 3.0], vec![2.0, 1.0])
    );
    assert_eq!(metrics[1].value, None);
    assert_eq!(
        metrics[2].statistic_values,
        Some(StatisticValues {
            sample_count: 4.0,
            sum: 10.0,
            minimum: 1.0,
            maximum: 4.0
        })
    );
    assert_eq!(metrics.len(), 3);
    assert_eq!(env.standin.operation_count("PutMetricData"), 1);

    env.standin.clear_metrics();
    assert!(env.standin.metrics().is_empty());
}

#[tokio::test]
async fn large_requests_are_compressed_and_captured() {
    let env = Env::start().await;
    let client = cloudwatch_client(&env.standin.cloudwatch_url(), |b| b).await;
    // Well above the SDK's 10 KB compression threshold.
    let data: Vec<_> = (0..600)
        .map(|i| {
            MetricDatum::builder()
                .metric_name(format!("Metric{i:04}"))
                .value(f64::from(i))
                .unit(StandardUnit::Count)
                .dimensions(dimension("Function", "call-history"))
                .build()
        })
        .collect();
    client
        .put_metric_data()
        .namespace("CallHistory")
        .set_metric_data(Some(data))
        .send()
        .await
        .expect("PutMetricData");

    let metrics = env.standin.metrics();
    assert_eq!(metrics.len(), 600);
    for (i, metric) in metrics.iter().enumerate() {
        assert_eq!(metric.metric_name, format!("Metric{i:04}"));
        assert_eq!(metric.value, Some(i as f64));
        assert_eq!(metric.unit.as_deref(), Some("Count"));
    }
}

#[tokio::test]
async fn cloudwatch_faults() {
    let env = Env::start().await;
    let client = cloudwatch_client(&env.standin.cloudwatch_url(), |b| {
        b.timeout_config(short_timeout(Duration::from_millis(400)))
    })
    .await;
    let put = || put_one(&client, "DatabaseSource", 1.0);

    env.standin.set_cloudwatch_fault(Fault::HttpStatus(500));
    let error = put().await.expect_err("500");
    assert!(
        matches!(
            error.into_service_error(),
            PutMetricDataError::InternalServiceFault(_)
        ),
        "an InternalServiceError"
    );

    env.standin.set_cloudwatch_fault(Fault::HttpStatus(503));
    let error = put().await.expect_err("503");
    assert_eq!(
        error.into_service_error().code(),
        Some("ServiceUnavailable")
    );

    env.standin.set_cloudwatch_fault(Fault::Hang);
    let started = Instant::now();
    let error = put().await.expect_err("hang");
    assert!(matches!(error, SdkError::TimeoutError(_)), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        env.standin.metrics().is_empty(),
        "nothing was captured while failing"
    );

    env.standin.clear_cloudwatch_fault();
    put()
        .await
        .expect("PutMetricData after the fault is cleared");
    assert_eq!(env.standin.metrics().len(), 1);
}

#[tokio::test]
async fn other_operations_are_refused_clearly() {
    let env = Env::start().await;
    let client = cloudwatch_client(&env.standin.cloudwatch_url(), |b| b).await;
    let error = client
        .list_metrics()
        .send()
        .await
        .expect_err("not supported");
    let error = error.into_service_error();
    assert_eq!(error.code(), Some("UnknownOperationException"));
    assert!(
        error.message().is_some_and(|m| m.contains("ListMetrics")),
        "{error:?}"
    );
}
