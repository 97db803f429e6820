//! What a Data API failure means for the fallback: one rule, in one place.
//!
//! - A refusal: the statement ran and Redshift refused the request's values (value too long, out
//!   of range, invalid text). The client gets a 400; nothing switches.
//! - Throttling: back-pressure of the account's Data API quotas, not an outage. The caller slows
//!   down and keeps serving its replica while it is fresh enough.
//! - A write conflict (Redshift's serializable isolation error 1023): tried once more.
//! - Everything else is an outage: the request is answered from the backup.

use aws_sdk_redshiftdata::config::http::HttpResponse;
use aws_sdk_redshiftdata::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::store::error::{ErrorKind, Refusal};
use crate::store::StoreError;

/// Turns an SDK failure into its class, with the SDK's words as detail (for the log only).
pub fn classify<E>(err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let detail = match &err {
        SdkError::ServiceError(service) => format!(
            "{}: {} (HTTP {})",
            service.err().code().unwrap_or("UnknownError"),
            service.err().message().unwrap_or(""),
            service.raw().status().as_u16()
        ),
        other => DisplayErrorContext(other).to_string(),
    };
    let kind = match &err {
        SdkError::TimeoutError(_) => ErrorKind::Timeout,
        SdkError::DispatchFailure(failure) if failure.is_timeout() => ErrorKind::Timeout,
        SdkError::DispatchFailure(failure) if failure.is_io() => ErrorKind::ConnectionRefused,
        SdkError::ResponseError(_) => ErrorKind::Decode,
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("UnknownError");
            kind_of_service_error(code, service.raw().status().as_u16())
        }
        // The request was never sent: no credentials could be loaded, or no region is known.
        _ if mentions_credentials(&detail) => ErrorKind::Credentials,
        _ => ErrorKind::Connection,
    };
    StoreError::new(kind, detail)
}

/// The SDK says so in its own words when its credential chain found nothing usable.
fn mentions_credentials(detail: &str) -> bool {
    let detail = detail.to_ascii_lowercase();
    detail.contains("credentials") || detail.contains("identity")
}

/// The Data API's error types, by what they mean for the fallback.
pub fn kind_of_service_error(code: &str, status: u16) -> ErrorKind {
    match code {
        // Never the client's values (the API refuses what Redshift would, and empty strings go
        // as constants): a target or database that is not there, an outage for the operator.
        "ValidationException" => ErrorKind::Rejected,
        "ActiveStatementsExceededException"
        | "ActiveSessionsExceededException"
        | "ActiveWaitingRequestsExceededException" => ErrorKind::TooManyStatements,
        "AccessDeniedException" => ErrorKind::AccessDenied,
        "QueryTimeoutException" => ErrorKind::Timeout,
        "DatabaseConnectionException" => ErrorKind::Connection,
        code if is_throttling_code(code) => ErrorKind::Throttled,
        _ if status == 429 => ErrorKind::Throttled,
        _ if status == 403 => ErrorKind::AccessDenied,
        _ => ErrorKind::Service,
    }
}

/// The error codes AWS answers with beyond a quota.
pub fn is_throttling_code(code: &str) -> bool {
    code.contains("Throttl") || code == "TooManyRequestsException" || code == "RequestLimitExceeded"
}

/// A FAILED statement: a refusal when Redshift rejected a value, a write conflict when its
/// serializable isolation aborted the transaction, a table from before replicas when the
/// ingestion column is missing; else an outage.
pub fn statement_failed(error: String) -> StoreError {
    if let Some(refusal) = Refusal::from_database_message(&error) {
        return StoreError::new(ErrorKind::Refused(refusal), error);
    }
    let lower = error.to_ascii_lowercase();
    let kind = if lower.contains("1023") && lower.contains("serializable isolation")
        || lower.contains("could not serialize access")
    {
        ErrorKind::WriteConflict
    } else if lower.contains("ingested_at") && lower.contains("does not exist") {
        ErrorKind::SchemaOutdated
    } else {
        ErrorKind::StatementFailed
    };
    StoreError::new(kind, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_errors_are_told_apart() {
        assert_eq!(
            kind_of_service_error("ValidationException", 400),
            ErrorKind::Rejected
        );
        assert_eq!(
            kind_of_service_error("ThrottlingException", 400),
            ErrorKind::Throttled
        );
        assert_eq!(
            kind_of_service_error("ActiveStatementsExceededException", 400),
            ErrorKind::TooManyStatements
        );
        assert_eq!(
            kind_of_service_error("InternalServerException", 500),
            ErrorKind::Service
        );
        assert_eq!(
            kind_of_service_error("AccessDeniedException", 403),
            ErrorKind::AccessDenied
        );
    }

    #[test]
    fn failed_statements_are_refusals_conflicts_old_tables_or_outages() {
        assert!(
            statement_failed("ERROR: value too long for type character varying(20)".into())
                .is_refusal()
        );
        let conflict = statement_failed(
            "ERROR: 1023 DETAIL: Serializable isolation violation on table - 100, transactions forming the cycle are: 1, 2 (pid:3)".into(),
        );
        assert_eq!(conflict.kind, ErrorKind::WriteConflict);
        assert_eq!(
            statement_failed("ERROR: column \"ingested_at\" does not exist".into()).kind,
            ErrorKind::SchemaOutdated
        );
        let missing = statement_failed("ERROR: relation \"calls\" does not exist".into());
        assert_eq!(missing.kind, ErrorKind::StatementFailed);
    }
}
