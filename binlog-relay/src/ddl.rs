//! Reading the DDL of binlog QUERY events, for the schema history.
//!
//! [`parse`] reads one statement and says how it changes tables and their
//! columns. It covers:
//! - `CREATE [OR REPLACE] [TEMPORARY] TABLE`: the column list with each
//!   column's type and attributes, the primary key, the table's character
//!   set; also `... LIKE other` and `... [AS] SELECT`;
//! - `ALTER TABLE`: column additions, changes, renames and drops, primary key
//!   changes, defaults and character set conversions; every other operation
//!   is kept as text ([`AlterOp::Other`]);
//! - `RENAME TABLE`, `TRUNCATE`, `DROP TABLE`, `CREATE`/`DROP DATABASE` and
//!   `CREATE`/`DROP INDEX` (which only name their table).
//!
//! Any other statement is [`Statement::Other`] after its first few words,
//! even when the rest of it could not be read. Tracked statements that cannot
//! be read give an `Err` with a message; no input panics.
//!
//! Read over on purpose, without failing: index and foreign key definitions,
//! table options other than the character set, partitioning, CHECK
//! constraints other than `json_valid(column)`, generated column expressions,
//! the query of `CREATE TABLE ... SELECT`, and unknown column attributes.
//!
//! The lexer follows the server's default SQL mode: `"..."` is a string
//! (`ANSI_QUOTES` is not supported) and backslash escapes are on
//! (`NO_BACKSLASH_ESCAPES` is not supported). The content of executable
//! comments (`/*! ... */`, `/*!40101 ... */`, `/*M!100301 ... */`) is read as
//! SQL whatever its version number.

/// A table name as written: `` `db`.`t` ``, `db.t` or `t`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    pub db: Option<String>,
    pub table: String,
}

/// Where an added or changed column goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    Last,
    First,
    After(String),
}

/// One column definition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ColumnDef {
    pub name: String,
    /// Base type, uppercase, without arguments, with synonyms normalised:
    /// INTEGER/INT4 -> INT, INT1 -> TINYINT, INT2 -> SMALLINT, INT3/MIDDLEINT
    /// -> MEDIUMINT, INT8 -> BIGINT, BOOL/BOOLEAN -> TINYINT (length 1),
    /// DEC/NUMERIC/FIXED -> DECIMAL, REAL/FLOAT8/DOUBLE PRECISION -> DOUBLE,
    /// FLOAT4 -> FLOAT, CHARACTER -> CHAR, CHAR/CHARACTER VARYING,
    /// NATIONAL VARCHAR, NVARCHAR, NCHAR VARYING -> VARCHAR, NCHAR/NATIONAL CHAR
    /// -> CHAR, LONG/LONG VARCHAR -> MEDIUMTEXT, LONG VARBINARY -> MEDIUMBLOB,
    /// GEOMCOLLECTION -> GEOMETRYCOLLECTION, SERIAL -> BIGINT (unsigned, not
    /// null, auto-increment). Unknown type words are kept, uppercase.
    pub type_name: String,
    /// The normalised base type with its arguments and UNSIGNED/ZEROFILL, e.g.
    /// "VARCHAR(255)", "DECIMAL(10,2) UNSIGNED", "ENUM('a','b')".
    pub type_expression: String,
    /// The first type argument: VARCHAR(255) -> 255, DECIMAL(10,2) -> 10.
    pub length: Option<i64>,
    /// The second type argument: DECIMAL(10,2) -> 2.
    pub scale: Option<i64>,
    /// UNSIGNED (or ZEROFILL, which implies it).
    pub unsigned: bool,
    /// ENUM/SET labels, unquoted, escapes resolved.
    pub enum_values: Vec<String>,
    /// Nullable: true unless NOT NULL or the column is in the primary key
    /// (inline or table-level: the server makes key columns NOT NULL).
    pub optional: bool,
    pub auto_increment: bool,
    /// The DEFAULT value: a string literal unquoted with escapes resolved,
    /// `(expr)` without its outer parentheses, anything else as written
    /// (`0`, `-1`, `current_timestamp()`). DEFAULT NULL gives `None` with
    /// `has_default` set.
    pub default: Option<String>,
    pub has_default: bool,
    /// In the primary key: inline `PRIMARY KEY` or bare `KEY`, or named by a
    /// table-level `PRIMARY KEY (...)`.
    pub primary_key: bool,
    /// `CHARACTER SET x` / `CHARSET x`, lowercase; NATIONAL and NCHAR types
    /// give "utf8mb3" unless a character set is written.
    pub charset: Option<String>,
    /// `COLLATE x`, lowercase.
    pub collation: Option<String>,
    pub comment: Option<String>,
    /// `[GENERATED ALWAYS] AS (expr)`, or `AS ROW START|END` (system versioning).
    pub generated: bool,
    /// Type JSON, or a `CHECK (json_valid(column))` inline or table-level.
    pub json: bool,
}

/// The columns of a `CREATE TABLE`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableDef {
    pub columns: Vec<ColumnDef>,
    /// Primary key column names in key order (table-level or inline); the
    /// columns' `primary_key` flags agree with it.
    pub primary_key: Vec<String>,
    /// The `[DEFAULT] CHARSET|CHARACTER SET [=] x` table option, lowercase.
    pub charset: Option<String>,
}

/// One operation of an `ALTER TABLE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterOp {
    /// `ADD [COLUMN] [IF NOT EXISTS] def [FIRST | AFTER c]`, or
    /// `ADD [COLUMN] (def, def, ...)` (position `Last`).
    AddColumns {
        columns: Vec<ColumnDef>,
        position: Position,
        if_not_exists: bool,
    },
    /// `MODIFY [COLUMN] [IF EXISTS] def [FIRST | AFTER c]`.
    Modify {
        column: ColumnDef,
        position: Position,
        if_exists: bool,
    },
    /// `CHANGE [COLUMN] [IF EXISTS] old def [FIRST | AFTER c]`.
    Change {
        old: String,
        column: ColumnDef,
        position: Position,
        if_exists: bool,
    },
    /// `DROP [COLUMN] [IF EXISTS] c`.
    DropColumn { name: String, if_exists: bool },
    /// `RENAME COLUMN a TO b`.
    RenameColumn { old: String, new: String },
    /// `RENAME [TO | AS] t`.
    RenameTable(Name),
    /// `ADD [CONSTRAINT [sym]] PRIMARY KEY (a, b(10), ...)`: the column names.
    AddPrimaryKey(Vec<String>),
    /// `DROP PRIMARY KEY`.
    DropPrimaryKey,
    /// `ALTER [COLUMN] c SET DEFAULT v`: `v` as in [`ColumnDef::default`],
    /// except that DEFAULT NULL gives "NULL".
    SetDefault { column: String, default: String },
    /// `ALTER [COLUMN] c DROP DEFAULT`.
    DropDefault { column: String },
    /// `CONVERT TO CHARACTER SET x` / `[DEFAULT] CHARACTER SET [=] x`, lowercase.
    Charset(String),
    /// Any operation that changes no column (indexes, foreign keys, checks,
    /// table options, partitioning, ...): its text, re-spaced, for logs.
    Other(String),
}

/// One statement, as far as the schema history cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    /// `CREATE [OR REPLACE] [TEMPORARY] TABLE [IF NOT EXISTS] t (...) ...`.
    CreateTable {
        table: Name,
        if_not_exists: bool,
        temporary: bool,
        def: TableDef,
    },
    /// `CREATE TABLE t LIKE s` or `CREATE TABLE t (LIKE s)`.
    CreateTableLike {
        table: Name,
        like: Name,
        if_not_exists: bool,
        temporary: bool,
    },
    /// `CREATE TABLE t [(...)] [IGNORE | REPLACE] [AS] SELECT ...`: the full
    /// column list is only known to the server; `def` holds what the
    /// parenthesised list gives (often nothing).
    CreateTableSelect {
        table: Name,
        temporary: bool,
        def: TableDef,
    },
    /// `ALTER [ONLINE] [IGNORE] TABLE [IF EXISTS] t op, op, ...`.
    AlterTable { table: Name, ops: Vec<AlterOp> },
    /// `RENAME TABLE a TO b, c TO d`.
    RenameTables(Vec<(Name, Name)>),
    /// `TRUNCATE [TABLE] t`.
    Truncate(Name),
    /// `DROP [TEMPORARY] TABLE [IF EXISTS] a, b`.
    DropTables {
        tables: Vec<Name>,
        if_exists: bool,
        temporary: bool,
    },
    /// `CREATE DATABASE|SCHEMA [IF NOT EXISTS] d`.
    CreateDatabase { name: String, if_not_exists: bool },
    /// `DROP DATABASE|SCHEMA [IF EXISTS] d`.
    DropDatabase { name: String, if_exists: bool },
    /// `CREATE ... INDEX i ON t` / `DROP INDEX i ON t`: no column change.
    IndexChange { table: Name },
    /// Anything the relay does not track (DML, GRANT, SET, views, routines, ...).
    Other,
}

/// Parses one statement (a trailing `;` is allowed).
///
/// # Errors
/// A message when the statement is one of the tracked kinds but cannot be
/// read (bad syntax, unbalanced parentheses, an unterminated string, quoted
/// identifier or comment), or when the input is nothing but a broken comment.
pub fn parse(sql: &str) -> Result<Statement, String> {
    let mut c = Cursor::new(sql);
    let stmt = statement(&mut c)?;
    if stmt != Statement::Other {
        c.finish()?;
    }
    Ok(stmt)
}

// ---------------------------------------------------------------- tokens

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// A keyword or unquoted identifier, as written.
    Word(String),
    /// A backtick-quoted identifier, unquoted.
    Quoted(String),
    /// A string literal, unquoted with escapes resolved.
    Str(String),
    /// A number, or a hex/bit literal, as written.
    Num(String),
    /// Punctuation or an operator.
    Sym(String),
}

/// Words that cannot be bare identifiers (reserved by both servers); only
/// those that matter to the statements read here.
const RESERVED: &str = "\
    ADD ALTER AND AS ASC BY CASCADE CHANGE CHARACTER CHECK COLLATE COLUMN CONSTRAINT CONVERT \
    CREATE DATABASE DEFAULT DELETE DESC DROP EXISTS FOREIGN FROM FULLTEXT IF IGNORE IN INDEX \
    INSERT INTO IS KEY KEYS LIKE NOT NULL ON OR ORDER PARTITION PRIMARY REFERENCES RENAME \
    REPLACE RESTRICT SCHEMA SELECT SET SPATIAL TABLE TO UNIQUE UNSIGNED UPDATE USING WHERE \
    WITH ZEROFILL";

fn is_reserved(word: &str) -> bool {
    RESERVED
        .split_ascii_whitespace()
        .any(|r| r.eq_ignore_ascii_case(word))
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// Splits the SQL text into tokens, one at a time.
struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    /// Inside `/*! ... */`: the next `*/` closes it.
    in_exec: bool,
    /// The last token was a name (so `.5` after it is `.` then `5`).
    after_name: bool,
}

impl Lexer<'_> {
    fn byte(&self, at: usize) -> Option<u8> {
        self.src.as_bytes().get(at).copied()
    }

    fn next_tok(&mut self) -> Result<Option<Tok>, String> {
        self.skip_blanks()?;
        let Some(b) = self.byte(self.pos) else {
            if self.in_exec {
                return Err("unterminated executable comment (/*! without */)".to_owned());
            }
            return Ok(None);
        };
        let tok = match b {
            b'`' => Tok::Quoted(self.quoted()?),
            b'\'' | b'"' => Tok::Str(self.string_run()?),
            b'.' if !self.after_name
                && self.byte(self.pos + 1).is_some_and(|d| d.is_ascii_digit()) =>
            {
                self.number()
            }
            _ if is_word_byte(b) => self.word()?,
            _ => self.symbol(),
        };
        self.after_name = matches!(tok, Tok::Word(_) | Tok::Quoted(_));
        Ok(Some(tok))
    }

    /// Skips whitespace and comments; enters and leaves executable comments.
    fn skip_blanks(&mut self) -> Result<(), String> {
        loop {
            match (self.byte(self.pos), self.byte(self.pos + 1)) {
                (Some(c), _) if c.is_ascii_whitespace() => self.pos += 1,
                (Some(b'#'), _) => self.skip_line(),
                (Some(b'-'), Some(b'-'))
                    if self
                        .byte(self.pos + 2)
                        .is_none_or(|c| c.is_ascii_whitespace() || c.is_ascii_control()) =>
                {
                    self.skip_line();
                }
                (Some(b'/'), Some(b'*')) => self.comment()?,
                (Some(b'*'), Some(b'/')) if self.in_exec => {
                    self.pos += 2;
                    self.in_exec = false;
                }
                _ => return Ok(()),
            }
        }
    }

    fn skip_line(&mut self) {
        while let Some(c) = self.byte(self.pos) {
            self.pos += 1;
            if c == b'\n' {
                break;
            }
        }
    }

    fn comment(&mut self) -> Result<(), String> {
        let body = self.pos + 2;
        let exec = match (self.byte(body), self.byte(body + 1)) {
            (Some(b'!'), _) => Some(body + 1),
            (Some(b'M'), Some(b'!')) => Some(body + 2),
            _ => None,
        };
        if let Some(mut at) = exec {
            while self.byte(at).is_some_and(|c| c.is_ascii_digit()) {
                at += 1;
            }
            self.pos = at;
            self.in_exec = true;
            return Ok(());
        }
        let rest = self.src.as_bytes().get(body..).unwrap_or_default();
        match rest.windows(2).position(|w| w == b"*/") {
            Some(i) => {
                self.pos = body + i + 2;
                Ok(())
            }
            None => Err("unterminated comment (/* without */)".to_owned()),
        }
    }

    fn quoted(&mut self) -> Result<String, String> {
        let mut out = String::new();
        let mut at = self.pos + 1;
        loop {
            let rest = self.src.get(at..).unwrap_or_default();
            let Some(off) = rest.find('`') else {
                return Err("unterminated `quoted` identifier".to_owned());
            };
            out.push_str(rest.get(..off).unwrap_or_default());
            at += off + 1;
            if self.byte(at) == Some(b'`') {
                out.push('`');
                at += 1;
            } else {
                break;
            }
        }
        self.pos = at;
        Ok(out)
    }

    /// One quoted string at `pos`, escapes resolved.
    fn string(&mut self) -> Result<String, String> {
        let bytes = self.src.as_bytes();
        let unterminated = || "unterminated string literal".to_owned();
        let quote = bytes.get(self.pos).copied().ok_or_else(unterminated)?;
        let mut at = self.pos + 1;
        let mut out = Vec::new();
        loop {
            let c = bytes.get(at).copied().ok_or_else(unterminated)?;
            if c == quote {
                if bytes.get(at + 1) == Some(&quote) {
                    out.push(quote);
                    at += 2;
                    continue;
                }
                at += 1;
                break;
            }
            if c == b'\\' {
                let e = bytes.get(at + 1).copied().ok_or_else(unterminated)?;
                match e {
                    b'n' => out.push(b'\n'),
                    b't' => out.push(b'\t'),
                    b'r' => out.push(b'\r'),
                    b'0' => out.push(0),
                    b'b' => out.push(8),
                    b'Z' => out.push(26),
                    // LIKE wildcards keep their backslash.
                    b'%' | b'_' => out.extend_from_slice(&[b'\\', e]),
                    _ => out.push(e),
                }
                at += 2;
                continue;
            }
            out.push(c);
            at += 1;
        }
        self.pos = at;
        String::from_utf8(out).map_err(|_| "invalid UTF-8 in a string literal".to_owned())
    }

    /// A string and the strings right after it: `'a' 'b'` is `'ab'`.
    fn string_run(&mut self) -> Result<String, String> {
        let mut s = self.string()?;
        loop {
            let saved = (self.pos, self.in_exec);
            self.skip_blanks()?;
            if matches!(self.byte(self.pos), Some(b'\'' | b'"')) {
                s.push_str(&self.string()?);
            } else {
                (self.pos, self.in_exec) = saved;
                return Ok(s);
            }
        }
    }

    fn skip_digits(&mut self) {
        while self.byte(self.pos).is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
    }

    /// A decimal number at `pos`: digits, an optional fraction and exponent.
    fn number(&mut self) -> Tok {
        let start = self.pos;
        self.skip_digits();
        if self.byte(self.pos) == Some(b'.') {
            self.pos += 1;
            self.skip_digits();
        }
        if matches!(self.byte(self.pos), Some(b'e' | b'E')) {
            let sign = usize::from(matches!(self.byte(self.pos + 1), Some(b'+' | b'-')));
            if self
                .byte(self.pos + 1 + sign)
                .is_some_and(|c| c.is_ascii_digit())
            {
                self.pos += 1 + sign;
                self.skip_digits();
            }
        }
        Tok::Num(self.src.get(start..self.pos).unwrap_or_default().to_owned())
    }

    /// A word, a number, or a literal with a prefix (`x'..'`, `_utf8mb4'..'`).
    fn word(&mut self) -> Result<Tok, String> {
        let start = self.pos;
        let mut end = start;
        while self.byte(end).is_some_and(is_word_byte) {
            end += 1;
        }
        let text = self.src.get(start..end).unwrap_or_default().to_owned();
        self.pos = end;
        if let Some(q @ (b'\'' | b'"')) = self.byte(end) {
            let lower = text.to_ascii_lowercase();
            if (lower == "x" || lower == "b") && q == b'\'' {
                let body = self.string()?;
                return Ok(Tok::Num(format!("{lower}'{body}'")));
            }
            if lower == "n" || lower.starts_with('_') {
                return Ok(Tok::Str(self.string_run()?));
            }
        }
        if !text.starts_with(|c: char| c.is_ascii_digit()) {
            return Ok(Tok::Word(text));
        }
        let lower = text.to_ascii_lowercase();
        let radix_literal = |prefix: &str, ok: fn(&u8) -> bool| {
            lower
                .strip_prefix(prefix)
                .is_some_and(|r| !r.is_empty() && r.as_bytes().iter().all(ok))
        };
        if radix_literal("0x", u8::is_ascii_hexdigit)
            || radix_literal("0b", |c| *c == b'0' || *c == b'1')
        {
            return Ok(Tok::Num(text));
        }
        self.pos = start;
        let num = self.number();
        if self.pos >= end {
            return Ok(num);
        }
        // Digits followed by letters: an identifier such as `1st`.
        self.pos = end;
        Ok(Tok::Word(text))
    }

    fn symbol(&mut self) -> Tok {
        const OPS: [&str; 12] = [
            "<=>", "->>", "<=", ">=", "<>", "!=", ":=", "||", "&&", "<<", ">>", "->",
        ];
        let rest = self.src.get(self.pos..).unwrap_or_default();
        let op = OPS
            .iter()
            .find(|op| rest.starts_with(**op))
            .map(|op| (*op).to_owned())
            .or_else(|| rest.chars().next().map(String::from))
            .unwrap_or_default();
        self.pos += op.len().max(1);
        Tok::Sym(op)
    }
}

/// Quotes a string value for display: `it's` -> `'it''s'`.
fn quote_str(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// Writes tokens back as text, spaced the way SQL is usually written.
fn render(toks: &[Tok]) -> String {
    let mut out = String::new();
    let mut prev: Option<&Tok> = None;
    let mut before_prev: Option<&Tok> = None;
    for t in toks {
        if let Some(p) = prev
            && space_between(before_prev, p, t)
        {
            out.push(' ');
        }
        match t {
            Tok::Word(s) | Tok::Num(s) | Tok::Sym(s) => out.push_str(s),
            Tok::Quoted(s) => {
                out.push('`');
                out.push_str(&s.replace('`', "``"));
                out.push('`');
            }
            Tok::Str(s) => out.push_str(&quote_str(s)),
        }
        before_prev = prev;
        prev = Some(t);
    }
    out
}

fn is_sym(t: &Tok, s: &str) -> bool {
    matches!(t, Tok::Sym(x) if x == s)
}

fn space_between(before: Option<&Tok>, prev: &Tok, cur: &Tok) -> bool {
    if is_sym(prev, "(")
        || is_sym(prev, ".")
        || is_sym(cur, ")")
        || is_sym(cur, ",")
        || is_sym(cur, ".")
    {
        return false;
    }
    if is_sym(cur, "(") && matches!(prev, Tok::Word(_) | Tok::Quoted(_)) {
        return false;
    }
    // A sign right after an operator, `(` or `,` (or at the start) is unary.
    let unary = (is_sym(prev, "-") || is_sym(prev, "+"))
        && before.is_none_or(|b| matches!(b, Tok::Sym(s) if s != ")"));
    !unary
}

// ---------------------------------------------------------------- cursor

/// Tokens read on demand, so that a statement that is not tracked is never
/// lexed past its first words.
struct Cursor<'a> {
    lexer: Lexer<'a>,
    toks: Vec<Tok>,
    pos: usize,
    lex_err: Option<String>,
    done: bool,
}

impl<'a> Cursor<'a> {
    fn new(sql: &'a str) -> Self {
        let lexer = Lexer {
            src: sql,
            pos: 0,
            in_exec: false,
            after_name: false,
        };
        Cursor {
            lexer,
            toks: Vec::new(),
            pos: 0,
            lex_err: None,
            done: false,
        }
    }

    fn fill(&mut self, idx: usize) {
        while !self.done && self.toks.len() <= idx {
            match self.lexer.next_tok() {
                Ok(Some(t)) => self.toks.push(t),
                Ok(None) => self.done = true,
                Err(e) => {
                    self.lex_err = Some(e);
                    self.done = true;
                }
            }
        }
    }

    fn peek_at(&mut self, n: usize) -> Option<&Tok> {
        let i = self.pos + n;
        self.fill(i);
        self.toks.get(i)
    }

    fn peek(&mut self) -> Option<&Tok> {
        self.peek_at(0)
    }

    fn bump(&mut self) -> Option<&Tok> {
        let i = self.pos;
        self.fill(i);
        if i < self.toks.len() {
            self.pos += 1;
        }
        self.toks.get(i)
    }

    /// The tokens read since `start`.
    fn since(&self, start: usize) -> &[Tok] {
        self.toks.get(start..self.pos).unwrap_or_default()
    }

    fn kw_at(&mut self, n: usize, kw: &str) -> bool {
        matches!(self.peek_at(n), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    fn is_kw(&mut self, kw: &str) -> bool {
        self.kw_at(0, kw)
    }

    /// Whether one of the space-separated `kws` comes next.
    fn is_any_kw(&mut self, kws: &str) -> bool {
        kws.split_ascii_whitespace().any(|kw| self.is_kw(kw))
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        let hit = self.is_kw(kw);
        if hit {
            self.pos += 1;
        }
        hit
    }

    /// Eats the first of the space-separated `kws` that comes next, if any.
    fn eat_any_kw(&mut self, kws: &str) -> bool {
        kws.split_ascii_whitespace().any(|kw| self.eat_kw(kw))
    }

    /// Skips `= value` if next.
    fn skip_eq_value(&mut self) -> Result<(), String> {
        if self.eat_sym("=") {
            self.skip_item()?;
        }
        Ok(())
    }

    /// Whether `PARTITION BY` or `REMOVE PARTITIONING` comes next.
    fn at_partitioning(&mut self) -> bool {
        (self.is_kw("PARTITION") && self.kw_at(1, "BY"))
            || (self.is_kw("REMOVE") && self.kw_at(1, "PARTITIONING"))
    }

    /// Eats a space-separated sequence of keywords, all or none.
    fn eat_kws(&mut self, kws: &str) -> bool {
        let hit = kws
            .split_ascii_whitespace()
            .enumerate()
            .all(|(i, kw)| self.kw_at(i, kw));
        if hit {
            self.pos += kws.split_ascii_whitespace().count();
        }
        hit
    }

    fn expect_kw(&mut self, kw: &str) -> Result<(), String> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            self.fail(kw)
        }
    }

    fn is_sym(&mut self, s: &str) -> bool {
        self.peek().is_some_and(|t| is_sym(t, s))
    }

    fn eat_sym(&mut self, s: &str) -> bool {
        let hit = self.is_sym(s);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn expect_sym(&mut self, s: &str) -> Result<(), String> {
        if self.eat_sym(s) {
            Ok(())
        } else {
            self.fail(&format!("`{s}`"))
        }
    }

    /// The end of the statement: no more tokens, or a `;`.
    fn at_end(&mut self) -> bool {
        self.peek().is_none_or(|t| is_sym(t, ";"))
    }

    /// An error saying what was expected and what came instead; a lexing
    /// error met on the way wins, as it is the real cause.
    fn fail<T>(&mut self, expected: &str) -> Result<T, String> {
        let found = match self.peek() {
            None => "the end of the statement".to_owned(),
            Some(t) => format!("`{}`", render(std::slice::from_ref(t))),
        };
        Err(self
            .lex_err
            .clone()
            .unwrap_or_else(|| format!("expected {expected}, found {found}")))
    }

    /// An identifier: a backtick-quoted name or a bare non-reserved word.
    fn ident(&mut self) -> Result<String, String> {
        let name = match self.peek() {
            Some(Tok::Quoted(s)) if !s.is_empty() => s.clone(),
            Some(Tok::Word(w)) if !is_reserved(w) => w.clone(),
            _ => return self.fail("a name"),
        };
        self.pos += 1;
        Ok(name)
    }

    /// A value such as a character set or collation name: a word, a quoted
    /// name or a string.
    fn value_word(&mut self) -> Result<String, String> {
        let value = match self.peek() {
            Some(Tok::Word(s) | Tok::Quoted(s) | Tok::Str(s)) => s.clone(),
            _ => return self.fail("a name"),
        };
        self.pos += 1;
        Ok(value)
    }

    /// A table name, optionally qualified by its database.
    fn name(&mut self) -> Result<Name, String> {
        let first = self.ident()?;
        if self.eat_sym(".") {
            let table = self.ident()?;
            return Ok(Name {
                db: Some(first),
                table,
            });
        }
        Ok(Name {
            db: None,
            table: first,
        })
    }

    /// Skips a parenthesised group, which must come next.
    fn skip_balanced(&mut self) -> Result<(), String> {
        self.expect_sym("(")?;
        let mut depth = 1usize;
        while depth > 0 {
            match self.bump() {
                None => return self.fail("`)` (unbalanced parentheses)"),
                Some(t) if is_sym(t, "(") => depth += 1,
                Some(t) if is_sym(t, ")") => depth -= 1,
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// A parenthesised group, parentheses included.
    fn take_group(&mut self) -> Result<Vec<Tok>, String> {
        let start = self.pos;
        self.skip_balanced()?;
        Ok(self.since(start).to_vec())
    }

    /// Skips one token, or one parenthesised group.
    fn skip_item(&mut self) -> Result<(), String> {
        match self.peek() {
            Some(t) if is_sym(t, "(") => self.skip_balanced(),
            Some(t) if is_sym(t, ")") => Err("unbalanced parentheses: unexpected `)`".to_owned()),
            None => self.fail("more text"),
            Some(_) => {
                self.pos += 1;
                Ok(())
            }
        }
    }

    /// Skips to the next top-level `,`, the `)` closing the enclosing list,
    /// or the end of the statement (none of them consumed).
    fn skip_to_comma_or_close(&mut self) -> Result<(), String> {
        while !self.at_end() && !self.is_sym(",") && !self.is_sym(")") {
            self.skip_item()?;
        }
        Ok(())
    }

    /// Skips everything up to the end of the statement.
    fn skip_rest(&mut self) -> Result<(), String> {
        while !self.at_end() {
            self.skip_item()?;
        }
        Ok(())
    }

    /// `[WAIT n | NOWAIT]`.
    fn skip_wait(&mut self) -> Result<(), String> {
        if self.eat_kw("WAIT") {
            if !matches!(self.peek(), Some(Tok::Num(_))) {
                return self.fail("a number of seconds after WAIT");
            }
            self.pos += 1;
        } else {
            self.eat_kw("NOWAIT");
        }
        Ok(())
    }

    /// Checks that nothing but `;` follows.
    fn finish(&mut self) -> Result<(), String> {
        while self.eat_sym(";") {}
        if self.peek().is_some() {
            return self.fail("the end of the statement");
        }
        match &self.lex_err {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

// ---------------------------------------------------------------- statements

fn statement(c: &mut Cursor<'_>) -> Result<Statement, String> {
    if c.peek().is_none()
        && let Some(e) = &c.lex_err
    {
        return Err(e.clone());
    }
    if c.eat_kw("CREATE") {
        create(c)
    } else if c.eat_kw("ALTER") {
        alter(c)
    } else if c.eat_kw("DROP") {
        drop_stmt(c)
    } else if c.eat_kw("RENAME") {
        rename(c)
    } else if c.eat_kw("TRUNCATE") {
        c.eat_kw("TABLE");
        let table = c.name()?;
        c.skip_wait()?;
        Ok(Statement::Truncate(table))
    } else {
        Ok(Statement::Other)
    }
}

fn create(c: &mut Cursor<'_>) -> Result<Statement, String> {
    c.eat_kws("OR REPLACE");
    let temporary = c.eat_kw("TEMPORARY");
    if c.eat_kw("TABLE") {
        return create_table(c, temporary);
    }
    if temporary {
        return Ok(Statement::Other);
    }
    if c.eat_kw("DATABASE") || c.eat_kw("SCHEMA") {
        let if_not_exists = c.eat_kws("IF NOT EXISTS");
        let name = c.ident()?;
        c.skip_rest()?;
        return Ok(Statement::CreateDatabase {
            name,
            if_not_exists,
        });
    }
    c.eat_any_kw("ONLINE OFFLINE");
    c.eat_any_kw("UNIQUE FULLTEXT SPATIAL");
    if !c.eat_kw("INDEX") {
        return Ok(Statement::Other);
    }
    c.eat_kws("IF NOT EXISTS");
    c.ident()?;
    while !c.is_kw("ON") && !c.at_end() {
        c.skip_item()?; // USING BTREE
    }
    c.expect_kw("ON")?;
    let table = c.name()?;
    c.skip_rest()?;
    Ok(Statement::IndexChange { table })
}

/// Whether a query starts `n` tokens ahead, after any `(`.
fn starts_query(c: &mut Cursor<'_>, mut n: usize) -> bool {
    while c.peek_at(n).is_some_and(|t| is_sym(t, "(")) {
        n += 1;
    }
    ["SELECT", "WITH", "VALUES", "TABLE"]
        .iter()
        .any(|kw| c.kw_at(n, kw))
}

fn create_table(c: &mut Cursor<'_>, temporary: bool) -> Result<Statement, String> {
    let if_not_exists = c.eat_kws("IF NOT EXISTS");
    let table = c.name()?;
    let paren_like = c.is_sym("(") && c.kw_at(1, "LIKE");
    if paren_like {
        c.pos += 1;
    }
    if c.eat_kw("LIKE") {
        let like = c.name()?;
        if paren_like {
            c.expect_sym(")")?;
        }
        return Ok(Statement::CreateTableLike {
            table,
            like,
            if_not_exists,
            temporary,
        });
    }
    let mut def = TableDef::default();
    let has_body = c.is_sym("(") && !starts_query(c, 0);
    if has_body {
        c.pos += 1;
        table_body(c, &mut def)?;
    }
    table_options(c, &mut def)?;
    if c.is_kw("PARTITION") {
        while !c.at_end() && !c.is_any_kw("IGNORE REPLACE AS SELECT") {
            c.skip_item()?;
        }
    }
    if !c.at_end() {
        c.eat_any_kw("IGNORE REPLACE");
        c.eat_kw("AS");
        if !starts_query(c, 0) {
            return c.fail("a table option or SELECT");
        }
        c.skip_rest()?;
        return Ok(Statement::CreateTableSelect {
            table,
            temporary,
            def,
        });
    }
    if !has_body {
        return c.fail("a column list");
    }
    Ok(Statement::CreateTable {
        table,
        if_not_exists,
        temporary,
        def,
    })
}

/// Table options up to partitioning, a query or the end; keeps the charset.
fn table_options(c: &mut Cursor<'_>, def: &mut TableDef) -> Result<(), String> {
    loop {
        if c.at_end()
            || c.is_sym("(")
            || c.is_any_kw("PARTITION IGNORE REPLACE AS SELECT VALUES TABLE")
        {
            return Ok(());
        }
        if c.is_kw("WITH") {
            if !c.eat_kws("WITH SYSTEM VERSIONING") {
                return Ok(());
            }
            continue;
        }
        if c.eat_sym(",") {
            continue;
        }
        if c.eat_kw("UNION") {
            c.eat_sym("="); // MERGE tables: UNION [=] (t1, t2)
            c.skip_item()?;
            continue;
        }
        c.eat_kw("DEFAULT");
        if let Some(charset) = charset_name(c)? {
            def.charset = Some(charset);
            continue;
        }
        c.skip_item()?; // the option's name
        c.skip_eq_value()?;
    }
}

/// `CHARSET [=] x` or `CHARACTER SET [=] x`, if next: x lowercase.
fn charset_name(c: &mut Cursor<'_>) -> Result<Option<String>, String> {
    if c.eat_kw("CHARSET") || c.eat_kws("CHARACTER SET") || c.eat_kws("CHAR SET") {
        c.eat_sym("=");
        return Ok(Some(c.value_word()?.to_ascii_lowercase()));
    }
    Ok(None)
}

/// The column list of CREATE TABLE, after its `(`, through its `)`.
fn table_body(c: &mut Cursor<'_>, def: &mut TableDef) -> Result<(), String> {
    let mut table_pk = None;
    let mut json_cols = Vec::new();
    loop {
        table_element(c, def, &mut table_pk, &mut json_cols)?;
        if c.eat_sym(",") {
            continue;
        }
        if c.eat_sym(")") {
            break;
        }
        return c.fail("`,` or `)` in the column list");
    }
    if let Some(pk) = table_pk {
        def.primary_key = pk;
    }
    for col in &mut def.columns {
        col.primary_key = def
            .primary_key
            .iter()
            .any(|k| k.eq_ignore_ascii_case(&col.name));
        if col.primary_key {
            col.optional = false;
        }
        if json_cols
            .iter()
            .any(|j: &String| j.eq_ignore_ascii_case(&col.name))
        {
            col.json = true;
        }
    }
    Ok(())
}

fn table_element(
    c: &mut Cursor<'_>,
    def: &mut TableDef,
    table_pk: &mut Option<Vec<String>>,
    json_cols: &mut Vec<String>,
) -> Result<(), String> {
    let constraint = c.eat_kw("CONSTRAINT");
    if constraint && !c.is_any_kw("PRIMARY UNIQUE FOREIGN CHECK") {
        c.ident()?;
    }
    if c.eat_kw("PRIMARY") {
        c.expect_kw("KEY")?;
        *table_pk = Some(key_columns(c)?);
    } else if c.eat_kw("CHECK") {
        let group = c.take_group()?;
        json_cols.extend(json_valid_target(&group));
    } else if constraint
        || c.is_any_kw("KEY INDEX UNIQUE FULLTEXT SPATIAL FOREIGN")
        || (c.is_kw("PERIOD") && c.kw_at(1, "FOR"))
    {
        // indexes, foreign keys, application-time periods
    } else {
        let col = column_def(c)?;
        if col.primary_key {
            def.primary_key.push(col.name.clone());
        }
        def.columns.push(col);
    }
    c.skip_to_comma_or_close()
}

/// `[name] [USING type] (a, b(10) DESC, (expr), ...)`: the column names.
fn key_columns(c: &mut Cursor<'_>) -> Result<Vec<String>, String> {
    while matches!(c.peek(), Some(Tok::Word(_) | Tok::Quoted(_))) {
        c.pos += 1;
    }
    c.expect_sym("(")?;
    let mut cols = Vec::new();
    loop {
        if c.is_sym("(") {
            c.skip_balanced()?; // a functional key part has no column name
        } else {
            cols.push(c.ident()?);
        }
        c.skip_to_comma_or_close()?; // prefix length, ASC/DESC
        if c.eat_sym(",") {
            continue;
        }
        c.expect_sym(")")?;
        return Ok(cols);
    }
}

/// `(json_valid(`c`))` -> `c`.
fn json_valid_target(group: &[Tok]) -> Option<String> {
    match group {
        [
            open,
            Tok::Word(f),
            open2,
            Tok::Word(name) | Tok::Quoted(name),
            close2,
            close,
        ] if f.eq_ignore_ascii_case("json_valid")
            && is_sym(open, "(")
            && is_sym(open2, "(")
            && is_sym(close2, ")")
            && is_sym(close, ")") =>
        {
            Some(name.clone())
        }
        _ => None,
    }
}

// ---------------------------------------------------------------- columns

fn column_def(c: &mut Cursor<'_>) -> Result<ColumnDef, String> {
    let name = c.ident()?;
    let mut col = ColumnDef {
        name,
        optional: true,
        ..ColumnDef::default()
    };
    data_type(c, &mut col)?;
    column_attrs(c, &mut col)?;
    if col.primary_key {
        col.optional = false;
    }
    Ok(col)
}

fn data_type(c: &mut Cursor<'_>, col: &mut ColumnDef) -> Result<(), String> {
    let word = match c.peek() {
        Some(Tok::Word(w))
            if !is_reserved(w)
                || w.eq_ignore_ascii_case("CHARACTER")
                || w.eq_ignore_ascii_case("SET") =>
        {
            w.to_ascii_uppercase()
        }
        _ => return c.fail("a data type"),
    };
    c.pos += 1;
    let mut implied_length = None;
    let base = base_type(c, &word, col, &mut implied_length)?;
    let mut expr = base.clone();
    if base == "ENUM" || base == "SET" {
        col.enum_values = labels(c)?;
        let quoted: Vec<String> = col.enum_values.iter().map(|l| quote_str(l)).collect();
        expr = format!("{base}({})", quoted.join(","));
    } else if c.is_sym("(") {
        let args = int_args(c)?;
        col.length = args.first().copied();
        col.scale = args.get(1).copied();
        let args: Vec<String> = args.iter().map(ToString::to_string).collect();
        expr = format!("{base}({})", args.join(","));
    } else if let Some(len) = implied_length {
        col.length = Some(len);
        expr = format!("{base}({len})");
    }
    let mut zerofill = false;
    loop {
        if c.eat_kw("UNSIGNED") {
            col.unsigned = true;
        } else if c.eat_kw("ZEROFILL") {
            zerofill = true;
            col.unsigned = true;
        } else if !c.eat_kw("SIGNED") {
            break;
        }
    }
    if col.unsigned {
        expr.push_str(" UNSIGNED");
    }
    if zerofill {
        expr.push_str(" ZEROFILL");
    }
    col.json = base == "JSON";
    col.type_name = base;
    col.type_expression = expr;
    Ok(())
}

/// The normalised base type of a type starting with `word` (uppercase),
/// reading the words of the multi-word types.
fn base_type(
    c: &mut Cursor<'_>,
    word: &str,
    col: &mut ColumnDef,
    implied_length: &mut Option<i64>,
) -> Result<String, String> {
    let mut national = false;
    let base = match word {
        "INTEGER" | "INT4" => "INT",
        "INT1" => "TINYINT",
        "INT2" => "SMALLINT",
        "INT3" | "MIDDLEINT" => "MEDIUMINT",
        "INT8" => "BIGINT",
        "BOOL" | "BOOLEAN" => {
            *implied_length = Some(1);
            "TINYINT"
        }
        "DEC" | "NUMERIC" | "FIXED" => "DECIMAL",
        "REAL" | "FLOAT8" => "DOUBLE",
        "FLOAT4" => "FLOAT",
        "DOUBLE" => {
            c.eat_kw("PRECISION");
            "DOUBLE"
        }
        "CHAR" | "CHARACTER" if c.eat_kw("VARYING") => "VARCHAR",
        "CHARACTER" => "CHAR",
        "NATIONAL" | "NCHAR" | "NVARCHAR" => {
            national = true;
            if word == "NVARCHAR"
                || c.eat_any_kw("VARCHAR VARYING")
                || c.eat_kws("CHAR VARYING")
                || c.eat_kws("CHARACTER VARYING")
            {
                "VARCHAR"
            } else if word == "NCHAR" || c.eat_any_kw("CHAR CHARACTER") {
                "CHAR"
            } else {
                return c.fail("CHAR or VARCHAR after NATIONAL");
            }
        }
        "LONG" if c.eat_kw("VARBINARY") => "MEDIUMBLOB",
        "LONG" => {
            if !c.eat_kw("VARCHAR") {
                c.eat_kws("CHAR VARYING");
            }
            "MEDIUMTEXT"
        }
        "SERIAL" => {
            col.unsigned = true;
            col.optional = false;
            col.auto_increment = true;
            "BIGINT"
        }
        "GEOMCOLLECTION" => "GEOMETRYCOLLECTION",
        other => other,
    };
    if national {
        col.charset = Some("utf8mb3".to_owned());
    }
    Ok(base.to_owned())
}

/// `('a', 'b', ...)` of ENUM and SET.
fn labels(c: &mut Cursor<'_>) -> Result<Vec<String>, String> {
    c.expect_sym("(")?;
    let mut labels = Vec::new();
    loop {
        let label = match c.peek() {
            Some(Tok::Str(s)) => s.clone(),
            _ => return c.fail("a quoted ENUM/SET label"),
        };
        c.pos += 1;
        labels.push(label);
        if !c.eat_sym(",") {
            c.expect_sym(")")?;
            return Ok(labels);
        }
    }
}

/// `(n[, m...])` of the other types.
fn int_args(c: &mut Cursor<'_>) -> Result<Vec<i64>, String> {
    c.expect_sym("(")?;
    let mut args = Vec::new();
    loop {
        let n = match c.peek() {
            Some(Tok::Num(n)) => n
                .parse::<i64>()
                .map_err(|_| format!("invalid type argument `{n}`"))?,
            _ => return c.fail("a whole number as type argument"),
        };
        c.pos += 1;
        args.push(n);
        if !c.eat_sym(",") {
            c.expect_sym(")")?;
            return Ok(args);
        }
    }
}

/// Column attributes, in any order, up to `,`, `)`, the end of the
/// statement, FIRST/AFTER or PARTITION. Unknown words are read over.
fn column_attrs(c: &mut Cursor<'_>, col: &mut ColumnDef) -> Result<(), String> {
    loop {
        let word = match c.peek() {
            None => return Ok(()),
            Some(Tok::Sym(s)) if s == "," || s == ")" || s == ";" => return Ok(()),
            Some(Tok::Word(w)) => w.to_ascii_uppercase(),
            Some(_) => {
                c.skip_item()?;
                continue;
            }
        };
        if matches!(word.as_str(), "FIRST" | "AFTER" | "PARTITION") {
            return Ok(());
        }
        c.pos += 1;
        column_attr(c, col, &word)?;
    }
}

fn column_attr(c: &mut Cursor<'_>, col: &mut ColumnDef, word: &str) -> Result<(), String> {
    match word {
        "NOT" if c.eat_kw("ENFORCED") => {} // of a CHECK
        "NOT" => {
            c.expect_kw("NULL")?;
            col.optional = false;
        }
        "NULL" => col.optional = true,
        "DEFAULT" => {
            col.default = default_value(c)?;
            col.has_default = true;
        }
        "ON" => {
            c.expect_kw("UPDATE")?;
            default_value(c)?;
        }
        "AUTO_INCREMENT" => col.auto_increment = true,
        "UNIQUE" => {
            c.eat_any_kw("KEY INDEX");
        }
        "PRIMARY" => {
            c.expect_kw("KEY")?;
            col.primary_key = true;
        }
        "KEY" => col.primary_key = true,
        "COMMENT" => {
            col.comment = match c.peek() {
                Some(Tok::Str(s)) => Some(s.clone()),
                _ => return c.fail("a quoted comment"),
            };
            c.pos += 1;
        }
        "CHARACTER" | "CHARSET" => {
            if word == "CHARACTER" {
                c.expect_kw("SET")?;
            }
            col.charset = Some(c.value_word()?.to_ascii_lowercase());
        }
        "COLLATE" => col.collation = Some(c.value_word()?.to_ascii_lowercase()),
        "COLUMN_FORMAT" | "STORAGE" | "SRID" => c.skip_item()?,
        "GENERATED" => {
            c.expect_kw("ALWAYS")?;
            c.expect_kw("AS")?;
            generated(c, col)?;
        }
        "AS" => generated(c, col)?,
        "CHECK" => {
            let group = c.take_group()?;
            if json_valid_target(&group).is_some_and(|n| n.eq_ignore_ascii_case(&col.name)) {
                col.json = true;
            }
        }
        "CONSTRAINT" if !c.is_kw("CHECK") => {
            c.ident()?;
        }
        "REFERENCES" => references(c)?,
        "COMPRESSED" | "ENGINE_ATTRIBUTE" | "SECONDARY_ENGINE_ATTRIBUTE" | "REF_SYSTEM_ID" => {
            c.skip_eq_value()?;
        }
        "WITH" | "WITHOUT" => {
            c.expect_kw("SYSTEM")?;
            c.expect_kw("VERSIONING")?;
        }
        "SERIAL" => {
            c.expect_kw("DEFAULT")?;
            c.expect_kw("VALUE")?;
            col.optional = false;
            col.auto_increment = true;
        }
        // BINARY, ASCII, UNICODE, BYTE, VISIBLE, INVISIBLE, VIRTUAL, STORED,
        // PERSISTENT and words this parser does not know.
        _ => {}
    }
    Ok(())
}

/// After `AS`: `(expr)`, or `ROW START|END` of a system-versioned table.
fn generated(c: &mut Cursor<'_>, col: &mut ColumnDef) -> Result<(), String> {
    if c.eat_kw("ROW") {
        if !c.eat_kw("START") {
            c.expect_kw("END")?;
        }
    } else {
        c.skip_balanced()?;
    }
    col.generated = true;
    Ok(())
}

/// After an inline `REFERENCES`: `t [(cols)] [MATCH x] [ON DELETE|UPDATE action]...`.
fn references(c: &mut Cursor<'_>) -> Result<(), String> {
    c.name()?;
    if c.is_sym("(") {
        c.skip_balanced()?;
    }
    loop {
        if c.eat_kw("MATCH") {
            c.skip_item()?;
        } else if c.eat_kws("ON DELETE") || c.eat_kws("ON UPDATE") {
            if c.eat_kw("SET") {
                c.skip_item()?; // NULL or DEFAULT
            } else if c.eat_kw("NO") {
                c.expect_kw("ACTION")?;
            } else {
                c.skip_item()?; // RESTRICT or CASCADE
            }
        } else {
            return Ok(());
        }
    }
}

const BINARY_OPS: &[&str] = &["+", "-", "*", "/", "%", "||", "&", "|", "^", "<<", ">>"];

/// A DEFAULT (or ON UPDATE) value; `None` for NULL.
fn default_value(c: &mut Cursor<'_>) -> Result<Option<String>, String> {
    let start = c.pos;
    let group = c.is_sym("(");
    operand(c)?;
    let first_end = c.pos;
    while matches!(c.peek(), Some(Tok::Sym(s)) if BINARY_OPS.contains(&s.as_str())) {
        c.pos += 1;
        operand(c)?;
    }
    let whole_group = group && first_end == c.pos;
    Ok(match c.since(start) {
        [Tok::Str(s)] => Some(s.clone()),
        [Tok::Word(w)] if w.eq_ignore_ascii_case("NULL") => None,
        [_, inner @ .., _] if whole_group => Some(render(inner)),
        toks => Some(render(toks)),
    })
}

/// One operand of a default value: a literal, a word or function call, or a
/// parenthesised expression, after any signs.
fn operand(c: &mut Cursor<'_>) -> Result<(), String> {
    while matches!(c.peek(), Some(Tok::Sym(s)) if s == "-" || s == "+" || s == "~" || s == "!") {
        c.pos += 1;
    }
    if c.eat_kws("NEXT VALUE FOR") {
        return c.name().map(drop); // a sequence
    }
    match c.peek() {
        Some(t) if is_sym(t, "(") => c.skip_balanced(),
        Some(Tok::Str(_) | Tok::Num(_)) => {
            c.pos += 1;
            Ok(())
        }
        Some(Tok::Word(w)) if !is_reserved(w) || w.eq_ignore_ascii_case("NULL") => {
            let typed_literal = ["DATE", "TIME", "TIMESTAMP"]
                .iter()
                .any(|k| w.eq_ignore_ascii_case(k));
            c.pos += 1;
            if c.is_sym("(") {
                c.skip_balanced()?;
            } else if typed_literal && matches!(c.peek(), Some(Tok::Str(_))) {
                c.pos += 1;
            }
            Ok(())
        }
        _ => c.fail("a default value"),
    }
}

fn position(c: &mut Cursor<'_>) -> Result<Position, String> {
    if c.eat_kw("FIRST") {
        Ok(Position::First)
    } else if c.eat_kw("AFTER") {
        Ok(Position::After(c.ident()?))
    } else {
        Ok(Position::Last)
    }
}

// ---------------------------------------------------------------- ALTER

fn alter(c: &mut Cursor<'_>) -> Result<Statement, String> {
    c.eat_any_kw("ONLINE OFFLINE");
    c.eat_kw("IGNORE");
    if !c.eat_kw("TABLE") {
        return Ok(Statement::Other);
    }
    c.eat_kws("IF EXISTS");
    let table = c.name()?;
    c.skip_wait()?;
    let mut ops = Vec::new();
    if c.at_end() {
        return Ok(Statement::AlterTable { table, ops });
    }
    loop {
        ops.push(alter_op(c)?);
        if c.eat_sym(",") {
            continue;
        }
        if c.at_end() {
            return Ok(Statement::AlterTable { table, ops });
        }
        if !c.at_partitioning() {
            return c.fail("`,` between ALTER TABLE operations");
        }
    }
}

fn alter_op(c: &mut Cursor<'_>) -> Result<AlterOp, String> {
    let start = c.pos;
    let op = if c.eat_kw("ADD") {
        alter_add(c)?
    } else if c.eat_kw("MODIFY") {
        c.eat_kw("COLUMN");
        let if_exists = c.eat_kws("IF EXISTS");
        let column = column_def(c)?;
        Some(AlterOp::Modify {
            column,
            position: position(c)?,
            if_exists,
        })
    } else if c.eat_kw("CHANGE") {
        c.eat_kw("COLUMN");
        let if_exists = c.eat_kws("IF EXISTS");
        let old = c.ident()?;
        let column = column_def(c)?;
        Some(AlterOp::Change {
            old,
            column,
            position: position(c)?,
            if_exists,
        })
    } else if c.eat_kw("DROP") {
        alter_drop(c)?
    } else if c.eat_kw("RENAME") {
        alter_rename(c)?
    } else if c.eat_kw("ALTER") {
        alter_column(c)?
    } else if c.eat_kw("CONVERT") {
        c.expect_kw("TO")?;
        match charset_name(c)? {
            Some(cs) => Some(AlterOp::Charset(cs)),
            None => return c.fail("CHARACTER SET after CONVERT TO"),
        }
    } else if c.at_partitioning() {
        c.skip_rest()?;
        None
    } else {
        c.eat_kw("DEFAULT");
        let charset = charset_name(c)?.map(AlterOp::Charset);
        if charset.is_none() {
            c.pos = start;
        }
        charset
    };
    if let Some(op) = op {
        // Whatever follows a known operation (COLLATE, RESTRICT, index
        // options) changes no column.
        while !(c.at_end() || c.is_sym(",") || c.is_sym(")") || c.at_partitioning()) {
            c.skip_item()?;
        }
        return Ok(op);
    }
    c.skip_to_comma_or_close()?;
    if c.pos == start {
        return c.fail("an ALTER TABLE operation");
    }
    Ok(AlterOp::Other(render(c.since(start))))
}

/// After ADD; `None` for what is not a column or primary key.
fn alter_add(c: &mut Cursor<'_>) -> Result<Option<AlterOp>, String> {
    if !c.eat_kw("COLUMN") {
        if c.is_kw("CONSTRAINT") {
            if !c.kw_at(1, "PRIMARY") && !c.kw_at(2, "PRIMARY") {
                return Ok(None);
            }
            c.pos += 1;
            if !c.is_kw("PRIMARY") {
                c.pos += 1;
            }
        }
        if c.eat_kw("PRIMARY") {
            c.expect_kw("KEY")?;
            return Ok(Some(AlterOp::AddPrimaryKey(key_columns(c)?)));
        }
        if c.is_any_kw("KEY INDEX UNIQUE FULLTEXT SPATIAL FOREIGN CHECK PARTITION")
            || (c.is_kw("PERIOD") && c.kw_at(1, "FOR"))
            || (c.is_kw("SYSTEM") && c.kw_at(1, "VERSIONING"))
        {
            return Ok(None);
        }
    }
    let if_not_exists = c.eat_kws("IF NOT EXISTS");
    if !c.eat_sym("(") {
        let column = column_def(c)?;
        let position = position(c)?;
        return Ok(Some(AlterOp::AddColumns {
            columns: vec![column],
            position,
            if_not_exists,
        }));
    }
    let mut columns = Vec::new();
    loop {
        let index =
            c.is_any_kw("CONSTRAINT PRIMARY KEY INDEX UNIQUE FULLTEXT SPATIAL FOREIGN CHECK");
        if !index {
            columns.push(column_def(c)?);
        }
        c.skip_to_comma_or_close()?;
        if c.eat_sym(",") {
            continue;
        }
        c.expect_sym(")")?;
        return Ok(Some(AlterOp::AddColumns {
            columns,
            position: Position::Last,
            if_not_exists,
        }));
    }
}

/// After DROP; `None` for what is not a column or the primary key.
fn alter_drop(c: &mut Cursor<'_>) -> Result<Option<AlterOp>, String> {
    if c.eat_kws("PRIMARY KEY") {
        return Ok(Some(AlterOp::DropPrimaryKey));
    }
    if c.is_any_kw("INDEX KEY FOREIGN CONSTRAINT CHECK PARTITION")
        || (c.is_kw("PERIOD") && c.kw_at(1, "FOR"))
        || (c.is_kw("SYSTEM") && c.kw_at(1, "VERSIONING"))
    {
        return Ok(None);
    }
    c.eat_kw("COLUMN");
    let if_exists = c.eat_kws("IF EXISTS");
    let name = c.ident()?;
    Ok(Some(AlterOp::DropColumn { name, if_exists }))
}

/// After RENAME: `COLUMN a TO b`, `[TO|AS] t`; `None` for INDEX/KEY.
fn alter_rename(c: &mut Cursor<'_>) -> Result<Option<AlterOp>, String> {
    if c.eat_kw("COLUMN") {
        let old = c.ident()?;
        c.expect_kw("TO")?;
        let new = c.ident()?;
        return Ok(Some(AlterOp::RenameColumn { old, new }));
    }
    if c.is_any_kw("INDEX KEY") {
        return Ok(None);
    }
    c.eat_any_kw("TO AS");
    Ok(Some(AlterOp::RenameTable(c.name()?)))
}

/// After ALTER: `[COLUMN] c SET DEFAULT v | DROP DEFAULT`; `None` otherwise.
fn alter_column(c: &mut Cursor<'_>) -> Result<Option<AlterOp>, String> {
    if c.is_any_kw("INDEX KEY CHECK CONSTRAINT") {
        return Ok(None);
    }
    c.eat_kw("COLUMN");
    let column = c.ident()?;
    if c.eat_kws("SET DEFAULT") {
        let default = default_value(c)?.unwrap_or_else(|| "NULL".to_owned());
        return Ok(Some(AlterOp::SetDefault { column, default }));
    }
    if c.eat_kws("DROP DEFAULT") {
        return Ok(Some(AlterOp::DropDefault { column }));
    }
    Ok(None)
}

// ---------------------------------------------------------------- DROP, RENAME

fn drop_stmt(c: &mut Cursor<'_>) -> Result<Statement, String> {
    let temporary = c.eat_kw("TEMPORARY");
    if c.eat_any_kw("TABLE TABLES") {
        let if_exists = c.eat_kws("IF EXISTS");
        let mut tables = vec![c.name()?];
        while c.eat_sym(",") {
            tables.push(c.name()?);
        }
        c.skip_wait()?;
        c.eat_any_kw("RESTRICT CASCADE");
        return Ok(Statement::DropTables {
            tables,
            if_exists,
            temporary,
        });
    }
    if temporary {
        return Ok(Statement::Other);
    }
    if c.eat_kw("DATABASE") || c.eat_kw("SCHEMA") {
        let if_exists = c.eat_kws("IF EXISTS");
        let name = c.ident()?;
        return Ok(Statement::DropDatabase { name, if_exists });
    }
    c.eat_any_kw("ONLINE OFFLINE");
    if !c.eat_kw("INDEX") {
        return Ok(Statement::Other);
    }
    c.eat_kws("IF EXISTS");
    if !c.eat_kw("PRIMARY") {
        c.ident()?;
    }
    c.expect_kw("ON")?;
    let table = c.name()?;
    c.skip_rest()?;
    Ok(Statement::IndexChange { table })
}

fn rename(c: &mut Cursor<'_>) -> Result<Statement, String> {
    if !c.eat_any_kw("TABLE TABLES") {
        return Ok(Statement::Other);
    }
    c.eat_kws("IF EXISTS");
    let mut pairs = Vec::new();
    loop {
        let from = c.name()?;
        c.skip_wait()?;
        c.expect_kw("TO")?;
        pairs.push((from, c.name()?));
        if !c.eat_sym(",") {
            return Ok(Statement::RenameTables(pairs));
        }
    }
}

// ---------------------------------------------------------------- tests

#[cfg(test)]
mod tests {
    use super::*;

    fn name(db: Option<&str>, table: &str) -> Name {
        Name {
            db: db.map(str::to_owned),
            table: table.to_owned(),
        }
    }

    fn create(sql: &str) -> TableDef {
        match parse(sql) {
            Ok(Statement::CreateTable { def, .. }) => def,
            other => panic!("{sql}: {other:?}"),
        }
    }

    fn alter_ops(sql: &str) -> Vec<AlterOp> {
        match parse(sql) {
            Ok(Statement::AlterTable { ops, .. }) => ops,
            other => panic!("{sql}: {other:?}"),
        }
    }

    fn col<'t>(def: &'t TableDef, n: &str) -> &'t ColumnDef {
        def.columns
            .iter()
            .find(|c| c.name == n)
            .unwrap_or_else(|| panic!("no column {n} in {def:?}"))
    }

    fn one_column(sql: &str) -> ColumnDef {
        let def = create(&format!("CREATE TABLE t (c {sql})"));
        def.columns.into_iter().next().expect("a column")
    }

    #[test]
    fn create_table_basic() {
        let stmt = parse("create table if not exists `shop`.orders (id int not null, note text) ;")
            .unwrap();
        let Statement::CreateTable {
            table,
            if_not_exists,
            temporary,
            def,
        } = stmt
        else {
            panic!("{stmt:?}")
        };
        assert_eq!(table, name(Some("shop"), "orders"));
        assert!(if_not_exists && !temporary);
        assert_eq!(def.columns.len(), 2);
        assert_eq!(def.columns[0].type_name, "INT");
        assert!(!def.columns[0].optional);
        assert!(def.columns[1].optional);
        assert!(def.primary_key.is_empty());
    }

    #[test]
    fn create_variants() {
        let s = parse("CREATE OR REPLACE TEMPORARY TABLE tmp (a INT)").unwrap();
        assert!(
            matches!(
                s,
                Statement::CreateTable {
                    temporary: true,
                    ..
                }
            ),
            "{s:?}"
        );
        assert_eq!(
            parse("CREATE TABLE t LIKE db.s").unwrap(),
            Statement::CreateTableLike {
                table: name(None, "t"),
                like: name(Some("db"), "s"),
                if_not_exists: false,
                temporary: false
            }
        );
        assert_eq!(
            parse("CREATE TEMPORARY TABLE IF NOT EXISTS t (LIKE `s`)").unwrap(),
            Statement::CreateTableLike {
                table: name(None, "t"),
                like: name(None, "s"),
                if_not_exists: true,
                temporary: true
            }
        );
        for sql in [
            "CREATE TABLE t AS SELECT * FROM s",
            "CREATE TABLE t SELECT 1 AS a",
            "CREATE TABLE t (SELECT a FROM s)",
            "CREATE TABLE t ENGINE=InnoDB IGNORE SELECT a FROM s WHERE (b > 1)",
            "CREATE TABLE t (x INT) REPLACE AS WITH q AS (SELECT 1) SELECT * FROM q",
        ] {
            assert!(
                matches!(parse(sql), Ok(Statement::CreateTableSelect { .. })),
                "{sql}"
            );
        }
        let Ok(Statement::CreateTableSelect { def, .. }) =
            parse("CREATE TABLE t (id INT PRIMARY KEY) AS SELECT id FROM s")
        else {
            panic!()
        };
        assert_eq!(def.primary_key, vec!["id"]);
    }

    #[test]
    fn names() {
        let s = parse("DROP TABLE `we.ird``name`, `db`.t, db2.`x.y`, plain").unwrap();
        assert_eq!(
            s,
            Statement::DropTables {
                tables: vec![
                    name(None, "we.ird`name"),
                    name(Some("db"), "t"),
                    name(Some("db2"), "x.y"),
                    name(None, "plain")
                ],
                if_exists: false,
                temporary: false,
            }
        );
        assert_eq!(
            parse("TRUNCATE `Mixed`.`Case`").unwrap(),
            Statement::Truncate(name(Some("Mixed"), "Case"))
        );
        let def = create("CREATE TABLE t (`my col` INT, `über` TEXT, 1st INT)");
        let names: Vec<&str> = def.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["my col", "über", "1st"]);
    }

    #[test]
    fn comments_and_executable_comments() {
        assert_eq!(
            parse("/*!40101 SET NAMES utf8mb4 */").unwrap(),
            Statement::Other
        );
        assert_eq!(
            parse("/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;").unwrap(),
            Statement::Other
        );
        let def =
            create("CREATE TABLE t (a INT) /*!100301 ENGINE=InnoDB DEFAULT CHARSET=latin1 */");
        assert_eq!(def.charset.as_deref(), Some("latin1"));
        let def =
            create("CREATE TABLE t (a INT /*M!100301 COMMENT 'c' */, b INT) /*M! CHARSET utf8 */");
        assert_eq!(def.columns[0].comment.as_deref(), Some("c"));
        assert_eq!(def.charset.as_deref(), Some("utf8"));
        let sql =
            "/* app=x */ -- note\n # hash\n ALTER /* in */ TABLE t -- end\n ADD c INT /* gone */";
        assert_eq!(alter_ops(sql).len(), 1);
        let def = create("CREATE TABLE t (a INT DEFAULT 1--1\n)");
        assert_eq!(def.columns[0].default.as_deref(), Some("1 - -1"));
        let Ok(Statement::CreateDatabase {
            name,
            if_not_exists,
        }) = parse(
            "CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop` /*!40100 DEFAULT CHARACTER SET utf8mb4 */",
        )
        else {
            panic!()
        };
        assert_eq!((name.as_str(), if_not_exists), ("shop", true));
    }

    #[test]
    fn column_attributes() {
        let c = one_column(
            "INT UNSIGNED ZEROFILL NOT NULL AUTO_INCREMENT UNIQUE KEY COMMENT 'the ''id''' INVISIBLE COLUMN_FORMAT FIXED STORAGE DISK",
        );
        assert!(c.unsigned && c.auto_increment && !c.primary_key && !c.optional);
        assert_eq!(c.type_expression, "INT UNSIGNED ZEROFILL");
        assert!(one_column("INT KEY").primary_key);
        assert_eq!(c.comment.as_deref(), Some("the 'id'"));
        let c = one_column(
            "VARCHAR(32) CHARACTER SET UTF8MB4 COLLATE UTF8MB4_BIN BINARY NULL DEFAULT 'a\\tb'",
        );
        assert_eq!(
            (c.charset.as_deref(), c.collation.as_deref()),
            (Some("utf8mb4"), Some("utf8mb4_bin"))
        );
        assert!(c.optional && c.has_default);
        assert_eq!(c.default.as_deref(), Some("a\tb"));
        assert_eq!(
            one_column("CHAR(2) CHARSET 'latin1'").charset.as_deref(),
            Some("latin1")
        );
        let c = one_column(
            "TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)",
        );
        assert_eq!((c.type_name.as_str(), c.length), ("TIMESTAMP", Some(6)));
        assert_eq!(c.default.as_deref(), Some("CURRENT_TIMESTAMP(6)"));
        let c = one_column("DATETIME DEFAULT NULL");
        assert!(c.has_default && c.default.is_none() && c.optional);
        assert_eq!(one_column("INT DEFAULT -1").default.as_deref(), Some("-1"));
        assert_eq!(
            one_column("INT SIGNED DEFAULT +5").default.as_deref(),
            Some("+5")
        );
        assert_eq!(
            one_column("DATETIME DEFAULT now()").default.as_deref(),
            Some("now()")
        );
        assert_eq!(
            one_column("DATE DEFAULT (curdate() + INTERVAL 1 DAY)")
                .default
                .as_deref(),
            Some("curdate() + INTERVAL 1 DAY")
        );
        assert_eq!(
            one_column("BIT(1) DEFAULT b'1'").default.as_deref(),
            Some("b'1'")
        );
        assert_eq!(
            one_column("DOUBLE DEFAULT 1.5e3").default.as_deref(),
            Some("1.5e3")
        );
        assert_eq!(
            one_column("INT DEFAULT 1 + 2 NOT NULL").default.as_deref(),
            Some("1 + 2")
        );
        assert_eq!(
            one_column("VARCHAR(5) DEFAULT _utf8mb4'x' 'y'")
                .default
                .as_deref(),
            Some("xy")
        );
        assert_eq!(
            one_column("DATE DEFAULT DATE '2020-01-01'")
                .default
                .as_deref(),
            Some("DATE '2020-01-01'")
        );
        assert!(!one_column("INT").has_default);
        let c = one_column("INT PRIMARY KEY");
        assert!(c.primary_key && !c.optional);
        let c = one_column("INT GENERATED ALWAYS AS (a + 1) VIRTUAL");
        assert!(c.generated);
        let c = one_column("INT AS (a * 2) PERSISTENT");
        assert!(c.generated);
        let c = one_column("BIGINT UNSIGNED GENERATED ALWAYS AS ROW START INVISIBLE");
        assert!(c.generated && c.unsigned);
        let c = one_column(
            "INT CHECK (c > 0) REFERENCES p (id) ON DELETE SET NULL ON UPDATE NO ACTION",
        );
        assert_eq!(c.type_name, "INT");
        let c = one_column("INT CONSTRAINT pos CHECK (c > 0) /*!80016 NOT ENFORCED */ NOT NULL");
        assert!(!c.optional);
        let c = one_column("BIGINT DEFAULT NEXT VALUE FOR db.seq NOT NULL");
        assert_eq!(c.default.as_deref(), Some("NEXT VALUE FOR db.seq"));
        let c = one_column("BLOB COMPRESSED=zlib WITH SYSTEM VERSIONING");
        assert_eq!(c.type_name, "BLOB");
        let c = one_column("TEXT WITHOUT SYSTEM VERSIONING SOMETHING_NEW = 3 NOT NULL");
        assert!(!c.optional);
        let c = one_column("POINT NOT NULL SRID 4326");
        assert_eq!(c.type_name, "POINT");
        let c = one_column("INT SERIAL DEFAULT VALUE");
        assert!(c.auto_increment && !c.optional);
    }

    #[test]
    fn type_normalisation() {
        let cases = [
            ("integer(11)", "INT", "INT(11)"),
            ("INT1", "TINYINT", "TINYINT"),
            ("int2", "SMALLINT", "SMALLINT"),
            ("MIDDLEINT", "MEDIUMINT", "MEDIUMINT"),
            ("INT8 UNSIGNED", "BIGINT", "BIGINT UNSIGNED"),
            ("bool", "TINYINT", "TINYINT(1)"),
            ("BOOLEAN", "TINYINT", "TINYINT(1)"),
            (
                "numeric(10,2) unsigned",
                "DECIMAL",
                "DECIMAL(10,2) UNSIGNED",
            ),
            ("DEC", "DECIMAL", "DECIMAL"),
            ("FIXED(5)", "DECIMAL", "DECIMAL(5)"),
            ("double precision(8,3)", "DOUBLE", "DOUBLE(8,3)"),
            ("REAL", "DOUBLE", "DOUBLE"),
            ("FLOAT(7,4)", "FLOAT", "FLOAT(7,4)"),
            ("character varying(20)", "VARCHAR", "VARCHAR(20)"),
            ("CHAR VARYING(3)", "VARCHAR", "VARCHAR(3)"),
            ("national varchar(10)", "VARCHAR", "VARCHAR(10)"),
            ("NVARCHAR(10)", "VARCHAR", "VARCHAR(10)"),
            ("NATIONAL CHAR(2)", "CHAR", "CHAR(2)"),
            ("CHARACTER(4)", "CHAR", "CHAR(4)"),
            ("LONG", "MEDIUMTEXT", "MEDIUMTEXT"),
            ("LONG VARCHAR", "MEDIUMTEXT", "MEDIUMTEXT"),
            ("LONG VARBINARY", "MEDIUMBLOB", "MEDIUMBLOB"),
            ("json", "JSON", "JSON"),
            ("serial", "BIGINT", "BIGINT UNSIGNED"),
            ("datetime(6)", "DATETIME", "DATETIME(6)"),
            ("year", "YEAR", "YEAR"),
            ("varbinary(16)", "VARBINARY", "VARBINARY(16)"),
            ("BINARY(16)", "BINARY", "BINARY(16)"),
            ("TEXT(100)", "TEXT", "TEXT(100)"),
            ("longblob", "LONGBLOB", "LONGBLOB"),
            ("geomcollection", "GEOMETRYCOLLECTION", "GEOMETRYCOLLECTION"),
            ("inet6", "INET6", "INET6"),
            ("uuid", "UUID", "UUID"),
            ("vector(3)", "VECTOR", "VECTOR(3)"),
        ];
        for (written, base, expr) in cases {
            let c = one_column(written);
            assert_eq!(
                (c.type_name.as_str(), c.type_expression.as_str()),
                (base, expr),
                "{written}"
            );
        }
        let c = one_column("DECIMAL(10,2)");
        assert_eq!((c.length, c.scale), (Some(10), Some(2)));
        let c = one_column("bool");
        assert_eq!(c.length, Some(1));
        let c = one_column("SERIAL");
        assert!(c.unsigned && c.auto_increment && !c.optional);
        assert_eq!(one_column("NCHAR(3)").charset.as_deref(), Some("utf8mb3"));
        assert!(one_column("JSON").json);
    }

    #[test]
    fn enum_labels() {
        let c = one_column(r#"ENUM('a,b', 'it''s', 'back\\slash', 'q\'x', 'tab\there', "dq")"#);
        assert_eq!(
            c.enum_values,
            ["a,b", "it's", "back\\slash", "q'x", "tab\there", "dq"]
        );
        assert_eq!(
            c.type_expression,
            r"ENUM('a,b','it''s','back\\slash','q''x','tab	here','dq')"
        );
        let c = one_column("SET('x','y') NOT NULL DEFAULT 'x'");
        assert_eq!((c.type_name.as_str(), c.enum_values.len()), ("SET", 2));
        assert!(parse("CREATE TABLE t (c ENUM(1, 2))").is_err());
    }

    #[test]
    fn primary_keys() {
        let def = create(
            "CREATE TABLE t (a VARCHAR(100), b INT, c INT, CONSTRAINT `pk` PRIMARY KEY USING BTREE (a(10), `b` DESC) COMMENT 'k', INDEX (c))",
        );
        assert_eq!(def.primary_key, ["a", "b"]);
        assert!(col(&def, "a").primary_key && !col(&def, "a").optional);
        assert!(col(&def, "b").primary_key);
        assert!(!col(&def, "c").primary_key && col(&def, "c").optional);
        let def = create("CREATE TABLE t (id INT KEY, v INT)");
        assert_eq!(def.primary_key, ["id"]);
        let def = create("CREATE TABLE t (PRIMARY KEY (ID), id INT)");
        assert!(col(&def, "id").primary_key);
    }

    #[test]
    fn json_columns() {
        let def = create(
            "CREATE TABLE t (a JSON, b LONGTEXT CHECK (json_valid(`b`)), c LONGTEXT, d LONGTEXT CHECK (json_valid(a)), \
             CONSTRAINT `CONSTRAINT_1` CHECK (JSON_VALID(c)), CHECK (c <> ''))",
        );
        assert!(col(&def, "a").json && col(&def, "b").json && col(&def, "c").json);
        assert!(!col(&def, "d").json);
    }

    #[test]
    fn mariadb_show_create_table() {
        let sql = "CREATE TABLE `t` (\n  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,\n  `doc` longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin DEFAULT NULL CHECK (json_valid(`doc`)),\n  `c` varchar(10) COLLATE utf8mb4_unicode_ci DEFAULT 'x''y',\n  PRIMARY KEY (`id`),\n  KEY `k` (`c`)\n) ENGINE=InnoDB AUTO_INCREMENT=5 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci";
        let def = create(sql);
        assert_eq!(def.charset.as_deref(), Some("utf8mb4"));
        assert_eq!(def.primary_key, ["id"]);
        let id = col(&def, "id");
        assert_eq!(
            (
                id.type_name.as_str(),
                id.type_expression.as_str(),
                id.length
            ),
            ("BIGINT", "BIGINT(20) UNSIGNED", Some(20))
        );
        assert!(id.auto_increment && id.primary_key && !id.optional);
        let doc = col(&def, "doc");
        assert!(doc.json && doc.optional && doc.has_default && doc.default.is_none());
        assert_eq!(
            (doc.charset.as_deref(), doc.collation.as_deref()),
            (Some("utf8mb4"), Some("utf8mb4_bin"))
        );
        let c = col(&def, "c");
        assert_eq!(c.default.as_deref(), Some("x'y"));
        assert_eq!(c.collation.as_deref(), Some("utf8mb4_unicode_ci"));
        assert_eq!(def.columns.len(), 3);
    }

    #[test]
    fn table_options_and_partitions() {
        let def = create(
            "CREATE TABLE t (a INT, PERIOD FOR p (a, a), FOREIGN KEY (a) REFERENCES u (id)) ENGINE InnoDB, CHARACTER SET = LATIN1 COMMENT 'x' DATA DIRECTORY = '/d' UNION=(a,b) /*!50100 PARTITION BY RANGE (a) (PARTITION p0 VALUES LESS THAN (10), PARTITION p1 VALUES LESS THAN MAXVALUE) */",
        );
        assert_eq!(def.charset.as_deref(), Some("latin1"));
        assert_eq!(def.columns.len(), 1);
        let def = create("CREATE TABLE t (a INT) WITH SYSTEM VERSIONING PARTITION BY SYSTEM_TIME");
        assert_eq!(def.columns.len(), 1);
        let def = create("CREATE TABLE t (a INT) ENGINE=MRG_MyISAM UNION (x, y) START TRANSACTION");
        assert_eq!(def.columns.len(), 1);
    }

    #[test]
    fn alter_mixed_ops() {
        let ops = alter_ops(
            "ALTER ONLINE IGNORE TABLE IF EXISTS db.t WAIT 5 ADD INDEX idx (a, b), ADD COLUMN x INT NOT NULL DEFAULT 0 AFTER a, \
             DROP INDEX IF EXISTS old, MODIFY COLUMN y VARCHAR(20) FIRST, ALGORITHM=INPLACE, LOCK=NONE, DROP COLUMN IF EXISTS z, \
             DROP FOREIGN KEY fk, ADD UNIQUE KEY u (x), ADD CONSTRAINT fk2 FOREIGN KEY (x) REFERENCES p (id), ENGINE=InnoDB ROW_FORMAT=DYNAMIC, \
             DROP w, ADD FULLTEXT (y), ADD CHECK (x > 0), ADD SPATIAL INDEX (g)",
        );
        assert_eq!(ops.len(), 15, "{ops:?}");
        assert_eq!(ops[0], AlterOp::Other("ADD INDEX idx(a, b)".into()));
        let AlterOp::AddColumns {
            columns,
            position,
            if_not_exists,
        } = &ops[1]
        else {
            panic!("{:?}", ops[1])
        };
        assert_eq!(
            (columns[0].name.as_str(), columns[0].default.as_deref()),
            ("x", Some("0"))
        );
        assert_eq!(
            (position, *if_not_exists),
            (&Position::After("a".into()), false)
        );
        assert!(matches!(&ops[2], AlterOp::Other(s) if s.starts_with("DROP INDEX")));
        let AlterOp::Modify {
            column,
            position,
            if_exists,
        } = &ops[3]
        else {
            panic!()
        };
        assert_eq!(
            (column.type_expression.as_str(), position, *if_exists),
            ("VARCHAR(20)", &Position::First, false)
        );
        assert_eq!(ops[4], AlterOp::Other("ALGORITHM = INPLACE".into()));
        assert_eq!(
            ops[6],
            AlterOp::DropColumn {
                name: "z".into(),
                if_exists: true
            }
        );
        assert_eq!(
            ops[10],
            AlterOp::Other("ENGINE = InnoDB ROW_FORMAT = DYNAMIC".into())
        );
        assert_eq!(
            ops[11],
            AlterOp::DropColumn {
                name: "w".into(),
                if_exists: false
            }
        );
        assert!(
            ops[7..10]
                .iter()
                .chain(&ops[12..])
                .all(|o| matches!(o, AlterOp::Other(_)))
        );
    }

    #[test]
    fn alter_add_columns() {
        let ops = alter_ops("ALTER TABLE t ADD COLUMN (a INT, b VARCHAR(3) NOT NULL, INDEX (a))");
        let [
            AlterOp::AddColumns {
                columns,
                position: Position::Last,
                if_not_exists: false,
            },
        ] = ops.as_slice()
        else {
            panic!("{ops:?}")
        };
        assert_eq!(
            columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        let ops = alter_ops("alter table t add column if not exists `n` bigint unsigned after `x`");
        let [
            AlterOp::AddColumns {
                columns,
                position,
                if_not_exists: true,
            },
        ] = ops.as_slice()
        else {
            panic!("{ops:?}")
        };
        assert_eq!(
            (columns[0].name.as_str(), position),
            ("n", &Position::After("x".into()))
        );
        let ops = alter_ops("ALTER TABLE t ADD first INT FIRST");
        assert!(
            matches!(&ops[0], AlterOp::AddColumns { columns, position: Position::First, .. } if columns[0].name == "first")
        );
    }

    #[test]
    fn alter_change_and_keys() {
        let ops = alter_ops(
            "ALTER TABLE t CHANGE COLUMN IF EXISTS old_name new_name DECIMAL(12,4) NOT NULL FIRST, DROP PRIMARY KEY, ADD CONSTRAINT pk PRIMARY KEY (a), ADD PRIMARY KEY USING BTREE (`b`(10), c)",
        );
        let AlterOp::Change {
            old,
            column,
            position,
            if_exists,
        } = &ops[0]
        else {
            panic!("{ops:?}")
        };
        assert_eq!(
            (old.as_str(), column.name.as_str(), position, *if_exists),
            ("old_name", "new_name", &Position::First, true)
        );
        assert_eq!(
            (column.length, column.scale, column.optional),
            (Some(12), Some(4), false)
        );
        assert_eq!(ops[1], AlterOp::DropPrimaryKey);
        assert_eq!(ops[2], AlterOp::AddPrimaryKey(vec!["a".into()]));
        assert_eq!(ops[3], AlterOp::AddPrimaryKey(vec!["b".into(), "c".into()]));
        assert_eq!(
            alter_ops("ALTER TABLE t ADD CONSTRAINT PRIMARY KEY (x)"),
            [AlterOp::AddPrimaryKey(vec!["x".into()])]
        );
        assert!(matches!(
            &alter_ops("ALTER TABLE t ADD CONSTRAINT u UNIQUE (x)")[0],
            AlterOp::Other(_)
        ));
    }

    #[test]
    fn alter_other_ops() {
        let ops = alter_ops(
            "ALTER TABLE t RENAME COLUMN a TO b, ALTER COLUMN c SET DEFAULT 'x', ALTER d DROP DEFAULT, ALTER COLUMN e SET DEFAULT NULL, \
             CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin, DEFAULT CHARSET = latin1, CHARACTER SET utf8, RENAME INDEX i TO j, \
             DEFAULT COLLATE = utf8_bin, RENAME TO db.u, ALTER INDEX i INVISIBLE",
        );
        assert_eq!(
            ops,
            [
                AlterOp::RenameColumn {
                    old: "a".into(),
                    new: "b".into()
                },
                AlterOp::SetDefault {
                    column: "c".into(),
                    default: "x".into()
                },
                AlterOp::DropDefault { column: "d".into() },
                AlterOp::SetDefault {
                    column: "e".into(),
                    default: "NULL".into()
                },
                AlterOp::Charset("utf8mb4".into()),
                AlterOp::Charset("latin1".into()),
                AlterOp::Charset("utf8".into()),
                AlterOp::Other("RENAME INDEX i TO j".into()),
                AlterOp::Other("DEFAULT COLLATE = utf8_bin".into()),
                AlterOp::RenameTable(name(Some("db"), "u")),
                AlterOp::Other("ALTER INDEX i INVISIBLE".into()),
            ]
        );
        assert_eq!(
            alter_ops("ALTER TABLE t RENAME AS u"),
            [AlterOp::RenameTable(name(None, "u"))]
        );
        assert_eq!(
            alter_ops("ALTER TABLE t RENAME u;"),
            [AlterOp::RenameTable(name(None, "u"))]
        );
        let ops = alter_ops("ALTER TABLE t ADD a INT PARTITION BY HASH (a) PARTITIONS 4");
        assert!(
            matches!(&ops[..], [AlterOp::AddColumns { .. }, AlterOp::Other(p)] if p.starts_with("PARTITION BY")),
            "{ops:?}"
        );
        let ops = alter_ops("ALTER TABLE t DROP COLUMN a, REMOVE PARTITIONING");
        assert_eq!(ops[1], AlterOp::Other("REMOVE PARTITIONING".into()));
        let ops = alter_ops(
            "ALTER TABLE t ADD PARTITION (PARTITION p3 VALUES LESS THAN (30)), DROP PARTITION p1, FORCE, ORDER BY a",
        );
        assert!(
            ops.iter().all(|o| matches!(o, AlterOp::Other(_))),
            "{ops:?}"
        );
        assert!(alter_ops("ALTER TABLE t").is_empty());
    }

    #[test]
    fn other_statements() {
        assert_eq!(
            parse("RENAME TABLE a TO b, db.c TO `db2`.d").unwrap(),
            Statement::RenameTables(vec![
                (name(None, "a"), name(None, "b")),
                (name(Some("db"), "c"), name(Some("db2"), "d"))
            ])
        );
        assert!(
            matches!(parse("RENAME TABLE IF EXISTS a WAIT 3 TO b").unwrap(), Statement::RenameTables(v) if v.len() == 1)
        );
        assert_eq!(
            parse("TRUNCATE TABLE t WAIT 1").unwrap(),
            Statement::Truncate(name(None, "t"))
        );
        assert_eq!(
            parse("DROP TABLE `t` /* generated by server */").unwrap(),
            Statement::DropTables {
                tables: vec![name(None, "t")],
                if_exists: false,
                temporary: false
            }
        );
        assert_eq!(
            parse("DROP TEMPORARY TABLE IF EXISTS a, b NOWAIT CASCADE").unwrap(),
            Statement::DropTables {
                tables: vec![name(None, "a"), name(None, "b")],
                if_exists: true,
                temporary: true
            }
        );
        assert_eq!(
            parse("CREATE SCHEMA s").unwrap(),
            Statement::CreateDatabase {
                name: "s".into(),
                if_not_exists: false
            }
        );
        assert_eq!(
            parse("DROP DATABASE IF EXISTS `s`").unwrap(),
            Statement::DropDatabase {
                name: "s".into(),
                if_exists: true
            }
        );
        assert_eq!(
            parse("CREATE UNIQUE INDEX IF NOT EXISTS i USING BTREE ON db.t (a(10), b) ALGORITHM=INPLACE").unwrap(),
            Statement::IndexChange { table: name(Some("db"), "t") }
        );
        assert_eq!(
            parse("DROP INDEX `PRIMARY` ON t").unwrap(),
            Statement::IndexChange {
                table: name(None, "t")
            }
        );
        assert_eq!(
            parse("drop index if exists i on t lock=none").unwrap(),
            Statement::IndexChange {
                table: name(None, "t")
            }
        );
    }

    #[test]
    fn untracked_statements() {
        for sql in [
            "GRANT SELECT ON db.* TO 'u'@'%'",
            "SET NAMES utf8mb4",
            "FLUSH PRIVILEGES",
            "CREATE VIEW v AS SELECT 1",
            "CREATE OR REPLACE DEFINER=`root`@`localhost` VIEW v AS SELECT 1",
            "CREATE USER 'u'@'%' IDENTIFIED BY 'p'",
            "INSERT INTO t VALUES ('unterminated",
            "CREATE TEMPORARY SEQUENCE s",
            "ALTER DATABASE d CHARACTER SET utf8",
            "ALTER USER u",
            "RENAME USER a TO b",
            "DROP VIEW v",
            "DROP TRIGGER tr",
            "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1",
            "BEGIN",
            "",
            "  -- only a comment\n",
            "ANALYZE TABLE t",
        ] {
            assert_eq!(parse(sql), Ok(Statement::Other), "{sql}");
        }
    }

    #[test]
    fn malformed_input() {
        for sql in [
            "CREATE TABLE t (",
            "CREATE TABLE t (a INT",
            "CREATE TABLE t (a INT))",
            "CREATE TABLE t (a VARCHAR(10)",
            "CREATE TABLE t (a INT DEFAULT 'oops)",
            "CREATE TABLE t (a INT) COMMENT 'x",
            "CREATE TABLE t (a INT /* oops",
            "CREATE TABLE t (a INT) /*!40101 ENGINE=InnoDB",
            "CREATE TABLE `t (a INT)",
            "CREATE TABLE t",
            "CREATE TABLE t ()",
            "CREATE TABLE (a INT)",
            "CREATE TABLE t (a INT NOT)",
            "CREATE TABLE t (a INT DEFAULT)",
            "CREATE TABLE t (a VARCHAR(x))",
            "CREATE TABLE t (a DECIMAL(99999999999999999999))",
            "ALTER TABLE",
            "ALTER TABLE ;",
            "ALTER TABLE ADD COLUMN a INT",
            "ALTER TABLE t ADD COLUMN",
            "ALTER TABLE t ADD a INT)",
            "ALTER TABLE t ADD a INT,",
            "ALTER TABLE t ADD INDEX (a",
            "ALTER TABLE t RENAME COLUMN a b",
            "ALTER TABLE t CONVERT TO utf8",
            "DROP TABLE",
            "DROP TABLE a,",
            "RENAME TABLE a b",
            "TRUNCATE",
            "DROP TABLE t; DROP TABLE u",
            "/* unterminated",
            "CREATE INDEX i t (a)",
        ] {
            let got = parse(sql);
            assert!(got.is_err(), "{sql}: {got:?}");
        }
        assert_eq!(
            parse("CREATE TABLE t (a INT").unwrap_err(),
            "expected `,` or `)` in the column list, found the end of the statement"
        );
        assert_eq!(
            parse("CREATE TABLE t (a INT) COMMENT 'x").unwrap_err(),
            "unterminated string literal"
        );
    }

    #[test]
    fn every_prefix_and_suffix_is_safe() {
        let statements = [
            "CREATE TABLE `t` (\n  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,\n  `doc` longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin DEFAULT NULL CHECK (json_valid(`doc`)),\n  `c` varchar(10) DEFAULT 'x''y',\n  PRIMARY KEY (`id`),\n  KEY `k` (`c`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 /*!50100 PARTITION BY HASH (id) */",
            "ALTER TABLE db.t ADD COLUMN IF NOT EXISTS (a INT, b ENUM('x\\'y','z')), CHANGE a b DECIMAL(10,2) DEFAULT -1.5 FIRST, DROP PRIMARY KEY, ADD CONSTRAINT pk PRIMARY KEY (a(10)), ALTER c SET DEFAULT (now() + 1), RENAME TO u",
            "/*M!100301 CREATE OR REPLACE TEMPORARY TABLE x LIKE y */; -- c\n",
            "RENAME TABLE a TO b, c TO d; DROP TABLE IF EXISTS `a`.`b` /* generated by server */ # x",
            "CREATE TABLE é (ü INT DEFAULT _utf8mb4'ö' COMMENT \"ä\\\"\" , x SET('a') ) CHARSET=x'41' b'1' 0x1F .5 1e-3 <=> ->>",
        ];
        for sql in statements {
            for (i, ch) in sql.char_indices() {
                let _ = parse(&sql[..i]);
                let _ = parse(&sql[i..]);
                let _ = parse(&format!("{}{}", &sql[..i], &sql[i + ch.len_utf8()..]));
            }
        }
        // Deep nesting is read without recursion.
        let deep = format!(
            "CREATE TABLE t (a INT DEFAULT {}1{})",
            "(".repeat(100_000),
            ")".repeat(100_000)
        );
        assert!(parse(&deep).is_ok());
        let signs = format!("CREATE TABLE t (a INT DEFAULT {}1)", "-".repeat(100_000));
        assert!(parse(&signs).is_ok());
        assert!(parse(&"(".repeat(100_000)).is_ok());
        assert!(parse(&format!("CREATE TABLE t {}", "(".repeat(100_000))).is_err());
    }
}
