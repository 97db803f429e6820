//! `redshift-data-local`: runs the local Redshift Data API and CloudWatch
//! stand-in until interrupted, with a control API for injecting faults.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::str::FromStr;

use redshift_data_local::{DEFAULT_PAGE_SIZE, Options, StandIn, StandInError};
use tracing_subscriber::EnvFilter;

const USAGE: &str = "\
Local stand-in for the Amazon Redshift Data API (executing on PostgreSQL) and CloudWatch.

Usage: redshift-data-local [OPTIONS]

Options:
  --database-url <URL>     PostgreSQL connection string [env: DATABASE_URL]
  --host <ADDR>            address to listen on [default: 127.0.0.1]
  --port <PORT>            Redshift Data API port [default: 9000]
  --cloudwatch-port <PORT> CloudWatch port [default: 9001]
  --control-port <PORT>    control API port [default: 9002]
  --page-size <ROWS>       rows per GetStatementResult page [default: 1000]
  -h, --help               print this help

Control API (JSON):
  POST   /fault              {\"fault\":\"hang\"}, {\"fault\":\"http-status\",\"status\":503},
                             {\"fault\":\"throttle\"}, {\"fault\":\"active-statements-exceeded\"},
                             {\"fault\":\"fail-statements\",\"message\":\"...\"},
                             {\"fault\":\"abort-statements\"}, {\"fault\":\"stay-started\",\"seconds\":5},
                             {\"fault\":\"slow\",\"millis\":300}, {\"fault\":\"refuse-connections\"}
  DELETE /fault
  POST   /cloudwatch/fault   same bodies, for the CloudWatch endpoint
  DELETE /cloudwatch/fault
  GET    /metrics            captured CloudWatch metrics (DELETE clears them)
  GET    /operations         requests received per operation

Log level: RUST_LOG (default info).";

/// Why the command line could not be used.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("unknown argument {0:?}")]
    UnknownArgument(String),
    #[error("{0} needs a value")]
    MissingValue(String),
    #[error("invalid value {value:?} for {flag}")]
    InvalidValue { flag: String, value: String },
    #[error("no database: pass --database-url or set DATABASE_URL")]
    NoDatabase,
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
    fn parse(mut argv: impl Iterator<Item = String>) -> Result<Command, CliError> {
        let mut database_url = std::env::var("DATABASE_URL").ok();
        let mut args = Args {
            database_url: String::new(),
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 9000,
            cloudwatch_port: 9001,
            control_port: 9002,
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
        args.database_url = database_url
            .filter(|u| !u.is_empty())
            .ok_or(CliError::NoDatabase)?;
        Ok(Command::Run(args))
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
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(Command::Run(args)) => args,
        Ok(Command::Help) => {
            // A closed pipe (`--help | head`) is not an error worth a panic.
            let _ = writeln!(std::io::stdout(), "{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("redshift-data-local: {error}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("redshift-data-local: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), StandInError> {
    let options = Options {
        page_size: args.page_size,
        data_api_addr: SocketAddr::new(args.host, args.port),
        cloudwatch_addr: SocketAddr::new(args.host, args.cloudwatch_port),
        ..Options::new(args.database_url)
    };
    let standin = StandIn::start(options).await?;
    let control_url = standin
        .serve_control(SocketAddr::new(args.host, args.control_port))
        .await?;
    println!("AWS_ENDPOINT_URL_REDSHIFT_DATA={}", standin.data_api_url());
    println!("AWS_ENDPOINT_URL_CLOUDWATCH={}", standin.cloudwatch_url());
    println!("control API: {control_url} (POST /fault, GET /metrics, GET /operations)");
    wait_for_stop_signal().await;
    standin.shutdown().await;
    Ok(())
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
