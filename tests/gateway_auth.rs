//! The API closed behind API Gateway's authorizers, through the Lambda entry
//! (`lambda::handle_event`) with events shaped as an HTTP API (payload 2.0) delivers them.
//!
//! What only the gateway does, and these tests cannot: validating credentials. A JWT's
//! signature (against the issuer's keys), its issuer, audience and expiry, the route's scopes,
//! and a SigV4 signature are checked by API Gateway before it invokes the function; it then
//! writes its verdict into `requestContext.authorizer`, which a client cannot write. The events
//! below carry such verdicts as the gateway writes them. What the function does, and these tests
//! check: it trusts that verdict and nothing a client sends (a token in a header that no gateway
//! validated counts for nothing), refuses a request that should have one and has none, and asks
//! the admin scope (JWT) or a verified signature (IAM) of the admin switches.

mod common;

use std::sync::Arc;

use call_history::api::access::Access;
use call_history::api::admin_policy::AdminPolicy;
use call_history::api::{router_with_access, AppState};
use call_history::config::Config;
use serde_json::{json, Value};

const ADMIN_SCOPE: &str = "call-history/admin";
const ADMIN_TOKEN: &str = "gateway-test-admin-token";
/// A contact of the sample data a local demo's backup starts with (`SQLITE_SEED=sample`).
const SAMPLE_CONTACT: &str = "Ada Lovelace";

/// The function as deployed, with this access mode, on a fresh backup.
async fn function(access: Access) -> (axum::Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dir.path().join("crm.db").display().to_string();
    let (config, problems) = Config::from_lookup(|name| match name {
        "AWS_LAMBDA_RUNTIME_API" => Some("127.0.0.1:9001".to_string()),
        "SQLITE_PATH" => Some(sqlite.clone()),
        "SQLITE_SEED" => Some("sample".to_string()),
        _ => None,
    });
    assert!(problems.is_empty(), "{problems:?}");
    let app = call_history::build_app(&config).await;
    let state = AppState {
        store: Arc::clone(&app.store),
        admin: AdminPolicy::new(Some(ADMIN_TOKEN.into()), true),
    };
    (router_with_access(state, access), dir)
}

fn jwt_mode() -> Access {
    Access::Jwt {
        admin_scope: ADMIN_SCOPE.into(),
    }
}

/// An HTTP API event for `method path`, as the `$default` stage sends it, without an authorizer.
fn event(method: &str, path: &str) -> Value {
    json!({
        "version": "2.0",
        "routeKey": format!("{method} {path}"),
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "accept": "application/json",
            "host": "r3pmxmplak.execute-api.us-east-1.amazonaws.com",
            "x-forwarded-proto": "https"
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "r3pmxmplak",
            "domainName": "r3pmxmplak.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "r3pmxmplak",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.10",
                "userAgent": "test"
            },
            "requestId": "gateway-auth",
            "routeKey": format!("{method} {path}"),
            "stage": "$default",
            "time": "12/Mar/2024:10:16:05 +0000",
            "timeEpoch": 1710238565128_i64
        },
        "isBase64Encoded": false
    })
}

/// The event as it arrives after API Gateway's JWT authorizer accepted the token: the verified
/// claims, with values as a token holds them (numbers, lists), and the scopes.
fn with_jwt(mut event: Value, scopes: Option<&[&str]>) -> Value {
    event["headers"]["authorization"] = json!("Bearer eyJraWQiOiJrZXkifQ.eyJzdWIiOiJ1MSJ9.c2ln");
    let mut jwt = json!({
        "claims": {
            "sub": "5f6e7d8c-user",
            "iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example",
            "client_id": "3n4b5urk1ft4fl3mg5e62d9ado",
            "token_use": "access",
            "scope": scopes.map(|s| s.join(" ")).unwrap_or_default(),
            "exp": 1710242165,
            "auth_time": 1710238565,
            "cognito:groups": ["operators", "support"],
            "email_verified": true,
            "nickname": null
        }
    });
    if let Some(scopes) = scopes {
        jwt["scopes"] = json!(scopes);
    }
    event["requestContext"]["authorizer"] = json!({ "jwt": jwt });
    event
}

/// The event as it arrives after API Gateway verified a SigV4 signature.
fn with_iam(mut event: Value) -> Value {
    event["headers"]["authorization"] = json!(
        "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20240312/us-east-1/execute-api/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc"
    );
    event["requestContext"]["authorizer"] = json!({
        "iam": {
            "accessKey": "AKIAEXAMPLE",
            "accountId": "123456789012",
            "callerId": "AIDAEXAMPLE",
            "cognitoIdentity": null,
            "principalOrgId": null,
            "userArn": "arn:aws:iam::123456789012:user/operator",
            "userId": "AIDAEXAMPLE"
        }
    });
    event
}

fn with_bearer(mut event: Value, token: &str) -> Value {
    event["headers"]["authorization"] = json!(format!("Bearer {token}"));
    event
}

async fn send(router: &axum::Router, event: Value) -> common::LambdaAnswer {
    common::invoke_lambda(router, &event.to_string()).await
}

/// The status and the JSON error of a refusal, which says which database would have served.
async fn refused(router: &axum::Router, event: Value) -> (u16, String) {
    let answer = send(router, event).await;
    assert_eq!(answer.header("x-data-source"), Some("sqlite"));
    let error = answer.json()["error"]
        .as_str()
        .unwrap_or_else(|| panic!("an error body: {}", answer.0))
        .to_string();
    (answer.status(), error)
}

#[tokio::test]
async fn under_jwt_the_gateways_verified_claims_open_the_data_and_nothing_else_does() {
    let (router, _dir) = function(jwt_mode()).await;

    // Claims as a token holds them (a number, a list, a boolean, a null) reach the router.
    let history = event("GET", "/api/calls/history");
    let answer = send(&router, with_jwt(history.clone(), None)).await;
    assert_eq!(answer.status(), 200, "{}", answer.0);
    assert!(answer.json()["count"].as_u64().unwrap() > 0);

    // The same request without the gateway's verdict: a route left without an authorizer, or a
    // caller that reached the function some other way. A bearer token alone is not a verdict.
    let (status, error) = refused(&router, history.clone()).await;
    assert_eq!(status, 401);
    assert!(error.contains("Authorization: Bearer"), "{error}");
    let (status, _) = refused(&router, with_bearer(history, "eyJhbGciOiJub25lIn0.e30.")).await;
    assert_eq!(status, 401);
    for (method, path) in [
        ("GET", "/db/status"),
        ("GET", "/api/calls/call-001"),
        ("POST", "/api/calls"),
        ("GET", "/openapi.json"),
        ("GET", "/no/such/route"),
    ] {
        let (status, _) = refused(&router, event(method, path)).await;
        assert_eq!(status, 401, "{method} {path}");
    }

    // Open without a token: the health check, and the status page's shell, which holds no data.
    let healthz = send(&router, event("GET", "/db/healthz")).await;
    assert_eq!(healthz.status(), 200);
    let shell = send(&router, event("GET", "/")).await;
    assert_eq!(shell.status(), 200);
    assert!(shell.text().contains(r#"<body data-access="jwt">"#));
    assert!(
        !shell.text().contains(SAMPLE_CONTACT),
        "the shell holds call data"
    );
}

#[tokio::test]
async fn under_jwt_the_admin_switches_need_the_admin_scope() {
    let (router, _dir) = function(jwt_mode()).await;
    let force = event("POST", "/db/force-sqlite");
    let retry = event("POST", "/db/retry-redshift");

    // A token without the scope: the gateway lets it through only if the route asks no scope,
    // and the function still refuses.
    let (status, error) = refused(
        &router,
        with_jwt(force.clone(), Some(&["call-history/read"])),
    )
    .await;
    assert_eq!(status, 403);
    assert!(error.contains(ADMIN_SCOPE), "{error}");
    // No verdict at all, even with the function's admin token: the header is the JWT's here.
    let (status, _) = refused(&router, with_bearer(force.clone(), ADMIN_TOKEN)).await;
    assert_eq!(status, 401);

    // The scope, in the authorizer's list or only in the token's own `scope` claim.
    let answer = send(&router, with_jwt(force, Some(&["openid", ADMIN_SCOPE]))).await;
    assert_eq!(answer.status(), 200, "{}", answer.0);
    assert_eq!(answer.json()["source"], "sqlite");
    let mut claim_only = with_jwt(retry, None);
    claim_only["requestContext"]["authorizer"]["jwt"]["claims"]["scope"] =
        json!(format!("openid {ADMIN_SCOPE}"));
    let answer = send(&router, claim_only).await;
    assert_eq!(answer.status(), 200, "{}", answer.0);
}

#[tokio::test]
async fn under_iam_every_route_but_the_health_check_needs_a_verified_signature() {
    let (router, _dir) = function(Access::Iam).await;
    let history = event("GET", "/api/calls/history");
    assert_eq!(send(&router, with_iam(history.clone())).await.status(), 200);
    let (status, error) = refused(&router, history).await;
    assert_eq!(status, 401);
    assert!(error.contains("SigV4"), "{error}");
    // A JWT verdict is not a signature: the modes do not mix.
    let (status, _) = refused(
        &router,
        with_jwt(event("GET", "/db/status"), Some(&[ADMIN_SCOPE])),
    )
    .await;
    assert_eq!(status, 401);
    // The shell too: a browser cannot sign, so under IAM the page is for signing clients.
    let (status, _) = refused(&router, event("GET", "/")).await;
    assert_eq!(status, 401);
    assert_eq!(
        send(&router, event("GET", "/db/healthz")).await.status(),
        200
    );

    // The admin switches: the verified identity (IAM policy decides who may invoke them).
    let force = event("POST", "/db/force-sqlite");
    let (status, _) = refused(&router, with_bearer(force.clone(), ADMIN_TOKEN)).await;
    assert_eq!(status, 401);
    let answer = send(&router, with_iam(force)).await;
    assert_eq!(answer.status(), 200, "{}", answer.0);
}

#[tokio::test]
async fn a_public_api_serves_data_to_anyone_but_keeps_the_admin_token_and_a_quiet_page() {
    let (router, _dir) = function(Access::Public).await;
    assert_eq!(
        send(&router, event("GET", "/api/calls/history"))
            .await
            .status(),
        200
    );
    let force = event("POST", "/db/force-sqlite");
    assert_eq!(refused(&router, force.clone()).await.0, 401);
    assert_eq!(
        refused(&router, with_bearer(force.clone(), "guess"))
            .await
            .0,
        403
    );
    assert_eq!(
        send(&router, with_bearer(force, ADMIN_TOKEN))
            .await
            .status(),
        200
    );
    let shell = send(&router, event("GET", "/")).await;
    assert!(shell.text().contains(r#"<body data-access="public">"#));
}

#[tokio::test]
async fn a_misconfigured_mode_closes_everything_but_the_health_check() {
    let (router, _dir) = function(Access::Misconfigured).await;
    for (method, path) in [("GET", "/api/calls/history"), ("POST", "/db/force-sqlite")] {
        let (status, error) = refused(&router, with_iam(event(method, path))).await;
        assert_eq!(status, 403, "{method} {path}");
        assert!(error.contains("misconfigured"), "{error}");
    }
    assert_eq!(
        send(&router, event("GET", "/db/healthz")).await.status(),
        200
    );
}
