//! Snapshots: copy existing rows of tables as `op: "r"` events, chunked by
//! primary key, resumable after a crash.
//!
//! # Consistency with the stream
//! A snapshot starts by pinning a binlog position P (the checkpoint, or the
//! server's end of binlog for an initial snapshot). Chunks are read one
//! short query at a time (`WHERE pk > last ORDER BY pk LIMIT n`), so every
//! row is read at or after P; when the snapshot is done the stream resumes at
//! P and re-emits every change committed since. A consumer that applies
//! events in order therefore converges to the current rows, and no row that
//! existed at any point is missed. Snapshot rows carry `source.snapshot =
//! "true"` (`"last"` on the final row) and the position P.
//!
//! # Resumption
//! After each chunk is acknowledged the checkpoint records P, the tables
//! still pending and the last key copied; a restarted relay continues with
//! the next chunk.

use std::time::Duration;

use cdc_event::{Op, Snapshot, topic};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Value as MyValue};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sqlx::MySqlPool;

use crate::checkpoint::SnapshotProgress;
use crate::columns::{ColumnRule, ColumnRules};
use crate::decode::{ChangeMeta, RowChange};
use crate::error::{Error, Result};
use crate::keys::KeyColumns;
use crate::schema::{self, BINARY_CHARSET, ColumnInfo, TableInfo};
use crate::value;
use mysql_async::binlog::value::BinlogValue;
use mysql_async::consts::ColumnType;

/// The tables an initial snapshot copies: every base table the filter allows.
pub async fn tables_to_copy(
    pool: &MySqlPool,
    filter: &crate::config::Filter,
) -> Result<Vec<String>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT CAST(TABLE_SCHEMA AS CHAR), CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES \
         WHERE TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_SCHEMA, TABLE_NAME",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter(|(d, t)| filter.allows(d, t))
        .map(|(d, t)| format!("{d}.{t}"))
        .collect())
}

/// The binlog column type a snapshot value is decoded as. Labels of ENUM and
/// SET arrive as text over the client protocol, so they are read as strings.
fn snapshot_type(data_type: &str) -> ColumnType {
    use ColumnType::*;
    match data_type {
        "tinyint" => MYSQL_TYPE_TINY,
        "smallint" => MYSQL_TYPE_SHORT,
        "mediumint" => MYSQL_TYPE_INT24,
        "int" | "integer" => MYSQL_TYPE_LONG,
        "bigint" => MYSQL_TYPE_LONGLONG,
        "decimal" | "numeric" => MYSQL_TYPE_NEWDECIMAL,
        "float" => MYSQL_TYPE_FLOAT,
        "double" | "real" => MYSQL_TYPE_DOUBLE,
        "year" => MYSQL_TYPE_YEAR,
        "date" => MYSQL_TYPE_NEWDATE,
        "time" => MYSQL_TYPE_TIME2,
        "datetime" => MYSQL_TYPE_DATETIME2,
        "timestamp" => MYSQL_TYPE_TIMESTAMP2,
        "bit" => MYSQL_TYPE_BIT,
        "json" => MYSQL_TYPE_JSON,
        "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
        | "multipolygon" | "geometrycollection" => MYSQL_TYPE_GEOMETRY,
        "tinyblob" | "blob" | "mediumblob" | "longblob" | "tinytext" | "text" | "mediumtext"
        | "longtext" => MYSQL_TYPE_BLOB,
        _ => MYSQL_TYPE_VARCHAR,
    }
}

/// Converts a client-protocol value to the same JSON the stream produces.
pub fn snapshot_value(col: &ColumnInfo, v: MyValue) -> std::result::Result<Value, String> {
    match (col.col_type, v) {
        // Read with the session in UTC: same text as a streamed TIMESTAMP.
        (ColumnType::MYSQL_TYPE_TIMESTAMP2, MyValue::Date(y, mo, d, h, mi, s, us)) => {
            Ok(Value::String(format!(
                "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{us:06}Z"
            )))
        }
        (ColumnType::MYSQL_TYPE_JSON, MyValue::Bytes(b)) if col.shape.json_text => {
            Ok(Value::String(String::from_utf8_lossy(&b).into_owned()))
        }
        (ColumnType::MYSQL_TYPE_JSON, MyValue::Bytes(b)) => Ok(serde_json::from_slice(&b)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&b).into_owned()))),
        (_, v) => value::value_to_json(col, &BinlogValue::Value(v)),
    }
}

fn quote_ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

/// Table layout for snapshot reads, from `information_schema`.
async fn describe(pool: &MySqlPool, db: &str, table: &str) -> Result<TableInfo> {
    let known = schema::load_known_columns(pool, db, table).await?;
    if known.is_empty() {
        return Err(Error::Snapshot(format!("{db}.{table} does not exist")));
    }
    // Per column: name, charset, then what Debezium's encoding needs
    // (fractional digits, precision, scale, nullability, signedness).
    type Described = (
        String,
        Option<String>,
        Option<u64>,
        Option<u64>,
        Option<u64>,
        String,
        String,
    );
    let charsets: Vec<Described> = sqlx::query_as(
        "SELECT CAST(COLUMN_NAME AS CHAR), CAST(CHARACTER_SET_NAME AS CHAR), \
         CAST(DATETIME_PRECISION AS UNSIGNED), CAST(NUMERIC_PRECISION AS UNSIGNED), \
         CAST(NUMERIC_SCALE AS UNSIGNED), CAST(IS_NULLABLE AS CHAR), CAST(COLUMN_TYPE AS CHAR) \
         FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
    )
    .bind(db)
    .bind(table)
    .fetch_all(pool)
    .await?;
    let pk_order: Vec<(String,)> = sqlx::query_as(
        "SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.STATISTICS \
         WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
    )
    .bind(db)
    .bind(table)
    .fetch_all(pool)
    .await?;
    let columns: Vec<ColumnInfo> = known
        .iter()
        .zip(charsets.iter())
        .map(
            |(k, (_, cs, fsp, precision, scale, nullable, column_type))| {
                let col_type = snapshot_type(&k.data_type);
                let small = |v: &Option<u64>| v.and_then(|v| u8::try_from(v).ok()).unwrap_or(0);
                let shape = crate::table::Shape {
                    fsp: small(fsp).min(6),
                    precision: small(precision),
                    scale: small(scale),
                    bits: if k.data_type == "bit" {
                        precision.and_then(|v| u16::try_from(v).ok()).unwrap_or(1)
                    } else {
                        0
                    },
                    length: 0,
                    nullable: nullable == "YES",
                    json_text: false,
                };
                let textual = matches!(
                    col_type,
                    ColumnType::MYSQL_TYPE_BLOB | ColumnType::MYSQL_TYPE_VARCHAR
                );
                ColumnInfo {
                    name: k.name.clone(),
                    col_type: if k.json {
                        ColumnType::MYSQL_TYPE_JSON
                    } else {
                        col_type
                    },
                    unsigned: column_type.to_ascii_lowercase().contains("unsigned"),
                    charset: if textual && cs.is_none() {
                        Some(BINARY_CHARSET)
                    } else {
                        None
                    },
                    enum_labels: Vec::new(),
                    set_labels: Vec::new(),
                    json: k.json,
                    rule: ColumnRule::Keep,
                    shape,
                }
            },
        )
        .collect();
    let pk = pk_order
        .iter()
        .filter_map(|(n,)| columns.iter().position(|c| c.name == *n))
        .collect::<Vec<_>>();
    if pk.is_empty() {
        return Err(Error::Snapshot(format!(
            "{db}.{table} has no primary key; it cannot be copied in chunks"
        )));
    }
    Ok(TableInfo {
        db: db.to_owned(),
        table: table.to_owned(),
        columns,
        pk,
        key: None,
        wire: None,
    })
}

/// Turns a saved last-key JSON value back into query parameters.
fn key_params(key: &Value) -> Vec<MyValue> {
    key.as_array()
        .map(|a| {
            a.iter()
                .map(|v| match v {
                    Value::Number(n) => n
                        .as_i64()
                        .map(MyValue::Int)
                        .or_else(|| n.as_u64().map(MyValue::UInt))
                        .unwrap_or_else(|| MyValue::Double(n.as_f64().unwrap_or_default())),
                    Value::String(s) => MyValue::Bytes(s.clone().into_bytes()),
                    Value::Null => MyValue::NULL,
                    other => MyValue::Bytes(other.to_string().into_bytes()),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One chunk of rows after `last` (all rows from the start when `None`).
pub struct Chunk {
    pub rows: Vec<RowChange>,
    /// The key of the last row, to continue after.
    pub last_key: Option<Value>,
    /// Whether rows follow this chunk (known by reading one row more than a
    /// chunk, so a table whose size is a multiple of the chunk still gets its
    /// `snapshot: "last"` row).
    pub more: bool,
}

/// Reads snapshot chunks of one table over one connection.
pub struct TableReader {
    conn: Conn,
    pub info: TableInfo,
    sql_first: String,
    sql_next: String,
    chunk: usize,
}

impl TableReader {
    pub async fn open(
        url: &SecretString,
        pool: &MySqlPool,
        full_name: &str,
        chunk: u64,
        rules: &ColumnRules,
        keys: &KeyColumns,
    ) -> Result<Self> {
        let (db, table) = full_name
            .split_once('.')
            .ok_or_else(|| Error::Snapshot(format!("{full_name:?} is not db.table")))?;
        let mut info = describe(pool, db, table).await?;
        info.apply_rules(rules)?;
        info.apply_key_columns(keys)?;
        let opts = Opts::from_url(url.expose_secret())
            .map_err(|e| Error::Snapshot(format!("invalid mysql url: {e}")))?;
        let mut conn = Conn::new(opts).await?;
        conn.query_drop("SET time_zone = '+00:00'").await?;
        // An excluded column is not even read.
        let cols = info
            .columns
            .iter()
            .filter(|c| c.rule.publishes())
            .map(|c| quote_ident(&c.name))
            .collect::<Vec<_>>()
            .join(", ");
        let pk: Vec<String> = info
            .pk
            .iter()
            .map(|&i| quote_ident(&info.columns[i].name))
            .collect();
        let from = format!("{}.{}", quote_ident(db), quote_ident(table));
        let order = pk.join(", ");
        let marks = vec!["?"; pk.len()].join(", ");
        let limit = chunk + 1;
        let sql_first = format!("SELECT {cols} FROM {from} ORDER BY {order} LIMIT {limit}");
        let sql_next = format!(
            "SELECT {cols} FROM {from} WHERE ({order}) > ({marks}) ORDER BY {order} LIMIT {limit}"
        );
        Ok(Self {
            conn,
            info,
            sql_first,
            sql_next,
            chunk: usize::try_from(chunk).unwrap_or(usize::MAX),
        })
    }

    /// The next chunk after `last`.
    pub async fn next(&mut self, last: Option<&Value>) -> Result<Chunk> {
        let mut rows: Vec<mysql_async::Row> = match last {
            None => self.conn.exec(&self.sql_first, ()).await?,
            Some(k) => self.conn.exec(&self.sql_next, key_params(k)).await?,
        };
        let more = rows.len() > self.chunk;
        rows.truncate(self.chunk);
        let mut out = Vec::with_capacity(rows.len());
        let mut last_key = None;
        for row in rows {
            let values = row.unwrap();
            let mut image = cdc_event::Row::with_capacity(values.len());
            let published = self.info.columns.iter().filter(|c| c.rule.publishes());
            for (col, v) in published.zip(values) {
                let j = snapshot_value(col, v).map_err(|reason| Error::Decode {
                    table: self.info.full_name(),
                    reason: format!("column {}: {reason}", col.name),
                })?;
                if let Some(j) = col.rule.apply(j) {
                    image.insert(col.name.clone(), j);
                }
            }
            last_key = Some(Value::Array(
                self.info
                    .pk
                    .iter()
                    .map(|&i| image[&self.info.columns[i].name].clone())
                    .collect(),
            ));
            out.push(RowChange {
                op: Op::Read,
                before: None,
                after: Some(image),
            });
        }
        Ok(Chunk {
            rows: out,
            last_key,
            more,
        })
    }

    pub async fn close(self) {
        let _ = self.conn.disconnect().await;
    }
}

/// Envelope metadata of a snapshot row.
pub fn meta<'a>(
    name: &'a str,
    server_id: u32,
    progress: &'a SnapshotProgress,
    last: bool,
    now_ms: i64,
) -> ChangeMeta<'a> {
    ChangeMeta {
        name,
        server_id,
        gtid: progress.start_gtid.as_deref(),
        file: &progress.start_file,
        pos: progress.start_pos,
        ts_ms: now_ms,
        row: 0,
        snapshot: if last { Snapshot::Last } else { Snapshot::True },
        thread: None,
        transaction: None,
        now_ms,
    }
}

/// The topic of a snapshot table.
pub fn topic_of(prefix: &str, info: &TableInfo) -> String {
    topic::topic_for(prefix, &info.db, &info.table)
}

/// A terminal progress bar for one table (hidden when stderr is not a terminal).
pub fn progress_bar(table: &str, estimate: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(estimate),
        indicatif::ProgressDrawTarget::stderr_with_hz(4),
    );
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} rows ({per_sec})")
    {
        bar.set_style(style);
    }
    bar.set_message(format!("snapshot {table}"));
    bar.enable_steady_tick(Duration::from_millis(500));
    bar
}

/// Whether every table of `tables` (`db.table`) is empty now: then the row
/// the snapshot just copied is its last one (`snapshot: "last"`). A row
/// inserted into one of them after this check is still copied, after the
/// row marked last (and also streamed, as every change after the start).
pub async fn all_empty(pool: &MySqlPool, tables: &[String]) -> Result<bool> {
    for full_name in tables {
        let Some((db, table)) = full_name.split_once('.') else {
            continue;
        };
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM {}.{} LIMIT 1)",
            quote_ident(db),
            quote_ident(table)
        );
        let any: (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_one(pool)
            .await
            .map_err(|e| Error::Snapshot(format!("{full_name}: {e}")))?;
        if any.0 != 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Estimated row count of a table (for the progress bar).
pub async fn estimate_rows(pool: &MySqlPool, full_name: &str) -> u64 {
    let Some((db, table)) = full_name.split_once('.') else {
        return 0;
    };
    sqlx::query_as::<_, (Option<u64>,)>(
        "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
    )
    .bind(db)
    .bind(table)
    .fetch_optional(pool)
    .await
    .ok()
    .flatten()
    .and_then(|(n,)| n)
    .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn col(data_type: &str) -> ColumnInfo {
        ColumnInfo {
            name: "c".into(),
            col_type: snapshot_type(data_type),
            unsigned: false,
            charset: None,
            enum_labels: vec![],
            set_labels: vec![],
            json: false,
            rule: ColumnRule::Keep,
            shape: crate::table::Shape::default(),
        }
    }

    #[test]
    fn snapshot_values_match_streamed_values() {
        assert_eq!(
            snapshot_value(
                &col("timestamp"),
                MyValue::Date(2023, 11, 14, 22, 13, 20, 123)
            )
            .unwrap(),
            json!("2023-11-14T22:13:20.000123Z")
        );
        assert_eq!(
            snapshot_value(&col("datetime"), MyValue::Date(2026, 1, 2, 3, 4, 5, 6)).unwrap(),
            json!("2026-01-02T03:04:05.000006")
        );
        assert_eq!(
            snapshot_value(&col("date"), MyValue::Date(2026, 1, 2, 0, 0, 0, 0)).unwrap(),
            json!("2026-01-02")
        );
        assert_eq!(
            snapshot_value(&col("set"), MyValue::Bytes(b"a,c".to_vec())).unwrap(),
            json!("a,c")
        );
        assert_eq!(
            snapshot_value(&col("enum"), MyValue::Bytes(b"large".to_vec())).unwrap(),
            json!("large")
        );
        assert_eq!(
            snapshot_value(&col("year"), MyValue::Int(2024)).unwrap(),
            json!(2024)
        );
        assert_eq!(
            snapshot_value(&col("bit"), MyValue::Bytes(vec![1, 2])).unwrap(),
            json!(258)
        );
        assert_eq!(
            snapshot_value(&col("json"), MyValue::Bytes(br#"{"a":1}"#.to_vec())).unwrap(),
            json!({"a":1})
        );
        assert_eq!(
            snapshot_value(&col("decimal"), MyValue::Bytes(b"1.50".to_vec())).unwrap(),
            json!("1.50")
        );
    }

    #[test]
    fn saved_keys_become_query_parameters() {
        let p = key_params(&json!([7, "x", 18446744073709551615u64]));
        assert_eq!(
            p,
            vec![
                MyValue::Int(7),
                MyValue::Bytes(b"x".to_vec()),
                MyValue::UInt(u64::MAX)
            ]
        );
    }
}
