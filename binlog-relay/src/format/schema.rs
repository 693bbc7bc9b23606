//! Schema change messages on `<prefix>.schema-changes`: one DDL statement
//! in each format's own shape. Pure; no I/O.
//!
//! - `debezium`: Debezium's schema change event, keyed
//!   `{"databaseName": db}`: `source` (as on row changes, `table` naming the
//!   first table changed), `ts_ms`, `databaseName`, `schemaName` (null, as
//!   for MySQL), `ddl`, and `tableChanges` (each table's columns, types and
//!   primary key after the change; a dropped table's as they were). A
//!   renamed table is an `ALTER` of its new id with `previousId` naming the
//!   old one.
//! - `canal`: canal's flat message with `isDdl: true`, `sql`, and canal's
//!   event type (`CREATE`, `ALTER`, `ERASE`, `RENAME`, `TRUNCATE`, `CINDEX`,
//!   `DINDEX`, `QUERY` for database statements); `data` is null. Keyed by
//!   database like the Debezium one.
//! - `maxwell`: Maxwell's DDL records (`table-create`, `table-alter` with
//!   `old` and `def`, `table-drop`, `database-create`, `database-drop`), one
//!   per table, keyed `{"database":…,"table":…}`. Maxwell has no record for
//!   `TRUNCATE`; sluice sends `table-truncate` (no `def`).

use serde_json::{Map, Value, json};

use cdc_event::write::{CONNECTOR, SLUICE_VERSION};

use super::Format;
use crate::history::{ChangeKind, Table, table_id};

/// What a statement was, for the canal and Maxwell type names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    CreateTable,
    AlterTable,
    RenameTable,
    DropTable,
    Truncate,
    CreateIndex,
    DropIndex,
    CreateDatabase,
    DropDatabase,
}

/// One table a statement changed: its kind of change, name, and structure
/// before and after (either may be unknown).
#[derive(Debug, Clone)]
pub struct Changed {
    pub kind: ChangeKind,
    pub db: String,
    pub table: String,
    /// A renamed table's old `(db, table)`.
    pub previous: Option<(String, String)>,
    pub before: Option<Table>,
    pub after: Option<Table>,
}

/// One DDL statement and where it was read.
#[derive(Debug, Clone)]
pub struct SchemaChange<'a> {
    pub name: &'a str,
    pub server_id: u32,
    pub gtid: Option<&'a str>,
    pub file: &'a str,
    pub pos: u64,
    pub ts_ms: i64,
    pub now_ms: i64,
    pub thread: Option<u64>,
    pub database: &'a str,
    pub ddl: &'a str,
    pub kind: StatementKind,
    pub tables: Vec<Changed>,
}

/// The messages (key, value) of one statement in `format`.
pub fn encode(format: Format, change: &SchemaChange<'_>) -> Vec<(String, Vec<u8>)> {
    match format {
        Format::Debezium => vec![(
            json!({ "databaseName": change.database }).to_string(),
            debezium(change).to_string().into_bytes(),
        )],
        Format::Canal => vec![(
            json!({ "databaseName": change.database }).to_string(),
            canal(change).to_string().into_bytes(),
        )],
        Format::Maxwell => maxwell(change),
    }
}

fn source(c: &SchemaChange<'_>) -> Value {
    json!({
        "version": SLUICE_VERSION,
        "connector": CONNECTOR,
        "name": c.name,
        "ts_ms": c.ts_ms,
        "db": c.database,
        "table": c.tables.first().map(|t| t.table.as_str()),
        "server_id": c.server_id,
        "gtid": c.gtid,
        "file": c.file,
        "pos": c.pos,
        "row": 0,
        "snapshot": "false",
        "thread": c.thread,
    })
}

fn debezium(c: &SchemaChange<'_>) -> Value {
    // A TRUNCATE changes no structure (its `t` event is on the table's topic).
    let tables = if c.kind == StatementKind::Truncate {
        &[][..]
    } else {
        &c.tables[..]
    };
    let changes: Vec<Value> = tables
        .iter()
        .map(|t| {
            let table = match t.kind {
                ChangeKind::Drop => t.before.clone(),
                _ => t.after.clone(),
            };
            let mut v = json!({
                "type": t.kind,
                "id": table_id(&t.db, &t.table),
                "table": table.unwrap_or_default(),
            });
            if let Some((db, old)) = &t.previous {
                v["previousId"] = Value::from(table_id(db, old));
            }
            v
        })
        .collect();
    json!({
        "source": source(c),
        "ts_ms": c.now_ms,
        "databaseName": c.database,
        "schemaName": null,
        "ddl": c.ddl,
        "tableChanges": changes,
    })
}

fn canal(c: &SchemaChange<'_>) -> Value {
    let kind = match c.kind {
        StatementKind::CreateTable => "CREATE",
        StatementKind::AlterTable => "ALTER",
        StatementKind::RenameTable => "RENAME",
        StatementKind::DropTable => "ERASE",
        StatementKind::Truncate => "TRUNCATE",
        StatementKind::CreateIndex => "CINDEX",
        StatementKind::DropIndex => "DINDEX",
        StatementKind::CreateDatabase | StatementKind::DropDatabase => "QUERY",
    };
    json!({
        "data": null,
        "database": c.database,
        "es": c.ts_ms,
        "id": 0,
        "isDdl": true,
        "mysqlType": null,
        "old": null,
        "pkNames": null,
        "sql": c.ddl,
        "sqlType": null,
        "table": c.tables.first().map_or("", |t| t.table.as_str()),
        "ts": c.now_ms,
        "type": kind,
    })
}

/// Maxwell's table definition (`def` / `old`).
fn maxwell_def(db: &str, table: &str, t: &Table) -> Value {
    let columns: Vec<Value> = t
        .columns
        .iter()
        .map(|col| {
            let base = col.type_name.trim_end_matches(" UNSIGNED").to_lowercase();
            let mut m = Map::new();
            m.insert("type".into(), Value::from(base.clone()));
            m.insert("name".into(), Value::from(col.name.clone()));
            if base.contains("int") {
                m.insert(
                    "signed".into(),
                    Value::from(!col.type_name.ends_with(" UNSIGNED")),
                );
            }
            if let Some(cs) = &col.charset_name {
                m.insert("charset".into(), Value::from(cs.clone()));
            }
            if let Some(labels) = &col.enum_values {
                m.insert("enum-values".into(), Value::from(labels.clone()));
            }
            Value::Object(m)
        })
        .collect();
    json!({
        "database": db,
        "charset": t.default_charset_name,
        "table": table,
        "columns": columns,
        "primary-key": t.primary_key_column_names,
    })
}

fn maxwell(c: &SchemaChange<'_>) -> Vec<(String, Vec<u8>)> {
    let position = format!("{}:{}", c.file, c.pos);
    let ts = c.ts_ms.div_euclid(1000);
    let record = |kind: &str, table: Option<&str>, extra: Map<String, Value>| {
        let mut m = Map::new();
        m.insert("type".into(), Value::from(kind));
        m.insert("database".into(), Value::from(c.database));
        if let Some(t) = table {
            m.insert("table".into(), Value::from(t));
        }
        m.extend(extra);
        m.insert("ts".into(), Value::from(ts));
        m.insert("sql".into(), Value::from(c.ddl));
        m.insert("position".into(), Value::from(position.clone()));
        if let Some(g) = c.gtid {
            m.insert("gtid".into(), Value::from(g));
        }
        let key = json!({ "database": c.database, "table": table }).to_string();
        (key, Value::Object(m).to_string().into_bytes())
    };
    match c.kind {
        StatementKind::CreateDatabase => return vec![record("database-create", None, Map::new())],
        StatementKind::DropDatabase if c.tables.is_empty() => {
            return vec![record("database-drop", None, Map::new())];
        }
        StatementKind::Truncate => {
            return c
                .tables
                .iter()
                .map(|t| record("table-truncate", Some(&t.table), Map::new()))
                .collect();
        }
        _ => {}
    }
    let mut out: Vec<(String, Vec<u8>)> = c
        .tables
        .iter()
        .map(|t| {
            let mut extra = Map::new();
            let kind = match t.kind {
                ChangeKind::Create => "table-create",
                ChangeKind::Alter => "table-alter",
                ChangeKind::Drop => "table-drop",
            };
            if t.kind == ChangeKind::Alter
                && let Some(before) = &t.before
            {
                extra.insert("old".into(), maxwell_def(&t.db, &t.table, before));
            }
            if t.kind != ChangeKind::Drop
                && let Some(after) = &t.after
            {
                extra.insert("def".into(), maxwell_def(&t.db, &t.table, after));
            }
            record(kind, Some(&t.table), extra)
        })
        .collect();
    if c.kind == StatementKind::DropDatabase {
        out.push(record("database-drop", None, Map::new()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ddl::{self, Statement};

    fn table(sql: &str) -> Table {
        match ddl::parse(sql).unwrap() {
            Statement::CreateTable { def, .. } => Table::from_def(&def),
            other => panic!("{other:?}"),
        }
    }

    fn sample(kind: StatementKind, change: ChangeKind) -> SchemaChange<'static> {
        SchemaChange {
            name: "sluice",
            server_id: 7,
            gtid: Some("0-1-9"),
            file: "b.000001",
            pos: 400,
            ts_ms: 5_000,
            now_ms: 6_000,
            thread: None,
            database: "app",
            ddl: "ALTER TABLE t ADD b INT",
            kind,
            tables: vec![Changed {
                kind: change,
                db: "app".into(),
                table: "t".into(),
                previous: None,
                before: Some(table("CREATE TABLE t (a INT PRIMARY KEY)")),
                after: Some(table("CREATE TABLE t (a INT PRIMARY KEY, b INT)")),
            }],
        }
    }

    fn value(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn debezium_schema_change_event() {
        let out = encode(
            Format::Debezium,
            &sample(StatementKind::AlterTable, ChangeKind::Alter),
        );
        assert_eq!(out.len(), 1);
        assert_eq!(value(out[0].0.as_bytes()), json!({"databaseName": "app"}));
        let v = value(&out[0].1);
        assert_eq!(v["ddl"], "ALTER TABLE t ADD b INT");
        assert_eq!(v["source"]["pos"], 400);
        assert_eq!(v["source"]["table"], "t");
        let tc = &v["tableChanges"][0];
        assert_eq!(tc["type"], "ALTER");
        assert_eq!(tc["id"], "\"app\".\"t\"");
        assert_eq!(tc["table"]["primaryKeyColumnNames"], json!(["a"]));
        assert_eq!(tc["table"]["columns"][1]["name"], "b");
        assert_eq!(tc["table"]["columns"][1]["jdbcType"], 4);
        assert_eq!(tc["table"]["columns"][1]["position"], 2);
        assert_eq!(tc["table"]["columns"][0]["optional"], false);
    }

    #[test]
    fn canal_and_maxwell_ddl_records() {
        let c = sample(StatementKind::AlterTable, ChangeKind::Alter);
        let v = value(&encode(Format::Canal, &c)[0].1);
        assert_eq!(v["isDdl"], true);
        assert_eq!(v["type"], "ALTER");
        assert_eq!(v["sql"], c.ddl);
        assert_eq!(v["data"], Value::Null);
        let m = encode(Format::Maxwell, &c);
        let v = value(&m[0].1);
        assert_eq!(v["type"], "table-alter");
        assert_eq!(v["old"]["columns"].as_array().unwrap().len(), 1);
        assert_eq!(v["def"]["columns"][1]["name"], "b");
        assert_eq!(v["def"]["columns"][1]["signed"], true);
        assert_eq!(v["position"], "b.000001:400");
        assert_eq!(v["ts"], 5);
        let d = encode(
            Format::Maxwell,
            &sample(StatementKind::DropTable, ChangeKind::Drop),
        );
        assert_eq!(value(&d[0].1)["type"], "table-drop");
        let mut db = sample(StatementKind::CreateDatabase, ChangeKind::Create);
        db.tables.clear();
        assert_eq!(
            value(&encode(Format::Maxwell, &db)[0].1)["type"],
            "database-create"
        );
    }
}
