//! Redshift's typed result fields read back as calls, and timestamps written for it.

use aws_sdk_redshiftdata::types::Field;
use chrono::{DateTime, NaiveDateTime, Utc};

use crate::store::{Call, StoreError};

/// Redshift TIMESTAMP text, in UTC.
pub fn to_redshift_time(t: &DateTime<Utc>) -> String {
    to_warehouse_time(&t.naive_utc())
}

/// A time of the warehouse's own clock, as TIMESTAMP text.
pub fn to_warehouse_time(t: &NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

fn parse_naive(text: &str) -> Result<NaiveDateTime, StoreError> {
    let trimmed = text.trim_end_matches("+00").trim_end_matches('Z');
    NaiveDateTime::parse_from_str(trimmed, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(trimmed, "%Y-%m-%dT%H:%M:%S%.f"))
        .map_err(|_| StoreError::decode(format!("not a timestamp: {text:?}")))
}

pub fn parse_redshift_time(text: &str) -> Result<DateTime<Utc>, StoreError> {
    parse_naive(text).map(|t| t.and_utc())
}

/// A call from the eight columns of [`super::sql::COLUMNS`].
pub fn call_from_record(record: &[Field]) -> Result<Call, StoreError> {
    let [id, contact_name, account_name, started_at, duration_seconds, outcome, notes, created_at] =
        record
    else {
        return Err(StoreError::decode(format!(
            "expected 8 columns, got {}",
            record.len()
        )));
    };
    Ok(Call {
        id: required_text(id, "id")?,
        contact_name: required_text(contact_name, "contact_name")?,
        account_name: optional_text(account_name, "account_name")?,
        started_at: parse_redshift_time(&required_text(started_at, "started_at")?)?,
        duration_seconds: optional_long(duration_seconds, "duration_seconds")?,
        outcome: optional_text(outcome, "outcome")?,
        notes: optional_text(notes, "notes")?,
        created_at: parse_redshift_time(&required_text(created_at, "created_at")?)?,
    })
}

/// One row of a pull ([`super::sql::pull`]): a call with its ingestion time (none for a row
/// stored before the warehouse kept one), or the row that carries the warehouse's clock.
#[derive(Debug)]
pub enum PulledRow {
    Call(Call, Option<NaiveDateTime>),
    /// The warehouse's clock when the pull's statement started.
    Clock(NaiveDateTime),
}

pub fn pulled_row(record: &[Field]) -> Result<PulledRow, StoreError> {
    let Some((ingested_at, call)) = record.split_last() else {
        return Err(StoreError::decode("a pulled row without columns"));
    };
    if matches!(call.first(), Some(Field::IsNull(true))) {
        let clock = required_text(ingested_at, "ingested_at")?;
        return parse_naive(&clock).map(PulledRow::Clock);
    }
    let ingested_at = optional_text(ingested_at, "ingested_at")?
        .map(|text| parse_naive(&text))
        .transpose()?;
    Ok(PulledRow::Call(call_from_record(call)?, ingested_at))
}

fn optional_text(field: &Field, column: &str) -> Result<Option<String>, StoreError> {
    match field {
        Field::IsNull(true) => Ok(None),
        Field::StringValue(s) => Ok(Some(s.clone())),
        other => Err(StoreError::decode(format!(
            "{column}: expected text, got {other:?}"
        ))),
    }
}

pub fn required_text(field: &Field, column: &str) -> Result<String, StoreError> {
    optional_text(field, column)?.ok_or_else(|| StoreError::decode(format!("{column} is null")))
}

pub fn optional_long(field: &Field, column: &str) -> Result<Option<i64>, StoreError> {
    match field {
        Field::IsNull(true) => Ok(None),
        Field::LongValue(n) => Ok(Some(*n)),
        // NUMERIC (and COUNT(*) on some paths) comes back as text.
        Field::StringValue(s) => s
            .parse()
            .map(Some)
            .map_err(|_| StoreError::decode(format!("{column}: not an integer: {s:?}"))),
        other => Err(StoreError::decode(format!(
            "{column}: expected an integer, got {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ErrorKind;
    use chrono::TimeZone;

    #[test]
    fn redshift_timestamps_round_trip() {
        let t = Utc.with_ymd_and_hms(2024, 11, 4, 9, 0, 0).unwrap();
        assert_eq!(to_redshift_time(&t), "2024-11-04 09:00:00.000000");
        assert_eq!(parse_redshift_time("2024-11-04 09:00:00").unwrap(), t);
        assert_eq!(parse_redshift_time("2024-11-04 09:00:00+00").unwrap(), t);
        assert!(parse_redshift_time("yesterday").is_err());
        let first = Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(to_redshift_time(&first), "0001-01-01 00:00:00.000000");
    }

    fn record() -> Vec<Field> {
        vec![
            Field::StringValue("abc".into()),
            Field::StringValue("Ada".into()),
            Field::IsNull(true),
            Field::StringValue("2024-11-04 09:00:00.5".into()),
            Field::LongValue(42),
            Field::StringValue(String::new()),
            Field::IsNull(true),
            Field::StringValue("2024-11-04 09:01:00".into()),
        ]
    }

    #[test]
    fn records_decode_with_nulls_and_reject_wrong_types() {
        let call = call_from_record(&record()).unwrap();
        assert_eq!(call.account_name, None);
        assert_eq!(call.outcome.as_deref(), Some(""));
        assert_eq!(call.duration_seconds, Some(42));
        assert_eq!(call.started_at.timestamp_subsec_millis(), 500);

        let mut bad = record();
        bad[4] = Field::BooleanValue(true);
        assert_eq!(call_from_record(&bad).unwrap_err().kind, ErrorKind::Decode);
    }

    #[test]
    fn a_pull_tells_calls_from_the_clock_row() {
        let mut row = record();
        row.push(Field::StringValue("2024-11-04 09:02:00".into()));
        assert!(matches!(pulled_row(&row), Ok(PulledRow::Call(c, Some(_))) if c.id == "abc"));
        let mut clock = vec![Field::IsNull(true); 8];
        clock.push(Field::StringValue("2024-11-04 09:03:00".into()));
        match pulled_row(&clock) {
            Ok(PulledRow::Clock(t)) => {
                assert_eq!(to_warehouse_time(&t), "2024-11-04 09:03:00.000000")
            }
            other => panic!("{other:?}"),
        }
    }
}
