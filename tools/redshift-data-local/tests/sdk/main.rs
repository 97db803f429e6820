//! The stand-in driven by the real AWS SDK clients, so that every request and
//! response shape is checked by the code that production uses.
//!
//! These tests need PostgreSQL: `export "$(scripts/pg-test-cluster.sh start)"`.

mod active_statements;
mod cloudwatch;
mod common;
mod control;
mod data_api;
mod faults;
mod isolation;
mod latency;
mod quotas;
mod redshift_sql;
