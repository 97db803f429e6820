//! Redshift's table-level write conflicts, which PostgreSQL does not have.
//!
//! Under SERIALIZABLE, Redshift aborts a transaction that writes a table another transaction
//! wrote and committed after the first one's snapshot began: "ERROR: 1023 DETAIL: Serializable
//! isolation violation on table - <table id>, transactions forming the cycle are: <ids>
//! (pid:<pid>)" ("Isolation levels in Amazon Redshift" and "Troubleshooting serializable
//! isolation errors" in the Database Developer Guide). PostgreSQL's SERIALIZABLE only fails
//! read/write dependency cycles, so two transactions that each took their snapshot and then
//! appended to the same table both commit there. The ledger closes that gap: it numbers
//! commits, remembers which commit last wrote each table, and tells a writer whose snapshot is
//! older than that commit.
//!
//! Snapshots and commits are taken under one lock, so that "after the snapshot began" means
//! exactly what PostgreSQL's snapshot saw. Only writes made through this stand-in are known:
//! a direct connection to the database, or a second stand-in on it, writes unseen.

use std::collections::HashMap;

use tokio::sync::{Mutex, MutexGuard};

/// The last committed write of one table.
#[derive(Debug, Clone, Copy)]
pub(super) struct LastWrite {
    /// The ledger's commit number of that write.
    pub(super) commit: u64,
    /// PostgreSQL's id of the transaction that wrote, for the error text.
    pub(super) xid: i64,
}

#[derive(Debug, Default)]
pub(super) struct LedgerState {
    commits: u64,
    last_write: HashMap<u32, LastWrite>,
}

impl LedgerState {
    /// The number of write commits so far: a snapshot taken now sees all of them.
    pub(super) fn commits(&self) -> u64 {
        self.commits
    }

    /// The first of `tables` written by a commit after `snapshot`, with that write.
    pub(super) fn conflict(&self, tables: &[u32], snapshot: u64) -> Option<(u32, LastWrite)> {
        tables.iter().find_map(|oid| {
            let write = self.last_write.get(oid)?;
            (write.commit > snapshot).then_some((*oid, *write))
        })
    }

    /// Records a committed transaction that wrote `tables`.
    pub(super) fn record_commit(&mut self, tables: &[u32], xid: i64) {
        self.commits += 1;
        let write = LastWrite {
            commit: self.commits,
            xid,
        };
        for oid in tables {
            self.last_write.insert(*oid, write);
        }
    }
}

/// The write history of one stand-in's database.
#[derive(Debug, Default)]
pub(crate) struct WriteLedger {
    state: Mutex<LedgerState>,
}

impl WriteLedger {
    /// Held while a snapshot is taken, a conflict looked for, or a writer commits.
    pub(super) async fn lock(&self) -> MutexGuard<'_, LedgerState> {
        self.state.lock().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_after_the_snapshot_conflicts_one_before_does_not() {
        let mut state = LedgerState::default();
        state.record_commit(&[10], 500);
        let snapshot = state.commits();
        assert!(state.conflict(&[10], snapshot).is_none());
        state.record_commit(&[10, 11], 501);
        let (oid, write) = state.conflict(&[11, 10], snapshot).expect("a conflict");
        assert_eq!((oid, write.xid), (11, 501));
        assert!(state.conflict(&[12], snapshot).is_none());
    }
}
