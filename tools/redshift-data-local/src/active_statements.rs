//! The Data API's limit on active statements.
//!
//! AWS refuses ExecuteStatement and BatchExecuteStatement with
//! `ActiveStatementsExceededException` ("The number of active statements exceeds the limit",
//! HTTP 400) while too many statements are active, that is submitted and not yet ended
//! (SUBMITTED, PICKED or STARTED). The figure is in the Amazon Redshift Management Guide,
//! "Considerations when calling the Amazon Redshift Data API": "The maximum number of active
//! queries (`STARTED` and `SUBMITTED` queries) per Amazon Redshift cluster is 200"
//! (<https://docs.aws.amazon.com/redshift/latest/mgmt/data-api.html#data-api-calling-considerations>,
//! as published in awsdocs/amazon-redshift-management-guide, `doc_source/data-api.md`). The
//! guide's current edition for the China Regions, which already covers Serverless workgroups,
//! still gives 200 (<https://docs.amazonaws.cn/en_us/redshift/latest/mgmt/data-api.html>); no
//! other figure could be found. A stand-in without the limit would let a client that floods
//! submissions pass its tests, so it is on by default, shared by every client of one stand-in
//! as AWS's is by every client of one cluster.

use std::sync::Mutex;

use crate::lock;

/// AWS's limit: statements active at once per cluster or workgroup.
pub const AWS_ACTIVE_STATEMENTS: usize = 200;

/// The most statements that may be active at once (`None`: no limit), shared by the Data API,
/// which enforces it, and by whoever changes it.
#[derive(Debug)]
pub(crate) struct ActiveStatementsLimit {
    limit: Mutex<Option<usize>>,
}

impl ActiveStatementsLimit {
    pub(crate) fn new(limit: Option<usize>) -> Self {
        Self {
            limit: Mutex::new(limit),
        }
    }

    pub(crate) fn get(&self) -> Option<usize> {
        *lock(&self.limit)
    }

    /// Applies to submissions from now on; statements already active stay so.
    pub(crate) fn set(&self, limit: Option<usize>) {
        *lock(&self.limit) = limit;
    }
}
