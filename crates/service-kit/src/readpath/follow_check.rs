//! IsFollow reads: local cache (moka) → Redis bloom filter (a final "no")
//! → Redis following ZSET (a "yes") → MySQL.
//!
//! The ZSET can only say *yes*: the syncer caps each ZSET to the newest N
//! entries and may not have run yet, so an absent member is confirmed in
//! MySQL (`follow` row with `deleted_at IS NULL`). A miss on one pair is
//! loaded once however many requests wait for it (`try_get_with`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use common::keys::Keys;
use moka::future::Cache;
use sqlx::MySqlPool;

use super::consistency::ReadMode;
use super::counts::placeholders;
use super::redis_cache::RedisCache;
use super::{Result, StoreError as Error};

/// Answers "does `from` follow `to`?".
#[derive(Clone)]
pub struct FollowChecker {
    pool: MySqlPool,
    redis: RedisCache,
    keys: Keys,
    local: Cache<(u64, u64), bool>,
    reads_metric: &'static str,
}

impl FollowChecker {
    /// `reads_metric` is the crate's `*_reads_total` counter name.
    pub fn new(
        pool: MySqlPool,
        redis: RedisCache,
        keys: Keys,
        capacity: u64,
        ttl: Duration,
        reads_metric: &'static str,
    ) -> Self {
        let local = Cache::builder()
            .max_capacity(capacity)
            .time_to_live(ttl)
            .build();
        Self {
            pool,
            redis,
            keys,
            local,
            reads_metric,
        }
    }

    fn count_read(&self, layer: &'static str, n: usize) {
        metrics::counter!(self.reads_metric, "what" => "is_follow", "layer" => layer)
            .increment(n as u64);
    }

    /// Whether `from` follows `to` (see [`ReadMode`] for the layers read).
    pub async fn is_follow(&self, from: u64, to: u64, mode: ReadMode) -> Result<bool> {
        if mode != ReadMode::Cached {
            let v = match mode {
                ReadMode::Primary => self.load_mysql(from, &[to]).await?.contains(&to),
                _ => self.load(from, to).await?,
            };
            self.local.insert((from, to), v).await;
            return Ok(v);
        }
        if let Some(v) = self.local.get(&(from, to)).await {
            self.count_read("local", 1);
            return Ok(v);
        }
        self.local
            .try_get_with((from, to), self.load(from, to))
            .await
            .map_err(Arc::unwrap_or_clone)
    }

    /// Which of `targets` `from` follows.
    pub async fn is_follow_many(
        &self,
        from: u64,
        targets: &[u64],
        mode: ReadMode,
    ) -> Result<HashMap<u64, bool>> {
        let mut out = HashMap::with_capacity(targets.len());
        let mut missing = Vec::new();
        for &t in targets {
            if out.contains_key(&t) || missing.contains(&t) {
                continue;
            }
            match (mode, self.local.get(&(from, t)).await) {
                (ReadMode::Cached, Some(v)) => {
                    out.insert(t, v);
                }
                _ => missing.push(t),
            }
        }
        if !missing.is_empty() {
            let followed = self.load_mysql(from, &missing).await?;
            for t in missing {
                let v = followed.contains(&t);
                self.local.insert((from, t), v).await;
                out.insert(t, v);
            }
        }
        Ok(out)
    }

    /// Forgets the local answer for a pair (after this process changed it).
    pub async fn invalidate(&self, from: u64, to: u64) {
        self.local.invalidate(&(from, to)).await;
    }

    async fn load(&self, from: u64, to: u64) -> Result<bool> {
        // Bloom filter first: one clear bit is a final "no". The filter only
        // answers once the syncer has created it (EXISTS), so an empty or
        // wiped Redis never turns every answer into "no".
        let bloom_key = self.keys.follow_bloom(from, to);
        let bits: Vec<u64> = self.keys.bloom().positions(from, to).collect();
        let bloom: Option<(bool, Vec<u8>)> = self
            .redis
            .run(|mut conn| async move {
                let mut pipe = redis::pipe();
                pipe.exists(&bloom_key);
                let mut get = redis::cmd("BITFIELD");
                get.arg(&bloom_key);
                for b in &bits {
                    get.arg("GET").arg("u1").arg(*b);
                }
                pipe.add_command(get);
                pipe.query_async(&mut conn).await
            })
            .await;
        if let Some((true, bits)) = bloom
            && bits.contains(&0)
        {
            self.count_read("bloom", 1);
            return Ok(false);
        }
        let key = self.keys.following(from);
        let score: Option<Option<f64>> = self
            .redis
            .run(|mut conn| async move {
                redis::cmd("ZSCORE")
                    .arg(key)
                    .arg(to)
                    .query_async(&mut conn)
                    .await
            })
            .await;
        if let Some(Some(_)) = score {
            self.count_read("redis", 1);
            return Ok(true);
        }
        Ok(self.load_mysql(from, &[to]).await?.contains(&to))
    }

    async fn load_mysql(&self, from: u64, targets: &[u64]) -> Result<HashSet<u64>> {
        let mut out = HashSet::new();
        for chunk in targets.chunks(1000) {
            let sql = format!(
                "SELECT to_id FROM follow WHERE from_id = ? AND deleted_at IS NULL AND to_id IN ({})",
                placeholders(chunk.len())
            );
            let mut q = sqlx::query_scalar::<_, u64>(sqlx::AssertSqlSafe(sql)).bind(from);
            for &t in chunk {
                q = q.bind(t);
            }
            out.extend(q.fetch_all(&self.pool).await.map_err(Error::from)?);
        }
        self.count_read("mysql", targets.len());
        Ok(out)
    }
}
