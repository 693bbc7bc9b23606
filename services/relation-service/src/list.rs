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
//! # Where a page is read ([`Lists`])
//! The cache-syncer keeps each list's newest entries (up to its
//! `list_cap`) in the ZSETs `<ns>:following:<uid>` / `<ns>:followers:<uid>`,
//! scored by the follow's `created_at` in microseconds. A page comes from
//! there when the ZSET can answer it exactly: the page's entries are in it,
//! or the ZSET ends before the page does *and* holds the whole list (its
//! size equals the user's counter in Redis; a list longer than the cap
//! does not). Everything else goes to MySQL: deeper pages of long lists, a
//! list the syncer has not built (no ZSET), Redis down or slow, a token the
//! watermark did not cover in time. Redis orders equal scores by member
//! *string*; the page is re-sorted by `(created_at DESC, user id DESC)`,
//! MySQL's order, so both paths return the same pages for the same cursor.
//! First pages without a token are also kept in process (`cache.ttl`).
//! Every answer names its source (`read-source`: `cache`, `synced-cache`
//! or `primary`).
//!
//! # Queries
//! The lists read the covering indexes `(from_id, deleted_at, created_at,
//! to_id)` and `(to_id, deleted_at, created_at, from_id)` only, in reverse
//! index order with a `LIMIT`, so a page costs `limit` index entries.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, NaiveDateTime};
use std::sync::Arc;

use common::keys::{CounterKind, Keys};
use moka::future::Cache;
use service_kit::readpath::Layers;
use service_kit::readpath::consistency::ReadMode;
use service_kit::readpath::redis_cache::RedisCache;
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

    /// The counter that holds this list's length.
    fn counter(self) -> CounterKind {
        match self {
            Direction::Following => CounterKind::Following,
            Direction::Followers => CounterKind::Followers,
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

/// The latest time a DATETIME holds (9999-12-31 23:59:59.999999), in µs
/// since the epoch.
const MAX_FOLLOWED_AT_US: i64 = 253_402_300_799_999_999;

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
        // MySQL's DATETIME ends at 9999-12-31 23:59:59.999999: no follow
        // is later, and a later time cannot even be sent as a parameter.
        if !(0..=MAX_FOLLOWED_AT_US).contains(&followed_at_us) || user_id == 0 {
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

/// Extra ZSET entries read past a page, so that a run of equal scores cut
/// by the read's `LIMIT` (dropped, as Redis orders it by member string)
/// rarely leaves the page short.
const TIE_SLACK: usize = 16;

/// Newest-first entries of a list after a cursor: what [`Lists`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rows {
    edges: Vec<Edge>,
    source: ReadMode,
}

/// The list reader: Redis ZSETs within what they hold exactly, MySQL
/// otherwise, first pages also in process (see the module doc).
#[derive(Clone)]
pub struct Lists {
    pool: MySqlPool,
    redis: RedisCache,
    keys: Keys,
    /// The newest `MAX_LIMIT + 1` entries of a list, from which a first page
    /// of any size is cut; dropped when this process changes the list.
    first: Cache<(Direction, u64), Arc<Rows>>,
    reads_metric: &'static str,
}

impl Lists {
    /// Over the service's read layers (pool, Redis, keys; first pages kept
    /// `cache.ttl`, at most `cache.capacity`).
    pub fn new(layers: &Layers) -> Self {
        Self {
            pool: layers.pool.clone(),
            redis: layers.redis.clone(),
            keys: layers.keys.clone(),
            first: Cache::builder()
                .max_capacity(layers.capacity)
                .time_to_live(layers.ttl)
                .build(),
            reads_metric: layers.reads_metric,
        }
    }

    fn count_read(&self, layer: &'static str) {
        metrics::counter!(self.reads_metric, "what" => "list", "layer" => layer).increment(1);
    }

    /// One page of `user_id`'s list after `cursor` (empty: the first page),
    /// read as `mode` allows, and where it was read.
    pub async fn page(
        &self,
        dir: Direction,
        user_id: u64,
        cursor: &str,
        limit: u32,
        mode: ReadMode,
    ) -> Result<(Page, ReadMode)> {
        let limit = check_limit(limit)?;
        let after = if cursor.is_empty() {
            None
        } else {
            Some(Cursor::decode(cursor)?)
        };
        // One extra entry tells whether a next page exists.
        let want = limit as usize + 1;
        let rows = match (mode, after) {
            (ReadMode::Primary, _) => Arc::new(self.mysql(dir, user_id, after, want).await?),
            (ReadMode::Cached, None) => {
                if let Some(rows) = self.first.get(&(dir, user_id)).await {
                    self.count_read("local");
                    rows
                } else {
                    self.first
                        .try_get_with((dir, user_id), async {
                            self.read(dir, user_id, None, MAX_LIMIT as usize + 1, mode)
                                .await
                                .map(Arc::new)
                        })
                        .await
                        .map_err(Arc::unwrap_or_clone)?
                }
            }
            _ => Arc::new(self.read(dir, user_id, after, want, mode).await?),
        };
        let take = rows.edges.len().min(want);
        Ok((into_page(rows.edges[..take].to_vec(), limit), rows.source))
    }

    /// Forgets the cached first page of a list.
    pub async fn invalidate(&self, dir: Direction, user_id: u64) {
        self.first.invalidate(&(dir, user_id)).await;
    }

    /// `want` entries after `after` (fewer at the list's end): from Redis
    /// when it can answer exactly, else from MySQL.
    async fn read(
        &self,
        dir: Direction,
        user_id: u64,
        after: Option<Cursor>,
        want: usize,
        mode: ReadMode,
    ) -> Result<Rows> {
        if let Some(edges) = self.redis_rows(dir, user_id, after, want).await {
            self.count_read("redis");
            return Ok(Rows {
                edges,
                source: mode,
            });
        }
        self.mysql(dir, user_id, after, want).await
    }

    async fn mysql(
        &self,
        dir: Direction,
        user_id: u64,
        after: Option<Cursor>,
        want: usize,
    ) -> Result<Rows> {
        self.count_read("mysql");
        let edges = fetch(&self.pool, dir, user_id, after, want as u32).await?;
        Ok(Rows {
            edges,
            source: ReadMode::Primary,
        })
    }

    /// The list's `want` entries after `after` from its ZSET, in MySQL's
    /// order, or `None` when the ZSET cannot say exactly (see the module
    /// doc); Redis down or slow is `None` too.
    async fn redis_rows(
        &self,
        dir: Direction,
        user_id: u64,
        after: Option<Cursor>,
        want: usize,
    ) -> Option<Vec<Edge>> {
        let key = match dir {
            Direction::Following => self.keys.following(user_id),
            Direction::Followers => self.keys.followers(user_id),
        };
        let slot = self.keys.counter(dir.counter().code(), user_id);
        let max = after.map_or_else(|| "+inf".to_owned(), |c| c.followed_at_us.to_string());
        let n = want + TIE_SLACK;
        type Reply = (Vec<(u64, f64)>, usize, Vec<(u64, f64)>, Option<i64>);
        let (entries, size, lowest, count): Reply = self
            .redis
            .run(|conn| async move {
                // The list and its counter bucket: two slots on a cluster.
                let replies = conn
                    .run(
                        vec![
                            redis::cmd("ZREVRANGEBYSCORE")
                                .arg(&key)
                                .arg(&max)
                                .arg("-inf")
                                .arg("WITHSCORES")
                                .arg("LIMIT")
                                .arg(0)
                                .arg(n)
                                .clone(),
                            redis::Cmd::zcard(&key),
                            redis::Cmd::zrange_withscores(&key, 0, 0),
                            redis::Cmd::hget(&slot.key, slot.field),
                        ],
                        false,
                    )
                    .await?;
                redis::from_redis_value(redis::Value::Array(replies))
                    .map_err(redis::RedisError::from)
            })
            .await?;
        let zset = Zset {
            size,
            lowest: lowest.first().map(|(_, s)| s.round() as i64),
            count,
        };
        rows_from_zset(entries, n, &zset, after, want)
    }
}

/// What a page read learns about a list's ZSET besides its entries.
#[derive(Debug, Clone, Copy)]
struct Zset {
    /// Entries in the ZSET.
    size: usize,
    /// Its lowest score (µs), when not empty.
    lowest: Option<i64>,
    /// The list's length by its counter in Redis, when there.
    count: Option<i64>,
}

impl Zset {
    /// Whether the ZSET holds the whole list.
    fn whole(&self) -> bool {
        self.count == Some(self.size as i64)
    }
}

/// The pure half of [`Lists::redis_rows`]: from the `n`-entry read of a
/// ZSET at or below the cursor's score (`entries`, Redis's order) and what
/// else was read of it, the `want` entries strictly after `after` in
/// MySQL's order, or `None` when they cannot be known from the ZSET alone.
fn rows_from_zset(
    entries: Vec<(u64, f64)>,
    n: usize,
    zset: &Zset,
    after: Option<Cursor>,
    want: usize,
) -> Option<Vec<Edge>> {
    if zset.size == 0 {
        // Not built (or empty, which MySQL answers as cheaply).
        return None;
    }
    let cut = entries.len() >= n;
    // Scores are microseconds below 2^53: exact in a double.
    let mut rows: Vec<Edge> = entries
        .into_iter()
        .map(|(user_id, score)| Edge {
            user_id,
            followed_at_us: score.round() as i64,
        })
        .collect();
    if cut {
        // The `LIMIT` may have cut the run of the lowest score read, and
        // Redis orders a run by member string: drop the whole run.
        let lowest = rows.last()?.followed_at_us;
        rows.retain(|e| e.followed_at_us > lowest);
    }
    if !zset.whole()
        && let Some(lowest) = zset.lowest
    {
        // A ZSET cut to the syncer's cap: the cut is by rank in Redis's
        // order, so of a run of equal scores at its end it may have kept
        // the wrong members. Only entries above its lowest score are sure.
        rows.retain(|e| e.followed_at_us > lowest);
    }
    rows.sort_unstable_by(|a, b| {
        b.followed_at_us
            .cmp(&a.followed_at_us)
            .then(b.user_id.cmp(&a.user_id))
    });
    if let Some(c) = after {
        rows.retain(|e| {
            e.followed_at_us < c.followed_at_us
                || (e.followed_at_us == c.followed_at_us && e.user_id < c.user_id)
        });
    }
    if rows.len() >= want {
        rows.truncate(want);
        return Some(rows);
    }
    // Short: the ZSET ends before the page does. That is the list's end
    // only when everything below the cursor was read and the ZSET holds
    // the whole list (a list past the syncer's cap, or one whose counter
    // and ZSET are applied at different moments, goes to MySQL).
    (!cut && zset.whole()).then_some(rows)
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
        let last = Cursor {
            followed_at_us: MAX_FOLLOWED_AT_US,
            user_id: 1,
        };
        assert_eq!(Cursor::decode(&last.encode()).unwrap(), last);
    }

    #[test]
    fn garbage_cursors_are_invalid_arguments() {
        let past = Cursor {
            followed_at_us: MAX_FOLLOWED_AT_US + 1,
            user_id: 5,
        }
        .encode();
        for bad in [
            "!!!",
            "abc",
            "AAAAAAAAAAAAAAAAAAAAAA",
            "AAAAAAAAAAAAAAAAAAAAAAAA",
            "zzzzzzzzzzzzzzzzzzzzzw",
            // Well formed, but in the year 65536+ and 10000: past DATETIME.
            "HcsI6RXmdAAAAAAAAAAABQ",
            past.as_str(),
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

    fn edge(user_id: u64, at: i64) -> Edge {
        Edge {
            user_id,
            followed_at_us: at,
        }
    }

    /// A ZSET of `size` entries, lowest score `lowest`, list length `count`.
    fn zset(size: usize, lowest: i64, count: Option<i64>) -> Zset {
        Zset {
            size,
            lowest: (size > 0).then_some(lowest),
            count,
        }
    }

    #[test]
    fn a_zset_page_is_in_mysqls_order_even_for_equal_scores() {
        // Redis orders the run at score 50 by member string: "9" > "10".
        let entries = vec![(3, 60.0), (9, 50.0), (10, 50.0), (2, 40.0)];
        let rows = rows_from_zset(entries, 100, &zset(4, 40, Some(4)), None, 3).unwrap();
        assert_eq!(rows, vec![edge(3, 60), edge(10, 50), edge(9, 50)]);
    }

    #[test]
    fn a_cursor_inside_a_run_of_equal_scores_starts_after_it() {
        let entries = vec![(10, 50.0), (9, 50.0), (2, 40.0)];
        let after = Cursor {
            followed_at_us: 50,
            user_id: 10,
        };
        let rows = rows_from_zset(entries, 100, &zset(4, 40, Some(4)), Some(after), 2).unwrap();
        assert_eq!(rows, vec![edge(9, 50), edge(2, 40)]);
    }

    #[test]
    fn a_short_read_is_the_end_only_when_the_zset_holds_the_whole_list() {
        let entries = || vec![(3, 60.0), (2, 40.0)];
        let whole = zset(2, 40, Some(2));
        assert_eq!(
            rows_from_zset(entries(), 100, &whole, None, 5)
                .unwrap()
                .len(),
            2
        );
        // Longer than the cap (counter 7, ZSET 2), or counter not there.
        assert_eq!(
            rows_from_zset(entries(), 100, &zset(2, 40, Some(7)), None, 5),
            None
        );
        assert_eq!(
            rows_from_zset(entries(), 100, &zset(2, 40, None), None, 5),
            None
        );
        // No ZSET: not built.
        assert_eq!(
            rows_from_zset(Vec::new(), 100, &zset(0, 0, Some(0)), None, 5),
            None
        );
        // A full page above the lowest score needs no counter.
        let entries = vec![(3, 60.0), (4, 50.0), (2, 40.0)];
        assert_eq!(
            rows_from_zset(entries, 100, &zset(3, 40, None), None, 2).unwrap(),
            vec![edge(3, 60), edge(4, 50)]
        );
    }

    #[test]
    fn the_lowest_score_of_a_capped_zset_is_not_trusted() {
        // Capped at 3 (the list has 5): of the run at 40 the cap may have
        // kept "9" and dropped "10", which MySQL orders first.
        let entries = vec![(3, 60.0), (4, 50.0), (9, 40.0)];
        let capped = zset(3, 40, Some(5));
        assert_eq!(
            rows_from_zset(entries.clone(), 100, &capped, None, 2).unwrap(),
            vec![edge(3, 60), edge(4, 50)]
        );
        assert_eq!(rows_from_zset(entries, 100, &capped, None, 3), None);
    }

    #[test]
    fn a_read_cut_by_its_limit_drops_the_run_it_cut() {
        // n = 3 entries read; the last score (40) may continue past the cut.
        let entries = vec![(3, 60.0), (9, 40.0), (10, 40.0)];
        let whole = zset(9, 10, Some(9));
        assert_eq!(
            rows_from_zset(entries.clone(), 3, &whole, None, 1).unwrap(),
            vec![edge(3, 60)]
        );
        assert_eq!(rows_from_zset(entries, 3, &whole, None, 2), None);
    }

    #[test]
    fn limit_must_be_between_1_and_100() {
        assert!(check_limit(0).is_err());
        assert!(check_limit(101).is_err());
        assert_eq!(check_limit(1).unwrap(), 1);
        assert_eq!(check_limit(100).unwrap(), 100);
    }
}
