//! What both databases hold exactly, in one place: the API refuses anything else with a 400,
//! and the replay sets aside a journaled row that breaks these rules (written by an older
//! version, say) without asking Redshift.
//!
//! - Text: no NUL (Redshift and PostgreSQL refuse it), within the field's characters and its
//!   Redshift column's bytes. An empty string is fine and stays an empty string.
//! - Instants: years 1 to 9999, in UTC.

use chrono::{DateTime, Datelike, Utc};

use super::Call;

/// A text field of a call: what the API takes, and the Redshift column that must hold it.
/// Redshift counts VARCHAR widths in bytes and a character takes up to four in UTF-8, so the
/// character limits are chosen to fit the columns; the byte check says so in the code too.
pub struct TextField {
    pub name: &'static str,
    pub max_chars: usize,
    /// The column in `sql/redshift/schema.sql`, and its width in bytes.
    pub column: &'static str,
    pub column_bytes: usize,
}

/// Why a text value cannot be stored as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextProblem {
    /// A NUL character, which Redshift and PostgreSQL refuse.
    Nul,
    /// More characters than the field takes, or more bytes than its column holds.
    TooLong,
}

impl TextField {
    /// Within the field's characters and the column's bytes (NUL is checked apart).
    pub fn fits(&self, value: &str) -> bool {
        value.len() <= self.column_bytes && value.chars().count() <= self.max_chars
    }

    /// What keeps `value` from being stored exactly by both databases, if anything. An empty
    /// string is fine and stays empty.
    pub fn problem(&self, value: &str) -> Option<TextProblem> {
        if value.contains('\0') {
            Some(TextProblem::Nul)
        } else if !self.fits(value) {
            Some(TextProblem::TooLong)
        } else {
            None
        }
    }
}

pub const CONTACT_NAME: TextField = TextField {
    name: "contactName",
    max_chars: 200,
    column: "contact_name",
    column_bytes: 800,
};
pub const ACCOUNT_NAME: TextField = TextField {
    name: "accountName",
    max_chars: 200,
    column: "account_name",
    column_bytes: 800,
};
pub const OUTCOME: TextField = TextField {
    name: "outcome",
    max_chars: 100,
    column: "outcome",
    column_bytes: 400,
};
pub const NOTES: TextField = TextField {
    name: "notes",
    max_chars: 10_000,
    column: "notes",
    column_bytes: 65_535,
};

/// The width of Redshift's `id` column, in bytes.
pub const ID_COLUMN_BYTES: usize = 256;

/// The instants both databases hold exactly.
pub const FIRST_INSTANT: &str = "0001-01-01T00:00:00Z";
pub const LAST_INSTANT: &str = "9999-12-31T23:59:59.999999Z";

pub fn instant_fits(t: &DateTime<Utc>) -> bool {
    (1..=9999).contains(&t.year())
}

/// The call's text fields other than its id, with their values.
fn text_fields(call: &Call) -> [(&'static TextField, Option<&str>); 4] {
    [
        (&CONTACT_NAME, Some(call.contact_name.as_str())),
        (&ACCOUNT_NAME, call.account_name.as_deref()),
        (&OUTCOME, call.outcome.as_deref()),
        (&NOTES, call.notes.as_deref()),
    ]
}

/// The call's text values by Redshift column.
pub fn text_columns(call: &Call) -> impl Iterator<Item = (&'static str, Option<&str>)> {
    let fields = text_fields(call).map(|(field, value)| (field.column, value));
    std::iter::once(("id", Some(call.id.as_str()))).chain(fields)
}

/// Why a stored call cannot go to Redshift as it is, if it cannot.
pub fn unstorable(call: &Call) -> Option<String> {
    if call.id.is_empty() || call.id.len() > ID_COLUMN_BYTES || call.id.contains('\0') {
        return Some("id is not one Redshift's column holds".to_string());
    }
    for (field, value) in text_fields(call) {
        match value.and_then(|value| field.problem(value)) {
            Some(TextProblem::Nul) => return Some(format!("{} holds a NUL character", field.name)),
            Some(TextProblem::TooLong) => {
                return Some(format!("{} is longer than its column holds", field.name))
            }
            None => {}
        }
    }
    for (name, t) in [
        ("startedAt", &call.started_at),
        ("createdAt", &call.created_at),
    ] {
        if !instant_fits(t) {
            return Some(format!("{name} is outside years 1 to 9999"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn text_limits_fit_the_redshift_columns() {
        let schema = super::super::redshift::sql::SCHEMA;
        for field in [CONTACT_NAME, ACCOUNT_NAME, OUTCOME, NOTES] {
            let declared = format!("{:<17}VARCHAR({})", field.column, field.column_bytes);
            assert!(
                schema.contains(&declared),
                "{declared} in the Redshift schema"
            );
            assert!(
                field.max_chars * 4 <= field.column_bytes,
                "{}: {} characters of up to 4 bytes fit {} bytes",
                field.name,
                field.max_chars,
                field.column_bytes
            );
        }
        assert!(schema.contains(&format!("id               VARCHAR({ID_COLUMN_BYTES})")));
        assert!(NOTES.fits(&"\u{1F4DE}".repeat(NOTES.max_chars)));
        assert!(!OUTCOME.fits(&"x".repeat(OUTCOME.max_chars + 1)));
    }

    #[test]
    fn calls_outside_the_rules_are_named() {
        let t = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        let good = Call {
            id: "a".into(),
            contact_name: "Ada".into(),
            account_name: Some(String::new()),
            started_at: t,
            duration_seconds: None,
            outcome: None,
            notes: None,
            created_at: t,
        };
        assert_eq!(unstorable(&good), None);
        let year_zero = Call {
            started_at: Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap(),
            ..good.clone()
        };
        assert!(unstorable(&year_zero).unwrap().contains("startedAt"));
        let nul = Call {
            notes: Some("a\0b".into()),
            ..good.clone()
        };
        assert!(unstorable(&nul).unwrap().contains("NUL"));
        let long = Call {
            outcome: Some("x".repeat(101)),
            ..good
        };
        assert!(unstorable(&long).unwrap().contains("outcome"));
    }
}
