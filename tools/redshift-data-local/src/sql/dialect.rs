//! Rejects PostgreSQL features that Redshift does not have.
//!
//! The stand-in runs SQL on PostgreSQL, which accepts far more than Redshift.
//! SQL that only works here would fail in production, so the constructs that
//! are cheap to spot and easy to reach for by habit (`ON CONFLICT`,
//! `RETURNING`, `SERIAL` columns, indexes) fail the statement with an error like
//! the one Redshift gives.
//!
//! The other way round, Redshift accepts key constraints but never enforces
//! them: [`defines_table`] tells the executor when to drop what PostgreSQL
//! would enforce. (A foreign key to a table defined here then fails, its key
//! being gone: stricter than Redshift, never kinder.)

use super::lexer::{SegmentKind, is_identifier_byte, segments};

/// A construct Redshift would reject, with the message it would give.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Unsupported(String);

/// Checks one SQL statement (parameters already bound).
pub(crate) fn check(sql: &str) -> Result<(), Unsupported> {
    let words = code_words(sql);
    let is_ddl = words
        .first()
        .is_some_and(|w| w.eq_ignore_ascii_case("CREATE") || w.eq_ignore_ascii_case("ALTER"));
    if is_ddl
        && let Some(index) = words
            .iter()
            .take(3)
            .position(|w| w.eq_ignore_ascii_case("INDEX"))
    {
        return Err(Unsupported(format!(
            "syntax error at or near \"{}\"",
            words[index]
        )));
    }
    for (i, word) in words.iter().enumerate() {
        let next = words.get(i + 1);
        if word.eq_ignore_ascii_case("ON")
            && next.is_some_and(|n| n.eq_ignore_ascii_case("CONFLICT"))
        {
            return Err(syntax_error(word));
        }
        if word.eq_ignore_ascii_case("RETURNING") {
            return Err(syntax_error(word));
        }
        if is_ddl && i > 0 && is_serial_type(word) {
            return Err(Unsupported(format!(
                "Column \"{}\" has unsupported type \"{}\".",
                words[i - 1],
                word.to_ascii_lowercase()
            )));
        }
    }
    Ok(())
}

/// True for `CREATE TABLE` and `ALTER TABLE`: statements after which PostgreSQL
/// would enforce primary key, unique or foreign key constraints that Redshift
/// only records.
pub(crate) fn defines_table(sql: &str) -> bool {
    let words = code_words(sql);
    let verb = words.first().copied().unwrap_or_default();
    (verb.eq_ignore_ascii_case("CREATE") || verb.eq_ignore_ascii_case("ALTER"))
        && words
            .iter()
            .take(4)
            .any(|w| w.eq_ignore_ascii_case("TABLE"))
}

fn syntax_error(word: &str) -> Unsupported {
    Unsupported(format!("syntax error at or near \"{word}\""))
}

fn is_serial_type(word: &str) -> bool {
    [
        "SERIAL",
        "SERIAL4",
        "SERIAL8",
        "BIGSERIAL",
        "SMALLSERIAL",
        "SERIAL2",
    ]
    .iter()
    .any(|t| word.eq_ignore_ascii_case(t))
}

/// The unquoted words of the statement, in order, outside literals and comments.
fn code_words(sql: &str) -> Vec<&str> {
    segments(sql)
        .into_iter()
        .filter(|s| s.kind == SegmentKind::Code)
        .flat_map(|s| {
            s.text
                .split(|c: char| c.is_ascii() && !is_identifier_byte(c as u8))
        })
        .filter(|w| !w.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(sql: &str) -> Option<String> {
        check(sql).err().map(|e| e.to_string())
    }

    #[test]
    fn rejects_on_conflict_returning_and_serial() {
        assert_eq!(
            message("INSERT INTO t VALUES (1) on conflict (id) DO NOTHING").as_deref(),
            Some("syntax error at or near \"on\"")
        );
        assert_eq!(
            message("DELETE FROM t RETURNING id").as_deref(),
            Some("syntax error at or near \"RETURNING\"")
        );
        assert_eq!(
            message("CREATE TABLE t (id BIGSERIAL PRIMARY KEY)").as_deref(),
            Some("Column \"id\" has unsupported type \"bigserial\".")
        );
    }

    #[test]
    fn rejects_indexes_which_redshift_does_not_have() {
        assert_eq!(
            message("CREATE UNIQUE INDEX calls_id ON calls (id)").as_deref(),
            Some("syntax error at or near \"INDEX\"")
        );
        assert_eq!(message("CREATE TABLE index_log (id INT)"), None);
    }

    #[test]
    fn tells_which_statements_define_tables() {
        assert!(defines_table(
            "CREATE TABLE IF NOT EXISTS calls (id VARCHAR(10))"
        ));
        assert!(defines_table("create temp table t (id int primary key)"));
        assert!(defines_table("ALTER TABLE calls ADD PRIMARY KEY (id)"));
        assert!(!defines_table("INSERT INTO calls VALUES ('CREATE TABLE')"));
        assert!(!defines_table("SELECT 1"));
    }

    #[test]
    fn ignores_words_in_literals_identifiers_and_comments() {
        assert_eq!(
            message("SELECT 'on conflict', \"returning\" -- serial\nFROM t"),
            None
        );
        assert_eq!(message("SELECT serial FROM t JOIN u ON t.id = u.id"), None);
    }
}
