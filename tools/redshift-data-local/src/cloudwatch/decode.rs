//! Decodes a PutMetricData request body (Smithy RPC v2 CBOR, possibly gzipped)
//! into captured metrics.

use std::io::Read;

use ciborium::Value;
use flate2::read::GzDecoder;

use super::{CapturedMetric, StatisticValues};

/// A decompressed body larger than this is refused rather than buffered.
const MAX_DECOMPRESSED_BYTES: u64 = 64 * 1024 * 1024;

/// Why a request body could not be decoded, in the service's error terms.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DecodeError {
    #[error("the request body is not valid gzip or too large: {0}")]
    Gzip(#[source] std::io::Error),
    #[error("the request body is not valid CBOR: {0}")]
    Cbor(String),
    #[error("The parameter {0} is required.")]
    Missing(&'static str),
    #[error("The parameter {0} has an invalid value.")]
    Invalid(&'static str),
}

pub(crate) fn decompress(body: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    GzDecoder::new(body)
        .take(MAX_DECOMPRESSED_BYTES)
        .read_to_end(&mut out)
        .map_err(DecodeError::Gzip)?;
    Ok(out)
}

/// Every datum of the request, each with the request's namespace.
pub(crate) fn put_metric_data(body: &[u8]) -> Result<Vec<CapturedMetric>, DecodeError> {
    let value: Value = ciborium::from_reader(body).map_err(|e| DecodeError::Cbor(e.to_string()))?;
    let request = as_map(&value).ok_or(DecodeError::Invalid("request"))?;
    let namespace = field(request, "Namespace")
        .ok_or(DecodeError::Missing("Namespace"))?
        .as_text()
        .ok_or(DecodeError::Invalid("Namespace"))?;
    let data = field(request, "MetricData")
        .ok_or(DecodeError::Missing("MetricData"))?
        .as_array()
        .ok_or(DecodeError::Invalid("MetricData"))?;
    data.iter().map(|datum| metric(namespace, datum)).collect()
}

fn metric(namespace: &str, datum: &Value) -> Result<CapturedMetric, DecodeError> {
    let datum = as_map(datum).ok_or(DecodeError::Invalid("MetricData"))?;
    let metric_name = field(datum, "MetricName")
        .and_then(Value::as_text)
        .ok_or(DecodeError::Missing("MetricName"))?;
    Ok(CapturedMetric {
        namespace: namespace.to_owned(),
        metric_name: metric_name.to_owned(),
        value: optional(datum, "Value", number)?,
        unit: optional(datum, "Unit", |v| v.as_text().map(str::to_owned))?,
        dimensions: optional(datum, "Dimensions", dimensions)?.unwrap_or_default(),
        timestamp: optional(datum, "Timestamp", timestamp)?,
        values: optional(datum, "Values", numbers)?.unwrap_or_default(),
        counts: optional(datum, "Counts", numbers)?.unwrap_or_default(),
        statistic_values: optional(datum, "StatisticValues", statistic_values)?,
        storage_resolution: optional(datum, "StorageResolution", integer)?,
    })
}

fn as_map(value: &Value) -> Option<&[(Value, Value)]> {
    value.as_map().map(Vec::as_slice)
}

fn field<'a>(map: &'a [(Value, Value)], name: &str) -> Option<&'a Value> {
    map.iter()
        .find(|(key, _)| key.as_text() == Some(name))
        .map(|(_, value)| value)
}

/// An optional member: absent (or null) is `None`, present but malformed is an error.
fn optional<T>(
    map: &[(Value, Value)],
    name: &'static str,
    convert: impl Fn(&Value) -> Option<T>,
) -> Result<Option<T>, DecodeError> {
    match field(map, name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => convert(value).map(Some).ok_or(DecodeError::Invalid(name)),
    }
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Float(f) => Some(*f),
        Value::Integer(i) => Some(i128::from(*i) as f64),
        _ => None,
    }
}

fn integer(value: &Value) -> Option<i64> {
    value.as_integer().and_then(|i| i64::try_from(i).ok())
}

fn numbers(value: &Value) -> Option<Vec<f64>> {
    value.as_array()?.iter().map(number).collect()
}

/// CBOR tag 1: epoch-based date/time.
fn timestamp(value: &Value) -> Option<f64> {
    match value {
        Value::Tag(1, inner) => number(inner),
        other => number(other),
    }
}

fn dimensions(value: &Value) -> Option<Vec<(String, String)>> {
    value
        .as_array()?
        .iter()
        .map(|dimension| {
            let dimension = as_map(dimension)?;
            let name = field(dimension, "Name")?.as_text()?;
            let value = field(dimension, "Value")?.as_text()?;
            Some((name.to_owned(), value.to_owned()))
        })
        .collect()
}

fn statistic_values(value: &Value) -> Option<StatisticValues> {
    let set = as_map(value)?;
    Some(StatisticValues {
        sample_count: number(field(set, "SampleCount")?)?,
        sum: number(field(set, "Sum")?)?,
        minimum: number(field(set, "Minimum")?)?,
        maximum: number(field(set, "Maximum")?)?,
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    fn text(s: &str) -> Value {
        Value::Text(s.to_owned())
    }

    fn cbor(value: &Value) -> Vec<u8> {
        let mut bytes = Vec::new();
        ciborium::into_writer(value, &mut bytes).expect("encode CBOR");
        bytes
    }

    #[test]
    fn decodes_a_gzipped_request() {
        let datum = Value::Map(vec![
            (text("MetricName"), text("DatabaseSource")),
            (text("Value"), Value::Float(2.0)),
            (
                text("Timestamp"),
                Value::Tag(1, Box::new(Value::Float(5.5))),
            ),
        ]);
        let request = Value::Map(vec![
            (text("Namespace"), text("CallHistory")),
            (text("MetricData"), Value::Array(vec![datum])),
        ]);
        let mut gzip = GzEncoder::new(Vec::new(), Compression::default());
        gzip.write_all(&cbor(&request)).expect("compress");
        let body = gzip.finish().expect("compress");

        let metrics = decompress(&body)
            .and_then(|cbor| put_metric_data(&cbor))
            .expect("decode");
        assert_eq!(metrics.len(), 1);
        assert_eq!(metrics[0].namespace, "CallHistory");
        assert_eq!(metrics[0].metric_name, "DatabaseSource");
        assert_eq!(metrics[0].value, Some(2.0));
        assert_eq!(metrics[0].timestamp, Some(5.5));
    }

    #[test]
    fn reports_missing_and_malformed_members() {
        let no_namespace = Value::Map(vec![(text("MetricData"), Value::Array(vec![]))]);
        assert!(matches!(
            put_metric_data(&cbor(&no_namespace)),
            Err(DecodeError::Missing("Namespace"))
        ));
        let bad_value = Value::Map(vec![
            (text("Namespace"), text("N")),
            (
                text("MetricData"),
                Value::Array(vec![Value::Map(vec![
                    (text("MetricName"), text("M")),
                    (text("Value"), text("one")),
                ])]),
            ),
        ]);
        assert!(matches!(
            put_metric_data(&cbor(&bad_value)),
            Err(DecodeError::Invalid("Value"))
        ));
        assert!(matches!(
            put_metric_data(b"\xff\x00"),
            Err(DecodeError::Cbor(_))
        ));
    }
}
