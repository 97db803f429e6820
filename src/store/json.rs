//! Calls as the JSON the API sends, written straight into one buffer.
//!
//! A history answer is mostly this text, so it is written without building the calls first:
//! the SQLite store hands over each row as borrowed [`CallFields`] (checked, not copied) and the
//! text goes into the answer's own buffer. What comes out is byte for byte what serde_json makes
//! of [`Call`] (its `Serialize` derive): the same fields in the same order, strings escaped the
//! same way, timestamps as [`format_timestamp`] writes them. The tests below hold the two side by
//! side, and `tests/history_bytes.rs` pins whole answers.

use axum::body::Bytes;
use chrono::{DateTime, Utc};

use super::{format_timestamp, Call};

/// One call's fields, borrowed from wherever they are kept (a SQLite row, a [`Call`]).
#[derive(Clone, Copy, Debug)]
pub struct CallFields<'a> {
    pub id: &'a str,
    pub contact_name: &'a str,
    pub account_name: Option<&'a str>,
    pub started_at: Timestamp<'a>,
    pub duration_seconds: Option<i64>,
    pub outcome: Option<&'a str>,
    pub notes: Option<&'a str>,
    pub created_at: Timestamp<'a>,
}

impl<'a> From<&'a Call> for CallFields<'a> {
    fn from(call: &'a Call) -> Self {
        CallFields {
            id: &call.id,
            contact_name: &call.contact_name,
            account_name: call.account_name.as_deref(),
            started_at: Timestamp::Instant(call.started_at),
            duration_seconds: call.duration_seconds,
            outcome: call.outcome.as_deref(),
            notes: call.notes.as_deref(),
            created_at: Timestamp::Instant(call.created_at),
        }
    }
}

/// An instant, as it is at hand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timestamp<'a> {
    /// Text in the local backup's canonical form, `YYYY-MM-DDTHH:MM:SS.ffffffZ`, already known
    /// to name a valid instant: only its fraction needs shortening on the way out.
    Micros(&'a str),
    Instant(DateTime<Utc>),
}

/// Length of [`Timestamp::Micros`] text.
pub const MICROS_TEXT_LEN: usize = 27;

/// Room kept in front of the array for the opening of the object around it (see
/// [`CallsJson::into_document`]), so that wrapping it copies nothing.
const HEADROOM: usize = 16;
/// A typical call takes about 230 bytes of JSON; longer notes just grow the buffer.
const BYTES_PER_CALL: usize = 256;
/// Room for what follows the array (count, source, message).
const TAIL_BYTES: usize = 128;

/// A JSON array of calls, being written.
pub struct CallsJson {
    buf: Vec<u8>,
    count: usize,
}

impl CallsJson {
    /// An empty array, with room for about `calls` calls.
    pub fn with_room_for(calls: usize) -> Self {
        let mut buf =
            Vec::with_capacity(HEADROOM + 2 + calls.saturating_mul(BYTES_PER_CALL) + TAIL_BYTES);
        buf.resize(HEADROOM, b' ');
        buf.push(b'[');
        CallsJson { buf, count: 0 }
    }

    pub fn from_calls(calls: &[Call]) -> Self {
        let mut json = CallsJson::with_room_for(calls.len());
        for call in calls {
            json.push(&CallFields::from(call));
        }
        json
    }

    /// How many calls the array holds.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Appends one call, as serde_json writes a [`Call`].
    pub fn push(&mut self, call: &CallFields<'_>) {
        let out = &mut self.buf;
        out.extend_from_slice(if self.count == 0 { b"{" } else { b",{" });
        out.extend_from_slice(br#""id":"#);
        push_str(out, call.id);
        out.extend_from_slice(br#","contactName":"#);
        push_str(out, call.contact_name);
        out.extend_from_slice(br#","accountName":"#);
        push_opt_str(out, call.account_name);
        out.extend_from_slice(br#","startedAt":"#);
        push_timestamp(out, &call.started_at);
        out.extend_from_slice(br#","durationSeconds":"#);
        match call.duration_seconds {
            Some(seconds) => push_i64(out, seconds),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(br#","outcome":"#);
        push_opt_str(out, call.outcome);
        out.extend_from_slice(br#","notes":"#);
        push_opt_str(out, call.notes);
        out.extend_from_slice(br#","createdAt":"#);
        push_timestamp(out, &call.created_at);
        out.push(b'}');
        self.count += 1;
    }

    /// The whole document: `prefix`, the array, then whatever `rest` writes after it. The
    /// prefix goes into the room kept in front of the array when it fits, so that the calls
    /// are not copied again.
    pub fn into_document(self, prefix: &[u8], rest: impl FnOnce(&mut Vec<u8>)) -> Bytes {
        let mut buf = self.buf;
        buf.push(b']');
        rest(&mut buf);
        match HEADROOM.checked_sub(prefix.len()) {
            Some(start) => {
                buf[start..HEADROOM].copy_from_slice(prefix);
                Bytes::from(buf).slice(start..)
            }
            None => {
                let mut document = Vec::with_capacity(prefix.len() + buf.len() - HEADROOM);
                document.extend_from_slice(prefix);
                document.extend_from_slice(&buf[HEADROOM..]);
                Bytes::from(document)
            }
        }
    }
}

/// A JSON string, escaped exactly as serde_json escapes it: `"` and `\` with a backslash, the
/// control characters below U+0020 as `\b \t \n \f \r` or `\u00xx` (lower-case hex), nothing
/// else (not `/`, not U+007F, not U+2028).
pub fn push_str(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    if needs_escaping(bytes) {
        push_escaped(out, bytes);
    } else {
        out.extend_from_slice(bytes);
    }
    out.push(b'"');
}

fn push_opt_str(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        Some(text) => push_str(out, text),
        None => out.extend_from_slice(b"null"),
    }
}

pub fn push_i64(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

pub fn push_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// True when some byte must be escaped. Looks at every byte without stopping early, which the
/// compiler turns into a few wide comparisons: most text has nothing to escape.
fn needs_escaping(bytes: &[u8]) -> bool {
    bytes.iter().fold(false, |found, &b| {
        found | (b < 0x20) | (b == b'"') | (b == b'\\')
    })
}

fn push_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut plain_from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            0x08 => b'b',
            0x09 => b't',
            0x0A => b'n',
            0x0C => b'f',
            0x0D => b'r',
            0x00..=0x1F => 0,
            _ => continue,
        };
        out.extend_from_slice(&bytes[plain_from..i]);
        plain_from = i + 1;
        if short == 0 {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xF)]);
        } else {
            out.push(b'\\');
            out.push(short);
        }
    }
    out.extend_from_slice(&bytes[plain_from..]);
}

/// RFC 3339 in UTC with a `Z`, fractional seconds only when there are any, in groups of three
/// digits: what [`format_timestamp`] writes.
fn push_timestamp(out: &mut Vec<u8>, t: &Timestamp<'_>) {
    match t {
        Timestamp::Micros(text) => {
            let text = text.as_bytes();
            out.push(b'"');
            // `YYYY-MM-DDTHH:MM:SS`, then `.ffffff` shortened as chrono's `AutoSi` does.
            out.extend_from_slice(&text[..19]);
            let fraction = &text[20..26];
            if fraction != b"000000" {
                let digits = if &fraction[3..] == b"000" { 3 } else { 6 };
                out.push(b'.');
                out.extend_from_slice(&fraction[..digits]);
            }
            out.extend_from_slice(b"Z\"");
        }
        Timestamp::Instant(t) => {
            out.push(b'"');
            out.extend_from_slice(format_timestamp(t).as_bytes());
            out.push(b'"');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn call(text: &str) -> Call {
        Call {
            id: format!("id {text}"),
            contact_name: text.to_string(),
            account_name: Some(format!("{text}{text}")),
            started_at: Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap(),
            duration_seconds: Some(-7),
            outcome: None,
            notes: Some(String::new()),
            created_at: Utc.timestamp_opt(1_700_000_000, 123_456_000).unwrap(),
        }
    }

    fn written(calls: &[Call]) -> Vec<u8> {
        CallsJson::from_calls(calls)
            .into_document(b"", |_| {})
            .to_vec()
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut every_char: String = (0u8..=0x7F).map(char::from).collect();
        every_char.push_str("é 📞 \u{2028} \u{FEFF} end");
        for text in [
            "",
            "plain",
            every_char.as_str(),
            "\"",
            "\\",
            "a\u{0}b",
            "tab\tat the end\n",
        ] {
            let mut out = Vec::new();
            push_str(&mut out, text);
            assert_eq!(out, serde_json::to_vec(text).unwrap(), "{text:?}");
        }
    }

    #[test]
    fn calls_are_written_as_serde_json_writes_them() {
        let calls: Vec<Call> = ["Ada", "Zoë \"Q\" \\ /", "\u{1}\u{1f}\u{7f}", ""]
            .into_iter()
            .map(call)
            .collect();
        for n in 0..=calls.len() {
            assert_eq!(
                written(&calls[..n]),
                serde_json::to_vec(&calls[..n]).unwrap()
            );
        }
        let mut extremes = call("x");
        extremes.duration_seconds = Some(i64::MIN);
        extremes.account_name = None;
        assert_eq!(
            written(std::slice::from_ref(&extremes)),
            serde_json::to_vec(&[extremes]).unwrap()
        );
    }

    #[test]
    fn stored_text_is_shortened_as_chrono_shortens_instants() {
        for (stored, fraction) in [
            ("2024-05-01T10:00:00.000000Z", ""),
            ("2024-05-01T10:00:00.100000Z", ".100"),
            ("2024-05-01T10:00:00.120000Z", ".120"),
            ("2024-05-01T10:00:00.123000Z", ".123"),
            ("2024-05-01T10:00:00.123400Z", ".123400"),
            ("2024-05-01T10:00:00.000001Z", ".000001"),
            ("2024-05-01T10:00:00.000999Z", ".000999"),
        ] {
            let mut out = Vec::new();
            push_timestamp(&mut out, &Timestamp::Micros(stored));
            let instant = DateTime::parse_from_rfc3339(stored).unwrap().to_utc();
            let mut from_instant = Vec::new();
            push_timestamp(&mut from_instant, &Timestamp::Instant(instant));
            assert_eq!(out, from_instant, "{stored}");
            assert_eq!(
                out,
                format!("\"2024-05-01T10:00:00{fraction}Z\"").into_bytes()
            );
        }
    }

    #[test]
    fn the_prefix_goes_in_front_whatever_its_length() {
        let calls = [call("Ada")];
        let array = written(&calls);
        for prefix in [
            "",
            "{\"calls\":",
            "a prefix longer than the room kept for it: ",
        ] {
            let document = CallsJson::from_calls(&calls).into_document(prefix.as_bytes(), |out| {
                out.extend_from_slice(b",\"count\":");
                push_u64(out, 1);
            });
            let mut want = prefix.as_bytes().to_vec();
            want.extend_from_slice(&array);
            want.extend_from_slice(b",\"count\":1");
            assert_eq!(document.to_vec(), want);
        }
        assert_eq!(
            CallsJson::with_room_for(0).into_document(b"", |_| {}),
            Bytes::from_static(b"[]")
        );
    }
}
