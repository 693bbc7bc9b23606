//! Table schemas: what each column of a rows event is called and how its
//! values are typed.
//!
//! # Sources of truth
//! With `binlog_row_metadata=FULL` every TABLE_MAP event carries the column
//! names, signedness, character sets, ENUM/SET labels and the primary key *as
//! they were when the row was written*; those always win. Without them the
//! relay takes the schema history's entry for the row's position
//! ([`crate::history`]), else `information_schema` (today's schema), and
//! insists that the event fits it column by column: on any difference it
//! stops with a diff instead of guessing (a silently misaligned column is
//! the classic canal/Maxwell failure).
//!
//! `information_schema` is also where MariaDB's `JSON` columns are recognised
//! (MariaDB stores them as `LONGTEXT` with a `json_valid()` check), so their
//! values are emitted as JSON rather than as strings.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use mysql_async::binlog::events::{OptionalMetaExtractor, OptionalMetadataField, TableMapEvent};
use mysql_async::consts::ColumnType;
use sqlx::MySqlPool;

use crate::columns::{ColumnRule, ColumnRules};
use crate::error::{Error, Result};
use crate::history::History;
use crate::keys::KeyColumns;
use crate::position::FilePos;
pub use crate::table::{BINARY_CHARSET, ColumnInfo, Shape, TableInfo, Wire};

/// The layout of every column of a table map (`types`: the real column
/// types as [`crate::schema`] read them), or `None` when a column has a type
/// the fast path does not handle (MySQL typed arrays).
pub fn layout(
    tme: &TableMapEvent<'_>,
    types: &[ColumnType],
    unsigned: &[bool],
) -> Option<Vec<Wire>> {
    use ColumnType::*;
    let mut out = Vec::with_capacity(types.len());
    for (i, (&ty, &uns)) in types.iter().zip(unsigned).enumerate() {
        let raw = tme.get_raw_column_type(i).ok()??;
        let meta = tme.get_column_metadata(i).unwrap_or(&[]);
        let m = |k: usize| meta.get(k).copied().unwrap_or(0);
        let int = |len: u8| Wire::Int { len, unsigned: uns };
        out.push(match ty {
            MYSQL_TYPE_TINY => int(1),
            MYSQL_TYPE_SHORT => int(2),
            MYSQL_TYPE_INT24 => int(3),
            MYSQL_TYPE_LONG => int(4),
            MYSQL_TYPE_LONGLONG => int(8),
            MYSQL_TYPE_VARCHAR | MYSQL_TYPE_VAR_STRING => {
                let max = u16::from_le_bytes([m(0), m(1)]);
                Wire::Bytes {
                    prefix: if max < 256 { 1 } else { 2 },
                }
            }
            // CHAR(n): the real type is in the metadata; its byte length too
            // (with two high bits folded into the first byte for long CHARs).
            MYSQL_TYPE_STRING if raw == MYSQL_TYPE_STRING => {
                let (b0, b1) = (usize::from(m(0)), usize::from(m(1)));
                let len = if b0 == 0 {
                    usize::from(u16::from_le_bytes([m(0), m(1)]))
                } else if (b0 & 0x30) != 0x30 {
                    b1 | (((b0 & 0x30) ^ 0x30) << 4)
                } else {
                    b1
                };
                Wire::Bytes {
                    prefix: if len < 256 { 1 } else { 2 },
                }
            }
            MYSQL_TYPE_TINY_BLOB
            | MYSQL_TYPE_MEDIUM_BLOB
            | MYSQL_TYPE_LONG_BLOB
            | MYSQL_TYPE_BLOB
                if (1..=4).contains(&m(0)) =>
            {
                Wire::Bytes { prefix: m(0) }
            }
            MYSQL_TYPE_TYPED_ARRAY => return None,
            _ => Wire::Other {
                ty,
                meta: [m(0), m(1)],
                unsigned: uns,
            },
        });
    }
    (out.len() == types.len()).then_some(out)
}

/// What a TABLE_MAP event says about its table; names may be missing.
#[derive(Debug, Clone)]
struct MapColumns {
    wire: Option<Vec<Wire>>,
    types: Vec<ColumnType>,
    names: Option<Vec<String>>,
    unsigned: Vec<bool>,
    charsets: Vec<Option<u16>>,
    enums: Vec<Vec<String>>,
    sets: Vec<Vec<String>>,
    pk: Vec<usize>,
    shapes: Vec<Shape>,
}

/// Refuses column metadata no server writes and `mysql_common`'s value
/// parsers do not survive: a DECIMAL whose scale exceeds its precision (or
/// either out of MySQL's range) makes it allocate exabytes, which aborts
/// the process (found by `fuzz/`). Every rows event is decoded with its
/// table map's metadata, so checking the map protects both decoders.
pub fn check_column_meta(raw: ColumnType, meta: &[u8]) -> std::result::Result<(), String> {
    if raw == ColumnType::MYSQL_TYPE_NEWDECIMAL {
        let (precision, scale) = (
            meta.first().copied().unwrap_or(0),
            meta.get(1).copied().unwrap_or(0),
        );
        if !(1..=65).contains(&precision) || scale > 30 || scale > precision {
            return Err(format!(
                "DECIMAL({precision},{scale}) in the table map: corrupt metadata"
            ));
        }
    }
    Ok(())
}

fn read_map(tme: &TableMapEvent<'_>) -> Result<MapColumns> {
    let table = format!("{}.{}", tme.database_name(), tme.table_name());
    let bad = |reason: String| Error::Decode {
        table: table.clone(),
        reason,
    };
    let n = usize::try_from(tme.columns_count()).map_err(|_| bad("too many columns".into()))?;
    let mut types = Vec::with_capacity(n);
    for i in 0..n {
        match tme.get_column_type(i) {
            Ok(Some(t)) => types.push(t),
            Ok(None) => return Err(bad(format!("no type for column {i}"))),
            Err(e) => return Err(bad(format!("column {i}: {e}"))),
        }
        let raw = tme.get_raw_column_type(i).ok().flatten();
        let column_meta = tme.get_column_metadata(i).unwrap_or(&[]);
        if let Some(raw) = raw {
            check_column_meta(raw, column_meta).map_err(|e| bad(format!("column {i}: {e}")))?;
        }
    }
    let meta =
        OptionalMetaExtractor::new(tme.iter_optional_meta()).map_err(|e| bad(e.to_string()))?;
    let mut signedness = meta.iter_signedness();
    let mut charsets_it = meta.iter_charset();
    let mut enum_set_charsets = meta.iter_enum_and_set_charset();
    let mut unsigned = Vec::with_capacity(n);
    let mut charsets = Vec::with_capacity(n);
    for t in &types {
        unsigned.push(t.is_numeric_type() && signedness.next().unwrap_or(false));
        let cs = if t.is_character_type() {
            charsets_it
                .next()
                .transpose()
                .map_err(|e| bad(e.to_string()))?
        } else if t.is_enum_or_set_type() {
            enum_set_charsets
                .next()
                .transpose()
                .map_err(|e| bad(e.to_string()))?
        } else {
            None
        };
        charsets.push(cs);
    }
    let names: Vec<String> = meta
        .iter_column_name()
        .map(|r| r.map(|c| c.name().into_owned()))
        .collect::<std::io::Result<_>>()
        .map_err(|e| bad(e.to_string()))?;
    let names = (names.len() == n).then_some(names);
    let pk: Vec<usize> = meta
        .iter_primary_key()
        .map(|r| r.map(|i| i as usize))
        .collect::<std::io::Result<_>>()
        .map_err(|e| bad(e.to_string()))?;

    let mut enum_lists = Vec::new();
    let mut set_lists = Vec::new();
    for field in tme.iter_optional_meta() {
        match field.map_err(|e| bad(e.to_string()))? {
            OptionalMetadataField::EnumStrValue(v) => {
                for labels in v.iter_values() {
                    let labels = labels.map_err(|e| bad(e.to_string()))?;
                    enum_lists.push(
                        labels
                            .values()
                            .iter()
                            .map(|l| l.value().into_owned())
                            .collect(),
                    );
                }
            }
            OptionalMetadataField::SetStrValue(v) => {
                for labels in v.iter_values() {
                    let labels = labels.map_err(|e| bad(e.to_string()))?;
                    set_lists.push(
                        labels
                            .values()
                            .iter()
                            .map(|l| l.value().into_owned())
                            .collect(),
                    );
                }
            }
            _ => {}
        }
    }
    let mut enum_lists = enum_lists.into_iter();
    let mut set_lists = set_lists.into_iter();
    let mut enums = Vec::with_capacity(n);
    let mut sets = Vec::with_capacity(n);
    for t in &types {
        enums.push(if t.is_enum_type() {
            enum_lists.next().unwrap_or_default()
        } else {
            Vec::new()
        });
        sets.push(if t.is_set_type() {
            set_lists.next().unwrap_or_default()
        } else {
            Vec::new()
        });
    }
    let nulls = tme.null_bitmask();
    let shapes = types
        .iter()
        .enumerate()
        .map(|(i, t)| {
            shape_of(
                *t,
                tme.get_column_metadata(i).unwrap_or(&[]),
                nulls.get(i).is_none_or(|b| *b),
            )
        })
        .collect();
    Ok(MapColumns {
        shapes,
        wire: layout(tme, &types, &unsigned),
        types,
        names,
        unsigned,
        charsets,
        enums,
        sets,
        pk,
    })
}

/// Size and precision from a column's table-map metadata.
fn shape_of(t: ColumnType, meta: &[u8], nullable: bool) -> Shape {
    use ColumnType::*;
    let m = |k: usize| meta.get(k).copied().unwrap_or(0);
    let mut s = Shape {
        nullable,
        ..Shape::default()
    };
    match t {
        MYSQL_TYPE_DATETIME2 | MYSQL_TYPE_TIME2 | MYSQL_TYPE_TIMESTAMP2 => s.fsp = m(0).min(6),
        MYSQL_TYPE_NEWDECIMAL | MYSQL_TYPE_DECIMAL => (s.precision, s.scale) = (m(0), m(1)),
        MYSQL_TYPE_BIT => s.bits = u16::from(m(1)) * 8 + u16::from(m(0)),
        // CHAR(n) / BINARY(n): two high bits of the length folded into the
        // first byte for long CHARs (as in `layout`).
        MYSQL_TYPE_STRING => {
            let (b0, b1) = (u16::from(m(0)), u16::from(m(1)));
            s.length = if (b0 & 0x30) != 0x30 {
                b1 | (((b0 & 0x30) ^ 0x30) << 4)
            } else {
                b1
            };
        }
        _ => {}
    }
    s
}

/// A column as `information_schema` describes it today.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownColumn {
    pub name: String,
    /// `DATA_TYPE`, lowercase (`int`, `varchar`, `longtext`, …).
    pub data_type: String,
    pub json: bool,
    pub primary: bool,
}

/// The coarse kind of a column, comparable between the binlog and `information_schema`.
fn family_of_binlog(t: ColumnType) -> &'static str {
    use ColumnType::*;
    match t {
        MYSQL_TYPE_TINY | MYSQL_TYPE_SHORT | MYSQL_TYPE_INT24 | MYSQL_TYPE_LONG
        | MYSQL_TYPE_LONGLONG => "integer",
        MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NEWDECIMAL => "decimal",
        MYSQL_TYPE_FLOAT | MYSQL_TYPE_DOUBLE => "float",
        MYSQL_TYPE_YEAR => "year",
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => "date",
        MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => "time",
        MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2 => "datetime",
        MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2 => "timestamp",
        MYSQL_TYPE_BIT => "bit",
        MYSQL_TYPE_ENUM => "enum",
        MYSQL_TYPE_SET => "set",
        MYSQL_TYPE_JSON => "json",
        MYSQL_TYPE_GEOMETRY => "geometry",
        MYSQL_TYPE_BLOB | MYSQL_TYPE_TINY_BLOB | MYSQL_TYPE_MEDIUM_BLOB | MYSQL_TYPE_LONG_BLOB => {
            "blob"
        }
        MYSQL_TYPE_VARCHAR | MYSQL_TYPE_VAR_STRING | MYSQL_TYPE_STRING => "string",
        _ => "other",
    }
}

fn family_of_sql(data_type: &str) -> &'static str {
    match data_type {
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" => "integer",
        "decimal" | "numeric" => "decimal",
        "float" | "double" | "real" => "float",
        "year" => "year",
        "date" => "date",
        "time" => "time",
        "datetime" => "datetime",
        "timestamp" => "timestamp",
        "bit" => "bit",
        "enum" => "enum",
        "set" => "set",
        "json" => "json",
        "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
        | "multipolygon" | "geometrycollection" => "geometry",
        "tinyblob" | "blob" | "mediumblob" | "longblob" | "tinytext" | "text" | "mediumtext"
        | "longtext" => "blob",
        "char" | "varchar" | "binary" | "varbinary" | "inet4" | "inet6" | "uuid" => "string",
        _ => "other",
    }
}

/// Compares an event's column types with the known schema; `Some(diff)` when
/// they do not line up.
pub fn diff_columns(event_types: &[ColumnType], known: &[KnownColumn]) -> Option<String> {
    let mut lines = Vec::new();
    if event_types.len() != known.len() {
        lines.push(format!(
            "  column count: binlog event has {}, schema has {}",
            event_types.len(),
            known.len()
        ));
    }
    for i in 0..event_types.len().max(known.len()) {
        let ev = event_types.get(i).map(|t| family_of_binlog(*t));
        let kn = known.get(i);
        match (ev, kn) {
            (Some(e), Some(k)) if e == family_of_sql(&k.data_type) || (e == "blob" && k.json) => {}
            (Some(e), Some(k)) => lines.push(format!(
                "  #{i} {}: binlog {e}, schema {}",
                k.name, k.data_type
            )),
            (Some(e), None) => lines.push(format!("  #{i} (unknown): binlog {e}, not in schema")),
            (None, Some(k)) => lines.push(format!(
                "  #{i} {}: in schema ({}), not in binlog event",
                k.name, k.data_type
            )),
            (None, None) => {}
        }
    }
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// Builds [`TableInfo`] for TABLE_MAP events, with a cache of
/// `information_schema` lookups per table.
pub struct SchemaTracker {
    pool: Option<MySqlPool>,
    columns: Arc<ColumnRules>,
    keys: Arc<KeyColumns>,
    known: HashMap<(String, String), Arc<Vec<KnownColumn>>>,
    /// table_id → (event, decoded info); reused while the map is identical.
    by_id: HashMap<u64, (TableMapEvent<'static>, Arc<TableInfo>)>,
    /// Tables whose metadata lacked names (warned once).
    warned: HashSet<(String, String)>,
    /// The Debezium drop-in encoding: JSON columns keep their text.
    json_text: bool,
    /// Each table's schema as of every DDL position ([`crate::history`]).
    history: History,
}

impl SchemaTracker {
    /// `pool` is used for `information_schema` lookups; `None` disables them
    /// (then binlog metadata must carry the names).
    /// `columns` are applied to every table; every table is keyed by its
    /// primary key unless [`SchemaTracker::with_key_columns`] says otherwise.
    pub fn new(pool: Option<MySqlPool>, columns: Arc<ColumnRules>) -> Self {
        Self {
            pool,
            columns,
            keys: Arc::default(),
            known: HashMap::new(),
            by_id: HashMap::new(),
            warned: HashSet::new(),
            json_text: false,
            history: History::default(),
        }
    }

    /// Resolves each table's message key columns from `keys` (once per
    /// table map, see [`TableInfo::apply_key_columns`]).
    pub fn with_key_columns(mut self, keys: Arc<KeyColumns>) -> Self {
        self.keys = keys;
        self
    }

    /// Forgets what is known about `db.table` (after DDL on it).
    pub fn invalidate(&mut self, db: &str, table: Option<&str>) {
        self.known
            .retain(|(d, t), _| !(d == db && table.is_none_or(|tb| tb == t)));
        self.by_id.clear();
    }

    /// JSON columns keep their text (the Debezium drop-in encoding, see
    /// [`TableInfo::keep_json_text`]).
    pub fn with_json_text(mut self, on: bool) -> Self {
        self.json_text = on;
        self
    }

    /// The schema history rows are decoded with.
    pub fn history(&self) -> &History {
        &self.history
    }

    pub fn history_mut(&mut self) -> &mut History {
        &mut self.history
    }

    /// The table info of a TABLE_MAP event read at `at`: the names come
    /// from the event when it carries them, else from the schema history at
    /// `at`, else from `information_schema` (today's schema); the last two
    /// must match the event's column types.
    pub async fn table_info(
        &mut self,
        tme: &TableMapEvent<'_>,
        at: &FilePos,
    ) -> Result<Arc<TableInfo>> {
        if let Some((cached, info)) = self.by_id.get(&tme.table_id())
            && cached == tme
        {
            return Ok(info.clone());
        }
        let db = tme.database_name().into_owned();
        let table = tme.table_name().into_owned();
        let map = read_map(tme)?;
        let known = match self.history.at(&db, &table, at) {
            Some(Some(t)) => Some(Arc::new(t.known_columns())),
            _ => self.known_columns(&db, &table).await?,
        };
        let mut info = build_info(
            &db,
            &table,
            map,
            known.as_deref().map(|v| v.as_slice()),
            &mut self.warned,
        )?;
        info.apply_rules(&self.columns)?;
        info.apply_key_columns(&self.keys)?;
        if self.json_text {
            info.keep_json_text();
        }
        let info = Arc::new(info);
        self.by_id
            .insert(tme.table_id(), (tme.clone().into_owned(), info.clone()));
        Ok(info)
    }

    async fn known_columns(
        &mut self,
        db: &str,
        table: &str,
    ) -> Result<Option<Arc<Vec<KnownColumn>>>> {
        let key = (db.to_owned(), table.to_owned());
        if let Some(k) = self.known.get(&key) {
            return Ok(Some(k.clone()));
        }
        let Some(pool) = &self.pool else {
            return Ok(None);
        };
        let cols = load_known_columns(pool, db, table).await?;
        let cols = Arc::new(cols);
        self.known.insert(key, cols.clone());
        Ok(Some(cols))
    }
}

fn build_info(
    db: &str,
    table: &str,
    map: MapColumns,
    known: Option<&[KnownColumn]>,
    warned: &mut HashSet<(String, String)>,
) -> Result<TableInfo> {
    let full = format!("{db}.{table}");
    let (names, pk) = match (map.names, known) {
        (Some(names), _) => (names, map.pk),
        (None, Some(known)) if !known.is_empty() => {
            if let Some(diff) = diff_columns(&map.types, known) {
                return Err(Error::SchemaMismatch { table: full, diff });
            }
            if warned.insert((db.to_owned(), table.to_owned())) {
                tracing::warn!(table = %full, "binlog carries no column names; using information_schema");
            }
            let pk = if map.pk.is_empty() {
                known
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.primary)
                    .map(|(i, _)| i)
                    .collect()
            } else {
                map.pk
            };
            (known.iter().map(|c| c.name.clone()).collect(), pk)
        }
        (None, _) => {
            return Err(Error::SchemaMismatch {
                table: full,
                diff: "  the binlog event has no column names (binlog_row_metadata is not FULL) and the table is \
                       not in information_schema"
                    .into(),
            });
        }
    };
    let json_names: HashSet<&str> = known
        .unwrap_or_default()
        .iter()
        .filter(|c| c.json)
        .map(|c| c.name.as_str())
        .collect();
    let columns = names
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            let col_type = map.types[i];
            ColumnInfo {
                json: col_type == ColumnType::MYSQL_TYPE_JSON
                    || (col_type == ColumnType::MYSQL_TYPE_BLOB
                        && json_names.contains(name.as_str())),
                name,
                col_type,
                unsigned: map.unsigned[i],
                charset: map.charsets[i],
                enum_labels: map.enums[i].clone(),
                set_labels: map.sets[i].clone(),
                rule: ColumnRule::Keep,
                shape: map.shapes[i],
            }
        })
        .collect();
    Ok(TableInfo {
        db: db.to_owned(),
        table: table.to_owned(),
        columns,
        pk,
        key: None,
        wire: map.wire,
    })
}

/// Today's columns of `db.table` from `information_schema` (empty when the table is gone).
pub async fn load_known_columns(
    pool: &MySqlPool,
    db: &str,
    table: &str,
) -> Result<Vec<KnownColumn>> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT CAST(COLUMN_NAME AS CHAR), CAST(LOWER(DATA_TYPE) AS CHAR), CAST(COLUMN_KEY AS CHAR) \
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
    )
    .bind(db)
    .bind(table)
    .fetch_all(pool)
    .await?;
    // MariaDB's JSON alias is LONGTEXT + CHECK (json_valid(`col`)).
    let checks: Vec<(String,)> = sqlx::query_as(
        "SELECT CAST(CHECK_CLAUSE AS CHAR) FROM information_schema.CHECK_CONSTRAINTS \
         WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?",
    )
    .bind(db)
    .bind(table)
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    Ok(rows
        .into_iter()
        .map(|(name, data_type, key)| {
            let needle = format!("json_valid(`{name}`)");
            let json = data_type == "json"
                || checks
                    .iter()
                    .any(|(c,)| c.to_lowercase().contains(&needle.to_lowercase()));
            KnownColumn {
                name,
                data_type,
                json,
                primary: key == "PRI",
            }
        })
        .collect())
}

#[cfg(test)]
mod tests;
