//! Shared set-up: a stand-in on a scratch database, and SDK clients pointed at it.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_cloudwatch::config::http::HttpResponse;
use aws_sdk_cloudwatch::error::SdkError;
use aws_sdk_cloudwatch::operation::put_metric_data::{PutMetricDataError, PutMetricDataOutput};
use aws_sdk_cloudwatch::types::MetricDatum;
use aws_sdk_redshiftdata::Client;
use aws_sdk_redshiftdata::config::Credentials;
use aws_sdk_redshiftdata::operation::describe_statement::DescribeStatementOutput;
use aws_sdk_redshiftdata::operation::get_statement_result::GetStatementResultOutput;
use aws_sdk_redshiftdata::types::{Field, SqlParameter, StatusString};
use redshift_data_local::{Options, StandIn, create_scratch_database};

pub const CLUSTER: &str = "local-cluster";
pub const DATABASE: &str = "dev";
pub const DB_USER: &str = "tester";

/// Every test fails fast unless it set a shorter one.
const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(40);

/// The admin URL of the PostgreSQL server the tests use.
pub fn admin_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "DATABASE_URL is not set: these tests need PostgreSQL. Start a throwaway server with \
             `export \"$(scripts/pg-test-cluster.sh start)\"` (from the workspace root) and run them again."
        )
    })
}

/// A stand-in on its own scratch database, with a Data API client.
pub struct Env {
    pub standin: StandIn,
    pub data: Client,
    /// The scratch database, for direct connections that act behind the stand-in's back.
    pub database_url: String,
}

impl Env {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(customize: impl FnOnce(&mut Options)) -> Self {
        let url = create_scratch_database(&admin_url())
            .await
            .expect("create a scratch database");
        let mut options = Options::new(url.clone());
        customize(&mut options);
        let standin = StandIn::start(options).await.expect("start the stand-in");
        let data = data_client(&standin.data_api_url(), |b| b).await;
        Self {
            standin,
            data,
            database_url: url,
        }
    }

    /// A direct PostgreSQL connection to the stand-in's database.
    pub async fn postgres(&self) -> tokio_postgres::Client {
        let (client, connection) =
            tokio_postgres::connect(&self.database_url, tokio_postgres::NoTls)
                .await
                .expect("connect to PostgreSQL");
        tokio::spawn(connection);
        client
    }

    /// A Data API client that never retries: each request is exactly one call.
    pub async fn single_try_client(&self) -> Client {
        data_client(&self.standin.data_api_url(), |b| {
            b.retry_config(RetryConfig::disabled())
        })
        .await
    }

    /// Submits `sqls` as one BatchExecuteStatement (one transaction) and returns the id.
    pub async fn submit_batch(&self, sqls: &[&str]) -> String {
        batch(&self.data, sqls)
            .send()
            .await
            .expect("BatchExecuteStatement")
            .id()
            .unwrap_or_default()
            .to_owned()
    }

    /// Submits `sql` (ExecuteStatement, no parameters) and returns the id.
    pub async fn submit(&self, sql: &str) -> String {
        execute(&self.data, sql)
            .send()
            .await
            .expect("ExecuteStatement")
            .id()
            .unwrap_or_default()
            .to_owned()
    }

    /// Submits `sql` with parameters and waits until it is done.
    pub async fn run_with(
        &self,
        sql: &str,
        parameters: &[(&str, &str)],
    ) -> DescribeStatementOutput {
        let mut request = execute(&self.data, sql);
        for (name, value) in parameters {
            request = request.parameters(parameter(name, value));
        }
        let id = request
            .send()
            .await
            .expect("ExecuteStatement")
            .id()
            .unwrap_or_default()
            .to_owned();
        wait_done(&self.data, &id).await
    }

    /// Submits `sql` and waits until it is done.
    pub async fn run(&self, sql: &str) -> DescribeStatementOutput {
        self.run_with(sql, &[]).await
    }

    /// Runs `sql`, which must succeed.
    pub async fn run_ok(&self, sql: &str) -> DescribeStatementOutput {
        let described = self.run(sql).await;
        assert_eq!(
            described.status(),
            Some(&StatusString::Finished),
            "{sql} failed: {:?}",
            described.error()
        );
        described
    }

    /// The first page of a finished statement's result.
    pub async fn first_page(&self, id: &str) -> GetStatementResultOutput {
        self.data
            .get_statement_result()
            .id(id)
            .send()
            .await
            .expect("GetStatementResult")
    }

    /// All records of a finished statement, following NextToken.
    pub async fn records(&self, id: &str) -> Vec<Vec<Field>> {
        let mut records = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .data
                .get_statement_result()
                .id(id)
                .set_next_token(token)
                .send()
                .await
                .expect("GetStatementResult");
            records.extend(page.records().iter().cloned());
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                return records;
            }
        }
    }

    /// The single `bigint` value `sql` selects.
    pub async fn scalar(&self, sql: &str) -> i64 {
        let described = self.run_ok(sql).await;
        match self.records(described.id()).await.as_slice() {
            [row] => match row.as_slice() {
                [Field::LongValue(value)] => *value,
                other => panic!("{sql} returned {other:?}"),
            },
            other => panic!("{sql} returned {other:?}"),
        }
    }
}

/// An ExecuteStatement request with the usual target members.
pub fn execute(
    client: &Client,
    sql: &str,
) -> aws_sdk_redshiftdata::operation::execute_statement::builders::ExecuteStatementFluentBuilder {
    client
        .execute_statement()
        .cluster_identifier(CLUSTER)
        .database(DATABASE)
        .db_user(DB_USER)
        .sql(sql)
}

/// A BatchExecuteStatement request with the usual target members.
pub fn batch(
    client: &Client,
    sqls: &[&str],
) -> aws_sdk_redshiftdata::operation::batch_execute_statement::builders::BatchExecuteStatementFluentBuilder
{
    client
        .batch_execute_statement()
        .cluster_identifier(CLUSTER)
        .database(DATABASE)
        .db_user(DB_USER)
        .set_sqls(Some(sqls.iter().map(|s| (*s).to_owned()).collect()))
}

pub fn parameter(name: &str, value: &str) -> SqlParameter {
    SqlParameter::builder()
        .name(name)
        .value(value)
        .build()
        .expect("a parameter has a name and a value")
}

/// Describes the statement, waiting server-side until it is done.
pub async fn wait_done(client: &Client, id: &str) -> DescribeStatementOutput {
    for _ in 0..5 {
        let described = client
            .describe_statement()
            .id(id)
            .wait_time_seconds(10)
            .send()
            .await
            .expect("DescribeStatement");
        if matches!(
            described.status(),
            Some(StatusString::Finished | StatusString::Failed | StatusString::Aborted)
        ) {
            return described;
        }
    }
    panic!("statement {id} did not finish");
}

/// Cancels the statement and waits until it ends, which must be ABORTED.
pub async fn cancel_to_aborted(client: &Client, id: &str) -> DescribeStatementOutput {
    let cancelled = client
        .cancel_statement()
        .id(id)
        .send()
        .await
        .expect("CancelStatement");
    assert_eq!(cancelled.status(), Some(true), "{id} cancelled");
    let done = wait_done(client, id).await;
    assert_eq!(done.status(), Some(&StatusString::Aborted), "{id} aborted");
    done
}

/// Shared SDK settings: static test credentials, a fixed region, quick retries.
pub async fn sdk_config(endpoint_url: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .endpoint_url(endpoint_url)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(10))
                .with_max_backoff(Duration::from_millis(50)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(DEFAULT_OPERATION_TIMEOUT)
                .build(),
        )
        .load()
        .await
}

/// A Data API client; `customize` can change e.g. its timeouts.
pub async fn data_client(
    endpoint_url: &str,
    customize: impl FnOnce(
        aws_sdk_redshiftdata::config::Builder,
    ) -> aws_sdk_redshiftdata::config::Builder,
) -> Client {
    let config = sdk_config(endpoint_url).await;
    Client::from_conf(customize(aws_sdk_redshiftdata::config::Builder::from(&config)).build())
}

pub async fn cloudwatch_client(
    endpoint_url: &str,
    customize: impl FnOnce(aws_sdk_cloudwatch::config::Builder) -> aws_sdk_cloudwatch::config::Builder,
) -> aws_sdk_cloudwatch::Client {
    let config = sdk_config(endpoint_url).await;
    aws_sdk_cloudwatch::Client::from_conf(
        customize(aws_sdk_cloudwatch::config::Builder::from(&config)).build(),
    )
}

/// Puts one datum with only a name and a value: for the tests about delivery, not shape.
pub async fn put_one(
    client: &aws_sdk_cloudwatch::Client,
    name: &str,
    value: f64,
) -> Result<PutMetricDataOutput, SdkError<PutMetricDataError, HttpResponse>> {
    let datum = MetricDatum::builder()
        .metric_name(name)
        .value(value)
        .build();
    client
        .put_metric_data()
        .namespace("CallHistory")
        .metric_data(datum)
        .send()
        .await
}

/// A short operation timeout, for the tests of hangs.
pub fn short_timeout(timeout: Duration) -> TimeoutConfig {
    TimeoutConfig::builder().operation_timeout(timeout).build()
}
