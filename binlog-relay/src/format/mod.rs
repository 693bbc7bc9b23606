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
//! followed by a tombstone (same key) when `tombstones` is on. Key: the
//! table's key columns as JSON ([`crate::image::key`]: `message_key_columns`,
//! else the primary key; `{"owner_id":7}` for `counter` by default).
//!
//! # Keys and partitions
//! canal's key is the debezium key (canal itself sends no key and picks the
//! partition from `canal.mq.partitionHash` columns, which is what the key
//! columns do here). Maxwell's key stays Maxwell's primary-key key; on a
//! table with key columns the relay picks the partition itself
//! ([`partition`]), as Maxwell does with `producer_partition_by=column`, so
//! the key columns co-locate rows the same way in every format.
//!
//! Each format has its module: [`debezium`] (the fast envelope writer; the
//! general path's envelope is [`crate::decode::envelope`]), [`canal`] and
//! [`maxwell`]; the value-writing helpers they share are here.
//!
//! Neither canal nor Maxwell emits tombstones; `tombstones` is ignored for them.

use std::fmt::{self, Display};
use std::str::FromStr;

use cdc_event::{Op, Row};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::decode::{ChangeMeta, RowChange};
use crate::image::{self, Image};
use crate::table::TableInfo;

/// A first guess at the message size, so most rows need one allocation.
const PAYLOAD_CAPACITY: usize = 512;

mod canal;
pub mod connect;
mod debezium;
mod maxwell;
pub mod schema;

use canal::canal;
pub use canal::{MysqlType, sql_type};
pub use debezium::debezium;
pub use maxwell::xid;
use maxwell::{maxwell, maxwell_key};

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
    /// A finished value (no Maxwell commit flag to place).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self {
            bytes,
            commit_at: None,
        }
    }

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

/// The message key of a row in `format`, from either decoder's image:
/// the table's key columns ([`image::key`]) in debezium and canal, Maxwell's
/// primary-key key in maxwell; `None` without one.
pub fn key(format: Format, info: &TableInfo, img: &impl Image) -> Option<String> {
    match format {
        Format::Debezium | Format::Canal => image::key(info, img),
        Format::Maxwell => maxwell_key(info, img),
    }
}

/// Whether rows of `info` in `format` are sent to a partition the relay
/// picks ([`partition`]) rather than the one Kafka's partitioner derives
/// from the message key: Maxwell rows of a table with `message_key_columns`.
pub fn picks_partition(format: Format, info: &TableInfo) -> bool {
    format == Format::Maxwell && info.key.is_some()
}

/// The partition of a row whose format's key is not its key columns
/// ([`picks_partition`]), among `partitions`: where Kafka puts the
/// debezium key of the same row ([`image::key`], hashed by
/// [`partition_of`]), so the key columns co-locate rows in every format.
/// Maxwell's own key keeps meaning "primary key", as in Maxwell, whose
/// `producer_partition_by=column` likewise picks the partition from columns
/// and leaves the key alone. `None`: the message key decides.
pub fn partition(
    format: Format,
    info: &TableInfo,
    img: &impl Image,
    partitions: i32,
) -> Option<i32> {
    if !picks_partition(format, info) {
        return None;
    }
    image::key(info, img).and_then(|k| partition_of(k.as_bytes(), partitions))
}

/// The partition librdkafka's default partitioner (`consistent_random`)
/// gives a non-empty key: its CRC-32 modulo the partition count.
pub fn partition_of(key: &[u8], partitions: i32) -> Option<i32> {
    let n = u32::try_from(partitions).ok().filter(|n| *n > 0)?;
    i32::try_from(crc32fast::hash(key) % n).ok()
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
        Format::Debezium => Ok(debezium(
            info,
            change.op,
            change.before.as_ref(),
            change.after.as_ref(),
            &meta,
        )),
        Format::Canal => canal(info, &change, &meta, seq),
        Format::Maxwell => maxwell(info, &change, &meta),
    }
}

/// Writes a top-level JSON object field by field (so a byte offset between
/// two fields can be recorded).
pub(super) struct Obj<'b> {
    buf: &'b mut Vec<u8>,
    first: bool,
}

impl<'b> Obj<'b> {
    pub(super) fn new(buf: &'b mut Vec<u8>) -> Self {
        buf.push(b'{');
        Self { buf, first: true }
    }

    /// `name` must not need JSON escaping (the fixed field names do not).
    pub(super) fn field<T: Serialize + ?Sized>(
        &mut self,
        name: &str,
        value: &T,
    ) -> serde_json::Result<()> {
        if !self.first {
            self.buf.push(b',');
        }
        self.first = false;
        self.buf.push(b'"');
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b"\":");
        serde_json::to_writer(&mut *self.buf, value)
    }

    pub(super) fn end(self) {
        self.buf.push(b'}');
    }
}

/// Serializes through `Display` (no intermediate `String`).
pub(super) struct Text<T>(T);

impl<T: Display> Serialize for Text<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// A value as canal writes it: a string, or `null`.
pub(super) struct AsString<'a>(&'a Value);

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
pub(super) struct StringRow<'a>(&'a Row);

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
pub(super) struct One<T>(T);

impl<T: Serialize> Serialize for One<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(1))?;
        seq.serialize_element(&self.0)?;
        seq.end()
    }
}

/// Whether any column differs between the two images.
pub(super) fn any_changed(before: &Row, after: &Row) -> bool {
    before.iter().any(|(k, v)| after.get(k) != Some(v))
}

/// The before values of the columns whose value changed; as strings for canal.
pub(super) struct ChangedColumns<'a> {
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
pub(super) fn update_images(change: &RowChange) -> Option<(&Row, &Row)> {
    match (change.op, &change.before, &change.after) {
        (Op::Update, Some(b), Some(a)) if any_changed(b, a) => Some((b, a)),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
