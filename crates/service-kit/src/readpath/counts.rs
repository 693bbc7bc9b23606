//! Counter reads: local cache (moka) → Redis hash buckets → MySQL `counter`.
//!
//! # Layers
//! - **local**: one entry per user holding both follow counters, kept for
//!   `cache.ttl`. A single-user miss goes through `try_get_with`, so any
//!   number of concurrent misses on one user cost one load.
//! - **Redis**: `HGET` of `keys.counter(kind, owner)` (DESIGN §5), pipelined
//!   for a batch. A user with at least one field is a Redis hit and an
//!   absent kind beside it is 0: the syncer writes every counter row it
//!   streams (and `rebuild` every row there is), so the absent kind has no
//!   row. A user with no field at all may just not be synced yet: MySQL
//!   decides. (After Redis is wiped, run `cache-syncer rebuild`.)
//! - **MySQL**: `counter` rows (absent row = 0); the source of truth, and
//!   correct on its own when Redis is empty or down.
//!
//! [`ReadMode`] picks the layers: `Cached` all three; `Synced` (a
//! consistency token the syncer's watermark covers) Redis then MySQL,
//! skipping the local entry; `Primary` MySQL only.
//!
//! Unknown users simply count 0 and are cached like anyone else, so a flood
//! of unknown ids reaches MySQL at most once per id per TTL.
//!
//! (The same file lives in user-, relation- and count-service.)

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::keys::{CounterKind, Keys};
use futures::FutureExt;
use moka::future::Cache;
use sqlx::MySqlPool;

use super::Result;
use super::consistency::ReadMode;
use super::redis_cache::RedisCache;

/// The two follow counters of one user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserCounts {
    /// How many users this user follows.
    pub following: u64,
    /// How many users follow this user.
    pub followers: u64,
}

impl UserCounts {
    /// The value of one kind.
    pub fn get(&self, kind: CounterKind) -> u64 {
        match kind {
            CounterKind::Following => self.following,
            CounterKind::Followers => self.followers,
        }
    }

    fn set(&mut self, kind: CounterKind, value: u64) {
        match kind {
            CounterKind::Following => self.following = value,
            CounterKind::Followers => self.followers = value,
        }
    }
}

const KINDS: [CounterKind; 2] = [CounterKind::Following, CounterKind::Followers];

/// Reads follow counters through the three layers.
#[derive(Clone)]
pub struct CountReader {
    pool: MySqlPool,
    redis: RedisCache,
    keys: Keys,
    local: Cache<u64, UserCounts>,
    reads_metric: &'static str,
}

impl CountReader {
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
        metrics::counter!(self.reads_metric, "what" => "counts", "layer" => layer)
            .increment(n as u64);
    }

    /// The counters of one user.
    pub async fn get(&self, owner: u64, mode: ReadMode) -> Result<UserCounts> {
        if mode != ReadMode::Cached {
            let mut loaded = match mode {
                ReadMode::Primary => self.load_mysql(&[owner]).await?,
                _ => self.load(&[owner]).await?,
            };
            let counts = loaded.remove(&owner).unwrap_or_default();
            self.local.insert(owner, counts).await;
            return Ok(counts);
        }
        if let Some(c) = self.local.get(&owner).await {
            self.count_read("local", 1);
            return Ok(c);
        }
        let counts = self
            .local
            .try_get_with(owner, async move {
                let mut loaded = self.load(&[owner]).await?;
                Ok::<_, crate::store::StoreError>(loaded.remove(&owner).unwrap_or_default())
            })
            .await
            .map_err(Arc::unwrap_or_clone)?;
        Ok(counts)
    }

    /// The counters of many users (duplicates allowed); every requested id is in the map.
    ///
    /// Misses are loaded together (one Redis pipeline, one MySQL `IN` query)
    /// yet still coalesced per user: each miss goes through `try_get_with`
    /// with an init that awaits the shared batch load, so a user already
    /// being loaded by a concurrent call joins that load instead.
    pub async fn get_many(
        &self,
        owners: &[u64],
        mode: ReadMode,
    ) -> Result<HashMap<u64, UserCounts>> {
        let mut out = HashMap::with_capacity(owners.len());
        let mut missing = Vec::new();
        for &o in owners {
            if out.contains_key(&o) || missing.contains(&o) {
                continue;
            }
            match (mode, self.local.get(&o).await) {
                (ReadMode::Cached, Some(c)) => {
                    out.insert(o, c);
                }
                _ => missing.push(o),
            }
        }
        self.count_read("local", out.len());
        if missing.is_empty() {
            return Ok(out);
        }
        if mode != ReadMode::Cached {
            // Not through the coalescing cache: a load that started before
            // the caller's write became visible must not answer for it.
            let loaded = match mode {
                ReadMode::Primary => self.load_mysql(&missing).await?,
                _ => self.load(&missing).await?,
            };
            for o in missing {
                let c = loaded.get(&o).copied().unwrap_or_default();
                self.local.insert(o, c).await;
                out.insert(o, c);
            }
            return Ok(out);
        }
        let batch = {
            let this = self.clone();
            let keys = missing.clone();
            async move { this.load(&keys).await.map(Arc::new) }
                .boxed()
                .shared()
        };
        let loads = missing.iter().map(|&o| {
            let batch = batch.clone();
            self.local.try_get_with(o, async move {
                let loaded = batch.await?;
                Ok::<_, crate::store::StoreError>(loaded.get(&o).copied().unwrap_or_default())
            })
        });
        let values = futures::future::try_join_all(loads)
            .await
            .map_err(Arc::unwrap_or_clone)?;
        out.extend(missing.into_iter().zip(values));
        Ok(out)
    }

    /// The counters of one user from the cache layers only (the local entry,
    /// then Redis), `None` when neither has them (not synced yet, Redis down
    /// or slow): for a caller with a MySQL source of its own (user-service
    /// reads the `user` row's redundant columns with the profile).
    pub async fn get_cached(&self, owner: u64) -> Option<UserCounts> {
        if let Some(c) = self.local.get(&owner).await {
            self.count_read("local", 1);
            return Some(c);
        }
        let (mut found, _) = self.load_redis(&[owner]).await;
        let c = found.remove(&owner)?;
        self.local.insert(owner, c).await;
        Some(c)
    }

    /// [`get_cached`](Self::get_cached) for many users at once (one Redis
    /// pipeline for the local misses): the users found, absent the others.
    pub async fn get_many_cached(&self, owners: &[u64]) -> HashMap<u64, UserCounts> {
        let mut out = HashMap::with_capacity(owners.len());
        let mut missing = Vec::new();
        for &o in owners {
            if out.contains_key(&o) || missing.contains(&o) {
                continue;
            }
            match self.local.get(&o).await {
                Some(c) => {
                    out.insert(o, c);
                }
                None => missing.push(o),
            }
        }
        self.count_read("local", out.len());
        if !missing.is_empty() {
            let (found, _) = self.load_redis(&missing).await;
            for (&o, &c) in &found {
                self.local.insert(o, c).await;
            }
            out.extend(found);
        }
        out
    }

    /// Forgets the local entry of `owner` (after this process changed it).
    pub async fn invalidate(&self, owner: u64) {
        self.local.invalidate(&owner).await;
    }

    /// Redis, then MySQL for whatever Redis could not answer.
    async fn load(&self, owners: &[u64]) -> Result<HashMap<u64, UserCounts>> {
        let (mut out, missing) = self.load_redis(owners).await;
        if !missing.is_empty() {
            out.extend(self.load_mysql(&missing).await?);
        }
        Ok(out)
    }

    /// What Redis holds of `owners`' counters, and the owners it could not
    /// answer for (not synced yet, or Redis down or slow: all of them).
    async fn load_redis(&self, owners: &[u64]) -> (HashMap<u64, UserCounts>, Vec<u64>) {
        let mut out = HashMap::with_capacity(owners.len());
        let mut cmds = Vec::with_capacity(owners.len() * KINDS.len());
        for &o in owners {
            for kind in KINDS {
                let slot = self.keys.counter(kind.code(), o);
                cmds.push(redis::Cmd::hget(slot.key, slot.field));
            }
        }
        // One pipeline on a single Redis; one per slot on a cluster.
        let from_redis: Option<Vec<Option<u64>>> = self
            .redis
            .run(|conn| async move { conn.query_each(cmds).await })
            .await;
        let mut missing = Vec::new();
        match from_redis {
            Some(values) if values.len() == owners.len() * KINDS.len() => {
                for (&o, pair) in owners.iter().zip(values.chunks(KINDS.len())) {
                    // The syncer writes every counter row it streams, so once
                    // one kind of a user is in Redis an absent kind is a row
                    // that does not exist: 0. A user with no field at all
                    // may simply not be synced yet: MySQL decides.
                    if pair.iter().any(Option::is_some) {
                        out.insert(
                            o,
                            UserCounts {
                                following: pair[0].unwrap_or(0),
                                followers: pair[1].unwrap_or(0),
                            },
                        );
                    } else {
                        missing.push(o);
                    }
                }
            }
            _ => missing.extend_from_slice(owners),
        }
        self.count_read("redis", out.len());
        (out, missing)
    }

    /// The `counter` rows of `owners`; users without rows are absent (0).
    async fn load_mysql(&self, owners: &[u64]) -> Result<HashMap<u64, UserCounts>> {
        let mut out: HashMap<u64, UserCounts> = HashMap::with_capacity(owners.len());
        for chunk in owners.chunks(1000) {
            let sql = format!(
                "SELECT owner_id, kind, value FROM counter WHERE kind IN (1, 2) AND owner_id IN ({})",
                placeholders(chunk.len())
            );
            let mut q = sqlx::query_as::<_, (u64, u8, i64)>(sqlx::AssertSqlSafe(sql));
            for &o in chunk {
                q = q.bind(o);
            }
            for (owner, kind, value) in q.fetch_all(&self.pool).await? {
                if let Some(kind) = CounterKind::from_code(u64::from(kind)) {
                    out.entry(owner)
                        .or_default()
                        .set(kind, u64::try_from(value).unwrap_or(0));
                }
            }
        }
        self.count_read("mysql", owners.len());
        Ok(out)
    }
}

/// `?, ?, ?` with `n` placeholders (n ≥ 1).
pub fn placeholders(n: usize) -> String {
    let mut s = String::with_capacity(n * 3);
    for i in 0..n {
        if i > 0 {
            s.push_str(", ");
        }
        s.push('?');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_comma_separated() {
        assert_eq!(placeholders(1), "?");
        assert_eq!(placeholders(3), "?, ?, ?");
    }
}
