//! `template.yaml` watches what the code really puts: every metric that its alarms and its
//! dashboard read from the service's namespace is one that `call_history::metrics` puts, with the
//! dimension the code uses; and the alarms keep the shape that makes them mean what they say
//! (README, Monitoring). CloudFormation's short tags (`!Ref`, `!Sub`, `!If`, ...) parse as tagged
//! YAML values.

use std::collections::BTreeSet;

use call_history::metrics::{names, FUNCTION_NAME_DIMENSION};
use serde_json::Value as Json;
use serde_norway::{Mapping, Value};

/// Every metric the code puts in the service's namespace.
const PUT_BY_THE_CODE: [&str; 7] = [
    names::DATABASE_SOURCE,
    names::FALLBACK_EVENTS,
    names::FORCED_FALLBACK_EVENTS,
    names::RECOVERY_EVENTS,
    names::FALLBACK_DURATION,
    names::FALLBACK_ELAPSED,
    names::REJECTED_WRITES,
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
    assert!(alarms.len() >= 2, "the two alarms are there");
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
    let json = serde_json::from_str(&body).expect("the dashboard body is JSON");
    (body, json)
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
        ["${FallbackTooLongAlarm.Arn}", "${FlappingAlarm.Arn}"]
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
