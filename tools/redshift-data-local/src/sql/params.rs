//! Binds Data API parameters into SQL text.
//!
//! The Data API sends every parameter value as a string and Redshift converts it
//! to the type the context needs. Substituting each `:name` placeholder with an
//! untyped quoted literal gets the same behaviour from PostgreSQL, which infers
//! the type of an untyped literal from where it is used.

use std::collections::{HashMap, HashSet};

use super::lexer::{SegmentKind, segments};

/// Why a set of parameters does not fit the SQL text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ParameterError {
    #[error("The SQL uses the parameter :{0} but no value was provided for it.")]
    Missing(String),
    #[error("The parameter {0} is not used in the SQL.")]
    Unused(String),
    #[error("The parameter {0} is specified more than once.")]
    Duplicate(String),
    #[error(
        "The parameter name {0:?} is invalid: it must be one or more letters, digits and underscores."
    )]
    InvalidName(String),
    /// The API's own constraint on `SqlParameter.value` (minimum length 1), in AWS's words.
    #[error(
        "1 validation error detected: Value '' at 'parameters.{0}.member.value' failed to satisfy constraint: Member must have length greater than or equal to 1"
    )]
    EmptyValue(usize),
}

/// Returns each statement of `sqls` with its placeholders replaced by the
/// parameter values. Every placeholder needs a value and every value must be
/// used by at least one statement, as the Data API requires.
pub(crate) fn bind(
    sqls: &[String],
    parameters: &[(String, String)],
) -> Result<Vec<String>, ParameterError> {
    let values = index_parameters(parameters)?;
    let mut used = HashSet::new();
    let bound = sqls
        .iter()
        .map(|sql| bind_statement(sql, &values, &mut used))
        .collect::<Result<Vec<_>, _>>()?;
    match parameters
        .iter()
        .find(|(name, _)| !used.contains(name.as_str()))
    {
        Some((name, _)) => Err(ParameterError::Unused(name.clone())),
        None => Ok(bound),
    }
}

fn index_parameters(
    parameters: &[(String, String)],
) -> Result<HashMap<&str, &str>, ParameterError> {
    let mut values = HashMap::with_capacity(parameters.len());
    for (index, (name, value)) in parameters.iter().enumerate() {
        if value.is_empty() {
            return Err(ParameterError::EmptyValue(index + 1));
        }
        if name.is_empty() || name_len(name.as_bytes()) != name.len() {
            return Err(ParameterError::InvalidName(name.clone()));
        }
        if values.insert(name.as_str(), value.as_str()).is_some() {
            return Err(ParameterError::Duplicate(name.clone()));
        }
    }
    Ok(values)
}

fn bind_statement<'a>(
    sql: &str,
    values: &HashMap<&'a str, &str>,
    used: &mut HashSet<&'a str>,
) -> Result<String, ParameterError> {
    let mut out = String::with_capacity(sql.len());
    for segment in segments(sql) {
        if segment.kind == SegmentKind::Code {
            bind_code(segment.text, values, used, &mut out)?;
        } else {
            out.push_str(segment.text);
        }
    }
    Ok(out)
}

/// Replaces placeholders in a run of code (no literals or comments inside).
fn bind_code<'a>(
    code: &str,
    values: &HashMap<&'a str, &str>,
    used: &mut HashSet<&'a str>,
    out: &mut String,
) -> Result<(), ParameterError> {
    let bytes = code.as_bytes();
    let mut copied = 0;
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] != b':' {
            at += 1;
            continue;
        }
        if bytes.get(at + 1) == Some(&b':') {
            at += 2; // the `::` cast operator
            continue;
        }
        let name_len = name_len(&bytes[at + 1..]);
        if name_len == 0 {
            at += 1;
            continue;
        }
        let name = &code[at + 1..at + 1 + name_len];
        // A name may start with a digit (the API's pattern is [0-9a-zA-Z_]+), but `:2` is also
        // SQL's own (the array slice `a[1:2]`): such a run is a placeholder only when a
        // parameter has that name.
        if name.starts_with(|c: char| c.is_ascii_digit()) && !values.contains_key(name) {
            at += 1 + name_len;
            continue;
        }
        let (&key, &value) = values
            .get_key_value(name)
            .ok_or_else(|| ParameterError::Missing(name.to_owned()))?;
        used.insert(key);
        out.push_str(&code[copied..at]);
        push_literal(out, value);
        at += 1 + name_len;
        copied = at;
    }
    out.push_str(&code[copied..]);
    Ok(())
}

/// Length of the run of name characters (letters, digits, underscores) at the start of `bytes`.
fn name_len(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
        .unwrap_or(bytes.len())
}

/// An untyped standard SQL string literal; with `standard_conforming_strings`
/// (the default) only the quote itself needs escaping.
fn push_literal(out: &mut String, value: &str) {
    out.push('\'');
    out.push_str(&value.replace('\'', "''"));
    out.push('\'');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn bind_one(sql: &str, pairs: &[(&str, &str)]) -> Result<String, ParameterError> {
        bind(&[sql.to_owned()], &params(pairs)).map(|mut v| v.remove(0))
    }

    #[test]
    fn substitutes_quoted_literals_and_leaves_casts_strings_and_comments() {
        let sql = "SELECT :a::int, ':a', \":a\", x -- :a\n FROM t WHERE n = :name_2";
        assert_eq!(
            bind_one(sql, &[("a", "1"), ("name_2", "O'Brien")]).as_deref(),
            Ok("SELECT '1'::int, ':a', \":a\", x -- :a\n FROM t WHERE n = 'O''Brien'")
        );
    }

    #[test]
    fn backslashes_stay_literal() {
        assert_eq!(
            bind_one("SELECT :v", &[("v", r"a\'b")]).as_deref(),
            Ok(r"SELECT 'a\''b'")
        );
    }

    #[test]
    fn reports_missing_unused_duplicate_and_invalid_parameters() {
        assert_eq!(
            bind_one("SELECT :a", &[]),
            Err(ParameterError::Missing("a".into()))
        );
        assert_eq!(
            bind_one("SELECT 1", &[("a", "1")]),
            Err(ParameterError::Unused("a".into()))
        );
        assert_eq!(
            bind_one("SELECT :a", &[("a", "1"), ("a", "2")]),
            Err(ParameterError::Duplicate("a".into()))
        );
        assert_eq!(
            bind_one("SELECT :a", &[("a", "1"), ("b-c", "2")]),
            Err(ParameterError::InvalidName("b-c".into()))
        );
    }

    #[test]
    fn an_empty_value_is_refused_as_the_data_api_does() {
        let refused = bind_one("SELECT :a, :b", &[("a", "x"), ("b", "")]).unwrap_err();
        assert_eq!(refused, ParameterError::EmptyValue(2));
        assert!(refused.to_string().contains("'parameters.2.member.value'"));
        assert!(
            refused
                .to_string()
                .contains("Member must have length greater than or equal to 1")
        );
    }

    #[test]
    fn a_parameter_used_by_any_statement_of_a_batch_counts_as_used() {
        let sqls = vec!["SELECT :a".to_owned(), "SELECT 2".to_owned()];
        assert_eq!(
            bind(&sqls, &params(&[("a", "x")])),
            Ok(vec!["SELECT 'x'".to_owned(), "SELECT 2".to_owned()])
        );
    }

    #[test]
    fn a_name_may_start_with_a_digit_as_the_api_allows() {
        assert_eq!(
            bind_one("SELECT :1st, a[1:2]", &[("1st", "x")]).as_deref(),
            Ok("SELECT 'x', a[1:2]")
        );
        assert_eq!(
            bind_one("SELECT 1", &[("", "x")]),
            Err(ParameterError::InvalidName(String::new()))
        );
    }

    #[test]
    fn array_slices_without_a_name_are_not_placeholders() {
        assert_eq!(
            bind_one("SELECT a[1:2]", &[]).as_deref(),
            Ok("SELECT a[1:2]")
        );
    }
}
