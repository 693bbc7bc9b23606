//! The Redis side of the read path: an optional, self-healing connection.
//!
//! Services only *read* what the cache-syncer writes (DESIGN §5); the one
//! exception is the user profile key, which user-service fills cache-aside.
//! Redis is never required: when it is down, slow or not yet connected,
//! every call here returns `None` within `timeout` and the caller reads
//! MySQL instead. The first connection is attempted at start-up; if it
//! fails a background task keeps trying, and once connected the
//! `ConnectionManager` reconnects by itself.
//!
//! (The same file lives in user-, relation- and count-service: binaries may
//! not depend on each other and `common` has no Redis dependency.)

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::redis_conn::Redis;
use secrecy::{ExposeSecret, SecretString};

/// A Redis connection that may not exist (yet).
#[derive(Clone)]
pub struct RedisCache {
    conn: Arc<OnceLock<Redis>>,
    timeout: Duration,
    errors_metric: &'static str,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache")
            .field("connected", &self.conn.get().is_some())
            .finish()
    }
}

impl RedisCache {
    /// Connects to `url` (a single server, or a Redis Cluster when
    /// `cluster` is set or `url` lists several seed nodes), waiting at most
    /// `timeout` × 10 for the first connection; keeps trying in the
    /// background when that fails. `errors_metric` counts failed calls.
    pub async fn connect(
        url: &SecretString,
        cluster: bool,
        timeout: Duration,
        errors_metric: &'static str,
    ) -> Self {
        let cache = Self {
            conn: Arc::new(OnceLock::new()),
            timeout,
            errors_metric,
        };
        let url = url.expose_secret().to_owned();
        if !common::redis_conn::is_cluster_url(&url)
            && !cluster
            && let Err(e) = redis::Client::open(url.as_str())
        {
            tracing::warn!(error = %e, "invalid redis url; reads go to mysql");
            return cache;
        }
        let open = move || {
            let url = url.clone();
            async move {
                common::redis_conn::connect(
                    &url,
                    cluster,
                    timeout.max(Duration::from_millis(500)),
                    timeout,
                )
                .await
            }
        };
        let first =
            tokio::time::timeout(timeout.max(Duration::from_millis(100)) * 10, open()).await;
        match first {
            Ok(Ok(conn)) => {
                let _ = cache.conn.set(conn);
            }
            _ => {
                tracing::warn!("redis not reachable at start-up; reading mysql until it is");
                let slot = cache.conn.clone();
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        if let Ok(conn) = open().await {
                            let _ = slot.set(conn);
                            tracing::info!("redis connected");
                            return;
                        }
                    }
                });
            }
        }
        cache
    }

    /// A cache that never answers (reads always go to MySQL).
    pub fn disabled(errors_metric: &'static str) -> Self {
        Self {
            conn: Arc::new(OnceLock::new()),
            timeout: Duration::ZERO,
            errors_metric,
        }
    }

    /// Runs `op` on the connection; `None` when not connected, on error or on timeout.
    pub async fn run<T, F, Fut>(&self, op: F) -> Option<T>
    where
        F: FnOnce(Redis) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.conn.get()?.clone();
        match tokio::time::timeout(self.timeout, op(conn)).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                metrics::counter!(self.errors_metric).increment(1);
                tracing::debug!(error = %e, "redis call failed; falling back to mysql");
                None
            }
            Err(_) => {
                metrics::counter!(self.errors_metric).increment(1);
                tracing::debug!("redis call timed out; falling back to mysql");
                None
            }
        }
    }
}
