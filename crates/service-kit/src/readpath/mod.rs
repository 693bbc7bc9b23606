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

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::settings::ServiceCommon;
pub use crate::store::StoreError;

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
    pub ttl: Duration,
    pub reads_metric: &'static str,
}

/// The in-process read cache in front of Redis and MySQL
/// (`<PREFIX>_CACHE__CAPACITY`, `…__TTL`, `…__REDIS_TIMEOUT`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CacheSettings {
    /// Entries kept per cache.
    pub capacity: u64,
    /// Lifetime of a cached answer (counters, is_follow, first pages).
    #[serde(with = "common::config::duration")]
    pub ttl: Duration,
    /// Budget of one Redis call; past it the read falls through to MySQL.
    #[serde(with = "common::config::duration")]
    pub redis_timeout: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            capacity: 100_000,
            ttl: Duration::from_secs(1),
            redis_timeout: Duration::from_millis(100),
        }
    }
}

/// The metric names a service's read path records under.
#[derive(Debug, Clone, Copy)]
pub struct ReadMetrics {
    /// The service's `*_reads_total` counter.
    pub reads: &'static str,
    /// The service's `*_redis_errors_total` counter.
    pub redis_errors: &'static str,
}

impl ReadMetrics {
    pub const fn new(reads: &'static str, redis_errors: &'static str) -> Self {
        Self {
            reads,
            redis_errors,
        }
    }
}

impl Layers {
    /// Connects Redis (lazily: a service starts while Redis is down and
    /// reads from MySQL) with the service's Redis settings and builds the
    /// layers over `pool`: the one prologue every service's `connect`
    /// shares.
    pub async fn connect(
        pool: sqlx::MySqlPool,
        service: &ServiceCommon,
        cache: &CacheSettings,
        metrics: ReadMetrics,
    ) -> anyhow::Result<Self> {
        let url = service.redis.resolve_url(service.dev)?;
        let redis = redis_cache::RedisCache::connect(
            &url,
            service.redis.cluster,
            cache.redis_timeout,
            metrics.redis_errors,
        )
        .await;
        Ok(Self {
            pool,
            redis,
            keys: service.redis.keys(),
            capacity: cache.capacity,
            ttl: cache.ttl,
            reads_metric: metrics.reads,
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

/// Result alias of the read path.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
