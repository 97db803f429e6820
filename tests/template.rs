//! `template.yaml` watches what the code really puts: every metric that its alarms and its
//! dashboard read from the service's namespace is one that `call_history::metrics` puts, with the
//! dimension the code uses; and the alarms keep the shape that makes them mean what they say
//! (README, Monitoring). Every route but the health check has an authorizer unless the operator
//! chose a public API, as the function itself expects (`call_history::api::access`); the
//! parameters allow what the function and the README say. CloudFormation's short tags (`!Ref`,
//! `!Sub`, `!If`, ...) parse as tagged YAML values; [`Deployment`] evaluates the few
//! CloudFormation functions the template uses, for given parameter values.

use std::collections::{BTreeMap, BTreeSet};

use call_history::api::access::{Access, RouteClass};
use call_history::metrics::{names, FUNCTION_NAME_DIMENSION};
use serde_json::Value as Json;
use serde_norway::{Mapping, Value};

/// Every metric the code puts in the service's namespace.
const PUT_BY_THE_CODE: [&str; 11] = [
    names::DATABASE_SOURCE,
    names::FALLBACK_EVENTS,
    names::FORCED_FALLBACK_EVENTS,
    names::RECOVERY_EVENTS,
    names::FALLBACK_DURATION,
    names::FALLBACK_ELAPSED,
    names::REJECTED_WRITES,
    names::DATA_API_THROTTLES,
    names::REPLICA_AGE,
    names::WRITES_LOST_AT_SHUTDOWN,
    names::CONFLICTING_WRITES,
];

/// The function resource: its name is the value of the metrics' dimension.
const FUNCTION: &str = "CallHistoryFunction";
const HTTP_API: &str = "CallHistoryHttpApi";

fn template() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("template.yaml");
    let text = std::fs::read_to_string(path).expect("template.yaml readable");
    serde_norway::from_str(&text).expect("template.yaml is YAML")
}

fn get<'a>(value: &'a Value, key: &str) -> &'a Value {
    value
        .get(key)
        .unwrap_or_else(|| panic!("no {key} in {value:?}"))
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    get(value, key)
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string: {value:?}"))
}

/// A CloudFormation function call, in short form (`!Ref X`) or long form (`{Ref: X}`):
/// its name without `Fn::` and its argument.
fn intrinsic(value: &Value) -> Option<(String, &Value)> {
    match value {
        Value::Tagged(tagged) => Some((
            tagged.tag.to_string().trim_start_matches('!').to_string(),
            &tagged.value,
        )),
        Value::Mapping(map) if map.len() == 1 => {
            let (key, argument) = map.iter().next()?;
            let key = key.as_str()?;
            (key == "Ref" || key.starts_with("Fn::"))
                .then(|| (key.trim_start_matches("Fn::").to_string(), argument))
        }
        _ => None,
    }
}

/// The logical id in `!Ref id`, if `value` is one.
fn reference(value: &Value) -> Option<&str> {
    match intrinsic(value)? {
        (name, Value::String(id)) if name == "Ref" => Some(id.as_str()),
        _ => None,
    }
}

/// The template string of a `!Sub` (either `!Sub text` or `!Sub [text, variables]`).
fn sub_text(value: &Value) -> &str {
    let (name, argument) = intrinsic(value).expect("an intrinsic function");
    assert_eq!(name, "Sub", "expected !Sub, got {name}");
    match argument {
        Value::String(text) => text,
        Value::Sequence(items) => items[0].as_str().expect("a !Sub template"),
        other => panic!("unexpected !Sub argument {other:?}"),
    }
}

fn resources(template: &Value) -> &Mapping {
    get(template, "Resources").as_mapping().expect("Resources")
}

fn resource<'a>(template: &'a Value, id: &str) -> &'a Value {
    get(get(get(template, "Resources"), id), "Properties")
}

fn resources_of_type<'a>(template: &'a Value, kind: &str) -> Vec<(&'a str, &'a Value)> {
    resources(template)
        .iter()
        .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some(kind))
        .map(|(id, r)| (id.as_str().unwrap(), get(r, "Properties")))
        .collect()
}

/// A metric an alarm reads: from its top-level fields or from each `MetricStat` of `Metrics`.
struct Watched<'a> {
    namespace: &'a Value,
    name: &'a str,
    dimensions: Vec<(&'a str, &'a Value)>,
}

fn watched<'a>(metric: &'a Value, name_key: &str) -> Watched<'a> {
    let dimensions = metric
        .get("Dimensions")
        .and_then(Value::as_sequence)
        .map(|list| {
            list.iter()
                .map(|d| (text(d, "Name"), get(d, "Value")))
                .collect()
        })
        .unwrap_or_default();
    Watched {
        namespace: get(metric, "Namespace"),
        name: text(metric, name_key),
        dimensions,
    }
}

fn alarm_metrics(alarm: &Value) -> Vec<Watched<'_>> {
    match alarm.get("Metrics").and_then(Value::as_sequence) {
        Some(queries) => queries
            .iter()
            .filter_map(|q| q.get("MetricStat"))
            .map(|stat| watched(get(stat, "Metric"), "MetricName"))
            .collect(),
        None => vec![watched(alarm, "MetricName")],
    }
}

#[test]
fn every_alarm_watches_a_metric_the_code_puts_with_its_dimension() {
    let template = template();
    let alarms = resources_of_type(&template, "AWS::CloudWatch::Alarm");
    assert!(alarms.len() >= 4, "the four alarms are there");
    for (id, alarm) in alarms {
        let metrics = alarm_metrics(alarm);
        assert!(!metrics.is_empty(), "{id} watches no metric");
        for metric in metrics {
            assert_eq!(
                reference(metric.namespace),
                Some("MetricsNamespace"),
                "{id}: the service's own namespace"
            );
            assert!(
                PUT_BY_THE_CODE.contains(&metric.name),
                "{id} watches {}, which the code never puts",
                metric.name
            );
            let dimensions: Vec<_> = metric
                .dimensions
                .iter()
                .map(|(name, value)| (*name, reference(value)))
                .collect();
            assert_eq!(
                dimensions,
                vec![(FUNCTION_NAME_DIMENSION, Some(FUNCTION))],
                "{id}: {} has exactly the code's dimension",
                metric.name
            );
        }
    }
}

/// One graphed metric of a dashboard widget: `[namespace, name, dim, value, ..., {options}]`.
struct Graphed {
    namespace: String,
    name: String,
    dimensions: Vec<(String, String)>,
    options: Json,
}

fn dashboard_body(template: &Value) -> (String, Json) {
    let (_, dashboard) = resources_of_type(template, "AWS::CloudWatch::Dashboard")
        .into_iter()
        .next()
        .expect("a dashboard");
    let body = sub_text(get(dashboard, "DashboardBody")).to_string();
    let json = serde_json::from_str(&numbers_for_bare_variables(&body))
        .expect("the dashboard body is JSON");
    (body, json)
}

/// The body with each `${Variable}` outside a JSON string (a number parameter, such as an
/// annotation's value) replaced by 0, so that it parses as the JSON it becomes once deployed.
fn numbers_for_bare_variables(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let (mut in_string, mut escaped) = (false, false);
    let mut rest = body;
    while let Some(c) = rest.chars().next() {
        if !in_string && rest.starts_with("${") {
            let end = rest.find('}').expect("closing brace");
            out.push('0');
            rest = &rest[end + 1..];
            continue;
        }
        match (in_string, escaped, c) {
            (true, false, '\\') => escaped = true,
            (_, false, '"') => in_string = !in_string,
            _ => escaped = false,
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn graphed(body: &Json) -> Vec<Graphed> {
    let mut all = Vec::new();
    for widget in body["widgets"].as_array().expect("widgets") {
        let Some(rows) = widget["properties"]["metrics"].as_array() else {
            continue;
        };
        for row in rows {
            let row = row.as_array().expect("a metric row is an array");
            let (fields, options) = match row.last() {
                Some(Json::Object(_)) => (&row[..row.len() - 1], row[row.len() - 1].clone()),
                _ => (&row[..], Json::Null),
            };
            let fields: Vec<String> = fields
                .iter()
                .map(|f| f.as_str().expect("a string").to_string())
                .collect();
            assert!(
                !fields.iter().any(|f| f == "."),
                "write metric rows out in full, so that they can be checked"
            );
            assert!(
                fields.len() >= 2 && fields.len().is_multiple_of(2),
                "{fields:?}: namespace, name, then dimension pairs"
            );
            all.push(Graphed {
                namespace: fields[0].clone(),
                name: fields[1].clone(),
                dimensions: fields[2..]
                    .chunks(2)
                    .map(|pair| (pair[0].clone(), pair[1].clone()))
                    .collect(),
                options,
            });
        }
    }
    all
}

#[test]
fn the_dashboard_graphs_every_metric_the_code_puts_and_only_those() {
    let template = template();
    let (_, body) = dashboard_body(&template);
    let function = format!("${{{FUNCTION}}}");
    let mut seen = BTreeSet::new();
    for metric in graphed(&body) {
        match metric.namespace.as_str() {
            "${MetricsNamespace}" => {
                assert!(
                    PUT_BY_THE_CODE.contains(&metric.name.as_str()),
                    "the dashboard graphs {}, which the code never puts",
                    metric.name
                );
                assert_eq!(
                    metric.dimensions,
                    vec![(FUNCTION_NAME_DIMENSION.to_string(), function.clone())],
                    "{}",
                    metric.name
                );
                seen.insert(metric.name.clone());
            }
            "AWS/Lambda" => assert_eq!(
                metric.dimensions,
                vec![("FunctionName".to_string(), function.clone())]
            ),
            "AWS/ApiGateway" => assert_eq!(
                metric.dimensions,
                vec![("ApiId".to_string(), format!("${{{HTTP_API}}}"))]
            ),
            other => panic!("unexpected namespace {other}"),
        }
    }
    let all: BTreeSet<String> = PUT_BY_THE_CODE.iter().map(|n| n.to_string()).collect();
    assert_eq!(seen, all, "every metric the code puts is graphed");
}

#[test]
fn the_dashboard_shows_the_function_and_the_api() {
    let template = template();
    let (_, body) = dashboard_body(&template);
    let metrics = graphed(&body);
    let shows = |namespace: &str, name: &str, stat: Option<&str>| {
        metrics.iter().any(|m| {
            m.namespace == namespace
                && m.name == name
                && stat.is_none_or(|s| m.options["stat"] == s)
        })
    };
    assert!(shows("AWS/Lambda", "Errors", None));
    assert!(shows("AWS/Lambda", "Throttles", None));
    assert!(shows("AWS/Lambda", "Duration", Some("p99")));
    assert!(shows("AWS/ApiGateway", "5xx", None));
    assert!(shows("AWS/ApiGateway", "Latency", None));
    let alarms: Vec<&str> = body["widgets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["type"] == "alarm")
        .flat_map(|w| w["properties"]["alarms"].as_array().unwrap())
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        alarms,
        [
            "${FallbackTooLongAlarm.Arn}",
            "${FlappingAlarm.Arn}",
            "${ReplicaTooOldAlarm.Arn}",
            "${WritesLostAtShutdownAlarm.Arn}"
        ]
    );
}

#[test]
fn every_variable_of_the_dashboard_exists() {
    let template = template();
    let (body, _) = dashboard_body(&template);
    let parameters = get(&template, "Parameters").as_mapping().unwrap();
    let known = |name: &str| {
        let id = name.split('.').next().unwrap();
        name.starts_with("AWS::")
            || parameters.contains_key(id)
            || resources(&template).contains_key(id)
    };
    let mut rest = body.as_str();
    while let Some(start) = rest.find("${") {
        let end = start + rest[start..].find('}').expect("closing brace");
        let name = &rest[start + 2..end];
        assert!(known(name), "${{{name}}} names nothing in the template");
        rest = &rest[end..];
    }
}

/// The query of `alarm` with this id.
fn query<'a>(alarm: &'a Value, id: &str) -> &'a Value {
    get(alarm, "Metrics")
        .as_sequence()
        .unwrap()
        .iter()
        .find(|q| q.get("Id").and_then(Value::as_str) == Some(id))
        .unwrap_or_else(|| panic!("no query {id}"))
}

#[test]
fn the_fallback_alarm_follows_the_newest_report_and_ignores_silence() {
    let template = template();
    let alarm = resource(&template, "FallbackTooLongAlarm");
    // Reports come only with requests: a minute without one must neither clear nor re-fire it.
    assert_eq!(text(alarm, "TreatMissingData"), "ignore");
    assert_eq!(get(alarm, "EvaluationPeriods").as_u64(), Some(1));
    assert_eq!(get(alarm, "DatapointsToAlarm").as_u64(), Some(1));
    assert_eq!(get(alarm, "Threshold").as_f64(), Some(1.0));
    assert_eq!(
        text(alarm, "ComparisonOperator"),
        "GreaterThanOrEqualToThreshold"
    );

    let returned: Vec<&Value> = get(alarm, "Metrics")
        .as_sequence()
        .unwrap()
        .iter()
        .filter(|q| q.get("ReturnData").and_then(Value::as_bool) == Some(true))
        .collect();
    assert_eq!(returned.len(), 1, "one series decides");
    assert_eq!(
        text(returned[0], "Expression"),
        "IF(shortest <= 0, 0, toolong)",
        "a return to Redshift (a reported 0) wins within its minute"
    );
    assert_eq!(
        text(query(alarm, "toolong"), "Expression"),
        "IF(longest >= 300, 1)",
        "5 minutes; no data point for minutes with younger fallbacks only"
    );
    for (id, stat) in [("longest", "Maximum"), ("shortest", "Minimum")] {
        let metric_stat = get(query(alarm, id), "MetricStat");
        assert_eq!(text(metric_stat, "Stat"), stat, "{id}");
        assert_eq!(get(metric_stat, "Period").as_u64(), Some(60), "{id}");
        assert_eq!(
            text(get(metric_stat, "Metric"), "MetricName"),
            names::FALLBACK_ELAPSED
        );
    }
}

#[test]
fn the_flapping_alarm_counts_minutes_with_a_fallback_not_environments() {
    let template = template();
    let alarm = resource(&template, "FlappingAlarm");
    assert_eq!(text(alarm, "MetricName"), names::FALLBACK_EVENTS);
    assert_eq!(text(alarm, "Statistic"), "Sum");
    // Each one-minute data point breaches when it holds any fallback, however many environments
    // reported one; the alarm counts such minutes within the last 15.
    assert_eq!(get(alarm, "Period").as_u64(), Some(60));
    assert_eq!(get(alarm, "Threshold").as_f64(), Some(1.0));
    assert_eq!(
        text(alarm, "ComparisonOperator"),
        "GreaterThanOrEqualToThreshold"
    );
    assert_eq!(get(alarm, "EvaluationPeriods").as_u64(), Some(15));
    assert_eq!(
        reference(get(alarm, "DatapointsToAlarm")),
        Some("FlappingThreshold")
    );
    assert_eq!(text(alarm, "TreatMissingData"), "notBreaching");
    let threshold = get(get(&template, "Parameters"), "FlappingThreshold");
    assert!(get(threshold, "MaxValue").as_u64().unwrap() <= 15);
    assert!(get(threshold, "MinValue").as_u64().unwrap() >= 2);
}

#[test]
fn every_route_of_the_api_is_routed_to_the_function() {
    let template = template();
    let routes: BTreeSet<String> = get(&template, "Resources")
        .as_mapping()
        .unwrap()
        .values()
        .filter(|r| r.get("Type").and_then(Value::as_str) == Some("AWS::ApiGatewayV2::Route"))
        .map(|r| text(get(r, "Properties"), "RouteKey").to_string())
        .collect();
    let document: Json = serde_json::from_str(call_history::api::openapi::document_json()).unwrap();
    for (path, operations) in document["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            let key = format!("{} {path}", method.to_ascii_uppercase());
            assert!(routes.contains(&key), "{key} has a route in the template");
        }
    }
    assert!(routes.contains("GET /"), "the status page");
    assert!(
        routes.contains("$default"),
        "unknown paths reach the function's JSON 404"
    );
}

#[test]
fn the_shared_journal_is_mounted_where_the_function_keeps_it_in_shared_mode() {
    let template = template();
    let function = resource(&template, FUNCTION);
    let mounts = intrinsic(get(function, "FileSystemConfigs")).expect("an !If on the parameter");
    let mount_path = text(&mounts.1[1][0], "LocalMountPath");
    let variables = get(get(function, "Environment"), "Variables");
    let (_, path_choice) = intrinsic(get(variables, "SQLITE_PATH")).expect("an !If");
    let shared_path = path_choice[1].as_str().unwrap();
    assert!(
        shared_path.starts_with(&format!("{mount_path}/")),
        "{shared_path} on {mount_path}"
    );
    assert_eq!(path_choice[2].as_str(), Some("/tmp/local_crm.db"));
    // The function itself treats a file there as shared, even without SQLITE_SHARED.
    let (config, _) = call_history::config::Config::from_lookup(|name| {
        (name == "SQLITE_PATH").then(|| shared_path.to_string())
    });
    assert!(config.sqlite_shared);
    let (_, shared_choice) = intrinsic(get(variables, "SQLITE_SHARED")).expect("an !If");
    assert_eq!(shared_choice[1].as_str(), Some("true"));
    // Mounting needs a VPC, and the role may mount only through the access point.
    assert!(intrinsic(get(function, "VpcConfig")).is_some());
    let role = serde_norway::to_string(get(
        resource(&template, "CallHistoryFunctionRole"),
        "Policies",
    ))
    .unwrap();
    assert!(role.contains("elasticfilesystem:ClientMount"));
    assert!(role.contains("elasticfilesystem:AccessPointArn"));
}

#[test]
fn the_redshift_deadline_fits_the_function_timeout() {
    let template = template();
    let parameter = get(get(&template, "Parameters"), "RedshiftTimeoutMs");
    let (min, max) = (
        get(parameter, "MinValue").as_u64().unwrap(),
        get(parameter, "MaxValue").as_u64().unwrap(),
    );
    // The template allows exactly what the function accepts.
    let accepted = call_history::config::REDSHIFT_TIMEOUT_MS;
    assert_eq!((min, max), (*accepted.start(), *accepted.end()));
    // A request costs at most the deadline and the answer margin; the function must outlast it.
    let timeout_ms = get(resource(&template, FUNCTION), "Timeout")
        .as_u64()
        .unwrap()
        * 1000;
    let answer_margin = call_history::store::failover::ANSWER_MARGIN.as_millis() as u64;
    assert!(
        max + answer_margin < timeout_ms,
        "{max} ms + {answer_margin} ms within the function's {timeout_ms} ms"
    );
}

#[test]
fn the_replica_alarm_needs_five_reporting_minutes_above_its_threshold() {
    let template = template();
    let alarm = resource(&template, "ReplicaTooOldAlarm");
    assert_eq!(text(alarm, "MetricName"), names::REPLICA_AGE);
    // The oldest replica any environment reports, minute by minute.
    assert_eq!(text(alarm, "Statistic"), "Maximum");
    assert_eq!(get(alarm, "Period").as_u64(), Some(60));
    assert_eq!(
        reference(get(alarm, "Threshold")),
        Some("ReplicaAgeAlarmSeconds")
    );
    assert_eq!(text(alarm, "ComparisonOperator"), "GreaterThanThreshold");
    // "Stays above": every one of 5 minutes, not one spike.
    assert_eq!(get(alarm, "EvaluationPeriods").as_u64(), Some(5));
    assert_eq!(get(alarm, "DatapointsToAlarm").as_u64(), Some(5));
    // Ages are reported only with requests: a quiet minute neither fires nor clears it.
    assert_eq!(text(alarm, "TreatMissingData"), "ignore");
    let parameter = get(get(&template, "Parameters"), "ReplicaAgeAlarmSeconds");
    assert_eq!(get(parameter, "Default").as_u64(), Some(300));
}

#[test]
fn any_write_lost_at_shutdown_fires_its_alarm() {
    let template = template();
    let alarm = resource(&template, "WritesLostAtShutdownAlarm");
    assert_eq!(text(alarm, "MetricName"), names::WRITES_LOST_AT_SHUTDOWN);
    assert_eq!(text(alarm, "Statistic"), "Sum");
    assert_eq!(get(alarm, "Threshold").as_f64(), Some(1.0));
    assert_eq!(
        text(alarm, "ComparisonOperator"),
        "GreaterThanOrEqualToThreshold"
    );
    assert_eq!(get(alarm, "EvaluationPeriods").as_u64(), Some(1));
    // Put only when something is lost: a minute without it is a good minute.
    assert_eq!(text(alarm, "TreatMissingData"), "notBreaching");
}

// ---- the template as deployed with given parameters ----------------------------------------

/// The template with parameter values (its defaults, some replaced): evaluates conditions,
/// `!If`, `!Ref` and `!Join` as CloudFormation would.
struct Deployment<'a> {
    template: &'a Value,
    parameters: BTreeMap<String, Value>,
}

impl<'a> Deployment<'a> {
    fn new(template: &'a Value, overrides: &[(&str, &str)]) -> Self {
        let declared = get(template, "Parameters").as_mapping().unwrap();
        let mut parameters = BTreeMap::new();
        for (name, declaration) in declared {
            let name = name.as_str().unwrap().to_string();
            let value = overrides
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
                .or_else(|| match declaration.get("Default") {
                    Some(Value::String(text)) => Some(text.clone()),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("{name} has no value"));
            let value = match text(declaration, "Type") {
                "CommaDelimitedList" => Value::Sequence(
                    value
                        .split(',')
                        .map(|item| Value::String(item.to_string()))
                        .collect(),
                ),
                _ => Value::String(value),
            };
            parameters.insert(name, value);
        }
        for (name, _) in overrides {
            assert!(parameters.contains_key(*name), "no parameter {name}");
        }
        Deployment {
            template,
            parameters,
        }
    }

    fn condition(&self, name: &str) -> bool {
        let conditions = get(self.template, "Conditions");
        self.truth(get(conditions, name))
    }

    fn truth(&self, value: &Value) -> bool {
        let (function, argument) = intrinsic(value).unwrap_or_else(|| panic!("{value:?}"));
        let items = || argument.as_sequence().expect("a list of arguments");
        match function.as_str() {
            "Equals" => self.resolve(&items()[0]) == self.resolve(&items()[1]),
            "Not" => !self.truth(&items()[0]),
            "And" => items().iter().all(|c| self.truth(c)),
            "Or" => items().iter().any(|c| self.truth(c)),
            "Condition" => self.condition(argument.as_str().unwrap()),
            other => panic!("condition function {other}"),
        }
    }

    /// The value as deployed; `None` for `AWS::NoValue`.
    fn resolve(&self, value: &Value) -> Option<Value> {
        let Some((function, argument)) = intrinsic(value) else {
            return Some(match value {
                Value::Sequence(items) => {
                    Value::Sequence(items.iter().filter_map(|i| self.resolve(i)).collect())
                }
                other => other.clone(),
            });
        };
        match function.as_str() {
            "Ref" => {
                let name = argument.as_str().unwrap();
                if name == "AWS::NoValue" {
                    return None;
                }
                Some(
                    self.parameters
                        .get(name)
                        .cloned()
                        .unwrap_or_else(|| Value::String(format!("<{name}>"))),
                )
            }
            "If" => {
                let items = argument.as_sequence().unwrap();
                let branch = if self.condition(items[0].as_str().unwrap()) {
                    &items[1]
                } else {
                    &items[2]
                };
                self.resolve(branch)
            }
            "Join" => {
                let items = argument.as_sequence().unwrap();
                let separator = items[0].as_str().unwrap();
                let Some(Value::Sequence(parts)) = self.resolve(&items[1]) else {
                    panic!("!Join of a list");
                };
                let parts: Vec<&str> = parts.iter().map(|p| p.as_str().unwrap()).collect();
                Some(Value::String(parts.join(separator)))
            }
            // Attributes and substitutions are the deployment's own; their text stands in.
            _ => Some(value.clone()),
        }
    }

    /// A resource's property as deployed.
    fn property(&self, id: &str, name: &str) -> Option<Value> {
        resource(self.template, id)
            .get(name)
            .and_then(|value| self.resolve(value))
    }

    /// The rules' assertions that fail, by their descriptions.
    fn broken_rules(&self) -> Vec<String> {
        let rules = get(self.template, "Rules").as_mapping().unwrap();
        let mut broken = Vec::new();
        for (_, rule) in rules {
            if let Some(condition) = rule.get("RuleCondition") {
                if !self.truth(condition) {
                    continue;
                }
            }
            for assertion in get(rule, "Assertions").as_sequence().unwrap() {
                if !self.truth(get(assertion, "Assert")) {
                    broken.push(text(assertion, "AssertDescription").to_string());
                }
            }
        }
        broken
    }
}

const JWT_SETUP: [(&str, &str); 3] = [
    ("ApiAuth", "JWT"),
    (
        "JwtIssuer",
        "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example",
    ),
    ("JwtAudience", "3n4b5urk1ft4fl3mg5e62d9ado"),
];

/// The access mode the function reads from the environment the template gives it.
fn function_access(deployment: &Deployment) -> Access {
    Access::from_lookup(|name| function_variable(deployment, name))
        .expect("the template gives the function a mode it reads")
}

/// One of the function's environment variables as deployed.
fn function_variable(deployment: &Deployment, name: &str) -> Option<String> {
    let variables = get(
        get(resource(deployment.template, FUNCTION), "Environment"),
        "Variables",
    );
    variables
        .get(name)
        .and_then(|value| deployment.resolve(value))
        .and_then(|value| value.as_str().map(str::to_string))
}

/// The admin token guards a public API's admin endpoints only: under IAM and JWT the function
/// neither gets the token nor may read its secret (nor spends its cold start reading it).
#[test]
fn the_admin_token_reaches_the_function_of_a_public_api_only() {
    let template = template();
    let secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:admin-AbCdEf";
    let mut public_setup = vec![("ApiAuth", "PUBLIC"), ("AdminTokenSecretArn", secret)];
    let public = Deployment::new(&template, &public_setup);
    let mut jwt_setup = JWT_SETUP.to_vec();
    jwt_setup.push(("AdminTokenSecretArn", secret));
    let closed = [
        Deployment::new(&template, &[("AdminTokenSecretArn", secret)]),
        Deployment::new(&template, &jwt_setup),
    ];
    let reads_secret = |deployment: &Deployment| {
        deployment
            .property("CallHistoryFunctionRole", "Policies")
            .and_then(|policies| policies.as_sequence().cloned())
            .unwrap_or_default()
            .iter()
            .any(|policy| policy["PolicyName"].as_str() == Some("admin-token-secret"))
    };
    assert_eq!(
        function_variable(&public, "ADMIN_TOKEN_SECRET_ARN").as_deref(),
        Some(secret)
    );
    assert!(reads_secret(&public));
    for deployment in &closed {
        assert_eq!(
            function_variable(deployment, "ADMIN_TOKEN_SECRET_ARN").as_deref(),
            Some("")
        );
        assert!(!reads_secret(deployment));
    }
    public_setup[1] = ("AdminToken", "a-token-of-twenty-chars-or-more");
    let with_token = Deployment::new(&template, &public_setup);
    assert_eq!(
        function_variable(&with_token, "ADMIN_TOKEN").as_deref(),
        Some("a-token-of-twenty-chars-or-more")
    );
    let iam_token = Deployment::new(
        &template,
        &[("AdminToken", "a-token-of-twenty-chars-or-more")],
    );
    assert_eq!(
        function_variable(&iam_token, "ADMIN_TOKEN").as_deref(),
        Some("")
    );
}

/// Every route of the API: its logical id, path (none for `$default`) and class.
fn routes(template: &Value) -> Vec<(String, String, RouteClass)> {
    resources_of_type(template, "AWS::ApiGatewayV2::Route")
        .into_iter()
        .map(|(id, route)| {
            let key = text(route, "RouteKey").to_string();
            let class = match key.split_once(' ') {
                Some((_, path)) => RouteClass::of(path),
                None => RouteClass::Data,
            };
            (id.to_string(), key, class)
        })
        .collect()
}

#[test]
fn every_route_but_the_health_check_has_an_authorizer_unless_the_api_is_public() {
    let template = template();
    let iam = Deployment::new(&template, &[]);
    let jwt = Deployment::new(&template, &JWT_SETUP);
    let public = Deployment::new(&template, &[("ApiAuth", "PUBLIC")]);
    assert_eq!(
        iam.parameters["ApiAuth"].as_str(),
        Some("IAM"),
        "closed by default, with no setup"
    );
    let routes = routes(&template);
    assert!(routes.len() >= 10, "{routes:?}");
    let authorization = |deployment: &Deployment, id: &str| {
        deployment
            .property(id, "AuthorizationType")
            .and_then(|t| t.as_str().map(str::to_string))
            .unwrap_or_else(|| "NONE".to_string())
    };
    for (id, key, class) in &routes {
        let open_to_all = key == "GET /db/healthz";
        let shell = key == "GET /";
        assert_eq!(open_to_all, *class == RouteClass::Health, "{key}");
        assert_eq!(
            authorization(&iam, id),
            if open_to_all { "NONE" } else { "AWS_IAM" },
            "{key} under IAM"
        );
        assert_eq!(
            authorization(&jwt, id),
            if open_to_all || shell { "NONE" } else { "JWT" },
            "{key} under JWT: only the health check and the data-free shell are open"
        );
        assert_eq!(authorization(&public, id), "NONE", "{key} when public");
        // The function expects of each route what the gateway demands.
        for deployment in [&iam, &jwt, &public] {
            let access = function_access(deployment);
            assert_eq!(
                access.gateway_authorizes(*class),
                authorization(deployment, id) != "NONE",
                "{key} under {access:?}"
            );
        }
        if authorization(&jwt, id) == "JWT" {
            let authorizer = jwt.property(id, "AuthorizerId").expect("an authorizer");
            assert_eq!(authorizer.as_str(), Some("<JwtAuthorizer>"), "{key}");
        } else {
            assert_eq!(jwt.property(id, "AuthorizerId"), None, "{key}");
        }
    }
}

#[test]
fn under_jwt_the_admin_routes_ask_the_admin_scope_and_the_data_routes_the_data_scope() {
    let template = template();
    let mut with_data_scope = JWT_SETUP.to_vec();
    with_data_scope.push(("JwtDataScope", "call-history/read"));
    let jwt = Deployment::new(&template, &JWT_SETUP);
    let scoped = Deployment::new(&template, &with_data_scope);
    let iam = Deployment::new(&template, &[]);
    let scopes = |deployment: &Deployment, id: &str| {
        deployment.property(id, "AuthorizationScopes").map(|list| {
            list.as_sequence()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
    };
    let admin_scope = jwt.parameters["JwtAdminScope"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        function_access(&jwt),
        Access::Jwt {
            admin_scope: admin_scope.as_str().into()
        },
        "the function checks the scope the gateway asks"
    );
    for (id, key, class) in routes(&template) {
        match class {
            RouteClass::Admin => {
                assert_eq!(scopes(&jwt, &id), Some(vec![admin_scope.clone()]), "{key}");
                assert_eq!(
                    scopes(&scoped, &id),
                    Some(vec![admin_scope.clone()]),
                    "{key}"
                );
            }
            RouteClass::Data => {
                assert_eq!(scopes(&jwt, &id), None, "{key}: any valid token");
                assert_eq!(
                    scopes(&scoped, &id),
                    Some(vec!["call-history/read".to_string()]),
                    "{key}"
                );
            }
            RouteClass::Health | RouteClass::Shell => {
                assert_eq!(scopes(&scoped, &id), None, "{key}")
            }
        }
        assert_eq!(scopes(&iam, &id), None, "{key}: IAM takes no scopes");
    }
    // The authorizer exists only under JWT, and reads the bearer token the page sends.
    let authorizer = &get(get(&template, "Resources"), "JwtAuthorizer");
    assert_eq!(text(authorizer, "Condition"), "UseJwt");
    assert!(jwt.condition("UseJwt") && !iam.condition("UseJwt"));
    assert_eq!(
        jwt.property("JwtAuthorizer", "IdentitySource"),
        Some(Value::Sequence(vec![Value::String(
            "$request.header.Authorization".into()
        )]))
    );
}

#[test]
fn the_rules_refuse_a_jwt_api_without_its_issuer_or_audience() {
    let template = template();
    assert!(Deployment::new(&template, &[]).broken_rules().is_empty());
    assert!(Deployment::new(&template, &JWT_SETUP)
        .broken_rules()
        .is_empty());
    let no_issuer = Deployment::new(&template, &[JWT_SETUP[0], JWT_SETUP[2]]);
    assert_eq!(
        no_issuer.broken_rules().len(),
        1,
        "{:?}",
        no_issuer.broken_rules()
    );
    let no_audience = Deployment::new(&template, &[JWT_SETUP[0], JWT_SETUP[1]]);
    assert_eq!(
        no_audience.broken_rules().len(),
        1,
        "{:?}",
        no_audience.broken_rules()
    );
    assert!(Deployment::new(&template, &[("ApiAuth", "PUBLIC")])
        .broken_rules()
        .is_empty());
}

#[test]
fn a_public_api_is_chosen_explicitly_and_warned_about() {
    let template = template();
    let parameter = get(get(&template, "Parameters"), "ApiAuth");
    let allowed: Vec<&str> = get(parameter, "AllowedValues")
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(allowed, ["IAM", "JWT", "PUBLIC"]);
    assert_ne!(text(parameter, "Default"), "PUBLIC");
    assert!(text(parameter, "Description").contains("PUBLIC - WARNING"));
}

// ---- parameters, the function and the README agree ---------------------------------------

/// The README's configuration table row of `variable`: its meaning and default columns.
fn readme_row(readme: &str, variable: &str) -> Option<(String, String)> {
    let start = format!("| `{variable}` |");
    let line = readme.lines().find(|line| line.starts_with(&start))?;
    let cells: Vec<&str> = line.split('|').map(str::trim).collect();
    Some((cells[2].to_string(), cells[3].to_string()))
}

fn number(text: &str) -> u64 {
    text.replace(',', "")
        .parse()
        .unwrap_or_else(|_| panic!("a number: {text}"))
}

/// "A to B" in a README cell, as numbers.
fn readme_range(meaning: &str) -> Option<(u64, u64)> {
    let words: Vec<&str> = meaning.split_whitespace().collect();
    words.windows(3).find_map(|w| {
        let digits = |s: &str| {
            let s = s.trim_end_matches([',', ';', ')']);
            (!s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || c == ',')).then(|| number(s))
        };
        match (digits(w[0]), w[1], digits(w[2])) {
            (Some(low), "to", Some(high)) => Some((low, high)),
            _ => None,
        }
    })
}

/// Whether the function reads `variable` and takes `value`: `Some(true)` taken, `Some(false)`
/// refused (a configuration problem names it), `None` when it does not read the variable at all.
fn config_takes(variable: &str, value: &str) -> Option<bool> {
    let problems_with = |value: &str| {
        call_history::config::Config::from_lookup(|name| {
            (name == variable).then(|| value.to_string())
        })
        .1
        .iter()
        .filter(|p| p.0.contains(variable))
        .count()
    };
    let reads = problems_with("not-a-number") > 0;
    reads.then(|| problems_with(value) == 0)
}

#[test]
fn number_parameters_allow_what_the_readme_and_the_function_say() {
    let template = template();
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .unwrap();
    let variables = get(
        get(resource(&template, FUNCTION), "Environment"),
        "Variables",
    )
    .as_mapping()
    .unwrap();
    let parameters = get(&template, "Parameters");
    let mut checked = Vec::new();
    for (variable, value) in variables {
        let variable = variable.as_str().unwrap();
        let Some(name) = reference(value) else {
            continue;
        };
        let parameter = get(parameters, name);
        if text(parameter, "Type") != "Number" {
            continue;
        }
        let (min, max, default) = (
            get(parameter, "MinValue").as_u64().unwrap(),
            get(parameter, "MaxValue").as_u64().unwrap(),
            get(parameter, "Default").as_u64().unwrap(),
        );
        let (meaning, readme_default) = readme_row(&readme, variable).unwrap_or_else(|| {
            panic!("{variable} ({name}) is in the README's configuration table")
        });
        assert_eq!(
            readme_range(&meaning),
            Some((min, max)),
            "{variable}: the README says {meaning:?}, the template {min} to {max}"
        );
        assert_eq!(number(&readme_default), default, "{variable}: default");
        // Where the function reads the variable, it takes exactly the template's range.
        if let Some(true) = config_takes(variable, &min.to_string()) {
            assert_eq!(
                config_takes(variable, &max.to_string()),
                Some(true),
                "{variable} {max}"
            );
            assert_eq!(
                config_takes(variable, &default.to_string()),
                Some(true),
                "{variable}"
            );
            assert_eq!(
                config_takes(variable, &(max + 1).to_string()),
                Some(false),
                "{variable} {}",
                max + 1
            );
            if min > 0 {
                assert_eq!(
                    config_takes(variable, &(min - 1).to_string()),
                    Some(false),
                    "{variable}"
                );
            }
        } else if let Some(false) = config_takes(variable, &min.to_string()) {
            panic!("{variable}: the function refuses the template's minimum {min}");
        }
        checked.push(variable.to_string());
    }
    for expected in [
        "REDSHIFT_CHECK_INTERVAL_SECS",
        "REDSHIFT_TIMEOUT_MS",
        "READ_MAX_STALENESS_MS",
        "REPLICA_WINDOW_CALLS",
        "POST_ANSWER_BUDGET_MS",
    ] {
        assert!(
            checked.iter().any(|c| c == expected),
            "{expected} checked: {checked:?}"
        );
    }
}
