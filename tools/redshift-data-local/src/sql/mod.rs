//! SQL text handling that does not need a database: parameter binding, the Redshift dialect
//! check and rewrite, and what a statement does to transactions. They share a lexer so that
//! quoted text and comments are never mistaken for code.

pub(crate) mod dialect;
mod lexer;
pub(crate) mod params;
pub(crate) mod tables;
