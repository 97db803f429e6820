//! Configuration, read once at start from the environment into one typed value.
//!
//! A bad or half configuration never stops the service: it is reported once, in words, and the
//! service serves from SQLite. [`Config::from_lookup`] takes any variable source so that tests
//! can build configurations without touching the process environment.

use std::fmt;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use crate::store::sqlite::Seed;

/// Default probe interval while on SQLite, as in the guide.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(30);
/// Default overall deadline of one Redshift operation: well under API Gateway's 30 s.
pub const DEFAULT_REDSHIFT_TIMEOUT: Duration = Duration::from_millis(5_000);
/// While on SQLite, the running fallback duration is reported at most this often.
pub const DEFAULT_METRICS_HEARTBEAT: Duration = Duration::from_secs(60);

/// How the replica is kept, from the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicaSettings {
    /// Reads are answered locally while the last pull is at most this old. Zero: every read is
    /// a Redshift statement, and no replica is kept.
    pub max_staleness: Duration,
    /// The most calls the window holds: the newest.
    pub window_calls: u32,
    /// How far before the previous pull's warehouse clock an incremental pull starts.
    pub look_back: Duration,
    /// How often the whole window is pulled again.
    pub full_pull_every: Duration,
}

pub const DEFAULT_MAX_STALENESS: Duration = Duration::from_millis(1_000);
pub const DEFAULT_WINDOW_CALLS: u32 = 5_000;
pub const DEFAULT_LOOK_BACK: Duration = Duration::from_secs(10);
pub const DEFAULT_FULL_PULL_EVERY: Duration = Duration::from_secs(600);

impl Default for ReplicaSettings {
    fn default() -> Self {
        ReplicaSettings {
            max_staleness: DEFAULT_MAX_STALENESS,
            window_calls: DEFAULT_WINDOW_CALLS,
            look_back: DEFAULT_LOOK_BACK,
            full_pull_every: DEFAULT_FULL_PULL_EVERY,
        }
    }
}

impl ReplicaSettings {
    /// True when reads are answered from the replica at all.
    pub fn enabled(&self) -> bool {
        !self.max_staleness.is_zero()
    }
}

/// Probes at least once a day: a longer interval is a mistake, not a setting.
const CHECK_INTERVAL_SECS: RangeInclusive<u64> = 1..=86_400;
/// API Gateway ends an integration after 30 s (29 s for REST APIs); a request may take the
/// deadline plus a little, so the deadline stays well below that.
pub const REDSHIFT_TIMEOUT_MS: RangeInclusive<u64> = 100..=25_000;
const HEARTBEAT_SECS: RangeInclusive<u64> = 1..=3_600;
/// The replica's staleness bound: zero sends every read to Redshift; ten minutes at most.
pub const READ_MAX_STALENESS_MS: RangeInclusive<u64> = 0..=600_000;
pub const REPLICA_WINDOW_CALLS: RangeInclusive<u64> = 100..=100_000;
pub const REPLICA_LOOK_BACK_SECS: RangeInclusive<u64> = 1..=3_600;
pub const REPLICA_FULL_PULL_SECS: RangeInclusive<u64> = 1..=86_400;
/// In Lambda, the work after each answer (metrics, replay, a pull ahead) is billed: bounded.
pub const POST_ANSWER_BUDGET_MS: RangeInclusive<u64> = 0..=10_000;
pub const DEFAULT_POST_ANSWER_BUDGET: Duration = Duration::from_millis(500);
const PORTS: RangeInclusive<u64> = 1..=65_535;
pub const DEFAULT_METRICS_NAMESPACE: &str = "CallHistory";

/// Where the Redshift Data API sends statements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedshiftTarget {
    /// A provisioned cluster, by identifier.
    Cluster(String),
    /// A Redshift Serverless workgroup, by name.
    Workgroup(String),
}

/// How the Data API authenticates to the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedshiftAuth {
    /// Credentials kept in Secrets Manager.
    SecretArn(String),
    /// IAM temporary credentials for this database user.
    DbUser(String),
    /// Serverless only: IAM identity of the caller maps to a database user.
    Iam,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedshiftConfig {
    pub target: RedshiftTarget,
    pub database: String,
    pub auth: RedshiftAuth,
    /// Region derived from `REDSHIFT_HOST`, used when no AWS region is configured.
    pub region_hint: Option<String>,
}

#[derive(Clone)]
pub struct Config {
    /// `None` when Redshift is not configured (or configured badly): SQLite is then primary.
    pub redshift: Option<RedshiftConfig>,
    /// What is missing when Redshift is half configured (`REDSHIFT_DATABASE is missing`).
    pub redshift_incomplete: Option<String>,
    /// How the local replica of Redshift is kept.
    pub replica: ReplicaSettings,
    /// In Lambda, the longest the work after an answer may keep the environment awake.
    pub post_answer_budget: Duration,
    /// What a new backup file starts with (`SQLITE_SEED`): the sample calls for a local demo,
    /// the shipped snapshot of the warehouse otherwise.
    pub sqlite_seed: Seed,
    pub check_interval: Duration,
    pub redshift_timeout: Duration,
    /// How often the running fallback duration is put to CloudWatch while on SQLite.
    pub metrics_heartbeat: Duration,
    pub sqlite_path: PathBuf,
    /// The SQLite file is shared by several execution environments (on EFS): rollback journal
    /// instead of WAL, and a lease for replay. `SQLITE_SHARED`, by default true under `/mnt/`.
    pub sqlite_shared: bool,
    pub metrics_namespace: String,
    pub admin_token: Option<String>,
    /// A Secrets Manager secret holding the admin token, read once at cold start; used instead
    /// of `admin_token` when set.
    pub admin_token_secret_arn: Option<String>,
    pub force_sqlite: bool,
    /// True inside AWS Lambda (the runtime API is set).
    pub in_lambda: bool,
    pub port: u16,
    /// Tells functions apart in CloudWatch.
    pub function_name: String,
}

/// Hand-written so that the admin token can never reach a log line through `{:?}`.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("redshift", &self.redshift)
            .field("redshift_incomplete", &self.redshift_incomplete)
            .field("replica", &self.replica)
            .field("post_answer_budget", &self.post_answer_budget)
            .field("sqlite_seed", &self.sqlite_seed)
            .field("check_interval", &self.check_interval)
            .field("redshift_timeout", &self.redshift_timeout)
            .field("metrics_heartbeat", &self.metrics_heartbeat)
            .field("sqlite_path", &self.sqlite_path)
            .field("sqlite_shared", &self.sqlite_shared)
            .field("metrics_namespace", &self.metrics_namespace)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .field("admin_token_secret_arn", &self.admin_token_secret_arn)
            .field("force_sqlite", &self.force_sqlite)
            .field("in_lambda", &self.in_lambda)
            .field("port", &self.port)
            .field("function_name", &self.function_name)
            .finish()
    }
}

/// A configuration mistake, in words, reported once at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem(pub String);

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> (Config, Vec<ConfigProblem>) {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration from any source of variables; empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> (Config, Vec<ConfigProblem>) {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let mut problems = Vec::new();

        let in_lambda = get("AWS_LAMBDA_RUNTIME_API").is_some();
        let (redshift, redshift_incomplete) = match read_redshift(&get, &mut problems) {
            Ok(redshift) => (redshift, None),
            Err(half) => {
                problems.push(ConfigProblem(format!(
                    "Redshift is half configured: {}; serving from SQLite",
                    half.what_is_missing()
                )));
                (None, Some(half.what_is_missing()))
            }
        };
        let replica = read_replica(&get, &mut problems);
        let post_answer_budget = read_number(
            &get,
            "POST_ANSWER_BUDGET_MS",
            POST_ANSWER_BUDGET_MS,
            &mut problems,
        )
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_POST_ANSWER_BUDGET);
        let check_interval = read_number(
            &get,
            "REDSHIFT_CHECK_INTERVAL_SECS",
            CHECK_INTERVAL_SECS,
            &mut problems,
        )
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_CHECK_INTERVAL);
        let redshift_timeout = read_number(
            &get,
            "REDSHIFT_TIMEOUT_MS",
            REDSHIFT_TIMEOUT_MS,
            &mut problems,
        )
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_REDSHIFT_TIMEOUT);
        let metrics_heartbeat = read_number(
            &get,
            "METRICS_HEARTBEAT_SECS",
            HEARTBEAT_SECS,
            &mut problems,
        )
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_METRICS_HEARTBEAT);
        let port = read_number(&get, "PORT", PORTS, &mut problems)
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(8000);
        let force_sqlite = read_bool(&get, "FORCE_SQLITE", false, &mut problems);
        let sqlite_path = get("SQLITE_PATH").map(PathBuf::from).unwrap_or_else(|| {
            // /var/task is read-only in Lambda; /tmp is the only writable place.
            if in_lambda {
                PathBuf::from("/tmp/local_crm.db")
            } else {
                PathBuf::from("./local_crm.db")
            }
        });

        // Sample calls only where they help: a local demo without Redshift. A deployed backup,
        // or one beside a warehouse, must never show calls the warehouse never held.
        let default_seed = match redshift.is_none() && !in_lambda {
            true => Seed::Sample,
            false => Seed::Snapshot,
        };
        let sqlite_seed = match get("SQLITE_SEED")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None => default_seed,
            Some("sample") => Seed::Sample,
            Some("snapshot") => Seed::Snapshot,
            Some(other) => {
                problems.push(ConfigProblem(format!(
                    "SQLITE_SEED must be sample or snapshot, not {other:?}; using the default"
                )));
                default_seed
            }
        };

        // Lambda mounts file systems under /mnt: a file there outlives environments and is
        // shared by them.
        let on_mount = sqlite_path.starts_with("/mnt");
        let sqlite_shared = read_bool(&get, "SQLITE_SHARED", on_mount, &mut problems);
        let admin_token_secret_arn = get("ADMIN_TOKEN_SECRET_ARN");
        if admin_token_secret_arn.is_some() && get("ADMIN_TOKEN").is_some() {
            problems.push(ConfigProblem(
                "ADMIN_TOKEN and ADMIN_TOKEN_SECRET_ARN are both set; the secret's token is used"
                    .into(),
            ));
        }

        let config = Config {
            redshift,
            redshift_incomplete,
            replica,
            post_answer_budget,
            sqlite_seed,
            check_interval,
            redshift_timeout,
            metrics_heartbeat,
            sqlite_path,
            sqlite_shared,
            metrics_namespace: get("METRICS_NAMESPACE")
                .unwrap_or_else(|| DEFAULT_METRICS_NAMESPACE.to_string()),
            admin_token: get("ADMIN_TOKEN"),
            admin_token_secret_arn,
            force_sqlite,
            in_lambda,
            port,
            function_name: get("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|| "local".to_string()),
        };
        (config, problems)
    }
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`); anything else is reported and `default` used.
fn read_bool(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: bool,
    problems: &mut Vec<ConfigProblem>,
) -> bool {
    match get(name).map(|v| v.to_ascii_lowercase()) {
        None => default,
        Some(v) if ["true", "1", "yes"].contains(&v.as_str()) => true,
        Some(v) if ["false", "0", "no"].contains(&v.as_str()) => false,
        Some(v) => {
            problems.push(ConfigProblem(format!(
                "{name} must be true or false, not {v:?}; treating it as {default}"
            )));
            default
        }
    }
}

/// A whole number within `range`; anything else is reported and the default used.
fn read_number(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    range: RangeInclusive<u64>,
    problems: &mut Vec<ConfigProblem>,
) -> Option<u64> {
    let raw = get(name)?;
    match raw.parse::<u64>() {
        Ok(n) if range.contains(&n) => Some(n),
        _ => {
            problems.push(ConfigProblem(format!(
                "{name} must be a whole number from {} to {}, not {raw:?}; using the default",
                range.start(),
                range.end()
            )));
            None
        }
    }
}

/// Part of the Redshift configuration is set, not all it needs.
struct HalfConfigured {
    /// The variables of which one is missing.
    missing: &'static str,
    /// Why, when it is not plain.
    because: &'static str,
}

impl HalfConfigured {
    /// For the status and the start-up line: `REDSHIFT_DATABASE is missing`.
    fn what_is_missing(&self) -> String {
        format!("{} is missing{}", self.missing, self.because)
    }
}

/// The replica's settings; each out of range is reported and its default used.
fn read_replica(
    get: &impl Fn(&str) -> Option<String>,
    problems: &mut Vec<ConfigProblem>,
) -> ReplicaSettings {
    let defaults = ReplicaSettings::default();
    let mut number = |name, range| read_number(get, name, range, problems);
    ReplicaSettings {
        max_staleness: number("READ_MAX_STALENESS_MS", READ_MAX_STALENESS_MS)
            .map_or(defaults.max_staleness, Duration::from_millis),
        window_calls: number("REPLICA_WINDOW_CALLS", REPLICA_WINDOW_CALLS)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(defaults.window_calls),
        look_back: number("REPLICA_LOOK_BACK_SECS", REPLICA_LOOK_BACK_SECS)
            .map_or(defaults.look_back, Duration::from_secs),
        full_pull_every: number("REPLICA_FULL_PULL_SECS", REPLICA_FULL_PULL_SECS)
            .map_or(defaults.full_pull_every, Duration::from_secs),
    }
}

/// Reads the Redshift part: `None` (SQLite primary) when nothing is set, or when it cannot be
/// used (with a problem); [`HalfConfigured`] when only part of it is set.
fn read_redshift(
    get: &impl Fn(&str) -> Option<String>,
    problems: &mut Vec<ConfigProblem>,
) -> Result<Option<RedshiftConfig>, HalfConfigured> {
    let host = get("REDSHIFT_HOST");
    let from_host = host.as_deref().and_then(parse_host);
    if let (Some(h), None) = (&host, &from_host) {
        problems.push(ConfigProblem(format!(
            "REDSHIFT_HOST {h:?} is not a Redshift endpoint (<cluster>.<id>.<region>.redshift.amazonaws.com \
             or <workgroup>.<account>.<region>.redshift-serverless.amazonaws.com)"
        )));
    }
    if get("REDSHIFT_PASSWORD").is_some() {
        problems.push(ConfigProblem(
            "REDSHIFT_PASSWORD is ignored: the Redshift Data API cannot use a password; \
             set REDSHIFT_SECRET_ARN (Secrets Manager) or REDSHIFT_DB_USER (IAM) instead"
                .to_string(),
        ));
    }

    let cluster = get("REDSHIFT_CLUSTER_ID");
    let workgroup = get("REDSHIFT_WORKGROUP");
    let target = match (cluster, workgroup) {
        (Some(_), Some(_)) => {
            problems.push(ConfigProblem(
                "set REDSHIFT_CLUSTER_ID or REDSHIFT_WORKGROUP, not both; Redshift is disabled"
                    .to_string(),
            ));
            return Ok(None);
        }
        (Some(c), None) => Some(RedshiftTarget::Cluster(c)),
        (None, Some(w)) => Some(RedshiftTarget::Workgroup(w)),
        (None, None) => from_host.as_ref().map(|(t, _)| t.clone()),
    };
    let database = get("REDSHIFT_DATABASE");
    let secret = get("REDSHIFT_SECRET_ARN");
    let db_user = get("REDSHIFT_DB_USER").or_else(|| get("REDSHIFT_USER"));

    let anything_set =
        target.is_some() || database.is_some() || secret.is_some() || db_user.is_some();
    if !anything_set {
        return Ok(None);
    }
    let Some(target) = target else {
        return Err(HalfConfigured {
            missing: "REDSHIFT_CLUSTER_ID, REDSHIFT_WORKGROUP or REDSHIFT_HOST",
            because: "",
        });
    };
    let Some(database) = database else {
        return Err(HalfConfigured {
            missing: "REDSHIFT_DATABASE",
            because: "",
        });
    };
    let auth = match (secret, db_user, &target) {
        (Some(s), _, _) => RedshiftAuth::SecretArn(s),
        (None, Some(u), _) => RedshiftAuth::DbUser(u),
        (None, None, RedshiftTarget::Workgroup(_)) => RedshiftAuth::Iam,
        (None, None, RedshiftTarget::Cluster(_)) => {
            return Err(HalfConfigured {
                missing: "REDSHIFT_SECRET_ARN or REDSHIFT_DB_USER",
                because: " (a cluster needs one)",
            })
        }
    };
    Ok(Some(RedshiftConfig {
        target,
        database,
        auth,
        region_hint: from_host.and_then(|(_, region)| region),
    }))
}

/// Derives the cluster or workgroup (and the region) from a Redshift endpoint host name.
fn parse_host(host: &str) -> Option<(RedshiftTarget, Option<String>)> {
    let host = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
    let labels: Vec<&str> = host.split('.').collect();
    let first = labels.first().filter(|l| !l.is_empty())?.to_string();
    if host.ends_with(".redshift-serverless.amazonaws.com") && labels.len() >= 6 {
        Some((
            RedshiftTarget::Workgroup(first),
            Some(labels[2].to_string()),
        ))
    } else if host.ends_with(".redshift.amazonaws.com") && labels.len() >= 6 {
        Some((RedshiftTarget::Cluster(first), Some(labels[2].to_string())))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(vars: &[(&str, &str)]) -> (Config, Vec<ConfigProblem>) {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn nothing_set_means_sqlite_primary_with_defaults() {
        let (config, problems) = load(&[]);
        assert!(config.redshift.is_none());
        assert!(problems.is_empty());
        assert_eq!(config.check_interval, DEFAULT_CHECK_INTERVAL);
        assert_eq!(config.sqlite_path, PathBuf::from("./local_crm.db"));
        assert_eq!(config.port, 8000);
    }

    #[test]
    fn a_file_on_a_mount_is_shared_unless_told_otherwise() {
        let (config, _) = load(&[("SQLITE_PATH", "/mnt/calls/local_crm.db")]);
        assert!(config.sqlite_shared);
        let (config, _) = load(&[
            ("SQLITE_PATH", "/mnt/calls/local_crm.db"),
            ("SQLITE_SHARED", "false"),
        ]);
        assert!(!config.sqlite_shared);
        let (config, _) = load(&[("SQLITE_SHARED", "true")]);
        assert!(config.sqlite_shared);
        let (config, problems) = load(&[("SQLITE_SHARED", "sometimes")]);
        assert!(!config.sqlite_shared);
        assert!(problems[0]
            .0
            .starts_with("SQLITE_SHARED must be true or false"));
    }

    #[test]
    fn lambda_defaults_to_tmp() {
        let (config, _) = load(&[("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")]);
        assert!(config.in_lambda);
        assert_eq!(config.sqlite_path, PathBuf::from("/tmp/local_crm.db"));
    }

    #[test]
    fn guide_variables_are_understood_and_password_ignored() {
        let (config, problems) = load(&[
            (
                "REDSHIFT_HOST",
                "crm-cluster.abc123xyz.eu-west-1.redshift.amazonaws.com",
            ),
            ("REDSHIFT_PORT", "5439"),
            ("REDSHIFT_DATABASE", "crm_db"),
            ("REDSHIFT_USER", "admin"),
            ("REDSHIFT_PASSWORD", "hunter2-secret"),
        ]);
        let redshift = config.redshift.expect("configured");
        assert_eq!(
            redshift.target,
            RedshiftTarget::Cluster("crm-cluster".into())
        );
        assert_eq!(redshift.auth, RedshiftAuth::DbUser("admin".into()));
        assert_eq!(redshift.region_hint.as_deref(), Some("eu-west-1"));
        assert_eq!(problems.len(), 1);
        assert!(problems[0].0.contains("REDSHIFT_PASSWORD is ignored"));
        assert!(!problems[0].0.contains("hunter2"));
    }

    #[test]
    fn serverless_host_gives_workgroup_with_iam() {
        let (config, problems) = load(&[
            (
                "REDSHIFT_HOST",
                "analytics.123456789012.us-east-1.redshift-serverless.amazonaws.com",
            ),
            ("REDSHIFT_DATABASE", "dev"),
        ]);
        let redshift = config.redshift.expect("configured");
        assert_eq!(
            redshift.target,
            RedshiftTarget::Workgroup("analytics".into())
        );
        assert_eq!(redshift.auth, RedshiftAuth::Iam);
        assert!(problems.is_empty());
    }

    #[test]
    fn half_configuration_is_reported_and_disables_redshift() {
        let (config, problems) = load(&[("REDSHIFT_CLUSTER_ID", "crm")]);
        assert!(config.redshift.is_none());
        assert!(problems[0].0.contains("REDSHIFT_DATABASE is missing"));

        let (config, problems) =
            load(&[("REDSHIFT_CLUSTER_ID", "crm"), ("REDSHIFT_DATABASE", "db")]);
        assert!(config.redshift.is_none());
        assert!(problems[0]
            .0
            .contains("REDSHIFT_SECRET_ARN or REDSHIFT_DB_USER"));
    }

    #[test]
    fn bad_numbers_are_reported_and_defaulted() {
        let (config, problems) = load(&[
            ("REDSHIFT_CHECK_INTERVAL_SECS", "soon"),
            ("FORCE_SQLITE", "maybe"),
        ]);
        assert_eq!(config.check_interval, DEFAULT_CHECK_INTERVAL);
        assert!(!config.force_sqlite);
        assert_eq!(problems.len(), 2);
        assert!(problems[0]
            .0
            .contains("REDSHIFT_CHECK_INTERVAL_SECS must be a whole number"));
    }

    #[test]
    fn numbers_out_of_range_are_reported_and_defaulted() {
        for (name, value) in [
            ("REDSHIFT_CHECK_INTERVAL_SECS", "0"),
            ("REDSHIFT_CHECK_INTERVAL_SECS", "18446744073709551615"),
            ("REDSHIFT_CHECK_INTERVAL_SECS", "99999999999999999999999"),
            ("REDSHIFT_TIMEOUT_MS", "0"),
            ("REDSHIFT_TIMEOUT_MS", "30000"),
            ("METRICS_HEARTBEAT_SECS", "0"),
            ("PORT", "70000"),
        ] {
            let (config, problems) = load(&[(name, value)]);
            assert_eq!(problems.len(), 1, "{name}={value}");
            assert!(problems[0].0.starts_with(name), "{}", problems[0].0);
            assert!(problems[0].0.contains("from "), "{}", problems[0].0);
            assert_eq!(config.check_interval, DEFAULT_CHECK_INTERVAL);
            assert_eq!(config.redshift_timeout, DEFAULT_REDSHIFT_TIMEOUT);
            assert_eq!(config.metrics_heartbeat, DEFAULT_METRICS_HEARTBEAT);
            assert_eq!(config.port, 8000);
        }
    }

    #[test]
    fn debug_output_redacts_admin_token() {
        let (config, _) = load(&[("ADMIN_TOKEN", "s3cr3t-token")]);
        let printed = format!("{config:?}");
        assert!(!printed.contains("s3cr3t-token"));
        assert!(printed.contains("<redacted>"));
    }
}
