//! SQL text handling that does not need a database: parameter binding and the
//! Redshift dialect check. Both share a lexer so that quoted text and comments
//! are never mistaken for code.

pub(crate) mod dialect;
mod lexer;
pub(crate) mod params;
