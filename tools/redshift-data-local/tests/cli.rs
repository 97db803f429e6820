//! The `redshift-data-local` program as a person runs it: its start-up errors and its log.
//!
//! Tests that start it need PostgreSQL: `export "$(scripts/pg-test-cluster.sh start)"`.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

fn standin() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_redshift-data-local"));
    command
        .env_remove("REDSHIFT_LOCAL_PORT")
        .env_remove("REDSHIFT_LOCAL_CLOUDWATCH_PORT")
        .env_remove("REDSHIFT_LOCAL_CONTROL_PORT")
        .env("RUST_LOG", "info");
    command
}

fn database_url() -> String {
    std::env::var("DATABASE_URL").expect(
        "DATABASE_URL is not set: start PostgreSQL with `export \"$(scripts/pg-test-cluster.sh start)\"`",
    )
}

/// Stops the program even when an assertion fails first.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn log_written_to_a_file_or_pipe_has_no_colour_codes() {
    let child = standin()
        .args(["--port=0", "--cloudwatch-port=0", "--control-port=0"])
        .env("DATABASE_URL", database_url())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the stand-in starts");
    let mut running = Running(child);
    let stdout = running.0.stdout.take().expect("stdout piped");
    let mut output = String::new();
    // The last line printed at start-up; everything before it is in `output` by then.
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("readable output");
        output.push_str(&line);
        output.push('\n');
        if line.starts_with("control API:") {
            break;
        }
    }
    assert!(
        output.contains("listening"),
        "the log reaches stdout: {output}"
    );
    assert!(
        !output.contains('\u{1b}'),
        "no ANSI escape codes when stdout is not a terminal: {output:?}"
    );
}

#[test]
fn a_busy_port_is_one_sentence_naming_the_port_and_how_to_move_it() {
    let busy = TcpListener::bind("127.0.0.1:0").expect("a port to occupy");
    let port = busy.local_addr().expect("address").port();
    let output = standin()
        .args([
            format!("--port={port}"),
            "--cloudwatch-port=0".into(),
            "--control-port=0".into(),
        ])
        .env("DATABASE_URL", database_url())
        .output()
        .expect("the stand-in runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!(
            "redshift-data-local: port {port} for the Redshift Data API is already in use: stop \
             what is using it, or choose another port with --port or REDSHIFT_LOCAL_PORT."
        )
    );
}

#[test]
fn no_postgres_says_how_to_start_one() {
    // Port 1 on the loopback address: nothing listens there.
    let mut child = standin()
        .args(["--database-url", "postgres://postgres@127.0.0.1:1/postgres"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the stand-in runs");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr piped")
        .read_to_string(&mut stderr)
        .expect("readable");
    let status = child.wait().expect("exits");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("redshift-data-local: cannot connect to PostgreSQL")
            && stderr.contains("scripts/pg-test-cluster.sh start")
            && stderr.contains("DATABASE_URL"),
        "{stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
}

/// What the help says of each port is checked against the settings the parser reads, in the
/// program's own tests; here, that `--help` prints it and succeeds.
#[test]
fn help_goes_to_stdout_and_succeeds() {
    let output = standin().arg("--help").output().expect("runs");
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert!(
        help.contains("Usage: redshift-data-local [OPTIONS]"),
        "{help}"
    );
    assert!(help.contains("--control-port <PORT>"), "{help}");
}
