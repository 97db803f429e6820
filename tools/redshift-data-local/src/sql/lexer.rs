//! Splits SQL text into code, quoted text and comments.
//!
//! Parameter placeholders and the keywords Redshift rejects only count in code:
//! `':name'` is a string, `"returning"` an identifier, `-- on conflict` a
//! comment. This is not a parser; it only knows PostgreSQL's quoting rules.

/// What a piece of SQL text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SegmentKind {
    Code,
    /// A string literal, quoted identifier or dollar-quoted string.
    Quoted,
    Comment,
}

/// A contiguous piece of SQL text of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment<'a> {
    pub(crate) kind: SegmentKind,
    pub(crate) text: &'a str,
}

/// Splits `sql` into segments; concatenating their texts gives `sql` back.
/// An unterminated literal or comment runs to the end of the text.
pub(crate) fn segments(sql: &str) -> Vec<Segment<'_>> {
    let bytes = sql.as_bytes();
    let mut segments = Vec::new();
    let mut code_start = 0;
    let mut at = 0;
    while at < bytes.len() {
        let Some((kind, end)) = special_at(sql, at) else {
            at += 1;
            continue;
        };
        if code_start < at {
            segments.push(segment(SegmentKind::Code, &sql[code_start..at]));
        }
        segments.push(segment(kind, &sql[at..end]));
        at = end;
        code_start = end;
    }
    if code_start < bytes.len() {
        segments.push(segment(SegmentKind::Code, &sql[code_start..]));
    }
    segments
}

fn segment(kind: SegmentKind, text: &str) -> Segment<'_> {
    Segment { kind, text }
}

/// If a literal or comment starts at byte `at`, its kind and end offset.
fn special_at(sql: &str, at: usize) -> Option<(SegmentKind, usize)> {
    let bytes = sql.as_bytes();
    let next = bytes.get(at + 1).copied();
    match bytes[at] {
        b'-' if next == Some(b'-') => Some((SegmentKind::Comment, line_end(bytes, at))),
        b'/' if next == Some(b'*') => Some((SegmentKind::Comment, block_comment_end(bytes, at))),
        b'\'' => {
            let escapes = has_escape_prefix(bytes, at);
            Some((SegmentKind::Quoted, quoted_end(bytes, at, b'\'', escapes)))
        }
        b'"' => Some((SegmentKind::Quoted, quoted_end(bytes, at, b'"', false))),
        b'$' => dollar_quoted_end(sql, at).map(|end| (SegmentKind::Quoted, end)),
        _ => None,
    }
}

fn line_end(bytes: &[u8], at: usize) -> usize {
    bytes[at..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |offset| at + offset + 1)
}

/// Block comments nest in PostgreSQL.
fn block_comment_end(bytes: &[u8], at: usize) -> usize {
    let mut depth = 0;
    let mut i = at;
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

/// `E'...'` strings treat backslash as an escape character.
fn has_escape_prefix(bytes: &[u8], quote: usize) -> bool {
    quote > 0
        && bytes[quote - 1].eq_ignore_ascii_case(&b'e')
        && (quote < 2 || !is_identifier_byte(bytes[quote - 2]))
}

/// End of a quoted run opened at `at`; a doubled quote is an escaped quote.
fn quoted_end(bytes: &[u8], at: usize, quote: u8, backslash_escapes: bool) -> usize {
    let mut i = at + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if backslash_escapes => i += 2,
            b if b == quote && bytes.get(i + 1) == Some(&quote) => i += 2,
            b if b == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// `$tag$ ... $tag$` (the tag may be empty). `$1` and `a$b` are not quotes.
fn dollar_quoted_end(sql: &str, at: usize) -> Option<usize> {
    let bytes = sql.as_bytes();
    if at > 0 && is_identifier_byte(bytes[at - 1]) {
        return None;
    }
    let tag_len = bytes[at + 1..].iter().position(|&b| !is_tag_byte(b))?;
    if bytes.get(at + 1 + tag_len) != Some(&b'$')
        || bytes.get(at + 1).is_some_and(u8::is_ascii_digit)
    {
        return None;
    }
    let delimiter = &sql[at..at + tag_len + 2];
    let body_start = at + delimiter.len();
    Some(
        sql[body_start..]
            .find(delimiter)
            .map_or(sql.len(), |offset| body_start + offset + delimiter.len()),
    )
}

/// Bytes of a dollar-quote tag: like an identifier, without `$`.
fn is_tag_byte(byte: u8) -> bool {
    byte != b'$' && is_identifier_byte(byte)
}

/// What a token of SQL code is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// A keyword, unquoted identifier or number: a run of identifier bytes.
    Word,
    /// A double-quoted identifier, quotes included.
    QuotedIdent,
    /// A string or dollar-quoted literal.
    Literal,
    /// Any other single character of code (`(`, `,`, `.`, ...).
    Symbol,
}

/// A token and where it starts in the SQL text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token<'a> {
    pub(crate) kind: TokenKind,
    pub(crate) text: &'a str,
    pub(crate) start: usize,
}

impl Token<'_> {
    pub(crate) fn end(&self) -> usize {
        self.start + self.text.len()
    }

    /// This keyword, in any case.
    pub(crate) fn is_word(&self, keyword: &str) -> bool {
        self.kind == TokenKind::Word && self.text.eq_ignore_ascii_case(keyword)
    }

    pub(crate) fn is_symbol(&self, symbol: char) -> bool {
        self.kind == TokenKind::Symbol && self.text.starts_with(symbol)
    }

    /// A part of a (possibly qualified) name: a word or a quoted identifier.
    pub(crate) fn is_name(&self) -> bool {
        matches!(self.kind, TokenKind::Word | TokenKind::QuotedIdent)
    }
}

/// The tokens of `sql`, comments and whitespace left out.
pub(crate) fn tokens(sql: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let mut offset = 0;
    for segment in segments(sql) {
        match segment.kind {
            SegmentKind::Code => code_tokens(segment.text, offset, &mut tokens),
            SegmentKind::Quoted => {
                let kind = if segment.text.starts_with('"') {
                    TokenKind::QuotedIdent
                } else {
                    TokenKind::Literal
                };
                tokens.push(Token {
                    kind,
                    text: segment.text,
                    start: offset,
                });
            }
            SegmentKind::Comment => {}
        }
        offset += segment.text.len();
    }
    tokens
}

fn code_tokens<'a>(code: &'a str, offset: usize, tokens: &mut Vec<Token<'a>>) {
    let bytes = code.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        if byte.is_ascii_whitespace() {
            at += 1;
            continue;
        }
        let (kind, end) = if is_identifier_byte(byte) {
            let run = bytes[at..]
                .iter()
                .position(|b| !is_identifier_byte(*b))
                .unwrap_or(bytes.len() - at);
            (TokenKind::Word, at + run)
        } else {
            // Identifier bytes cover every non-ASCII byte, so this is one ASCII character.
            (TokenKind::Symbol, at + 1)
        };
        tokens.push(Token {
            kind,
            text: &code[at..end],
            start: offset + at,
        });
        at = end;
    }
}

/// Bytes that may continue an unquoted identifier (non-ASCII letters included).
pub(crate) fn is_identifier_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'$' || byte >= 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(sql: &str) -> Vec<(SegmentKind, &str)> {
        segments(sql)
            .into_iter()
            .map(|s| (s.kind, s.text))
            .collect()
    }

    #[test]
    fn splits_literals_identifiers_and_comments_from_code() {
        use SegmentKind::*;
        let sql = "SELECT 'a''b', \"x\"\"y\" -- c\nFROM t /* a /* nested */ b */ WHERE";
        assert_eq!(
            kinds(sql),
            vec![
                (Code, "SELECT "),
                (Quoted, "'a''b'"),
                (Code, ", "),
                (Quoted, "\"x\"\"y\""),
                (Code, " "),
                (Comment, "-- c\n"),
                (Code, "FROM t "),
                (Comment, "/* a /* nested */ b */"),
                (Code, " WHERE"),
            ]
        );
    }

    #[test]
    fn escape_strings_and_dollar_quotes() {
        use SegmentKind::*;
        assert_eq!(
            kinds(r"x = E'it\'s' AND y = $q$ ' $q$ AND z = $1"),
            vec![
                (Code, "x = E"),
                (Quoted, r"'it\'s'"),
                (Code, " AND y = "),
                (Quoted, "$q$ ' $q$"),
                (Code, " AND z = $1"),
            ]
        );
    }

    #[test]
    fn unterminated_runs_to_the_end() {
        assert_eq!(
            kinds("SELECT 'abc"),
            vec![
                (SegmentKind::Code, "SELECT "),
                (SegmentKind::Quoted, "'abc")
            ]
        );
    }

    #[test]
    fn tokens_keep_their_place_and_skip_comments() {
        use TokenKind::*;
        let sql = "INSERT INTO \"My\".calls -- c\n VALUES ('a,b', 1)";
        let found: Vec<_> = tokens(sql).iter().map(|t| (t.kind, t.text)).collect();
        assert_eq!(
            found,
            [
                (Word, "INSERT"),
                (Word, "INTO"),
                (QuotedIdent, "\"My\""),
                (Symbol, "."),
                (Word, "calls"),
                (Word, "VALUES"),
                (Symbol, "("),
                (Literal, "'a,b'"),
                (Symbol, ","),
                (Word, "1"),
                (Symbol, ")"),
            ]
        );
        for token in tokens(sql) {
            assert_eq!(&sql[token.start..token.end()], token.text);
        }
    }

    #[test]
    fn reassembles_the_input() {
        let sql = "a 'b' \"c\" -- d\n/* e */ $$f$$ g";
        let joined: String = segments(sql).iter().map(|s| s.text).collect();
        assert_eq!(joined, sql);
    }
}
