//! The `canal` format.
//!
//! The "flat message" JSON that canal 1.1.x writes to Kafka/RocketMQ when its
//! MQ connector runs with `flatMessage = true` (layout of
//! `com.alibaba.otter.canal.protocol.FlatMessage` in github.com/alibaba/canal,
//! fields in alphabetical order as canal's serializer writes them):
//!
//! | field | here |
//! |---|---|
//! | `data` | one-element array: the row (after image; before image for a delete), every value as a string, NULL as `null` |
//! | `database`, `table` | the source table |
//! | `es` | commit time from the binlog event header, ms (snapshot rows: read time) |
//! | `id` | the relay's change sequence number (`sluice.seq`) |
//! | `isDdl` | `false` (the relay publishes no DDL messages) |
//! | `mysqlType` | column → MySQL type text (`"bigint unsigned"`, `"varchar"`, `"enum('a','b')"`) |
//! | `old` | updates: one-element array holding the old values of the changed columns only; otherwise `null` |
//! | `pkNames` | primary-key column names, `null` without a primary key |
//! | `sql` | `""` |
//! | `sqlType` | column → `java.sql.Types` code (below) |
//! | `ts` | production time, ms |
//! | `type` | `INSERT` / `UPDATE` / `DELETE`; snapshot rows are `INSERT` |
//!
//! canal batches all rows of one binlog event into a message; sluice keeps
//! one message per row (so per-row keys, partitions and `sluice.seq` still
//! hold), hence the one-element arrays. Key: sluice's primary-key JSON.
//!
//! `sqlType` codes per column type: TINYINT -6, SMALLINT 5, MEDIUMINT and INT
//! 4, BIGINT -5, FLOAT 7, DOUBLE 8, DECIMAL 3, DATE 91, TIME 92, DATETIME and
//! TIMESTAMP 93, YEAR 12, CHAR 1, VARCHAR 12, TEXT 2005, BLOB 2004, BINARY -2,
//! VARBINARY -3, BIT -7, ENUM and SET 4, JSON 12, GEOMETRY -2, anything else
//! 1111 (OTHER). The code depends on the column only: canal itself switches an
//! UNSIGNED column to the next wider code when a value exceeds the signed range,
//! sluice does not.
//!
//! `mysqlType` is as precise as the relay's [`ColumnInfo`] allows: the binlog
//! table map gives the type, signedness, binary-or-text and ENUM/SET labels,
//! but not declared lengths or precision, so it is `"varchar"` where canal
//! shows `"varchar(64)"`, and TEXT/BLOB sizes are not told apart. Snapshot
//! rows are described from `information_schema` data types, which carry no
//! signedness, and read CHAR/BINARY/ENUM/SET as VARCHAR (see
//! [`crate::snapshot`]), so their `mysqlType`/`sqlType` are coarser still.

use std::fmt::{self, Display};

use cdc_event::Op;
use mysql_async::consts::ColumnType;
use serde::{Serialize, Serializer};

use super::{ChangedColumns, Obj, One, PAYLOAD_CAPACITY, Payload, StringRow, Text, update_images};
use crate::decode::{ChangeMeta, RowChange};
use crate::table::{ColumnInfo, TableInfo};

/// Names of the primary-key columns, in key order.
struct PkNames<'a>(&'a TableInfo);

impl Serialize for PkNames<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let info = self.0;
        s.collect_seq(
            info.pk
                .iter()
                .filter_map(|&i| info.columns.get(i))
                .map(|c| c.name.as_str()),
        )
    }
}

/// canal's `mysqlType` map.
struct MysqlTypes<'a>(&'a TableInfo);

impl Serialize for MysqlTypes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(
            self.0
                .columns
                .iter()
                .filter(|c| c.rule.publishes())
                .map(|c| (c.name.as_str(), Text(MysqlType(c)))),
        )
    }
}

/// canal's `sqlType` map.
struct SqlTypes<'a>(&'a TableInfo);

impl Serialize for SqlTypes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(
            self.0
                .columns
                .iter()
                .filter(|c| c.rule.publishes())
                .map(|c| (c.name.as_str(), sql_type(c))),
        )
    }
}

/// The MySQL type text of a column, as far as [`ColumnInfo`] tells it.
pub struct MysqlType<'a>(pub &'a ColumnInfo);

impl Display for MysqlType<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ColumnType::*;
        let c = self.0;
        let labels = |f: &mut fmt::Formatter<'_>, name: &str, labels: &[String]| {
            f.write_str(name)?;
            f.write_str("(")?;
            for (i, l) in labels.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                f.write_str("'")?;
                for (j, part) in l.split('\'').enumerate() {
                    if j > 0 {
                        f.write_str("''")?;
                    }
                    f.write_str(part)?;
                }
                f.write_str("'")?;
            }
            f.write_str(")")
        };
        match c.col_type {
            MYSQL_TYPE_ENUM if !c.enum_labels.is_empty() => {
                return labels(f, "enum", &c.enum_labels);
            }
            MYSQL_TYPE_SET if !c.set_labels.is_empty() => {
                return labels(f, "set", &c.set_labels);
            }
            _ => {}
        }
        let binary = c.is_binary();
        let name = match c.col_type {
            MYSQL_TYPE_TINY => "tinyint",
            MYSQL_TYPE_SHORT => "smallint",
            MYSQL_TYPE_INT24 => "mediumint",
            MYSQL_TYPE_LONG => "int",
            MYSQL_TYPE_LONGLONG => "bigint",
            MYSQL_TYPE_FLOAT => "float",
            MYSQL_TYPE_DOUBLE => "double",
            MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NEWDECIMAL => "decimal",
            MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => "date",
            MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => "time",
            MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2 => "datetime",
            MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2 => "timestamp",
            MYSQL_TYPE_YEAR => "year",
            MYSQL_TYPE_BIT => "bit",
            MYSQL_TYPE_ENUM => "enum",
            MYSQL_TYPE_SET => "set",
            MYSQL_TYPE_JSON => "json",
            MYSQL_TYPE_GEOMETRY => "geometry",
            MYSQL_TYPE_STRING if binary => "binary",
            MYSQL_TYPE_STRING => "char",
            MYSQL_TYPE_VARCHAR | MYSQL_TYPE_VAR_STRING if binary => "varbinary",
            MYSQL_TYPE_VARCHAR | MYSQL_TYPE_VAR_STRING => "varchar",
            MYSQL_TYPE_BLOB
            | MYSQL_TYPE_TINY_BLOB
            | MYSQL_TYPE_MEDIUM_BLOB
            | MYSQL_TYPE_LONG_BLOB
                if c.json =>
            {
                "json"
            }
            MYSQL_TYPE_BLOB
            | MYSQL_TYPE_TINY_BLOB
            | MYSQL_TYPE_MEDIUM_BLOB
            | MYSQL_TYPE_LONG_BLOB
                if binary =>
            {
                "blob"
            }
            MYSQL_TYPE_BLOB
            | MYSQL_TYPE_TINY_BLOB
            | MYSQL_TYPE_MEDIUM_BLOB
            | MYSQL_TYPE_LONG_BLOB => "text",
            _ => "unknown",
        };
        f.write_str(name)?;
        if c.unsigned {
            f.write_str(" unsigned")?;
        }
        Ok(())
    }
}

/// The `java.sql.Types` code canal gives a column.
pub fn sql_type(c: &ColumnInfo) -> i32 {
    use ColumnType::*;
    let binary = c.is_binary();
    match c.col_type {
        MYSQL_TYPE_TINY => -6,
        MYSQL_TYPE_SHORT => 5,
        MYSQL_TYPE_INT24 | MYSQL_TYPE_LONG => 4,
        MYSQL_TYPE_LONGLONG => -5,
        MYSQL_TYPE_FLOAT => 7,
        MYSQL_TYPE_DOUBLE => 8,
        MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NEWDECIMAL => 3,
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => 91,
        MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => 92,
        MYSQL_TYPE_DATETIME
        | MYSQL_TYPE_DATETIME2
        | MYSQL_TYPE_TIMESTAMP
        | MYSQL_TYPE_TIMESTAMP2 => 93,
        MYSQL_TYPE_YEAR => 12,
        MYSQL_TYPE_BIT => -7,
        MYSQL_TYPE_ENUM | MYSQL_TYPE_SET => 4,
        MYSQL_TYPE_JSON => 12,
        MYSQL_TYPE_GEOMETRY => -2,
        MYSQL_TYPE_STRING if binary => -2,
        MYSQL_TYPE_STRING => 1,
        MYSQL_TYPE_VARCHAR | MYSQL_TYPE_VAR_STRING if binary => -3,
        MYSQL_TYPE_VARCHAR | MYSQL_TYPE_VAR_STRING => 12,
        MYSQL_TYPE_BLOB | MYSQL_TYPE_TINY_BLOB | MYSQL_TYPE_MEDIUM_BLOB | MYSQL_TYPE_LONG_BLOB
            if c.json =>
        {
            12
        }
        MYSQL_TYPE_BLOB | MYSQL_TYPE_TINY_BLOB | MYSQL_TYPE_MEDIUM_BLOB | MYSQL_TYPE_LONG_BLOB
            if binary =>
        {
            2004
        }
        MYSQL_TYPE_BLOB | MYSQL_TYPE_TINY_BLOB | MYSQL_TYPE_MEDIUM_BLOB | MYSQL_TYPE_LONG_BLOB => {
            2005
        }
        _ => 1111,
    }
}

pub(super) fn canal(
    info: &TableInfo,
    change: &RowChange,
    meta: &ChangeMeta<'_>,
    seq: u64,
) -> serde_json::Result<Payload> {
    let mut bytes = Vec::with_capacity(PAYLOAD_CAPACITY);
    let mut o = Obj::new(&mut bytes);
    match change.image() {
        Some(row) => o.field("data", &One(StringRow(row)))?,
        None => o.field("data", &())?,
    }
    o.field("database", &info.db)?;
    o.field("es", &meta.ts_ms)?;
    o.field("id", &seq)?;
    o.field("isDdl", &false)?;
    o.field("mysqlType", &MysqlTypes(info))?;
    match update_images(change) {
        Some((before, after)) => o.field(
            "old",
            &One(ChangedColumns {
                before,
                after,
                as_strings: true,
            }),
        )?,
        None => o.field("old", &())?,
    }
    if info.pk.is_empty() {
        o.field("pkNames", &())?;
    } else {
        o.field("pkNames", &PkNames(info))?;
    }
    o.field("sql", "")?;
    o.field("sqlType", &SqlTypes(info))?;
    o.field("table", &info.table)?;
    o.field("ts", &meta.now_ms)?;
    o.field(
        "type",
        match change.op {
            Op::Create | Op::Read => "INSERT",
            Op::Update => "UPDATE",
            Op::Delete => "DELETE",
            // Not produced from rows events; named for completeness.
            Op::Truncate => "TRUNCATE",
        },
    )?;
    o.end();
    Ok(Payload {
        bytes,
        commit_at: None,
    })
}
