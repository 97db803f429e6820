//! `redshift-data-local`: runs the local Redshift Data API and CloudWatch
//! stand-in until interrupted, with a control API for injecting faults.

use std::io::{IsTerminal, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use redshift_data_local::{
    AWS_ACTIVE_STATEMENTS, AWS_QUOTAS, DEFAULT_PAGE_SIZE, Isolation, Options, Quota, QuotaError,
    Quotas, StandIn, StandInError,
};
use tracing_subscriber::EnvFilter;

/// The help text down to the port options, which [`usage`] writes from the [`PortSetting`]s.
const USAGE_HEAD: &str = "\
Local stand-in for the Amazon Redshift Data API (executing on PostgreSQL) and CloudWatch.

Usage: redshift-data-local [OPTIONS]

Options:
  --database-url <URL>     PostgreSQL connection string [env: DATABASE_URL]
  --host <ADDR>            address to listen on [default: 127.0.0.1]
";

/// The help text after the port and AWS-likeness options, down to the quotas' figures, which
/// [`usage`] writes from [`AWS_QUOTAS`].
const USAGE_OPTIONS_TAIL: &str =
    "  --page-size <ROWS>       rows per GetStatementResult page [default: 1000]
  -h, --help               print this help

Quotas: aws (AWS's published Data API quotas, per second, each with one second's burst:
";

/// The rest of the help text.
const USAGE_TAIL: &str = "),
or off, or either followed by changes, comma-separated: OPERATION=RATE[/BURST] or
OPERATION=off, e.g. aws,ExecuteStatement=5/10 or off,DescribeStatement=100. A call beyond its quota is answered ThrottlingException
(\"Rate exceeded\", HTTP 400), as AWS does. A burst of 0 is refused unless the rate is 0 too.

Active statements: a number, or off. A submission while that many statements are SUBMITTED or
STARTED is answered ActiveStatementsExceededException (HTTP 400), as AWS does.

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
  GET    /quotas             per operation: quota, calls and throttled calls
  POST   /quotas             {\"ExecuteStatement\":{\"perSecond\":5,\"burst\":10},\"CancelStatement\":null}
                             (burst defaults to perSecond; null lifts that quota)
  DELETE /quotas             lifts every quota; POST /quotas/aws puts AWS's back
  GET    /active-statements  {\"limit\":200}; POST the same to change (null lifts the limit)
  GET    /latency            {\"roundTripMillis\":0,\"statementMillis\":0}; POST the same to change

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

/// A setting that makes the stand-in as strict and as slow as AWS, and the two ways to set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StrictnessSetting {
    flag: &'static str,
    value: &'static str,
    what: &'static str,
    variable: &'static str,
    default: &'static str,
}

const QUOTAS: StrictnessSetting = StrictnessSetting {
    flag: "--quotas",
    value: "<SPEC>",
    what: "Data API quotas (see Quotas below)",
    variable: "REDSHIFT_LOCAL_QUOTAS",
    default: "aws",
};
const ACTIVE_STATEMENTS: StrictnessSetting = StrictnessSetting {
    flag: "--active-statements",
    value: "<N>",
    what: "most statements active at once, or off (see below)",
    variable: "REDSHIFT_LOCAL_ACTIVE_STATEMENTS",
    default: "200",
};
const ROUND_TRIP: StrictnessSetting = StrictnessSetting {
    flag: "--round-trip-ms",
    value: "<MS>",
    what: "network time added to each Data API call",
    variable: "REDSHIFT_LOCAL_ROUND_TRIP_MS",
    default: "0",
};
const STATEMENT_TIME: StrictnessSetting = StrictnessSetting {
    flag: "--statement-ms",
    value: "<MS>",
    what: "time each SQL statement takes before it runs (a batch's in turn)",
    variable: "REDSHIFT_LOCAL_STATEMENT_MS",
    default: "0",
};
const ISOLATION: StrictnessSetting = StrictnessSetting {
    flag: "--isolation",
    value: "<LEVEL>",
    what: "serializable (stricter: error 1023 on concurrent writers) or snapshot (AWS's default for new clusters and workgroups)",
    variable: "REDSHIFT_LOCAL_ISOLATION",
    default: "serializable",
};
const STRICTNESS: [StrictnessSetting; 5] = [
    QUOTAS,
    ACTIVE_STATEMENTS,
    ROUND_TRIP,
    STATEMENT_TIME,
    ISOLATION,
];

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
    for setting in STRICTNESS {
        let option = format!("{} {}", setting.flag, setting.value);
        text.push_str(&format!(
            "  {option:<24} {} [env: {}] [default: {}]\n",
            setting.what, setting.variable, setting.default
        ));
    }
    text.push_str(USAGE_OPTIONS_TAIL);
    let figures: Vec<String> = AWS_QUOTAS
        .iter()
        .map(|(operation, rate)| format!("{operation} {rate}"))
        .collect();
    text.push_str(&figures.join(", "));
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
    #[error("invalid value for {flag}: {source}")]
    InvalidQuotas {
        flag: &'static str,
        #[source]
        source: QuotaError,
    },
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
    quotas: Option<Quotas>,
    active_statements: Option<usize>,
    round_trip: Duration,
    statement_time: Duration,
    isolation: Isolation,
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
            quotas: Some(Quotas::aws()),
            active_statements: Some(AWS_ACTIVE_STATEMENTS),
            round_trip: Duration::ZERO,
            statement_time: Duration::ZERO,
            isolation: Isolation::default(),
        };
        for setting in STRICTNESS {
            if let Some(value) = env(setting.variable).filter(|v| !v.is_empty()) {
                args.apply(setting.variable, &value)?;
            }
        }
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
                _ if STRICTNESS.iter().any(|s| s.flag == flag) => args.apply(&flag, &value)?,
                _ => return Err(CliError::UnknownArgument(flag)),
            }
        }
        args.check_distinct_ports()?;
        args.database_url = database_url
            .filter(|u| !u.is_empty())
            .ok_or(CliError::NoDatabase)?;
        Ok(Command::Run(args))
    }

    /// Applies one of the [`STRICTNESS`] settings, named by its flag or its variable.
    fn apply(&mut self, name: &str, value: &str) -> Result<(), CliError> {
        let Some(setting) = STRICTNESS
            .iter()
            .find(|s| s.flag == name || s.variable == name)
        else {
            return Err(CliError::UnknownArgument(name.to_owned()));
        };
        match setting.flag {
            "--quotas" => {
                self.quotas = parse_quotas(value).map_err(|source| CliError::InvalidQuotas {
                    flag: setting.flag,
                    source,
                })?;
            }
            "--active-statements" => self.active_statements = parse_limit(name, value)?,
            "--round-trip-ms" => self.round_trip = parse_millis(name, value)?,
            "--statement-ms" => self.statement_time = parse_millis(name, value)?,
            _ => self.isolation = parse_value(name, value)?,
        }
        Ok(())
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

/// `aws`, `off`, then changes: `aws,ExecuteStatement=5/10,CancelStatement=off`. Without a
/// leading `aws` or `off`, the changes apply to AWS's quotas.
fn parse_quotas(spec: &str) -> Result<Option<Quotas>, QuotaError> {
    let mut quotas = Quotas::aws();
    for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        match item.split_once('=') {
            None if item.eq_ignore_ascii_case("aws") => quotas = Quotas::aws(),
            None if item.eq_ignore_ascii_case("off") => quotas = Quotas::default(),
            None => return Err(QuotaError::InvalidQuota(item.to_owned())),
            Some((operation, quota)) if quota.trim().eq_ignore_ascii_case("off") => {
                quotas.set(operation.trim(), None)?;
            }
            Some((operation, quota)) => {
                quotas.set(operation.trim(), Some(quota.parse::<Quota>()?))?;
            }
        }
    }
    Ok((!quotas.is_empty()).then_some(quotas))
}

/// A number, or `off` for no limit.
fn parse_limit(flag: &str, value: &str) -> Result<Option<usize>, CliError> {
    if value.trim().eq_ignore_ascii_case("off") {
        Ok(None)
    } else {
        parse_value(flag, value.trim()).map(Some)
    }
}

fn parse_millis(flag: &str, value: &str) -> Result<Duration, CliError> {
    parse_value(flag, value).map(Duration::from_millis)
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
        quotas: args.quotas.clone(),
        active_statements: args.active_statements,
        round_trip: args.round_trip,
        statement_time: args.statement_time,
        isolation: args.isolation,
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
    println!(
        "control API: {control_url} (POST /fault, GET /metrics, GET /operations, GET /quotas, GET /latency)"
    );
    println!("{}", describe_strictness(args));
    wait_for_stop_signal().await;
    standin.shutdown().await;
    Ok(())
}

/// One line that says how AWS-like this stand-in is, for the person who started it.
fn describe_strictness(args: &Args) -> String {
    let quotas = match &args.quotas {
        None => "off".to_owned(),
        Some(quotas) => quotas
            .iter()
            .map(|(operation, quota)| format!("{operation} {quota}"))
            .collect::<Vec<_>>()
            .join(", "),
    };
    let active = args
        .active_statements
        .map_or_else(|| "off".to_owned(), |limit| limit.to_string());
    format!(
        "quotas (per second/burst): {quotas}; active statements {active}; round trip {} ms; statement time {} ms; isolation {}",
        args.round_trip.as_millis(),
        args.statement_time.as_millis(),
        args.isolation
    )
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
        StandInError::Database { source, context } if context == CONNECTING => {
            RunError::NoPostgres {
                reason: source.to_string(),
            }
        }
        other => RunError::StandIn(other),
    }
}

/// The context of the one database error that means PostgreSQL is not there at all.
const CONNECTING: &str = "connecting to PostgreSQL";

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
    fn aws_quotas_serializable_and_no_latency_by_default() {
        let args = parse(&[], &[DB]).unwrap();
        assert_eq!(args.quotas, Some(Quotas::aws()));
        assert_eq!(args.active_statements, Some(AWS_ACTIVE_STATEMENTS));
        assert_eq!(args.isolation, Isolation::Serializable);
        assert_eq!(
            (args.round_trip, args.statement_time),
            (Duration::ZERO, Duration::ZERO)
        );
    }

    #[test]
    fn strictness_comes_from_the_environment_and_flags_win() {
        let env = [
            DB,
            ("REDSHIFT_LOCAL_QUOTAS", "off"),
            ("REDSHIFT_LOCAL_ACTIVE_STATEMENTS", "off"),
            ("REDSHIFT_LOCAL_ROUND_TRIP_MS", "10"),
            ("REDSHIFT_LOCAL_STATEMENT_MS", "150"),
            ("REDSHIFT_LOCAL_ISOLATION", "snapshot"),
        ];
        let args = parse(&[], &env).unwrap();
        assert_eq!(args.quotas, None);
        assert_eq!(args.active_statements, None);
        assert_eq!(args.round_trip, Duration::from_millis(10));
        assert_eq!(args.statement_time, Duration::from_millis(150));
        assert_eq!(args.isolation, Isolation::Snapshot);
        let args = parse(
            &[
                "--quotas",
                "aws",
                "--isolation=serializable",
                "--statement-ms=0",
                "--active-statements=2",
            ],
            &env,
        )
        .unwrap();
        assert_eq!(args.quotas, Some(Quotas::aws()));
        assert_eq!(args.active_statements, Some(2));
        assert_eq!(args.isolation, Isolation::Serializable);
        assert_eq!(args.statement_time, Duration::ZERO);
    }

    #[test]
    fn quota_specs_change_aws_figures_or_start_from_none() {
        let changed = parse(
            &["--quotas=ExecuteStatement=5/10,CancelStatement=off"],
            &[DB],
        )
        .unwrap()
        .quotas
        .unwrap();
        let five = Quota {
            per_second: 5,
            burst: 10,
        };
        assert_eq!(changed.get("ExecuteStatement"), Some(five));
        assert_eq!(changed.get("CancelStatement"), None);
        assert_eq!(
            changed.get("DescribeStatement"),
            Some(Quota::per_second(100))
        );
        let only = parse(&["--quotas", "off,DescribeStatement=7"], &[DB])
            .unwrap()
            .quotas
            .unwrap();
        assert_eq!(only.iter().count(), 1);
        let typo = parse(&["--quotas=ExecuteStatment=5"], &[DB]).unwrap_err();
        assert!(
            typo.to_string().contains("\"ExecuteStatment\" is not"),
            "{typo}"
        );
        let no_burst = parse(&["--quotas=ExecuteStatement=5/0"], &[DB]).unwrap_err();
        assert!(
            no_burst.to_string().contains("burst of 0 admits no call"),
            "{no_burst}"
        );
        assert!(parse(&["--isolation", "read committed"], &[DB]).is_err());
        assert!(parse(&["--active-statements", "many"], &[DB]).is_err());
        assert!(parse(&["--round-trip-ms", "-1"], &[DB]).is_err());
    }

    #[test]
    fn help_shows_each_strictness_setting_with_its_variable_and_default() {
        let help = usage();
        for setting in STRICTNESS {
            let option = format!("{} {}", setting.flag, setting.value);
            let line = help
                .lines()
                .find(|line| line.trim_start().starts_with(&option))
                .unwrap_or_else(|| panic!("{option} in {help}"));
            let expected = format!("[env: {}] [default: {}]", setting.variable, setting.default);
            assert!(line.ends_with(&expected), "{line}");
        }
        // The documented default is the one the parser uses.
        assert_eq!(parse_quotas(QUOTAS.default).unwrap(), Some(Quotas::aws()));
        assert_eq!(
            parse_limit(ACTIVE_STATEMENTS.flag, ACTIVE_STATEMENTS.default).unwrap(),
            Some(AWS_ACTIVE_STATEMENTS)
        );
        assert_eq!(
            ISOLATION.default.parse::<Isolation>(),
            Ok(Isolation::default())
        );
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
