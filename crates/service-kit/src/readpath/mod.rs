//! The services' shared read path: local cache (moka, coalesced misses) →
//! Redis (the cache-syncer's layout) → MySQL. Used by user-, relation- and
//! count-service; the services never write what the syncer owns.
//!
//! # Layout
//! - [`redis_cache`]: a Redis handle with a per-call time budget; Redis down
//!   or slow means "no answer", and the caller reads MySQL.
//! - [`counts`]: counters from the hash buckets, else the `counter` table.
//! - [`follow_check`]: IsFollow from the bloom filter and following ZSETs,
//!   confirmed in MySQL.
//! - [`consistency`]: the read-your-writes barrier (wait for the syncer's
//!   applied watermark to pass a write's token, else read MySQL).

use std::sync::Arc;

pub mod consistency;
pub mod counts;
pub mod follow_check;
pub mod redis_cache;

/// What every reader of a service shares: the pool, the Redis handle and
/// key layout, the local cache's size and lifetime, and the service's
/// `*_reads_total` metric. Builds the readers the same way everywhere.
#[derive(Clone)]
pub struct Layers {
    pub pool: sqlx::MySqlPool,
    pub redis: redis_cache::RedisCache,
    pub keys: common::keys::Keys,
    pub capacity: u64,
    pub ttl: std::time::Duration,
    pub reads_metric: &'static str,
}

/// What [`Layers::connect`] needs besides the MySQL pool: the Redis
/// settings, the local cache's size and lifetime, and the service's metric
/// names.
pub struct LayerSettings<'a> {
    pub dev: bool,
    pub redis: &'a common::config::RedisSettings,
    pub redis_timeout: std::time::Duration,
    pub capacity: u64,
    pub ttl: std::time::Duration,
    /// The service's `*_reads_total` counter.
    pub reads_metric: &'static str,
    /// The service's `*_redis_errors_total` counter.
    pub redis_errors_metric: &'static str,
}

impl Layers {
    /// Connects Redis (lazily: a service starts while Redis is down and
    /// reads from MySQL) and builds the layers over `pool`: the one
    /// prologue every service's `connect` shares.
    pub async fn connect(pool: sqlx::MySqlPool, s: LayerSettings<'_>) -> anyhow::Result<Self> {
        let url = s.redis.resolve_url(s.dev)?;
        let redis =
            redis_cache::RedisCache::connect(&url, s.redis_timeout, s.redis_errors_metric).await;
        Ok(Self {
            pool,
            redis,
            keys: s.redis.keys(),
            capacity: s.capacity,
            ttl: s.ttl,
            reads_metric: s.reads_metric,
        })
    }

    pub fn counts(&self) -> counts::CountReader {
        counts::CountReader::new(
            self.pool.clone(),
            self.redis.clone(),
            self.keys.clone(),
            self.capacity,
            self.ttl,
            self.reads_metric,
        )
    }

    pub fn follows(&self) -> follow_check::FollowChecker {
        follow_check::FollowChecker::new(
            self.pool.clone(),
            self.redis.clone(),
            self.keys.clone(),
            self.capacity,
            self.ttl,
            self.reads_metric,
        )
    }

    /// The read-your-writes barrier over the same Redis and pool.
    pub fn barrier(&self, settings: &common::config::ConsistencySettings) -> consistency::Barrier {
        consistency::Barrier::new(
            self.redis.clone(),
            &self.keys,
            self.pool.clone(),
            settings.wait,
            settings.poll,
        )
    }
}

/// A read failed in MySQL (shared, because one coalesced load hands its
/// failure to every waiter).
#[derive(Debug, Clone, thiserror::Error)]
#[error("database error")]
pub struct ReadError(#[source] pub Arc<sqlx::Error>);

impl From<sqlx::Error> for ReadError {
    fn from(e: sqlx::Error) -> Self {
        ReadError(Arc::new(e))
    }
}

impl From<Arc<sqlx::Error>> for ReadError {
    fn from(e: Arc<sqlx::Error>) -> Self {
        ReadError(e)
    }
}

/// Result alias of the read path.
pub type Result<T, E = ReadError> = std::result::Result<T, E>;
