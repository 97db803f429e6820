//! Why a database could not answer, and whether that is an outage or a refusal.
//!
//! The rule the fallback depends on lives here: an *outage* (the database cannot be reached or
//! cannot work right now) sends the request to the backup; a *refusal* (the database works and
//! rejects this value or statement) answers the client and switches nothing, because another
//! try would be refused again.
//!
//! What callers see (`/db/status`, API errors) is the short class from [`ErrorKind`]; the
//! database's own text, which may hold account ids, ARNs or data values, stays in
//! [`StoreError::detail`] for the log.

use std::fmt;

/// The class of a failure: short, credential-free, safe to show to anyone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// No answer within the deadline.
    Timeout,
    /// Nothing listens at the endpoint.
    ConnectionRefused,
    /// The endpoint could not be reached for another reason (DNS, TLS, reset).
    Connection,
    /// Back-pressure: the Data API's rate limits (after the SDK's own retries), writes that
    /// outran their deadline behind earlier writes while Redshift kept answering, or whose
    /// shared statement was abandoned with the request that sent it. Never an outage.
    Throttled,
    /// The Data API's limit of active statements, sessions or waiting requests.
    TooManyStatements,
    /// The function's role may not use the database.
    AccessDenied,
    /// The Data API found the request itself invalid (`ValidationException`): a cluster,
    /// workgroup or database that does not exist in this region, say. The API takes only values
    /// both stores hold, so this is never the client's values: an outage, to be fixed by the
    /// operator.
    Rejected,
    /// The service failed (5xx, an unexpected error type).
    Service,
    /// The statement ran and failed for a reason that is not the request's values.
    StatementFailed,
    /// The statement was aborted (cancelled, or stopped by the cluster).
    StatementAborted,
    /// The answer could not be understood.
    Decode,
    /// Redshift's serializable isolation aborted a write for a concurrent one (error 1023).
    WriteConflict,
    /// No usable AWS credentials (or region) for the Data API: the request was never sent.
    Credentials,
    /// The warehouse's `calls` table predates this version (`call-history migrate` updates it).
    SchemaOutdated,
    /// The database works and refuses this value (out of range, invalid byte sequence, value
    /// too long). Never a reason to switch databases.
    Refused(Refusal),
    /// The local SQLite database failed.
    Sqlite(SqliteProblem),
}

/// Which rule of the database a refused request broke, as far as it can be told without
/// repeating the database's text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A text value is longer than its column holds.
    ValueTooLong,
    /// A number or timestamp outside the column's range.
    OutOfRange,
    /// Text that is not valid in the database's encoding (a NUL character, say).
    InvalidText,
    /// A value the column's type cannot read.
    InvalidValue,
}

/// What is wrong with the local SQLite database, for `/db/status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SqliteProblem {
    DiskFull,
    ReadOnly,
    /// The file is not a database, or is damaged.
    Corrupt,
    /// Another connection or process holds the lock longer than the busy timeout.
    Busy,
    /// The file or its folder cannot be opened or created.
    CannotOpen,
    /// A stored row that cannot be read back as a call.
    UndecodableRow,
    /// The store was retired, its file being replaced, while a write waited.
    Retired,
    Other,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "Connection timeout",
            ErrorKind::ConnectionRefused => "Connection refused",
            ErrorKind::Connection => "Connection failed",
            ErrorKind::Throttled => "Throttled",
            ErrorKind::TooManyStatements => "Too many active statements",
            ErrorKind::AccessDenied => "Access denied",
            ErrorKind::Rejected => "Request rejected",
            ErrorKind::Service => "Service error",
            ErrorKind::StatementFailed => "Statement failed",
            ErrorKind::StatementAborted => "Statement aborted",
            ErrorKind::Decode => "Undecodable result",
            ErrorKind::WriteConflict => "Write conflict",
            ErrorKind::Credentials => "No AWS credentials",
            ErrorKind::SchemaOutdated => "Warehouse table out of date",
            ErrorKind::Refused(refusal) => refusal.as_str(),
            ErrorKind::Sqlite(problem) => problem.as_str(),
        }
    }
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::ValueTooLong => "Refused: value too long",
            Refusal::OutOfRange => "Refused: value out of range",
            Refusal::InvalidText => "Refused: invalid text",
            Refusal::InvalidValue => "Refused: invalid value",
        }
    }

    /// What was refused, as a clause of a sentence for the client.
    pub fn explanation(self) -> &'static str {
        match self {
            Refusal::ValueTooLong => "a text value is longer than Redshift's column holds",
            Refusal::OutOfRange => "a number or time is outside what Redshift can store",
            Refusal::InvalidText => "a text value is not valid in Redshift's encoding",
            Refusal::InvalidValue => "a value is not valid for its column",
        }
    }

    /// Tells a refusal from other failures by the database's error text: the messages
    /// Redshift (and PostgreSQL, which it descends from) give for values they cannot store.
    pub fn from_database_message(message: &str) -> Option<Refusal> {
        let message = message.to_ascii_lowercase();
        let has = |needle: &str| message.contains(needle);
        if has("value too long") || has("string length exceeds") {
            Some(Refusal::ValueTooLong)
        } else if has("invalid byte sequence")
            || has("character with byte sequence")
            || has("invalid multibyte character")
        {
            Some(Refusal::InvalidText)
        } else if has("out of range") || has("overflow") {
            Some(Refusal::OutOfRange)
        } else if has("invalid input syntax") || has("violates not-null constraint") {
            Some(Refusal::InvalidValue)
        } else {
            None
        }
    }
}

impl SqliteProblem {
    pub fn as_str(self) -> &'static str {
        match self {
            SqliteProblem::DiskFull => "Disk full",
            SqliteProblem::ReadOnly => "Read-only database file",
            SqliteProblem::Corrupt => "Database file damaged",
            SqliteProblem::Busy => "Database locked",
            SqliteProblem::CannotOpen => "Database file cannot be opened",
            SqliteProblem::UndecodableRow => "Unreadable row",
            SqliteProblem::Retired => "Database file being replaced",
            SqliteProblem::Other => "SQLite error",
        }
    }
}

/// A failure of either database: its class, and the detail for the log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct StoreError {
    pub kind: ErrorKind,
    /// The database's or SDK's own words: for the log only.
    pub detail: String,
}

impl fmt::Display for StoreError {
    /// Only the class: this text may reach clients and `/db/status`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.as_str())
    }
}

impl StoreError {
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        StoreError {
            kind,
            detail: detail.into(),
        }
    }

    pub fn timeout() -> Self {
        StoreError::new(ErrorKind::Timeout, "no answer within the deadline")
    }

    pub fn decode(detail: impl Into<String>) -> Self {
        StoreError::new(ErrorKind::Decode, detail)
    }

    /// True when the database refused the request's values: answer the client, switch nothing.
    pub fn is_refusal(&self) -> bool {
        self.refusal().is_some()
    }

    pub fn refusal(&self) -> Option<Refusal> {
        match self.kind {
            ErrorKind::Refused(refusal) => Some(refusal),
            _ => None,
        }
    }

    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Timeout
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        let problem = match err.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => SqliteProblem::DiskFull,
            Some(ErrorCode::ReadOnly) => SqliteProblem::ReadOnly,
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => SqliteProblem::Corrupt,
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => SqliteProblem::Busy,
            Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => SqliteProblem::CannotOpen,
            _ => match err {
                rusqlite::Error::FromSqlConversionFailure(..)
                | rusqlite::Error::InvalidColumnType(..)
                | rusqlite::Error::Utf8Error(..) => SqliteProblem::UndecodableRow,
                _ => SqliteProblem::Other,
            },
        };
        StoreError::new(ErrorKind::Sqlite(problem), err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_errors_are_refusals_and_the_rest_are_not() {
        let cases = [
            (
                "ERROR: value too long for type character varying(20)",
                Some(Refusal::ValueTooLong),
            ),
            (
                "ERROR: invalid byte sequence for encoding \"UTF8\": 0x00",
                Some(Refusal::InvalidText),
            ),
            (
                "ERROR: date/time field value out of range: \"0000-01-01\"",
                Some(Refusal::OutOfRange),
            ),
            ("ERROR: timestamp out of range", Some(Refusal::OutOfRange)),
            (
                "ERROR: invalid input syntax for type bigint: \"x\"",
                Some(Refusal::InvalidValue),
            ),
            ("ERROR: relation \"calls\" does not exist", None),
            (
                "ERROR: 1023 Serializable isolation violation on table",
                None,
            ),
            ("ERROR: syntax error at or near \"ON\"", None),
        ];
        for (message, expected) in cases {
            assert_eq!(
                Refusal::from_database_message(message),
                expected,
                "{message}"
            );
        }
    }

    #[test]
    fn display_shows_the_class_and_never_the_detail() {
        let err = StoreError::new(
            ErrorKind::AccessDenied,
            "User arn:aws:iam::123456789012:role/x is not authorized",
        );
        assert_eq!(err.to_string(), "Access denied");
        assert!(!err.is_refusal());
        let refused = StoreError::new(ErrorKind::Refused(Refusal::ValueTooLong), "notes 'secret'");
        assert!(refused.is_refusal());
        assert!(!refused.to_string().contains("secret"));
    }
}
