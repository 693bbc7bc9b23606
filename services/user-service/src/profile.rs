//! User profiles: the cached read path and UpdateProfile.
//!
//! # Read path
//! local cache (moka; `None` = "no such user", kept only `negative_ttl`) →
//! Redis `keys.user_profile(uid)` (JSON; filled here cache-aside, deleted by
//! the cache-syncer whenever the row changes) → MySQL. Concurrent misses on
//! one id share one load (`try_get_with`), so a burst of requests for an
//! unknown id reaches MySQL once per `negative_ttl`.
//!
//! # Counters from the user row
//! The MySQL read takes the row's redundant counter columns
//! (`follow_count`, `follower_count`, kept by the cache-syncer) with the
//! profile, in the same query, and keeps them briefly ([`Profiles::row_counts`]):
//! a profile read that finds no counters in the cache layers (Redis down,
//! or the user not synced yet) answers from that one row instead of a
//! second query on `counter`. The columns trail the `counter` rows by the
//! pipeline's lag, like Redis; once the watermark covers a write's token
//! they include it (the syncer writes them before it records the batch).
//!
//! # Writes
//! UpdateProfile changes the row in one transaction, reads it back in the
//! same transaction and returns it with the commit's GTID. It drops the
//! local entry; it does not touch Redis (the syncer invalidates it from the
//! binlog).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use common::keys::Keys;
use moka::Expiry;
use moka::future::Cache;
use serde::{Deserialize, Serialize};
use sqlx::{Connection, MySqlPool};

use crate::config::CacheSettings;
use crate::error::{Error, Result};
use crate::metrics::{PROFILE_UPDATES_TOTAL, READS_TOTAL};
use service_kit::readpath::counts::UserCounts;
use service_kit::readpath::redis_cache::RedisCache;

/// Longest avatar / background image URL and signature, in characters (the column sizes).
pub const MAX_AVATAR: usize = 1024;
pub const MAX_BACKGROUND: usize = 1024;
pub const MAX_SIGNATURE: usize = 512;

/// A user's public profile (no counters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub id: u64,
    pub username: String,
    pub avatar: String,
    pub background_image: String,
    pub signature: String,
    /// Registration time, milliseconds since the epoch.
    pub created_at_ms: i64,
}

type Row = (u64, String, String, String, String, NaiveDateTime, u64, u64);

/// The profile and the row's redundant counters, in one read.
const SELECT_PROFILE: &str = "SELECT id, username, avatar, background_image, signature, \
     created_at, follow_count, follower_count FROM user WHERE id = ?";

fn from_row(
    (id, username, avatar, background_image, signature, created_at, following, followers): Row,
) -> (Profile, UserCounts) {
    let profile = Profile {
        id,
        username,
        avatar,
        background_image,
        signature,
        created_at_ms: created_at.and_utc().timestamp_millis(),
    };
    (
        profile,
        UserCounts {
            following,
            followers,
        },
    )
}

/// Per-entry lifetime: positive answers `ttl`, "no such user" `negative_ttl`.
struct ProfileExpiry {
    ttl: Duration,
    negative_ttl: Duration,
}

impl Expiry<u64, Option<Arc<Profile>>> for ProfileExpiry {
    fn expire_after_create(
        &self,
        _key: &u64,
        value: &Option<Arc<Profile>>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(if value.is_some() {
            self.ttl
        } else {
            self.negative_ttl
        })
    }
}

/// Which fields an update sets (None = leave as is).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileChange {
    pub avatar: Option<String>,
    pub signature: Option<String>,
    pub background_image: Option<String>,
}

impl ProfileChange {
    /// Checks lengths, and that something is to be changed.
    pub fn validate(&self) -> Result<()> {
        if self.avatar.is_none() && self.signature.is_none() && self.background_image.is_none() {
            return Err(Error::InvalidArgument(
                "nothing to update: set avatar, signature or background_image".into(),
            ));
        }
        let checks = [
            ("avatar", &self.avatar, MAX_AVATAR),
            ("signature", &self.signature, MAX_SIGNATURE),
            ("background_image", &self.background_image, MAX_BACKGROUND),
        ];
        for (name, value, max) in checks {
            let Some(v) = value else { continue };
            if v.chars().count() > max {
                return Err(Error::InvalidArgument(format!(
                    "{name} is longer than {max} characters"
                )));
            }
            // Clients render these fields: no control characters (a
            // terminal escape, a NUL, a line break in an image URL), and
            // images only by http(s) URL, never `javascript:` or `data:`.
            if v.chars().any(char::is_control) {
                return Err(Error::InvalidArgument(format!(
                    "{name} must not contain control characters"
                )));
            }
            if name != "signature" && !v.is_empty() && !is_web_url(v) {
                return Err(Error::InvalidArgument(format!(
                    "{name} must be empty or an http:// or https:// URL"
                )));
            }
        }
        Ok(())
    }
}

/// An absolute http(s) URL with a host (the scheme in any case).
fn is_web_url(v: &str) -> bool {
    let lower = v.get(..8).unwrap_or(v).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &v[8..]
    } else if lower.starts_with("http://") {
        &v[7..]
    } else {
        return false;
    };
    rest.chars()
        .next()
        .is_some_and(|c| !matches!(c, '/' | '?' | '#') && !c.is_whitespace())
        && !v.chars().any(char::is_whitespace)
}

/// Profile reads and updates.
#[derive(Clone)]
pub struct Profiles {
    pool: MySqlPool,
    redis: RedisCache,
    keys: Keys,
    local: Cache<u64, Option<Arc<Profile>>>,
    /// The counter columns read with a profile from MySQL, for the request
    /// that caused the read (kept the counters' cache lifetime).
    row_counts: Cache<u64, UserCounts>,
    redis_ttl: Duration,
}

impl Profiles {
    /// Profiles cached as `cache` says (`profile_ttl`, `negative_ttl`,
    /// `redis_profile_ttl`; row counters for `ttl`).
    pub fn new(pool: MySqlPool, redis: RedisCache, keys: Keys, cache: &CacheSettings) -> Self {
        let local = Cache::builder()
            .max_capacity(cache.capacity)
            .expire_after(ProfileExpiry {
                ttl: cache.profile_ttl,
                negative_ttl: cache.negative_ttl,
            })
            .build();
        Self {
            pool,
            redis,
            keys,
            local,
            row_counts: Cache::builder()
                .max_capacity(cache.capacity)
                .time_to_live(cache.ttl)
                .build(),
            redis_ttl: cache.redis_profile_ttl,
        }
    }

    /// [`row_counts`](Self::row_counts) of many users: those read with their
    /// profiles moments ago, the rest in one query. Unknown ids are absent.
    pub async fn row_counts_many(&self, ids: &[u64]) -> Result<HashMap<u64, UserCounts>> {
        let mut out = HashMap::with_capacity(ids.len());
        let mut missing = Vec::new();
        for &id in ids {
            match self.row_counts.remove(&id).await {
                Some(c) => {
                    out.insert(id, c);
                }
                None if !missing.contains(&id) => missing.push(id),
                None => {}
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        Self::count_read("mysql_row");
        let sql = format!(
            "SELECT id, follow_count, follower_count FROM user WHERE id IN ({})",
            service_kit::readpath::counts::placeholders(missing.len())
        );
        let mut q = sqlx::query_as::<_, (u64, u64, u64)>(sqlx::AssertSqlSafe(sql));
        for id in &missing {
            q = q.bind(id);
        }
        for (id, following, followers) in q.fetch_all(&self.pool).await? {
            out.insert(
                id,
                UserCounts {
                    following,
                    followers,
                },
            );
        }
        Ok(out)
    }

    /// The `user` row's counter columns of `id`: those read with its
    /// profile moments ago when there are, else one query. `None`: no such
    /// user.
    pub async fn row_counts(&self, id: u64) -> Result<Option<UserCounts>> {
        if let Some(c) = self.row_counts.remove(&id).await {
            return Ok(Some(c));
        }
        Self::count_read("mysql_row");
        let row: Option<(u64, u64)> =
            sqlx::query_as("SELECT follow_count, follower_count FROM user WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(following, followers)| UserCounts {
            following,
            followers,
        }))
    }

    fn count_read(layer: &'static str) {
        metrics::counter!(READS_TOTAL, "what" => "profile", "layer" => layer).increment(1);
    }

    /// The profile of `id`, or None when there is no such user.
    pub async fn get(&self, id: u64, fresh: bool) -> Result<Option<Arc<Profile>>> {
        if fresh {
            let p = self.load_mysql(id).await?;
            self.local.insert(id, p.clone()).await;
            return Ok(p);
        }
        if let Some(p) = self.local.get(&id).await {
            Self::count_read("local");
            return Ok(p);
        }
        self.local
            .try_get_with(id, self.load(id))
            .await
            .map_err(Arc::unwrap_or_clone)
    }

    async fn load(&self, id: u64) -> Result<Option<Arc<Profile>>> {
        let key = self.keys.user_profile(id);
        let cached: Option<Option<String>> = {
            let key = key.clone();
            self.redis.run(|mut conn| async move { redis::cmd("GET").arg(key).query_async(&mut conn).await }).await
        };
        if let Some(Some(json)) = cached
            && let Ok(p) = serde_json::from_str::<Profile>(&json)
            && p.id == id
        {
            Self::count_read("redis");
            return Ok(Some(Arc::new(p)));
        }
        self.load_mysql(id).await
    }

    async fn load_mysql(&self, id: u64) -> Result<Option<Arc<Profile>>> {
        Self::count_read("mysql");
        let row: Option<Row> = sqlx::query_as(SELECT_PROFILE)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let Some((p, counts)) = row.map(from_row) else {
            return Ok(None);
        };
        self.row_counts.insert(id, counts).await;
        // Cache-aside fill of the one Redis key services may write.
        if let Ok(json) = serde_json::to_string(&p) {
            let key = self.keys.user_profile(id);
            let ttl = self.redis_ttl.as_secs().max(1);
            let _: Option<()> = self
                .redis
                .run(|mut conn| async move {
                    redis::cmd("SET")
                        .arg(key)
                        .arg(json)
                        .arg("EX")
                        .arg(ttl)
                        .query_async(&mut conn)
                        .await
                })
                .await;
        }
        Ok(Some(Arc::new(p)))
    }

    /// Applies `change` to user `id`; returns the new profile and the commit's GTID.
    pub async fn update(&self, id: u64, change: &ProfileChange) -> Result<(Profile, String)> {
        change.validate()?;
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        let res = sqlx::query(
            "UPDATE user SET avatar = COALESCE(?, avatar), signature = COALESCE(?, signature), \
             background_image = COALESCE(?, background_image), updated_at = NOW(6) WHERE id = ?",
        )
        .bind(change.avatar.as_deref())
        .bind(change.signature.as_deref())
        .bind(change.background_image.as_deref())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() == 0 {
            return Err(Error::NotFound(format!("user {id} not found")));
        }
        let row: Row = sqlx::query_as(SELECT_PROFILE)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        let token = service_kit::write::commit_token(&mut conn).await?;
        self.local.invalidate(&id).await;
        metrics::counter!(PROFILE_UPDATES_TOTAL).increment(1);
        Ok((from_row(row).0, token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_must_change_something_within_column_sizes() {
        assert!(ProfileChange::default().validate().is_err());
        let ok = ProfileChange {
            signature: Some("hi".into()),
            ..Default::default()
        };
        assert!(ok.validate().is_ok());
        let long = ProfileChange {
            signature: Some("x".repeat(513)),
            ..Default::default()
        };
        assert!(long.validate().is_err());
        let empty_is_a_change = ProfileChange {
            avatar: Some(String::new()),
            ..Default::default()
        };
        assert!(empty_is_a_change.validate().is_ok());
    }

    #[test]
    fn image_fields_take_web_urls_and_no_field_takes_control_characters() {
        let avatar = |v: &str| ProfileChange {
            avatar: Some(v.into()),
            ..Default::default()
        };
        for ok in ["https://img.example/a.png", "HTTP://x.example/p?q=1", ""] {
            assert!(avatar(ok).validate().is_ok(), "{ok:?}");
        }
        for bad in [
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "data:text/html,<script>",
            "//evil.example/x",
            "https:///path",
            "https://a b",
            "img.png",
        ] {
            let err = avatar(bad).validate().unwrap_err().to_string();
            assert!(err.contains("http"), "{bad:?}: {err}");
        }
        let sig = |v: &str| ProfileChange {
            signature: Some(v.into()),
            ..Default::default()
        };
        assert!(sig("héllo, world 🦀").validate().is_ok());
        for bad in ["a\u{1b}[31mred", "nul\0", "line\nbreak", "bidi\u{85}"] {
            let err = sig(bad).validate().unwrap_err().to_string();
            assert!(err.contains("control"), "{bad:?}: {err}");
        }
    }
}
