//! The call store: Redshift the primary, SQLite the replica and backup, and the rules between.
//!
//! - [`failover::FailoverStore`]: who answers each request (routing).
//! - [`health::HealthState`]: which database serves this environment, and when Redshift is
//!   tried again (a pure state machine).
//! - [`replica::Replica`]: the backup as a fresh copy of the warehouse (pulls, window, age).
//! - [`writer::WriteBatcher`]: writes to Redshift, concurrent ones sharing a statement.
//! - [`journal::Journal`]: writes taken by the backup while Redshift could not, and their replay.
//! - [`upkeep`]: the work between requests (pulls ahead, replay, metrics) and at shutdown.
//! - [`status`]: the picture `/db/status` shows.
//! - [`redshift`]: the Data API (statements, results, what a failure means, the call meter).
//! - [`sqlite`]: the local file (schema, calls, journal and replica tables).
//! - [`backup::Backup`]: the local file, reopened when it could not be opened or broke.
//! - [`json::CallsJson`]: calls written as the API's JSON, kept beside each call in the backup
//!   and copied out by history.
//! - [`error`]: why a database failed, and whether that is an outage or a refusal.
//! - [`rules`]: what both databases hold exactly.
//! - [`deadline::Deadline`]: the one time budget of a request's Redshift work.

mod activity;
pub mod backup;
pub mod deadline;
pub mod error;
pub mod failover;
pub mod health;
pub mod journal;
pub mod json;
pub mod redshift;
pub mod replica;
pub mod rules;
pub mod sqlite;
pub mod status;
pub mod upkeep;
pub mod writer;

pub use error::{ErrorKind, StoreError};

use chrono::{DateTime, SecondsFormat, Timelike, Utc};
use serde::{Serialize, Serializer};

/// Which database answered a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Redshift,
    Sqlite,
    Unavailable,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Redshift => "redshift",
            Source::Sqlite => "sqlite",
            Source::Unavailable => "unavailable",
        }
    }

    pub fn emoji(self) -> &'static str {
        match self {
            Source::Redshift => "☁️",
            Source::Sqlite => "💾",
            Source::Unavailable => "❌",
        }
    }
}

/// One recorded call, as stored and as sent to clients.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Call {
    pub id: String,
    pub contact_name: String,
    pub account_name: Option<String>,
    #[serde(serialize_with = "serialize_timestamp")]
    pub started_at: DateTime<Utc>,
    pub duration_seconds: Option<i64>,
    pub outcome: Option<String>,
    pub notes: Option<String>,
    #[serde(serialize_with = "serialize_timestamp")]
    pub created_at: DateTime<Utc>,
}

impl Call {
    /// True when `other` records the same call: everything but the server's `created_at`.
    pub fn same_content(&self, other: &Call) -> bool {
        self.id == other.id
            && self.contact_name == other.contact_name
            && self.account_name == other.account_name
            && self.started_at == other.started_at
            && self.duration_seconds == other.duration_seconds
            && self.outcome == other.outcome
            && self.notes == other.notes
    }
}

/// Filters and paging of the history query, already validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryQuery {
    pub limit: u32,
    pub offset: u32,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub contact: Option<String>,
}

impl Default for HistoryQuery {
    fn default() -> Self {
        HistoryQuery {
            limit: 50,
            offset: 0,
            since: None,
            until: None,
            contact: None,
        }
    }
}

/// What an insert found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InsertOutcome {
    Inserted,
    /// A call with this id was already stored; it is returned as it is.
    AlreadyExists(Call),
    /// The id is taken by a stored row that cannot be read back; another id must be used.
    IdTaken,
}

/// Both databases keep microseconds; truncating on the way in makes a call read back equal to
/// the one written, whichever database holds it.
pub fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    let nanos = t.nanosecond() / 1_000 * 1_000;
    t.with_nanosecond(nanos).unwrap_or(t)
}

/// RFC 3339 in UTC with a `Z`, fractional seconds only when there are any.
pub fn format_timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn serialize_timestamp<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_timestamp(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap();
        assert_eq!(format_timestamp(&t), "2024-05-01T10:00:00Z");
        let t = truncate_to_micros(t.with_nanosecond(123_456_789).unwrap());
        assert_eq!(format_timestamp(&t), "2024-05-01T10:00:00.123456Z");
    }
}
