//! The two isolation levels Redshift offers.
//!
//! "Isolation levels in Amazon Redshift" (Database Developer Guide,
//! <https://docs.aws.amazon.com/redshift/latest/dg/c_serial_isolation.html>): SERIALIZABLE and
//! SNAPSHOT ISOLATION, chosen per database (`CREATE DATABASE ... ISOLATION LEVEL`). That page now
//! gives SNAPSHOT as the default when creating provisioned clusters and Serverless workgroups
//! (provisioned clusters used to default to SERIALIZABLE), so the level is a setting here. Both
//! take a transaction's snapshot at its first SELECT, DML or table DDL, not at LOCK.

use std::fmt;
use std::str::FromStr;

/// How concurrent transactions see and overwrite each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// Redshift's SERIALIZABLE: PostgreSQL's SERIALIZABLE, plus Redshift's table-level write
    /// conflicts (error 1023) that PostgreSQL would let through.
    ///
    /// The default here although SNAPSHOT is AWS's default for new warehouses, because it is
    /// the stricter: it refuses concurrent writers with error 1023 where SNAPSHOT lets both
    /// commit, so a client tested against it meets the failures it must handle. The tests run
    /// both levels.
    #[default]
    Serializable,
    /// Redshift's SNAPSHOT ISOLATION: PostgreSQL's REPEATABLE READ. Concurrent transactions
    /// that read and then write one table both commit unless they change the same rows.
    Snapshot,
}

impl Isolation {
    /// PostgreSQL's name of the level that plays this one.
    pub(crate) fn postgres_level(self) -> &'static str {
        match self {
            Self::Serializable => "serializable",
            Self::Snapshot => "repeatable read",
        }
    }
}

/// Why an isolation level's name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an isolation level: give serializable or snapshot")]
pub struct UnknownIsolation(String);

/// `serializable`, or `snapshot` (also `snapshot isolation`), in any case.
impl FromStr for Isolation {
    type Err = UnknownIsolation;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "serializable" => Ok(Self::Serializable),
            "snapshot" | "snapshot isolation" | "snapshot_isolation" => Ok(Self::Snapshot),
            _ => Err(UnknownIsolation(text.to_owned())),
        }
    }
}

impl fmt::Display for Isolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Serializable => "serializable",
            Self::Snapshot => "snapshot",
        })
    }
}
