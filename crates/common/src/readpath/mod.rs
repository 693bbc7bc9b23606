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
