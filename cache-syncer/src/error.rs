//! Errors of the syncer, split into transient (retry without committing, as
//! long as it takes) and definite (the input or the target cannot take this
//! change: retried a bounded number of times, then the event is
//! dead-lettered; see `consumer`).

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

/// MySQL errors that clear by themselves: lock wait timeout, deadlock, too
/// many connections, server shutting down or read-only during a failover,
/// lost connection.
const MYSQL_TRANSIENT_CODES: &[u16] = &[1205, 1213, 1040, 1053, 1290, 1836, 2002, 2006, 2013];

impl Error {
    /// Whether retrying the same work later can succeed (server down,
    /// timeout, lock) rather than this change being impossible to apply
    /// (a Redis key of the wrong type, a value out of a column's range, a
    /// dropped column).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Poison(_) | Error::Config(_) => false,
            Error::Redis(e) => redis_is_transient(e),
            Error::Mysql(e) => mysql_is_transient(e),
            // A connect refused for bad credentials or a bad URL does not
            // get better by waiting; a server not answering does.
            Error::Db(common::db::DbError::Connect(e)) => mysql_is_transient(e),
            Error::Db(_) => false,
            Error::Kafka(_) | Error::Other(_) => true,
        }
    }
}

fn redis_is_transient(e: &redis::RedisError) -> bool {
    let clears = e.clone().into_server_errors().is_some_and(|errs| {
        errs.iter()
            .any(|(_, se)| REDIS_TRANSIENT_CODES.contains(&se.code()))
    });
    clears || !matches!(e.retry_method(), redis::RetryMethod::NoRetry)
}

fn mysql_is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .is_some_and(|e| MYSQL_TRANSIENT_CODES.contains(&e.number())),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        _ => false,
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
}
