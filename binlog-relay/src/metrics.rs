//! Metric names of the relay (Prometheus, served on the admin port).
//! Labels are bounded: `table` is `db.table` of relayed tables, `op` is the
//! one-letter change code, `kind` an error kind.

/// Row changes emitted, by `table` and `op` (c/u/d/r).
pub const EVENTS_TOTAL: &str = "binlog_relay_events_total";
/// Transactions committed on the source and passed through the relay.
pub const TRANSACTIONS_TOTAL: &str = "binlog_relay_transactions_total";
/// Time from handing a message to the producer to Kafka's acknowledgement.
pub const PUBLISH_LATENCY_SECONDS: &str = "binlog_relay_publish_latency_seconds";
/// From the change's commit (its microsecond change-time column, see
/// `cdc_event::time`) to Kafka's acknowledgement of its message.
pub const COMMIT_TO_ACK_SECONDS: &str = "binlog_relay_commit_to_ack_seconds";
/// Binlog bytes between the relay's read position and the server's end of binlog.
pub const POSITION_LAG_BYTES: &str = "binlog_relay_position_lag_bytes";
/// Seconds between now and the commit time of the last event read; 0 when caught up.
pub const TIME_LAG_SECONDS: &str = "binlog_relay_time_lag_seconds";
/// Checkpoints written.
pub const CHECKPOINTS_TOTAL: &str = "binlog_relay_checkpoints_total";
/// Errors by `kind`; transient ones are followed by a reconnect.
pub const ERRORS_TOTAL: &str = "binlog_relay_errors_total";
/// Reconnects after transient errors.
pub const RECONNECTS_TOTAL: &str = "binlog_relay_reconnects_total";
/// Heartbeat records produced.
pub const HEARTBEATS_TOTAL: &str = "binlog_relay_heartbeats_total";
/// Rows copied by snapshots, by `table`.
pub const SNAPSHOT_ROWS_TOTAL: &str = "binlog_relay_snapshot_rows_total";
/// Tables still to copy in the running snapshot.
pub const SNAPSHOT_TABLES_PENDING: &str = "binlog_relay_snapshot_tables_pending";
/// 1 while this relay leads its `ha.name`, 0 while it waits as a standby
/// (absent with `ha` off).
pub const LEADER: &str = "binlog_relay_leader";
/// Kafka transactions ended, by `outcome` (`commit`, `abort`), with
/// exactly-once on.
pub const KAFKA_TRANSACTIONS_TOTAL: &str = "binlog_relay_kafka_transactions_total";
/// Time a Kafka transaction's commit took (the relay reads no binlog
/// meanwhile).
pub const KAFKA_COMMIT_SECONDS: &str = "binlog_relay_kafka_commit_seconds";
/// 1 while the relay publishes through Kafka transactions.
pub const EXACTLY_ONCE: &str = "binlog_relay_exactly_once";
/// DDL statements of included databases published on `<prefix>.schema-changes`.
pub const SCHEMA_CHANGES_TOTAL: &str = "binlog_relay_schema_changes_total";
/// DDL statements the relay could not read: the schema history does not
/// follow them (a warning names each).
pub const DDL_UNREADABLE_TOTAL: &str = "binlog_relay_ddl_unreadable_total";
