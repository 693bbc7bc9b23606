//! Errors of the syncer, split by [`Error::kind`] into transient (retry
//! without committing, as long as it takes) and definite (the input or the
//! target cannot take this change: retried a bounded number of times, then
//! the event is dead-lettered; see `consumer`).
//!
//! MySQL errors (`sqlx` and pool connects) are classed by the workspace's
//! one classification, [`common::error`], which the relay uses too; Redis
//! replies, which only the syncer meets, are classed here.

use common::error::{ErrorKind, sqlx_kind};

/// Result alias of the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while syncing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The event cannot be turned into effects (bad JSON, missing or
    /// ill-typed columns): it goes to the DLQ.
    #[error("poison message: {0}")]
    Poison(String),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("mysql: {0}")]
    Mysql(#[from] sqlx::Error),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Config(#[from] common::config::ConfigError),
    #[error(transparent)]
    Db(#[from] common::db::DbError),
    #[error("{0}")]
    Other(String),
}

/// Redis replies that clear by themselves (memory freed, a script ended,
/// a failover finished).
const REDIS_TRANSIENT_CODES: &[&str] = &[
    "OOM",
    "BUSY",
    "LOADING",
    "MASTERDOWN",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "READONLY",
];

impl Error {
    /// Whether retrying the same work later can succeed (server down,
    /// timeout, lock) rather than this change being impossible to apply
    /// (a Redis key of the wrong type, a value out of a column's range, a
    /// dropped column).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Poison(_) | Error::Config(_) => ErrorKind::Definite,
            Error::Redis(e) => redis_kind(e),
            Error::Mysql(e) => sqlx_kind(e),
            // A connect refused for bad credentials or a bad URL does not
            // get better by waiting; a server not answering does.
            Error::Db(e) => e.kind(),
            Error::Kafka(_) | Error::Other(_) => ErrorKind::Transient,
        }
    }

    /// `kind() == Transient`: retried without a bound.
    pub fn is_transient(&self) -> bool {
        self.kind() == ErrorKind::Transient
    }
}

fn redis_kind(e: &redis::RedisError) -> ErrorKind {
    let clears = e.clone().into_server_errors().is_some_and(|errs| {
        errs.iter()
            .any(|(_, se)| REDIS_TRANSIENT_CODES.contains(&se.code()))
    });
    if clears || !matches!(e.retry_method(), redis::RetryMethod::NoRetry) {
        ErrorKind::Transient
    } else {
        ErrorKind::Definite
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_trouble_is_transient_and_a_wrong_type_is_not() {
        let io =
            redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(Error::Redis(io).is_transient());
        assert!(Error::Mysql(sqlx::Error::PoolTimedOut).is_transient());
        assert!(!Error::Poison("bad json".into()).is_transient());
        let wrong = redis::RedisError::from((redis::ErrorKind::UnexpectedReturnType, "wrong type"));
        assert!(!Error::Redis(wrong).is_transient());
        let down = common::db::DbError::Connect(sqlx::Error::PoolTimedOut);
        assert!(Error::Db(down).is_transient());
        let url = common::db::DbError::Url(sqlx::Error::Configuration("bad url".into()));
        assert!(!Error::Db(url).is_transient());
    }

    #[test]
    fn a_bad_password_or_url_at_connect_is_definite_and_a_server_not_answering_is_not() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let down = common::db::DbError::Connect(sqlx::Error::Io(refused));
        assert_eq!(Error::Db(down).kind(), ErrorKind::Transient);
        let migrate = common::db::DbError::Migrate(sqlx::migrate::MigrateError::Dirty(3));
        assert_eq!(Error::Db(migrate).kind(), ErrorKind::Definite);
        assert_eq!(
            Error::Mysql(sqlx::Error::WorkerCrashed).kind(),
            ErrorKind::Transient
        );
        assert_eq!(
            Error::Mysql(sqlx::Error::ColumnNotFound("x".into())).kind(),
            ErrorKind::Definite
        );
    }

    #[test]
    fn a_tls_or_protocol_failure_is_definite_as_in_the_relay() {
        // One classification for both binaries: the syncer used to retry
        // these without a bound, the relay stopped on them.
        let tls = sqlx::Error::Tls("server does not support TLS".into());
        assert_eq!(Error::Mysql(tls).kind(), ErrorKind::Definite);
        let plugin = sqlx::Error::Protocol("unknown authentication plugin: x".into());
        assert_eq!(Error::Mysql(plugin).kind(), ErrorKind::Definite);
    }
}
