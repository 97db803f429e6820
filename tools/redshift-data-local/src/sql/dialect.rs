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
//! being gone: stricter than Redshift, never kinder.) And Redshift's table
//! attributes, which only place and compress data, are taken out before
//! PostgreSQL sees them ([`to_postgres`]).

use std::borrow::Cow;

use super::lexer::{SegmentKind, Token, TokenKind, is_identifier_byte, segments, tokens};

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
    if let Some(refusal) = alter_column_if_exists(&words) {
        return Err(refusal);
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

/// `ALTER TABLE ... ADD [COLUMN] IF NOT EXISTS` and `DROP [COLUMN] IF EXISTS`: PostgreSQL
/// has them, Redshift's ALTER TABLE does not (its grammar takes `IF` for the column's name).
fn alter_column_if_exists(words: &[&str]) -> Option<Unsupported> {
    let is = |i: usize, keyword: &str| {
        words
            .get(i)
            .is_some_and(|w| w.eq_ignore_ascii_case(keyword))
    };
    if !(is(0, "ALTER") && is(1, "TABLE")) {
        return None;
    }
    (2..words.len()).find_map(|i| {
        if !(is(i, "ADD") || is(i, "DROP")) {
            return None;
        }
        let at_if = if is(i + 1, "COLUMN") { i + 2 } else { i + 1 };
        let after_if = words.get(at_if + 1).copied()?;
        let refused = is(at_if, "IF")
            && (after_if.eq_ignore_ascii_case("NOT") || after_if.eq_ignore_ascii_case("EXISTS"));
        refused.then(|| syntax_error(after_if))
    })
}

/// The statement as PostgreSQL can run it: Redshift's table attributes (`DISTSTYLE`,
/// `DISTKEY`, `[COMPOUND | INTERLEAVED] SORTKEY`, `ENCODE`, `BACKUP`, as in "CREATE TABLE"
/// and "ALTER TABLE" of the Database Developer Guide) decide only where rows are stored and
/// how they are compressed, so they are taken out of `CREATE TABLE` and of an `ALTER TABLE`'s
/// `ADD COLUMN`.
pub(crate) fn to_postgres(sql: &str) -> Cow<'_, str> {
    let tokens = tokens(sql);
    let is = |i: usize, keyword: &str| tokens.get(i).is_some_and(|t| t.is_word(keyword));
    let removed = if is(0, "CREATE") && (1..4).any(|i| is(i, "TABLE")) {
        create_table_attributes(&tokens)
    } else if is(0, "ALTER") && is(1, "TABLE") {
        added_column_encodings(&tokens)
    } else {
        Vec::new()
    };
    if removed.is_empty() {
        return Cow::Borrowed(sql);
    }
    let mut kept = String::with_capacity(sql.len());
    let mut at = 0;
    for (start, end) in removed {
        kept.push_str(&sql[at..start]);
        kept.push(' ');
        at = end;
    }
    kept.push_str(&sql[at..]);
    Cow::Owned(kept)
}

/// Byte ranges of the table and column attributes of a `CREATE TABLE`; a `CREATE TABLE AS`
/// is looked at only up to its query.
fn create_table_attributes(tokens: &[Token<'_>]) -> Vec<(usize, usize)> {
    let mut removed = Vec::new();
    let mut depth = 0usize;
    // At the first token of a column or constraint definition, where a word is a name.
    let mut at_definition = false;
    let mut index = 0;
    while index < tokens.len() {
        let token = tokens[index];
        if token.is_symbol('(') || token.is_symbol(')') || (depth == 1 && token.is_symbol(',')) {
            if token.is_symbol('(') {
                depth += 1;
            } else if token.is_symbol(')') {
                depth = depth.saturating_sub(1);
            }
            at_definition = depth == 1 && !token.is_symbol(')');
            index += 1;
            continue;
        }
        if depth == 0 && token.is_word("AS") {
            break;
        }
        let attribute = match depth {
            0 => table_attribute_end(tokens, index),
            1 if !at_definition => column_attribute_end(tokens, index),
            _ => None,
        };
        if depth == 1 {
            at_definition = false;
        }
        match attribute {
            Some(last) => {
                removed.push((token.start, tokens[last].end()));
                index = last + 1;
            }
            None => index += 1,
        }
    }
    removed
}

/// `ENCODE <encoding>` in the column an `ALTER TABLE ... ADD [COLUMN]` adds.
fn added_column_encodings(tokens: &[Token<'_>]) -> Vec<(usize, usize)> {
    let Some(add) = tokens.iter().position(|t| t.is_word("ADD")) else {
        return Vec::new();
    };
    (add + 1..tokens.len())
        .filter(|&i| tokens[i].is_word("ENCODE") && is_word_at(tokens, i + 1))
        .map(|i| (tokens[i].start, tokens[i + 1].end()))
        .collect()
}

/// The last token of a table attribute starting at `index`, if one does.
fn table_attribute_end(tokens: &[Token<'_>], index: usize) -> Option<usize> {
    let token = tokens[index];
    let word_follows = |keywords: &[&str]| {
        tokens
            .get(index + 1)
            .is_some_and(|next| keywords.iter().any(|k| next.is_word(k)))
    };
    if token.is_word("DISTSTYLE") && word_follows(&["AUTO", "EVEN", "KEY", "ALL"])
        || token.is_word("BACKUP") && word_follows(&["YES", "NO"])
        || token.is_word("ENCODE") && word_follows(&["AUTO"])
        || token.is_word("SORTKEY") && word_follows(&["AUTO"])
    {
        return Some(index + 1);
    }
    if token.is_word("DISTKEY") || token.is_word("SORTKEY") {
        return closing_paren(tokens, index + 1);
    }
    if (token.is_word("COMPOUND") || token.is_word("INTERLEAVED"))
        && tokens.get(index + 1).is_some_and(|t| t.is_word("SORTKEY"))
    {
        return closing_paren(tokens, index + 2);
    }
    None
}

/// The last token of a column attribute (`ENCODE zstd`, `DISTKEY`, `SORTKEY`) at `index`.
fn column_attribute_end(tokens: &[Token<'_>], index: usize) -> Option<usize> {
    let token = tokens[index];
    if token.is_word("ENCODE") && is_word_at(tokens, index + 1) {
        return Some(index + 1);
    }
    (token.is_word("DISTKEY") || token.is_word("SORTKEY")).then_some(index)
}

fn is_word_at(tokens: &[Token<'_>], index: usize) -> bool {
    tokens.get(index).is_some_and(|t| t.kind == TokenKind::Word)
}

/// The index of the `)` closing the `(` at `open`, if `open` is one.
fn closing_paren(tokens: &[Token<'_>], open: usize) -> Option<usize> {
    if !tokens.get(open)?.is_symbol('(') {
        return None;
    }
    let mut depth = 0usize;
    for (index, token) in tokens.iter().enumerate().skip(open) {
        if token.is_symbol('(') {
            depth += 1;
        } else if token.is_symbol(')') {
            depth -= 1;
            if depth == 0 {
                return Some(index);
            }
        }
    }
    None
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
    fn rejects_if_exists_in_alter_table_columns() {
        assert_eq!(
            message("ALTER TABLE calls ADD COLUMN IF NOT EXISTS n int").as_deref(),
            Some("syntax error at or near \"NOT\"")
        );
        assert_eq!(
            message("alter table calls drop if exists n").as_deref(),
            Some("syntax error at or near \"exists\"")
        );
        assert_eq!(message("ALTER TABLE calls ADD COLUMN n int"), None);
    }

    #[test]
    fn strips_redshift_table_and_column_attributes() {
        let sql = "CREATE TABLE IF NOT EXISTS calls (\n  id VARCHAR(10) NOT NULL ENCODE zstd DISTKEY,\n  \
                   sortkey INT SORTKEY,\n  at TIMESTAMP DEFAULT GETDATE() ENCODE az64,\n  \
                   PRIMARY KEY (id)\n) BACKUP NO DISTSTYLE KEY DISTKEY (id) COMPOUND SORTKEY (at, id)";
        let stripped = to_postgres(sql);
        let words: Vec<_> = stripped.split_whitespace().collect();
        assert_eq!(
            words.join(" "),
            "CREATE TABLE IF NOT EXISTS calls ( id VARCHAR(10) NOT NULL , sortkey INT , \
             at TIMESTAMP DEFAULT GETDATE() , PRIMARY KEY (id) )"
        );
        for sql in [
            "CREATE TABLE t (n int) DISTSTYLE AUTO SORTKEY AUTO ENCODE AUTO",
            "CREATE TABLE t (n int) DISTSTYLE ALL INTERLEAVED SORTKEY (n)",
            "CREATE TABLE t (n int) DISTSTYLE EVEN SORTKEY (n)",
        ] {
            assert_eq!(
                to_postgres(sql).trim_end(),
                "CREATE TABLE t (n int)",
                "{sql}"
            );
        }
    }

    #[test]
    fn strips_attributes_of_added_columns_and_of_ctas_but_not_its_query() {
        assert_eq!(
            to_postgres("ALTER TABLE calls ADD COLUMN at TIMESTAMP DEFAULT GETDATE() ENCODE az64"),
            "ALTER TABLE calls ADD COLUMN at TIMESTAMP DEFAULT GETDATE()  "
        );
        assert_eq!(
            to_postgres(
                "CREATE TABLE t DISTSTYLE EVEN AS SELECT encode(b, 'hex') AS backup FROM s"
            ),
            "CREATE TABLE t   AS SELECT encode(b, 'hex') AS backup FROM s"
        );
        let untouched = "INSERT INTO t VALUES ('DISTSTYLE EVEN')";
        assert!(matches!(to_postgres(untouched), Cow::Borrowed(_)));
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
