//! Logs through `tracing`: JSON inside Lambda (one object a line, for CloudWatch Logs Insights),
//! readable text locally. `RUST_LOG` adjusts the levels; inside Lambda, the function's
//! application log level (`AWS_LAMBDA_LOG_LEVEL`, set by the template) does when it is unset.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The SDK's own chatter stays out unless asked for.
const QUIET_DEPENDENCIES: &str =
    "aws_config=warn,aws_smithy_runtime=warn,aws_sdk_redshiftdata=warn,aws_sdk_cloudwatch=warn,hyper=warn,lambda_runtime=warn";

pub fn init(in_lambda: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        let level = std::env::var("AWS_LAMBDA_LOG_LEVEL").ok();
        EnvFilter::new(format!(
            "{},{QUIET_DEPENDENCIES}",
            level_directive(level.as_deref())
        ))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let result = if in_lambda {
        builder
            .json()
            .flatten_event(true)
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

/// Lambda's level names to tracing's; FATAL has no equivalent and means errors only.
fn level_directive(lambda_level: Option<&str>) -> &'static str {
    match lambda_level.map(str::to_ascii_uppercase).as_deref() {
        Some("TRACE") => "trace",
        Some("DEBUG") => "debug",
        Some("WARN") => "warn",
        Some("ERROR") | Some("FATAL") => "error",
        _ => "info",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn lambda_levels_map_to_tracing_levels() {
        assert_eq!(super::level_directive(Some("FATAL")), "error");
        assert_eq!(super::level_directive(Some("debug")), "debug");
        assert_eq!(super::level_directive(None), "info");
    }
}
