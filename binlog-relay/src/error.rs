//! The relay's one error type.
//!
//! # Transient vs definite
//! [`Error::is_transient`] splits errors the way the run loop needs them:
//! a *transient* error (the server or the broker went away, a delivery timed
//! out) is retried by reconnecting and resuming from the last checkpoint; a
//! *definite* error (bad configuration, a server that is not set up for row
//! replication, a schema mismatch, a purged position) stops the relay, because
//! retrying would only repeat it or, worse, emit wrong data.

use crate::position::PositionParseError;

/// Result alias of the relay.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can stop or interrupt the relay.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] common::config::ConfigError),
    #[error(transparent)]
    Position(#[from] PositionParseError),
    /// One line per problem found by the preflight checks.
    #[error("the source server is not ready for the relay:\n  {}", .0.join("\n  "))]
    Preflight(Vec<String>),
    #[error("mysql: {0}")]
    Mysql(#[from] mysql_async::Error),
    #[error("mysql: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("binlog stream: {0}")]
    Stream(String),
    /// An event the relay must not pass over and cannot read.
    #[error("{0}")]
    Event(String),
    #[error("decode {table}: {reason}")]
    Decode { table: String, reason: String },
    /// The row event does not fit the known table schema.
    #[error("schema mismatch on {table}, refusing to guess column names:\n{diff}")]
    SchemaMismatch { table: String, diff: String },
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("kafka delivery failed: {0}")]
    Delivery(String),
    #[error("checkpoint {path}: {source}")]
    Checkpoint {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The requested start position cannot be honoured.
    #[error("cannot start there: {0}")]
    BadStart(String),
    #[error("snapshot: {0}")]
    Snapshot(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Whether reconnecting and resuming from the checkpoint may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Mysql(e) => match e {
                mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => true,
                // 1236: fatal binlog read error (purged position, bad offset): definite.
                mysql_async::Error::Server(s) => s.code != 1236 && s.code != 1045,
                _ => false,
            },
            Error::Sql(e) => matches!(
                e,
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed
            ),
            Error::Stream(_) | Error::Kafka(_) | Error::Delivery(_) => true,
            Error::Config(_)
            | Error::Position(_)
            | Error::Preflight(_)
            | Error::Event(_)
            | Error::Decode { .. }
            | Error::SchemaMismatch { .. }
            | Error::Checkpoint { .. }
            | Error::BadStart(_)
            | Error::Snapshot(_)
            | Error::Io(_) => false,
        }
    }

    /// A short, bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Config(_) => "config",
            Error::Position(_) => "position",
            Error::Preflight(_) => "preflight",
            Error::Mysql(_) | Error::Sql(_) => "mysql",
            Error::Stream(_) => "stream",
            Error::Event(_) => "event",
            Error::Decode { .. } => "decode",
            Error::SchemaMismatch { .. } => "schema",
            Error::Kafka(_) | Error::Delivery(_) => "kafka",
            Error::Checkpoint { .. } => "checkpoint",
            Error::BadStart(_) => "start",
            Error::Snapshot(_) => "snapshot",
            Error::Io(_) => "io",
        }
    }
}

/// A binlog stream error: a refused position (1236) is a bad start point,
/// anything else a MySQL error.
pub(crate) fn stream_error(e: mysql_async::Error) -> Error {
    match &e {
        mysql_async::Error::Server(s) if s.code == 1236 => Error::BadStart(format!(
            "the server refused the binlog position: {}",
            s.message
        )),
        _ => Error::Mysql(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_trouble_is_retried_and_bad_data_is_not() {
        assert!(Error::Delivery("timed out".into()).is_transient());
        assert!(Error::Stream("eof".into()).is_transient());
        assert!(
            !Error::SchemaMismatch {
                table: "a.b".into(),
                diff: String::new()
            }
            .is_transient()
        );
        assert!(!Error::Preflight(vec!["x".into()]).is_transient());
        assert!(!Error::BadStart("purged".into()).is_transient());
    }

    #[test]
    fn preflight_errors_print_one_line_per_problem() {
        let e = Error::Preflight(vec![
            "binlog_format is MIXED".into(),
            "log_bin is OFF".into(),
        ]);
        let text = e.to_string();
        assert_eq!(text.lines().count(), 3, "{text}");
    }
}
