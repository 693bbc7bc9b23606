//! binlog-relay: reads the MySQL/MariaDB binlog as a replica and publishes
//! every committed row change to Kafka as a Debezium-style envelope
//! (DESIGN §4), at least once, in commit order per row.
//!
//! # Layout
//! - [`config`]: `Settings` (defaults → file → `RELAY_…` env) and table filters.
//! - [`position`]: `file:pos` and GTID positions, `--from` / `--until`.
//! - [`preflight`]: server checks before replicating.
//! - [`source`]: the binlog connection and the MariaDB GTID layer.
//! - [`schema`]: column names and types per table map, mismatch diffs.
//! - [`events`]: every binlog event type: read, carries no rows, or refused.
//! - [`seqno`]: `sluice.seq` derived from the binlog position.
//! - [`decode`]: pure rows-event → typed row → envelope conversion.
//! - [`value`]: value typing, one binlog value → JSON (the table both decoders follow).
//! - [`image`]: one trait over both decoders' row images; the key and the change time.
//! - [`keys`]: message key columns per table (`message_key_columns`), their checks.
//! - [`fastrow`]: rows-event bytes → row JSON text without row maps (debezium).
//! - [`format`]: the message value/key per output format (debezium, canal, maxwell).
//! - [`sink`]: the idempotent (or transactional) producer and the acknowledgement tracker.
//! - [`eos`]: exactly-once: Kafka transactions and the committed checkpoint record.
//! - [`snapshot`]: chunked, resumable table copies (`op: "r"`).
//! - [`checkpoint`]: the atomically written resume point.
//! - [`start`]: where a run starts (checkpoint or a resolved `--from`).
//! - [`status`]: the `/status` document and the lag probe.
//! - [`txn`]: the pure transaction assembler (boundaries, row coordinates, marks).
//! - [`relay`]: wiring: the reconnect loop, event dispatch, outputs, heartbeats.
//! - [`topics`]: `binlog-relay topics create`.
//! - [`startup`]: `Application` (admin server + relay).
//! - [`metrics`]: metric names.
//!
//! Invariant: a checkpoint is saved only after every message before it was
//! acknowledged, so no committed change is ever lost; duplicates are possible
//! after a crash and carry the same `sluice.seq` as the first time (it is
//! derived from the binlog position, see [`seqno`]). With exactly-once on
//! ([`eos`]) a `read_committed` reader sees no duplicates either.

pub mod checkpoint;
pub mod columns;
pub mod config;
pub mod ddl;
pub mod decode;
pub mod eos;
pub mod error;
pub mod events;
pub mod fastrow;
pub mod format;
pub mod ha;
pub mod history;
pub mod image;
pub mod keys;
pub mod metrics;
pub mod position;
pub mod preflight;
pub mod relay;
pub mod schema;
pub mod seqno;
pub mod sink;
pub mod snapshot;
pub mod source;
pub mod start;
pub mod startup;
pub mod status;
pub mod table;
pub mod topics;
pub mod txn;
pub mod value;

pub use config::Settings;
pub use error::{Error, Result};
pub use relay::RunOptions;
pub use startup::Application;
