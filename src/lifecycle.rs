//! Lambda's lifecycle: the work after each answer, and the last chance at shutdown.
//!
//! Lambda freezes the environment as soon as the function has answered and every registered
//! extension has asked for its next event, and later shuts idle environments down; work merely
//! left running waits for the next thaw, maybe for ever. So the function registers an internal
//! extension (same process, the `lambda-extension` crate): Lambda returns each answer to the
//! client at once, and keeps the environment awake until the extension asks for its next event,
//! which it does only after the work of that answer ([`after_answer`]):
//!
//! - the [`Background`] work the request left (metric puts, cancels of statements abandoned at
//!   the deadline, copies into the backup);
//! - the store's upkeep: a replay of waiting writes, a pull of the replica ahead of its bound
//!   while reads keep coming, the minute's metrics.
//!
//! All of it within `POST_ANSWER_BUDGET_MS` (the invocation is billed meanwhile). An internal
//! extension cannot subscribe to SHUTDOWN; Lambda tells the process with SIGTERM and allows about
//! 500 ms, in which the waiting writes are replayed when Redshift answers, and what is left is
//! said in one log line and, when it lives only in `/tmp`, counted in a metric.
//!
//! Where no Extensions API answers (an emulator without one), the same work runs as ordinary
//! background tasks on a timer, as on the local server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lambda_extension::{service_fn, Extension, LambdaEvent};
use tokio::sync::{mpsc, Mutex};

use crate::background::Background;
use crate::store::failover::FailoverStore;
use crate::App;

/// The extension's name, as Lambda lists it.
const EXTENSION_NAME: &str = "call-history-upkeep";
/// What the shutdown may spend: Lambda allows an internal extension's process about 500 ms
/// between SIGTERM and SIGKILL.
const SHUTDOWN_BUDGET: Duration = Duration::from_millis(450);

/// The work after answers: what the extension runs, and with how much time.
#[derive(Clone)]
struct Upkeep {
    store: Arc<FailoverStore>,
    background: Background,
    budget: Duration,
}

/// Runs the function inside Lambda: the runtime loop and the internal extension beside it, and
/// the shutdown on SIGTERM.
pub async fn run(app: App, post_answer_budget: Duration) -> Result<(), lambda_http::Error> {
    let upkeep = Upkeep {
        store: Arc::clone(&app.store),
        background: app.background.clone(),
        budget: post_answer_budget,
    };
    let (answered, answers) = mpsc::unbounded_channel();
    let answers = Arc::new(Mutex::new(answers));
    let processor = service_fn(move |event: LambdaEvent| {
        let (upkeep, answers) = (upkeep.clone(), Arc::clone(&answers));
        async move {
            if event.next.is_invoke() {
                // The INVOKE arrives with the invocation; the work waits for its answer.
                answers.lock().await.recv().await;
                after_answer(&upkeep).await;
            }
            Ok::<(), lambda_extension::Error>(())
        }
    });
    // Registered before the runtime asks for its first event: that request ends Lambda's init
    // phase, after which no extension may register.
    let registered = Extension::new()
        .with_extension_name(EXTENSION_NAME)
        .with_events(&["INVOKE"])
        .with_events_processor(processor)
        .register()
        .await;
    shut_down_on_sigterm(Arc::clone(&app.store));
    match registered {
        Ok(extension) => {
            let runtime = crate::lambda::run(app.router, Some(answered));
            let extension = extension.run();
            tokio::try_join!(runtime, extension).map(drop)
        }
        Err(err) => {
            tracing::warn!(error = %err, "No Lambda Extensions API here; the work after answers runs as background tasks");
            app.run_upkeep();
            crate::lambda::run(app.router, None).await
        }
    }
}

/// The work after one answer, before the environment may freeze.
async fn after_answer(upkeep: &Upkeep) {
    // Let the runtime send the answer first: the work shares the process with it.
    tokio::task::yield_now().await;
    let started = Instant::now();
    let left = |budget: Duration| budget.saturating_sub(started.elapsed());
    upkeep.background.settle(upkeep.budget).await;
    upkeep.store.maintain(left(upkeep.budget)).await;
    // What the upkeep itself left (its metrics).
    if !upkeep.background.settle(left(upkeep.budget)).await {
        tracing::warn!(
            running = upkeep.background.running(),
            "Work after the answer outlasted POST_ANSWER_BUDGET_MS; it goes on at the next thaw"
        );
    }
}

/// On SIGTERM (Lambda shutting the environment down): replays what waits, says what is left,
/// and ends the process.
fn shut_down_on_sigterm(store: Arc<FailoverStore>) {
    tokio::spawn(async move {
        let Ok(mut terminate) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            tracing::warn!(
                "SIGTERM cannot be watched; writes waiting at shutdown are not replayed"
            );
            return;
        };
        terminate.recv().await;
        store.shutdown(SHUTDOWN_BUDGET).await;
        std::process::exit(0);
    });
}
