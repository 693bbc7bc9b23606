//! The gateway's edge cache: anonymous profile reads answered without a
//! gRPC call.
//!
//! `GET /v1/users/{id}` with neither a bearer token nor a consistency token
//! is the same answer for every client (no `is_follow`, no wait), so the
//! gateway keeps its rendered JSON body for `edge_cache_ttl` (default
//! 200 ms). Concurrent misses on one id share one GetUser call, like the
//! services' own local caches. Only successful answers are kept: errors
//! (404 included; user-service caches those itself) are passed through every
//! time.
//!
//! Staleness: an anonymous read may be up to `edge_cache_ttl` older than
//! what user-service would answer, which itself may be up to its local TTL
//! behind Redis (DESIGN §6). A read that needs the newest state carries its
//! write's consistency token, and those never touch this cache; neither do
//! reads with a bearer token (their `is_follow` is per viewer). A TTL of 0
//! turns the cache off.
//!
//! `gateway_edge_cache_total{result}` counts `hit`s and `miss`es; a miss is
//! every caller that found no entry, including those that then waited for
//! the one shared load.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use moka::future::Cache;

use crate::error::ApiError;
use crate::metrics::EDGE_CACHE_TOTAL;

/// Rendered anonymous profiles by user id.
#[derive(Clone)]
pub struct EdgeCache {
    profiles: Option<Cache<u64, Bytes>>,
}

impl EdgeCache {
    /// A cache of at most `capacity` profiles kept `ttl` each; `ttl` 0 = off.
    pub fn new(ttl: Duration, capacity: u64) -> Self {
        let profiles = (!ttl.is_zero()).then(|| {
            Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build()
        });
        Self { profiles }
    }

    /// Whether the cache is on.
    pub fn enabled(&self) -> bool {
        self.profiles.is_some()
    }

    /// The body of `id`'s anonymous profile: kept, or made by `load` (one
    /// `load` per id however many callers miss at once). With the cache off,
    /// `load` runs every time.
    pub async fn profile<F>(&self, id: u64, load: F) -> Result<Bytes, ApiError>
    where
        F: Future<Output = Result<Bytes, ApiError>>,
    {
        let Some(cache) = &self.profiles else {
            return load.await;
        };
        if let Some(body) = cache.get(&id).await {
            metrics::counter!(EDGE_CACHE_TOTAL, "result" => "hit").increment(1);
            return Ok(body);
        }
        metrics::counter!(EDGE_CACHE_TOTAL, "result" => "miss").increment(1);
        cache
            .try_get_with(id, load)
            .await
            .map_err(Arc::unwrap_or_clone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    async fn body(s: &'static str) -> Result<Bytes, ApiError> {
        Ok(Bytes::from_static(s.as_bytes()))
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_load_and_hits_load_nothing() {
        let cache = EdgeCache::new(Duration::from_secs(60), 100);
        let calls = AtomicUsize::new(0);
        let reads = (0..50).map(|_| {
            cache.profile(7, async {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(Bytes::from_static(b"{\"id\":7}"))
            })
        });
        let bodies = futures::future::join_all(reads).await;
        assert!(bodies.iter().all(|b| b.as_ref().unwrap() == "{\"id\":7}"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let again = cache.profile(7, body("other")).await.unwrap();
        assert_eq!(again, "{\"id\":7}");
    }

    #[tokio::test]
    async fn errors_are_not_kept_and_a_zero_ttl_turns_the_cache_off() {
        let cache = EdgeCache::new(Duration::from_secs(60), 100);
        let err = cache
            .profile(8, async { Err(ApiError::not_found("user 8 not found")) })
            .await
            .unwrap_err();
        assert_eq!(err.status, axum::http::StatusCode::NOT_FOUND);
        assert_eq!(cache.profile(8, body("now")).await.unwrap(), "now");

        let off = EdgeCache::new(Duration::ZERO, 100);
        assert!(!off.enabled());
        assert_eq!(off.profile(9, body("a")).await.unwrap(), "a");
        assert_eq!(off.profile(9, body("b")).await.unwrap(), "b");
    }

    #[tokio::test]
    async fn entries_expire_after_the_ttl() {
        let cache = EdgeCache::new(Duration::from_millis(50), 100);
        assert_eq!(cache.profile(1, body("old")).await.unwrap(), "old");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let got = cache.profile(1, body("new")).await.unwrap();
            if got == "new" {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "never expired");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
