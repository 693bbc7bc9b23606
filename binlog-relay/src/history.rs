//! Schema history: every included table's columns as of each DDL position,
//! so that a row is decoded with the schema of its time, whatever position
//! the relay streams from.
//!
//! # What it holds
//! Per table, a list of `(position, schema)` entries ordered by binlog
//! position (`None`: the table does not exist from there on). A rows event
//! at position `p` is decoded with the latest entry at or before `p`
//! ([`History::at`]). Table maps still win where they carry the names
//! (`binlog_row_metadata=FULL`), and every schema, wherever it came from, is
//! checked against the table map's column types before use
//! ([`crate::schema`]): a mismatch stops the relay with the diff.
//!
//! # Where entries come from
//! - Each DDL statement the relay reads ([`crate::ddl`] parses it) is
//!   applied to the schema before it ([`apply`]); the result is published as
//!   a [`Record`] on `<prefix>.schema-history` (one partition, kept forever)
//!   in the same Kafka transaction as the statement's schema change event,
//!   and kept in memory.
//! - At start the relay reads that topic back ([`load`]). A table with no
//!   entry at all is seeded from `SHOW CREATE TABLE` at the start position
//!   (in memory only): the schema the server has now, which is the schema at
//!   the start position unless DDL ran in between, and then the type check
//!   refuses it, as before history existed.
//! - A statement whose "before" is unknown (an `ALTER` of a table with no
//!   entry, `CREATE TABLE … SELECT`) takes the table from the server.
//!
//! Records are keyed by position: a replay that reads a DDL again keeps the
//! entry already recorded for that position.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::Settings;
use crate::ddl::{self, AlterOp, ColumnDef, Name, Position, Statement, TableDef};
use crate::eos::TopicReader;
use crate::error::{Error, Result};
use crate::position::FilePos;
use crate::schema::KnownColumn;

/// A column as Debezium's schema change events describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Column {
    pub name: String,
    /// `java.sql.Types` code of the column type.
    pub jdbc_type: i32,
    pub native_type: Option<i32>,
    /// Base type, with `UNSIGNED` when unsigned (`JSON` for MariaDB's
    /// `LONGTEXT … CHECK (json_valid(…))` alias too).
    pub type_name: String,
    pub type_expression: String,
    pub charset_name: Option<String>,
    pub length: Option<i64>,
    pub scale: Option<i64>,
    /// 1-based.
    pub position: usize,
    pub optional: bool,
    pub auto_incremented: bool,
    pub generated: bool,
    pub comment: Option<String>,
    pub has_default_value: bool,
    pub default_value_expression: Option<String>,
    pub enum_values: Option<Vec<String>>,
}

/// A table's structure after a change (Debezium's `tableChanges[].table`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Table {
    pub default_charset_name: Option<String>,
    pub primary_key_column_names: Vec<String>,
    pub columns: Vec<Column>,
}

impl Table {
    /// The table as [`crate::schema`] checks and names rows with it.
    pub fn known_columns(&self) -> Vec<KnownColumn> {
        self.columns
            .iter()
            .map(|c| {
                let base = c.type_name.trim_end_matches(" UNSIGNED");
                KnownColumn {
                    name: c.name.clone(),
                    data_type: base.to_ascii_lowercase(),
                    json: base == "JSON",
                    primary: self
                        .primary_key_column_names
                        .iter()
                        .any(|p| p.eq_ignore_ascii_case(&c.name)),
                }
            })
            .collect()
    }

    fn index_of(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    }

    fn renumber(&mut self) {
        for (i, c) in self.columns.iter_mut().enumerate() {
            c.position = i + 1;
        }
    }

    /// A table from a `CREATE TABLE` body.
    pub fn from_def(def: &TableDef) -> Self {
        let mut t = Table {
            default_charset_name: def.charset.clone(),
            primary_key_column_names: def.primary_key.clone(),
            columns: Vec::new(),
        };
        for c in &def.columns {
            t.columns.push(column(c, 0));
            if c.primary_key && !t.has_key(&c.name) {
                t.primary_key_column_names.push(c.name.clone());
            }
        }
        t.key_columns_not_null();
        t.renumber();
        t
    }

    fn has_key(&self, name: &str) -> bool {
        self.primary_key_column_names
            .iter()
            .any(|p| p.eq_ignore_ascii_case(name))
    }

    /// Primary-key columns are never NULL.
    fn key_columns_not_null(&mut self) {
        let keys = self.primary_key_column_names.clone();
        for c in &mut self.columns {
            if keys.iter().any(|k| k.eq_ignore_ascii_case(&c.name)) {
                c.optional = false;
            }
        }
    }

    /// Puts `col` at `pos` (`Position::Last` keeps an existing column in
    /// place and appends a new one).
    fn place(&mut self, col: Column, existing: Option<usize>, pos: &Position) {
        if let (Position::Last, Some(i)) = (pos, existing) {
            self.columns[i] = col;
            return;
        }
        if let Some(i) = existing {
            self.columns.remove(i);
        }
        let at = match pos {
            Position::Last => self.columns.len(),
            Position::First => 0,
            Position::After(a) => self.index_of(a).map_or(self.columns.len(), |i| i + 1),
        };
        self.columns.insert(at, col);
    }

    fn apply(&mut self, op: &AlterOp) {
        match op {
            AlterOp::AddColumns {
                columns, position, ..
            } => {
                let mut pos = position.clone();
                for c in columns {
                    let existing = self.index_of(&c.name);
                    let place = match (&pos, existing) {
                        // ADD of a column the table has (a replay over a
                        // seeded schema): it ends up where ADD puts it.
                        (Position::Last, Some(_)) => Position::After(
                            self.columns
                                .last()
                                .map(|l| l.name.clone())
                                .unwrap_or_default(),
                        ),
                        (p, _) => p.clone(),
                    };
                    self.place(column(c, 0), existing, &place);
                    if c.primary_key && !self.has_key(&c.name) {
                        self.primary_key_column_names = vec![c.name.clone()];
                    }
                    // Several columns after one: each after the previous.
                    if !matches!(pos, Position::Last) {
                        pos = Position::After(c.name.clone());
                    }
                }
            }
            AlterOp::Modify {
                column: c,
                position,
                ..
            } => {
                if let Some(i) = self.index_of(&c.name) {
                    self.place(column(c, 0), Some(i), position);
                    if c.primary_key && !self.has_key(&c.name) {
                        self.primary_key_column_names = vec![c.name.clone()];
                    }
                }
            }
            AlterOp::Change {
                old,
                column: c,
                position,
                ..
            } => {
                if let Some(i) = self.index_of(old) {
                    self.place(column(c, 0), Some(i), position);
                    for k in &mut self.primary_key_column_names {
                        if k.eq_ignore_ascii_case(old) {
                            k.clone_from(&c.name);
                        }
                    }
                    if c.primary_key && !self.has_key(&c.name) {
                        self.primary_key_column_names = vec![c.name.clone()];
                    }
                }
            }
            AlterOp::DropColumn { name, .. } => {
                if let Some(i) = self.index_of(name) {
                    self.columns.remove(i);
                }
                self.primary_key_column_names
                    .retain(|k| !k.eq_ignore_ascii_case(name));
            }
            AlterOp::RenameColumn { old, new } => {
                if let Some(i) = self.index_of(old) {
                    self.columns[i].name.clone_from(new);
                }
                for k in &mut self.primary_key_column_names {
                    if k.eq_ignore_ascii_case(old) {
                        k.clone_from(new);
                    }
                }
            }
            AlterOp::AddPrimaryKey(cols) => self.primary_key_column_names.clone_from(cols),
            AlterOp::DropPrimaryKey => self.primary_key_column_names.clear(),
            AlterOp::SetDefault { column, default } => {
                if let Some(i) = self.index_of(column) {
                    let c = &mut self.columns[i];
                    c.has_default_value = true;
                    c.default_value_expression = Some(default.clone());
                }
            }
            AlterOp::DropDefault { column } => {
                if let Some(i) = self.index_of(column) {
                    let c = &mut self.columns[i];
                    c.has_default_value = false;
                    c.default_value_expression = None;
                }
            }
            AlterOp::Charset(cs) => self.default_charset_name = Some(cs.clone()),
            AlterOp::RenameTable(_) | AlterOp::Other(_) => {}
        }
        self.key_columns_not_null();
        self.renumber();
    }
}

/// `java.sql.Types` of a base type, as Debezium's MySQL connector reports them.
fn jdbc_type(base: &str, length: Option<i64>) -> i32 {
    match base {
        "BIT" if length.unwrap_or(1) == 1 => -7,
        "BIT" => -3,
        "BOOL" | "BOOLEAN" => 16,
        "TINYINT" => -6,
        "SMALLINT" => 5,
        "MEDIUMINT" | "INT" | "INTEGER" | "YEAR" => 4,
        "BIGINT" => -5,
        "FLOAT" => 6,
        "REAL" => 7,
        "DOUBLE" => 8,
        "DECIMAL" => 3,
        "NUMERIC" => 2,
        "DATE" => 91,
        "TIME" => 92,
        "DATETIME" => 93,
        "TIMESTAMP" => 2014,
        "CHAR" | "ENUM" | "SET" => 1,
        "VARCHAR" | "TINYTEXT" | "TEXT" | "MEDIUMTEXT" | "LONGTEXT" | "INET4" | "INET6"
        | "UUID" => 12,
        "BINARY" => -2,
        "VARBINARY" => -3,
        "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB" => 2004,
        _ => 1111,
    }
}

fn column(c: &ColumnDef, position: usize) -> Column {
    let base = if c.json {
        "JSON".to_owned()
    } else {
        c.type_name.to_ascii_uppercase()
    };
    let type_name = if c.unsigned {
        format!("{base} UNSIGNED")
    } else {
        base.clone()
    };
    Column {
        name: c.name.clone(),
        jdbc_type: jdbc_type(&base, c.length),
        native_type: None,
        type_expression: type_name.clone(),
        type_name,
        charset_name: c.charset.clone(),
        length: c.length,
        scale: c.scale,
        position,
        optional: c.optional && !c.primary_key,
        auto_incremented: c.auto_increment,
        generated: c.auto_increment || c.generated,
        comment: c.comment.clone(),
        has_default_value: c.has_default,
        default_value_expression: c.default.clone(),
        enum_values: (!c.enum_values.is_empty()).then(|| c.enum_values.clone()),
    }
}

/// What the history knows of a table at a position: `None` nothing,
/// `Some(None)` that it does not exist, `Some(Some(schema))` its schema.
pub type Known = Option<Option<Arc<Table>>>;

/// One table's entries, in position order (`None`: gone from there on).
type Entries = Vec<(FilePos, Option<Arc<Table>>)>;

/// One table's state after a statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub db: String,
    pub table: String,
    /// `None`: the table is gone (dropped, renamed away).
    pub schema: Option<Table>,
}

/// A record of `<prefix>.schema-history`: the tables a DDL statement left
/// behind, at its position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub file: String,
    /// Start offset of the statement's event.
    pub pos: u64,
    pub gtid: Option<String>,
    pub ts_ms: i64,
    pub database_name: String,
    pub ddl: String,
    pub tables: Vec<Entry>,
}

impl Record {
    pub fn position(&self) -> FilePos {
        FilePos::new(&self.file, self.pos)
    }
}

/// Debezium's kind of table change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ChangeKind {
    Create,
    Alter,
    Drop,
}

/// Debezium's table id.
pub fn table_id(db: &str, table: &str) -> String {
    format!("\"{db}\".\"{table}\"")
}

/// What one statement does to the tables it names.
#[derive(Debug, Default, PartialEq)]
pub struct Applied {
    /// Whether the statement is one the relay reports (table and database DDL).
    pub tracked: bool,
    /// The statement's database (its table's, else the session's).
    pub database: String,
    pub changes: Vec<(ChangeKind, String, String)>,
    /// Tables after the statement (`None`: gone).
    pub tables: Vec<(String, String, Option<Table>)>,
    /// Tables whose schema after the statement only the server knows.
    pub from_server: Vec<(String, String)>,
    /// `TRUNCATE`: the table emptied.
    pub truncated: Option<(String, String)>,
    /// Renamed tables: new name → old name.
    pub previous: HashMap<(String, String), (String, String)>,
}

fn resolve(name: &Name, default_db: &str) -> (String, String) {
    (
        name.db.clone().unwrap_or_else(|| default_db.to_owned()),
        name.table.clone(),
    )
}

/// Applies `stmt` (run in session database `default_db`) to the tables as
/// `before` gives them (`None`: unknown; `Some(None)`: no such table).
pub fn apply(
    stmt: &Statement,
    default_db: &str,
    before: &dyn Fn(&str, &str) -> Known,
    tables_of: &dyn Fn(&str) -> Vec<String>,
) -> Applied {
    let mut out = Applied {
        tracked: true,
        database: default_db.to_owned(),
        ..Applied::default()
    };
    match stmt {
        Statement::CreateTable {
            temporary: true, ..
        }
        | Statement::CreateTableLike {
            temporary: true, ..
        }
        | Statement::CreateTableSelect {
            temporary: true, ..
        }
        | Statement::DropTables {
            temporary: true, ..
        }
        | Statement::Other => out.tracked = false,
        Statement::CreateTable {
            table,
            if_not_exists,
            def,
            ..
        } => {
            let (db, t) = resolve(table, default_db);
            out.database.clone_from(&db);
            let exists = matches!(before(&db, &t), Some(Some(_)));
            if !(*if_not_exists && exists) {
                out.changes
                    .push((ChangeKind::Create, db.clone(), t.clone()));
                out.tables.push((db, t, Some(Table::from_def(def))));
            }
        }
        Statement::CreateTableLike { table, like, .. } => {
            let (db, t) = resolve(table, default_db);
            let (ldb, lt) = resolve(like, default_db);
            out.database.clone_from(&db);
            out.changes
                .push((ChangeKind::Create, db.clone(), t.clone()));
            match before(&ldb, &lt) {
                Some(Some(src)) => out.tables.push((db, t, Some((*src).clone()))),
                _ => out.from_server.push((db, t)),
            }
        }
        Statement::CreateTableSelect { table, .. } => {
            let (db, t) = resolve(table, default_db);
            out.database.clone_from(&db);
            out.changes
                .push((ChangeKind::Create, db.clone(), t.clone()));
            out.from_server.push((db, t));
        }
        Statement::AlterTable { table, ops } => {
            let (db, t) = resolve(table, default_db);
            out.database.clone_from(&db);
            let renamed = ops.iter().rev().find_map(|op| match op {
                AlterOp::RenameTable(n) => Some(resolve(n, &db)),
                _ => None,
            });
            let (ndb, nt) = renamed.clone().unwrap_or_else(|| (db.clone(), t.clone()));
            if renamed.is_some() {
                out.tables.push((db.clone(), t.clone(), None));
                out.previous
                    .insert((ndb.clone(), nt.clone()), (db.clone(), t.clone()));
            }
            out.changes
                .push((ChangeKind::Alter, ndb.clone(), nt.clone()));
            match before(&db, &t) {
                Some(Some(prev)) => {
                    let mut next = (*prev).clone();
                    for op in ops {
                        next.apply(op);
                    }
                    out.tables.push((ndb, nt, Some(next)));
                }
                _ => out.from_server.push((ndb, nt)),
            }
        }
        Statement::IndexChange { table } => {
            let (db, t) = resolve(table, default_db);
            out.database.clone_from(&db);
            out.changes.push((ChangeKind::Alter, db.clone(), t.clone()));
            match before(&db, &t) {
                Some(Some(prev)) => out.tables.push((db, t, Some((*prev).clone()))),
                _ => out.from_server.push((db, t)),
            }
        }
        Statement::RenameTables(pairs) => {
            // Renames apply in order (a TO b, b TO c is a chain): per name,
            // its state and, for a destination, the name it came from.
            type Key = (String, String);
            let mut moved: HashMap<Key, (Known, Option<Key>)> = HashMap::new();
            for (from, to) in pairs {
                let from = resolve(from, default_db);
                let to = resolve(to, default_db);
                if moved.is_empty() {
                    out.database.clone_from(&to.0);
                }
                let (state, origin) = moved
                    .remove(&from)
                    .unwrap_or_else(|| (before(&from.0, &from.1), Some(from.clone())));
                moved.insert(from, (Some(None), None));
                moved.insert(to, (state, origin));
            }
            let mut keys: Vec<_> = moved.into_iter().collect();
            keys.sort_by(|a, b| a.0.cmp(&b.0));
            for ((db, t), (state, origin)) in keys {
                if let Some(origin) = origin {
                    out.changes.push((ChangeKind::Alter, db.clone(), t.clone()));
                    out.previous.insert((db.clone(), t.clone()), origin);
                }
                match state {
                    Some(Some(tab)) => out.tables.push((db, t, Some((*tab).clone()))),
                    Some(None) => out.tables.push((db, t, None)),
                    None => out.from_server.push((db, t)),
                }
            }
        }
        Statement::Truncate(name) => {
            let (db, t) = resolve(name, default_db);
            out.database.clone_from(&db);
            out.truncated = Some((db, t));
        }
        Statement::DropTables { tables, .. } => {
            for name in tables {
                let (db, t) = resolve(name, default_db);
                if out.changes.is_empty() {
                    out.database.clone_from(&db);
                }
                out.changes.push((ChangeKind::Drop, db.clone(), t.clone()));
                out.tables.push((db, t, None));
            }
        }
        Statement::CreateDatabase { name, .. } => out.database.clone_from(name),
        Statement::DropDatabase { name, .. } => {
            out.database.clone_from(name);
            for t in tables_of(name) {
                out.changes
                    .push((ChangeKind::Drop, name.clone(), t.clone()));
                out.tables.push((name.clone(), t, None));
            }
        }
    }
    out
}

/// The fuzz target `ddl`'s property (`fuzz/`): any text, read as a
/// statement and applied to a known table of every name it mentions, never
/// panics and leaves tables whose column positions run 1, 2, 3, ….
pub fn check_ddl(text: &str) -> std::result::Result<(), String> {
    let Ok(stmt) = ddl::parse(text) else {
        return Ok(());
    };
    let sample = Arc::new(Table::from_def(&TableDef {
        columns: ["id", "a", "b"]
            .iter()
            .map(|n| ColumnDef {
                name: (*n).to_owned(),
                type_name: "INT".into(),
                type_expression: "INT".into(),
                optional: true,
                ..ColumnDef::default()
            })
            .collect(),
        primary_key: vec!["id".into()],
        charset: None,
    }));
    let applied = apply(&stmt, "db", &|_, _| Some(Some(sample.clone())), &|_| {
        vec!["t".into()]
    });
    for (_, t, schema) in &applied.tables {
        let Some(schema) = schema else { continue };
        let positions: Vec<usize> = schema.columns.iter().map(|c| c.position).collect();
        if positions != (1..=schema.columns.len()).collect::<Vec<_>>() {
            return Err(format!(
                "{t}: column positions {positions:?} after {text:?}"
            ));
        }
    }
    Ok(())
}

/// Every table's entries, in position order.
#[derive(Debug, Default, Clone)]
pub struct History {
    tables: HashMap<(String, String), Entries>,
}

impl History {
    /// The schema of `db.table` at `pos`: `None` when the history has no
    /// entry at or before it, `Some(None)` when the table did not exist.
    pub fn at(&self, db: &str, table: &str, pos: &FilePos) -> Known {
        let list = self.tables.get(&(db.to_owned(), table.to_owned()))?;
        let i = list.partition_point(|(p, _)| p <= pos);
        i.checked_sub(1).map(|i| list[i].1.clone())
    }

    /// The schema of `db.table` just before `pos` (what a statement at
    /// `pos` changes, even when its own entry is already recorded).
    pub fn before(&self, db: &str, table: &str, pos: &FilePos) -> Known {
        let list = self.tables.get(&(db.to_owned(), table.to_owned()))?;
        let i = list.partition_point(|(p, _)| p < pos);
        i.checked_sub(1).map(|i| list[i].1.clone())
    }

    /// Whether `db.table` has any entry.
    pub fn knows(&self, db: &str, table: &str) -> bool {
        self.tables.contains_key(&(db.to_owned(), table.to_owned()))
    }

    /// The tables of `db` that exist just before `pos`.
    pub fn tables_of(&self, db: &str, pos: &FilePos) -> Vec<String> {
        let mut out: Vec<String> = self
            .tables
            .keys()
            .filter(|(d, _)| d == db)
            .filter(|(d, t)| matches!(self.before(d, t, pos), Some(Some(_))))
            .map(|(_, t)| t.clone())
            .collect();
        out.sort();
        out
    }

    /// Adds one table's state at `pos`; an entry already at `pos` is kept
    /// (a replay reads the same statement again). Returns whether it was new.
    pub fn insert(&mut self, db: &str, table: &str, pos: FilePos, schema: Option<Table>) -> bool {
        let list = self
            .tables
            .entry((db.to_owned(), table.to_owned()))
            .or_default();
        let i = list.partition_point(|(p, _)| *p < pos);
        if list.get(i).is_some_and(|(p, _)| *p == pos) {
            return false;
        }
        list.insert(i, (pos, schema.map(Arc::new)));
        true
    }

    /// Adds every table of `record`.
    pub fn add(&mut self, record: &Record) {
        for e in &record.tables {
            self.insert(&e.db, &e.table, record.position(), e.schema.clone());
        }
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.tables.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }
}

/// A table as the server has it now, from `SHOW CREATE TABLE`; `None` when
/// it does not exist (or is a view).
pub async fn server_table(pool: &sqlx::MySqlPool, db: &str, table: &str) -> Result<Option<Table>> {
    let q = format!(
        "SHOW CREATE TABLE `{}`.`{}`",
        db.replace('`', "``"),
        table.replace('`', "``")
    );
    let row: std::result::Result<(String, String), sqlx::Error> =
        // Both names are quoted with their backticks doubled.
        sqlx::query_as(sqlx::AssertSqlSafe(q)).fetch_one(pool).await;
    let text = match row {
        Ok((_, text)) => text,
        Err(sqlx::Error::Database(e))
            if matches!(e.code().as_deref(), Some("42S02") | Some("42000")) =>
        {
            return Ok(None);
        }
        // A view answers with four columns.
        Err(sqlx::Error::ColumnDecode { .. }) | Err(sqlx::Error::RowNotFound) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    match ddl::parse(&text) {
        Ok(Statement::CreateTable { def, .. }) => Ok(Some(Table::from_def(&def))),
        Ok(_) => Ok(None),
        Err(e) => Err(Error::Decode {
            table: format!("{db}.{table}"),
            reason: format!("its SHOW CREATE TABLE could not be read: {e}"),
        }),
    }
}

/// Reads every record of `<prefix>.schema-history` (blocking: run it on a
/// blocking thread). An absent topic is an empty history.
pub fn load(settings: &Settings, timeout: Duration) -> Result<Vec<Record>> {
    let topic = cdc_event::topic::schema_history_topic(&settings.kafka.topic_prefix);
    let reader = TopicReader::new(settings, &topic, "history-reader", timeout)?;
    let mut out = Vec::new();
    for (p, low, _) in reader.partitions.clone() {
        reader.read(p, low, |_, payload, offset| {
            let Some(payload) = payload else {
                return Ok(());
            };
            let record = serde_json::from_slice::<Record>(payload).map_err(|e| {
                Error::BadStart(format!(
                    "the schema history record at {topic}/{p}@{offset} is unreadable: {e}"
                ))
            })?;
            out.push(record);
            Ok(())
        })?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(sql: &str) -> Statement {
        ddl::parse(sql).expect(sql)
    }

    fn table(sql: &str) -> Table {
        match parse(sql) {
            Statement::CreateTable { def, .. } => Table::from_def(&def),
            other => panic!("{other:?}"),
        }
    }

    fn names(t: &Table) -> Vec<&str> {
        t.columns.iter().map(|c| c.name.as_str()).collect()
    }

    fn alter(t: &Table, sql: &str) -> Table {
        let prev = Arc::new(t.clone());
        let a = apply(
            &parse(sql),
            "app",
            &|_, _| Some(Some(prev.clone())),
            &|_| Vec::new(),
        );
        a.tables
            .into_iter()
            .find_map(|(_, _, t)| t)
            .expect("a table after the change")
    }

    #[test]
    fn alters_move_columns_like_the_server() {
        let t = table("CREATE TABLE t (id BIGINT UNSIGNED PRIMARY KEY, a INT, b VARCHAR(10))");
        assert_eq!(t.primary_key_column_names, ["id"]);
        assert!(!t.columns[0].optional);
        assert_eq!(t.columns[0].type_name, "BIGINT UNSIGNED");
        let t2 = alter(
            &t,
            "ALTER TABLE t ADD COLUMN c INT AFTER id, ADD d INT FIRST",
        );
        assert_eq!(names(&t2), ["d", "id", "c", "a", "b"]);
        assert_eq!(t2.columns[2].position, 3);
        let t3 = alter(&t2, "ALTER TABLE t MODIFY a BIGINT NOT NULL, DROP COLUMN d");
        assert_eq!(names(&t3), ["id", "c", "a", "b"]);
        assert_eq!(t3.columns[2].type_name, "BIGINT");
        assert!(!t3.columns[2].optional);
        let t4 = alter(
            &t3,
            "ALTER TABLE t CHANGE b bb TEXT FIRST, RENAME COLUMN c TO cc",
        );
        assert_eq!(names(&t4), ["bb", "id", "cc", "a"]);
        let t5 = alter(
            &t4,
            "ALTER TABLE t DROP PRIMARY KEY, ADD PRIMARY KEY (cc, a)",
        );
        assert_eq!(t5.primary_key_column_names, ["cc", "a"]);
        // ADD of a column a seeded schema already has: no duplicate.
        let t6 = alter(&t5, "ALTER TABLE t ADD COLUMN IF NOT EXISTS bb TEXT");
        assert_eq!(names(&t6), ["id", "cc", "a", "bb"]);
    }

    #[test]
    fn renames_chain_and_drops_forget() {
        let a = Arc::new(table("CREATE TABLE a (x INT)"));
        let applied = apply(
            &parse("RENAME TABLE a TO b, b TO c"),
            "app",
            &|_, t| (t == "a").then(|| Some(a.clone())).or(Some(None)),
            &|_| Vec::new(),
        );
        assert_eq!(
            applied.previous.get(&("app".to_owned(), "c".to_owned())),
            Some(&("app".to_owned(), "a".to_owned()))
        );
        assert_eq!(applied.changes.len(), 1);
        let state: Vec<(&str, bool)> = applied
            .tables
            .iter()
            .map(|(_, t, s)| (t.as_str(), s.is_some()))
            .collect();
        assert_eq!(state, [("a", false), ("b", false), ("c", true)]);
        let dropped = apply(
            &parse("DROP TABLE IF EXISTS other.x, y"),
            "app",
            &|_, _| None,
            &|_| Vec::new(),
        );
        assert_eq!(dropped.database, "other");
        assert_eq!(dropped.changes.len(), 2);
        assert!(dropped.tables.iter().all(|(_, _, s)| s.is_none()));
    }

    #[test]
    fn an_alter_without_a_known_before_asks_the_server() {
        let a = apply(
            &parse("ALTER TABLE t ADD c INT"),
            "app",
            &|_, _| None,
            &|_| Vec::new(),
        );
        assert_eq!(a.from_server, [("app".to_owned(), "t".to_owned())]);
        let tmp = apply(
            &parse("CREATE TEMPORARY TABLE t (a INT)"),
            "app",
            &|_, _| None,
            &|_| Vec::new(),
        );
        assert!(!tmp.tracked);
    }

    #[test]
    fn history_answers_by_position_and_keeps_the_first_record_of_a_position() {
        let mut h = History::default();
        let v1 = table("CREATE TABLE t (a INT)");
        let v2 = table("CREATE TABLE t (a INT, b INT)");
        h.insert("d", "t", FilePos::new("b.000001", 100), Some(v1.clone()));
        h.insert("d", "t", FilePos::new("b.000002", 50), Some(v2.clone()));
        assert!(!h.insert("d", "t", FilePos::new("b.000002", 50), None));
        assert_eq!(h.at("d", "t", &FilePos::new("b.000001", 99)), None);
        assert_eq!(h.before("d", "t", &FilePos::new("b.000001", 100)), None);
        assert_eq!(
            h.before("d", "t", &FilePos::new("b.000002", 50))
                .flatten()
                .as_deref(),
            Some(&v1)
        );
        let at = |f: &str, p| h.at("d", "t", &FilePos::new(f, p)).flatten();
        assert_eq!(at("b.000001", 100).as_deref(), Some(&v1));
        assert_eq!(at("b.000001", 9999).as_deref(), Some(&v1));
        assert_eq!(at("b.000002", 51).as_deref(), Some(&v2));
        h.insert("d", "t", FilePos::new("b.000003", 4), None);
        assert_eq!(h.at("d", "t", &FilePos::new("b.000003", 5)), Some(None));
        assert!(h.tables_of("d", &FilePos::new("b.000003", 5)).is_empty());
        assert_eq!(h.tables_of("d", &FilePos::new("b.000003", 4)), ["t"]);
        assert_eq!(h.tables_of("d", &FilePos::new("b.000002", 60)), ["t"]);
    }

    #[test]
    fn the_fuzz_corpus_keeps_its_properties() {
        testkit::fuzz_corpus("ddl", |name, bytes| {
            if let Err(problem) = check_ddl(&String::from_utf8_lossy(bytes)) {
                panic!("{name}: {problem}");
            }
        });
    }

    #[test]
    fn json_columns_and_known_columns() {
        let t = table(
            "CREATE TABLE `t` (`id` int(11) NOT NULL, `doc` longtext DEFAULT NULL CHECK (json_valid(`doc`)), \
             PRIMARY KEY (`id`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        );
        assert_eq!(t.default_charset_name.as_deref(), Some("utf8mb4"));
        let k = t.known_columns();
        assert_eq!(k[0].data_type, "int");
        assert!(k[0].primary);
        assert!(k[1].json);
        assert_eq!(t.columns[1].jdbc_type, 1111);
    }
}
