//! Errors of the stand-in itself (start-up, database set-up), as opposed to the
//! errors it answers to API clients, which live with each protocol.

use std::net::SocketAddr;

/// Why the stand-in could not start or could not prepare a database.
#[derive(Debug, thiserror::Error)]
pub enum StandInError {
    /// The PostgreSQL connection string could not be parsed.
    #[error("invalid PostgreSQL connection string: {0}")]
    InvalidDatabaseUrl(#[source] tokio_postgres::Error),

    /// PostgreSQL refused a connection or a statement.
    #[error("PostgreSQL error while {context}: {source}")]
    Database {
        context: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },

    /// A listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl StandInError {
    pub(crate) fn database(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> Self {
        move |source| Self::Database { context, source }
    }
}
