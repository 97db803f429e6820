//! The OpenAPI description: served at `/openapi.json`, committed as `openapi.json`, and the
//! committed copy is what the code generates (`make openapi` refreshes it).

mod common;

use serde_json::Value;

fn committed() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    std::fs::read_to_string(path).expect("openapi.json at the repository's top")
}

#[test]
fn the_committed_description_is_current() {
    let generated = call_history::api::openapi::document_json();
    assert!(
        committed() == generated,
        "openapi.json is stale: run `make openapi` and commit it"
    );
}

#[tokio::test]
async fn the_server_serves_the_description() {
    let app = common::spawn_app(&[]).await;
    let reply = app.get("/openapi.json").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.content_type.as_deref(),
        Some("application/json; charset=utf-8")
    );
    let committed: Value = serde_json::from_str(&committed()).unwrap();
    assert_eq!(reply.body, committed);
    assert_eq!(reply.body["openapi"], "3.1.0");
    // Every response says which database serves, this one too.
    assert_eq!(reply.source_header.as_deref(), Some("sqlite"));
    let wrong = app.post("/openapi.json", "").await;
    assert_eq!(wrong.status, 405);
    assert!(wrong.body["error"].is_string());
}

#[test]
fn every_route_and_status_is_described() {
    let document: Value =
        serde_json::from_str(call_history::api::openapi::document_json()).unwrap();
    let operations = [
        ("/db/status", "get", &["200"][..]),
        ("/db/healthz", "get", &["200", "503"]),
        ("/db/force-sqlite", "post", &["200", "401", "403"]),
        ("/db/retry-redshift", "post", &["200", "401", "403"]),
        ("/api/calls/history", "get", &["200", "400"]),
        ("/api/calls/{id}", "get", &["200", "400", "404"]),
        (
            "/api/calls",
            "post",
            &["200", "201", "400", "409", "413", "503"],
        ),
        ("/openapi.json", "get", &["200"]),
        ("/", "get", &["200"]),
    ];
    for (path, method, statuses) in operations {
        let responses = &document["paths"][path][method]["responses"];
        for status in statuses.iter().chain(&["405", "408", "414", "431"]) {
            let response = &responses[*status];
            assert!(response.is_object(), "{method} {path} {status}");
            // The description itself and the status page are not error-shaped JSON.
            if *status != "200" || !["/openapi.json", "/"].contains(&path) {
                assert!(
                    response["content"]["application/json"]["schema"].is_object(),
                    "{method} {path} {status} has a JSON schema"
                );
            }
            // The router's answers carry it; the local server's refusals in front of it do not.
            let from_the_router = !["408", "414", "431"].contains(status);
            assert_eq!(
                response["headers"]["X-Data-Source"]["required"] == true,
                from_the_router,
                "{method} {path} {status}: X-Data-Source"
            );
        }
    }
    let history = &document["paths"]["/api/calls/history"]["get"]["parameters"];
    let limit = history
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(limit["schema"]["minimum"], 1);
    assert_eq!(limit["schema"]["maximum"], 500);
    let admin = &document["paths"]["/db/force-sqlite"]["post"]["security"];
    assert_eq!(admin[0]["adminToken"], serde_json::json!([]));
}
