//! Errors of the syncer, split into transient (retry without committing) and
//! definite (the message itself is bad: dead-letter it).

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

impl Error {
    /// Whether retrying the same work later can succeed (server down,
    /// timeout) rather than the input being bad.
    pub fn is_transient(&self) -> bool {
        !matches!(self, Error::Poison(_) | Error::Config(_))
    }
}
