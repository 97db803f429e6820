//! What a statement does to transactions: whether it takes the transaction's snapshot, which
//! tables it writes, whether it can run inside a transaction block at all.
//!
//! Redshift takes a transaction's snapshot "on the first occurrence of most SELECT statements,
//! DML commands such as COPY, DELETE, INSERT, UPDATE, and TRUNCATE" and table DDL, not at LOCK
//! ("Isolation levels in Amazon Redshift"), and its writers take a write lock on the table they
//! write ("Concurrent write examples"). The stand-in needs both to model Redshift's table-level
//! write conflicts: this is the cheap, lexical way to know them.

use super::lexer::{Token, tokens};

/// Statements that leave the snapshot alone, in PostgreSQL as in Redshift (transaction control,
/// LOCK, settings). Every other statement freezes a REPEATABLE READ or SERIALIZABLE transaction's
/// view of the data when it begins: PostgreSQL does so for utility statements too.
const SNAPSHOT_FREE: [&str; 17] = [
    "BEGIN",
    "START",
    "COMMIT",
    "END",
    "ROLLBACK",
    "ABORT",
    "SAVEPOINT",
    "RELEASE",
    "LOCK",
    "SET",
    "SHOW",
    "RESET",
    "FETCH",
    "LISTEN",
    "NOTIFY",
    "UNLISTEN",
    "CHECKPOINT",
];

/// Statements that can write a table: only in these are INSERT INTO, UPDATE, ... looked for.
const WRITING_VERBS: [&str; 6] = ["INSERT", "UPDATE", "DELETE", "TRUNCATE", "COPY", "WITH"];

/// Words before UPDATE that make it something else than a write (`FOR UPDATE`, `ON UPDATE`).
const NOT_A_WRITE_BEFORE_UPDATE: [&str; 4] = ["FOR", "ON", "DO", "KEY"];

fn first_word<'a>(tokens: &[Token<'a>]) -> Option<&'a str> {
    tokens.first().map(|t| t.text)
}

fn is_one_of(word: Option<&str>, list: &[&str]) -> bool {
    word.is_some_and(|w| list.iter().any(|k| w.eq_ignore_ascii_case(k)))
}

/// Whether the statement freezes the transaction's snapshot when it begins.
pub(crate) fn takes_snapshot(sql: &str) -> bool {
    let tokens = tokens(sql);
    !tokens.is_empty() && !is_one_of(first_word(&tokens), &SNAPSHOT_FREE)
}

/// VACUUM and CREATE or DROP DATABASE refuse to run inside a transaction block, on PostgreSQL
/// as on Redshift: alone in a statement they run in auto-commit.
pub(crate) fn runs_outside_transactions(sql: &str) -> bool {
    let tokens = tokens(sql);
    match tokens.as_slice() {
        [verb, ..] if verb.is_word("VACUUM") => true,
        [verb, object, ..] => {
            (verb.is_word("CREATE") || verb.is_word("DROP")) && object.is_word("DATABASE")
        }
        _ => false,
    }
}

/// The tables the statement writes (INSERT INTO, UPDATE, DELETE FROM, TRUNCATE, COPY), as
/// written in it (`calls`, `public.calls`, `"Calls"`), each once, in order.
pub(crate) fn written_tables(sql: &str) -> Vec<String> {
    let tokens = tokens(sql);
    if !is_one_of(first_word(&tokens), &WRITING_VERBS) {
        return Vec::new();
    }
    let mut tables: Vec<String> = Vec::new();
    for index in 0..tokens.len() {
        for table in targets_at(&tokens, index) {
            if !tables.contains(&table) {
                tables.push(table);
            }
        }
    }
    tables
}

/// The tables written by the clause that starts at `index`, if one does.
fn targets_at(tokens: &[Token<'_>], index: usize) -> Vec<String> {
    let token = tokens[index];
    let next = |offset: usize| tokens.get(index + offset);
    if token.is_word("INSERT") && next(1).is_some_and(|t| t.is_word("INTO")) {
        return name_at(tokens, index + 2).into_iter().collect();
    }
    if token.is_word("DELETE") && next(1).is_some_and(|t| t.is_word("FROM")) {
        return name_at(tokens, skip_only(tokens, index + 2))
            .into_iter()
            .collect();
    }
    if token.is_word("UPDATE") && !follows_not_a_write(tokens, index) {
        return name_at(tokens, skip_only(tokens, index + 1))
            .into_iter()
            .collect();
    }
    if token.is_word("COPY") && index == 0 {
        return name_at(tokens, 1).into_iter().collect();
    }
    if token.is_word("TRUNCATE") {
        let first = match next(1) {
            Some(t) if t.is_word("TABLE") => index + 2,
            _ => index + 1,
        };
        return name_list_at(tokens, skip_only(tokens, first));
    }
    Vec::new()
}

fn follows_not_a_write(tokens: &[Token<'_>], index: usize) -> bool {
    index
        .checked_sub(1)
        .and_then(|before| tokens.get(before))
        .is_some_and(|t| NOT_A_WRITE_BEFORE_UPDATE.iter().any(|k| t.is_word(k)))
}

fn skip_only(tokens: &[Token<'_>], index: usize) -> usize {
    match tokens.get(index) {
        Some(t) if t.is_word("ONLY") => index + 1,
        _ => index,
    }
}

/// `a, b.c, "D"` from `index` on.
fn name_list_at(tokens: &[Token<'_>], mut index: usize) -> Vec<String> {
    let mut names = Vec::new();
    while let Some((name, end)) = name_and_end_at(tokens, index) {
        names.push(name);
        match tokens.get(end) {
            Some(t) if t.is_symbol(',') => index = end + 1,
            _ => break,
        }
    }
    names
}

fn name_at(tokens: &[Token<'_>], index: usize) -> Option<String> {
    name_and_end_at(tokens, index).map(|(name, _)| name)
}

/// A possibly qualified name starting at `index`, and the index just after it.
fn name_and_end_at(tokens: &[Token<'_>], index: usize) -> Option<(String, usize)> {
    let first = tokens.get(index).filter(|t| t.is_name())?;
    let mut name = first.text.to_owned();
    let mut end = index + 1;
    while let (Some(dot), Some(part)) = (tokens.get(end), tokens.get(end + 1)) {
        if !dot.is_symbol('.') || !part.is_name() {
            break;
        }
        name.push('.');
        name.push_str(part.text);
        end += 2;
    }
    Some((name, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_tables_each_kind_of_write_targets() {
        assert_eq!(
            written_tables("INSERT INTO calls SELECT 'a' WHERE NOT EXISTS (SELECT 1 FROM calls)"),
            ["calls"]
        );
        assert_eq!(
            written_tables("update ONLY public.calls SET a = 1 FROM other"),
            ["public.calls"]
        );
        assert_eq!(
            written_tables("DELETE FROM \"Calls\" WHERE id = 'x'"),
            ["\"Calls\""]
        );
        assert_eq!(written_tables("TRUNCATE TABLE a, b.c"), ["a", "b.c"]);
        assert_eq!(written_tables("COPY calls FROM 's3://x'"), ["calls"]);
        assert_eq!(
            written_tables("WITH d AS (DELETE FROM a RETURNING *) INSERT INTO b SELECT * FROM d"),
            ["a", "b"]
        );
    }

    #[test]
    fn reads_and_other_statements_write_nothing() {
        assert!(written_tables("SELECT * FROM calls FOR UPDATE").is_empty());
        assert!(written_tables("SELECT 'INSERT INTO calls'").is_empty());
        assert!(written_tables("LOCK calls").is_empty());
        assert!(written_tables("GRANT UPDATE ON calls TO bob").is_empty());
        assert!(
            written_tables("CREATE TABLE t (id int REFERENCES p ON UPDATE CASCADE)").is_empty()
        );
    }

    #[test]
    fn lock_and_transaction_control_leave_the_snapshot_alone() {
        assert!(!takes_snapshot("LOCK calls"));
        assert!(!takes_snapshot("  set search_path TO x"));
        assert!(takes_snapshot("SELECT 1"));
        assert!(takes_snapshot("INSERT INTO calls VALUES (1)"));
        assert!(takes_snapshot("CREATE TABLE t (n int)"));
    }

    #[test]
    fn vacuum_and_database_ddl_run_outside_transactions() {
        assert!(runs_outside_transactions("VACUUM calls"));
        assert!(runs_outside_transactions("create database x"));
        assert!(!runs_outside_transactions(
            "CREATE TABLE database_log (n int)"
        ));
    }
}
