//! Calls as the JSON the API sends, written straight into one buffer.
//!
//! A history answer is mostly this text, so it is written without building the calls first:
//! the SQLite store keeps each call's text beside it ([`call_json`], written with the call) and
//! copies it into the answer's own buffer ([`CallsJson::push_written`]); a row without it is
//! handed over as borrowed [`CallFields`] (checked, not copied) and written there. What comes out is byte for byte what serde_json makes
//! of [`Call`] (its `Serialize` derive): the same fields in the same order, strings escaped the
//! same way, timestamps as [`format_timestamp`] writes them. The tests below hold the two side by
//! side, and `tests/history_bytes.rs` pins whole answers.

use axum::body::Bytes;
use chrono::{DateTime, Utc};

use super::{format_timestamp, Call};

/// One call's fields, borrowed from wherever they are kept (a SQLite row, a [`Call`]).
#[derive(Clone, Copy, Debug)]
pub struct CallFields<'a> {
    pub id: Text<'a>,
    pub contact_name: Text<'a>,
    pub account_name: Option<Text<'a>>,
    pub started_at: Timestamp<'a>,
    pub duration_seconds: Option<i64>,
    pub outcome: Option<Text<'a>>,
    pub notes: Option<Text<'a>>,
    pub created_at: Timestamp<'a>,
}

impl<'a> From<&'a Call> for CallFields<'a> {
    fn from(call: &'a Call) -> Self {
        let text = |value: &'a str| Text::from(value);
        CallFields {
            id: text(&call.id),
            contact_name: text(&call.contact_name),
            account_name: call.account_name.as_deref().map(text),
            started_at: Timestamp::Instant(call.started_at),
            duration_seconds: call.duration_seconds,
            outcome: call.outcome.as_deref().map(text),
            notes: call.notes.as_deref().map(text),
            created_at: Timestamp::Instant(call.created_at),
        }
    }
}

/// Text known to be UTF-8, with whether JSON needs any of it escaped: one look at the bytes
/// answers both (most text is ASCII with nothing to escape).
#[derive(Clone, Copy, Debug)]
pub struct Text<'a> {
    bytes: &'a [u8],
    plain: bool,
}

impl<'a> Text<'a> {
    /// The bytes as text, unless they are not UTF-8.
    pub fn checked(bytes: &'a [u8]) -> Result<Text<'a>, std::str::Utf8Error> {
        let (ascii, plain) = scan(bytes);
        if !ascii {
            std::str::from_utf8(bytes)?;
        }
        Ok(Text { bytes, plain })
    }

    pub fn to_owned_string(&self) -> String {
        // UTF-8 by construction: nothing is replaced.
        String::from_utf8_lossy(self.bytes).into_owned()
    }
}

impl<'a> From<&'a str> for Text<'a> {
    fn from(text: &'a str) -> Self {
        let bytes = text.as_bytes();
        Text {
            bytes,
            plain: scan(bytes).1,
        }
    }
}

/// Whether all bytes are ASCII, and whether none needs escaping in JSON. Eight bytes at a time
/// as one number: most fields are too short for vector code to pay off.
fn scan(bytes: &[u8]) -> (bool, bool) {
    let word = |chunk: &[u8]| {
        let mut word = [b' '; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        u64::from_le_bytes(word)
    };
    let mut chunks = bytes.chunks_exact(8);
    let mut all_bits = 0u64;
    let mut escapes = 0u64;
    for chunk in chunks.by_ref() {
        let word = word(chunk);
        all_bits |= word;
        escapes |= needs_escape(word);
    }
    // The bytes left over: the last eight of the text, looking at some twice, when it is that
    // long; otherwise padded with spaces, which change neither answer.
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let last = match bytes.len().checked_sub(8) {
            Some(start) => word(&bytes[start..]),
            None => word(rest),
        };
        all_bits |= last;
        escapes |= needs_escape(last);
    }
    (all_bits & HIGH_BITS == 0, escapes == 0)
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// Non-zero exactly when one of the eight bytes of `word` is below 0x20, `"` or `\`. The
/// classic tests "has a byte below n" and "has a zero byte" (a byte equal to `c` is zero after
/// `^ c`): a borrow can only spread upwards from a byte that already answers yes.
fn needs_escape(word: u64) -> u64 {
    let below = |n: u64| word.wrapping_sub(ONES * n) & !word & HIGH_BITS;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH_BITS;
    below(0x20)
        | has_zero(word ^ (ONES * u64::from(b'"')))
        | has_zero(word ^ (ONES * u64::from(b'\\')))
}

/// An instant, as it is at hand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timestamp<'a> {
    /// Text in the local backup's canonical form, `YYYY-MM-DDTHH:MM:SS.ffffffZ`, already known
    /// to name a valid instant: only its fraction needs shortening on the way out.
    Micros(&'a [u8; MICROS_TEXT_LEN]),
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
        self.separate();
        write_call(&mut self.buf, call);
    }

    /// Appends one call already written by [`call_json`] (kept beside the call in the backup).
    pub fn push_written(&mut self, call: &[u8]) {
        self.separate();
        self.buf.extend_from_slice(call);
    }

    fn separate(&mut self) {
        if self.count > 0 {
            self.buf.push(b',');
        }
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

/// One call as serde_json writes a [`Call`]: what [`CallsJson::push`] appends. Always `Some`:
/// every part written is UTF-8 (the fields are [`Text`], the rest ASCII); checked all the same,
/// since the text is kept and sent later as it is.
pub fn call_json(call: &CallFields<'_>) -> Option<String> {
    let mut out = Vec::with_capacity(BYTES_PER_CALL);
    write_call(&mut out, call);
    String::from_utf8(out).ok()
}

fn write_call(out: &mut Vec<u8>, call: &CallFields<'_>) {
    out.extend_from_slice(br#"{"id":"#);
    push_text(out, call.id);
    out.extend_from_slice(br#","contactName":"#);
    push_text(out, call.contact_name);
    out.extend_from_slice(br#","accountName":"#);
    push_opt_text(out, call.account_name);
    out.extend_from_slice(br#","startedAt":"#);
    push_timestamp(out, &call.started_at);
    out.extend_from_slice(br#","durationSeconds":"#);
    match call.duration_seconds {
        Some(seconds) => push_int(out, seconds),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(br#","outcome":"#);
    push_opt_text(out, call.outcome);
    out.extend_from_slice(br#","notes":"#);
    push_opt_text(out, call.notes);
    out.extend_from_slice(br#","createdAt":"#);
    push_timestamp(out, &call.created_at);
    out.push(b'}');
}

/// A JSON string, escaped exactly as serde_json escapes it: `"` and `\` with a backslash, the
/// control characters below U+0020 as `\b \t \n \f \r` or `\u00xx` (lower-case hex), nothing
/// else (not `/`, not U+007F, not U+2028).
pub fn push_str(out: &mut Vec<u8>, text: &str) {
    push_text(out, Text::from(text));
}

fn push_text(out: &mut Vec<u8>, text: Text<'_>) {
    out.reserve(text.bytes.len() + 2);
    out.push(b'"');
    if text.plain {
        out.extend_from_slice(text.bytes);
    } else {
        push_escaped(out, text.bytes);
    }
    out.push(b'"');
}

fn push_opt_text(out: &mut Vec<u8>, text: Option<Text<'_>>) {
    match text {
        Some(text) => push_text(out, text),
        None => out.extend_from_slice(b"null"),
    }
}

pub fn push_int(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
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
    fn stored_bytes_are_text_only_when_utf8_and_written_as_their_str() {
        for bytes in [
            &b"plain"[..],
            b"tab\there",
            "Zo\u{eb} \u{1f4de}".as_bytes(),
            b"",
        ] {
            let text = Text::checked(bytes).expect("UTF-8");
            let mut out = Vec::new();
            push_text(&mut out, text);
            let as_str = std::str::from_utf8(bytes).unwrap();
            assert_eq!(out, serde_json::to_vec(as_str).unwrap());
            assert_eq!(text.to_owned_string(), as_str);
        }
        for bytes in [&b"\xff"[..], b"A\xc3", b"\xed\xa0\x80", b"ok \x80"] {
            assert!(Text::checked(bytes).is_err(), "{bytes:?}");
        }
    }

    #[test]
    fn eight_bytes_at_a_time_finds_what_one_at_a_time_finds() {
        let one_at_a_time = |bytes: &[u8]| {
            (
                bytes.is_ascii(),
                !bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\'),
            )
        };
        // Every byte value at every position of texts of 0 to 17 bytes, among others.
        for len in 0..18 {
            for at in 0..len {
                for b in 0..=255u8 {
                    for filler in [b'a', 0xC3, b'~'] {
                        let mut bytes = vec![filler; len];
                        bytes[at] = b;
                        assert_eq!(scan(&bytes), one_at_a_time(&bytes), "{bytes:?}");
                    }
                }
            }
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
            let bytes: &[u8; MICROS_TEXT_LEN] = stored.as_bytes().try_into().unwrap();
            push_timestamp(&mut out, &Timestamp::Micros(bytes));
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
                push_int(out, 1);
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
