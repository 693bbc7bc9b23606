//! The change envelope: Debezium's value layout without the schema block, so
//! existing Debezium consumers read sluice topics unchanged.
//!
//! Value typing (documented in the README): integers as JSON numbers (BIGINT
//! UNSIGNED beyond 2^53 still as an exact number), DECIMAL as a string,
//! DATETIME/TIMESTAMP as ISO-8601 strings with microseconds
//! (`2026-11-26T10:38:37.123456`, TIMESTAMP with a trailing `Z`), DATE as
//! `YYYY-MM-DD`, TIME as `[-]HH:MM:SS[.ffffff]`, binary as base64, BIT as a
//! number, ENUM/SET as their labels, JSON columns as JSON.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One row image: column name → typed value, in table column order.
pub type Row = Map<String, Value>;

/// The kind of change (Debezium's `op`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    /// Insert.
    #[serde(rename = "c")]
    Create,
    /// Update (before and after images).
    #[serde(rename = "u")]
    Update,
    /// Delete (before image only).
    #[serde(rename = "d")]
    Delete,
    /// Snapshot read.
    #[serde(rename = "r")]
    Read,
    /// Truncate.
    #[serde(rename = "t")]
    Truncate,
}

impl Op {
    /// The one-letter code used on the wire and in metric labels.
    pub fn code(self) -> &'static str {
        match self {
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Read => "r",
            Op::Truncate => "t",
        }
    }
}

/// Debezium's `source.snapshot` marker: `"false"` for streamed changes,
/// `"true"` for snapshot rows, `"last"` for the final row of a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Snapshot {
    #[default]
    False,
    True,
    Last,
}

/// Where a change came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// sluice version that produced the event.
    pub version: String,
    /// Always `"sluice"`.
    pub connector: String,
    /// Logical server name: the topic prefix.
    pub name: String,
    /// Commit time from the binlog event header, in milliseconds (whole
    /// seconds of precision on MariaDB).
    pub ts_ms: i64,
    pub db: String,
    pub table: String,
    pub server_id: u32,
    /// GTID of the transaction (`domain-server-seq` on MariaDB, `uuid:n` on MySQL).
    pub gtid: Option<String>,
    /// Binlog file of the rows event.
    pub file: String,
    /// Position of the rows event in `file`.
    pub pos: u64,
    /// Index of the row inside its rows event.
    pub row: u32,
    pub snapshot: Snapshot,
    /// Connection id of the writing session, when the binlog carries it.
    pub thread: Option<u64>,
}

/// Where the event sits inside its transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransactionRef {
    /// Transaction id: the GTID, or `file:pos` of its BEGIN without one.
    pub id: String,
    /// 1-based position of the event among all events of the transaction.
    pub total_order: u64,
    /// 1-based position among the transaction's events for the same table.
    pub data_collection_order: u64,
}

/// One row change: the value of a message on a `<prefix>.<db>.<table>` topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeEvent {
    pub before: Option<Row>,
    pub after: Option<Row>,
    pub source: Source,
    pub op: Op,
    /// When the relay produced the event (milliseconds since the epoch).
    pub ts_ms: i64,
    pub transaction: Option<TransactionRef>,
}

impl ChangeEvent {
    /// The row image that identifies the row: `after` for inserts, updates and
    /// snapshot reads, `before` for deletes.
    pub fn image(&self) -> Option<&Row> {
        match self.op {
            Op::Delete => self.before.as_ref(),
            _ => self.after.as_ref().or(self.before.as_ref()),
        }
    }

    /// Parses an envelope from a message value.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// BEGIN or END of a transaction on the `<prefix>.transaction` topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TxStatus {
    Begin,
    End,
}

/// Per-table event count inside a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataCollection {
    /// `db.table`.
    pub data_collection: String,
    pub event_count: u64,
}

/// A record of the transaction-metadata topic (Debezium layout).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransactionRecord {
    pub status: TxStatus,
    pub id: String,
    /// Total events of the transaction (END only).
    pub event_count: Option<u64>,
    /// Events per table (END only).
    pub data_collections: Option<Vec<DataCollection>>,
    pub ts_ms: i64,
}

/// A record of the heartbeat topic: proves the relay is alive and says how
/// far it has read, so that consumers can compute lag while the source is idle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// When the heartbeat was produced (ms since the epoch).
    pub ts_ms: i64,
    /// Binlog position read up to (`file:pos`).
    pub pos: String,
    /// Last GTID read, if any.
    pub gtid: Option<String>,
    /// Highest change sequence number emitted so far.
    pub seq: u64,
    /// Every message up to this change sequence number is acknowledged by
    /// Kafka, and it ends a transaction (the applied-watermark basis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_seq: Option<u64>,
    /// The GTID position at `acked_seq` (`domain-server-seq[,…]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_gtid: Option<String>,
    /// Where every message up to `acked_seq` landed: per row-change
    /// partition, the offset after the last of them. A consumer whose
    /// position has reached these offsets has seen everything up to
    /// `acked_seq` (the syncer's applied watermark, without asking the
    /// broker). Partitions that received nothing yet are absent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acked_offsets: Vec<PartitionOffset>,
}

/// A partition and the offset after the last acknowledged message in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionOffset {
    pub topic: String,
    pub partition: i32,
    pub next: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> ChangeEvent {
        ChangeEvent {
            before: None,
            after: Some(json!({"id": 1, "from_id": 2}).as_object().unwrap().clone()),
            source: Source {
                version: "0.1.0".into(),
                connector: "sluice".into(),
                name: "sluice".into(),
                ts_ms: 1_700_000_000_000,
                db: "sluice".into(),
                table: "follow".into(),
                server_id: 1,
                gtid: Some("0-1-9".into()),
                file: "mysql-bin.000001".into(),
                pos: 1234,
                row: 0,
                snapshot: Snapshot::False,
                thread: Some(5),
            },
            op: Op::Create,
            ts_ms: 1_700_000_000_001,
            transaction: Some(TransactionRef {
                id: "0-1-9".into(),
                total_order: 1,
                data_collection_order: 1,
            }),
        }
    }

    #[test]
    fn envelope_uses_debezium_field_names_and_codes() {
        let v: Value = serde_json::to_value(sample()).unwrap();
        assert_eq!(v["op"], "c");
        assert_eq!(v["source"]["snapshot"], "false");
        assert_eq!(v["source"]["connector"], "sluice");
        assert_eq!(v["transaction"]["total_order"], 1);
        assert!(v["before"].is_null());
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            ["before", "after", "source", "op", "ts_ms", "transaction"]
        );
    }

    #[test]
    fn envelope_round_trips() {
        let e = sample();
        let bytes = serde_json::to_vec(&e).unwrap();
        assert_eq!(ChangeEvent::from_slice(&bytes).unwrap(), e);
    }

    #[test]
    fn delete_image_is_the_before_image() {
        let mut e = sample();
        e.op = Op::Delete;
        e.before = e.after.take();
        assert_eq!(e.image().unwrap()["id"], 1);
    }
}
