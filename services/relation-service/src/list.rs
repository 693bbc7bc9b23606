//! Following / follower lists, newest first, with opaque cursors.
//!
//! # Cursor
//! A page ends at the edge `(created_at, other user id)` of its last item;
//! the cursor is that pair — 8 bytes of microseconds since the epoch and 8
//! bytes of user id, big-endian — in unpadded base64url. The next page is
//! everything strictly older in the order `(created_at DESC, id DESC)`.
//!
//! # Stability
//! A new follow gets `created_at = NOW(6)`, newer than any cursor already
//! handed out, so it lands *before* the cursor: walking pages while follows
//! arrive returns every pre-existing edge exactly once (no duplicates, no
//! gaps). Ties on `created_at` are broken by the user id, which is unique
//! within one list.
//!
//! # Queries
//! The lists read the covering indexes `(from_id, deleted_at, created_at,
//! to_id)` and `(to_id, deleted_at, created_at, from_id)` only, in reverse
//! index order with a `LIMIT`, so a page costs `limit` index entries.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, NaiveDateTime};
use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use sqlx::MySqlPool;

use crate::error::{Error, Result};

/// Largest page size.
pub const MAX_LIMIT: u32 = 100;

/// Which list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Users that `user_id` follows.
    Following,
    /// Users that follow `user_id`.
    Followers,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::Following => "following",
            Direction::Followers => "followers",
        }
    }
}

/// One list entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    /// The other user.
    pub user_id: u64,
    /// When the follow happened, microseconds since the epoch.
    pub followed_at_us: i64,
}

/// Position after which the next page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub followed_at_us: i64,
    pub user_id: u64,
}

impl Cursor {
    pub fn encode(&self) -> String {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.followed_at_us.to_be_bytes());
        bytes[8..].copy_from_slice(&self.user_id.to_be_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Parses a cursor handed out by [`encode`](Self::encode).
    pub fn decode(s: &str) -> Result<Self> {
        let bad = || Error::InvalidArgument("invalid cursor".into());
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| bad())?;
        let bytes: [u8; 16] = bytes.try_into().map_err(|_| bad())?;
        let (at, id) = bytes.split_at(8);
        let followed_at_us = i64::from_be_bytes(at.try_into().map_err(|_| bad())?);
        let user_id = u64::from_be_bytes(id.try_into().map_err(|_| bad())?);
        if followed_at_us < 0 || user_id == 0 {
            return Err(bad());
        }
        Ok(Self {
            followed_at_us,
            user_id,
        })
    }

    /// The fuzz target's property (`fuzz/fuzz_targets/gateway_inputs.rs`):
    /// a cursor that decodes is the one encoding of its position.
    #[doc(hidden)]
    pub fn check_decode(s: &str) -> std::result::Result<(), String> {
        match Self::decode(s) {
            Ok(c) if c.encode() != s => {
                Err(format!("{s:?} decodes as {c:?}, which encodes otherwise"))
            }
            _ => Ok(()),
        }
    }

    fn created_at(&self) -> Result<NaiveDateTime> {
        DateTime::from_timestamp_micros(self.followed_at_us)
            .map(|d| d.naive_utc())
            .ok_or_else(|| Error::InvalidArgument("invalid cursor".into()))
    }
}

/// One page and the cursor of the next (None at the end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub items: Vec<Edge>,
    pub next: Option<Cursor>,
}

/// Checks a requested page size.
pub fn check_limit(limit: u32) -> Result<u32> {
    if (1..=MAX_LIMIT).contains(&limit) {
        Ok(limit)
    } else {
        Err(Error::InvalidArgument(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )))
    }
}

/// Reads one page of `user_id`'s list from MySQL.
pub async fn page(
    pool: &MySqlPool,
    dir: Direction,
    user_id: u64,
    cursor: &str,
    limit: u32,
) -> Result<Page> {
    let limit = check_limit(limit)?;
    let cursor = if cursor.is_empty() {
        None
    } else {
        Some(Cursor::decode(cursor)?)
    };
    // One extra row tells whether a next page exists.
    let rows = fetch(pool, dir, user_id, cursor, limit + 1).await?;
    Ok(into_page(rows, limit))
}

/// Up to `n` edges of the list strictly after `after`, newest first.
pub async fn fetch(
    pool: &MySqlPool,
    dir: Direction,
    user_id: u64,
    after: Option<Cursor>,
    n: u32,
) -> Result<Vec<Edge>> {
    // sqlx sessions run at time_zone '+00:00', so DATETIME values are UTC.
    let (owner_col, other_col, index) = match dir {
        Direction::Following => ("from_id", "to_id", "idx_follow_following"),
        Direction::Followers => ("to_id", "from_id", "idx_follow_followers"),
    };
    let rows: Vec<(u64, NaiveDateTime)> = match after {
        None => {
            let sql = format!(
                "SELECT {other_col}, created_at FROM follow FORCE INDEX ({index}) \
                 WHERE {owner_col} = ? AND deleted_at IS NULL \
                 ORDER BY created_at DESC, {other_col} DESC LIMIT ?"
            );
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(user_id)
                .bind(n)
                .fetch_all(pool)
                .await?
        }
        Some(c) => {
            let at = c.created_at()?;
            let sql = format!(
                "SELECT {other_col}, created_at FROM follow FORCE INDEX ({index}) \
                 WHERE {owner_col} = ? AND deleted_at IS NULL \
                 AND (created_at < ? OR (created_at = ? AND {other_col} < ?)) \
                 ORDER BY created_at DESC, {other_col} DESC LIMIT ?"
            );
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(user_id)
                .bind(at)
                .bind(at)
                .bind(c.user_id)
                .bind(n)
                .fetch_all(pool)
                .await?
        }
    };
    Ok(rows
        .into_iter()
        .map(|(user_id, at)| Edge {
            user_id,
            followed_at_us: at.and_utc().timestamp_micros(),
        })
        .collect())
}

/// The first `limit` of `rows` as a page; a next cursor when more rows follow.
pub fn into_page(mut rows: Vec<Edge>, limit: u32) -> Page {
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = if has_more {
        rows.last().map(|e| Cursor {
            followed_at_us: e.followed_at_us,
            user_id: e.user_id,
        })
    } else {
        None
    };
    Page { items: rows, next }
}

/// First pages kept in process: the newest `MAX_LIMIT + 1` edges of a
/// list, from which a first page of any size is cut. Kept `cache.ttl`,
/// dropped when this process changes the list; later pages (with a cursor)
/// and reads with a consistency token always go to MySQL.
#[derive(Clone)]
pub struct FirstPages {
    pool: MySqlPool,
    local: Cache<(Direction, u64), Arc<Vec<Edge>>>,
}

impl FirstPages {
    pub fn new(pool: MySqlPool, capacity: u64, ttl: Duration) -> Self {
        Self {
            pool,
            local: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// The first page of `user_id`'s list.
    pub async fn get(&self, dir: Direction, user_id: u64, limit: u32) -> Result<Page> {
        let limit = check_limit(limit)?;
        let rows = self
            .local
            .try_get_with((dir, user_id), async {
                fetch(&self.pool, dir, user_id, None, MAX_LIMIT + 1)
                    .await
                    .map(Arc::new)
            })
            .await
            .map_err(Arc::unwrap_or_clone)?;
        let take = rows.len().min(limit as usize + 1);
        Ok(into_page(rows[..take].to_vec(), limit))
    }

    /// Forgets the cached first page of a list.
    pub async fn invalidate(&self, dir: Direction, user_id: u64) {
        self.local.invalidate(&(dir, user_id)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fuzz_corpus_keeps_its_properties() {
        testkit::fuzz_corpus("gateway_inputs", |name, bytes| {
            if let Ok(s) = std::str::from_utf8(bytes) {
                Cursor::check_decode(s).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        });
    }

    #[test]
    fn cursor_round_trips() {
        let c = Cursor {
            followed_at_us: 1_764_000_000_123_456,
            user_id: 42,
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
    }

    #[test]
    fn garbage_cursors_are_invalid_arguments() {
        for bad in [
            "!!!",
            "abc",
            "AAAAAAAAAAAAAAAAAAAAAA",
            "AAAAAAAAAAAAAAAAAAAAAAAA",
            "zzzzzzzzzzzzzzzzzzzzzw",
        ] {
            assert!(
                matches!(Cursor::decode(bad), Err(Error::InvalidArgument(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_page_has_a_next_cursor_only_when_more_rows_follow() {
        let rows: Vec<Edge> = (1..=3)
            .map(|i| Edge {
                user_id: i,
                followed_at_us: 100 - i as i64,
            })
            .collect();
        let p = into_page(rows.clone(), 2);
        assert_eq!(p.items.len(), 2);
        assert_eq!(
            p.next,
            Some(Cursor {
                followed_at_us: 98,
                user_id: 2
            })
        );
        assert_eq!(into_page(rows, 3).next, None);
    }

    #[test]
    fn limit_must_be_between_1_and_100() {
        assert!(check_limit(0).is_err());
        assert!(check_limit(101).is_err());
        assert_eq!(check_limit(1).unwrap(), 1);
        assert_eq!(check_limit(100).unwrap(), 100);
    }
}
