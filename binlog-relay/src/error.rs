//! The relay's one error type.
//!
//! # Transient vs definite
//! [`Error::kind`] splits errors the way the run loop needs them:
//! a *transient* error (the server or the broker went away, a delivery timed
//! out, a lock or a connection limit was in the way) is retried by
//! reconnecting and resuming from the last checkpoint; a *definite* error
//! (bad configuration or credentials, a server that is not set up for row
//! replication, a schema mismatch, a purged position) stops the relay,
//! because retrying would only repeat it or, worse, emit wrong data.
//!
//! Which MySQL errors are which is not decided here: server error numbers
//! (from `mysql_async` and `sqlx` alike) and `sqlx` errors go through the
//! workspace's one classification, [`common::error`], which the cache-syncer
//! uses too.

use common::error::{ErrorKind, mysql_code_kind, sqlx_kind};

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
    /// Opening the query pool failed.
    #[error(transparent)]
    Db(#[from] common::db::DbError),
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
    /// This relay no longer leads its logical name (`ha`): another relay
    /// took the lease, or raised the epoch since. Never retried.
    #[error("no longer the leader: {0}")]
    Fenced(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Whether reconnecting and resuming from the checkpoint may succeed
    /// (see the module docs).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Mysql(e) => mysql_async_kind(e),
            Error::Sql(e) => sqlx_kind(e),
            Error::Db(e) => e.kind(),
            Error::Stream(_) | Error::Kafka(_) | Error::Delivery(_) => ErrorKind::Transient,
            Error::Config(_)
            | Error::Position(_)
            | Error::Preflight(_)
            | Error::Event(_)
            | Error::Decode { .. }
            | Error::SchemaMismatch { .. }
            | Error::Checkpoint { .. }
            | Error::Fenced(_)
            | Error::BadStart(_)
            | Error::Snapshot(_)
            | Error::Io(_) => ErrorKind::Definite,
        }
    }

    /// `kind() == Transient`: the run loop retries this error.
    pub fn is_transient(&self) -> bool {
        self.kind() == ErrorKind::Transient
    }

    /// A short, bounded label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Error::Config(_) => "config",
            Error::Position(_) => "position",
            Error::Preflight(_) => "preflight",
            Error::Mysql(_) | Error::Sql(_) | Error::Db(_) => "mysql",
            Error::Stream(_) => "stream",
            Error::Event(_) => "event",
            Error::Decode { .. } => "decode",
            Error::SchemaMismatch { .. } => "schema",
            Error::Kafka(_) | Error::Delivery(_) => "kafka",
            Error::Checkpoint { .. } => "checkpoint",
            Error::BadStart(_) => "start",
            Error::Snapshot(_) => "snapshot",
            Error::Fenced(_) => "fenced",
            Error::Io(_) => "io",
        }
    }
}

/// A `mysql_async` error (the binlog and snapshot connections): a broken
/// connection or a driver that lost track of it is transient, a server
/// error goes by its number.
fn mysql_async_kind(e: &mysql_async::Error) -> ErrorKind {
    match e {
        mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => ErrorKind::Transient,
        mysql_async::Error::Server(s) => mysql_code_kind(s.code),
        mysql_async::Error::Other(_) | mysql_async::Error::Url(_) => ErrorKind::Definite,
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

    fn server(code: u16) -> Error {
        Error::Mysql(mysql_async::Error::Server(mysql_async::ServerError {
            code,
            message: "test".into(),
            state: "HY000".into(),
        }))
    }

    #[test]
    fn a_refused_login_or_a_missing_database_stops_the_relay() {
        // 1045 bad password, 1044 no access to the database, 1049 unknown
        // database: the binlog or snapshot connection is refused the same
        // way after every reconnect.
        for code in [1045, 1044, 1049] {
            assert_eq!(server(code).kind(), ErrorKind::Definite, "{code}");
            assert!(!server(code).is_transient(), "{code}");
        }
    }

    #[test]
    fn a_lost_connection_a_lock_or_a_failover_is_retried() {
        for code in [1040, 1053, 1205, 1213, 1290, 1836, 1927] {
            assert_eq!(server(code).kind(), ErrorKind::Transient, "{code}");
        }
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let io = Error::Mysql(mysql_async::Error::Io(mysql_async::IoError::Io(reset)));
        assert_eq!(io.kind(), ErrorKind::Transient);
        assert_eq!(
            Error::Sql(sqlx::Error::PoolTimedOut).kind(),
            ErrorKind::Transient
        );
    }

    #[test]
    fn a_purged_position_stops_the_relay() {
        assert_eq!(server(1236).kind(), ErrorKind::Definite);
        let refused = stream_error(mysql_async::Error::Server(mysql_async::ServerError {
            code: 1236,
            message: "Could not find first log file name in binary log index file".into(),
            state: "HY000".into(),
        }));
        assert!(matches!(refused, Error::BadStart(_)), "{refused}");
        assert_eq!(refused.kind(), ErrorKind::Definite);
    }

    #[test]
    fn a_pool_that_cannot_connect_is_classed_by_the_shared_rules() {
        let down = common::db::DbError::Connect(sqlx::Error::PoolTimedOut);
        assert_eq!(Error::Db(down).kind(), ErrorKind::Transient);
        let url = common::db::DbError::Url(sqlx::Error::Configuration("bad url".into()));
        assert_eq!(Error::Db(url).kind(), ErrorKind::Definite);
        let tls = sqlx::Error::Tls("server does not support TLS".into());
        assert_eq!(Error::Sql(tls).kind(), ErrorKind::Definite);
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
