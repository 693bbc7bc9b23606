//! The `maxwell` format.
//!
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
//! "pk.owner_id":7,"pk.kind":2}`, always the primary key (Maxwell's meaning);
//! no key for a table without a primary key (so the row lands on any
//! partition, as Maxwell's random key would). A table with
//! `message_key_columns` is partitioned by them instead of by this key
//! ([`super::partition`], like Maxwell's `producer_partition_by=column`):
//! the row goes where the debezium key would put it.
//!

use cdc_event::{Op, Row};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::Value;

use super::{ChangedColumns, Obj, PAYLOAD_CAPACITY, Payload, Text, update_images};
use cdc_event::write::write_str;

use crate::decode::{ChangeMeta, RowChange};
use crate::image::{self, Image};
use crate::table::TableInfo;

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

pub(super) fn maxwell(
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
pub(super) fn maxwell_key(info: &TableInfo, img: &impl Image) -> Option<String> {
    if info.pk.is_empty() {
        return None;
    }
    let mut buf = Vec::with_capacity(64);
    buf.extend_from_slice(b"{\"database\":");
    write_str(&mut buf, &info.db);
    buf.extend_from_slice(b",\"table\":");
    write_str(&mut buf, &info.table);
    buf.push(b',');
    image::write_columns(info, &info.pk, img, &mut buf, |out, name| {
        // Written as one escaped string without building it first.
        let _ = serde_json::to_writer(&mut *out, &Text(format_args!("pk.{name}")));
    });
    buf.push(b'}');
    String::from_utf8(buf).ok()
}
