//! The local server's limits and timeouts, over real HTTP: every refusal has the JSON error
//! shape, including the ones hyper gives before the router sees a request. Raw TCP where
//! reqwest cannot produce the case (a URL over 64 KiB, a stalled head or body, bytes that are
//! not HTTP).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use call_history::config::Config;
use call_history::server::{ServeError, ServerLimits};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Short timeouts, so that the stalled cases end quickly.
fn test_limits() -> ServerLimits {
    ServerLimits {
        header_read_timeout: Duration::from_millis(500),
        body_read_timeout: Duration::from_millis(500),
        ..ServerLimits::default()
    }
}

async fn start() -> SocketAddr {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crm.db").display().to_string();
    // The folder must outlive the test's server.
    std::mem::forget(dir);
    let (config, _) = Config::from_lookup(|name| (name == "SQLITE_PATH").then(|| path.clone()));
    let app = call_history::build_app(&config).await;
    common::serve_on_free_port(app.router, test_limits()).await
}

/// Sends raw bytes (optionally stopping there without closing) and reads the answer until the
/// server closes or `wait` passes. Returns the status and the parsed JSON body.
async fn raw_exchange(address: SocketAddr, request: &[u8], wait: Duration) -> (u16, Value) {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    // The server may answer (and close) before it has read everything: ignore write errors.
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(wait, stream.read_to_end(&mut answer)).await;
    parse_answer(&answer)
}

fn parse_answer(answer: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(answer);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete answer: {text:?}"));
    let status = head[9..12].parse().expect("status code");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let body = serde_json::from_str(body).unwrap_or_else(|_| panic!("JSON body: {body:?}"));
    (status, body)
}

fn assert_error(body: &Value, words: &str) {
    let error = body["error"].as_str().unwrap_or_else(|| panic!("{body}"));
    assert!(error.contains(words), "{error:?} should mention {words:?}");
}

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn long_urls_answer_json_414() {
    let address = start().await;
    // Over the project's 8 KiB: the layer answers.
    let client = reqwest::Client::new();
    let url = format!(
        "http://{address}/api/calls/history?contact={}",
        "a".repeat(10_000)
    );
    let reply = common::read(client.get(url).send().await.unwrap()).await;
    assert_eq!(reply.status, 414);
    assert_error(&reply.body, "8 KiB");
    // Over hyper's fixed 64 KiB: hyper answers, with the same JSON.
    let request = format!(
        "GET /api/calls/history?contact={} HTTP/1.1\r\nhost: localhost\r\n\r\n",
        "a".repeat(100_000)
    );
    let (status, body) = raw_exchange(address, request.as_bytes(), WAIT).await;
    assert_eq!(status, 414);
    assert_error(&body, "8 KiB");
}

#[tokio::test]
async fn large_or_many_headers_answer_json_431() {
    let address = start().await;
    let client = reqwest::Client::new();
    let url = format!("http://{address}/db/status");
    // One header of 20 KiB.
    let big = common::read(
        client
            .get(&url)
            .header("x-big", "b".repeat(20_000))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(big.status, 431);
    assert_error(&big.body, "16 KiB");
    // 150 small headers: over the project's 100.
    let mut request = client.get(&url);
    for i in 0..150 {
        request = request.header(format!("x-h{i}"), "v");
    }
    let many = common::read(request.send().await.unwrap()).await;
    assert_eq!(many.status, 431);
    assert_error(&many.body, "100");
    // 500 headers and a 2 MiB head: over hyper's own limits, answered by hyper in JSON.
    for headers in [
        (0..500)
            .map(|i| format!("x-h{i}: v\r\n"))
            .collect::<String>(),
        format!("x-huge: {}\r\n", "h".repeat(2 * 1024 * 1024)),
    ] {
        let request = format!("GET /db/status HTTP/1.1\r\nhost: localhost\r\n{headers}\r\n");
        let (status, body) = raw_exchange(address, request.as_bytes(), WAIT).await;
        assert_eq!(status, 431);
        assert_error(&body, "16 KiB");
    }
    // Within the limits everything still works.
    let fine = common::read(client.get(&url).send().await.unwrap()).await;
    assert_eq!(fine.status, 200);
}

#[tokio::test]
async fn bytes_that_are_not_http_answer_json_400() {
    let address = start().await;
    let (status, body) = raw_exchange(address, b"HELLO THERE\r\n\r\n", WAIT).await;
    assert_eq!(status, 400);
    assert_error(&body, "HTTP");
}

#[tokio::test]
async fn a_stalled_upload_answers_json_408() {
    let address = start().await;
    // Declares 100 bytes, sends 15, then waits without closing.
    let request = b"POST /api/calls HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"contactName\":";
    let (status, body) = raw_exchange(address, request, WAIT).await;
    assert_eq!(status, 408);
    assert_error(&body, "body did not arrive");
}

#[tokio::test]
async fn a_stalled_head_answers_json_408() {
    let address = start().await;
    let request = b"GET /db/status HTTP/1.1\r\nhost: localhost\r\nx-partial: ";
    let (status, body) = raw_exchange(address, request, WAIT).await;
    assert_eq!(status, 408);
    assert_error(&body, "headers did not arrive");
}

#[tokio::test]
async fn an_idle_connection_is_closed_without_an_answer() {
    let address = start().await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the server closes an idle connection");
    assert!(answer.is_empty(), "{:?}", String::from_utf8_lossy(&answer));
}

#[tokio::test]
async fn keep_alive_serves_several_requests_on_one_connection() {
    let address = start().await;
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let reply = common::read(
            client
                .get(format!("http://{address}/db/healthz"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(reply.status, 200);
    }
}

#[tokio::test]
async fn a_taken_port_is_one_sentence_naming_it_and_port() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = taken.local_addr().unwrap();
    let err = call_history::server::bind(address)
        .await
        .expect_err("the port is taken");
    assert!(matches!(err, ServeError::PortInUse { .. }));
    let sentence = err.to_string();
    assert!(sentence.contains(&address.port().to_string()), "{sentence}");
    assert!(sentence.contains("PORT"), "{sentence}");
    assert!(!sentence.contains("Os {"), "{sentence}");
}

#[tokio::test]
async fn the_binary_says_which_port_is_taken() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_call-history"))
        .env_clear()
        .env("PORT", port.to_string())
        .env("SQLITE_PATH", dir.path().join("crm.db"))
        .env("RUST_LOG", "error")
        .output()
        .await
        .expect("the binary runs");
    assert!(!output.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        said.contains(&format!("Port {port} is already in use")),
        "{said}"
    );
    assert!(said.contains("PORT="), "{said}");
    assert!(!said.contains("AddrInUse"), "{said}");
}
