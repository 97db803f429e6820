//! What `make deploy`, `make migrate` and `make destroy` check before they start
//! (`scripts/aws-preflight.py`): a missing region, credentials or Redshift parameter stops them
//! with one sentence; a complete setup yields the region and the template parameters to pass.
//! AWS is a local stand-in here (STS and CloudFormation answering as their query APIs do), so
//! nothing leaves the machine; the script runs with the project's `.venv/bin/python` (boto3),
//! which `make test` installs.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;

/// The stack that exists in the stand-in, with the parameters of its last deploy.
const EXISTING_STACK: &str = "call-history";

async fn aws(
    State(existing): State<&'static [(&'static str, &'static str)]>,
    body: String,
) -> impl IntoResponse {
    let form: HashMap<String, String> = serde_urlencoded::from_str(&body).unwrap_or_default();
    let xml = |status, body: String| (status, [("content-type", "text/xml")], body);
    match form.get("Action").map(String::as_str) {
        Some("GetCallerIdentity") => xml(
            StatusCode::OK,
            "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult>\
             <Arn>arn:aws:iam::123456789012:user/deployer</Arn><UserId>AIDAEXAMPLE</UserId>\
             <Account>123456789012</Account></GetCallerIdentityResult></GetCallerIdentityResponse>"
                .to_string(),
        ),
        Some("DescribeStacks") if form.get("StackName").map(String::as_str) == Some(EXISTING_STACK) => {
            let parameters: String = existing
                .iter()
                .map(|(k, v)| format!("<member><ParameterKey>{k}</ParameterKey><ParameterValue>{v}</ParameterValue></member>"))
                .collect();
            xml(
                StatusCode::OK,
                format!(
                    "<DescribeStacksResponse xmlns=\"http://cloudformation.amazonaws.com/doc/2010-05-15/\"><DescribeStacksResult><Stacks><member>\
                     <StackName>{EXISTING_STACK}</StackName><StackStatus>UPDATE_COMPLETE</StackStatus>\
                     <CreationTime>2026-01-01T00:00:00Z</CreationTime><Parameters>{parameters}</Parameters>\
                     </member></Stacks></DescribeStacksResult></DescribeStacksResponse>"
                ),
            )
        }
        Some("DescribeStacks") => xml(
            StatusCode::BAD_REQUEST,
            "<ErrorResponse><Error><Type>Sender</Type><Code>ValidationError</Code>\
             <Message>Stack with id new-stack does not exist</Message></Error></ErrorResponse>"
                .to_string(),
        ),
        _ => xml(StatusCode::BAD_REQUEST, "<ErrorResponse/>".to_string()),
    }
}

/// AWS on a free local port; the existing stack was deployed with `existing` parameters.
async fn fake_aws(existing: &'static [(&'static str, &'static str)]) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/", post(aws))
        .with_state(existing);
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

/// Runs the preflight for `command` with only these variables (no profile, no instance role);
/// its exit status, standard output and standard error.
fn preflight(command: &str, vars: &[(&str, &str)]) -> (bool, String, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: `make test` creates it (make boto3)",
        python.display()
    );
    let home = tempfile::tempdir().unwrap();
    let output = Command::new(python)
        .arg(root.join("scripts/aws-preflight.py"))
        .arg(command)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("AWS_CONFIG_FILE", home.path().join("config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            home.path().join("credentials"),
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_MAX_ATTEMPTS", "1")
        .envs(vars.iter().copied())
        .output()
        .expect("the preflight runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The one sentence a stop prints, after checking that it is one line.
fn stop_sentence(command: &str, vars: &[(&str, &str)]) -> String {
    let (ok, stdout, stderr) = preflight(command, vars);
    assert!(!ok, "{command} went on: {stdout}");
    assert!(stdout.is_empty(), "nothing for the next step: {stdout}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one sentence, not a trace: {stderr}");
    assert!(lines[0].starts_with(&format!("{command}: ")) && lines[0].ends_with('.'));
    lines[0].to_string()
}

const CREDENTIALS: [(&str, &str); 2] = [
    ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
    ("AWS_SECRET_ACCESS_KEY", "example"),
];

fn with(endpoint: &str, extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, String)> {
    let mut vars: Vec<(&str, String)> = CREDENTIALS
        .iter()
        .map(|(k, v)| (*k, v.to_string()))
        .collect();
    vars.push(("AWS_ENDPOINT_URL", endpoint.to_string()));
    vars.push(("AWS_REGION", "eu-west-1".to_string()));
    vars.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    vars
}

fn borrowed<'a>(vars: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    vars.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[test]
fn a_missing_region_or_credentials_stops_with_one_sentence() {
    for command in ["deploy", "migrate", "destroy"] {
        let stop = stop_sentence(command, &[]);
        assert!(stop.contains("No AWS region"), "{stop}");
    }
    let stop = stop_sentence("deploy", &[("AWS_REGION", "eu-west-1")]);
    assert!(stop.contains("No AWS credentials"), "{stop}");
    let mut unreachable = CREDENTIALS.to_vec();
    unreachable.extend([
        ("AWS_REGION", "eu-west-1"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
    ]);
    let stop = stop_sentence("destroy", &unreachable);
    assert!(stop.contains("could not be reached"), "{stop}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_needs_a_cluster_or_workgroup_and_a_database() {
    let endpoint = fake_aws(&[]).await;
    let vars = with(&endpoint, &[]);
    let stop = stop_sentence("migrate", &borrowed(&vars));
    assert!(stop.contains("REDSHIFT_CLUSTER_ID"), "{stop}");
    let vars = with(&endpoint, &[("REDSHIFT_WORKGROUP", "crm")]);
    let stop = stop_sentence("migrate", &borrowed(&vars));
    assert!(stop.contains("REDSHIFT_DATABASE"), "{stop}");
    let vars = with(
        &endpoint,
        &[("REDSHIFT_WORKGROUP", "crm"), ("REDSHIFT_DATABASE", "crm")],
    );
    let (ok, stdout, _) = preflight("migrate", &borrowed(&vars));
    assert!(ok);
    assert_eq!(stdout, "eu-west-1\n", "the region for cargo run -- migrate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_deploy_needs_redshift_and_a_complete_jwt_setup() {
    let endpoint = fake_aws(&[]).await;
    let new_stack = [("STACK", "new-stack")];
    let vars = with(&endpoint, &new_stack);
    let stop = stop_sentence("deploy", &borrowed(&vars));
    assert!(
        stop.contains("REDSHIFT_CLUSTER_ID or REDSHIFT_WORKGROUP"),
        "{stop}"
    );

    let jwt = [
        ("STACK", "new-stack"),
        ("REDSHIFT_CLUSTER_ID", "crm-cluster"),
        ("REDSHIFT_DATABASE", "crm"),
        ("REDSHIFT_DB_USER", "app_user"),
        ("API_AUTH", "jwt"),
    ];
    let vars = with(&endpoint, &jwt);
    let stop = stop_sentence("deploy", &borrowed(&vars));
    assert!(
        stop.contains("JWT_ISSUER") && stop.contains("JWT_AUDIENCE"),
        "{stop}"
    );

    let mut complete = jwt.to_vec();
    complete.push(("JWT_ISSUER", "https://issuer.example.com"));
    complete.push(("JWT_AUDIENCE", "client-1,client-2"));
    let vars = with(&endpoint, &complete);
    let (ok, stdout, stderr) = preflight("deploy", &borrowed(&vars));
    assert!(ok, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "eu-west-1");
    let mut parameters = lines[1..].to_vec();
    parameters.sort();
    assert_eq!(
        parameters,
        [
            "ApiAuth=JWT",
            "JwtAudience=client-1,client-2",
            "JwtIssuer=https://issuer.example.com",
            "RedshiftClusterId=crm-cluster",
            "RedshiftDatabase=crm",
            "RedshiftDbUser=app_user",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_deploy_keeps_the_stacks_redshift_and_warns_when_made_public() {
    static PREVIOUS: [(&str, &str); 3] = [
        ("RedshiftWorkgroup", "crm-workgroup"),
        ("RedshiftDatabase", "crm"),
        ("ApiAuth", "IAM"),
    ];
    let endpoint = fake_aws(&PREVIOUS).await;
    // Nothing given: the stack's parameters stand, and nothing is passed to change them.
    let vars = with(&endpoint, &[]);
    let (ok, stdout, stderr) = preflight("deploy", &borrowed(&vars));
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "eu-west-1\n");
    assert!(!stderr.contains("WARNING"), "{stderr}");

    let vars = with(&endpoint, &[("API_AUTH", "PUBLIC")]);
    let (ok, stdout, stderr) = preflight("deploy", &borrowed(&vars));
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "eu-west-1\nApiAuth=PUBLIC\n");
    assert!(
        stderr.contains("WARNING") && stderr.contains("anyone with the URL"),
        "{stderr}"
    );

    let vars = with(&endpoint, &[("API_AUTH", "OPEN")]);
    let stop = stop_sentence("deploy", &borrowed(&vars));
    assert!(stop.contains("IAM, JWT or PUBLIC"), "{stop}");
}
