//! The admin token from a Secrets Manager secret (`ADMIN_TOKEN_SECRET_ARN`), read through the
//! real SDK from the local Secrets Manager endpoint: read once at start, never logged, and a
//! secret that cannot be read leaves the admin endpoints closed with one clear log line.

mod common;

use redshift_data_local::SecretsManager;

const SECRET_ARN: &str =
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:call-history-admin-AbCdEf";
const TOKEN: &str = "s3cret-admin-token-from-secrets-manager";

async fn spawn_with_secret_endpoint(endpoint: &str, arn: &str) -> common::TestApp {
    let mut aws = common::FAKE_AWS.to_vec();
    aws.push(("AWS_ENDPOINT_URL_SECRETS_MANAGER", endpoint));
    common::spawn_app_with(
        &[
            ("ADMIN_TOKEN_SECRET_ARN", arn),
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9"),
        ],
        &aws,
    )
    .await
}

/// The one log line saying the admin endpoints stay closed (it is said once, at start).
fn the_closed_line() -> String {
    let logs = common::logs();
    let closed: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("admin endpoints stay closed"))
        .collect();
    assert_eq!(closed.len(), 1, "{logs}");
    closed[0].to_string()
}

async fn force_sqlite(app: &common::TestApp, token: Option<&str>) -> common::Reply {
    let mut request = app.client.post(app.url("/db/force-sqlite"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    app.send(request).await
}

#[tokio::test]
async fn the_token_comes_from_the_secret_and_is_read_once() {
    let secrets = SecretsManager::start()
        .await
        .expect("Secrets Manager starts");
    secrets.put_secret(SECRET_ARN, &format!("{TOKEN}\n"));
    let app = spawn_with_secret_endpoint(&secrets.url(), SECRET_ARN).await;

    assert_eq!(force_sqlite(&app, None).await.status, 401);
    assert_eq!(force_sqlite(&app, Some("not-the-token")).await.status, 403);
    let allowed = force_sqlite(&app, Some(TOKEN)).await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    assert_eq!(allowed.body["source"], "sqlite");

    assert_eq!(secrets.request_count(), 1, "read once, at start");
    let logs = common::logs();
    assert!(logs.contains("Admin token read from Secrets Manager"));
    assert!(!logs.contains(TOKEN), "the token never reaches a log line");
    secrets.shutdown().await;
}

#[tokio::test]
async fn a_missing_secret_leaves_the_admin_endpoints_closed() {
    let secrets = SecretsManager::start()
        .await
        .expect("Secrets Manager starts");
    let app = spawn_with_secret_endpoint(&secrets.url(), SECRET_ARN).await;

    let refused = force_sqlite(&app, Some(TOKEN)).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    // The answer points to the log, which says why; it does not tell the client to set a token.
    let error = refused.body["error"].as_str().unwrap();
    assert!(error.contains("could not be read"), "{error}");
    let status = app.get("/db/status").await;
    assert_eq!(status.body["currentSource"], "sqlite");
    assert_eq!(status.body["databases"]["redshift"]["forced"], false);

    let closed = the_closed_line();
    assert!(closed.contains("ResourceNotFoundException"), "{closed}");
    secrets.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_secrets_manager_leaves_the_admin_endpoints_closed() {
    // A port nothing listens on: the connection is refused.
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", unused.local_addr().unwrap());
    drop(unused);
    let app = spawn_with_secret_endpoint(&endpoint, SECRET_ARN).await;

    assert_eq!(force_sqlite(&app, Some(TOKEN)).await.status, 403);
    let closed = the_closed_line();
    assert!(closed.contains("could not be reached"), "{closed}");
}
