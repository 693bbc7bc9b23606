//! Output formats of row-change messages: the value (and for Maxwell the key)
//! a decoded [`RowChange`] becomes on its `<prefix>.<db>.<table>` topic.
//! Pure; no I/O. Every format is built from the same decoded row images and
//! [`ChangeMeta`] as the Debezium envelope, so nothing is decoded twice.
//!
//! Whatever the format, topics, the `sluice.gtid` / `sluice.pos` /
//! `sluice.seq` / `traceparent` headers, one message per row, and the
//! transaction and heartbeat topics stay as they are. Column values keep
//! sluice's typing (see [`crate::decode`]): DATETIME as ISO-8601 with a `T`,
//! binary columns as base64, DECIMAL as exact text, JSON columns as JSON.
//! That is where the output differs from the tools themselves: canal prints
//! DATETIME as `yyyy-MM-dd HH:mm:ss[.f]` and binary values as Latin-1 text,
//! Maxwell prints DATETIME with a space and DECIMAL as a JSON number.
//!
//! # `debezium` (default)
//! The envelope of [`crate::decode::envelope`], byte for byte; a delete is
//! followed by a tombstone when `tombstones` is on. Key: the primary key as
//! JSON (`{"owner_id":7,"kind":2}`).
//!
//! # `canal`
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
//!
//! # `maxwell`
//! The row JSON of Maxwell's daemon (github.com/zendesk/maxwell, `RowMap`'s
//! JSON output, described in its docs under "Data Format"), with the optional
//! commit info, binlog position, GTID, server id and primary key included, in
//! Maxwell's field order:
//!
//! | field | here |
//! |---|---|
//! | `database`, `table` | the source table |
//! | `type` | `insert` / `update` / `delete`; snapshot rows `bootstrap-insert` |
//! | `ts` | commit time from the binlog event header, seconds (snapshot rows: read time) |
//! | `xid` | number of the transaction: the GTID's sequence number (`0-1-42` → 42, `uuid:42` → 42); without a GTID, binlog file number × 2³² + the transaction's start offset. Absent on snapshot rows |
//! | `commit` | `true` on the last row of its transaction, absent otherwise (and on snapshot rows) |
//! | `position` | `file:pos` of the rows event (as `sluice.pos`) |
//! | `gtid` | when known |
//! | `server_id` | the same number as the envelope's `source.server_id` (the relay's `server_id` setting; Maxwell gives the source server's id here) |
//! | `primary_key` | object of the primary-key columns (absent without a primary key) |
//! | `data` | the row, typed as in the envelope (before image for a delete) |
//! | `old` | updates: old values of the changed columns only; absent when none changed |
//!
//! The relay only learns that a row was its transaction's last when the
//! transaction ends (XID / COMMIT), after the row was decoded. In this format
//! it therefore holds each streamed row back until the next row or the end of
//! the transaction is read, and marks it with [`Payload::mark_commit`] in the
//! latter case; the delay is one binlog event. A row whose transaction never
//! ends in the stream (the relay stops first) is not sent; it is not
//! checkpointed either, so it is sent after the restart. Maxwell's
//! bootstrap-start / bootstrap-complete records are not produced.
//!
//! Key: Maxwell's hash key, `{"database":"sluice","table":"counter",
//! "pk.owner_id":7,"pk.kind":2}`; no key for a table without a primary key
//! (so the row lands on any partition, as Maxwell's random key would).
//!
//! Neither canal nor Maxwell emits tombstones; `tombstones` is ignored for them.

use std::fmt::{self, Display};
use std::str::FromStr;

use cdc_event::{Op, Row, Snapshot};
use mysql_async::consts::ColumnType;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::decode::{self, ChangeMeta, RowChange};
use crate::fastrow;
use crate::schema::{ColumnInfo, TableInfo};

/// The value format of row-change messages (`format` / `RELAY_FORMAT` /
/// `binlog-relay run --format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// The Debezium-style envelope (DESIGN §4).
    #[default]
    Debezium,
    /// canal's flat message.
    Canal,
    /// Maxwell's row JSON.
    Maxwell,
}

/// The allowed values, for error messages.
pub const ALLOWED: &str = "debezium, canal or maxwell";

impl Format {
    /// The setting's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Debezium => "debezium",
            Format::Canal => "canal",
            Format::Maxwell => "maxwell",
        }
    }

    /// Whether a delete is followed by a tombstone (when `tombstones` is on).
    pub fn emits_tombstones(self) -> bool {
        self == Format::Debezium
    }
}

impl Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown format name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown output format {0:?}: expected {ALLOWED}")]
pub struct FormatParseError(pub String);

impl FromStr for Format {
    type Err = FormatParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "debezium" => Ok(Format::Debezium),
            "canal" => Ok(Format::Canal),
            "maxwell" => Ok(Format::Maxwell),
            _ => Err(FormatParseError(s.to_owned())),
        }
    }
}

impl Serialize for Format {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Format {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An encoded message value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub bytes: Vec<u8>,
    /// Where Maxwell's `"commit":true` goes (right after `xid`), for rows
    /// that belong to a transaction.
    commit_at: Option<usize>,
}

impl Payload {
    /// Marks the row as the last of its transaction (Maxwell's
    /// `"commit":true`); false, and nothing changes, in other formats or on
    /// rows outside a transaction. Marks at most once.
    pub fn mark_commit(&mut self) -> bool {
        let Some(at) = self.commit_at.take() else {
            return false;
        };
        const COMMIT: &[u8] = b",\"commit\":true";
        self.bytes.splice(at..at, COMMIT.iter().copied());
        true
    }
}

/// The message key of a row in `format`; `None` without a primary key.
pub fn key(format: Format, info: &TableInfo, image: &Row) -> Option<String> {
    match format {
        Format::Debezium | Format::Canal => decode::key_of(info, image),
        Format::Maxwell => maxwell_key(info, image),
    }
}

/// Encodes one row change as a message value. `seq` is the change's
/// `sluice.seq` (canal's `id`).
pub fn encode(
    format: Format,
    info: &TableInfo,
    change: RowChange,
    meta: ChangeMeta<'_>,
    seq: u64,
) -> serde_json::Result<Payload> {
    match format {
        Format::Debezium => Ok(Payload {
            bytes: serde_json::to_vec(&decode::envelope(info, change, meta))?,
            commit_at: None,
        }),
        Format::Canal => canal(info, &change, &meta, seq),
        Format::Maxwell => maxwell(info, &change, &meta),
    }
}

/// The Debezium envelope of one fast-decoded row change: the same JSON as
/// [`encode`] with [`Format::Debezium`] writes for the general path's
/// [`RowChange`] of the same row (checked by the tests and by
/// `tests/it/fast.rs` against a real binlog), built without row maps.
pub fn debezium_fast(
    info: &TableInfo,
    op: Op,
    before: Option<fastrow::Image<'_>>,
    after: Option<fastrow::Image<'_>>,
    meta: &ChangeMeta<'_>,
) -> Payload {
    fn num(out: &mut Vec<u8>, n: impl itoa::Integer) {
        out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    }
    fn opt_str(out: &mut Vec<u8>, s: Option<&str>) {
        match s {
            Some(s) => fastrow::write_str(out, s),
            None => out.extend_from_slice(b"null"),
        }
    }
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"{\"before\":");
    match before {
        Some(img) => img.write(info, &mut out),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"after\":");
    match after {
        Some(img) => img.write(info, &mut out),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"source\":{\"version\":");
    fastrow::write_str(&mut out, env!("CARGO_PKG_VERSION"));
    out.extend_from_slice(b",\"connector\":\"sluice\",\"name\":");
    fastrow::write_str(&mut out, meta.name);
    out.extend_from_slice(b",\"ts_ms\":");
    num(&mut out, meta.ts_ms);
    out.extend_from_slice(b",\"db\":");
    fastrow::write_str(&mut out, &info.db);
    out.extend_from_slice(b",\"table\":");
    fastrow::write_str(&mut out, &info.table);
    out.extend_from_slice(b",\"server_id\":");
    num(&mut out, meta.server_id);
    out.extend_from_slice(b",\"gtid\":");
    opt_str(&mut out, meta.gtid);
    out.extend_from_slice(b",\"file\":");
    fastrow::write_str(&mut out, meta.file);
    out.extend_from_slice(b",\"pos\":");
    num(&mut out, meta.pos);
    out.extend_from_slice(b",\"row\":");
    num(&mut out, meta.row);
    out.extend_from_slice(match meta.snapshot {
        Snapshot::False => b",\"snapshot\":\"false\",\"thread\":".as_slice(),
        Snapshot::True => b",\"snapshot\":\"true\",\"thread\":",
        Snapshot::Last => b",\"snapshot\":\"last\",\"thread\":",
    });
    match meta.thread {
        Some(t) => num(&mut out, t),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b"},\"op\":\"");
    out.extend_from_slice(op.code().as_bytes());
    out.extend_from_slice(b"\",\"ts_ms\":");
    num(&mut out, meta.now_ms);
    out.extend_from_slice(b",\"transaction\":");
    match &meta.transaction {
        Some(t) => {
            out.extend_from_slice(b"{\"id\":");
            fastrow::write_str(&mut out, &t.id);
            out.extend_from_slice(b",\"total_order\":");
            num(&mut out, t.total_order);
            out.extend_from_slice(b",\"data_collection_order\":");
            num(&mut out, t.data_collection_order);
            out.push(b'}');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
    Payload {
        bytes: out,
        commit_at: None,
    }
}

/// Writes a top-level JSON object field by field (so a byte offset between
/// two fields can be recorded).
struct Obj<'b> {
    buf: &'b mut Vec<u8>,
    first: bool,
}

impl<'b> Obj<'b> {
    fn new(buf: &'b mut Vec<u8>) -> Self {
        buf.push(b'{');
        Self { buf, first: true }
    }

    /// `name` must not need JSON escaping (the fixed field names do not).
    fn field<T: Serialize + ?Sized>(&mut self, name: &str, value: &T) -> serde_json::Result<()> {
        if !self.first {
            self.buf.push(b',');
        }
        self.first = false;
        self.buf.push(b'"');
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b"\":");
        serde_json::to_writer(&mut *self.buf, value)
    }

    fn end(self) {
        self.buf.push(b'}');
    }
}

/// Serializes through `Display` (no intermediate `String`).
struct Text<T>(T);

impl<T: Display> Serialize for Text<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// A value as canal writes it: a string, or `null`.
struct AsString<'a>(&'a Value);

impl Serialize for AsString<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Null => s.serialize_unit(),
            Value::String(v) => s.serialize_str(v),
            Value::Number(n) => s.collect_str(n),
            Value::Bool(b) => s.serialize_str(if *b { "true" } else { "false" }),
            // JSON columns: their compact JSON text.
            other => s.collect_str(other),
        }
    }
}

/// A row with every value as a string (canal's `data`).
struct StringRow<'a>(&'a Row);

impl Serialize for StringRow<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, &AsString(v))?;
        }
        m.end()
    }
}

/// A one-element JSON array.
struct One<T>(T);

impl<T: Serialize> Serialize for One<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(1))?;
        seq.serialize_element(&self.0)?;
        seq.end()
    }
}

/// Whether any column differs between the two images.
fn any_changed(before: &Row, after: &Row) -> bool {
    before.iter().any(|(k, v)| after.get(k) != Some(v))
}

/// The before values of the columns whose value changed; as strings for canal.
struct ChangedColumns<'a> {
    before: &'a Row,
    after: &'a Row,
    as_strings: bool,
}

impl Serialize for ChangedColumns<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        for (k, v) in self.before {
            if self.after.get(k) == Some(v) {
                continue;
            }
            if self.as_strings {
                m.serialize_entry(k, &AsString(v))?;
            } else {
                m.serialize_entry(k, v)?;
            }
        }
        m.end()
    }
}

/// The old images of an update with at least one changed column.
fn update_images(change: &RowChange) -> Option<(&Row, &Row)> {
    match (change.op, &change.before, &change.after) {
        (Op::Update, Some(b), Some(a)) if any_changed(b, a) => Some((b, a)),
        _ => None,
    }
}

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

/// A first guess at the message size, so most rows need one allocation.
const PAYLOAD_CAPACITY: usize = 512;

fn canal(
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

/// Maxwell's transaction number (see the module docs); `None` outside a transaction.
pub fn xid(meta: &ChangeMeta<'_>) -> Option<u64> {
    let tx = meta.transaction.as_ref()?;
    if let Some(g) = meta.gtid {
        if let Ok(g) = g.parse::<cdc_event::Gtid>() {
            return Some(g.seq);
        }
        // MySQL: `uuid:n`.
        return g.rsplit_once(':').and_then(|(_, n)| n.parse().ok());
    }
    // No GTID: the id is `file:pos` of the transaction's start.
    let (file, pos) = tx.id.rsplit_once(':')?;
    let pos: u32 = pos.parse().ok()?;
    let number: u32 = file.rsplit_once('.')?.1.parse().ok()?;
    Some((u64::from(number) << 32) | u64::from(pos))
}

/// The primary-key columns of `image` as an object.
struct PkObject<'a> {
    info: &'a TableInfo,
    image: &'a Row,
}

impl Serialize for PkObject<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.info.pk.len()))?;
        for c in self
            .info
            .pk
            .iter()
            .filter_map(|&i| self.info.columns.get(i))
        {
            m.serialize_entry(&c.name, self.image.get(&c.name).unwrap_or(&Value::Null))?;
        }
        m.end()
    }
}

fn maxwell(
    info: &TableInfo,
    change: &RowChange,
    meta: &ChangeMeta<'_>,
) -> serde_json::Result<Payload> {
    let mut bytes = Vec::with_capacity(PAYLOAD_CAPACITY);
    let mut o = Obj::new(&mut bytes);
    o.field("database", &info.db)?;
    o.field("table", &info.table)?;
    o.field(
        "type",
        match change.op {
            Op::Create => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::Read => "bootstrap-insert",
            // Not produced from rows events; named for completeness.
            Op::Truncate => "truncate",
        },
    )?;
    o.field("ts", &meta.ts_ms.div_euclid(1000))?;
    let mut commit_at = None;
    if let Some(xid) = xid(meta) {
        o.field("xid", &xid)?;
        commit_at = Some(o.buf.len());
    }
    o.field(
        "position",
        &Text(format_args!("{}:{}", meta.file, meta.pos)),
    )?;
    if let Some(g) = meta.gtid {
        o.field("gtid", g)?;
    }
    o.field("server_id", &meta.server_id)?;
    let image = change.image();
    if let Some(image) = image
        && !info.pk.is_empty()
    {
        o.field("primary_key", &PkObject { info, image })?;
    }
    match image {
        Some(row) => o.field("data", row)?,
        None => o.field("data", &())?,
    }
    if let Some((before, after)) = update_images(change) {
        o.field(
            "old",
            &ChangedColumns {
                before,
                after,
                as_strings: false,
            },
        )?;
    }
    o.end();
    Ok(Payload { bytes, commit_at })
}

/// Maxwell's message key: `{"database":…,"table":…,"pk.<col>":<value>,…}`.
fn maxwell_key(info: &TableInfo, image: &Row) -> Option<String> {
    if info.pk.is_empty() {
        return None;
    }
    let mut buf = Vec::with_capacity(64);
    buf.extend_from_slice(b"{\"database\":");
    serde_json::to_writer(&mut buf, &info.db).ok()?;
    buf.extend_from_slice(b",\"table\":");
    serde_json::to_writer(&mut buf, &info.table).ok()?;
    for c in info.pk.iter().filter_map(|&i| info.columns.get(i)) {
        buf.push(b',');
        serde_json::to_writer(&mut buf, &Text(format_args!("pk.{}", c.name))).ok()?;
        buf.push(b':');
        serde_json::to_writer(&mut buf, image.get(&c.name).unwrap_or(&Value::Null)).ok()?;
    }
    buf.push(b'}');
    String::from_utf8(buf).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdc_event::{Snapshot, TransactionRef};
    use serde_json::json;

    fn col(name: &str, col_type: ColumnType, unsigned: bool) -> ColumnInfo {
        ColumnInfo::text_column(name, col_type, unsigned)
    }

    /// `account (id BIGINT UNSIGNED PK, name VARCHAR, balance DECIMAL, note TEXT NULL)`.
    fn table() -> TableInfo {
        use ColumnType::*;
        TableInfo {
            db: "shop".into(),
            table: "account".into(),
            columns: vec![
                col("id", MYSQL_TYPE_LONGLONG, true),
                col("name", MYSQL_TYPE_VARCHAR, false),
                col("balance", MYSQL_TYPE_NEWDECIMAL, false),
                col("note", MYSQL_TYPE_BLOB, false),
            ],
            pk: vec![0],
            wire: None,
        }
    }

    fn row(v: Value) -> Row {
        v.as_object().unwrap().clone()
    }

    /// A row whose id is above `i64::MAX` and whose note is NULL.
    fn first() -> Row {
        row(json!({"id": 18446744073709551615u64, "name": "ann", "balance": "12.50", "note": null}))
    }

    fn second() -> Row {
        row(json!({"id": 18446744073709551615u64, "name": "ann", "balance": "-0.75", "note": "hi"}))
    }

    fn meta(gtid: Option<&str>) -> ChangeMeta<'_> {
        ChangeMeta {
            name: "sluice",
            server_id: 1001,
            gtid,
            file: "mysql-bin.000003",
            pos: 1234,
            ts_ms: 1_764_151_117_000,
            row: 0,
            snapshot: Snapshot::False,
            thread: None,
            transaction: Some(TransactionRef {
                id: gtid.unwrap_or("mysql-bin.000003:1200").to_owned(),
                total_order: 1,
                data_collection_order: 1,
            }),
            now_ms: 1_764_151_117_250,
        }
    }

    fn change(op: Op, before: Option<Row>, after: Option<Row>) -> RowChange {
        RowChange { op, before, after }
    }

    fn encoded(format: Format, c: RowChange, gtid: Option<&str>) -> String {
        let p = encode(format, &table(), c, meta(gtid), 77).unwrap();
        String::from_utf8(p.bytes).unwrap()
    }

    const CANAL_TYPES: &str = r#""mysqlType":{"id":"bigint unsigned","name":"varchar","balance":"decimal","note":"text"}"#;
    const CANAL_SQL_TYPES: &str = r#""sqlType":{"id":-5,"name":12,"balance":3,"note":2005}"#;

    fn canal_expect(data: &str, old: &str, ty: &str) -> String {
        format!(
            r#"{{"data":{data},"database":"shop","es":1764151117000,"id":77,"isDdl":false,{CANAL_TYPES},"old":{old},"pkNames":["id"],"sql":"",{CANAL_SQL_TYPES},"table":"account","ts":1764151117250,"type":"{ty}"}}"#
        )
    }

    #[test]
    fn canal_insert_has_string_values_null_and_big_unsigned() {
        let got = encoded(
            Format::Canal,
            change(Op::Create, None, Some(first())),
            Some("0-1-42"),
        );
        let data = r#"[{"id":"18446744073709551615","name":"ann","balance":"12.50","note":null}]"#;
        assert_eq!(got, canal_expect(data, "null", "INSERT"));
    }

    #[test]
    fn canal_update_old_holds_only_changed_columns() {
        let got = encoded(
            Format::Canal,
            change(Op::Update, Some(first()), Some(second())),
            Some("0-1-42"),
        );
        let data = r#"[{"id":"18446744073709551615","name":"ann","balance":"-0.75","note":"hi"}]"#;
        let old = r#"[{"balance":"12.50","note":null}]"#;
        assert_eq!(got, canal_expect(data, old, "UPDATE"));
    }

    #[test]
    fn canal_update_without_changes_has_null_old() {
        let got = encoded(
            Format::Canal,
            change(Op::Update, Some(first()), Some(first())),
            None,
        );
        assert!(got.contains(r#""old":null"#), "{got}");
    }

    #[test]
    fn canal_delete_carries_the_deleted_row() {
        let got = encoded(
            Format::Canal,
            change(Op::Delete, Some(second()), None),
            Some("0-1-42"),
        );
        let data = r#"[{"id":"18446744073709551615","name":"ann","balance":"-0.75","note":"hi"}]"#;
        assert_eq!(got, canal_expect(data, "null", "DELETE"));
    }

    #[test]
    fn canal_snapshot_rows_are_inserts_and_tables_without_pk_have_null_pk_names() {
        let mut t = table();
        t.pk.clear();
        let p = encode(
            Format::Canal,
            &t,
            change(Op::Read, None, Some(first())),
            meta(None),
            1,
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&p.bytes).unwrap();
        assert_eq!(v["type"], "INSERT");
        assert_eq!(v["pkNames"], Value::Null);
        assert_eq!(key(Format::Canal, &t, &first()), None);
    }

    fn maxwell_expect(ty: &str, data: &str, old: Option<&str>) -> String {
        let old = old.map(|o| format!(r#","old":{o}"#)).unwrap_or_default();
        format!(
            r#"{{"database":"shop","table":"account","type":"{ty}","ts":1764151117,"xid":42,"position":"mysql-bin.000003:1234","gtid":"0-1-42","server_id":1001,"primary_key":{{"id":18446744073709551615}},"data":{data}{old}}}"#
        )
    }

    #[test]
    fn maxwell_insert_is_typed_with_null_and_big_unsigned() {
        let got = encoded(
            Format::Maxwell,
            change(Op::Create, None, Some(first())),
            Some("0-1-42"),
        );
        let data = r#"{"id":18446744073709551615,"name":"ann","balance":"12.50","note":null}"#;
        assert_eq!(got, maxwell_expect("insert", data, None));
    }

    #[test]
    fn maxwell_update_old_holds_only_changed_columns() {
        let got = encoded(
            Format::Maxwell,
            change(Op::Update, Some(first()), Some(second())),
            Some("0-1-42"),
        );
        let data = r#"{"id":18446744073709551615,"name":"ann","balance":"-0.75","note":"hi"}"#;
        let old = r#"{"balance":"12.50","note":null}"#;
        assert_eq!(got, maxwell_expect("update", data, Some(old)));
    }

    #[test]
    fn maxwell_update_without_changes_has_no_old() {
        let got = encoded(
            Format::Maxwell,
            change(Op::Update, Some(first()), Some(first())),
            Some("0-1-42"),
        );
        assert!(!got.contains("\"old\""), "{got}");
    }

    #[test]
    fn maxwell_delete_carries_the_deleted_row() {
        let got = encoded(
            Format::Maxwell,
            change(Op::Delete, Some(second()), None),
            Some("0-1-42"),
        );
        let data = r#"{"id":18446744073709551615,"name":"ann","balance":"-0.75","note":"hi"}"#;
        assert_eq!(got, maxwell_expect("delete", data, None));
    }

    #[test]
    fn maxwell_commit_is_inserted_after_xid_once() {
        let mut p = encode(
            Format::Maxwell,
            &table(),
            change(Op::Create, None, Some(first())),
            meta(Some("0-1-42")),
            1,
        )
        .unwrap();
        assert!(p.mark_commit());
        assert!(!p.mark_commit(), "only once");
        let got = String::from_utf8(p.bytes).unwrap();
        assert!(
            got.starts_with(
                r#"{"database":"shop","table":"account","type":"insert","ts":1764151117,"xid":42,"commit":true,"position":"#
            ),
            "{got}"
        );
        serde_json::from_str::<Value>(&got).unwrap();
    }

    #[test]
    fn maxwell_snapshot_rows_are_bootstrap_inserts_without_xid_or_commit() {
        let mut m = meta(None);
        m.transaction = None;
        let mut p = encode(
            Format::Maxwell,
            &table(),
            change(Op::Read, None, Some(first())),
            m,
            1,
        )
        .unwrap();
        assert!(!p.mark_commit());
        let v: Value = serde_json::from_slice(&p.bytes).unwrap();
        assert_eq!(v["type"], "bootstrap-insert");
        assert!(v.get("xid").is_none() && v.get("commit").is_none() && v.get("gtid").is_none());
    }

    #[test]
    fn maxwell_xid_comes_from_the_gtid_or_the_start_position() {
        assert_eq!(xid(&meta(Some("0-1-42"))), Some(42));
        assert_eq!(
            xid(&meta(Some("3e11fa47-71ca-11e1-9e33-c80aa9429562:23"))),
            Some(23)
        );
        assert_eq!(xid(&meta(None)), Some((3u64 << 32) | 1200));
    }

    #[test]
    fn maxwell_key_names_database_table_and_pk_columns() {
        let mut t = table();
        t.columns
            .push(col("kind", ColumnType::MYSQL_TYPE_TINY, false));
        t.pk = vec![0, 4];
        let mut r = first();
        r.insert("kind".into(), json!(2));
        assert_eq!(
            key(Format::Maxwell, &t, &r).unwrap(),
            r#"{"database":"shop","table":"account","pk.id":18446744073709551615,"pk.kind":2}"#
        );
        assert_eq!(
            key(Format::Canal, &t, &r).unwrap(),
            r#"{"id":18446744073709551615,"kind":2}"#
        );
        t.pk.clear();
        assert_eq!(key(Format::Maxwell, &t, &r), None);
    }

    #[test]
    fn debezium_is_the_envelope_unchanged() {
        let c = change(Op::Update, Some(first()), Some(second()));
        let want = serde_json::to_vec(&decode::envelope(&table(), c.clone(), meta(Some("0-1-42"))))
            .unwrap();
        let mut got = encode(Format::Debezium, &table(), c, meta(Some("0-1-42")), 5).unwrap();
        assert_eq!(got.bytes, want);
        assert!(!got.mark_commit());
        assert!(Format::Debezium.emits_tombstones());
        assert!(!Format::Canal.emits_tombstones() && !Format::Maxwell.emits_tombstones());
    }

    #[test]
    fn type_texts_and_codes_follow_the_column() {
        use ColumnType::*;
        let mut e = col("e", MYSQL_TYPE_ENUM, false);
        e.enum_labels = vec!["small".into(), "it's".into()];
        assert_eq!(MysqlType(&e).to_string(), "enum('small','it''s')");
        assert_eq!(sql_type(&e), 4);
        let mut b = col("b", MYSQL_TYPE_BLOB, false);
        b.charset = Some(crate::schema::BINARY_CHARSET);
        assert_eq!(
            (MysqlType(&b).to_string(), sql_type(&b)),
            ("blob".into(), 2004)
        );
        let mut j = col("j", MYSQL_TYPE_BLOB, false);
        j.json = true;
        assert_eq!(
            (MysqlType(&j).to_string(), sql_type(&j)),
            ("json".into(), 12)
        );
        let mut vb = col("vb", MYSQL_TYPE_VARCHAR, false);
        vb.charset = Some(crate::schema::BINARY_CHARSET);
        assert_eq!(sql_type(&vb), -3);
        let t = col("t", MYSQL_TYPE_TINY, true);
        assert_eq!(
            (MysqlType(&t).to_string(), sql_type(&t)),
            ("tinyint unsigned".into(), -6)
        );
        for (ty, code) in [
            (MYSQL_TYPE_DATETIME2, 93),
            (MYSQL_TYPE_TIMESTAMP2, 93),
            (MYSQL_TYPE_NEWDATE, 91),
            (MYSQL_TYPE_TIME2, 92),
            (MYSQL_TYPE_YEAR, 12),
            (MYSQL_TYPE_BIT, -7),
            (MYSQL_TYPE_STRING, 1),
            (MYSQL_TYPE_FLOAT, 7),
            (MYSQL_TYPE_DOUBLE, 8),
            (MYSQL_TYPE_INT24, 4),
            (MYSQL_TYPE_SHORT, 5),
        ] {
            assert_eq!(sql_type(&col("c", ty, false)), code, "{ty:?}");
        }
    }

    #[test]
    fn format_names_parse_and_bad_ones_list_the_choices() {
        assert_eq!("canal".parse::<Format>().unwrap(), Format::Canal);
        assert_eq!(" Maxwell ".parse::<Format>().unwrap(), Format::Maxwell);
        let err = "avro".parse::<Format>().unwrap_err().to_string();
        assert!(err.contains("debezium, canal or maxwell"), "{err}");
        assert_eq!(
            serde_json::to_string(&Format::Maxwell).unwrap(),
            "\"maxwell\""
        );
        let err = serde_json::from_str::<Format>("\"xml\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("debezium, canal or maxwell"), "{err}");
    }
}
