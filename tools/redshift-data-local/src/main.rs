//! `redshift-data-local`: runs the local Redshift Data API and CloudWatch
//! stand-in until interrupted, with a control API for injecting faults.

use std::io::{IsTerminal, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::str::FromStr;

use redshift_data_local::{DEFAULT_PAGE_SIZE, Options, StandIn, StandInError};
use tracing_subscriber::EnvFilter;

/// The help text down to the port options, which [`usage`] writes from the [`PortSetting`]s.
const USAGE_HEAD: &str = "\
Local stand-in for the Amazon Redshift Data API (executing on PostgreSQL) and CloudWatch.

Usage: redshift-data-local [OPTIONS]

Options:
  --database-url <URL>     PostgreSQL connection string [env: DATABASE_URL]
  --host <ADDR>            address to listen on [default: 127.0.0.1]
";

/// The help text after the port options.
const USAGE_TAIL: &str = "  --page-size <ROWS>       rows per GetStatementResult page [default: 1000]
  -h, --help               print this help

Control API (JSON):
  POST   /fault              {\"fault\":\"hang\"}, {\"fault\":\"http-status\",\"status\":503},
                             {\"fault\":\"throttle\"}, {\"fault\":\"active-statements-exceeded\"},
                             {\"fault\":\"active-waiting-requests-exceeded\"},
                             {\"fault\":\"fail-statements\",\"message\":\"...\"},
                             {\"fault\":\"abort-statements\"}, {\"fault\":\"stay-started\",\"seconds\":5},
                             {\"fault\":\"slow\",\"millis\":300}, {\"fault\":\"refuse-connections\"}
  DELETE /fault
  POST   /cloudwatch/fault   same bodies, for the CloudWatch endpoint
  DELETE /cloudwatch/fault
  GET    /metrics            captured CloudWatch metrics (DELETE clears them)
  GET    /operations         requests received per operation

Log level: RUST_LOG (default info). Colours only when the output is a terminal.";

/// One of the three ports the stand-in listens on, and the two ways to set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PortSetting {
    what: &'static str,
    flag: &'static str,
    variable: &'static str,
    default: u16,
}

const DATA_API_PORT: PortSetting = PortSetting {
    what: "the Redshift Data API",
    flag: "--port",
    variable: "REDSHIFT_LOCAL_PORT",
    default: 8100,
};
const CLOUDWATCH_PORT: PortSetting = PortSetting {
    what: "CloudWatch",
    flag: "--cloudwatch-port",
    variable: "REDSHIFT_LOCAL_CLOUDWATCH_PORT",
    default: 8101,
};
const CONTROL_PORT: PortSetting = PortSetting {
    what: "the control API",
    flag: "--control-port",
    variable: "REDSHIFT_LOCAL_CONTROL_PORT",
    default: 8102,
};
const PORTS: [PortSetting; 3] = [DATA_API_PORT, CLOUDWATCH_PORT, CONTROL_PORT];

/// The help text, its port options written from [`PORTS`] so that they cannot drift from
/// what the parser reads.
fn usage() -> String {
    let mut text = USAGE_HEAD.to_owned();
    for port in PORTS {
        let option = format!("{} <PORT>", port.flag);
        text.push_str(&format!(
            "  {option:<24} port for {} [env: {}] [default: {}]\n",
            port.what, port.variable, port.default
        ));
    }
    text.push_str(USAGE_TAIL);
    text
}

/// Why the command line could not be used.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("unknown argument {0:?}")]
    UnknownArgument(String),
    #[error("{0} needs a value")]
    MissingValue(String),
    #[error("invalid value {value:?} for {flag}")]
    InvalidValue { flag: String, value: String },
    #[error("{first} and {second} are both {port}; give each endpoint its own port")]
    SamePort {
        first: &'static str,
        second: &'static str,
        port: u16,
    },
    #[error("no database: pass --database-url or set DATABASE_URL")]
    NoDatabase,
}

/// Why the stand-in stopped before serving, in words that say what to do.
#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error(
        "port {port} for {what} is already in use: stop what is using it, or choose another port with {flag} or {variable}"
    )]
    PortInUse {
        port: u16,
        what: &'static str,
        flag: &'static str,
        variable: &'static str,
    },
    #[error(
        "cannot connect to PostgreSQL ({reason}): start one with `scripts/pg-test-cluster.sh start`, or point --database-url or DATABASE_URL at a running server"
    )]
    NoPostgres { reason: String },
    #[error(transparent)]
    StandIn(StandInError),
}

/// Settings from the command line and environment.
#[derive(Debug)]
struct Args {
    database_url: String,
    host: IpAddr,
    port: u16,
    cloudwatch_port: u16,
    control_port: u16,
    page_size: usize,
}

enum Command {
    Run(Args),
    Help,
}

impl Args {
    /// Parses `argv`; `env` looks up environment variables (the process's own outside tests).
    fn parse(
        mut argv: impl Iterator<Item = String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Command, CliError> {
        let mut database_url = env("DATABASE_URL");
        let mut args = Args {
            database_url: String::new(),
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: port_from_env(DATA_API_PORT, &env)?,
            cloudwatch_port: port_from_env(CLOUDWATCH_PORT, &env)?,
            control_port: port_from_env(CONTROL_PORT, &env)?,
            page_size: DEFAULT_PAGE_SIZE,
        };
        while let Some(arg) = argv.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
                None => (arg, None),
            };
            if flag == "-h" || flag == "--help" {
                return Ok(Command::Help);
            }
            let value = inline
                .or_else(|| argv.next())
                .ok_or_else(|| CliError::MissingValue(flag.clone()))?;
            match flag.as_str() {
                "--database-url" => database_url = Some(value),
                "--host" => args.host = parse_value(&flag, &value)?,
                "--port" => args.port = parse_value(&flag, &value)?,
                "--cloudwatch-port" => args.cloudwatch_port = parse_value(&flag, &value)?,
                "--control-port" => args.control_port = parse_value(&flag, &value)?,
                "--page-size" => args.page_size = parse_value(&flag, &value)?,
                _ => return Err(CliError::UnknownArgument(flag)),
            }
        }
        args.check_distinct_ports()?;
        args.database_url = database_url
            .filter(|u| !u.is_empty())
            .ok_or(CliError::NoDatabase)?;
        Ok(Command::Run(args))
    }

    fn ports(&self) -> [(PortSetting, u16); 3] {
        [
            (DATA_API_PORT, self.port),
            (CLOUDWATCH_PORT, self.cloudwatch_port),
            (CONTROL_PORT, self.control_port),
        ]
    }

    /// Two endpoints on one port would fail later with a misleading "address in use".
    /// Port 0 (any free port) may repeat.
    fn check_distinct_ports(&self) -> Result<(), CliError> {
        let ports = self.ports();
        for (i, (first, port)) in ports.iter().enumerate() {
            for (second, other) in &ports[i + 1..] {
                if port == other && *port != 0 {
                    return Err(CliError::SamePort {
                        first: first.flag,
                        second: second.flag,
                        port: *port,
                    });
                }
            }
        }
        Ok(())
    }

    /// Which setting chose `port`, for an error about it.
    fn setting_for(&self, port: u16) -> Option<PortSetting> {
        self.ports()
            .into_iter()
            .find(|(_, chosen)| *chosen == port)
            .map(|(setting, _)| setting)
    }
}

fn port_from_env(
    setting: PortSetting,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<u16, CliError> {
    match env(setting.variable).filter(|v| !v.is_empty()) {
        Some(value) => parse_value(setting.variable, &value),
        None => Ok(setting.default),
    }
}

fn parse_value<T: FromStr>(flag: &str, value: &str) -> Result<T, CliError> {
    value.parse().map_err(|_| CliError::InvalidValue {
        flag: flag.to_owned(),
        value: value.to_owned(),
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes are noise in a log file: only a terminal gets them.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    let args = match Args::parse(std::env::args().skip(1), |name| std::env::var(name).ok()) {
        Ok(Command::Run(args)) => args,
        Ok(Command::Help) => {
            // A closed pipe (`--help | head`) is not an error worth a panic.
            let _ = writeln!(std::io::stdout(), "{}", usage());
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("redshift-data-local: {error}.\n\n{}", usage());
            return ExitCode::from(2);
        }
    };
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("redshift-data-local: {error}.");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<(), RunError> {
    let options = Options {
        page_size: args.page_size,
        data_api_addr: SocketAddr::new(args.host, args.port),
        cloudwatch_addr: SocketAddr::new(args.host, args.cloudwatch_port),
        ..Options::new(args.database_url.clone())
    };
    let explain = |error| explain_start_error(args, error);
    let standin = StandIn::start(options).await.map_err(explain)?;
    let control_url = standin
        .serve_control(SocketAddr::new(args.host, args.control_port))
        .await
        .map_err(explain)?;
    println!("AWS_ENDPOINT_URL_REDSHIFT_DATA={}", standin.data_api_url());
    println!("AWS_ENDPOINT_URL_CLOUDWATCH={}", standin.cloudwatch_url());
    println!("control API: {control_url} (POST /fault, GET /metrics, GET /operations)");
    wait_for_stop_signal().await;
    standin.shutdown().await;
    Ok(())
}

/// The two start-up failures a person meets most (a busy port, no PostgreSQL) get a sentence
/// that says how to fix them; the rest keep the stand-in's own words.
fn explain_start_error(args: &Args, error: StandInError) -> RunError {
    match error {
        StandInError::Bind { addr, source } if source.kind() == std::io::ErrorKind::AddrInUse => {
            match args.setting_for(addr.port()) {
                Some(setting) => RunError::PortInUse {
                    port: addr.port(),
                    what: setting.what,
                    flag: setting.flag,
                    variable: setting.variable,
                },
                None => RunError::StandIn(StandInError::Bind { addr, source }),
            }
        }
        StandInError::Database { source, .. } => RunError::NoPostgres {
            reason: source.to_string(),
        },
        other => RunError::StandIn(other),
    }
}

/// Ctrl-C, or SIGTERM from a process manager or `docker stop`.
async fn wait_for_stop_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[&str], env: &[(&str, &str)]) -> Result<Args, CliError> {
        let argv = argv.iter().map(|a| a.to_string());
        let lookup = |name: &str| {
            env.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        };
        match Args::parse(argv, lookup)? {
            Command::Run(args) => Ok(args),
            Command::Help => panic!("help asked"),
        }
    }

    const DB: (&str, &str) = ("DATABASE_URL", "postgres://127.0.0.1/postgres");

    #[test]
    fn defaults_stay_clear_of_the_service_and_the_lambda_emulator() {
        let args = parse(&[], &[DB]).unwrap();
        let ports = [args.port, args.cloudwatch_port, args.control_port];
        assert_eq!(ports, [8100, 8101, 8102]);
        // 8000: the service (`make run`); 9000: `cargo lambda watch`.
        assert!(!ports.contains(&8000) && !ports.contains(&9000));
    }

    #[test]
    fn ports_come_from_the_environment_and_flags_win() {
        let env = [DB, ("REDSHIFT_LOCAL_PORT", "18470")];
        assert_eq!(parse(&[], &env).unwrap().port, 18470);
        assert_eq!(parse(&["--port", "18471"], &env).unwrap().port, 18471);
        let bad = parse(&[], &[DB, ("REDSHIFT_LOCAL_CONTROL_PORT", "lots")]).unwrap_err();
        assert_eq!(
            bad.to_string(),
            "invalid value \"lots\" for REDSHIFT_LOCAL_CONTROL_PORT"
        );
    }

    #[test]
    fn one_port_for_two_endpoints_is_refused_up_front() {
        let error = parse(&["--cloudwatch-port=8100"], &[DB]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "--port and --cloudwatch-port are both 8100; give each endpoint its own port"
        );
        assert!(
            parse(
                &["--port=0", "--cloudwatch-port=0", "--control-port=0"],
                &[DB]
            )
            .is_ok()
        );
    }

    #[test]
    fn help_shows_each_port_with_its_flag_variable_and_default() {
        let help = usage();
        for port in PORTS {
            let line = help
                .lines()
                .find(|line| {
                    line.trim_start()
                        .starts_with(&format!("{} <PORT>", port.flag))
                })
                .unwrap_or_else(|| panic!("{} in {help}", port.flag));
            let expected = format!("[env: {}] [default: {}]", port.variable, port.default);
            assert!(line.ends_with(&expected), "{line}");
        }
    }

    #[test]
    fn a_busy_port_is_named_with_the_flag_and_variable_that_move_it() {
        let args = parse(&[], &[DB]).unwrap();
        let busy = StandInError::Bind {
            addr: SocketAddr::from(([127, 0, 0, 1], 8101)),
            source: std::io::ErrorKind::AddrInUse.into(),
        };
        assert_eq!(
            explain_start_error(&args, busy).to_string(),
            "port 8101 for CloudWatch is already in use: stop what is using it, or choose \
             another port with --cloudwatch-port or REDSHIFT_LOCAL_CLOUDWATCH_PORT"
        );
    }
}
