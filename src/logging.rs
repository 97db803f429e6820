//! Logs through `tracing`: JSON inside Lambda (one object a line, for CloudWatch Logs Insights),
//! readable text locally. `RUST_LOG` adjusts the levels.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The SDK's own chatter stays out unless asked for.
const DEFAULT_FILTER: &str = "info,aws_config=warn,aws_smithy_runtime=warn,aws_sdk_redshiftdata=warn,aws_sdk_cloudwatch=warn,hyper=warn,lambda_runtime=warn";

pub fn init(in_lambda: bool) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let result = if in_lambda {
        builder
            .json()
            .with_current_span(false)
            .with_ansi(false)
            .try_init()
    } else {
        builder
            .with_ansi(std::io::stdout().is_terminal())
            .try_init()
    };
    // Already initialised (tests build several apps in one process): keep the first.
    let _ = result;
}
