//! The CDC wire contract between binlog-relay and every consumer (the
//! cache-syncer and data engineers' own consumers).
//!
//! # Layout
//! - [`envelope`]: the Debezium-compatible change envelope (without the schema
//!   block), the transaction-metadata and heartbeat records.
//! - [`topic`]: the only place a topic name is built.
//! - [`key`]: message keys (the row's key columns as a JSON object: the
//!   relay's `message_key_columns`, else the primary key).
//! - [`gtid`]: MariaDB / MySQL GTID values as carried in headers and tokens.
//! - [`time`]: change times from the row image (freshness metrics).
//! - [`write`]: the envelope written as bytes without building it (the
//!   relay's fast path), tested equal to the serde types.
//!
//! Invariants: nothing here does I/O; the JSON produced is the documented
//! format, so changing a field name is a contract change (README + tests).

pub mod envelope;
pub mod gtid;
pub mod key;
pub mod time;
pub mod topic;
pub mod write;

pub use envelope::{ChangeEvent, Op, Row, Snapshot, Source, TransactionRef};
pub use gtid::Gtid;

/// Kafka header carrying the transaction's GTID (`0-1-42`), when known.
pub const HEADER_GTID: &str = "sluice.gtid";
/// Kafka header carrying the binlog position `file:pos` of the event.
pub const HEADER_POS: &str = "sluice.pos";
/// Kafka header carrying the change's number, derived from its binlog
/// position: the same from any relay, restart or replay, and growing in
/// commit order for one source.
pub const HEADER_SEQ: &str = "sluice.seq";
/// Header marking a change re-published by an operator's replay (`1`): the
/// cache-syncer applies it even when its seq is below what it applied.
pub const HEADER_REPLAY: &str = "sluice.replay";
/// Header name of the W3C trace context.
pub const HEADER_TRACEPARENT: &str = "traceparent";
/// Header on dead-letter messages naming why the message was rejected.
pub const HEADER_DLQ_REASON: &str = "sluice.dlq.reason";
