//! The processes of the execution environment: how they are started, what they print, and the
//! signals Lambda sends them.
//!
//! Each process is started as the leader of a process group of its own, so that freezing,
//! thawing and the final kill reach whatever it started as well: on Lambda the whole micro-VM
//! is frozen and thrown away, children included.

use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};

use rustix::process::{Pid, Signal, kill_process, kill_process_group};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::Options;

/// Which part of the environment a process is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// The function's runtime (with any internal extensions inside it).
    Runtime,
    /// An external extension, by the name it must register with.
    ExternalExtension(String),
}

/// A running (or ended) process of the environment.
#[derive(Debug)]
pub(crate) struct ProcessSlot {
    pub role: Role,
    pub pid: Pid,
    /// Set once the process has ended, with when; the status is `None` when it could not be
    /// read.
    pub exit: Option<(Option<ExitStatus>, std::time::Instant)>,
}

impl ProcessSlot {
    pub fn is_alive(&self) -> bool {
        self.exit.is_none()
    }

    /// Sends `signal` to the process group. A group that is gone already is no error: the
    /// process may end at any moment.
    pub fn signal_group(&self, signal: Signal) {
        if self.is_alive() {
            send(kill_process_group(self.pid, signal), signal, &self.role);
        }
    }

    /// Kills whatever is left of the process group, even after its leader ended: on Lambda the
    /// whole environment goes away.
    pub fn kill_group_remains(&self) {
        send(
            kill_process_group(self.pid, Signal::KILL),
            Signal::KILL,
            &self.role,
        );
    }

    /// Sends `signal` to the process alone, as Lambda sends SIGTERM to the runtime.
    pub fn signal_process(&self, signal: Signal) {
        if self.is_alive() {
            send(kill_process(self.pid, signal), signal, &self.role);
        }
    }
}

fn send(result: rustix::io::Result<()>, signal: Signal, role: &Role) {
    if let Err(err) = result
        && err != rustix::io::Errno::SRCH
    {
        tracing::warn!(?signal, ?role, %err, "a signal could not be sent");
    }
}

/// What the environment's processes printed, line by line, as Lambda collects it for CloudWatch.
#[derive(Clone, Debug, Default)]
pub(crate) struct Output {
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Output {
    pub fn stdout(&self) -> String {
        lock(&self.stdout).clone()
    }

    pub fn stderr(&self) -> String {
        lock(&self.stderr).clone()
    }

    /// Collects the child's piped stdout and stderr until they close. Reading never stops, so a
    /// chatty process never blocks on a full pipe.
    fn collect(&self, child: &mut Child) {
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(collect_lines(BufReader::new(stdout), self.stdout.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(collect_lines(BufReader::new(stderr), self.stderr.clone()));
        }
    }
}

fn lock(text: &Mutex<String>) -> std::sync::MutexGuard<'_, String> {
    text.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn collect_lines(mut reader: impl AsyncBufRead + Unpin, into: Arc<Mutex<String>>) {
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => lock(&into).push_str(&String::from_utf8_lossy(&line)),
        }
    }
}

/// The variables Lambda sets for every process of the environment.
fn shared_variables(options: &Options, api: SocketAddr) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_LAMBDA_RUNTIME_API", api.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", options.function_name.clone()),
        (
            "AWS_LAMBDA_FUNCTION_VERSION",
            options.function_version.clone(),
        ),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            options.memory_size_mb.to_string(),
        ),
        ("AWS_REGION", options.region.clone()),
        ("AWS_DEFAULT_REGION", options.region.clone()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_string()),
    ]
}

/// The variables Lambda gives the runtime only (extensions do not see them).
fn runtime_variables(options: &Options) -> Vec<(&'static str, String)> {
    vec![
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", options.function_name),
        ),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            format!(
                "local/[{}]{}",
                options.function_version,
                uuid::Uuid::new_v4().simple()
            ),
        ),
        ("_HANDLER", options.handler.clone()),
    ]
}

/// Starts `command` as a process of the environment: in a process group of its own, with the
/// Lambda variables it has not set itself (`AWS_LAMBDA_RUNTIME_API` always points here), no
/// standard input, and its output collected into `output`.
pub(crate) fn start(
    mut command: Command,
    role: &Role,
    options: &Options,
    api: SocketAddr,
    output: &Output,
) -> std::io::Result<Child> {
    let mut variables = shared_variables(options, api);
    if *role == Role::Runtime {
        variables.extend(runtime_variables(options));
    }
    let already_set: Vec<String> = command
        .as_std()
        .get_envs()
        .map(|(name, _)| name.to_string_lossy().into_owned())
        .collect();
    for (name, value) in variables {
        if name == "AWS_LAMBDA_RUNTIME_API" || !already_set.iter().any(|set| set == name) {
            command.env(name, value);
        }
    }
    command
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn()?;
    output.collect(&mut child);
    Ok(child)
}

/// The process id of a started child, as a signal target.
pub(crate) fn pid_of(child: &Child) -> Option<Pid> {
    child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(Pid::from_raw)
}
