//! How a call lives in a row of the backup, and how rows are read back: timestamps as
//! fixed-width RFC 3339 text (so that ordering the text orders the instants), checked in place
//! when they are in the canonical form, and each call's answer (its JSON) written beside it.

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::types::{FromSqlError, ValueRef};
use rusqlite::{named_params, Row};

use super::COLUMNS;
use crate::store::json::{call_json, CallFields, Text, Timestamp, MICROS_TEXT_LEN};
use crate::store::Call;

/// Writes `call` with `stmt`, whose named parameters are the columns and `:answer`. The answer
/// is written from the timestamps' stored text, so that it is what history would write from
/// the columns.
pub(super) fn execute_insert(
    stmt: &mut rusqlite::CachedStatement<'_>,
    call: &Call,
) -> rusqlite::Result<usize> {
    let started_at = to_db_time(&call.started_at);
    let created_at = to_db_time(&call.created_at);
    let answer = stored_timestamp(&started_at)
        .zip(stored_timestamp(&created_at))
        .and_then(|(started_at, created_at)| {
            call_json(&CallFields {
                started_at,
                created_at,
                ..CallFields::from(call)
            })
        });
    stmt.execute(named_params! {
        ":id": call.id,
        ":contact_name": call.contact_name,
        ":account_name": call.account_name,
        ":started_at": started_at,
        ":duration_seconds": call.duration_seconds,
        ":outcome": call.outcome,
        ":notes": call.notes,
        ":created_at": created_at,
        ":answer": answer,
        ":written_at": chrono::Utc::now().timestamp_millis(),
    })
}

/// Stored timestamp text as history reads it (see [`stored_time`]).
pub(super) fn stored_timestamp(text: &str) -> Option<Timestamp<'_>> {
    match canonical_db_time(text.as_bytes()) {
        Some(canonical) => Some(Timestamp::Micros(canonical)),
        None => from_db_time(0, text).ok().map(Timestamp::Instant),
    }
}

pub(super) fn qualified_columns(alias: &str) -> String {
    COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Fixed-width text, so that SQLite's text ordering is time ordering.
pub fn to_db_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(super) fn from_db_time(index: usize, text: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(
                index,
                rusqlite::types::Type::Text,
                Box::new(e),
            )
        })
}

/// A row of the `calls` columns, in order.
pub(super) fn call_from_row(row: &Row<'_>) -> rusqlite::Result<Call> {
    call_from_columns(row, 0)
}

/// The call in the eight columns from `first` on.
pub(super) fn call_from_columns(row: &Row<'_>, first: usize) -> rusqlite::Result<Call> {
    let fields = stored_call(row, first)?;
    let owned = |text: Text<'_>| text.to_owned_string();
    Ok(Call {
        id: owned(fields.id),
        contact_name: owned(fields.contact_name),
        account_name: fields.account_name.map(owned),
        started_at: instant(first + 3, fields.started_at)?,
        duration_seconds: fields.duration_seconds,
        outcome: fields.outcome.map(owned),
        notes: fields.notes.map(owned),
        created_at: instant(first + 7, fields.created_at)?,
    })
}

/// The eight columns from `first` on, read in place and checked: the rule for which stored rows
/// are calls, whether they are then copied into a [`Call`] or written out as JSON.
#[inline]
pub(super) fn stored_call<'r>(row: &'r Row<'_>, first: usize) -> rusqlite::Result<CallFields<'r>> {
    Ok(CallFields {
        id: column(row, first, text)?,
        contact_name: column(row, first + 1, text)?,
        account_name: column(row, first + 2, text_or_null)?,
        started_at: stored_time(row, first + 3)?,
        duration_seconds: column(row, first + 4, ValueRef::as_i64_or_null)?,
        outcome: column(row, first + 5, text_or_null)?,
        notes: column(row, first + 6, text_or_null)?,
        created_at: stored_time(row, first + 7)?,
    })
}

/// Text, UTF-8: what `String` takes from a column.
#[inline]
fn text<'r>(value: &ValueRef<'r>) -> Result<Text<'r>, FromSqlError> {
    match *value {
        ValueRef::Text(bytes) => Ok(Text::checked(bytes)?),
        _ => Err(FromSqlError::InvalidType),
    }
}

#[inline]
fn text_or_null<'r>(value: &ValueRef<'r>) -> Result<Option<Text<'r>>, FromSqlError> {
    match value {
        ValueRef::Null => Ok(None),
        _ => text(value).map(Some),
    }
}

/// One column, read in place by `read`, with the errors `Row::get` gives for the same types
/// (text must be UTF-8 text, a number an integer; null only where `read` takes it).
#[inline]
fn column<'r, T>(
    row: &'r Row<'_>,
    index: usize,
    read: impl FnOnce(&ValueRef<'r>) -> Result<T, FromSqlError>,
) -> rusqlite::Result<T> {
    let value = row.get_ref(index)?;
    read(&value).map_err(|err| match err {
        FromSqlError::InvalidType => rusqlite::Error::InvalidColumnType(
            index,
            row.as_ref()
                .column_name(index)
                .unwrap_or_default()
                .to_string(),
            value.data_type(),
        ),
        FromSqlError::Utf8Error(err) => rusqlite::Error::Utf8Error(index, err),
        other => {
            rusqlite::Error::FromSqlConversionFailure(index, value.data_type(), Box::new(other))
        }
    })
}

/// A stored timestamp: the canonical text [`to_db_time`] writes is checked in place; any other
/// RFC 3339 text (stored by hand or by an older version) is parsed.
#[inline]
fn stored_time<'r>(row: &'r Row<'_>, index: usize) -> rusqlite::Result<Timestamp<'r>> {
    if let ValueRef::Text(bytes) = row.get_ref(index)? {
        if let Some(canonical) = canonical_db_time(bytes) {
            return Ok(Timestamp::Micros(canonical));
        }
    }
    let text = column(row, index, ValueRef::as_str)?;
    from_db_time(index, text).map(Timestamp::Instant)
}

fn instant(index: usize, t: Timestamp<'_>) -> rusqlite::Result<DateTime<Utc>> {
    match t {
        // Canonical text is ASCII.
        Timestamp::Micros(text) => from_db_time(index, &String::from_utf8_lossy(text.as_slice())),
        Timestamp::Instant(t) => Ok(t),
    }
}

/// The canonical stored form; `d` stands for a digit, every other byte must be itself.
const DB_TIME_FORM: &[u8; MICROS_TEXT_LEN] = b"dddd-dd-ddTdd:dd:dd.ddddddZ";

/// The form as four words of eight bytes, so that a timestamp is checked in a few operations.
const DB_TIME_WORDS: [FormWord; 4] = [
    FormWord::of(0),
    FormWord::of(8),
    FormWord::of(16),
    FormWord::of(MICROS_TEXT_LEN - 8),
];

/// Eight bytes of [`DB_TIME_FORM`] from `at`: which are digits, and what the others must be.
struct FormWord {
    at: usize,
    /// 0xFF where a digit belongs.
    digits: u64,
    /// The other bytes as they must be (0 where a digit belongs).
    fixed: u64,
}

impl FormWord {
    const fn of(at: usize) -> FormWord {
        let mut digits = 0u64;
        let mut fixed = 0u64;
        let mut i = 0;
        while i < 8 {
            let byte = DB_TIME_FORM[at + i];
            if byte == b'd' {
                digits |= 0xFF << (8 * i);
            } else {
                fixed |= (byte as u64) << (8 * i);
            }
            i += 1;
        }
        FormWord { at, digits, fixed }
    }

    /// True when the eight bytes of `word` (little-endian) are in this part of the form.
    fn matches(&self, word: u64) -> bool {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
        // A digit byte minus '0' is 0..=9; bytes outside the digits' places become 0 here.
        let offsets = (word ^ (ONES * u64::from(b'0'))) & self.digits;
        // Adding 127 - 9 sets the high bit of a byte above 9 (or keeps it, `| offsets`); only a
        // byte whose high bit was set can carry into the next, and it already answers yes. So:
        // exactly "some byte is above 9".
        let above_nine = (offsets.wrapping_add(ONES * (127 - 9)) | offsets) & HIGH_BITS;
        above_nine == 0 && word & !self.digits == self.fixed
    }
}

/// The text when it is `YYYY-MM-DDTHH:MM:SS.ffffffZ` naming a real instant (no 30th of
/// February, no hour 24, no leap second): exactly the text that chrono parses to an instant
/// whose RFC 3339 form is this text with its fraction shortened.
#[inline]
fn canonical_db_time(text: &[u8]) -> Option<&[u8; MICROS_TEXT_LEN]> {
    let b = <&[u8; MICROS_TEXT_LEN]>::try_from(text).ok()?;
    // The form, eight bytes at a time (the last word overlaps the third).
    let word = |at: usize| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&b[at..at + 8]);
        u64::from_le_bytes(bytes)
    };
    let in_form = DB_TIME_WORDS
        .iter()
        .fold(true, |ok, form| ok & form.matches(word(form.at)));
    if !in_form {
        return None;
    }
    let number = |from: usize, to: usize| {
        b[from..to]
            .iter()
            .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'))
    };
    let (year, month, day) = (number(0, 4), number(5, 7), number(8, 10));
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => return None,
    };
    let valid = (1..=days_in_month).contains(&day)
        && number(11, 13) < 24
        && number(14, 16) < 60
        && number(17, 19) < 60;
    valid.then_some(b)
}

/// The call, or `None` (logged) for a stored row that cannot be read back: written by hand or
/// by an older version, it is skipped rather than failing the whole answer.
pub(super) fn readable<T>(decoded: rusqlite::Result<T>) -> Option<T> {
    match decoded {
        Ok(call) => Some(call),
        Err(err) => {
            skipped(&err);
            None
        }
    }
}

pub(super) fn skipped(err: &rusqlite::Error) {
    tracing::warn!(error = %err, "Skipped a row of the local backup that cannot be read");
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn canonical_text_is_text_chrono_reads_back_the_same() {
        let mut canonical = 0;
        for year in [0, 1, 4, 100, 400, 1900, 2000, 2023, 2024, 9999] {
            for month in 0..=13 {
                for day in [0, 1, 28, 29, 30, 31, 32] {
                    for (hour, minute, second) in [
                        (0, 0, 0),
                        (23, 59, 59),
                        (24, 0, 0),
                        (0, 60, 0),
                        (23, 59, 60),
                    ] {
                        for fraction in ["000000", "120000", "000001", "999999"] {
                            let text = format!(
                                "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{fraction}Z"
                            );
                            if canonical_db_time(text.as_bytes()).is_none() {
                                continue;
                            }
                            canonical += 1;
                            let read = from_db_time(0, &text)
                                .unwrap_or_else(|err| panic!("{text}: {err}"));
                            assert_eq!(to_db_time(&read), text);
                        }
                    }
                }
            }
        }
        // Each year has 51 valid dates among those days outside February; five of the years are
        // leap years (29 February too). Two valid times, four fractions.
        assert_eq!(canonical, (10 * 51 + 5 * 3 + 5 * 2) * 2 * 4);
        for other in [
            "2024-01-01T10:00:00Z",
            "2024-01-01T10:00:00.000000+00:00",
            "2024-01-01t10:00:00.000000Z",
            "2024-01-01T10:00:00.000000z",
            "2024-01-01 10:00:00.000000Z",
            "2024-01-01T10:00:00.0000000Z",
            "2024-1-01T10:00:00.000000Z",
            "+024-01-01T10:00:00.000000Z",
            "2024-01-01T10:00:00,000000Z",
            "２024-01-01T10:00:00.000000Z",
        ] {
            assert!(canonical_db_time(other.as_bytes()).is_none(), "{other}");
        }
    }

    /// Every byte of a canonical timestamp replaced by every byte value: the quick check says
    /// canonical exactly when chrono reads the text back to the same text (leap seconds aside,
    /// which take the slow way).
    #[test]
    fn the_quick_check_agrees_with_chrono_byte_for_byte() {
        let reads_back = |text: &[u8]| {
            std::str::from_utf8(text)
                .ok()
                .and_then(|text| from_db_time(0, text).ok())
                .is_some_and(|read| to_db_time(&read).as_bytes() == text)
        };
        for valid in [
            *b"2024-02-29T23:59:59.123456Z",
            *b"0000-01-01T00:00:00.000000Z",
            *b"9999-12-31T19:09:09.999999Z",
        ] {
            for at in 0..MICROS_TEXT_LEN {
                for byte in 0..=255u8 {
                    let mut text = valid;
                    text[at] = byte;
                    let leap_second = text[17..19] == *b"60";
                    let quick = canonical_db_time(&text).is_some();
                    assert!(
                        quick == reads_back(&text) || (leap_second && !quick),
                        "{}",
                        String::from_utf8_lossy(&text)
                    );
                }
            }
        }
    }
}
